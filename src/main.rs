//! `kafka-pipeline`: parses the command line, sets up logging, runs a subcommand and maps the
//! result to an exit code. Everything else lives in the library.

use clap::Parser;
use kafka_pipeline::config::{Cli, Command, Config};
use kafka_pipeline::error::EXIT_RUNTIME;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => match Config::from_args(args).and_then(kafka_pipeline::run) {
            Ok(()) => 0,
            Err(e) => {
                log::error!("{e}");
                e.exit_code()
            }
        },
        Command::Loadgen(args) => match kafka_pipeline::loadgen::run(args) {
            Ok(()) => 0,
            Err(e) => {
                log::error!("{e:#}");
                EXIT_RUNTIME
            }
        },
    };
    std::process::exit(code);
}
