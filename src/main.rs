//! `kafka-pipeline`: parses the command line (and `--config`), sets up logging and signal
//! handling, runs a subcommand and maps the result to an exit code. Everything else lives in
//! the library.

use std::sync::Arc;

use kafka_pipeline::cli::run::RunArgs;
use kafka_pipeline::cli::{parse_cli, CliError, Command, LogFormat};
use kafka_pipeline::commands::topics::EXIT_MISMATCH;
use kafka_pipeline::config::{print_config, Config};
use kafka_pipeline::error::{PipelineError, EXIT_CONFIG, EXIT_FORCED, EXIT_RUNTIME};
use kafka_pipeline::shutdown::Shutdown;

fn main() {
    let cli = match parse_cli(std::env::args_os()) {
        Ok(cli) => cli,
        // Prints the message (or --help/--version) and exits 2 (or 0).
        Err(CliError::Clap(e)) => e.exit(),
        Err(CliError::File(msg)) => {
            eprintln!("kafka-pipeline: invalid configuration: {msg}");
            std::process::exit(EXIT_CONFIG);
        }
    };
    kafka_pipeline::telemetry::logging::init(cli.log_format);
    let code = match cli.command {
        Command::Run(args) => run(args, cli.log_format),
        Command::Loadgen(args) => report(kafka_pipeline::commands::loadgen::run(args)),
        Command::Insights(args) => report(kafka_pipeline::commands::insights::run_reader(args)),
        Command::Topics(args) => topics(&args),
        Command::Dlq(args) => report(kafka_pipeline::commands::dlq::run(args)),
        Command::Sink(args) => sink(args),
    };
    std::process::exit(code);
}

/// `run`: resolves the configuration, then prints it (`--print-config`) or runs the pipeline.
fn run(args: RunArgs, log_format: LogFormat) -> i32 {
    let printed = args.print_config.then(|| args.clone());
    let result = Config::from_args(args).and_then(|config| match printed {
        Some(args) => {
            print!("{}", print_config(&args, &config, log_format));
            Ok(())
        }
        None => run_pipeline(config),
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            e.exit_code()
        }
    }
}

/// `topics`: one line per topic on stdout; exit 1 when one is missing or differs.
fn topics(args: &kafka_pipeline::cli::topics::TopicsArgs) -> i32 {
    match kafka_pipeline::commands::topics::run(args) {
        Ok(reports) => {
            for r in &reports {
                println!("{r}");
            }
            let bad = reports.iter().filter(|r| !r.is_ok()).count();
            if bad == 0 {
                0
            } else {
                log::error!(
                    "{bad} topics missing or not as requested ({} partitions, replication factor {})",
                    args.partitions,
                    args.replication_factor
                );
                EXIT_MISMATCH
            }
        }
        Err(e) => {
            log::error!("{e}");
            e.exit_code()
        }
    }
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

/// Installs the SIGINT/SIGTERM handler (first signal: graceful shutdown within `grace`;
/// second: exit at once).
fn install_shutdown(grace: std::time::Duration) -> Result<Arc<Shutdown>, String> {
    let shutdown = Arc::new(Shutdown::new());
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
    .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    Ok(shutdown)
}

/// Runs the pipeline until a signal (or the end of the input with `--exit-at-end`).
fn run_pipeline(config: Config) -> Result<(), PipelineError> {
    let shutdown = install_shutdown(config.shutdown_timeout).map_err(PipelineError::System)?;
    kafka_pipeline::run(config, &shutdown)
}

/// `sink`: the insight windows into PostgreSQL until a signal.
fn sink(args: kafka_pipeline::cli::sink::SinkArgs) -> i32 {
    match install_shutdown(args.shutdown_timeout) {
        Ok(shutdown) => report(kafka_pipeline::commands::sink::run_sink(args, &shutdown)),
        Err(e) => report(Err(anyhow::anyhow!(e))),
    }
}
