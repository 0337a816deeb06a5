//! Fixtures for the tests, the benchmarks and the fault suite's helper; not part of the
//! program's interface.
//!
//! - [`Login`] builds a login event's JSON field by field: a valid event by default, then a
//!   setter per field, missing fields, raw JSON values (wrong types, odd numbers, bytes that
//!   are not UTF-8) and extra or duplicate members. It writes what Python's `json.dumps` writes
//!   (`", "` and `": "` between members, the fields in the original producer's order), so a
//!   fixture reads like the original feed.
//! - [`corpus`] reads the bad-input corpus in `tests/data/`: every `invalid/<code>--<what>` file
//!   with the error code its name starts with, and every line of `valid.jsonl`.

#![doc(hidden)]

use std::fmt;
use std::path::{Path, PathBuf};

use crate::transform::ErrorCode;

/// A login event as JSON members (key, raw JSON value), in order.
///
/// [`Login::default`] is a valid event:
/// `{"user_id": "u1", "app_version": "2.3.0", "ip": "10.0.0.1", "locale": "WA", "device_id":
/// "d1", "timestamp": 1720589697, "device_type": "iOS"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    members: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Default for Login {
    fn default() -> Self {
        Login { members: vec![] }
            .user_id("u1")
            .app_version("2.3.0")
            .ip("10.0.0.1")
            .locale("WA")
            .device_id("d1")
            .timestamp(1_720_589_697)
            .device_type("iOS")
    }
}

impl Login {
    /// Sets `user_id` to the string `value`.
    pub fn user_id(self, value: &str) -> Self {
        self.string("user_id", value)
    }

    /// Sets `app_version` to the string `value`.
    pub fn app_version(self, value: &str) -> Self {
        self.string("app_version", value)
    }

    /// Sets `ip` to the string `value`.
    pub fn ip(self, value: &str) -> Self {
        self.string("ip", value)
    }

    /// Sets `locale` to the string `value`.
    pub fn locale(self, value: &str) -> Self {
        self.string("locale", value)
    }

    /// Sets `device_id` to the string `value`.
    pub fn device_id(self, value: &str) -> Self {
        self.string("device_id", value)
    }

    /// Sets `timestamp` to the number `value` (a string or another type: [`Login::raw`]).
    pub fn timestamp(self, value: u64) -> Self {
        self.raw("timestamp", value.to_string())
    }

    /// Sets `device_type` to the string `value`.
    pub fn device_type(self, value: &str) -> Self {
        self.string("device_type", value)
    }

    /// Sets `key` to the string `value`, or leaves the member out when `value` is `None`.
    pub fn maybe(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.string(key, v),
            None => self.without(key),
        }
    }

    /// Sets `key` to the string `value` (JSON-escaped).
    pub fn string(self, key: &str, value: &str) -> Self {
        let json = serde_json::to_string(value).expect("a string serializes");
        self.raw(key, json)
    }

    /// Sets `key` to `json` as written (any bytes: not checked, not escaped), in the member's
    /// place, or as a new last member.
    pub fn raw(mut self, key: &str, json: impl AsRef<[u8]>) -> Self {
        let json = json.as_ref().to_vec();
        match self.members.iter_mut().find(|(k, _)| k == key.as_bytes()) {
            Some(member) => member.1 = json,
            None => self.members.push((key.as_bytes().to_vec(), json)),
        }
        self
    }

    /// Adds a last member `key: json`, both as written, even if `key` is there already (a
    /// duplicate field, an unknown field, a key that is not UTF-8).
    pub fn append(mut self, key: impl AsRef<[u8]>, json: impl AsRef<[u8]>) -> Self {
        self.members
            .push((key.as_ref().to_vec(), json.as_ref().to_vec()));
        self
    }

    /// Leaves out every member `key`.
    pub fn without(mut self, key: &str) -> Self {
        self.members.retain(|(k, _)| k != key.as_bytes());
        self
    }

    /// The JSON text: `{"key": value, …}`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![b'{'];
        for (i, (key, json)) in self.members.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.push(b'"');
            out.extend_from_slice(key);
            out.extend_from_slice(b"\": ");
            out.extend_from_slice(json);
        }
        out.push(b'}');
        out
    }
}

/// The JSON text, with any bytes that are not UTF-8 replaced (for messages).
impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// The corpus of this source tree: `tests/data/`.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// One input of the corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusCase {
    /// The file name for `invalid/` files (`invalid_json--nan.json`), `valid.jsonl:<line index>`
    /// for the valid lines.
    pub name: String,
    /// The file's bytes, or the line.
    pub payload: Vec<u8>,
    /// The code the file name starts with; `None` for a valid line.
    pub expected: Option<ErrorCode>,
}

impl CorpusCase {
    /// `valid` or the expected error code, as the `loadgen.expect` header spells it.
    pub fn expectation(&self) -> &'static str {
        self.expected.map_or("valid", ErrorCode::as_str)
    }
}

/// Every case of the corpus in `dir`: the files of `dir/invalid/` in name order, then the
/// lines of `dir/valid.jsonl`. A file whose name does not start with an error code (`<code>--`)
/// is an error.
pub fn read_corpus(dir: &Path) -> Result<Vec<CorpusCase>, String> {
    let invalid = dir.join("invalid");
    let mut files = std::fs::read_dir(&invalid)
        .and_then(|entries| {
            entries
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| format!("reading {}: {e}", invalid.display()))?;
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let Some(code) = name.split("--").next().and_then(ErrorCode::parse) else {
            return Err(format!(
                "{}: the name does not start with an error code (<code>--<what>)",
                path.display()
            ));
        };
        let payload =
            std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        cases.push(CorpusCase {
            name,
            payload,
            expected: Some(code),
        });
    }
    let valid = dir.join("valid.jsonl");
    let lines =
        std::fs::read_to_string(&valid).map_err(|e| format!("reading {}: {e}", valid.display()))?;
    cases.extend(lines.lines().enumerate().map(|(i, line)| CorpusCase {
        name: format!("valid.jsonl:{i}"),
        payload: line.as_bytes().to_vec(),
        expected: None,
    }));
    Ok(cases)
}

/// The corpus of this source tree ([`corpus_dir`]); panics when it cannot be read.
pub fn corpus() -> Vec<CorpusCase> {
    read_corpus(&corpus_dir()).unwrap_or_else(|e| panic!("{e}"))
}

/// The pipeline's internals that the benchmarks and integration tests drive directly: the
/// worker stage without threads or Kafka, the offset tracker, the counters, the HTTP server.
/// The modules that define them are private to the crate; this is the one door in.
pub mod internals {
    pub use crate::pipeline::consumer::BATCH_RECORDS;
    pub use crate::pipeline::messages::{BatchPools, InputBatch, Source};
    pub use crate::pipeline::offsets::OffsetTracker;
    pub use crate::pipeline::watermark::EventClock;
    pub use crate::pipeline::worker::{process_batch, WorkerShared, WorkerWindows};
    pub use crate::telemetry::http::{MetricsServer, View, MAX_CONNECTIONS, REQUEST_DEADLINE};
    pub use crate::telemetry::metrics::{Metrics, WorkerTally};
}
