//! The metrics and health endpoints: `GET /metrics` (Prometheus text format 0.0.4), `GET /health`
//! and `GET /ready`, on `--metrics-addr`.
//!
//! A deliberately small HTTP/1.1 server, std only, on the one thread that calls
//! [`MetricsServer::serve`]: it keeps an async runtime and an HTTP stack out of a binary that
//! otherwise has none, and it never touches the hot path (a response is rendered from the atomics
//! in [`Metrics`]). Each connection carries one request and is closed after the response
//! (`Connection: close`).
//!
//! What it guarantees under slow, idle and hostile clients:
//!
//! - **A deadline per connection, not per read.** A client has [`REQUEST_DEADLINE`] (2 s) from
//!   the accept to the end of its request head, and as long again to take the response; then
//!   the connection is closed. Trickling a byte at a time buys nothing.
//! - **No client waits for another.** All sockets are non-blocking; the thread sweeps every open
//!   connection, reading what has arrived and answering each request the moment its head is
//!   complete, and sleeps [`TICK`] (5 ms) only when a sweep found nothing to do. A slow or idle
//!   connection costs one `read` per sweep, not a thread.
//! - **Bounded resources.** One thread; at most [`MAX_CONNECTIONS`] (128) connections open and
//!   [`MAX_REQUEST`] bytes of head each. A connection beyond the cap closes the oldest one (the
//!   one nearest its deadline), so a new probe always gets in; accepts are taken at most
//!   [`ACCEPT_BATCH`] per sweep, so even a flood of new connections leaves each a few sweeps to
//!   send its request. A head over [`MAX_REQUEST`] gets 431.
//! - **Stops promptly.** The stop flag is read every sweep: `serve` returns within a tick, open
//!   connections are closed.
//!
//! `tests/integration/http.rs` holds these to account: with 50 clients trickling a byte every 1.5 s and 200
//! idle connections open, every `/health` answers within 200 ms.
//!
//! - `/health`: 200 `ok` while every pipeline stage runs; 503 `stage worker-1 panicked: …`
//!   once a stage has ended while running (the pipeline then stops itself), 503 `shutting
//!   down` once shutdown has started. A
//!   liveness probe on it should allow failures for longer than `--shutdown-timeout`
//!   (failure threshold × period), so a drain in progress is not cut short by a restart.
//! - `/ready`: 200 `ready` or 503 with the reason from [`Metrics::readiness`].

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::PipelineError;
use crate::shutdown::Shutdown;
use crate::telemetry::exposition::render;
use crate::telemetry::metrics::{unix_ms, Metrics};

/// Longest request head accepted.
pub const MAX_REQUEST: usize = 8192;
/// Time from the accept to the end of the request head; the response then has as long again.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Most connections open at once; one more closes the oldest.
pub const MAX_CONNECTIONS: usize = 128;
/// Most connections accepted per sweep.
pub const ACCEPT_BATCH: usize = 32;
/// Sleep after a sweep that found nothing to do: the most it adds to a request's latency and to
/// the time `serve` takes to see the stop flag.
pub const TICK: Duration = Duration::from_millis(5);
/// Accept failures (out of file descriptors, say) are logged at most this often.
const ACCEPT_ERROR_EVERY: Duration = Duration::from_secs(10);

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
        "/health" => match view.metrics.health.failed_stage() {
            Some(stage) => Response::text(503, format!("stage {stage}")),
            None if shutting_down => Response::text(503, "shutting down"),
            None => Response::text(200, "ok"),
        },
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

    /// Serves requests until `stop` is set (see the module doc for what it guarantees).
    pub fn serve(&self, view: &View<'_>, stop: &AtomicBool) {
        let mut open: Vec<Connection> = Vec::new();
        let mut accept_error_logged: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let mut busy = self.accept(&mut open, now, &mut accept_error_logged);
            // `open` stays in accept order, oldest first.
            open.retain_mut(|c| match c.advance(view) {
                Ok(Progress::Finished) => {
                    busy = true;
                    false
                }
                Ok(progress) if now < c.deadline => {
                    busy |= progress == Progress::Some;
                    true
                }
                Ok(_) => {
                    log::debug!("metrics endpoint: {}: deadline passed, closing", c.peer);
                    false
                }
                Err(e) => {
                    log::debug!("metrics endpoint: {}: {e}", c.peer);
                    false
                }
            });
            if !busy {
                std::thread::sleep(TICK);
            }
        }
    }

    /// Takes up to [`ACCEPT_BATCH`] waiting connections, closing the oldest open ones beyond
    /// [`MAX_CONNECTIONS`]. Returns whether it accepted any.
    fn accept(
        &self,
        open: &mut Vec<Connection>,
        now: Instant,
        error_logged: &mut Option<Instant>,
    ) -> bool {
        for accepted in 0..ACCEPT_BATCH {
            let (stream, peer) = match self.listener.accept() {
                Ok(conn) => conn,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return accepted > 0,
                Err(e) => {
                    if error_logged.is_none_or(|t| t.elapsed() >= ACCEPT_ERROR_EVERY) {
                        log::warn!("metrics endpoint: accept failed: {e}");
                        *error_logged = Some(now);
                    }
                    return accepted > 0;
                }
            };
            // An accepted socket does not inherit the listener's non-blocking mode.
            if let Err(e) = stream.set_nonblocking(true) {
                log::debug!("metrics endpoint: {peer}: set_nonblocking: {e}");
                continue;
            }
            if open.len() >= MAX_CONNECTIONS {
                let oldest = open.remove(0);
                log::debug!(
                    "metrics endpoint: {MAX_CONNECTIONS} connections open; closing the oldest, {}",
                    oldest.peer
                );
            }
            open.push(Connection {
                stream,
                peer,
                deadline: now + REQUEST_DEADLINE,
                state: State::Reading(Vec::new()),
            });
        }
        true
    }
}

/// One client connection.
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    /// When it is closed whatever its state: [`REQUEST_DEADLINE`] after the accept while
    /// reading, as long again after the response was made while writing it.
    deadline: Instant,
    state: State,
}

enum State {
    /// The request head so far.
    Reading(Vec<u8>),
    /// The response, and how much of it the socket has taken.
    Writing(Vec<u8>, usize),
}

/// What one [`Connection::advance`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    /// Nothing to read or write.
    None,
    /// Read or wrote something; the exchange goes on.
    Some,
    /// The response is written: close.
    Finished,
}

impl Connection {
    /// Reads what has arrived, makes the response once the head is complete (or the client
    /// closed its side), and writes as much of it as the socket takes. Never blocks.
    fn advance(&mut self, view: &View<'_>) -> io::Result<Progress> {
        let mut progress = Progress::None;
        if let State::Reading(head) = &mut self.state {
            let mut buf = [0u8; 1024];
            let response = loop {
                match self.stream.read(&mut buf) {
                    // The client closed its side: answer what it sent.
                    Ok(0) => break respond(head, view),
                    Ok(n) => {
                        progress = Progress::Some;
                        head.extend_from_slice(&buf[..n]);
                        if head.len() > MAX_REQUEST {
                            break encode(&Response::text(431, "request too large"), false);
                        }
                        if head_complete(head) {
                            break respond(head, view);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(progress),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            self.state = State::Writing(response, 0);
            self.deadline = Instant::now() + REQUEST_DEADLINE;
        }
        let State::Writing(out, written) = &mut self.state else {
            unreachable!("a connection that is not reading is writing")
        };
        while *written < out.len() {
            match self.stream.write(&out[*written..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    progress = Progress::Some;
                    *written += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(progress),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Progress::Finished)
    }
}

/// Whether `head` holds a whole request head (a blank line; bare `\n` line ends accepted).
fn head_complete(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n")
}

/// The response bytes for a request head.
fn respond(head: &[u8], view: &View<'_>) -> Vec<u8> {
    let head = String::from_utf8_lossy(head);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let response = if target.is_empty() {
        Response::text(400, "bad request")
    } else {
        route(method, target, view)
    };
    encode(&response, method == "HEAD")
}

/// Status line, headers and (unless `head_only`) body.
fn encode(r: &Response, head_only: bool) -> Vec<u8> {
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
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    use super::*;

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
