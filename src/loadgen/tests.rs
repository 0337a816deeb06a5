//! Tests of the load generator: determinism, labels proven against the real transformer, the
//! original feed's format, the realistic population. The flags are tested in cli/loadgen.rs; the broker round trip is in
//! tests/integration/loadgen.rs.

use std::collections::{HashMap, HashSet};

use super::hostile::{self, BadKind};
use super::profiles::{Population, STATES};
use super::rng::Rng;
use super::*;
use crate::testing::Login;
use crate::transform::{Field, TransformOptions, Transformer};

/// The pipeline's default validation options (the labels assume them).
fn pipeline_options() -> TransformOptions {
    TransformOptions::default()
}

#[test]
fn default_oversize_payload_exceeds_the_default_limit() {
    // Otherwise the hostile profile's oversize records would not be too_large.
    assert!(GenOptions::default().oversize_bytes > pipeline_options().max_payload_bytes);
}

fn generate(profile: Profile, seed: u64, n: usize) -> Vec<GenRecord> {
    Generator::new(profile, seed, GenOptions::default())
        .take(n)
        .collect()
}

fn classify(t: &mut Transformer, value: Option<&[u8]>) -> Expect {
    match t.process(value) {
        Ok(_) => Expect::Valid,
        Err(rejection) => Expect::Invalid(rejection.code),
    }
}

fn preview(value: Option<&[u8]>) -> String {
    match value {
        None => "<null>".into(),
        Some(v) => String::from_utf8_lossy(&v[..v.len().min(300)]).into_owned(),
    }
}

const PROFILES: [Profile; 3] = [Profile::Original, Profile::Realistic, Profile::Hostile];

#[test]
fn same_seed_gives_the_same_records_and_another_seed_does_not() {
    for profile in PROFILES {
        let a = generate(profile, 42, 3000);
        assert_eq!(a, generate(profile, 42, 3000), "{profile:?}");
        let b = generate(profile, 43, 3000);
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert!(
            same < 30,
            "{profile:?}: {same} identical records across seeds"
        );
    }
}

/// FNV-1a over keys, values and labels: a fingerprint of a record sequence.
fn fingerprint(records: &[GenRecord]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for r in records {
        for part in [&r.key, &r.value] {
            match part {
                None => eat(b"\xffnull"),
                Some(bytes) => {
                    eat(&(bytes.len() as u64).to_le_bytes());
                    eat(bytes);
                }
            }
        }
        eat(r.expect.as_str().as_bytes());
    }
    h
}

/// A seed must name the same records in every version: if this fails, the generator's output
/// changed, and runs recorded with earlier versions can no longer be reproduced. Change the
/// constants only on purpose, and say so in the change log.
#[test]
fn output_is_stable_across_versions() {
    let golden = [
        (Profile::Original, 0x526724d2542cb4de),
        (Profile::Realistic, 0xf1a67d2a94194341),
        (Profile::Hostile, 0x5a01d19c256ad06f),
    ];
    let got = golden.map(|(profile, _)| (profile, fingerprint(&generate(profile, 1, 1000))));
    assert_eq!(got, golden, "fingerprints changed");
}

#[test]
fn labels_match_the_transformer_for_every_profile() {
    for profile in PROFILES {
        let mut t = Transformer::new(pipeline_options());
        let mut seen: HashMap<Expect, u64> = HashMap::new();
        for (i, r) in Generator::new(profile, 7, GenOptions::default())
            .take(20_000)
            .enumerate()
        {
            let got = classify(&mut t, r.value.as_deref());
            assert_eq!(
                got,
                r.expect,
                "{profile:?} record {i}: {}",
                preview(r.value.as_deref())
            );
            *seen.entry(r.expect).or_default() += 1;
        }
        if profile == Profile::Hostile {
            let valid = seen[&Expect::Valid] as f64 / 20_000.0;
            assert!((0.47..0.53).contains(&valid), "valid share {valid}");
            // output_rejected is the producer's verdict on a valid record, not the input's.
            for code in ErrorCode::ALL
                .into_iter()
                .filter(|&c| c != ErrorCode::OutputRejected)
            {
                assert!(
                    seen.contains_key(&Expect::Invalid(code)),
                    "hostile never produced {code}"
                );
            }
        }
    }
}

/// Each bad kind on its own, many times over, so a rare variant cannot hide.
#[test]
fn every_bad_kind_gets_its_code() {
    let population = Population::new(3, 1000);
    let mut rng = Rng::new(3);
    let mut t = Transformer::new(pipeline_options());
    for kind in BadKind::ALL {
        let rounds = if matches!(kind, BadKind::Oversize | BadKind::TooDeep) {
            30
        } else {
            1500
        };
        for i in 0..rounds {
            let event = population.event(&mut rng, i, 1_720_589_697);
            let value = hostile::bad_value(kind, &mut rng, &event, 300_000);
            let got = classify(&mut t, value.as_deref());
            assert_eq!(
                got,
                Expect::Invalid(kind.code()),
                "{kind:?}: {}",
                preview(value.as_deref())
            );
        }
    }
}

#[test]
fn odd_but_valid_events_pass() {
    let population = Population::new(4, 1000);
    let mut rng = Rng::new(4);
    let mut t = Transformer::new(pipeline_options());
    for i in 0..20_000 {
        let event = population.event(&mut rng, i, 1_720_589_697);
        let value = hostile::odd_valid(&mut rng, &event);
        let result = t.process(Some(&value));
        assert!(
            result.is_ok(),
            "{:?}: {}",
            result.err(),
            preview(Some(&value))
        );
    }
}

#[test]
fn oversize_payload_has_the_requested_size() {
    let population = Population::new(5, 10);
    let mut rng = Rng::new(5);
    for size in [1024, 262_145, 300_000, 990_000] {
        let event = population.event(&mut rng, 0, 1_720_589_697);
        let value = hostile::bad_value(BadKind::Oversize, &mut rng, &event, size).unwrap();
        assert_eq!(value.len(), size);
        assert!(
            serde_json::from_slice::<serde_json::Value>(&value).is_ok(),
            "valid JSON, only too big"
        );
    }
}

#[test]
fn missing_device_type_is_valid_when_the_pipeline_fills_it() {
    let mut options = pipeline_options();
    options.set_fill(Field::DeviceType, "unknown").unwrap();
    let mut t = Transformer::new(options);
    let mut filled = 0;
    for r in generate(Profile::Realistic, 9, 10_000) {
        if r.expect == Expect::Invalid(ErrorCode::MissingField) {
            // Either device_type was left out (now filled), or a bad record lacks another field.
            match t.process(r.value.as_deref()) {
                Ok(_) => filled += 1,
                Err(e) => assert!(
                    e.code == ErrorCode::MissingField && e.field != Some("device_type"),
                    "{e:?}"
                ),
            }
        }
    }
    assert!(filled > 300, "{filled}");
}

#[test]
fn original_profile_matches_the_python_feed() {
    const N: usize = 20_000;
    let options = GenOptions::default();
    let base = options.base_time;
    let mut missing = 0;
    let mut keys = HashSet::new();
    let states: HashSet<&str> = STATES.iter().map(|(s, _)| *s).collect();
    for (i, r) in Generator::new(Profile::Original, 11, options)
        .take(N)
        .enumerate()
    {
        let text = std::str::from_utf8(r.value.as_deref().unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let field = |name: &str| {
            v[name]
                .as_str()
                .unwrap_or_else(|| panic!("{name} in {text}"))
                .to_owned()
        };
        let device_type = v.get("device_type").map(|d| d.as_str().unwrap());
        match device_type {
            Some(device_type) => assert!(matches!(device_type, "android" | "iOS"), "{text}"),
            None => missing += 1,
        }
        // Rebuild the text the way Python's json.dumps writes it, and compare byte for byte.
        let python = Login::default()
            .user_id(&field("user_id"))
            .app_version(&field("app_version"))
            .ip(&field("ip"))
            .locale(&field("locale"))
            .device_id(&field("device_id"))
            .timestamp(v["timestamp"].as_u64().unwrap())
            .maybe("device_type", device_type)
            .to_string();
        assert_eq!(text, python);
        assert_eq!(field("app_version"), "2.3.0");
        assert!(states.contains(field("locale").as_str()), "{text}");
        assert!(field("ip").parse::<std::net::Ipv4Addr>().is_ok(), "{text}");
        assert_eq!(v["timestamp"].as_u64().unwrap(), base + i as u64 / 1000);
        for id in [field("user_id"), field("device_id")] {
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "4", "{id}");
        }
        let key = String::from_utf8(r.key.unwrap()).unwrap();
        assert_eq!(key.len(), 36);
        assert!(keys.insert(key), "keys are fresh");
    }
    let share = missing as f64 / N as f64;
    // 5% of 20,000: one standard deviation is 0.15 points.
    assert!(
        (0.044..0.056).contains(&share),
        "missing device_type share {share}"
    );
}

#[test]
fn original_event_time_follows_the_rate() {
    let options = GenOptions {
        rate: 2.0,
        base_time: 1000,
        ..GenOptions::default()
    };
    let times: Vec<u64> = Generator::new(Profile::Original, 1, options)
        .take(6)
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.value.unwrap()).unwrap()["timestamp"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(times, [1000, 1000, 1001, 1001, 1002, 1002]);
}

/// The fields of the valid records of a realistic run.
fn realistic_events(n: usize) -> Vec<(u64, serde_json::Value)> {
    Generator::new(Profile::Realistic, 13, GenOptions::default())
        .take(n)
        .enumerate()
        .filter(|(_, r)| r.expect == Expect::Valid)
        .map(|(i, r)| {
            (
                i as u64,
                serde_json::from_slice(r.value.as_deref().unwrap()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn realistic_users_follow_the_population() {
    const N: usize = 100_000;
    let events = realistic_events(N);
    let users: HashSet<&str> = events
        .iter()
        .map(|(_, e)| e["user_id"].as_str().unwrap())
        .collect();
    // Expected number of distinct users among the valid events, from the Zipf probabilities.
    let population = Population::new(13, 10_000);
    let draws = events.len() as f64;
    let expected: f64 = (0..10_000)
        .map(|k| 1.0 - (1.0 - population.activity.probability(k)).powf(draws))
        .sum();
    let distinct = users.len() as f64;
    assert!(distinct < 0.1 * N as f64, "{distinct} distinct users");
    assert!(
        (distinct / expected - 1.0).abs() < 0.03,
        "{distinct} distinct users, expected about {expected:.0}"
    );

    // Devices are stable: one owner, one device_type spelling each; users have 1 to 3 devices.
    let mut devices: HashMap<&str, (&str, &str)> = HashMap::new();
    let mut per_user: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (_, e) in &events {
        let (user, device, kind) = (
            e["user_id"].as_str().unwrap(),
            e["device_id"].as_str().unwrap(),
            e["device_type"].as_str().unwrap(),
        );
        assert_eq!(*devices.entry(device).or_insert((user, kind)), (user, kind));
        per_user.entry(user).or_default().insert(device);
    }
    assert!(per_user.values().all(|d| (1..=3).contains(&d.len())));
    assert!(per_user.values().any(|d| d.len() == 3));
    let spellings: HashSet<&str> = devices.values().map(|(_, kind)| *kind).collect();
    assert!(
        spellings.is_superset(&HashSet::from(["iOS", "ios", "android", "Android"])),
        "{spellings:?}"
    );
}

#[test]
fn realistic_versions_move_up_over_time() {
    let events = realistic_events(100_000);
    let newer_share = |range: std::ops::Range<u64>| {
        let in_range: Vec<_> = events.iter().filter(|(i, _)| range.contains(i)).collect();
        let newer = in_range
            .iter()
            .filter(|(_, e)| e["app_version"].as_str().unwrap() >= "2.4.0")
            .count();
        newer as f64 / in_range.len() as f64
    };
    let (early, late) = (newer_share(0..10_000), newer_share(90_000..100_000));
    assert!(
        early < 0.2 && late > 0.6,
        "share on 2.4+: {early:.2} early, {late:.2} late"
    );
    let versions: HashSet<&str> = events
        .iter()
        .map(|(_, e)| e["app_version"].as_str().unwrap())
        .collect();
    assert!(versions.len() >= 5, "{versions:?}");
}

#[test]
fn realistic_mix_of_timestamps_addresses_and_errors() {
    const N: usize = 50_000;
    let records = generate(Profile::Realistic, 17, N);
    let share =
        |expect: Expect| records.iter().filter(|r| r.expect == expect).count() as f64 / N as f64;
    let missing = share(Expect::Invalid(ErrorCode::MissingField));
    let valid = share(Expect::Valid);
    // 5% without device_type plus the missing-field share of the 1% bad records.
    assert!((0.045..0.056).contains(&missing), "{missing}");
    assert!((0.93..0.95).contains(&valid), "{valid}");
    let events = realistic_events(N);
    let string_ts = events
        .iter()
        .filter(|(_, e)| e["timestamp"].is_string())
        .count() as f64
        / events.len() as f64;
    assert!((0.08..0.12).contains(&string_ts), "{string_ts}");
    let public = events
        .iter()
        .filter(|(_, e)| {
            let ip: std::net::IpAddr = e["ip"].as_str().unwrap().parse().unwrap();
            crate::transform::IpClass::of(ip) == crate::transform::IpClass::Public
        })
        .count() as f64
        / events.len() as f64;
    assert!((0.85..0.95).contains(&public), "{public}");
}

#[test]
fn expect_indices_round_trip() {
    for i in 0..Expect::COUNT {
        assert_eq!(Expect::from_index(i).unwrap().index(), i);
    }
    assert_eq!(Expect::from_index(Expect::COUNT), None);
    assert_eq!(Expect::Invalid(ErrorCode::TooLarge).as_str(), "too_large");
}
