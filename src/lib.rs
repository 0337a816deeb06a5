//! kafka-pipeline: placeholder lib
pub mod admin;
pub mod config;
pub mod error;
pub mod loadgen;
pub mod transform;

/// Runs the pipeline until shutdown.
pub fn run(_config: config::Config) -> Result<(), error::PipelineError> {
    Err(error::PipelineError::Config("not built yet".into()))
}
