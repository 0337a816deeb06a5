//! Log output: `--log-format text` (env_logger's lines) or `json` (one object per line), both
//! through `log` and filtered by `RUST_LOG` (default `info`).
//!
//! A JSON line has `ts` (RFC 3339 UTC, milliseconds), `level`, `target`, `message`, `thread`
//! and `fields` (the record's structured key-values, an object; the progress line carries its
//! counts there, most other lines have none):
//!
//! ```text
//! {"fields":{},"level":"INFO","message":"subscribed to user-login","target":"kafka_pipeline::pipeline::consumer","thread":"consumer","ts":"2026-11-25T18:40:12.123Z"}
//! ```
//!
//! No log line carries record contents: payloads and keys can be personal data (IP addresses,
//! device ids). Lines name records by topic, partition and offset only; the dead-letter topic
//! holds the bytes.

use std::io::Write as _;

use log::kv::{Key, Value as KvValue, VisitSource};
use serde_json::{Map, Value};

use crate::cli::LogFormat;

/// Installs the global logger.
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let ts = buf.timestamp_millis().to_string();
            writeln!(buf, "{}", json_line(record, &ts))
        });
        // A panic message would otherwise be the one plain-text line in the stream.
        std::panic::set_hook(Box::new(|info| {
            log::error!(target: "panic", "{info}");
        }));
    } else {
        // The text lines already say everything their fields carry.
        builder.format_key_values(env_logger::fmt::hidden_kv_format);
    }
    builder.init();
}

/// One log record as a JSON object on one line.
pub fn json_line(record: &log::Record<'_>, ts: &str) -> String {
    let mut fields = Fields(Map::new());
    // Visiting fails only if the visitor fails, which ours never does.
    let _ = record.key_values().visit(&mut fields);
    let thread = std::thread::current();
    let line = serde_json::json!({
        "ts": ts,
        "level": record.level().as_str(),
        "target": record.target(),
        "message": record.args().to_string(),
        "thread": thread.name().unwrap_or("unnamed"),
        "fields": Value::Object(fields.0),
    });
    line.to_string()
}

/// Collects a record's key-values as JSON (numbers and booleans keep their type).
struct Fields(Map<String, Value>);

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: KvValue<'kvs>) -> Result<(), log::kv::Error> {
        let json = if let Some(i) = value.to_i64() {
            Value::from(i)
        } else if let Some(u) = value.to_u64() {
            Value::from(u)
        } else if let Some(b) = value.to_bool() {
            Value::from(b)
        } else if let Some(f) = value.to_f64() {
            Value::from(f)
        } else {
            Value::from(value.to_string())
        };
        self.0.insert(key.as_str().to_owned(), json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_is_one_object_with_the_fields() {
        let kvs: [(&str, KvValue<'_>); 3] = [
            ("partition", KvValue::from(3i64)),
            ("topic", KvValue::from("user-login")),
            ("paused", KvValue::from(true)),
        ];
        let line = json_line(
            &log::Record::builder()
                .level(log::Level::Warn)
                .target("kafka_pipeline::pipeline::consumer")
                .args(format_args!("a \"quoted\"\nmessage"))
                .key_values(&kvs)
                .build(),
            "2026-11-25T18:40:12.123Z",
        );
        assert!(!line.contains('\n'), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ts"], "2026-11-25T18:40:12.123Z");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], "kafka_pipeline::pipeline::consumer");
        assert_eq!(v["message"], "a \"quoted\"\nmessage");
        assert_eq!(v["fields"]["partition"], 3);
        assert_eq!(v["fields"]["topic"], "user-login");
        assert_eq!(v["fields"]["paused"], true);
    }
}
