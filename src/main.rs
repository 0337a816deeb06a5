//! `kafka-pipeline`: parses the command line, sets up logging and signal handling, runs a
//! subcommand and maps the result to an exit code. Everything else lives in the library.

use std::sync::Arc;

use clap::Parser;
use kafka_pipeline::config::{Cli, Command, Config};
use kafka_pipeline::error::{PipelineError, EXIT_FORCED, EXIT_RUNTIME};
use kafka_pipeline::shutdown::Shutdown;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => match Config::from_args(args).and_then(run_pipeline) {
            Ok(()) => 0,
            Err(e) => {
                log::error!("{e}");
                e.exit_code()
            }
        },
        Command::Loadgen(args) => report(kafka_pipeline::loadgen::run(args)),
        Command::Insights(args) => report(kafka_pipeline::insights::run_reader(args)),
    };
    std::process::exit(code);
}

/// Exit code of a helper subcommand.
fn report(result: anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e:#}");
            EXIT_RUNTIME
        }
    }
}

/// Installs the SIGINT/SIGTERM handler (first signal: graceful shutdown within the timeout;
/// second: exit at once) and runs the pipeline.
fn run_pipeline(config: Config) -> Result<(), PipelineError> {
    let shutdown = Arc::new(Shutdown::new());
    let grace = config.shutdown_timeout;
    let handler_shutdown = Arc::clone(&shutdown);
    ctrlc::set_handler(move || {
        if handler_shutdown.request(grace) {
            log::info!(
                "signal received: shutting down within {grace:?} (signal again to exit at once)"
            );
        } else {
            log::error!("second signal: exiting at once; records in flight will be read again");
            std::process::exit(EXIT_FORCED);
        }
    })
    .map_err(|e| PipelineError::Config(format!("cannot install the signal handler: {e}")))?;
    kafka_pipeline::run(config, &shutdown)
}
