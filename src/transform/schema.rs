//! The contract's names: the error codes of a rejection, and the fields of a login event.

use std::fmt;

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
    /// A valid record whose processed form the broker or the client refused for good (too large
    /// for the output topic, an invalid record, no permission): dead-lettered by the producer
    /// stage, with the processed value, so nothing stalls on it.
    OutputRejected,
}

impl ErrorCode {
    /// Every code, in a stable order (for metrics and documentation).
    pub const ALL: [ErrorCode; 12] = [
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
        ErrorCode::OutputRejected,
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
            ErrorCode::OutputRejected => "output_rejected",
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
            ErrorCode::OutputRejected => "produce",
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
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            field: None,
            message: message.into(),
            event_time: None,
        }
    }

    pub(crate) fn field(code: ErrorCode, field: Field, message: impl fmt::Display) -> Self {
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
