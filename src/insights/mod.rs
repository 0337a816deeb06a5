//! Windowed insights (placeholder until the module lands).

/// Flags of `kafka-pipeline insights`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReaderArgs {}

/// Reads the insights topic and prints merged windows.
pub fn run_reader(_args: ReaderArgs) -> anyhow::Result<()> {
    anyhow::bail!("insights reader is not built yet")
}
