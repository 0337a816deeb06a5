#!/usr/bin/env python3
"""Read a topic the way users of the original pipeline do, with kafka-python, and check it.

The consumer is built exactly like the snippet those users run against processed_data:

    consumer = KafkaConsumer('processed_data', bootstrap_servers='localhost:29092',
                             auto_offset_reset='earliest',
                             value_deserializer=lambda m: json.loads(m.decode('utf-8')))
    for message in consumer:
        print(message.value)

plus only consumer_timeout_ms, so that the run is bounded. Like the snippet it has no group_id
(kafka-python then assigns itself every partition, commits nothing and starts from the earliest
offset), so every run reads the topic from its beginning and leaves no group behind.

Each message value is printed as one JSON line on stdout. Exit status:
  0  exactly N messages were read (N = --expect), every value a JSON object (dict); with
     --at-least, N or more
  1  anything else: too few before --timeout, more than N, a value that is not valid UTF-8 JSON or
     not an object, or no broker; the reason is on stderr

Exactly N: after the N-th message the reader keeps polling for --settle seconds (default 2) so
that extra messages (for example duplicates) are caught. With --at-least it stops at the N-th.

    py=$(scripts/python-env.sh)
    "$py" tests/python/read_topic.py --topic processed_data --expect 100 --timeout 60
"""

import argparse
import json
import sys
import time

from kafka import KafkaConsumer
from kafka.errors import KafkaError


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--topic", default="processed_data", help="topic to read (processed_data)")
    p.add_argument("--bootstrap", default="localhost:29092",
                   help="bootstrap servers (localhost:29092)")
    p.add_argument("--expect", type=int, required=True, metavar="N",
                   help="number of messages that must be read")
    p.add_argument("--at-least", action="store_true",
                   help="accept N or more messages and stop at the N-th (default: exactly N)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="give up waiting for the N-th message after this long (30)")
    p.add_argument("--settle", type=float, default=2.0, metavar="SECONDS",
                   help="exact mode: keep polling this long after the N-th message to catch "
                        "extras (2)")
    args = p.parse_args(argv)
    if args.expect < 0:
        p.error("--expect must be >= 0")
    if args.timeout <= 0 or args.settle < 0:
        p.error("--timeout must be > 0 and --settle >= 0")
    return args


def fail(msg):
    print(f"read_topic.py: FAIL: {msg}", file=sys.stderr)
    return 1


def main(argv=None):
    args = parse_args(argv)
    start = time.monotonic()
    deadline = start + args.timeout

    try:
        consumer = KafkaConsumer(
            args.topic,
            bootstrap_servers=args.bootstrap,
            auto_offset_reset="earliest",
            value_deserializer=lambda m: json.loads(m.decode("utf-8")),
            # Only addition to the users' snippet: iteration stops after 500 ms without a
            # message, so the loop below can check its deadline.
            consumer_timeout_ms=500,
        )
    except KafkaError as e:
        return fail(f"cannot connect to {args.bootstrap}: {e!r}")

    count = 0
    not_dicts = []
    error = None
    settle_until = None

    def finished():
        """True once the run is over: N read (at-least mode), settle time passed, or timeout."""
        nonlocal settle_until
        now = time.monotonic()
        if count >= args.expect:
            if args.at_least:
                return True
            if settle_until is None:
                settle_until = now + args.settle
            return now >= settle_until
        return now >= deadline

    try:
        while not finished():
            try:
                for message in consumer:
                    count += 1
                    value = message.value
                    print(json.dumps(value), flush=True)
                    if not isinstance(value, dict):
                        not_dicts.append((message.partition, message.offset, type(value).__name__))
                    if finished():
                        break
            except (ValueError, UnicodeDecodeError) as e:
                # json.JSONDecodeError is a ValueError; kafka-python raises the deserializer's
                # exception from the iteration.
                error = f"a value in {args.topic} is not UTF-8 JSON: {e!r}"
                break
            except KafkaError as e:
                error = f"Kafka error while reading {args.topic}: {e!r}"
                break
    finally:
        consumer.close()

    elapsed = time.monotonic() - start
    if error:
        return fail(f"{error} (after {count} messages)")
    if not_dicts:
        shown = ", ".join(f"partition {p} offset {o}: {t}" for p, o, t in not_dicts[:5])
        return fail(f"{len(not_dicts)} of {count} values are not JSON objects ({shown})")
    if count < args.expect:
        return fail(f"read {count} of {args.expect} expected messages from {args.topic} "
                    f"within {args.timeout:g} s")
    if count > args.expect and not args.at_least:
        return fail(f"read {count} messages from {args.topic}, expected exactly {args.expect}")
    kind = "at least" if args.at_least else "exactly"
    print(f"read_topic.py: OK: {count} messages from {args.topic} ({kind} {args.expect} "
          f"expected) in {elapsed:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
