//! `dlq show`: dead letters one block each — position, reason, source position, replay count,
//! key, original headers and value (re-indented when it is JSON, escaped and shortened when it
//! is not; see [`super::render`]).

use std::fmt::Write as _;

use super::letter::{DeadLetter, ERROR_HEADER_PREFIX};
use super::render::{escape, pretty_json, time_ms, value_line};

/// Characters of a non-JSON value shown.
pub const VALUE_CHARS: usize = 300;
/// Characters of a key or header value shown.
const SHORT_CHARS: usize = 80;
/// Width of the label column.
const LABEL: usize = 9;

/// One dead letter as a block of lines (each ending in a newline).
pub fn render(letter: &DeadLetter<'_>, topic: &str) -> String {
    let mut out = String::new();
    let mut line = |label: &str, text: &str| {
        let _ = writeln!(out, "{label:<LABEL$}{text}");
    };
    line(
        "──",
        &format!(
            "{topic} {}/{}  {}",
            letter.partition,
            letter.offset,
            time_ms(letter.timestamp_ms)
        ),
    );
    match letter.code() {
        Some(code) => {
            let mut detail = Vec::new();
            if let Some(field) = letter.field() {
                detail.push(format!("field {field}"));
            }
            if let Some(stage) = letter.stage() {
                detail.push(format!("stage {stage}"));
            }
            let detail = if detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", detail.join(", "))
            };
            line("code", &format!("{code}{detail}"));
            if let Some(message) = letter.message() {
                line("reason", &escape(message.as_bytes(), VALUE_CHARS));
            }
            if let Some(s) = letter.source() {
                let ts = s
                    .timestamp_ms
                    .map_or_else(String::new, |t| format!(", {}", time_ms(Some(t))));
                line(
                    "source",
                    &format!("{} {}/{}{ts}", s.topic, s.partition, s.offset),
                );
            }
        }
        None => line(
            "code",
            &format!("(none): not the pipeline's dead letter (no {ERROR_HEADER_PREFIX}* headers)"),
        ),
    }
    let replays = letter.replay_count();
    if replays > 0 {
        let from = letter
            .replayed_from()
            .map_or_else(String::new, |(t, p, o)| format!(", last from {t} {p}/{o}"));
        let times = if replays == 1 { "time" } else { "times" };
        line("replayed", &format!("{replays} {times}{from}"));
    }
    line("key", &value_line(letter.key, SHORT_CHARS));
    let headers: Vec<String> = letter
        .original_headers()
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                escape(k.as_bytes(), SHORT_CHARS),
                value_line(*v, SHORT_CHARS)
            )
        })
        .collect();
    if !headers.is_empty() {
        line("headers", &headers.join(", "));
    }
    let value = match letter.value.and_then(pretty_json) {
        Some(pretty) => pretty.replace('\n', &format!("\n{:LABEL$}", "")),
        None => {
            let mut text = value_line(letter.value, VALUE_CHARS);
            if let Some(v) = letter
                .value
                .filter(|v| text.ends_with('…') && !v.is_empty())
            {
                let _ = write!(text, " ({} bytes)", v.len());
            }
            text
        }
    };
    line("value", &value);
    out
}

#[cfg(test)]
mod tests {
    use super::super::letter::tests::letter;
    use super::super::letter::{
        HEADER_REPLAY_COUNT, HEADER_REPLAY_DLQ_OFFSET, HEADER_REPLAY_DLQ_PARTITION,
        HEADER_REPLAY_DLQ_TOPIC,
    };
    use super::*;

    #[test]
    fn a_pipeline_letter_shows_reason_source_and_pretty_value() {
        let l = letter(17, &[("trace", Some(b"t\x001")), ("empty", None)]);
        assert_eq!(
            render(&l, "dlq"),
            "\
──       dlq 0/17  2024-07-10T05:35:00Z
code     missing_field (field device_type, stage validate)
reason   field `device_type` is missing
source   user-login 2/345, 2024-07-10T05:34:57Z
key      k
headers  trace=t\\u{0}1, empty=(null)
value    {
           \"user_id\": \"u1\"
         }
"
        );
    }

    #[test]
    fn a_replayed_letter_shows_its_count() {
        let l = letter(
            3,
            &[
                (HEADER_REPLAY_DLQ_TOPIC, Some(b"dlq")),
                (HEADER_REPLAY_DLQ_PARTITION, Some(b"0")),
                (HEADER_REPLAY_DLQ_OFFSET, Some(b"1")),
                (HEADER_REPLAY_COUNT, Some(b"2")),
            ],
        );
        let text = render(&l, "dlq");
        assert!(
            text.contains("\nreplayed 2 times, last from dlq 0/1\n"),
            "{text}"
        );
    }

    #[test]
    fn a_foreign_record_with_a_long_binary_value_is_escaped_and_cut() {
        let value: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let l = DeadLetter {
            partition: 1,
            offset: 0,
            timestamp_ms: None,
            key: None,
            value: Some(&value),
            headers: vec![],
        };
        let text = render(&l, "dlq");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "──       dlq 1/0  -");
        assert!(
            lines[1].starts_with("code     (none): not the pipeline's"),
            "{text}"
        );
        assert_eq!(lines[2], "key      (null)");
        assert!(lines[3].starts_with("value    \\u{0}\\u{1}"), "{text}");
        assert!(lines[3].ends_with("… (1000 bytes)"), "{text}");
        assert!(!text.contains('\u{1b}'), "no raw control characters");
        assert_eq!(lines.len(), 4);
    }
}
