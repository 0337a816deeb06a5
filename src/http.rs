//! The metrics and health endpoints: `GET /metrics` (Prometheus text format 0.0.4), `GET /health`
//! and `GET /ready`, on `--metrics-addr`.
//!
//! A deliberately small HTTP/1.1 server on one std thread: it answers a handful of GET requests
//! per scrape interval, one connection at a time, `Connection: close`, with 2 s read and write
//! timeouts so a stuck client cannot hold it for long. That is all Prometheus and the
//! Kubernetes probes need, and it keeps an async runtime and an HTTP stack out of a binary
//! that otherwise has none. It never touches the hot path: a response is rendered from the
//! atomics in [`Metrics`].
//!
//! - `/health`: 200 `ok` while running; 503 `shutting down` once shutdown has started. A
//!   liveness probe on it should allow failures for longer than `--shutdown-timeout`
//!   (failure threshold × period), so a drain in progress is not cut short by a restart.
//! - `/ready`: 200 `ready` or 503 with the reason from [`Metrics::readiness`].

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::PipelineError;
use crate::metrics::{render, unix_ms, Metrics};
use crate::shutdown::Shutdown;

/// Longest request head accepted.
const MAX_REQUEST: usize = 8192;
/// Read and write timeout per connection.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// What the endpoints report on.
pub struct View<'a> {
    /// The pipeline's counters and health inputs.
    pub metrics: &'a Metrics,
    /// The shutdown signal (`/health` turns 503 once it fires).
    pub shutdown: &'a Shutdown,
    /// Output, dead-letter and insights topic, for the `topic` label.
    pub topics: [&'a str; 3],
    /// Input topic, for the lag's `topic` label.
    pub input_topic: &'a str,
}

/// A response: status, content type, body.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Self {
        let mut body = body.into();
        body.push('\n');
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }
}

/// Answers one request.
pub fn route(method: &str, target: &str, view: &View<'_>) -> Response {
    let path = target.split('?').next().unwrap_or(target);
    if method != "GET" && method != "HEAD" {
        return Response::text(405, "only GET is supported");
    }
    let shutting_down = view.shutdown.is_requested();
    match path {
        "/metrics" => {
            let ready = view.metrics.readiness(shutting_down, unix_ms()).is_ok();
            Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: render(view.metrics, view.topics, view.input_topic, ready),
            }
        }
        "/health" if shutting_down => Response::text(503, "shutting down"),
        "/health" => Response::text(200, "ok"),
        "/ready" => match view.metrics.readiness(shutting_down, unix_ms()) {
            Ok(()) => Response::text(200, "ready"),
            Err(reason) => Response::text(503, reason),
        },
        _ => Response::text(404, "not found: try /metrics, /health or /ready"),
    }
}

/// The bound listening socket.
pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    /// Binds `addr`; failure (address in use, no permission) is a configuration error.
    pub fn bind(addr: SocketAddr) -> Result<Self, PipelineError> {
        let listener = TcpListener::bind(addr).map_err(|e| {
            PipelineError::Config(format!("--metrics-addr {addr}: cannot listen: {e}"))
        })?;
        listener.set_nonblocking(true).map_err(|e| {
            PipelineError::Config(format!("--metrics-addr {addr}: set_nonblocking: {e}"))
        })?;
        Ok(MetricsServer { listener })
    }

    /// The address actually bound (port 0 picks a free port).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves requests until `stop` is set.
    pub fn serve(&self, view: &View<'_>, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = answer(stream, view) {
                        log::debug!("metrics endpoint: {e}");
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
                Err(e) => {
                    log::warn!("metrics endpoint: accept failed: {e}");
                    std::thread::sleep(ACCEPT_POLL);
                }
            }
        }
    }
}

/// Reads one request head from `stream` and writes the response.
fn answer(mut stream: TcpStream, view: &View<'_>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST {
            return write_response(
                &mut stream,
                &Response::text(431, "request too large"),
                false,
            );
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let response = if target.is_empty() {
        Response::text(400, "bad request")
    } else {
        route(method, target, view)
    };
    write_response(&mut stream, &response, method == "HEAD")
}

fn write_response(stream: &mut TcpStream, r: &Response, head_only: bool) -> std::io::Result<()> {
    let reason = match r.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        r.content_type,
        r.body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(r.body.as_bytes());
    }
    stream.write_all(&out)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    fn view<'a>(metrics: &'a Metrics, shutdown: &'a Shutdown) -> View<'a> {
        View {
            metrics,
            shutdown,
            topics: ["out", "dlq", "insights"],
            input_topic: "in",
        }
    }

    fn running() -> Metrics {
        let m = Metrics::new(2, Duration::from_secs(60));
        m.health.subscribed.store(true, Relaxed);
        m.health.producer_brokers_up.store(1, Relaxed);
        m
    }

    #[test]
    fn health_turns_503_on_shutdown() {
        let (m, s) = (running(), Shutdown::new());
        assert_eq!(route("GET", "/health", &view(&m, &s)).status, 200);
        assert_eq!(route("GET", "/ready", &view(&m, &s)).status, 200);
        s.request(Duration::from_secs(1));
        assert_eq!(route("GET", "/health", &view(&m, &s)).status, 503);
        let r = route("GET", "/ready", &view(&m, &s));
        assert_eq!((r.status, r.body.as_str()), (503, "shutting down\n"));
    }

    #[test]
    fn ready_needs_subscription_and_a_connected_producer() {
        let s = Shutdown::new();
        let m = Metrics::new(1, Duration::from_secs(60));
        let r = route("GET", "/ready", &view(&m, &s));
        assert_eq!(r.status, 503);
        assert!(r.body.contains("not subscribed"), "{}", r.body);
        m.health.subscribed.store(true, Relaxed);
        assert!(route("GET", "/ready", &view(&m, &s))
            .body
            .contains("no producer statistics"));
        m.health.producer_brokers_up.store(0, Relaxed);
        assert!(route("GET", "/ready", &view(&m, &s))
            .body
            .contains("not connected"));
        m.health.producer_brokers_up.store(1, Relaxed);
        assert_eq!(route("GET", "/ready", &view(&m, &s)).status, 200);
    }

    #[test]
    fn lag_without_commits_past_the_stall_timeout_is_not_ready() {
        let m = running();
        let now = unix_ms();
        m.set_lag(vec![(0, 5), (1, 0)]);
        assert_eq!(m.readiness(false, now + 1000), Ok(()));
        let err = m.readiness(false, now + 61_000).unwrap_err();
        assert!(err.starts_with("stalled: no offset commit for 6"), "{err}");
        assert!(err.ends_with("consumer lag is 5"), "{err}");
        // A commit resets the clock; no lag means nothing to wait for.
        m.last_commit_ms.store(now + 60_000, Relaxed);
        assert_eq!(m.readiness(false, now + 61_000), Ok(()));
        m.set_lag(vec![(0, 0)]);
        assert_eq!(m.readiness(false, now + 1_000_000), Ok(()));
    }

    #[test]
    fn unknown_paths_and_methods() {
        let (m, s) = (running(), Shutdown::new());
        assert_eq!(route("GET", "/nope", &view(&m, &s)).status, 404);
        assert_eq!(route("POST", "/metrics", &view(&m, &s)).status, 405);
        assert_eq!(route("GET", "/metrics?x=1", &view(&m, &s)).status, 200);
    }

    #[test]
    fn serves_over_tcp() {
        let (m, s) = (running(), Shutdown::new());
        m.received.fetch_add(3, Relaxed);
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| server.serve(&view(&m, &s), &stop));
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut text = String::new();
            c.read_to_string(&mut text).unwrap();
            let taken = MetricsServer::bind(addr).err().expect("port in use");
            assert_eq!(taken.exit_code(), 2);
            stop.store(true, Ordering::Relaxed);
            assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
            assert!(
                text.contains("\nkafka_pipeline_events_received_total 3\n"),
                "{text}"
            );
        });
    }
}
