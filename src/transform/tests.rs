use std::net::IpAddr;

use super::*;
use crate::testing::{corpus, Login};
use crate::transform::json::needs_no_escape;
use crate::transform::validate::{fast_ipv4, is_version, parse_ip};

/// The first event of the corpus's `valid.jsonl`.
fn sample() -> Login {
    Login::default()
        .user_id("b22a51d5-0f2f-42e3-8505-f2f8d2b01060")
        .ip("25.67.253.124")
        .device_id("37e8136e-b36d-4717-aa68-dbfcaef4d499")
}

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

/// The sample with `field` set to the JSON text `json`.
fn with(field: &str, json: &str) -> Vec<u8> {
    sample().raw(field, json).to_bytes()
}

/// The sample without `field`.
fn without(field: &str) -> Vec<u8> {
    sample().without(field).to_bytes()
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
    let out = run(&sample().to_bytes()).unwrap();
    assert_eq!(
        out,
        r#"{"user_id":"b22a51d5-0f2f-42e3-8505-f2f8d2b01060","device_id":"37e8136e-b36d-4717-aa68-dbfcaef4d499","device_type":"ios","app_version":"2.3.0","locale":"WA","ip":"25.67.253.124","ip_class":"public","timestamp":1720589697,"event_time":"2024-07-10T05:34:57Z"}"#
    );
}

#[test]
fn timestamp_as_numeric_string_is_accepted() {
    let out = run(&with("timestamp", r#""1694479551""#)).unwrap();
    assert!(
        out.contains(r#""timestamp":1694479551,"event_time":"2023-09-12T00:45:51Z""#),
        "{out}"
    );
}

#[test]
fn case_variants_are_normalized() {
    let out = run(&with("device_type", r#"" Android ""#)).unwrap();
    assert!(out.contains(r#""device_type":"android""#), "{out}");
    let out = run(&with("locale", r#""wa""#)).unwrap();
    assert!(out.contains(r#""locale":"WA""#), "{out}");
}

#[test]
fn old_device_id_format_is_accepted() {
    let out = run(&with("device_id", r#""593-47-5928""#)).unwrap();
    assert!(out.contains(r#""device_id":"593-47-5928""#), "{out}");
}

#[test]
fn missing_device_type_is_a_dead_letter_by_default() {
    let r = run(&without("device_type")).unwrap_err();
    assert_eq!(r.code, ErrorCode::MissingField);
    assert_eq!(r.field, Some("device_type"));
    assert!(r.message.contains("device_type"), "{}", r.message);
    assert_eq!(code(&with("device_type", "null")), ErrorCode::MissingField);
}

#[test]
fn a_rejection_carries_the_timestamp_when_it_is_valid() {
    let r = run(&without("device_type")).unwrap_err();
    assert_eq!(r.event_time, Some(1_720_589_697));
    let r = run(&with("timestamp", r#""-3""#)).unwrap_err();
    assert_eq!(r.event_time, None);
    let r = run(&with("locale", "42")).unwrap_err();
    assert_eq!(r.event_time, Some(1_720_589_697));
    assert_eq!(run(b"[1]").unwrap_err().event_time, None);
}

#[test]
fn optional_field_takes_its_fill_value() {
    let mut options = TransformOptions::default();
    options.set_fill(Field::DeviceType, "unknown").unwrap();
    let out = run_with(&without("device_type"), options).unwrap();
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
        let r = run(&without(field.name())).unwrap_err();
        assert_eq!(
            (r.code, r.field),
            (ErrorCode::MissingField, Some(field.name()))
        );
    }
}

#[test]
fn wrong_types_are_invalid_type() {
    assert_eq!(code(&with("user_id", "42")), ErrorCode::InvalidType);
    assert_eq!(code(&with("ip", "[1,2]")), ErrorCode::InvalidType);
    assert_eq!(code(&with("locale", r#"{"a":1}"#)), ErrorCode::InvalidType);
    assert_eq!(code(&with("timestamp", "true")), ErrorCode::InvalidType);
    assert_eq!(
        code(&with("timestamp", "1720589697.5")),
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
        // 10^23 as a float (written as an integer it has over 64 bits: invalid_json).
        ("timestamp", "1e23"),
        ("user_id", "\"   \""),
    ] {
        let r = run(&with(field, value)).unwrap_err();
        assert_eq!(
            (r.code, r.field),
            (ErrorCode::InvalidValue, Some(field)),
            "{field}={value}"
        );
    }
    let long = format!("\"{}\"", "x".repeat(MAX_FIELD_BYTES + 1));
    assert_eq!(code(&with("user_id", &long)), ErrorCode::InvalidValue);
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
    let r = run_with(&sample().to_bytes(), options).unwrap_err();
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
    let dup = sample().append("user_id", r#""someone-else""#).to_bytes();
    let r = run(&dup).unwrap_err();
    assert_eq!(
        (r.code, r.field),
        (ErrorCode::DuplicateField, Some("user_id"))
    );
    let extra = sample().append("x", "1").append("x", "[2]").to_bytes();
    assert!(run(&extra).is_ok());
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
    let out = run(&with("user_id", r#""a\"b\u00e9\n""#)).unwrap();
    assert!(out.starts_with(r#"{"user_id":"a\"bé""#), "{out}");
}

#[test]
fn huge_numbers_in_ignored_fields_do_not_crash() {
    let huge = sample().append("big", "1e400").to_bytes();
    assert_eq!(code(&huge), ErrorCode::InvalidJson);
    let int = sample()
        .append("big", "123456789012345678901234567890")
        .to_bytes();
    // simd-json (without its big-number feature) refuses integers it cannot hold in 64
    // bits or an f64: the record is dead-lettered as invalid JSON, never crashes a worker.
    let r = run(&int).unwrap_err();
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
    let mut checked = 0;
    for case in corpus() {
        match case.expected {
            Some(expected) => {
                let mut t = Transformer::new(TransformOptions::default());
                let got = t
                    .process(Some(&case.payload))
                    .map(|_| ())
                    .map_err(|r| r.code);
                assert_eq!(got, Err(expected), "{}", case.name);
                checked += 1;
            }
            None => assert!(
                run(&case.payload).is_ok(),
                "{}: {:?}",
                case.name,
                run(&case.payload)
            ),
        }
    }
    assert!(checked >= 30, "corpus has {checked} files");
}

#[test]
fn error_codes_round_trip() {
    for c in ErrorCode::ALL {
        assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        assert_eq!(ErrorCode::ALL[c.index()], c);
    }
}
