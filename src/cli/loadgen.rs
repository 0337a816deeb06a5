//! Flags of `kafka-pipeline loadgen`.

use std::time::Duration;

use crate::cli::kafka::KafkaArgs;
use crate::cli::values::parse_duration;
use crate::loadgen::{GenOptions, Profile, DEFAULT_COUNT, MAX_OVERSIZE_BYTES};
use crate::transform::MAX_TIMESTAMP;

/// Flags of `kafka-pipeline loadgen`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadgenArgs {
    /// Connection flags (`--brokers`, `-X`).
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Topic to produce to.
    #[arg(
        long,
        env = "KAFKA_PIPELINE_LOADGEN_TOPIC",
        default_value = "user-login"
    )]
    pub topic: String,

    /// Stop after this many records (with --duration: whichever comes first) [default: 1000
    /// when --duration is not given].
    #[arg(long, env = "KAFKA_PIPELINE_LOADGEN_COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Stop after this long, e.g. 30s, 5m (with --count: whichever comes first).
    #[arg(long, env = "KAFKA_PIPELINE_LOADGEN_DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Records per second, on a fixed schedule (record i is due i/RATE s after the start);
    /// 0 sends as fast as the broker takes them.
    #[arg(long, env = "KAFKA_PIPELINE_LOADGEN_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub rate: f64,

    /// Create the topic with this many partitions if it does not exist (otherwise the broker's
    /// auto-creation, if enabled, decides).
    #[arg(long, env = "KAFKA_PIPELINE_LOADGEN_PARTITIONS", value_parser = clap::value_parser!(i32).range(1..=100_000))]
    pub partitions: Option<i32>,

    /// Seed of the generator: the same seed, profile, options and base time give the same records.
    #[arg(long, env = "KAFKA_PIPELINE_LOADGEN_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Kind of traffic.
    #[arg(long, env = "KAFKA_PIPELINE_LOADGEN_PROFILE", value_enum, default_value_t = Profile::Realistic)]
    pub profile: Profile,

    /// Number of users in the realistic population.
    #[arg(long, env = "KAFKA_PIPELINE_LOADGEN_USERS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub users: u32,

    /// Fraction of realistic events without device_type (dead letters unless the pipeline runs
    /// with --optional-field device_type=...).
    #[arg(long, env = "KAFKA_PIPELINE_LOADGEN_MISSING_RATE", default_value_t = 0.05, value_parser = parse_fraction)]
    pub missing_rate: f64,

    /// Fraction of realistic events replaced by a bad record (malformed, wrong types, ...).
    #[arg(long, env = "KAFKA_PIPELINE_LOADGEN_INVALID_RATE", default_value_t = 0.01, value_parser = parse_fraction)]
    pub invalid_rate: f64,

    /// Event time of the first record, Unix seconds [default: now; with --rate 0 and a count,
    /// early enough that the last event is now].
    #[arg(long, env = "KAFKA_PIPELINE_LOADGEN_BASE_TIME", value_parser = clap::value_parser!(u64).range(0..=MAX_TIMESTAMP))]
    pub base_time: Option<u64>,

    /// Size of the hostile profile's oversize payload; must exceed the pipeline's
    /// --max-payload-bytes to be too_large, and stay under the broker's 1 MB message limit.
    #[arg(long, env = "KAFKA_PIPELINE_LOADGEN_OVERSIZE_BYTES", default_value_t = 300_000,
          value_parser = clap::value_parser!(u32).range(1024..=MAX_OVERSIZE_BYTES))]
    pub oversize_bytes: u32,

    /// Add a `loadgen.expect` header (`valid` or the expected error code) and a `loadgen.seq`
    /// header (the record's index) to every record, so tests can check classification end to end.
    #[arg(long, env = "KAFKA_PIPELINE_LOADGEN_LABEL")]
    pub label: bool,
}

impl LoadgenArgs {
    /// The generator options these flags ask for, with the base time resolved to `now` if unset.
    pub fn gen_options(&self, now: u64) -> GenOptions {
        GenOptions {
            users: self.users as usize,
            missing_rate: self.missing_rate,
            invalid_rate: self.invalid_rate,
            base_time: self
                .base_time
                .unwrap_or_else(|| self.default_base_time(now)),
            rate: self.rate,
            oversize_bytes: self.oversize_bytes as usize,
        }
    }

    /// Without `--base-time`: now; but with `--rate 0` and a count, now minus the span of event
    /// time the run covers (1000 events per second), so the events end at the present instead
    /// of running into the future, which a pipeline would (rightly) not trust.
    fn default_base_time(&self, now: u64) -> u64 {
        match self.count_limit() {
            Some(count) if self.rate == 0.0 => now.saturating_sub(count / 1000),
            _ => now,
        }
    }

    /// The record limit: `--count`, or [`DEFAULT_COUNT`] when no limit is given at all.
    pub fn count_limit(&self) -> Option<u64> {
        match (self.count, self.duration) {
            (None, None) => Some(DEFAULT_COUNT),
            (count, _) => count,
        }
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!(
            "expected a number of records per second >= 0, got {s:?}"
        )),
    }
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("expected a fraction between 0 and 1, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::transform::TransformOptions;

    #[test]
    fn default_oversize_payload_exceeds_the_default_limit() {
        // Otherwise the hostile profile's oversize records would not be too_large.
        let limit = TransformOptions::default().max_payload_bytes;
        assert!(parse(&[]).unwrap().oversize_bytes as usize > limit);
    }

    fn parse(args: &[&str]) -> Result<LoadgenArgs, clap::Error> {
        let argv = ["kafka-pipeline", "loadgen"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Loadgen(args) => Ok(args),
            other => panic!("not loadgen: {other:?}"),
        }
    }

    #[test]
    fn flags_have_the_documented_defaults() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.topic, "user-login");
        assert_eq!(a.kafka.brokers, "localhost:29092");
        assert_eq!(a.count_limit(), Some(DEFAULT_COUNT));
        assert_eq!((a.rate, a.seed, a.profile), (0.0, 1, Profile::Realistic));
        assert_eq!(
            (a.users, a.missing_rate, a.invalid_rate),
            (10_000, 0.05, 0.01)
        );
        assert_eq!(
            (a.oversize_bytes, a.label, a.base_time, a.partitions),
            (300_000, false, None, None)
        );
        // Rate 0 with the default count of 1000: one second of event time, ending now.
        assert_eq!(a.gen_options(1234).base_time, 1233);
        let paced = parse(&["--rate", "50"]).unwrap();
        assert_eq!(paced.gen_options(1234).base_time, 1234);
    }

    #[test]
    fn count_and_duration_combine() {
        assert_eq!(parse(&["--duration", "30s"]).unwrap().count_limit(), None);
        let a = parse(&["--duration", "1s", "--count", "5"]).unwrap();
        assert_eq!(
            (a.count_limit(), a.duration),
            (Some(5), Some(std::time::Duration::from_secs(1)))
        );
    }

    #[test]
    fn flags_parse() {
        let a = parse(&[
            "--profile",
            "hostile",
            "--label",
            "--rate",
            "200",
            "--partitions",
            "3",
            "--base-time",
            "1720589697",
            "-X",
            "linger.ms=20",
        ])
        .unwrap();
        assert_eq!(
            (a.profile, a.label, a.rate, a.partitions),
            (Profile::Hostile, true, 200.0, Some(3))
        );
        assert_eq!(a.gen_options(0).base_time, 1_720_589_697);
        assert_eq!(
            a.kafka.properties,
            [("linger.ms".to_owned(), "20".to_owned())]
        );
        assert_eq!(
            parse(&["--profile", "original"]).unwrap().profile,
            Profile::Original
        );
    }

    #[test]
    fn bad_flag_values_are_rejected() {
        for bad in [
            &["--missing-rate", "1.5"][..],
            &["--invalid-rate", "-0.1"],
            &["--rate", "-1"],
            &["--rate", "NaN"],
            &["--rate", "inf"],
            &["--count", "0"],
            &["--users", "0"],
            &["--partitions", "0"],
            &["--profile", "chaos"],
            &["--oversize-bytes", "2000000"],
            &["--duration", "soon"],
            &["--base-time", "-5"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
