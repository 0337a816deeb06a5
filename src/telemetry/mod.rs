//! What the pipeline tells its operators: the counters and gauges the stages update
//! ([`metrics`]), the HTTP endpoints that serve them ([`http`]), and the log lines
//! ([`logging`]).

pub mod http;
pub mod logging;
pub mod metrics;
