//! The metrics endpoint under slow, idle and hostile clients, over real sockets on 127.0.0.1
//! (no broker needed): trickling and idle connections do not delay `/health`, a trickling
//! client is cut off at the request deadline, the oldest connection makes room for a new one
//! beyond the cap, and `serve` returns promptly when stopped.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kafka_pipeline::shutdown::Shutdown;
use kafka_pipeline::testing::internals::Metrics;
use kafka_pipeline::testing::internals::{MetricsServer, View, MAX_CONNECTIONS, REQUEST_DEADLINE};

/// Sets the flag when dropped, so that a failing assertion stops the threads it would
/// otherwise leave the scope waiting for.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs a server on a free port for the length of `f`, then stops it and returns how long
/// `serve` took to return after the stop flag was set.
fn with_server(f: impl FnOnce(SocketAddr)) -> Duration {
    let metrics = Metrics::new(1, Duration::from_secs(60));
    let shutdown = Shutdown::new();
    let view = View {
        metrics: &metrics,
        shutdown: &shutdown,
        topics: ["out", "dlq", "insights"],
        input_topic: "in",
    };
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let serving = scope.spawn(|| server.serve(&view, &stop));
        let stopping = SetOnDrop(&stop);
        f(addr);
        let stopped = Instant::now();
        drop(stopping);
        serving.join().unwrap();
        stopped.elapsed()
    })
}

/// One `GET path` on a fresh connection: status line and how long it took from connect to
/// the end of the response.
fn get(addr: SocketAddr, path: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .unwrap();
    let mut text = String::new();
    let status = match c.read_to_string(&mut text) {
        Ok(_) => text.lines().next().unwrap_or("").to_owned(),
        Err(e) => format!("error: {e}"),
    };
    (status, started.elapsed())
}

/// Blocks until the server closes `c` (end of stream or reset) and returns when that was, or
/// `None` if it was still open after `limit`.
fn closed_within(c: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    c.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return Some(started.elapsed())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Sends one more byte of an endless request head on each connection every `every` until
/// `stop`; write errors (the server closed it) are ignored.
fn trickle(conns: &mut [TcpStream], every: Duration, stop: &AtomicBool) {
    let head = b"GET /health HTTP/1.1\r\nX-Slow: ";
    let mut sent = 1;
    while !stop.load(Ordering::Relaxed) {
        let byte = head.get(sent).copied().unwrap_or(b'a');
        for c in conns.iter_mut() {
            let _ = c.write_all(&[byte]);
        }
        sent += 1;
        let next = Instant::now() + every;
        while !stop.load(Ordering::Relaxed) && Instant::now() < next {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Failed before the endpoint had deadlines and concurrency: it served one connection at a
/// time with a 2 s timeout per read, so every probe here timed out.
#[test]
fn health_answers_quickly_beside_trickling_and_idle_clients() {
    let stop_trickle = AtomicBool::new(false);
    with_server(|addr| {
        let mut trickling: Vec<TcpStream> = (0..50)
            .map(|_| {
                let mut c = TcpStream::connect(addr).unwrap();
                c.write_all(b"G").unwrap();
                c
            })
            .collect();
        let idle: Vec<TcpStream> = (0..200)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::scope(|scope| {
            scope.spawn(|| trickle(&mut trickling, Duration::from_millis(1500), &stop_trickle));
            let _stop_trickle = SetOnDrop(&stop_trickle);
            // 20 probes over about 3 s: across trickled bytes and the bad clients' deadline.
            let mut slowest = Duration::ZERO;
            for i in 0..20 {
                let (status, took) = get(addr, "/health");
                assert_eq!(status, "HTTP/1.1 200 OK", "probe {i}");
                assert!(took < Duration::from_millis(200), "probe {i} took {took:?}");
                slowest = slowest.max(took);
                std::thread::sleep(Duration::from_millis(150));
            }
            eprintln!("slowest of 20 /health probes beside 50 trickling and 200 idle clients: {slowest:?}");
        });
        drop(idle);
    });
}

/// Failed before: a byte every 1.5 s kept each 2 s read timeout from firing, so the client held
/// the endpoint for as long as it liked.
#[test]
fn a_trickling_client_is_cut_off_at_the_deadline() {
    let stop_trickle = AtomicBool::new(false);
    with_server(|addr| {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"G").unwrap();
        let mut reader = c.try_clone().unwrap();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                trickle(
                    std::slice::from_mut(&mut c),
                    Duration::from_millis(1500),
                    &stop_trickle,
                )
            });
            let _stop_trickle = SetOnDrop(&stop_trickle);
            let closed = closed_within(&mut reader, Duration::from_secs(5));
            let closed = closed.expect("a trickling client still connected after 5 s");
            assert!(
                closed >= REQUEST_DEADLINE - Duration::from_millis(100)
                    && closed < REQUEST_DEADLINE + Duration::from_millis(500),
                "closed after {closed:?}, deadline {REQUEST_DEADLINE:?}"
            );
        });
    });
}

/// Beyond the cap, the oldest connection is closed and the new one is served.
#[test]
fn the_oldest_connection_makes_room_for_a_new_one() {
    with_server(|addr| {
        let mut idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        // Let the server accept them all before the one over the cap.
        std::thread::sleep(Duration::from_millis(100));
        let (status, took) = get(addr, "/health");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(took < Duration::from_millis(200), "took {took:?}");
        assert!(
            closed_within(&mut idle[0], Duration::from_millis(500)).is_some(),
            "the oldest idle connection is still open"
        );
        assert_eq!(
            closed_within(&mut idle[MAX_CONNECTIONS - 1], Duration::from_millis(100)),
            None,
            "the newest idle connection was closed"
        );
    });
}

/// Failed before: `serve` sat in a blocking read of the open connection for up to 2 s.
#[test]
fn serve_returns_promptly_when_stopped() {
    let mut conns = Vec::new();
    let took = with_server(|addr| {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /hea").unwrap();
        conns.push(c);
        std::thread::sleep(Duration::from_millis(100));
    });
    assert!(
        took < Duration::from_millis(100),
        "serve took {took:?} to stop"
    );
    assert!(
        closed_within(&mut conns[0], Duration::from_millis(500)).is_some(),
        "the open connection was not closed when the server stopped"
    );
}
