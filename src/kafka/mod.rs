//! Kafka plumbing shared by the pipeline and the subcommands: client configuration and the
//! librdkafka log policy ([`client`]), topic administration ([`admin`]), and reading a topic
//! without a group ([`reader`]).

pub mod admin;
pub mod client;
pub(crate) mod reader;
