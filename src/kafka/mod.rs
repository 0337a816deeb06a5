//! Kafka plumbing shared by the pipeline and the subcommands: client configuration and the
//! librdkafka log policy ([`client`]), and topic administration ([`admin`]).

pub mod admin;
pub mod client;
