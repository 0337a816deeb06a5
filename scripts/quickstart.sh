#!/usr/bin/env bash
# One command from a fresh clone to a running pipeline: builds the binary, starts the local
# broker, creates the topics, feeds it login events in the original generator's format (a
# burst, then a steady trickle with some bad records), runs the pipeline and, after a few
# seconds, shows what landed in processed_data, the dead-letter topic and the insights. Ctrl-C
# stops it gracefully (drain, flush, commit).
#
# Environment: QUICKSTART_RATE (events/s after the burst, default 5), QUICKSTART_BURST (default
# 2000), QUICKSTART_WORKERS (default: number of cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rate=${QUICKSTART_RATE:-5}
burst=${QUICKSTART_BURST:-2000}

echo "==> building kafka-pipeline (release)"
cargo build --release --locked --bin kafka-pipeline
# Where cargo put it: $CARGO_TARGET_DIR when set, else target/.
bin=${CARGO_TARGET_DIR:-target}/release/kafka-pipeline
echo "==> starting the local broker"
scripts/kafka.sh start
for spec in user-login:3 processed_data:3 user-login-dlq:1 insights:1; do
  scripts/kafka.sh topics --create --if-not-exists --topic "${spec%%:*}" --partitions "${spec##*:}" >/dev/null
done

echo "==> producing $burst events in the original format (about 5% without device_type)"
"$bin" loadgen --profile original --count "$burst"
echo "==> and a trickle of $rate/s (realistic profile, with bad records) while the pipeline runs"
"$bin" loadgen --profile realistic --rate "$rate" --duration 1h --invalid-rate 0.05 >/dev/null 2>&1 &
feeder=$!
trap 'kill $feeder 2>/dev/null || true' EXIT

(
  sleep 12
  echo
  echo "==> a few records from processed_data (key, headers, value):"
  scripts/kafka.sh consume processed_data --max-messages 3 --property print.key=true \
    --property print.headers=true 2>/dev/null || true
  echo "==> a few dead letters from user-login-dlq (headers say why):"
  scripts/kafka.sh consume user-login-dlq --max-messages 3 --property print.headers=true 2>/dev/null || true
  sleep 15
  echo "==> insight windows so far (kafka-pipeline insights; --follow keeps it live):"
  "$bin" insights --last 5 2>/dev/null || true
  echo "==> the pipeline keeps running; Ctrl-C stops it gracefully"
) &

echo "==> running the pipeline (progress every 5 s)"
"$bin" run --progress-interval 5s ${QUICKSTART_WORKERS:+--workers "$QUICKSTART_WORKERS"}
