//! Validation and normalization of one login event: bytes in, a normalized event or a
//! [`Rejection`] out.
//!
//! This is the pure heart of the worker stage. [`Transformer::process`] parses a payload with
//! simd-json into borrowed fields (reusing the transformer's buffers, so a valid event allocates
//! nothing but its output), checks the login schema, and returns a [`LoginEvent`] whose
//! [`LoginEvent::write_json`] writes the `processed_data` record. A bad payload is not an error
//! path: it comes back as a [`Rejection`] with an [`ErrorCode`] from a small fixed set and a
//! message that names the field, and the worker turns it into a dead letter.
//!
//! The schema (see the README, "Record formats"):
//! - `user_id`, `device_id`, `device_type`, `app_version`, `ip`, `locale`: strings, trimmed,
//!   non-empty, at most [`MAX_FIELD_BYTES`] bytes;
//! - `device_type` is lowercased (`iOS` → `ios`); `locale` must be two ASCII letters and is
//!   uppercased; `app_version` is one to four dot-separated numbers; `ip` is an IPv4 or IPv6
//!   address, classified into [`IpClass`];
//! - `timestamp` is Unix epoch seconds, as a JSON integer or a string of digits, between 0 and
//!   the end of year 9999;
//! - a JSON `null` counts as a missing field; unknown fields are ignored; a known field that
//!   appears twice is rejected (`duplicate_field`), since either value could be the right one.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Longest accepted value of a string field, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;

/// Default limit on a payload's size: login events are a few hundred bytes, so anything this
/// large is a mistake (and would not fit a dead-letter topic with default limits if it grew).
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Latest accepted `timestamp`: 9999-12-31T23:59:59Z, the last second RFC 3339 can write.
pub const MAX_TIMESTAMP: u64 = 253_402_300_799;

/// Why a record went to the dead-letter topic. The set is fixed and documented in the README;
/// the string form is the value of the `__pipeline.errors.code` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// The record value is null (a tombstone).
    Tombstone,
    /// The record value is zero bytes long.
    EmptyPayload,
    /// The record value is larger than `--max-payload-bytes`.
    TooLarge,
    /// The value is not valid UTF-8.
    InvalidUtf8,
    /// The value is not valid JSON (syntax, bad escapes, trailing data, numbers out of range).
    InvalidJson,
    /// The JSON nests deeper than the parser's limit.
    TooDeep,
    /// The value is valid JSON but not an object.
    NotAnObject,
    /// A required field is absent or null.
    MissingField,
    /// A known field appears more than once in the object.
    DuplicateField,
    /// A field has the wrong JSON type.
    InvalidType,
    /// A field has the right type but an unacceptable value.
    InvalidValue,
}

impl ErrorCode {
    /// Every code, in a stable order (for metrics and documentation).
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::Tombstone,
        ErrorCode::EmptyPayload,
        ErrorCode::TooLarge,
        ErrorCode::InvalidUtf8,
        ErrorCode::InvalidJson,
        ErrorCode::TooDeep,
        ErrorCode::NotAnObject,
        ErrorCode::MissingField,
        ErrorCode::DuplicateField,
        ErrorCode::InvalidType,
        ErrorCode::InvalidValue,
    ];

    /// The code as written in the DLQ header and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Tombstone => "tombstone",
            ErrorCode::EmptyPayload => "empty_payload",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::InvalidUtf8 => "invalid_utf8",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::TooDeep => "too_deep",
            ErrorCode::NotAnObject => "not_an_object",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::DuplicateField => "duplicate_field",
            ErrorCode::InvalidType => "invalid_type",
            ErrorCode::InvalidValue => "invalid_value",
        }
    }

    /// Parses the header form back (used by readers and tests).
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The pipeline stage that rejects records with this code: `parse` for anything wrong with
    /// the bytes or the JSON, `validate` for anything wrong with the fields.
    pub fn stage(self) -> &'static str {
        match self {
            ErrorCode::MissingField
            | ErrorCode::DuplicateField
            | ErrorCode::InvalidType
            | ErrorCode::InvalidValue => "validate",
            _ => "parse",
        }
    }

    /// Position in [`ErrorCode::ALL`], for per-code counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record the pipeline cannot process: the reason, for the dead-letter headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The classification.
    pub code: ErrorCode,
    /// The offending field, when one field is to blame.
    pub field: Option<&'static str>,
    /// A human-readable explanation that names the field.
    pub message: String,
    /// The record's `timestamp` (Unix seconds) when it was present and valid although
    /// something else was wrong: lets the insights count the dead letter in its own window.
    pub event_time: Option<u64>,
}

impl Rejection {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            field: None,
            message: message.into(),
            event_time: None,
        }
    }

    fn field(code: ErrorCode, field: Field, message: impl fmt::Display) -> Self {
        Rejection {
            code,
            field: Some(field.name()),
            message: format!("field `{}` {message}", field.name()),
            event_time: None,
        }
    }
}

/// The fields of the login schema, in the order they are checked and reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// `user_id`
    UserId,
    /// `app_version`
    AppVersion,
    /// `device_type`
    DeviceType,
    /// `ip`
    Ip,
    /// `locale`
    Locale,
    /// `device_id`
    DeviceId,
    /// `timestamp`
    Timestamp,
}

impl Field {
    /// Every field, in check order.
    pub const ALL: [Field; 7] = [
        Field::UserId,
        Field::AppVersion,
        Field::DeviceType,
        Field::Ip,
        Field::Locale,
        Field::DeviceId,
        Field::Timestamp,
    ];

    /// The JSON key.
    pub fn name(self) -> &'static str {
        match self {
            Field::UserId => "user_id",
            Field::AppVersion => "app_version",
            Field::DeviceType => "device_type",
            Field::Ip => "ip",
            Field::Locale => "locale",
            Field::DeviceId => "device_id",
            Field::Timestamp => "timestamp",
        }
    }

    /// The field with this JSON key, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Field> {
        Some(match name {
            "user_id" => Field::UserId,
            "app_version" => Field::AppVersion,
            "device_type" => Field::DeviceType,
            "ip" => Field::Ip,
            "locale" => Field::Locale,
            "device_id" => Field::DeviceId,
            "timestamp" => Field::Timestamp,
            _ => return None,
        })
    }
}

/// Options that change what counts as valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransformOptions {
    /// Payloads longer than this are rejected as `too_large` without being parsed.
    pub max_payload_bytes: usize,
    /// Per field, the value used when the field is missing or null; `None` means required.
    pub fill: [Option<String>; 7],
}

impl Default for TransformOptions {
    fn default() -> Self {
        TransformOptions {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            fill: Default::default(),
        }
    }
}

impl TransformOptions {
    /// Declares `field` optional: when missing it takes `value`, which must itself be valid.
    pub fn set_fill(&mut self, field: Field, value: &str) -> Result<(), String> {
        check_field(&Raw::Str(Cow::Borrowed(value)), field).map_err(|r| {
            format!(
                "fill value {value:?} for `{}` is invalid: {}",
                field.name(),
                r.message
            )
        })?;
        self.fill[field as usize] = Some(value.to_owned());
        Ok(())
    }
}

/// A valid, normalized login event. Strings borrow from the transformer's parse buffer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoginEvent<'a> {
    /// The user, also the output record's key.
    pub user_id: Cow<'a, str>,
    /// The device.
    pub device_id: Cow<'a, str>,
    /// Lowercased device type (`ios`, `android`, or whatever lowercase value arrived).
    pub device_type: Cow<'a, str>,
    /// Dotted version.
    pub app_version: Cow<'a, str>,
    /// Uppercase two-letter code.
    pub locale: LocaleCode,
    /// The address as it arrived (trimmed).
    pub ip: Cow<'a, str>,
    /// What kind of address `ip` is.
    pub ip_class: IpClass,
    /// Event time, Unix seconds.
    pub timestamp: u64,
    /// Event time as RFC 3339 UTC (`2024-07-10T05:34:57Z`).
    pub event_time: Rfc3339,
    /// Which fields were missing and filled from `--optional-field` defaults.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filled: Vec<&'static str>,
}

impl LoginEvent<'_> {
    /// Appends the `processed_data` JSON record to `out`: the same bytes as serializing the
    /// struct with serde_json (a test holds them equal), written directly, because serde_json's
    /// byte-by-byte string escaping was the largest single cost of a worker (15 % in a profile)
    /// and our strings almost never need escaping.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"user_id\":");
        write_json_str(out, &self.user_id);
        out.extend_from_slice(b",\"device_id\":");
        write_json_str(out, &self.device_id);
        out.extend_from_slice(b",\"device_type\":");
        write_json_str(out, &self.device_type);
        // Validated as digits and dots, two letters, and an IP address: nothing to escape.
        out.extend_from_slice(b",\"app_version\":");
        write_plain_json_str(out, &self.app_version);
        out.extend_from_slice(b",\"locale\":");
        write_plain_json_str(out, self.locale.as_str());
        out.extend_from_slice(b",\"ip\":");
        write_plain_json_str(out, &self.ip);
        out.extend_from_slice(b",\"ip_class\":\"");
        out.extend_from_slice(self.ip_class.as_str().as_bytes());
        out.extend_from_slice(b"\",\"timestamp\":");
        out.extend_from_slice(crate::record::Decimal::new(self.timestamp).as_bytes());
        out.extend_from_slice(b",\"event_time\":\"");
        out.extend_from_slice(self.event_time.as_bytes());
        out.push(b'"');
        if !self.filled.is_empty() {
            out.extend_from_slice(b",\"filled\":[");
            for (i, name) in self.filled.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_str(out, name);
            }
            out.push(b']');
        }
        out.push(b'}');
    }
}

/// Writes `s` as a JSON string: copied as is when nothing needs escaping, else by serde_json.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    if needs_no_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, s).expect("a str always serializes");
    }
}

/// Writes `s`, which has nothing to escape, as a JSON string.
#[inline]
fn write_plain_json_str(out: &mut Vec<u8>, s: &str) {
    debug_assert!(needs_no_escape(s.as_bytes()), "{s:?} needs escaping");
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Whether no byte of `b` is a control character, `"` or `\`, checked eight bytes at a time
/// (this check ran at 12 instructions per byte one byte at a time, the largest cost of writing
/// an output record).
#[inline]
fn needs_no_escape(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A high bit set in the result for each byte of `x` that is zero (exact for the flagged
    // bytes that matter here: any flag means some byte was zero).
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let flagged = |x: u64| {
        // Per byte c < 0x80, (c + 0x60) has its high bit set exactly when c >= 0x20 (no carry
        // leaves the byte); bytes >= 0x80 are never control characters.
        let control = !((x & !HIGHS) + ONES * 0x60) & !x & HIGHS;
        let quote = has_zero(x ^ (ONES * u64::from(b'"')));
        let backslash = has_zero(x ^ (ONES * u64::from(b'\\')));
        control | quote | backslash != 0
    };
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"));
    if b.len() < 8 {
        return b.iter().all(|&c| c >= 0x20 && c != b'"' && c != b'\\');
    }
    // Whole words, then the last eight bytes (overlapping the last word read).
    let mut at = 0;
    while at + 8 <= b.len() {
        if flagged(word(at)) {
            return false;
        }
        at += 8;
    }
    at == b.len() || !flagged(word(b.len() - 8))
}

/// A two-letter locale code, stored inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LocaleCode(pub [u8; 2]);

/// Every two-letter uppercase code, `AA` to `ZZ`, in one string: [`LocaleCode::as_str`] slices
/// it instead of validating two bytes as UTF-8 (a library call, per event, in the insights).
const LOCALE_CODES: &str = {
    const fn table() -> [u8; 26 * 26 * 2] {
        let mut t = [0u8; 26 * 26 * 2];
        let mut i = 0;
        while i < 26 * 26 {
            t[2 * i] = b'A' + (i / 26) as u8;
            t[2 * i + 1] = b'A' + (i % 26) as u8;
            i += 1;
        }
        t
    }
    const BYTES: [u8; 26 * 26 * 2] = table();
    match std::str::from_utf8(&BYTES) {
        Ok(s) => s,
        Err(_) => panic!("ASCII letters are UTF-8"),
    }
};

impl LocaleCode {
    /// The code as a string.
    #[inline]
    pub fn as_str(&self) -> &str {
        match self.0 {
            [a @ b'A'..=b'Z', b @ b'A'..=b'Z'] => {
                let i = 2 * (usize::from(a - b'A') * 26 + usize::from(b - b'A'));
                &LOCALE_CODES[i..i + 2]
            }
            // Only ever built from two ASCII letters, uppercased.
            _ => std::str::from_utf8(&self.0).unwrap_or("??"),
        }
    }
}

impl Serialize for LocaleCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Classes of IP addresses, from the IANA special-purpose registries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IpClass {
    /// Globally routable unicast.
    Public,
    /// RFC 1918 private ranges, IPv6 unique-local (fc00::/7).
    Private,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// 100.64.0.0/10 carrier-grade NAT.
    Shared,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// TEST-NET ranges and 2001:db8::/32.
    Documentation,
    /// 198.18.0.0/15.
    Benchmarking,
    /// 240.0.0.0/4 and other reserved blocks.
    Reserved,
}

impl IpClass {
    /// Every class, in a stable order.
    pub const ALL: [IpClass; 11] = [
        IpClass::Public,
        IpClass::Private,
        IpClass::Loopback,
        IpClass::LinkLocal,
        IpClass::Shared,
        IpClass::Multicast,
        IpClass::Broadcast,
        IpClass::Unspecified,
        IpClass::Documentation,
        IpClass::Benchmarking,
        IpClass::Reserved,
    ];

    /// Classifies an address.
    pub fn of(ip: IpAddr) -> IpClass {
        match ip {
            IpAddr::V4(v4) => Self::of_v4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::of_v4(v4),
                None => Self::of_v6(v6),
            },
        }
    }

    fn of_v4(ip: Ipv4Addr) -> IpClass {
        let [a, b, c, _] = ip.octets();
        match (a, b, c) {
            _ if ip.is_broadcast() => IpClass::Broadcast,
            (0, _, _) => IpClass::Unspecified,
            (10, _, _) | (172, 16..=31, _) | (192, 168, _) => IpClass::Private,
            (127, _, _) => IpClass::Loopback,
            (169, 254, _) => IpClass::LinkLocal,
            (100, 64..=127, _) => IpClass::Shared,
            (224..=239, _, _) => IpClass::Multicast,
            (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => IpClass::Documentation,
            (198, 18..=19, _) => IpClass::Benchmarking,
            (240..=255, _, _) | (192, 0, 0) => IpClass::Reserved,
            _ => IpClass::Public,
        }
    }

    fn of_v6(ip: Ipv6Addr) -> IpClass {
        let seg = ip.segments();
        match seg[0] {
            _ if ip.is_unspecified() => IpClass::Unspecified,
            _ if ip.is_loopback() => IpClass::Loopback,
            0xff00..=0xffff => IpClass::Multicast,
            0xfe80..=0xfebf => IpClass::LinkLocal,
            0xfc00..=0xfdff => IpClass::Private,
            0x2001 if seg[1] == 0x0db8 => IpClass::Documentation,
            0x2000..=0x3fff => IpClass::Public,
            _ => IpClass::Reserved,
        }
    }

    /// The class as written in records and insights.
    pub fn as_str(self) -> &'static str {
        match self {
            IpClass::Public => "public",
            IpClass::Private => "private",
            IpClass::Loopback => "loopback",
            IpClass::LinkLocal => "link_local",
            IpClass::Shared => "shared",
            IpClass::Multicast => "multicast",
            IpClass::Broadcast => "broadcast",
            IpClass::Unspecified => "unspecified",
            IpClass::Documentation => "documentation",
            IpClass::Benchmarking => "benchmarking",
            IpClass::Reserved => "reserved",
        }
    }
}

/// Unix seconds formatted as RFC 3339 UTC, without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rfc3339([u8; 20]);

impl Rfc3339 {
    /// Formats `secs` (at most [`MAX_TIMESTAMP`]) as `YYYY-MM-DDThh:mm:ssZ`.
    pub fn from_unix(secs: u64) -> Rfc3339 {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        let mut out = *b"0000-00-00T00:00:00Z";
        let put = |out: &mut [u8; 20], at: usize, value: u64, width: usize| {
            let mut v = value;
            for i in (0..width).rev() {
                out[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(&mut out, 0, y as u64, 4);
        put(&mut out, 5, m as u64, 2);
        put(&mut out, 8, d as u64, 2);
        put(&mut out, 11, rem / 3600, 2);
        put(&mut out, 14, rem / 60 % 60, 2);
        put(&mut out, 17, rem % 60, 2);
        Rfc3339(out)
    }

    /// The formatted time.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The formatted time's ASCII bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Parses, validates and normalizes payloads, reusing its buffers from one call to the next.
/// One per worker thread.
pub struct Transformer {
    options: TransformOptions,
    scratch: Vec<u8>,
    buffers: simd_json::Buffers,
}

impl Transformer {
    /// A transformer with the given options.
    pub fn new(options: TransformOptions) -> Self {
        Transformer {
            options,
            scratch: Vec::with_capacity(4096),
            buffers: simd_json::Buffers::new(4096),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &TransformOptions {
        &self.options
    }

    /// Classifies one record value. `None` is a tombstone.
    pub fn process(&mut self, payload: Option<&[u8]>) -> Result<LoginEvent<'_>, Rejection> {
        let bytes = precheck(payload, self.options.max_payload_bytes)?;
        // simd-json parses in place, so it gets a copy; the original bytes stay untouched for
        // the dead-letter record.
        self.scratch.clear();
        self.scratch.extend_from_slice(bytes);
        let parsed: TopLevel<'_> =
            simd_json::serde::from_slice_with_buffers(&mut self.scratch, &mut self.buffers)
                .map_err(|e| classify_simd_error(&e))?;
        validate(parsed, &self.options)
    }
}

/// Classifies one record value with serde_json instead of simd-json (same rules, same result);
/// kept so the benchmark can compare the parsers on our events.
pub fn process_with_serde_json<'a>(
    payload: Option<&'a [u8]>,
    options: &TransformOptions,
) -> Result<LoginEvent<'a>, Rejection> {
    let bytes = precheck(payload, options.max_payload_bytes)?;
    let parsed: TopLevel<'a> = serde_json::from_slice(bytes).map_err(|e| {
        let code = match e.to_string() {
            m if m.starts_with("recursion limit") => ErrorCode::TooDeep,
            m if std::str::from_utf8(bytes).is_err() && m.contains("UTF-8") => {
                ErrorCode::InvalidUtf8
            }
            _ => ErrorCode::InvalidJson,
        };
        Rejection::new(code, format!("record value is not valid JSON: {e}"))
    })?;
    validate(parsed, options)
}

fn precheck(payload: Option<&[u8]>, max_payload_bytes: usize) -> Result<&[u8], Rejection> {
    let bytes = payload
        .ok_or_else(|| Rejection::new(ErrorCode::Tombstone, "record value is null (tombstone)"))?;
    if bytes.is_empty() {
        return Err(Rejection::new(
            ErrorCode::EmptyPayload,
            "record value is empty",
        ));
    }
    if bytes.len() > max_payload_bytes {
        return Err(Rejection::new(
            ErrorCode::TooLarge,
            format!(
                "record value is {} bytes, over the limit of {max_payload_bytes}",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

fn classify_simd_error(e: &simd_json::Error) -> Rejection {
    use simd_json::ErrorType as T;
    match e.error() {
        T::InvalidUtf8 => Rejection::new(ErrorCode::InvalidUtf8, "record value is not valid UTF-8"),
        T::DepthLimitExceeded => Rejection::new(
            ErrorCode::TooDeep,
            "JSON nests deeper than the parser's limit of 1024 levels",
        ),
        _ => Rejection::new(
            ErrorCode::InvalidJson,
            format!("record value is not valid JSON: {e}"),
        ),
    }
}

/// What the top-level JSON value was.
// Returned by value once per record; boxing the object would add an allocation per record.
#[allow(clippy::large_enum_variant)]
enum TopLevel<'a> {
    Object(RawEvent<'a>),
    Other(&'static str),
}

/// The schema fields as found, before validation.
#[derive(Default)]
struct RawEvent<'a> {
    fields: [Option<Raw<'a>>; 7],
    duplicate: Option<Field>,
}

/// A field value as found.
enum Raw<'a> {
    Str(Cow<'a, str>),
    Int(i128),
    Float(f64),
    Bool,
    Null,
    Array,
    Object,
}

impl Raw<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Raw::Str(_) => "string",
            Raw::Int(_) => "integer",
            Raw::Float(_) => "float",
            Raw::Bool => "boolean",
            Raw::Null => "null",
            Raw::Array => "array",
            Raw::Object => "object",
        }
    }
}

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut event = RawEvent::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key.0 {
                Some(field) => {
                    let value = map.next_value::<Raw<'de>>()?;
                    let slot = &mut event.fields[field as usize];
                    if slot.is_some() && event.duplicate.is_none() {
                        event.duplicate = Some(field);
                    }
                    *slot = Some(value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(TopLevel::Object(event))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TopLevel::Other("array"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("string"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("number"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("boolean"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("null"))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("null"))
    }
}

/// An object key: one of the schema's fields, or `None` for a key we ignore.
struct Key(Option<Field>);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(Field::from_name(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Raw<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Raw<'de>, E> {
        Ok(Raw::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw<'de>, E> {
        Ok(Raw::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw<'de>, E> {
        Ok(Raw::Str(Cow::Owned(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw<'de>, E> {
        Ok(Raw::Int(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw<'de>, E> {
        Ok(Raw::Int(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw<'de>, E> {
        Ok(Raw::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw<'de>, E> {
        Ok(Raw::Int(i128::try_from(v).unwrap_or(i128::MAX)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw<'de>, E> {
        Ok(Raw::Float(v))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Raw<'de>, E> {
        Ok(Raw::Bool)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Raw<'de>, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Raw<'de>, E> {
        Ok(Raw::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw<'de>, D::Error> {
        Raw::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Raw::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Raw::Object)
    }
}

fn validate<'a>(
    parsed: TopLevel<'a>,
    options: &TransformOptions,
) -> Result<LoginEvent<'a>, Rejection> {
    let mut raw = match parsed {
        TopLevel::Object(raw) => raw,
        TopLevel::Other(kind) => {
            return Err(Rejection::new(
                ErrorCode::NotAnObject,
                format!("record value is a JSON {kind}, expected an object"),
            ))
        }
    };
    let mut filled = Vec::new();
    let checked = check_fields(&mut raw, options, &mut filled).map_err(|mut r| {
        // A rejected record still carries its own event time when that field is valid
        // (not when it was filled in), so its dead letter is counted in the right window.
        if !filled.contains(&Field::Timestamp.name()) {
            r.event_time = raw.fields[Field::Timestamp as usize]
                .as_ref()
                .and_then(timestamp_value);
        }
        r
    })?;
    let mut take = |f: Field| raw.fields[f as usize].take();
    let string = |v: Option<Raw<'a>>| match v {
        Some(Raw::Str(s)) => trim_cow(s),
        _ => unreachable!("checked by check_field"),
    };
    let user_id = string(take(Field::UserId));
    let app_version = string(take(Field::AppVersion));
    let device_type = lowercase(string(take(Field::DeviceType)));
    let ip = string(take(Field::Ip));
    let locale = string(take(Field::Locale));
    let device_id = string(take(Field::DeviceId));
    let lb = locale.as_bytes();
    Ok(LoginEvent {
        user_id,
        device_id,
        device_type,
        app_version,
        locale: LocaleCode([lb[0].to_ascii_uppercase(), lb[1].to_ascii_uppercase()]),
        ip,
        ip_class: IpClass::of(checked.ip),
        timestamp: checked.timestamp,
        event_time: Rfc3339::from_unix(checked.timestamp),
        filled,
    })
}

/// The value of a valid `timestamp` field.
fn timestamp_value(value: &Raw<'_>) -> Option<u64> {
    match check_field(value, Field::Timestamp) {
        Ok(Checked::Timestamp(t)) => Some(t),
        _ => None,
    }
}

/// What checking the fields parsed, so it is not parsed again.
struct CheckedFields {
    ip: IpAddr,
    timestamp: u64,
}

/// What checking one field parsed.
enum Checked {
    Text,
    Ip(IpAddr),
    Timestamp(u64),
}

/// Fills missing fields that have a default (naming them in `filled`) and checks every field,
/// in [`Field::ALL`] order: the first failure is the rejection.
fn check_fields(
    raw: &mut RawEvent<'_>,
    options: &TransformOptions,
    filled: &mut Vec<&'static str>,
) -> Result<CheckedFields, Rejection> {
    if let Some(field) = raw.duplicate {
        return Err(Rejection::field(
            ErrorCode::DuplicateField,
            field,
            "appears more than once",
        ));
    }
    let mut ip = None;
    let mut timestamp = None;
    for field in Field::ALL {
        let slot = &mut raw.fields[field as usize];
        if matches!(slot, None | Some(Raw::Null)) {
            match &options.fill[field as usize] {
                Some(value) => {
                    *slot = Some(Raw::Str(Cow::Owned(value.clone())));
                    filled.push(field.name());
                }
                None => {
                    return Err(Rejection::field(
                        ErrorCode::MissingField,
                        field,
                        "is missing",
                    ))
                }
            }
        }
        match check_field(slot.as_ref().expect("present or filled"), field)? {
            Checked::Text => {}
            Checked::Ip(addr) => ip = Some(addr),
            Checked::Timestamp(t) => timestamp = Some(t),
        }
    }
    Ok(CheckedFields {
        ip: ip.expect("the ip field was checked"),
        timestamp: timestamp.expect("the timestamp field was checked"),
    })
}

/// Checks one present field; the caller has already dealt with missing ones.
fn check_field(value: &Raw<'_>, field: Field) -> Result<Checked, Rejection> {
    if field == Field::Timestamp {
        return check_timestamp(value).map(Checked::Timestamp);
    }
    let Raw::Str(s) = value else {
        return Err(Rejection::field(
            ErrorCode::InvalidType,
            field,
            format_args!("is a {}, expected a string", value.type_name()),
        ));
    };
    let s = trim(s);
    let invalid = |why: &str| Err(Rejection::field(ErrorCode::InvalidValue, field, why));
    if s.is_empty() {
        return invalid("is empty");
    }
    if s.len() > MAX_FIELD_BYTES {
        return invalid(&format!(
            "is {} bytes long, over the limit of {MAX_FIELD_BYTES}",
            s.len()
        ));
    }
    match field {
        Field::AppVersion if !is_version(s) => invalid("is not a dotted version like 2.3.0"),
        Field::Ip => match parse_ip(s) {
            Ok(addr) => Ok(Checked::Ip(addr)),
            Err(_) => invalid("is not an IPv4 or IPv6 address"),
        },
        Field::Locale if !(s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic())) => {
            invalid("is not a two-letter code")
        }
        _ => Ok(Checked::Text),
    }
}

/// `s` as an IP address, as [`IpAddr::from_str`] parses it, with a fast path for the usual
/// dotted-quad IPv4 address (the standard parser cost 200 instructions per event).
fn parse_ip(s: &str) -> Result<IpAddr, std::net::AddrParseError> {
    fast_ipv4(s.as_bytes()).map_or_else(|| s.parse(), |v4| Ok(IpAddr::V4(v4)))
}

/// A dotted quad of decimal octets without leading zeros, as the standard parser accepts it;
/// `None` for anything else (which the standard parser then decides on).
fn fast_ipv4(b: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut rest = b;
    for (i, octet) in octets.iter_mut().enumerate() {
        let digits = rest
            .iter()
            .take(3)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 || (digits > 1 && rest[0] == b'0') {
            return None;
        }
        let value = rest[..digits]
            .iter()
            .fold(0u32, |v, &c| v * 10 + u32::from(c - b'0'));
        *octet = u8::try_from(value).ok()?;
        rest = &rest[digits..];
        if i < 3 {
            rest = rest.strip_prefix(b".")?;
        }
    }
    rest.is_empty().then_some(std::net::Ipv4Addr::from(octets))
}

/// `s` without leading and trailing whitespace (Unicode's, as [`str::trim`]), with a fast path
/// for the usual case of nothing to trim.
#[inline]
fn trim(s: &str) -> &str {
    match s.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => s,
        [only] if only.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

fn check_timestamp(value: &Raw<'_>) -> Result<u64, Rejection> {
    let field = Field::Timestamp;
    let in_range = |v: i128| (0..=i128::from(MAX_TIMESTAMP)).contains(&v);
    let out_of_range = || {
        Err(Rejection::field(
            ErrorCode::InvalidValue,
            field,
            format_args!("is out of range (0 to {MAX_TIMESTAMP} Unix seconds)"),
        ))
    };
    match value {
        Raw::Int(v) if in_range(*v) => Ok(*v as u64),
        Raw::Int(_) => out_of_range(),
        // Integers too big for 64 bits arrive as floats from both parsers; and a float beyond
        // the range is out of range whatever its fraction: above 2^51 the two parsers may round
        // a fraction differently (one to a whole number), so the fraction cannot decide.
        Raw::Float(f) if f.abs() > MAX_TIMESTAMP as f64 => out_of_range(),
        Raw::Str(s) => {
            let s = trim(s);
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Rejection::field(
                    ErrorCode::InvalidValue,
                    field,
                    "is a string but not a number of seconds",
                ));
            }
            match s.parse::<u64>() {
                Ok(v) if in_range(v.into()) => Ok(v),
                _ => out_of_range(),
            }
        }
        other => Err(Rejection::field(
            ErrorCode::InvalidType,
            field,
            format_args!(
                "is a {}, expected integer seconds or a numeric string",
                other.type_name()
            ),
        )),
    }
}

fn is_version(s: &str) -> bool {
    // One to four dot-separated parts of one to nine digits, in one pass over the bytes.
    let (mut parts, mut digits) = (1, 0);
    for &b in s.as_bytes() {
        match b {
            b'0'..=b'9' if digits < 9 => digits += 1,
            b'.' if digits > 0 && parts < 4 => (parts, digits) = (parts + 1, 0),
            _ => return false,
        }
    }
    digits > 0
}

fn trim_cow(s: Cow<'_, str>) -> Cow<'_, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(trim(b)),
        Cow::Owned(o) if trim(&o).len() == o.len() => Cow::Owned(o),
        Cow::Owned(o) => Cow::Owned(trim(&o).to_owned()),
    }
}

fn lowercase(s: Cow<'_, str>) -> Cow<'_, str> {
    if !s.bytes().any(|b| b.is_ascii_uppercase()) && s.is_ascii() {
        return s;
    }
    // The device types every feed sends, lowercased without an allocation per event.
    const KNOWN: [&str; 8] = [
        "android", "ios", "ipados", "web", "windows", "macos", "linux", "other",
    ];
    match KNOWN.iter().find(|k| k.eq_ignore_ascii_case(&s)) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(s.to_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"user_id": "b22a51d5-0f2f-42e3-8505-f2f8d2b01060", "app_version": "2.3.0", "ip": "25.67.253.124", "locale": "WA", "device_id": "37e8136e-b36d-4717-aa68-dbfcaef4d499", "timestamp": 1720589697, "device_type": "iOS"}"#;

    fn run(payload: &[u8]) -> Result<String, Rejection> {
        run_with(payload, TransformOptions::default())
    }

    fn run_with(payload: &[u8], options: TransformOptions) -> Result<String, Rejection> {
        let mut t = Transformer::new(options.clone());
        let simd = t.process(Some(payload)).map(|e| {
            let mut out = Vec::new();
            e.write_json(&mut out);
            String::from_utf8(out).unwrap()
        });
        // Both parsers must agree on every input, valid or not.
        let serde = process_with_serde_json(Some(payload), &options).map(|e| {
            let mut out = Vec::new();
            e.write_json(&mut out);
            String::from_utf8(out).unwrap()
        });
        // Both parsers must agree on well-formed JSON. On malformed input they differ in what
        // they check inside ignored values (serde_json skips them without checking UTF-8, depth
        // or number range); only the simd-json path runs in the pipeline.
        match (&simd, &serde) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), _) if a.code.stage() == "parse" => {}
            (Err(a), Err(b)) => assert_eq!(a.code, b.code, "{a:?} vs {b:?}"),
            _ => panic!("parsers disagree: {simd:?} vs {serde:?}"),
        }
        simd
    }

    fn code(payload: &[u8]) -> ErrorCode {
        run(payload).expect_err("should be rejected").code
    }

    fn with(field: &str, value: &str) -> String {
        let mut v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(SAMPLE).unwrap();
        if value == "<absent>" {
            v.remove(field);
        } else {
            v.insert(field.into(), serde_json::from_str(value).unwrap());
        }
        serde_json::to_string(&v).unwrap()
    }

    #[test]
    fn locale_codes_read_as_their_letters() {
        for a in b'A'..=b'Z' {
            for b in b'A'..=b'Z' {
                let code = LocaleCode([a, b]);
                assert_eq!(code.as_str().as_bytes(), [a, b]);
            }
        }
        assert_eq!(LocaleCode(*b"c1").as_str(), "c1");
    }

    #[test]
    fn versions_are_one_to_four_parts_of_one_to_nine_digits() {
        for ok in ["2", "2.3", "2.3.0", "10.20.30.40", "123456789.0"] {
            assert!(is_version(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "2.",
            ".2",
            "2..3",
            "2.3.0.1.5",
            "1234567890",
            "2.3a",
            "v2",
            "2,3",
            "²",
        ] {
            assert!(!is_version(bad), "{bad}");
        }
    }

    #[test]
    fn fast_ipv4_agrees_with_the_standard_parser() {
        for s in [
            "0.0.0.0",
            "1.2.3.4",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.4.5",
            "1..2.3",
            "1.2.3.4 ",
            "a.b.c.d",
            "1.2.3.04",
            "100.200.10.0",
            "::1",
            "1.2.3.1000",
            "",
            "1.2.3.+4",
        ] {
            assert_eq!(parse_ip(s).ok(), s.parse::<IpAddr>().ok(), "{s:?}");
            if let Some(v4) = fast_ipv4(s.as_bytes()) {
                assert_eq!(Ok(IpAddr::V4(v4)), s.parse::<IpAddr>(), "{s:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_ipv4_never_disagrees(s in "[0-9.]{0,17}", octets in proptest::array::uniform4(0u8..)) {
            proptest::prop_assert_eq!(parse_ip(&s).ok(), s.parse::<IpAddr>().ok());
            let quad = std::net::Ipv4Addr::from(octets).to_string();
            proptest::prop_assert_eq!(fast_ipv4(quad.as_bytes()), Some(std::net::Ipv4Addr::from(octets)));
        }
    }

    #[test]
    fn field_names_read_back_as_their_fields() {
        for field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(field));
        }
        assert_eq!(Field::from_name("user"), None);
    }

    #[test]
    fn escape_check_agrees_with_the_bytewise_rule_at_every_position() {
        let bytewise = |b: &[u8]| b.iter().all(|&c| c >= 0x20 && c != b'"' && c != b'\\');
        for c in 0..=255u8 {
            for len in [1, 7, 8, 9, 16, 23] {
                for at in 0..len {
                    let mut b = vec![b'a'; len];
                    b[at] = c;
                    assert_eq!(
                        needs_no_escape(&b),
                        bytewise(&b),
                        "byte {c:#x} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn sample_event_is_normalized() {
        let out = run(SAMPLE.as_bytes()).unwrap();
        assert_eq!(
            out,
            r#"{"user_id":"b22a51d5-0f2f-42e3-8505-f2f8d2b01060","device_id":"37e8136e-b36d-4717-aa68-dbfcaef4d499","device_type":"ios","app_version":"2.3.0","locale":"WA","ip":"25.67.253.124","ip_class":"public","timestamp":1720589697,"event_time":"2024-07-10T05:34:57Z"}"#
        );
    }

    #[test]
    fn timestamp_as_numeric_string_is_accepted() {
        let out = run(with("timestamp", r#""1694479551""#).as_bytes()).unwrap();
        assert!(
            out.contains(r#""timestamp":1694479551,"event_time":"2023-09-12T00:45:51Z""#),
            "{out}"
        );
    }

    #[test]
    fn case_variants_are_normalized() {
        let out = run(with("device_type", r#"" Android ""#).as_bytes()).unwrap();
        assert!(out.contains(r#""device_type":"android""#), "{out}");
        let out = run(with("locale", r#""wa""#).as_bytes()).unwrap();
        assert!(out.contains(r#""locale":"WA""#), "{out}");
    }

    #[test]
    fn old_device_id_format_is_accepted() {
        let out = run(with("device_id", r#""593-47-5928""#).as_bytes()).unwrap();
        assert!(out.contains(r#""device_id":"593-47-5928""#), "{out}");
    }

    #[test]
    fn missing_device_type_is_a_dead_letter_by_default() {
        let r = run(with("device_type", "<absent>").as_bytes()).unwrap_err();
        assert_eq!(r.code, ErrorCode::MissingField);
        assert_eq!(r.field, Some("device_type"));
        assert!(r.message.contains("device_type"), "{}", r.message);
        assert_eq!(
            code(with("device_type", "null").as_bytes()),
            ErrorCode::MissingField
        );
    }

    #[test]
    fn a_rejection_carries_the_timestamp_when_it_is_valid() {
        let r = run(with("device_type", "<absent>").as_bytes()).unwrap_err();
        assert_eq!(r.event_time, Some(1_720_589_697));
        let r = run(with("timestamp", r#""-3""#).as_bytes()).unwrap_err();
        assert_eq!(r.event_time, None);
        let r = run(with("locale", "42").as_bytes()).unwrap_err();
        assert_eq!(r.event_time, Some(1_720_589_697));
        assert_eq!(run(b"[1]").unwrap_err().event_time, None);
    }

    #[test]
    fn optional_field_takes_its_fill_value() {
        let mut options = TransformOptions::default();
        options.set_fill(Field::DeviceType, "unknown").unwrap();
        let out = run_with(with("device_type", "<absent>").as_bytes(), options).unwrap();
        assert!(out.contains(r#""device_type":"unknown""#), "{out}");
        assert!(out.ends_with(r#""filled":["device_type"]}"#), "{out}");
    }

    #[test]
    fn invalid_fill_value_is_refused() {
        let mut options = TransformOptions::default();
        assert!(options.set_fill(Field::Locale, "not-a-state").is_err());
        assert!(options.set_fill(Field::Timestamp, "soon").is_err());
        assert!(options.set_fill(Field::Timestamp, "0").is_ok());
    }

    #[test]
    fn every_missing_field_is_named() {
        for field in Field::ALL {
            let r = run(with(field.name(), "<absent>").as_bytes()).unwrap_err();
            assert_eq!(
                (r.code, r.field),
                (ErrorCode::MissingField, Some(field.name()))
            );
        }
    }

    #[test]
    fn wrong_types_are_invalid_type() {
        assert_eq!(
            code(with("user_id", "42").as_bytes()),
            ErrorCode::InvalidType
        );
        assert_eq!(code(with("ip", "[1,2]").as_bytes()), ErrorCode::InvalidType);
        assert_eq!(
            code(with("locale", r#"{"a":1}"#).as_bytes()),
            ErrorCode::InvalidType
        );
        assert_eq!(
            code(with("timestamp", "true").as_bytes()),
            ErrorCode::InvalidType
        );
        assert_eq!(
            code(with("timestamp", "1720589697.5").as_bytes()),
            ErrorCode::InvalidType
        );
    }

    #[test]
    fn bad_values_are_invalid_value() {
        for (field, value) in [
            ("ip", r#""300.1.2.3""#),
            ("ip", r#""""#),
            ("locale", r#""WAS""#),
            ("locale", r#""1A""#),
            ("app_version", r#""v2""#),
            ("app_version", r#""2..3""#),
            ("timestamp", "-5"),
            ("timestamp", "1720589697000"),
            ("timestamp", r#""17x""#),
            ("timestamp", "100000000000000000000000"),
            ("user_id", "\"   \""),
        ] {
            let r = run(with(field, value).as_bytes()).unwrap_err();
            assert_eq!(
                (r.code, r.field),
                (ErrorCode::InvalidValue, Some(field)),
                "{field}={value}"
            );
        }
        let long = format!("\"{}\"", "x".repeat(MAX_FIELD_BYTES + 1));
        assert_eq!(
            code(with("user_id", &long).as_bytes()),
            ErrorCode::InvalidValue
        );
    }

    #[test]
    fn payload_level_problems_are_classified() {
        let mut t = Transformer::new(TransformOptions::default());
        assert_eq!(t.process(None).unwrap_err().code, ErrorCode::Tombstone);
        assert_eq!(code(b""), ErrorCode::EmptyPayload);
        assert_eq!(code(b"{\"user_id\": "), ErrorCode::InvalidJson);
        assert_eq!(code(b"not json"), ErrorCode::InvalidJson);
        assert_eq!(code(b"{} {}"), ErrorCode::InvalidJson);
        assert_eq!(code(b"\xef\xbb\xbf{}"), ErrorCode::InvalidJson);
        assert_eq!(code(b"{\"a\": \"\xff\xfe\"}"), ErrorCode::InvalidUtf8);
        assert_eq!(code(b"[1, 2, 3]"), ErrorCode::NotAnObject);
        assert_eq!(code(b"\"text\""), ErrorCode::NotAnObject);
        assert_eq!(code(b"null"), ErrorCode::NotAnObject);
        assert_eq!(code(b"42"), ErrorCode::NotAnObject);
    }

    #[test]
    fn oversize_payload_is_too_large() {
        let options = TransformOptions {
            max_payload_bytes: 100,
            ..Default::default()
        };
        let r = run_with(SAMPLE.as_bytes(), options).unwrap_err();
        assert_eq!(r.code, ErrorCode::TooLarge);
    }

    #[test]
    fn deep_nesting_is_too_deep_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(code(deep.as_bytes()), ErrorCode::TooDeep);
        let inner = format!("{{\"x\": {}1{}}}", "[".repeat(5000), "]".repeat(5000));
        assert_eq!(code(inner.as_bytes()), ErrorCode::TooDeep);
    }

    #[test]
    fn duplicate_known_key_is_rejected_but_unknown_duplicates_are_fine() {
        let dup = SAMPLE.replacen('{', r#"{"user_id": "someone-else", "#, 1);
        let r = run(dup.as_bytes()).unwrap_err();
        assert_eq!(
            (r.code, r.field),
            (ErrorCode::DuplicateField, Some("user_id"))
        );
        let extra = SAMPLE.replacen('{', r#"{"x": 1, "x": [2], "#, 1);
        assert!(run(extra.as_bytes()).is_ok());
    }

    proptest::proptest! {
        /// The hand-written writer produces exactly serde_json's bytes, for any strings.
        #[test]
        fn write_json_matches_serde_json(
            user in ".{0,40}",
            device in "\\PC{0,20}",
            ts in 0u64..=MAX_TIMESTAMP,
            filled in proptest::bool::ANY,
        ) {
            let event = LoginEvent {
                user_id: Cow::Owned(user),
                device_id: Cow::Owned(device),
                device_type: Cow::Borrowed("ios"),
                app_version: Cow::Borrowed("2.3.0"),
                locale: LocaleCode(*b"WA"),
                ip: Cow::Borrowed("10.0.0.1"),
                ip_class: IpClass::Private,
                timestamp: ts,
                event_time: Rfc3339::from_unix(ts),
                filled: if filled { vec!["device_type", "locale"] } else { vec![] },
            };
            let mut out = Vec::new();
            event.write_json(&mut out);
            proptest::prop_assert_eq!(out, serde_json::to_vec(&event).unwrap());
        }
    }

    #[test]
    fn escaped_strings_are_decoded_and_reencoded() {
        let out = run(with("user_id", r#""a\"b\u00e9\n""#).as_bytes()).unwrap();
        assert!(out.starts_with(r#"{"user_id":"a\"bé""#), "{out}");
    }

    #[test]
    fn huge_numbers_in_ignored_fields_do_not_crash() {
        let huge = SAMPLE.replacen('{', r#"{"big": 1e400, "#, 1);
        assert_eq!(code(huge.as_bytes()), ErrorCode::InvalidJson);
        let int = SAMPLE.replacen('{', r#"{"big": 123456789012345678901234567890, "#, 1);
        // simd-json (without its big-number feature) refuses integers it cannot hold in 64
        // bits or an f64: the record is dead-lettered as invalid JSON, never crashes a worker.
        let r = run(int.as_bytes()).unwrap_err();
        assert_eq!(r.code, ErrorCode::InvalidJson);
        assert!(r.message.contains("Number"), "{}", r.message);
    }

    #[test]
    fn ip_classes() {
        let class = |s: &str| IpClass::of(s.parse().unwrap());
        assert_eq!(class("25.67.253.124"), IpClass::Public);
        assert_eq!(class("10.1.2.3"), IpClass::Private);
        assert_eq!(class("172.31.0.1"), IpClass::Private);
        assert_eq!(class("172.32.0.1"), IpClass::Public);
        assert_eq!(class("192.168.1.1"), IpClass::Private);
        assert_eq!(class("127.0.0.1"), IpClass::Loopback);
        assert_eq!(class("169.254.9.9"), IpClass::LinkLocal);
        assert_eq!(class("100.100.0.1"), IpClass::Shared);
        assert_eq!(class("239.1.1.1"), IpClass::Multicast);
        assert_eq!(class("255.255.255.255"), IpClass::Broadcast);
        assert_eq!(class("0.1.2.3"), IpClass::Unspecified);
        assert_eq!(class("198.51.100.7"), IpClass::Documentation);
        assert_eq!(class("198.19.0.1"), IpClass::Benchmarking);
        assert_eq!(class("250.0.0.1"), IpClass::Reserved);
        assert_eq!(class("::1"), IpClass::Loopback);
        assert_eq!(class("::ffff:10.0.0.1"), IpClass::Private);
        assert_eq!(class("2606:4700::1111"), IpClass::Public);
        assert_eq!(class("fd00::1"), IpClass::Private);
    }

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(Rfc3339::from_unix(0).as_str(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Rfc3339::from_unix(951_782_400).as_str(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            Rfc3339::from_unix(1_720_589_697).as_str(),
            "2024-07-10T05:34:57Z"
        );
        assert_eq!(
            Rfc3339::from_unix(MAX_TIMESTAMP).as_str(),
            "9999-12-31T23:59:59Z"
        );
    }

    /// The shared corpus in tests/data: every file in `invalid/` is named `<code>--<what>` and
    /// must get that code; every line of `valid.jsonl` must pass.
    #[test]
    fn corpus_files_get_the_code_in_their_name() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir.join("invalid")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let expected = ErrorCode::parse(name.split("--").next().unwrap())
                .unwrap_or_else(|| panic!("{name}: file name must start with an error code"));
            let payload = std::fs::read(&path).unwrap();
            let mut t = Transformer::new(TransformOptions::default());
            let got = t.process(Some(&payload)).map(|_| ()).map_err(|r| r.code);
            assert_eq!(got, Err(expected), "{name}");
            checked += 1;
        }
        assert!(checked >= 30, "corpus has {checked} files");
        let valid = std::fs::read_to_string(dir.join("valid.jsonl")).unwrap();
        for line in valid.lines() {
            assert!(
                run(line.as_bytes()).is_ok(),
                "{line}: {:?}",
                run(line.as_bytes())
            );
        }
    }

    #[test]
    fn error_codes_round_trip() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
            assert_eq!(ErrorCode::ALL[c.index()], c);
        }
    }
}
