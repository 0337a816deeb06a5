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

//!
//! The files: [`schema`] (error codes, rejections, the field names), `parse` (the payload
//! into borrowed raw values, serde visitors shared by simd-json and serde_json), `validate`
//! (raw values into checked fields), [`event`] (the normalized event and its classifications),
//! [`json`] (the output record's JSON writer), [`time`] (RFC 3339 without a calendar crate),
//! [`headers`] (the lineage and dead-letter header contract).

pub mod event;
pub mod headers;
pub mod json;
mod parse;
pub mod schema;
pub mod time;
mod validate;

use std::borrow::Cow;

pub use self::event::{IpClass, LocaleCode, LoginEvent};
use self::parse::{Raw, TopLevel};
pub use self::schema::{ErrorCode, Field, Rejection};
pub use self::time::Rfc3339;
use self::validate::{check_field, validate};

/// Longest accepted value of a string field, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;

/// Default limit on a payload's size: login events are a few hundred bytes, so anything this
/// large is a mistake (and would not fit a dead-letter topic with default limits if it grew).
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Latest accepted `timestamp`: 9999-12-31T23:59:59Z, the last second RFC 3339 can write.
pub const MAX_TIMESTAMP: u64 = 253_402_300_799;

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

#[cfg(test)]
mod tests;
