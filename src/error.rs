//! Errors that stop the pipeline, and the exit codes they map to.
//!
//! Bad input is not here: a record that cannot be processed is data (see
//! [`crate::transform::Rejection`]) and goes to the dead-letter topic. These are the failures of
//! configuration and infrastructure, each with its own exit code so that a supervisor can tell
//! "fix the flags" from "the broker is not there" from "it broke while running".

use std::fmt;

/// Exit code for a bad flag or configuration value (clap uses the same).
pub const EXIT_CONFIG: i32 = 2;
/// Exit code when Kafka cannot be reached or the input topic does not exist at start.
pub const EXIT_STARTUP: i32 = 3;
/// Exit code for a fatal error while running, or a shutdown that missed its deadline.
pub const EXIT_RUNTIME: i32 = 4;
/// Exit code after a second SIGINT/SIGTERM forced an immediate exit.
pub const EXIT_FORCED: i32 = 130;

/// Why the pipeline stopped with an error.
#[derive(Debug)]
pub enum PipelineError {
    /// A flag or configuration value is invalid.
    Config(String),
    /// The broker cannot be reached, or a topic it needs is missing, at start-up.
    Startup(String),
    /// A Kafka client failed in a way the pipeline cannot ride out.
    Kafka {
        /// What the pipeline was doing.
        context: String,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
    /// A graceful shutdown did not finish before `--shutdown-timeout`.
    ShutdownTimeout {
        /// Input records not confirmed delivered; they will be processed again on restart.
        in_flight: u64,
    },
    /// A pipeline thread ended while the pipeline was running: it panicked, or it returned
    /// before the shutdown (which no stage does unless something is wrong).
    StageEnded {
        /// The thread's name (`worker-1`, `producer`, `consumer`).
        stage: String,
        /// What happened (`panicked: …`, `returned early`).
        how: String,
    },
    /// Exactly-once: a transaction was aborted on an abortable error (a rebalance, a lost
    /// partition, a timeout, a failed delivery); the stages start again from the committed
    /// positions in-process. It ends the run only when it keeps happening.
    Abortable(String),
    /// An admin request (creating a topic) failed.
    Admin(String),
    /// The operating system refused something the process needs to run: a thread, the signal
    /// handler. Not the flags' fault, so not [`EXIT_CONFIG`].
    System(String),
}

impl PipelineError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            PipelineError::Config(_) => EXIT_CONFIG,
            PipelineError::Startup(_) => EXIT_STARTUP,
            _ => EXIT_RUNTIME,
        }
    }

    /// Wraps a client error with what the pipeline was doing.
    pub fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        PipelineError::Kafka {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Config(msg) => write!(f, "invalid configuration: {msg}"),
            PipelineError::Startup(msg) => write!(f, "cannot start: {msg}"),
            PipelineError::Kafka { context, source } => write!(f, "{context}: {source}"),
            PipelineError::ShutdownTimeout { in_flight } => write!(
                f,
                "shutdown timed out with {in_flight} input records not confirmed; \
                 they will be processed again on restart"
            ),
            PipelineError::StageEnded { stage, how } => {
                write!(f, "pipeline stage {stage} {how}; the pipeline stopped")
            }
            PipelineError::Admin(msg) => write!(f, "{msg}"),
            PipelineError::Abortable(msg) => write!(f, "transaction aborted: {msg}"),
            PipelineError::System(msg) => write!(f, "cannot run: {msg}"),
        }
    }
}

impl std::error::Error for PipelineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PipelineError::Kafka { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed thread spawn or signal-handler install used to be a `Config` error (exit 2,
    /// "fix the flags"); it is a runtime failure.
    #[test]
    fn each_kind_of_error_has_its_exit_code() {
        let timeout =
            rdkafka::error::KafkaError::Flush(rdkafka::types::RDKafkaErrorCode::RequestTimedOut);
        let cases = [
            (PipelineError::Config("--workers 0".into()), EXIT_CONFIG),
            (PipelineError::Startup("no broker".into()), EXIT_STARTUP),
            (PipelineError::kafka("committing", timeout), EXIT_RUNTIME),
            (
                PipelineError::ShutdownTimeout { in_flight: 3 },
                EXIT_RUNTIME,
            ),
            (
                PipelineError::StageEnded {
                    stage: "worker-1".into(),
                    how: "panicked".into(),
                },
                EXIT_RUNTIME,
            ),
            (
                PipelineError::Admin("creating topic t".into()),
                EXIT_RUNTIME,
            ),
            (
                PipelineError::System("cannot spawn thread consumer".into()),
                EXIT_RUNTIME,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error}");
        }
        assert_eq!(
            PipelineError::System("cannot install the signal handler: busy".into()).to_string(),
            "cannot run: cannot install the signal handler: busy"
        );
    }
}
