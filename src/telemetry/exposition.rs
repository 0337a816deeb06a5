//! The Prometheus text exposition (format 0.0.4) of [`Metrics`], served at `/metrics`.
//!
//! Every family is one row of `FAMILIES`: its name, type, help text, and how its samples are
//! read from the atomics. The names are a contract with the dashboards and alert rules
//! (deploy/, the README's "Metrics" section): rename nothing without them.

use std::fmt::{Display, Write as _};
use std::sync::atomic::Ordering::Relaxed;

use super::latency::LATENCY_BUCKETS;
use super::metrics::{unix_ms, Metrics, PARTITION_STATES};
use crate::insights::window::LateCause;
use crate::transform::ErrorCode;

/// Topic names for the `topic` label, by destination index (output, dead letters, insights).
pub type TopicNames<'a> = [&'a str; 3];

/// What a scrape reads from.
struct Scrape<'a> {
    m: &'a Metrics,
    topics: TopicNames<'a>,
    input_topic: &'a str,
    ready: bool,
}

/// One metric family.
struct Family {
    /// Name after the `kafka_pipeline_` prefix.
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: fn(&Scrape<'_>, &mut Samples<'_>),
}

/// Writes the sample lines of one family.
struct Samples<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Samples<'_> {
    /// `kafka_pipeline_<name><suffix>{labels} value`; label values are escaped.
    fn sample(&mut self, suffix: &str, labels: &[(&str, &str)], value: impl Display) {
        let _ = write!(self.out, "kafka_pipeline_{}{suffix}", self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, v)) in labels.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(self.out, "{sep}{key}=\"{}\"", label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family of one unlabelled sample.
    fn value(&mut self, value: impl Display) {
        self.sample("", &[], value);
    }

    /// One sample per topic of the outputs, by destination index (output, dead letters, insights).
    fn per_topic(&mut self, s: &Scrape<'_>, values: &[std::sync::atomic::AtomicU64; 3]) {
        for (topic, value) in s.topics.iter().zip(values) {
            self.sample("", &[("topic", topic)], value.load(Relaxed));
        }
    }
}

/// Every family, in exposition order.
const FAMILIES: &[Family] = &[
    Family {
        name: "build_info",
        kind: "gauge",
        help: "Version and git revision of the running binary (always 1).",
        samples: |_, out| {
            let revision = option_env!("KAFKA_PIPELINE_REVISION").unwrap_or("unknown");
            let labels = [("version", env!("CARGO_PKG_VERSION")), ("revision", revision)];
            out.sample("", &labels, 1)
        },
    },
    Family {
        name: "workers",
        kind: "gauge",
        help: "Worker threads.",
        samples: |s, out| out.value(s.m.gauges.workers.load(Relaxed)),
    },
    Family {
        name: "events_received_total",
        kind: "counter",
        help: "Input records handed to the workers.",
        samples: |s, out| out.value(s.m.received.load(Relaxed)),
    },
    Family {
        name: "events_processed_total",
        kind: "counter",
        help: "Valid input records transformed to the output topic.",
        samples: |s, out| out.value(s.m.valid.load(Relaxed)),
    },
    Family {
        name: "events_dead_lettered_total",
        kind: "counter",
        help: "Input records sent to the dead-letter topic, by error code.",
        samples: |s, out| {
            for code in ErrorCode::ALL {
                let count = s.m.dead_lettered[code.index()].load(Relaxed);
                out.sample("", &[("code", code.as_str())], count);
            }
        },
    },
    Family {
        name: "records_delivered_total",
        kind: "counter",
        help: "Records acknowledged by the broker, by topic (output, dead letters, insights).",
        samples: |s, out| out.per_topic(s, &s.m.delivered_by_topic),
    },
    Family {
        name: "delivery_failures_total",
        kind: "counter",
        help: "Deliveries that failed, by topic (retried, or written in their fallback form when refused for good).",
        samples: |s, out| out.per_topic(s, &s.m.delivery_failures_by_topic),
    },
    Family {
        name: "dead_letters_truncated_total",
        kind: "counter",
        help: "Dead letters the dead-letter topic refused whole (too large, invalid), written reduced: value dropped, __pipeline.errors.truncated set.",
        samples: |s, out| out.value(s.m.dead_letters_truncated.load(Relaxed)),
    },
    Family {
        name: "transactions_aborted_total",
        kind: "counter",
        help: "Exactly-once: transactions aborted on an abortable error (a rebalance, a lost partition, a failed delivery) and read again in-process from the committed positions.",
        samples: |s, out| out.value(s.m.rewinds.load(Relaxed)),
    },
    Family {
        name: "retry_backlog_records",
        kind: "gauge",
        help: "Records waiting for a retry after a retriable delivery failure (their input offsets stay uncommitted).",
        samples: |s, out| out.value(s.m.gauges.retry_backlog.load(Relaxed)),
    },
    Family {
        name: "commits_total",
        kind: "counter",
        help: "Offset commits acknowledged by the group coordinator.",
        samples: |s, out| out.value(s.m.commits.load(Relaxed)),
    },
    Family {
        name: "commit_failures_total",
        kind: "counter",
        help: "Offset commits that failed.",
        samples: |s, out| out.value(s.m.commit_failures.load(Relaxed)),
    },
    Family {
        name: "rebalances_total",
        kind: "counter",
        help: "Consumer group rebalances served, by kind.",
        samples: |s, out| {
            out.sample("", &[("kind", "assign")], s.m.assigns.load(Relaxed));
            out.sample("", &[("kind", "revoke")], s.m.revokes.load(Relaxed));
        },
    },
    Family {
        name: "in_flight_records",
        kind: "gauge",
        help: "Input records consumed and not yet committable (output or insight window not delivered).",
        samples: |s, out| out.value(s.m.gauges.in_flight.load(Relaxed)),
    },
    Family {
        name: "channel_depth",
        kind: "gauge",
        help: "Messages waiting in the bounded channels between the stages.",
        samples: |s, out| {
            let g = &s.m.gauges;
            out.sample("", &[("channel", "workers")], g.workers_channel.load(Relaxed));
            out.sample("", &[("channel", "producer")], g.producer_channel.load(Relaxed));
        },
    },
    Family {
        name: "consumer_paused",
        kind: "gauge",
        help: "1 while the consumer has paused its partitions because the workers are behind.",
        samples: |s, out| out.value(u64::from(s.m.gauges.paused.load(Relaxed))),
    },
    Family {
        name: "consumer_lag",
        kind: "gauge",
        help: "Records waiting per input partition: the end a read_committed reader can reach (last stable offset) minus the pipeline's committable position (before the first complete epoch, the committed one), in both guarantees.",
        samples: |s, out| {
            let lag = s.m.gauges.lag.lock().unwrap_or_else(|e| e.into_inner());
            for (partition, lag) in lag.iter() {
                let partition = partition.to_string();
                let labels = [("topic", s.input_topic), ("partition", partition.as_str())];
                out.sample("", &labels, lag);
            }
        },
    },
    Family {
        name: "consumer_lag_sum",
        kind: "gauge",
        help: "Sum of kafka_pipeline_consumer_lag over the assigned partitions (absent until known).",
        samples: |s, out| {
            let lag_sum = s.m.gauges.lag_sum.load(Relaxed);
            if lag_sum >= 0 {
                out.value(lag_sum);
            }
        },
    },
    Family {
        name: "last_commit_timestamp_seconds",
        kind: "gauge",
        help: "Unix time of the last acknowledged offset commit (0: none yet).",
        samples: |s, out| out.value(s.m.last_commit_ms.load(Relaxed) as f64 / 1000.0),
    },
    Family {
        name: "processing_latency_seconds",
        kind: "histogram",
        help: "Per batch: first record polled to last output delivery confirmed.",
        samples: |s, out| {
            let latency = &s.m.latency;
            let mut cumulative = 0;
            for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
                cumulative += latency.bucket(i);
                out.sample("_bucket", &[("le", &le.to_string())], cumulative);
            }
            cumulative += latency.bucket(LATENCY_BUCKETS.len());
            out.sample("_bucket", &[("le", "+Inf")], cumulative);
            out.sample("_sum", &[], latency.sum_secs());
            out.sample("_count", &[], cumulative);
        },
    },
    Family {
        name: "insights_windows_published_total",
        kind: "counter",
        help: "Insight records published (one per window, commit epoch and instance).",
        samples: |s, out| out.value(s.m.windows_published.load(Relaxed)),
    },
    Family {
        name: "insights_late_events_total",
        kind: "counter",
        help: "Events counted only as late_events of the insights, by cause: behind_watermark \
               (its window's end plus the allowed lateness is behind the watermark) or \
               window_closed (its window was closed early: open-window limit, or a partition \
               entered behind the others).",
        samples: |s, out| {
            for cause in LateCause::ALL {
                let count = s.m.late_events[cause.index()].load(Relaxed);
                out.sample("", &[("cause", cause.as_str())], count);
            }
        },
    },
    Family {
        name: "watermark_lag_seconds",
        kind: "gauge",
        help: "Wall clock minus the instance's event-time watermark (absent before the first event).",
        samples: |s, out| {
            let watermark = s.m.gauges.watermark_secs.load(Relaxed);
            if watermark > 0 {
                out.value((unix_ms() as f64 / 1000.0 - watermark as f64).max(0.0));
            }
        },
    },
    Family {
        name: "watermark_partitions",
        kind: "gauge",
        help: "Input partitions by watermark state: active (in the minimum), idle (silent for \
               --idle-timeout, out of it), held (paused by alignment: too far ahead; also \
               active), waiting (assigned, no event yet: the watermark waits for it).",
        samples: |s, out| {
            let gauges = &s.m.gauges.watermark_partitions;
            for (state, n) in PARTITION_STATES.iter().zip(gauges) {
                out.sample("", &[("state", state)], n.load(Relaxed));
            }
        },
    },
    Family {
        name: "ready",
        kind: "gauge",
        help: "1 when /ready answers 200.",
        samples: |s, out| out.value(u64::from(s.ready)),
    },
];

/// Renders every metric in the Prometheus text exposition format 0.0.4.
pub fn render(m: &Metrics, topics: TopicNames<'_>, input_topic: &str, ready: bool) -> String {
    let scrape = Scrape {
        m,
        topics,
        input_topic,
        ready,
    };
    let mut out = String::with_capacity(8192);
    for family in FAMILIES {
        let _ = writeln!(out, "# HELP kafka_pipeline_{} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE kafka_pipeline_{} {}", family.name, family.kind);
        (family.samples)(
            &scrape,
            &mut Samples {
                out: &mut out,
                name: family.name,
            },
        );
    }
    out
}

/// Escapes a label value (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The names the dashboards and alert rules use (README "Metrics and health").
    const AGREED: &[&str] = &[
        "build_info",
        "workers",
        "events_received_total",
        "events_processed_total",
        "events_dead_lettered_total",
        "records_delivered_total",
        "delivery_failures_total",
        "dead_letters_truncated_total",
        "retry_backlog_records",
        "transactions_aborted_total",
        "commits_total",
        "commit_failures_total",
        "rebalances_total",
        "in_flight_records",
        "channel_depth",
        "consumer_paused",
        "consumer_lag",
        "consumer_lag_sum",
        "last_commit_timestamp_seconds",
        "processing_latency_seconds",
        "insights_windows_published_total",
        "insights_late_events_total",
        "watermark_lag_seconds",
        "watermark_partitions",
        "ready",
    ];

    #[test]
    fn exposition_declares_every_agreed_family_and_each_sample_belongs_to_one() {
        let m = Metrics::new(4, Duration::from_secs(60));
        m.set_lag(vec![(1, 7), (0, 3)]);
        m.latency.observe(Duration::from_millis(3));
        m.latency.observe(Duration::from_secs(100));
        m.delivered_by_topic[1].fetch_add(2, Relaxed);
        m.late_events[LateCause::WindowClosed.index()].fetch_add(3, Relaxed);
        m.note_watermark(Some(unix_ms() / 1000 - 5), [3, 1, 0, 0]);
        let text = render(&m, ["out", "dlq", "ins"], "in", true);
        let mut declared = std::collections::BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE kafka_pipeline_") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(
                    declared.insert(name.to_owned(), kind.to_owned()).is_none(),
                    "{name} twice"
                );
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let name = name.strip_prefix("kafka_pipeline_").expect(line);
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| {
                        name.strip_suffix(s)
                            .filter(|f| declared.get(*f).is_some_and(|k| k == "histogram"))
                    })
                    .unwrap_or(name);
                assert!(declared.contains_key(family), "sample without TYPE: {line}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        for &name in AGREED {
            assert!(declared.contains_key(name), "{name} missing:\n{text}");
        }
        assert_eq!(declared.len(), AGREED.len(), "{declared:?}");
        for line in [
            "kafka_pipeline_workers 4",
            "kafka_pipeline_consumer_lag{topic=\"in\",partition=\"0\"} 3",
            "kafka_pipeline_consumer_lag{topic=\"in\",partition=\"1\"} 7",
            "kafka_pipeline_consumer_lag_sum 10",
            "kafka_pipeline_records_delivered_total{topic=\"dlq\"} 2",
            "kafka_pipeline_processing_latency_seconds_bucket{le=\"0.001\"} 0",
            "kafka_pipeline_processing_latency_seconds_bucket{le=\"0.005\"} 1",
            "kafka_pipeline_processing_latency_seconds_bucket{le=\"60\"} 1",
            "kafka_pipeline_processing_latency_seconds_bucket{le=\"+Inf\"} 2",
            "kafka_pipeline_processing_latency_seconds_count 2",
            "kafka_pipeline_processing_latency_seconds_sum 100.003",
            "kafka_pipeline_events_dead_lettered_total{code=\"too_deep\"} 0",
            "kafka_pipeline_rebalances_total{kind=\"revoke\"} 0",
            "kafka_pipeline_ready 1",
            "kafka_pipeline_insights_late_events_total{cause=\"behind_watermark\"} 0",
            "kafka_pipeline_insights_late_events_total{cause=\"window_closed\"} 3",
            "kafka_pipeline_watermark_partitions{state=\"active\"} 3",
            "kafka_pipeline_watermark_partitions{state=\"idle\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        let lag: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("kafka_pipeline_watermark_lag_seconds "))
            .expect("a watermark lag")
            .parse()
            .unwrap();
        assert!((5.0..7.0).contains(&lag), "{lag}");
    }
}
