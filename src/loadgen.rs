//! Load generator (placeholder until the loadgen module lands).

/// Flags of `kafka-pipeline loadgen`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadgenArgs {}

/// Runs the load generator.
pub fn run(_args: LoadgenArgs) -> anyhow::Result<()> {
    anyhow::bail!("loadgen is not built yet")
}
