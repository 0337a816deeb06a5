#!/usr/bin/env bash
# How far the committed offsets trail a live input, and what a kill -9 re-delivers.
#
#   scripts/commit-lag.sh [--rate R] [--seconds S] [--partitions P] [-- run flags…]
#
# Starts the local broker, a fresh input topic, `kafka-pipeline loadgen --rate R` (realistic
# events) and one pipeline on it; after a 10 s warm-up samples, once a second for S seconds,
# the group's lag: input end offsets minus committed offsets (what a crash would process
# again), in records and in seconds of traffic (records / R). Then kills the pipeline with -9,
# restarts it with the same flags, lets it drain, and counts the duplicates it wrote (output
# records beyond one per input record, by the `__pipeline.source` header) with the fault
# suite's accounting. Prints the command, git revision and machine next to the figures.
# Defaults: --rate 2000 --seconds 30 --partitions 3. Needs the release binaries
# (cargo build --release --bin kafka-pipeline --example chaos).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rate=2000 seconds=30 partitions=3 flags=()
command_line="scripts/commit-lag.sh $*"
while (($#)); do
  case $1 in
    --rate) rate=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --) shift; flags=("$@"); break ;;
    *) echo "commit-lag.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=target/release/kafka-pipeline tool=target/release/examples/chaos
cargo build --release --locked --bin kafka-pipeline --example chaos >&2
scripts/kafka.sh start >&2
b=localhost:29092 id=commitlag-$(date -u +%Y%m%dT%H%M%S)-$$
in=$id out=$id-out dlq=$id-dlq group=$id-g logs=target/commit-lag/$id
mkdir -p "$logs"
"$tool" create-topic --brokers $b "$in" "$partitions"
"$tool" create-topic --brokers $b "$out" "$partitions"
"$tool" create-topic --brokers $b "$dlq" 1
pids=()
trap 'kill -KILL "${pids[@]}" 2>/dev/null || true' EXIT
total=$((rate * (seconds + 30)))
"$bin" loadgen --brokers $b --topic "$in" --profile realistic --rate "$rate" --count "$total" --label \
  >"$logs/loadgen.log" 2>&1 &
pids+=($!)
run() {
  "$bin" run --brokers $b --input-topic "$in" --output-topic "$out" --dlq-topic "$dlq" \
    --insights-topic "$id-insights" --group-id "$group" "${flags[@]}" "$@" >>"$logs/pipeline.log" 2>&1 &
  pipeline=$!
  pids+=("$pipeline")
}
run
sleep 10
samples=()
for ((i = 0; i < seconds; i++)); do
  samples+=("$("$tool" lag --brokers $b --group "$group" --topic "$in" | awk '{ print $2 }')")
  sleep 1
done
kill -KILL "$pipeline"; wait "$pipeline" 2>/dev/null || true
at_kill=$("$tool" lag --brokers $b --group "$group" --topic "$in" | awk '{ print $2 }')
wait "${pids[0]}" || true
run --exit-at-end
wait "$pipeline" || true
"$tool" account --brokers $b --input "$in" --output "$out" --dlq "$dlq" --group "$group" \
  --max-duplicates "$at_kill" >"$logs/account.txt" 2>&1 || true
dups=$(sed -n 's/.* duplicates=\([0-9]*\).*/\1/p' "$logs/account.txt")
lost=$(sed -n 's/.* lost=\([0-9]*\).*/\1/p' "$logs/account.txt")
stats=$(printf '%s\n' "${samples[@]}" | sort -n | awk -v r="$rate" '{ v[NR] = $1; s += $1 }
  END { printf "p50 %d records (%.2f s), mean %.0f (%.2f s), max %d (%.2f s)", v[int((NR + 1) / 2)], v[int((NR + 1) / 2)] / r, s / NR, s / NR / r, v[NR], v[NR] / r }')
echo "committed lag over ${seconds} s at ${rate} events/s: $stats"
echo "kill -9: uncommitted at the kill $at_kill records ($(awk -v a="$at_kill" -v r="$rate" 'BEGIN { printf "%.2f", a / r }') s); written twice after the restart: ${dups:-?} ($(awk -v a="${dups:-0}" -v r="$rate" 'BEGIN { printf "%.2f", a / r }') s of traffic); lost ${lost:-?}"
echo "command: $command_line; git $(git rev-parse --short HEAD); $(nproc) CPUs, $(uname -sr); $(date -u +%Y-%m-%dT%H:%MZ)"
"$tool" delete-topic --brokers $b "$in" "$out" "$dlq" "$id-insights" >/dev/null 2>&1 || true
