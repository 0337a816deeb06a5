//! The shutdown signal shared by the pipeline's threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Set once, by a signal handler or by the pipeline itself; read by every stage.
#[derive(Debug, Default)]
pub struct Shutdown {
    requested: AtomicBool,
    deadline: Mutex<Option<Instant>>,
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the pipeline to stop, finishing within `grace`. Returns false if shutdown had
    /// already been requested (the first deadline stands).
    pub fn request(&self, grace: Duration) -> bool {
        let mut deadline = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        let first = !self.requested.swap(true, Ordering::SeqCst);
        if first {
            *deadline = Some(Instant::now() + grace);
        }
        first
    }

    /// Asks the pipeline to stop within `grace` at the latest: like [`Shutdown::request`], but
    /// an earlier request's later deadline is brought forward (a failed stage leaves nothing
    /// worth the whole shutdown timeout).
    pub fn request_within(&self, grace: Duration) {
        self.request(grace);
        let mut deadline = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        let by = Instant::now() + grace;
        if deadline.is_none_or(|d| d > by) {
            *deadline = Some(by);
        }
    }

    /// Whether shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// When the shutdown must be finished, once requested.
    pub fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Time left before the deadline (zero when passed; `None` before shutdown).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Whether the deadline has passed.
    pub fn overdue(&self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_request_sets_the_deadline() {
        let s = Shutdown::new();
        assert!(!s.is_requested());
        assert_eq!(s.remaining(), None);
        assert!(s.request(Duration::from_secs(30)));
        let d = s.deadline().unwrap();
        assert!(!s.request(Duration::ZERO), "second request changes nothing");
        assert_eq!(s.deadline(), Some(d));
        assert!(!s.overdue());
        let s = Shutdown::new();
        s.request(Duration::ZERO);
        assert!(s.overdue());
        let s = Shutdown::new();
        s.request(Duration::from_secs(30));
        s.request_within(Duration::from_secs(2));
        assert!(
            s.remaining().unwrap() <= Duration::from_secs(2),
            "brought forward"
        );
        s.request_within(Duration::from_secs(10));
        assert!(
            s.remaining().unwrap() <= Duration::from_secs(2),
            "never later"
        );
    }
}
