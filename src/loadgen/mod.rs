//! Login traffic for demos, load tests and robustness tests: the pure generator behind
//! `kafka-pipeline loadgen`.
//!
//! [`Generator`]: a profile, a seed and [`GenOptions`] in, an endless, reproducible sequence of
//! [`GenRecord`]s out, each labelled with what the pipeline must make of it ([`Expect`]). Tests
//! and benchmarks use it without Kafka; [`crate::commands::loadgen`] sends its records to a
//! topic with a `BaseProducer`, paced to `--rate`, and prints what it sent.
//!
//! Profiles:
//! - `original`: the original Python generator's feed, byte for byte in format: fresh UUIDs,
//!   version `2.3.0`, any IPv4, a uniform state code, `android` or `iOS` (absent in ~5%).
//! - `realistic` (default): a population of `--users` users with Zipf-distributed activity, 1–3
//!   devices each, app upgrades over time, locales by state population, mostly public addresses,
//!   ~10% string timestamps, a little reordering in event time, `--missing-rate` events without
//!   `device_type` and `--invalid-rate` cheap bad records.
//! - `hostile`: half valid (plain or odd but legal), half spread evenly over every kind of bad
//!   record the pipeline must survive, deep nesting and an oversize payload included.
//!
//! Event time: event `i` carries `--base-time + i / --rate` seconds (`i / 1000` when the rate is
//! 0, so a fast run spans 1000 events per second of event time), whatever the wall clock does;
//! the realistic profile then makes 10% of events 1–5 s late and 1% 30–600 s late. With the
//! same profile, seed and options the records are identical, byte for byte: the generator draws
//! from its own PRNG (xoshiro256** seeded by SplitMix64, in `loadgen/rng.rs`), and a golden
//! test pins the output of each profile, so a change that would alter what a seed produces
//! cannot go unnoticed.

mod hostile;
mod profiles;
mod rng;

use clap::ValueEnum;
use hostile::BadKind;
use profiles::Population;
use rng::Rng;

use crate::transform::{ErrorCode, MAX_TIMESTAMP};

/// What kind of traffic to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum Profile {
    /// The original Python generator's feed.
    Original,
    /// A user population with realistic activity, devices, versions and a few bad records.
    Realistic,
    /// Half valid, half every kind of bad input.
    Hostile,
}

impl Profile {
    /// Label of the profile's random stream (fixed, so reordering the enum changes nothing).
    fn stream(self) -> u64 {
        match self {
            Profile::Original => 1,
            Profile::Realistic => 2,
            Profile::Hostile => 3,
        }
    }
}

/// Knobs of the generator (the profile and seed aside).
#[derive(Clone, Debug, PartialEq)]
pub struct GenOptions {
    /// Size of the realistic user population (at least 1).
    pub users: usize,
    /// Fraction of realistic events without `device_type`, in `[0, 1]`.
    pub missing_rate: f64,
    /// Fraction of realistic events replaced by a cheap bad record, in `[0, 1]`.
    pub invalid_rate: f64,
    /// Event time of the first event, Unix seconds.
    pub base_time: u64,
    /// Events per second of event time; 0 means 1000 (see the module doc).
    pub rate: f64,
    /// Size of the hostile oversize payload, in bytes.
    pub oversize_bytes: usize,
}

impl Default for GenOptions {
    /// The command line's defaults, with a fixed base time (2024-07-10T05:34:57Z) instead of now.
    fn default() -> Self {
        GenOptions {
            users: 10_000,
            missing_rate: 0.05,
            invalid_rate: 0.01,
            base_time: 1_720_589_697,
            rate: 0.0,
            oversize_bytes: 300_000,
        }
    }
}

/// What the pipeline must make of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Expect {
    /// Processed into `processed_data`.
    Valid,
    /// Dead-lettered with this code (with default validation options).
    Invalid(ErrorCode),
}

impl Expect {
    /// Number of distinct expectations: valid plus one per error code.
    pub const COUNT: usize = 1 + ErrorCode::ALL.len();

    /// `valid` or the error code, as written in the `loadgen.expect` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Valid => "valid",
            Expect::Invalid(code) => code.as_str(),
        }
    }

    /// Position in `0..Expect::COUNT`, for counter arrays: valid first, then codes in
    /// [`ErrorCode::ALL`] order.
    pub fn index(self) -> usize {
        match self {
            Expect::Valid => 0,
            Expect::Invalid(code) => 1 + code.index(),
        }
    }

    /// The inverse of [`Expect::index`].
    pub fn from_index(i: usize) -> Option<Expect> {
        match i {
            0 => Some(Expect::Valid),
            _ => ErrorCode::ALL.get(i - 1).map(|&c| Expect::Invalid(c)),
        }
    }
}

/// One Kafka record to send: key and value (`None` is null), and its label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenRecord {
    /// The record key.
    pub key: Option<Vec<u8>>,
    /// The record value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// What the pipeline must make of it.
    pub expect: Expect,
}

/// A deterministic, endless source of labelled login records.
#[derive(Clone, Debug)]
pub struct Generator {
    profile: Profile,
    options: GenOptions,
    rng: Rng,
    index: u64,
    /// The realistic population (also the source of the hostile profile's valid events).
    population: Option<Population>,
}

impl Generator {
    /// A generator for `profile`. Out-of-range options are clamped (users to at least 1, rates to
    /// `[0, 1]`, a negative or non-finite event rate to 0).
    pub fn new(profile: Profile, seed: u64, mut options: GenOptions) -> Self {
        options.users = options.users.max(1);
        options.missing_rate = clamp_fraction(options.missing_rate);
        options.invalid_rate = clamp_fraction(options.invalid_rate);
        if !(options.rate.is_finite() && options.rate > 0.0) {
            options.rate = 0.0;
        }
        let population = match profile {
            Profile::Original => None,
            Profile::Realistic | Profile::Hostile => Some(Population::new(seed, options.users)),
        };
        Generator {
            profile,
            options,
            // Each profile draws from its own stream of the seed.
            rng: Rng::new(rng::mix(seed, profile.stream())),
            index: 0,
            population,
        }
    }

    /// The number of records generated so far.
    pub fn generated(&self) -> u64 {
        self.index
    }

    /// The next record.
    pub fn next_record(&mut self) -> GenRecord {
        let index = self.index;
        self.index += 1;
        let timestamp = self.event_time(index);
        let Generator {
            profile,
            options,
            rng,
            population,
            ..
        } = self;
        match (*profile, population.as_ref()) {
            (Profile::Realistic, Some(population)) => {
                realistic(rng, options, population, index, timestamp)
            }
            (Profile::Hostile, Some(population)) => {
                hostile(rng, options, population, index, timestamp)
            }
            _ => original(rng, timestamp),
        }
    }

    fn event_time(&self, index: u64) -> u64 {
        let rate = if self.options.rate > 0.0 {
            self.options.rate
        } else {
            1000.0
        };
        self.options
            .base_time
            .saturating_add((index as f64 / rate) as u64)
            .min(MAX_TIMESTAMP)
    }
}

fn original(rng: &mut Rng, timestamp: u64) -> GenRecord {
    let event = profiles::original_event(rng, timestamp);
    let mut value = Vec::with_capacity(256);
    event.write_python(&mut value);
    GenRecord {
        key: Some(rng.uuid_v4().to_vec()),
        value: Some(value),
        expect: expect_of(&event),
    }
}

fn realistic(
    rng: &mut Rng,
    options: &GenOptions,
    population: &Population,
    index: u64,
    timestamp: u64,
) -> GenRecord {
    let key = Some(rng.uuid_v4().to_vec());
    let mut event = population.event(rng, index, timestamp);
    if rng.chance(options.invalid_rate) {
        let kind = *rng.pick(&BadKind::CHEAP);
        return GenRecord {
            key,
            value: hostile::bad_value(kind, rng, &event, options.oversize_bytes),
            expect: Expect::Invalid(kind.code()),
        };
    }
    if rng.chance(options.missing_rate) {
        event.device_type = None;
    }
    let mut value = Vec::with_capacity(256);
    event.write_python(&mut value);
    GenRecord {
        key,
        value: Some(value),
        expect: expect_of(&event),
    }
}

fn hostile(
    rng: &mut Rng,
    options: &GenOptions,
    population: &Population,
    index: u64,
    timestamp: u64,
) -> GenRecord {
    // Keys are not validated, but they are copied to the dead-letter topic: vary them too.
    let key = match rng.f64() {
        r if r < 0.85 => Some(rng.uuid_v4().to_vec()),
        r if r < 0.93 => None,
        r if r < 0.96 => Some(Vec::new()),
        _ => Some(rng.next_u64().to_le_bytes().to_vec()),
    };
    let event = population.event(rng, index, timestamp);
    if rng.chance(0.5) {
        let value = if rng.chance(0.5) {
            let mut value = Vec::with_capacity(256);
            event.write_python(&mut value);
            value
        } else {
            hostile::odd_valid(rng, &event)
        };
        return GenRecord {
            key,
            value: Some(value),
            expect: Expect::Valid,
        };
    }
    let kind = *rng.pick(&BadKind::ALL);
    GenRecord {
        key,
        value: hostile::bad_value(kind, rng, &event, options.oversize_bytes),
        expect: Expect::Invalid(kind.code()),
    }
}

impl Iterator for Generator {
    type Item = GenRecord;

    fn next(&mut self) -> Option<GenRecord> {
        Some(self.next_record())
    }
}

fn expect_of(event: &profiles::Event) -> Expect {
    match event.device_type {
        Some(_) => Expect::Valid,
        None => Expect::Invalid(ErrorCode::MissingField),
    }
}

fn clamp_fraction(f: f64) -> f64 {
    if f.is_nan() {
        0.0
    } else {
        f.clamp(0.0, 1.0)
    }
}

/// Largest `--oversize-bytes`: librdkafka refuses messages over `message.max.bytes` (1,000,000 by
/// default, key included), and the broker's limit is 1 MiB.
pub const MAX_OVERSIZE_BYTES: i64 = 990_000;

/// Records sent when neither `--count` nor `--duration` is given.
pub const DEFAULT_COUNT: u64 = 1000;

/// Header naming what the pipeline must make of the record (`valid` or an error code).
pub const EXPECT_HEADER: &str = "loadgen.expect";

/// Header carrying the record's index in the generated sequence.
pub const SEQ_HEADER: &str = "loadgen.seq";

#[cfg(test)]
mod tests;
