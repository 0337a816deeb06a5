//! Raw values into checked fields: trimming, lengths, the IP address, locale, version and
//! timestamp rules, and the fill values of optional fields.

use std::borrow::Cow;
use std::net::IpAddr;

use super::event::{IpClass, LocaleCode, LoginEvent};
use super::parse::{Raw, RawEvent};
use super::schema::{ErrorCode, Field, Rejection};
use super::{TransformOptions, MAX_FIELD_BYTES, MAX_TIMESTAMP};
use crate::transform::parse::TopLevel;
use crate::transform::Rfc3339;

pub(crate) fn validate<'a>(
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
pub(crate) enum Checked {
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
pub(crate) fn check_field(value: &Raw<'_>, field: Field) -> Result<Checked, Rejection> {
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

/// `s` as an IP address, as `IpAddr::from_str` parses it, with a fast path for the usual
/// dotted-quad IPv4 address (the standard parser cost 200 instructions per event).
pub(crate) fn parse_ip(s: &str) -> Result<IpAddr, std::net::AddrParseError> {
    fast_ipv4(s.as_bytes()).map_or_else(|| s.parse(), |v4| Ok(IpAddr::V4(v4)))
}

/// A dotted quad of decimal octets without leading zeros, as the standard parser accepts it;
/// `None` for anything else (which the standard parser then decides on).
pub(crate) fn fast_ipv4(b: &[u8]) -> Option<std::net::Ipv4Addr> {
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

pub(crate) fn is_version(s: &str) -> bool {
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
