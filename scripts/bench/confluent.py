#!/usr/bin/env python3
"""The baseline's pipeline on confluent-kafka (librdkafka) instead of kafka-python.

The same loop as scripts/bench/baseline.py (json.loads, skip a record that is not a JSON object
or lacks a login field, json.dumps, produce), with the confluent-kafka client: a Consumer in a
group from the earliest offset, a Producer with acks=all, idempotence and linger.ms=5 like the
Rust pipeline, and fetch.queue.backoff.ms=10 (the same librdkafka default fix the pipeline
carries, so Python is not held back by the 1 s back-off). It polls in batches (consume(500)) and
serves delivery reports with poll(0) after each batch. Single-threaded, no dead-letter topic,
no insights.

It stops once every assigned partition reached the end offset it had when it was assigned,
flushes and prints the pipeline's summary line on stdout:

    summary: N records in S s (first consume to last delivery): R records/s; valid V, dead letters D

    py=$(scripts/python-env.sh | tail -n 1)
    "$py" scripts/bench/confluent.py --input bench-in --output bench-out --group bench-confluent
"""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer

FIELDS = ("user_id", "app_version", "device_type", "ip", "locale", "device_id", "timestamp")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", default="localhost:29092")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--idle-timeout", type=float, default=60.0, metavar="SECONDS")
    return p.parse_args(argv)


def is_complete(value):
    return isinstance(value, dict) and all(value.get(f) is not None for f in FIELDS)


def main(argv):
    args = parse_args(argv)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "fetch.queue.backoff.ms": 10,
    })
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "queue.buffering.max.messages": 100000,
    })
    failures = []

    def on_delivery(err, _msg):
        if err is not None:
            failures.append(err)

    consumer.subscribe([args.input])
    read = produced = skipped = 0
    started = None
    at_end = set()
    idle_since = time.monotonic()
    while True:
        messages = consumer.consume(500, timeout=0.2)
        now = time.monotonic()
        if not messages:
            if now - idle_since > args.idle_timeout:
                sys.exit(f"confluent: no record for {args.idle_timeout:.0f} s")
            continue
        idle_since = now
        for message in messages:
            err = message.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                continue
            if started is None:
                started = now
            at_end.discard(message.partition())
            read += 1
            try:
                value = json.loads(message.value().decode("utf-8"))
            except (AttributeError, ValueError, RecursionError):
                value = None
            if not is_complete(value):
                skipped += 1
                continue
            data = json.dumps(value).encode("utf-8")
            while True:
                try:
                    producer.produce(args.output, data, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.001)
            produced += 1
        producer.poll(0)
        assigned = {tp.partition for tp in consumer.assignment()}
        if assigned and assigned <= at_end and started is not None:
            break

    producer.flush()
    finished = time.monotonic()
    consumer.close()
    seconds = finished - (started or finished)
    rate = round(read / seconds) if seconds > 0 else 0
    print(f"summary: {read} records in {seconds:.3f} s (first consume to last delivery): "
          f"{rate} records/s; valid {produced}, dead letters {skipped}", flush=True)
    if failures:
        print(f"confluent: {len(failures)} deliveries failed, first: {failures[0]!r}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
