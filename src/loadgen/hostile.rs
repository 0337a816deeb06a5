//! Hostile input: every kind of bad record the pipeline must survive, each built from a valid
//! event and labelled with the [`ErrorCode`] the pipeline must give it, plus valid-but-odd events
//! it must accept.
//!
//! A bad record carries exactly one defect, so its code is unambiguous: the rest of the event is
//! valid. The module tests of `loadgen` run every record through the real
//! [`crate::transform::Transformer`] to prove the labels.

use super::profiles::Event;
use super::rng::Rng;
use crate::transform::ErrorCode;

/// The schema's fields, in the Python feed's order.
const FIELDS: [&str; 7] = [
    "user_id",
    "app_version",
    "ip",
    "locale",
    "device_id",
    "timestamp",
    "device_type",
];

/// The kinds of bad record, one per way a producer can get it wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadKind {
    /// A valid event cut short.
    Truncated,
    /// Not JSON: single quotes, trailing commas, comments, NaN, a BOM, two values, bad escapes.
    Malformed,
    /// Valid JSON that is not an object: array, string, number, `null`, boolean.
    NotAnObject,
    /// A schema field of the wrong JSON type.
    WrongType,
    /// A schema field of the right type with an unacceptable value.
    BadValue,
    /// A schema field absent or `null`.
    MissingField,
    /// A schema field present twice.
    DuplicateField,
    /// A zero-byte value.
    EmptyPayload,
    /// A null value (tombstone).
    Tombstone,
    /// Bytes that are not UTF-8 inside a string.
    InvalidUtf8,
    /// Thousands of nested arrays or objects inside an unknown field.
    TooDeep,
    /// Numbers no parser can hold (`1e400`, 30-digit integers).
    HugeNumber,
    /// A payload of `--oversize-bytes`.
    Oversize,
}

impl BadKind {
    /// Every kind.
    pub const ALL: [BadKind; 13] = [
        BadKind::Truncated,
        BadKind::Malformed,
        BadKind::NotAnObject,
        BadKind::WrongType,
        BadKind::BadValue,
        BadKind::MissingField,
        BadKind::DuplicateField,
        BadKind::EmptyPayload,
        BadKind::Tombstone,
        BadKind::InvalidUtf8,
        BadKind::TooDeep,
        BadKind::HugeNumber,
        BadKind::Oversize,
    ];

    /// The kinds that cost no more than a valid event to build, send and parse (no deep nesting,
    /// no oversize payload): what the realistic profile mixes in.
    pub const CHEAP: [BadKind; 11] = [
        BadKind::Truncated,
        BadKind::Malformed,
        BadKind::NotAnObject,
        BadKind::WrongType,
        BadKind::BadValue,
        BadKind::MissingField,
        BadKind::DuplicateField,
        BadKind::EmptyPayload,
        BadKind::Tombstone,
        BadKind::InvalidUtf8,
        BadKind::HugeNumber,
    ];

    /// The code the pipeline must dead-letter this kind with. `Oversize` is `too_large` only
    /// when `--oversize-bytes` exceeds the pipeline's `--max-payload-bytes`.
    pub fn code(self) -> ErrorCode {
        match self {
            BadKind::Truncated | BadKind::Malformed | BadKind::HugeNumber => ErrorCode::InvalidJson,
            BadKind::NotAnObject => ErrorCode::NotAnObject,
            BadKind::WrongType => ErrorCode::InvalidType,
            BadKind::BadValue => ErrorCode::InvalidValue,
            BadKind::MissingField => ErrorCode::MissingField,
            BadKind::DuplicateField => ErrorCode::DuplicateField,
            BadKind::EmptyPayload => ErrorCode::EmptyPayload,
            BadKind::Tombstone => ErrorCode::Tombstone,
            BadKind::InvalidUtf8 => ErrorCode::InvalidUtf8,
            BadKind::TooDeep => ErrorCode::TooDeep,
            BadKind::Oversize => ErrorCode::TooLarge,
        }
    }
}

/// Builds a record value of `kind` from a valid event (which must have a `device_type`).
pub fn bad_value(
    kind: BadKind,
    rng: &mut Rng,
    event: &Event,
    oversize_bytes: usize,
) -> Option<Vec<u8>> {
    let mut doc = Doc::of(event);
    let value = match kind {
        BadKind::Truncated => {
            let full = doc.render(Style::pick(rng));
            let cut = rng.range(1, full.len() as u64 - 1) as usize;
            full[..cut].to_vec()
        }
        BadKind::Malformed => malformed(rng, doc),
        BadKind::NotAnObject => not_an_object(rng, &doc),
        BadKind::WrongType => {
            let field = *rng.pick(&FIELDS);
            let raw = if field == "timestamp" {
                rng.pick(&[
                    "true",
                    "1720589697.5",
                    "1.7e9",
                    "[1720589697]",
                    r#"{"s": 1}"#,
                ])
            } else {
                rng.pick(&[
                    "12345",
                    "true",
                    "false",
                    "-1.5",
                    r#"["x"]"#,
                    "[]",
                    r#"{"v": "x"}"#,
                ])
            };
            doc.set(field, raw.as_bytes());
            doc.render(Style::pick(rng))
        }
        BadKind::BadValue => {
            let long = format!("\"{}\"", "u".repeat(300));
            let bad: [(&str, &str); 20] = [
                ("locale", r#""ZZZ""#),
                ("locale", r#""1A""#),
                ("locale", r#""""#),
                ("locale", r#""Washington""#),
                ("ip", r#""999.1.1.1""#),
                ("ip", r#""localhost""#),
                ("ip", r#""1.2.3""#),
                ("ip", r#"" ""#),
                ("timestamp", "-1"),
                ("timestamp", "1720589697000"), // milliseconds, not seconds
                ("timestamp", "99999999999999"),
                ("timestamp", r#""17x""#),
                ("timestamp", r#""""#),
                ("timestamp", r#""-5""#),
                ("app_version", r#""v2.3""#),
                ("app_version", r#""2..3""#),
                ("app_version", r#""latest""#),
                ("user_id", r#""   ""#),
                ("user_id", &long),
                ("device_type", r#""""#),
            ];
            let (field, raw) = rng.pick(&bad);
            doc.set(field, raw.as_bytes());
            doc.render(Style::pick(rng))
        }
        BadKind::MissingField => {
            let field = *rng.pick(&FIELDS);
            if rng.chance(0.75) {
                doc.remove(field);
            } else {
                doc.set(field, b"null");
            }
            doc.render(Style::pick(rng))
        }
        BadKind::DuplicateField => {
            let i = rng.index(doc.0.len());
            let member = doc.0[i].clone();
            if rng.chance(0.5) {
                doc.0.push(member);
            } else {
                doc.0.insert(0, member);
            }
            doc.render(Style::pick(rng))
        }
        BadKind::EmptyPayload => Vec::new(),
        BadKind::Tombstone => return None,
        BadKind::InvalidUtf8 => invalid_utf8(rng, doc),
        BadKind::TooDeep => {
            let depth = rng.range(2000, 5000) as usize;
            let nested = if rng.chance(0.5) {
                [&b"[".repeat(depth)[..], b"1", &b"]".repeat(depth)].concat()
            } else {
                [&br#"{"a": "#.repeat(depth)[..], b"1", &b"}".repeat(depth)].concat()
            };
            doc.push("context", nested);
            doc.render(Style::Python)
        }
        BadKind::HugeNumber => {
            let huge = *rng.pick(&[
                "1e400",
                "-1e400",
                "123456789012345678901234567890",
                "-98765432109876543210987654321",
            ]);
            if rng.chance(0.25) {
                doc.set("timestamp", huge.as_bytes());
            } else {
                doc.push("big", huge.as_bytes().to_vec());
            }
            doc.render(Style::pick(rng))
        }
        BadKind::Oversize => oversize(&doc, oversize_bytes),
    };
    Some(value)
}

fn malformed(rng: &mut Rng, mut doc: Doc) -> Vec<u8> {
    let text = doc.render(Style::Python);
    match rng.below(11) {
        0 => text
            .iter()
            .map(|&b| if b == b'"' { b'\'' } else { b })
            .collect(),
        1 => [&text[..text.len() - 1], b", }"].concat(), // trailing comma
        2 => {
            // Keys without quotes, as JavaScript would write them.
            let members: Vec<Vec<u8>> = doc
                .0
                .iter()
                .map(|m| [m.name.as_bytes(), b": ", &m.value].concat())
                .collect();
            [&b"{"[..], &members.join(&b", "[..]), b"}"].concat()
        }
        3 => {
            // A missing comma between the first two members.
            let at = find(&text, b"\", \"").expect("members are separated by \", \"");
            [&text[..at + 1], b" ", &text[at + 3..]].concat()
        }
        4 => rng
            .pick(&[
                "not json",
                "<login user=\"42\"/>",
                "user_id=42&ip=1.2.3.4",
                "{",
                "}",
                "undefined",
            ])
            .as_bytes()
            .to_vec(),
        5 => [&text[..], b" ", &text].concat(), // two values
        6 => [&b"\xef\xbb\xbf"[..], &text].concat(), // byte-order mark
        7 => {
            doc.push(
                "score",
                rng.pick(&["NaN", "Infinity", "True", "undefined"])
                    .as_bytes()
                    .to_vec(),
            );
            doc.render(Style::Python)
        }
        8 => [&b"/* login */ "[..], &text].concat(),
        9 => {
            doc.set(
                "user_id",
                rng.pick(&[r#""\x41bc""#, r#""\q""#, r#""\u12G4""#])
                    .as_bytes(),
            );
            doc.render(Style::Python)
        }
        _ => {
            doc.set(
                "timestamp",
                rng.pick(&["01720589697", "0x66900000", "+1720589697"])
                    .as_bytes(),
            );
            doc.render(Style::Python)
        }
    }
}

fn not_an_object(rng: &mut Rng, doc: &Doc) -> Vec<u8> {
    let text = doc.render(Style::Python);
    match rng.below(6) {
        0 => [&b"["[..], &text, b"]"].concat(),
        // The event encoded twice, as a JSON string: a classic producer bug.
        1 => serde_json::to_vec(&String::from_utf8_lossy(&text)).expect("a string serializes"),
        2 => rng
            .pick(&["42", "1720589697", "-3.5e2"])
            .as_bytes()
            .to_vec(),
        3 => b"null".to_vec(),
        4 => rng.pick(&["true", "false"]).as_bytes().to_vec(),
        _ => b"[]".to_vec(),
    }
}

fn invalid_utf8(rng: &mut Rng, mut doc: Doc) -> Vec<u8> {
    let bad = *rng.pick::<&[u8]>(&[
        b"\xff\xfe",
        b"\xc3\x28",         // a lead byte without its continuation
        b"\x80",             // a lone continuation byte
        b"\xed\xa0\x80",     // an encoded surrogate
        b"\xc0\xaf",         // an overlong '/'
        b"\xf8\x88\x80\x80", // a five-byte lead
    ]);
    match rng.below(3) {
        0 => {
            let field = *rng.pick(&["user_id", "device_id", "device_type"]);
            let value = doc
                .get(field)
                .expect("valid events have every field")
                .to_vec();
            doc.set(field, &[&value[..2], bad, &value[2..]].concat());
        }
        // Latin-1 text where UTF-8 was expected.
        1 => doc.push("city", [&b"\"Sa"[..], bad, b"o Paulo\""].concat()),
        _ => doc.push_raw_key([&b"\"n"[..], bad, b"te\""].concat(), b"1".to_vec()),
    }
    doc.render(Style::pick(rng))
}

fn oversize(doc: &Doc, size: usize) -> Vec<u8> {
    let text = doc.render(Style::Python);
    let head = [&text[..text.len() - 1], b", \"padding\": \""].concat();
    let pad = size.saturating_sub(head.len() + 2);
    let pattern = b"The quick brown fox jumps over the lazy dog. ";
    let mut out = Vec::with_capacity(head.len() + pad + 2);
    out.extend_from_slice(&head);
    out.extend(pattern.iter().cycle().take(pad));
    out.extend_from_slice(b"\"}");
    out
}

/// A valid event written in one to three unusual but legal ways: unknown fields, escapes,
/// padding whitespace, a string timestamp, other layouts and key orders, IPv6, the old
/// `device_id` format, odd device types.
pub fn odd_valid(rng: &mut Rng, event: &Event) -> Vec<u8> {
    let mut doc = Doc::of(event);
    let mut style = Style::Python;
    for _ in 0..rng.range(1, 3) {
        match rng.below(11) {
            0 => extra_members(rng, &mut doc),
            1 => {
                // Escape one ASCII character of a value as \u00XX.
                let field = *rng.pick(&["user_id", "device_type", "locale", "app_version"]);
                let value = doc.get(field).expect("present").to_vec();
                let inner = &value[1..value.len() - 1];
                if !inner.contains(&b'\\') && !inner.is_empty() {
                    let i = rng.index(inner.len());
                    let escaped = format!("\\u{:04x}", inner[i]);
                    doc.set(
                        field,
                        &[&value[..1 + i], escaped.as_bytes(), &value[2 + i..]].concat(),
                    );
                }
            }
            2 => {
                let field = *rng.pick(&[
                    "user_id",
                    "app_version",
                    "ip",
                    "locale",
                    "device_id",
                    "device_type",
                ]);
                let value = doc.get(field).expect("present").to_vec();
                let inner = &value[1..value.len() - 1];
                let pad = rng.pick(&[" ", "  ", "\\t", "\\n "]).as_bytes();
                doc.set(field, &[b"\"", pad, inner, b" \""].concat());
            }
            3 => {
                let padded = if rng.chance(0.5) { " " } else { "" };
                let ts = format!("\"{padded}{}{padded}\"", event.timestamp);
                doc.set("timestamp", ts.as_bytes());
            }
            4 => {
                style = if rng.chance(0.5) {
                    Style::Compact
                } else {
                    Style::Pretty
                }
            }
            5 => {
                for i in (1..doc.0.len()).rev() {
                    doc.0.swap(i, rng.index(i + 1));
                }
            }
            6 => {
                // A key spelled with an escape: `"\u0075ser_id"` is `user_id`.
                let field = *rng.pick(&FIELDS);
                if let Some(m) = doc.0.iter_mut().find(|m| m.name == field) {
                    m.raw_key =
                        format!("\"\\u{:04x}{}\"", field.as_bytes()[0], &field[1..]).into_bytes();
                }
            }
            7 => {
                let ip = if rng.chance(0.8) {
                    format!(
                        "\"{:x}:{:x}:{:x}::{:x}\"",
                        rng.range(0x2400, 0x2a0f),
                        rng.below(0x10000),
                        rng.below(0x10000),
                        rng.range(1, 0xffff)
                    )
                } else {
                    format!(
                        "\"::ffff:{}.{}.{}.{}\"",
                        rng.range(1, 99),
                        rng.below(256),
                        rng.below(256),
                        rng.range(1, 254)
                    )
                };
                doc.set("ip", ip.as_bytes());
            }
            8 => {
                // The device_id format of an older sample of the feed.
                let id = format!(
                    "\"{:03}-{:02}-{:04}\"",
                    rng.below(1000),
                    rng.below(100),
                    rng.below(10000)
                );
                doc.set("device_id", id.as_bytes());
            }
            9 => {
                let locale = doc.get("locale").expect("present").to_ascii_lowercase();
                doc.set("locale", &locale);
            }
            _ => {
                let device_type =
                    rng.pick(&[r#""web""#, r#""Android TV""#, r#""iPadOS""#, r#""Tizen""#]);
                doc.set("device_type", device_type.as_bytes());
            }
        }
    }
    doc.render(style)
}

fn extra_members(rng: &mut Rng, doc: &mut Doc) {
    let extras: [(&str, &str); 9] = [
        (
            "session",
            r#"{"id": 7, "tags": ["a", "b"], "nested": {"deep": [1, 2.5, null, true, {}]}}"#,
        ),
        ("referrer", "null"),
        ("x", "1"),
        ("x", "[2]"), // a repeated unknown key is not a duplicate field
        ("score", "1.5e300"),
        ("big_int", "9007199254740993"),
        ("city", "\"Z\u{fc}rich \u{6771}\u{4eac}\""),
        ("motto", r#""S\u00e3o Paulo \ud83d\ude00 \"quoted\" \\ \/""#),
        ("", r#""an empty key""#),
    ];
    for _ in 0..rng.range(1, 3) {
        let (name, value) = rng.pick(&extras);
        let at = rng.index(doc.0.len() + 1);
        doc.0.insert(
            at,
            Member {
                name,
                raw_key: quote(name.as_bytes()),
                value: value.as_bytes().to_vec(),
            },
        );
    }
}

/// A JSON object as a list of members whose keys and values are raw JSON text (bytes, so that
/// they can hold invalid UTF-8).
struct Doc(Vec<Member>);

#[derive(Clone)]
struct Member {
    /// The field name, to find the member again.
    name: &'static str,
    /// The key as written, quotes included.
    raw_key: Vec<u8>,
    /// The value as written.
    value: Vec<u8>,
}

/// How a [`Doc`] is laid out; all three are the same JSON.
#[derive(Clone, Copy)]
enum Style {
    /// `json.dumps` defaults: `", "` and `": "`.
    Python,
    /// No whitespace.
    Compact,
    /// One member per line, indented.
    Pretty,
}

impl Style {
    fn pick(rng: &mut Rng) -> Style {
        *rng.pick(&[Style::Python, Style::Python, Style::Compact, Style::Pretty])
    }
}

impl Doc {
    fn of(event: &Event) -> Doc {
        let members = event.members().into_iter();
        Doc(members
            .map(|(name, value)| Member {
                name,
                raw_key: quote(name.as_bytes()),
                value,
            })
            .collect())
    }

    fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.iter().find(|m| m.name == name).map(|m| &m.value[..])
    }

    /// Replaces the value of a member, or appends the member if it is absent.
    fn set(&mut self, name: &'static str, value: &[u8]) {
        match self.0.iter_mut().find(|m| m.name == name) {
            Some(m) => m.value = value.to_vec(),
            None => self.push(name, value.to_vec()),
        }
    }

    fn remove(&mut self, name: &str) {
        self.0.retain(|m| m.name != name);
    }

    fn push(&mut self, name: &'static str, value: Vec<u8>) {
        self.0.push(Member {
            name,
            raw_key: quote(name.as_bytes()),
            value,
        });
    }

    fn push_raw_key(&mut self, raw_key: Vec<u8>, value: Vec<u8>) {
        self.0.push(Member {
            name: "",
            raw_key,
            value,
        });
    }

    fn render(&self, style: Style) -> Vec<u8> {
        // Opening brace, member separator, key-value separator, closing brace, indent.
        let [open, sep, colon, close, indent]: [&[u8]; 5] = match style {
            Style::Python => [b"{", b", ", b": ", b"}", b""],
            Style::Compact => [b"{", b",", b":", b"}", b""],
            Style::Pretty => [b"{\n", b",\n", b": ", b"\n}", b"  "],
        };
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(open);
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(sep);
            }
            out.extend_from_slice(indent);
            out.extend_from_slice(&m.raw_key);
            out.extend_from_slice(colon);
            out.extend_from_slice(&m.value);
        }
        out.extend_from_slice(close);
        out
    }
}

fn quote(s: &[u8]) -> Vec<u8> {
    [b"\"", s, b"\""].concat()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
