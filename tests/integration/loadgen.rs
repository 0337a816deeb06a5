//! The load generator against the real broker: what it produces arrives byte-for-byte, with
//! labels that match the pipeline's classification.

use std::collections::HashSet;

use clap::Parser;
use kafka_pipeline::cli::loadgen::LoadgenArgs;
use kafka_pipeline::cli::{Cli, Command};
use kafka_pipeline::loadgen::{Expect, GenRecord, Generator, Profile, EXPECT_HEADER, SEQ_HEADER};
use kafka_pipeline::transform::{TransformOptions, Transformer};

fn parse(args: &[&str]) -> Result<LoadgenArgs, clap::Error> {
    let argv = ["kafka-pipeline", "loadgen"].iter().chain(args);
    match Cli::try_parse_from(argv)?.command {
        Command::Loadgen(args) => Ok(args),
        other => panic!("not loadgen: {other:?}"),
    }
}

fn classify(t: &mut Transformer, value: Option<&[u8]>) -> Expect {
    match t.process(value) {
        Ok(_) => Expect::Valid,
        Err(rejection) => Expect::Invalid(rejection.code),
    }
}

/// Produces hostile traffic to a fresh topic, reads it back, and checks every record against the
/// generator and the transformer; also exercises the admin helpers.
#[test]
fn round_trip_through_the_broker() {
    use kafka_pipeline::kafka::client::client_config;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::{Offset, TopicPartitionList};

    use crate::common::CLIENT_ID;

    const N: u64 = 3000;
    let Some(brokers) = crate::common::require_broker() else {
        return;
    };
    let topic = crate::common::unique("loadgen-test");
    let count = N.to_string();
    let args = parse(&[
        "--brokers",
        &brokers,
        "--topic",
        &topic,
        "--partitions",
        "2",
        "--count",
        &count,
        "--profile",
        "hostile",
        "--label",
        "--base-time",
        "1720589697",
    ])
    .unwrap();
    let summary = kafka_pipeline::commands::loadgen::produce(&args).unwrap();
    summary.check().unwrap();
    assert_eq!((summary.produced, summary.delivered), (N, N));
    assert!(!kafka_pipeline::kafka::admin::create_topic_if_missing(
        &brokers,
        &[],
        &topic,
        2,
        1,
        &[]
    )
    .unwrap());

    let expected: Vec<GenRecord> = Generator::new(Profile::Hostile, 1, args.gen_options(0))
        .take(N as usize)
        .collect();
    let defaults = [
        ("group.id", topic.as_str()),
        ("enable.auto.commit", "false"),
        ("enable.partition.eof", "true"),
    ];
    let consumer: BaseConsumer = client_config(&brokers, CLIENT_ID, &defaults, &[])
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..2 {
        assignment
            .add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut t = Transformer::new(TransformOptions::default());
    let (mut seen, mut eof) = (HashSet::new(), HashSet::new());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while eof.len() < 2 || (seen.len() as u64) < N {
        assert!(
            std::time::Instant::now() < deadline,
            "read {} of {N}",
            seen.len()
        );
        let message = match consumer.poll(std::time::Duration::from_millis(500)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
                continue;
            }
            Some(Err(e)) => panic!("{e}"),
            Some(Ok(m)) => m,
        };
        let headers = message.headers().unwrap();
        let header = |name: &str| {
            let h = headers.iter().find(|h| h.key == name).unwrap();
            String::from_utf8(h.value.unwrap().to_vec()).unwrap()
        };
        let seq: usize = header(SEQ_HEADER).parse().unwrap();
        let want = &expected[seq];
        assert_eq!(message.key(), want.key.as_deref(), "key of {seq}");
        assert_eq!(message.payload(), want.value.as_deref(), "value of {seq}");
        assert_eq!(header(EXPECT_HEADER), want.expect.as_str());
        assert_eq!(
            classify(&mut t, message.payload()),
            want.expect,
            "record {seq}"
        );
        assert!(seen.insert(seq), "record {seq} twice");
    }
    kafka_pipeline::kafka::admin::alter_topic_config(
        &brokers,
        &[],
        &topic,
        &[("retention.ms", "3600000")],
    )
    .unwrap();
    kafka_pipeline::kafka::admin::alter_topic_config(
        &brokers,
        &[],
        &topic,
        &[("max.message.bytes", "2000")],
    )
    .unwrap();
    // The second change kept the first.
    let admin: rdkafka::admin::AdminClient<_> = client_config(&brokers, CLIENT_ID, &[], &[])
        .create()
        .unwrap();
    let described = kafka_pipeline::kafka::admin::block_on(admin.describe_configs(
        [&rdkafka::admin::ResourceSpecifier::Topic(&topic)],
        &rdkafka::admin::AdminOptions::new(),
    ))
    .unwrap();
    let config = described.into_iter().next().unwrap().unwrap();
    let value = |name: &str| config.get(name).and_then(|e| e.value.clone());
    assert_eq!(value("retention.ms").as_deref(), Some("3600000"));
    assert_eq!(value("max.message.bytes").as_deref(), Some("2000"));
    kafka_pipeline::kafka::admin::delete_topic(&brokers, &[], &topic).unwrap();
    kafka_pipeline::kafka::admin::delete_topic(&brokers, &[], &topic).unwrap();
}
