#!/usr/bin/env python3
"""The original pipeline, for the end-to-end benchmark: kafka-python, json.loads, skip, produce.

Single-threaded, in the style of the Python pipeline kafka-pipeline replaces (DESIGN.md): a
KafkaConsumer in a group from the earliest offset with a JSON value deserializer, one loop over
the messages, skip a record that is not a JSON object or lacks one of the login fields, and send
json.dumps(value) of every other record to the output topic with a KafkaProducer. The producer
batches (linger_ms=5) and waits for all replicas (acks=all) like the Rust pipeline, so the
comparison is fair to Python; it has no dead-letter topic, insights or per-record ordering key.

It stops once it has read every assigned partition to the end offset it had when it started
(the benchmark's input is prefilled and static), flushes the producer and prints, on stdout, the
same summary line as `kafka-pipeline run`:

    summary: N records in S s (first consume to last delivery): R records/s; valid V, dead letters D

where V is the number of records produced and D the number skipped. The clock runs from the
first record consumed to the end of the final flush (the last delivery acknowledged).

    py=$(scripts/python-env.sh | tail -n 1)
    "$py" scripts/bench/baseline.py --input bench-in --output bench-out --group bench-baseline

Exit status 0 on success; 1 when a delivery failed or the input could not be read to its end.
"""

import argparse
import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer

FIELDS = ("user_id", "app_version", "device_type", "ip", "locale", "device_id", "timestamp")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", default="localhost:29092",
                   help="bootstrap servers (localhost:29092)")
    p.add_argument("--input", required=True, help="topic to consume")
    p.add_argument("--output", required=True, help="topic to produce valid records to")
    p.add_argument("--group", required=True, help="consumer group id")
    p.add_argument("--idle-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="give up when no record arrives for this long before the end (60)")
    return p.parse_args(argv)


def json_or_none(raw):
    """The original deserializer, tolerant: None for tombstones, bad UTF-8 and bad JSON."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (AttributeError, ValueError, RecursionError):
        # AttributeError: a tombstone (None); ValueError covers UnicodeDecodeError and
        # JSONDecodeError; RecursionError: nesting deeper than the interpreter's stack.
        return None


def is_complete(value):
    return isinstance(value, dict) and all(value.get(f) is not None for f in FIELDS)


def wait_for_assignment(consumer, deadline):
    """Polls until the group has assigned partitions; returns the first batch it fetched."""
    while not consumer.assignment():
        if time.monotonic() > deadline:
            sys.exit("baseline: no partitions assigned (does the input topic exist?)")
        batch = consumer.poll(timeout_ms=200)
        if batch:
            return batch
    return {}


def main(argv):
    args = parse_args(argv)
    consumer = KafkaConsumer(
        args.input,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        value_deserializer=json_or_none,
    )
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5)
    failures = []

    first_batch = wait_for_assignment(consumer, time.monotonic() + args.idle_timeout)
    assigned = consumer.assignment()
    end = consumer.end_offsets(list(assigned))
    # Partitions with records left before their end offset (the position is already past
    # whatever the first poll returned).
    remaining = {tp for tp in assigned if consumer.position(tp) < end[tp]}

    read = produced = skipped = 0
    started = None

    def handle(records):
        nonlocal read, produced, skipped
        for message in records:
            read += 1
            value = message.value
            if not is_complete(value):
                skipped += 1
                continue
            producer.send(args.output, json.dumps(value).encode("utf-8")).add_errback(
                failures.append)
            produced += 1

    if first_batch:
        started = time.monotonic()
        for records in first_batch.values():
            handle(records)
    idle_since = time.monotonic()
    while remaining:
        batch = consumer.poll(timeout_ms=200)
        now = time.monotonic()
        if not batch:
            if now - idle_since > args.idle_timeout:
                consumer.close()
                sys.exit(f"baseline: no record for {args.idle_timeout:.0f} s with partitions "
                         f"{sorted(tp.partition for tp in remaining)} not at their end")
            continue
        idle_since = now
        if started is None:
            started = now
        for tp, records in batch.items():
            handle(records)
            if records and records[-1].offset + 1 >= end[tp]:
                remaining.discard(tp)

    producer.flush()
    finished = time.monotonic()
    producer.close()
    consumer.close()  # commits the final positions (auto-commit is on, as in the original)

    if started is None:  # an empty input
        started = finished
    seconds = finished - started
    rate = round(read / seconds) if seconds > 0 else 0
    print(f"summary: {read} records in {seconds:.3f} s (first consume to last delivery): "
          f"{rate} records/s; valid {produced}, dead letters {skipped}", flush=True)
    if failures:
        print(f"baseline: {len(failures)} deliveries failed, first: {failures[0]!r}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
