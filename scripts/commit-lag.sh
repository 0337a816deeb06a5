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
# Defaults: --rate 2000 --seconds 30 --partitions 3. Builds the release binaries (cargo build
# --release --bin kafka-pipeline --example chaos; into $CARGO_TARGET_DIR when set). A lag or an
# accounting figure that cannot be read as an integer fails the run (scripts/lib/parse.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/parse.sh
source scripts/lib/parse.sh
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
cargo build --release --locked --bin kafka-pipeline --example chaos >&2
target_dir=${CARGO_TARGET_DIR:-target}
bin=$target_dir/release/kafka-pipeline tool=$target_dir/release/examples/chaos
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
# End offsets minus committed offsets of the input, summed over its partitions.
lag() { "$tool" lag --brokers $b --group "$group" --topic "$in" | parse_lag total; }
run
sleep 10
samples=()
for ((i = 0; i < seconds; i++)); do
  samples+=("$(lag)") || { echo "commit-lag.sh: cannot read the lag (see above)" >&2; exit 1; }
  sleep 1
done
kill -KILL "$pipeline"; wait "$pipeline" 2>/dev/null || true
at_kill=$(lag) || { echo "commit-lag.sh: cannot read the lag at the kill (see above)" >&2; exit 1; }
wait "${pids[0]}" || true
run --exit-at-end
wait "$pipeline" || true
"$tool" account --brokers $b --input "$in" --output "$out" --dlq "$dlq" --group "$group" \
  --max-duplicates "$at_kill" >"$logs/account.txt" 2>&1 || true
# The accounting's ACCOUNT line: `ACCOUNT events=… lost=… misrouted=… duplicates=… …`.
account_field() {
  local line
  line=$(grep '^ACCOUNT ' "$logs/account.txt" | tail -n 1) || true
  if [[ " $line " =~ \ $1=([^ ]*)\  ]]; then
    require_count "the accounting's $1" "${BASH_REMATCH[1]}"
  else
    parse_error "the accounting" "no $1= in its ACCOUNT line ('$line')"
    return 1
  fi
}
accounted=1
dups=$(account_field duplicates) || { dups='?' accounted=0; }
lost=$(account_field lost) || { lost='?' accounted=0; }
# Integers printed with "%.0f": mawk's "%d" stops at 2147483647.
stats=$(printf '%s\n' "${samples[@]}" | sort -n | awk -v r="$rate" '{ v[NR] = $1; s += $1 }
  END { printf "p50 %.0f records (%.2f s), mean %.0f (%.2f s), max %.0f (%.2f s)", v[int((NR + 1) / 2)], v[int((NR + 1) / 2)] / r, s / NR, s / NR / r, v[NR], v[NR] / r }')
echo "committed lag over ${seconds} s at ${rate} events/s: $stats"
echo "kill -9: uncommitted at the kill $at_kill records ($(awk -v a="$at_kill" -v r="$rate" 'BEGIN { printf "%.2f", a / r }') s); written twice after the restart: ${dups:-?} ($(awk -v a="${dups:-0}" -v r="$rate" 'BEGIN { printf "%.2f", a / r }') s of traffic); lost ${lost:-?}"
echo "command: $command_line; git $(git rev-parse --short HEAD); $(nproc) CPUs, $(uname -sr); $(date -u +%Y-%m-%dT%H:%MZ)"
"$tool" delete-topic --brokers $b "$in" "$out" "$dlq" "$id-insights" >/dev/null 2>&1 || true
if ((!accounted)); then
  echo "commit-lag.sh: the accounting gave no duplicates/lost figures; see $logs/account.txt" >&2
  exit 1
fi
