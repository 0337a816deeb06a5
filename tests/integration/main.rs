//! The integration tests, one binary (the crate is linked once, not once per file): each module
//! tests one area against the real broker (and PostgreSQL for `sink`); `common` holds their
//! shared helpers. `cargo test --test integration pipeline::` runs one module.

mod common;

mod chaos;
mod cluster;
mod dlq;
mod docs;
mod http;
mod insights;
mod loadgen;
mod oauth;
mod ops;
mod pipeline;
mod sink;
mod supervision;
