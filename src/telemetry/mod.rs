//! What the pipeline tells its operators: the counters and gauges the stages update
//! ([`metrics`]), the processing-latency histogram ([`latency`]), the readiness rule
//! ([`readiness`]), the Prometheus exposition ([`exposition`]) and the HTTP endpoints that
//! serve them ([`http`]), the periodic progress line ([`progress`]), and the log lines
//! ([`logging`]).

pub(crate) mod exposition;
pub(crate) mod http;
pub(crate) mod latency;
pub mod logging;
pub(crate) mod metrics;
pub(crate) mod progress;
pub(crate) mod readiness;
