#!/usr/bin/env python3
"""When a reader sees each record: the latency reader of scripts/latency.sh.

A confluent-kafka (librdkafka) consumer, assigned to every partition of the given topics from
the beginning, with isolation.level=read_committed: under exactly-once it sees a record when the
transaction that wrote it commits, as any read_committed consumer would. For every record it
takes the time it got the record minus the record's timestamp. scripts/latency.sh creates the
pipeline's input topic with message.timestamp.type=LogAppendTime and the outputs keep the
input's timestamp, so that is the time from the broker appending the input record to the output
being visible to a consumer. Records whose timestamp lies within --warmup seconds of the first
record's are counted apart (connections, first metadata, the first epoch).

It drains what librdkafka has already fetched at once (consume with no wait) and otherwise
waits for the next record (poll), so it takes each record as soon as it arrives. Every 0.5 s it
writes how many records it has seen to --progress (a file, replaced atomically); on SIGTERM or
SIGINT it prints one line on stdout and exits:

    latency-reader: records N, warm-up W, p50 A ms, p99 B ms, p99.9 C ms, max D ms, cpu E s

    py=$(scripts/python-env.sh | tail -n 1)
    "$py" scripts/bench/latency_reader.py --topics out dlq --warmup 10 --progress seen.txt
"""

import argparse
import math
import os
import resource
import signal
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_LOG_APPEND_TIME, Consumer, TopicPartition


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", default="localhost:29092")
    p.add_argument("--topics", nargs="+", required=True)
    p.add_argument("--warmup", type=float, default=10.0, metavar="SECONDS")
    p.add_argument("--progress", required=True, metavar="FILE")
    p.add_argument("--fetch-wait-max-ms", type=int, default=10)
    return p.parse_args(argv)


def percentile(histogram, n, q):
    """The smallest latency at or below which a fraction q of the n records lie."""
    rank = max(1, math.ceil(q * n))
    seen = 0
    for latency in sorted(histogram):
        seen += histogram[latency]
        if seen >= rank:
            return latency
    return max(histogram)


def write_progress(path, count):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{count}\n")
    os.replace(tmp, path)


def main(argv):
    args = parse_args(argv)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        # No group membership or commits (assign): the group id is only required by the client.
        "group.id": f"latency-reader-{os.getpid()}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        # While nothing is visible yet (an open transaction) the broker answers a fetch after
        # this long at the latest: it bounds what the reader itself adds to a commit's latency.
        "fetch.wait.max.ms": args.fetch_wait_max_ms,
    })
    metadata = consumer.list_topics(timeout=30)
    partitions = []
    for topic in args.topics:
        t = metadata.topics.get(topic)
        if t is None or t.error is not None or not t.partitions:
            print(f"latency_reader.py: no topic {topic}", file=sys.stderr)
            return 1
        partitions += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in t.partitions]
    consumer.assign(partitions)

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    histogram = {}  # latency in ms -> records
    measured = warmup = appended_time = 0
    since = None
    last_progress = 0.0
    write_progress(args.progress, 0)
    print(f"latency_reader.py: reading {len(partitions)} partitions of {' '.join(args.topics)}",
          file=sys.stderr)
    while not stopping:
        messages = consumer.consume(10000, 0)
        if not messages:
            m = consumer.poll(0.1)
            messages = [m] if m is not None else []
        now = time.time() * 1000.0
        for m in messages:
            if m.error():
                print(f"latency_reader.py: {m.error()}", file=sys.stderr)
                continue
            kind, ts = m.timestamp()
            if kind == TIMESTAMP_LOG_APPEND_TIME:
                appended_time += 1  # the output's own append time: not the input's
            if since is None:
                since = ts + args.warmup * 1000.0
            if ts < since:
                warmup += 1
                continue
            latency = max(0, int(now - ts))
            histogram[latency] = histogram.get(latency, 0) + 1
            measured += 1
        if now - last_progress >= 500:
            write_progress(args.progress, measured + warmup)
            last_progress = now
    write_progress(args.progress, measured + warmup)
    consumer.close()
    if appended_time:
        print(f"latency_reader.py: {appended_time} records carry their topic's LogAppendTime, "
              "not the input's timestamp: the figures would not mean anything", file=sys.stderr)
        return 1
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    if measured:
        figures = ", ".join(f"{label} {percentile(histogram, measured, q)} ms"
                            for label, q in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)))
        figures += f", max {max(histogram)} ms"
    else:
        figures = "p50 - ms, p99 - ms, p99.9 - ms, max - ms"
    print(f"latency-reader: records {measured}, warm-up {warmup}, {figures}, cpu {cpu:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
