//! Dead-letter bytes as text a terminal can show safely: escaped, shortened, or re-indented
//! when they are JSON.
//!
//! Dead letters hold whatever arrived, so nothing is printed raw: control characters (a stray
//! ESC would drive the terminal) become `\n`, `\t`, `\u{1b}`; bytes that are not UTF-8 become
//! `\xNN`; a backslash becomes `\\`, so the escaped text is unambiguous. JSON is re-indented
//! token by token rather than parsed into a value and printed again, so key order, duplicate
//! keys and the exact spelling of numbers stay as they arrived: the point is to see the record.

use crate::transform::{Rfc3339, MAX_TIMESTAMP};

/// `bytes` escaped (see the module doc), cut after `max_chars` characters of output with `…`.
pub fn escape(bytes: &[u8], max_chars: usize) -> String {
    let mut out = String::new();
    let mut chars = 0;
    let mut push = |piece: &str, out: &mut String| -> bool {
        if chars + piece.chars().count() > max_chars {
            out.push('…');
            return false;
        }
        chars += piece.chars().count();
        out.push_str(piece);
        true
    };
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let piece = match c {
                '\\' => "\\\\".to_owned(),
                '\n' => "\\n".to_owned(),
                '\r' => "\\r".to_owned(),
                '\t' => "\\t".to_owned(),
                c if c.is_control() || is_invisible_format(c) => {
                    format!("\\u{{{:x}}}", c as u32)
                }
                c => c.to_string(),
            };
            if !push(&piece, &mut out) {
                return out;
            }
        }
        for b in chunk.invalid() {
            if !push(&format!("\\x{b:02x}"), &mut out) {
                return out;
            }
        }
    }
    out
}

/// Characters that reorder or hide text on a terminal (bidirectional overrides and isolates,
/// zero-width joiners): shown escaped like control characters.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// A record value for one line: `(null)` for a tombstone, `(empty)` for zero bytes, else
/// escaped and cut to `max_chars`.
pub fn value_line(value: Option<&[u8]>, max_chars: usize) -> String {
    match value {
        None => "(null)".to_owned(),
        Some([]) => "(empty)".to_owned(),
        Some(v) => escape(v, max_chars),
    }
}

/// Values up to this size are re-indented when they are JSON; larger ones are shown on one
/// shortened line.
pub const PRETTY_MAX_BYTES: usize = 16 * 1024;

/// `value` re-indented with two spaces per level when it is JSON (valid UTF-8 that serde_json
/// accepts) no larger than [`PRETTY_MAX_BYTES`]; `None` otherwise.
pub fn pretty_json(value: &[u8]) -> Option<String> {
    if value.len() > PRETTY_MAX_BYTES {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    Some(reindent(text))
}

/// Re-indents valid JSON text: whitespace outside strings is dropped and written anew, strings
/// and numbers are copied as they are.
fn reindent(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let mut depth = 0usize;
    let mut chars = json.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push('"');
                let mut escaped = false;
                for c in chars.by_ref() {
                    out.push(c);
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => {}
                    }
                }
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.extend(chars.next());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// A timestamp in ms as RFC 3339 UTC to the second, `-` when absent or out of range.
pub fn time_ms(ms: Option<i64>) -> String {
    match ms {
        Some(ms) if ms >= 0 && (ms / 1000) as u64 <= MAX_TIMESTAMP => {
            Rfc3339::from_unix((ms / 1000) as u64).as_str().to_owned()
        }
        _ => "-".to_owned(),
    }
}

/// A rate in the largest unit that keeps it at or above 1: `12.5/s`, `3.0/min`, `0.4/h`.
pub fn rate(per_second: f64) -> String {
    if per_second >= 1.0 {
        format!("{per_second:.1}/s")
    } else if per_second * 60.0 >= 1.0 {
        format!("{:.1}/min", per_second * 60.0)
    } else {
        format!("{:.1}/h", per_second * 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_invalid_bytes_and_backslashes() {
        assert_eq!(escape(b"plain text", 100), "plain text");
        assert_eq!(escape(b"a\nb\tc\\d", 100), "a\\nb\\tc\\\\d");
        assert_eq!(escape(b"\x1b[31mred\x00", 100), "\\u{1b}[31mred\\u{0}");
        assert_eq!(escape(b"ok\xff\xfeok", 100), "ok\\xff\\xfeok");
        assert_eq!(escape("é \u{202e}x".as_bytes(), 100), "é \\u{202e}x");
        // Overlong encoding and a truncated sequence are bytes, not characters.
        assert_eq!(escape(b"\xc0\xaf", 100), "\\xc0\\xaf");
        assert_eq!(escape(b"\xe2\x82", 100), "\\xe2\\x82");
    }

    #[test]
    fn shortens_to_the_limit_without_splitting_an_escape() {
        assert_eq!(escape(b"abcdef", 3), "abc…");
        assert_eq!(escape(b"ab\ncd", 3), "ab…");
        assert_eq!(escape(b"ab\xffcd", 4), "ab…");
        assert_eq!(escape(b"abc", 3), "abc");
        assert_eq!(escape("ééé".as_bytes(), 2), "éé…");
    }

    #[test]
    fn value_line_names_null_and_empty() {
        assert_eq!(value_line(None, 10), "(null)");
        assert_eq!(value_line(Some(b""), 10), "(empty)");
        assert_eq!(value_line(Some(b"{\"a\":1}"), 5), "{\"a\":…");
    }

    #[test]
    fn pretty_json_keeps_order_duplicates_and_numbers() {
        let v = br#"{"b":1,"a":[1e400, {}, [ ]],"b":"x,\"y\": {z}","n":{"m":null}}"#;
        assert_eq!(
            pretty_json(v).unwrap(),
            r#"{
  "b": 1,
  "a": [
    1e400,
    {},
    []
  ],
  "b": "x,\"y\": {z}",
  "n": {
    "m": null
  }
}"#
        );
        assert_eq!(pretty_json(b"42").as_deref(), Some("42"));
        assert_eq!(pretty_json(b"{\"a\": 1"), None, "truncated");
        assert_eq!(pretty_json(b"{\"a\": \"\xff\"}"), None, "not UTF-8");
        assert_eq!(pretty_json(b"not json"), None);
        let big = format!("[{}1]", "1,".repeat(PRETTY_MAX_BYTES));
        assert_eq!(pretty_json(big.as_bytes()), None, "too large to indent");
    }

    #[test]
    fn times_and_rates() {
        assert_eq!(time_ms(Some(1_720_589_697_123)), "2024-07-10T05:34:57Z");
        assert_eq!(time_ms(None), "-");
        assert_eq!(time_ms(Some(-1)), "-");
        assert_eq!(rate(12.34), "12.3/s");
        assert_eq!(rate(0.05), "3.0/min");
        assert_eq!(rate(1.0 / 7200.0), "0.5/h");
    }
}
