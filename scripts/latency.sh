#!/usr/bin/env bash
# End-to-end latency and memory at fixed input rates, on the real broker.
#
#   scripts/latency.sh --ceiling EVENTS_PER_S [OPTIONS]   rates of 50 % and 80 % of the ceiling
#   scripts/latency.sh --rates "R1 R2 ..." [OPTIONS]       explicit rates (events/s)
#
# Take the ceiling from scripts/bench.sh (its pass-through row). For each rate: a fresh input
# topic; the pipeline (release binary, --workers W) starts on it and joins its group; then
# `kafka-pipeline loadgen --rate R --duration D` produces realistic events while the pipeline's
# RSS is sampled every 5 s; 5 s after the generator ends the pipeline gets SIGTERM and its
# summary line gives the end-to-end latency: delivery time of each output and dead letter
# minus its input record's timestamp (set by the generator when it produced the record), as
# p50 / p99 / max over the whole run. Everything shares the machine: generator, broker and
# pipeline. Prints a markdown table and writes it to target/bench/latency-<stamp>.md (logs in
# target/bench/latency-<stamp>/). Deletes its topics at the end unless --keep-topics.
#
# Options (defaults in brackets):
#   --ceiling N          pass-through ceiling in events/s; rates are 50 % and 80 % of it
#   --rates "R ..."      explicit rates instead
#   --duration SECONDS   generator run per rate [120]
#   --partitions P       partitions of the input topic [6]
#   --workers W          pipeline --workers [2]
#   --keep-topics        keep the topics
#   -h, --help           this text
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
kafka="$here/kafka.sh"
bootstrap=localhost:29092

log() { printf 'latency.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

ceiling='' rates='' duration=120 partitions=6 workers=2 keep_topics=0
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --keep-topics) keep_topics=1; shift ;;
    --ceiling | --rates | --duration | --partitions | --workers)
      (($# >= 2)) || die "$1 needs a value (see --help)"
      case $1 in
        --ceiling) ceiling=$2 ;;
        --rates) rates=$2 ;;
        --duration) duration=$2 ;;
        --partitions) partitions=$2 ;;
        --workers) workers=$2 ;;
      esac
      shift 2
      ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
positive() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"; }
if [[ -n $ceiling ]]; then
  positive --ceiling "$ceiling"
  [[ -z $rates ]] || die "give --ceiling or --rates, not both"
  rates="$((ceiling / 2)) $((ceiling * 4 / 5))"
fi
[[ -n $rates ]] || die "give --ceiling (from scripts/bench.sh) or --rates (see --help)"
for r in $rates; do positive --rates "$r"; done
positive --duration "$duration"
positive --partitions "$partitions"
positive --workers "$workers"

stamp=$(date -u +%Y%m%d-%H%M%S)
outdir="$root/target/bench"
logs="$outdir/latency-$stamp"
report="$outdir/latency-$stamp.md"
mkdir -p "$logs"

log "building the release binary"
(cd "$root" && cargo build --release --locked --bin kafka-pipeline) >&2
scratch=$(mktemp -d "${TMPDIR:-/tmp}/kafka-pipeline-latency.XXXXXX")
pipeline_pid=''
topics=()
cleanup() {
  [[ -n $pipeline_pid ]] && kill -9 "$pipeline_pid" 2>/dev/null
  if ((!keep_topics)) && ((${#topics[@]})); then
    for t in "${topics[@]}"; do "$kafka" topics --delete --topic "$t" >/dev/null 2>&1 || true; done
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT
bin="$scratch/kafka-pipeline"
cp "$root/target/release/kafka-pipeline" "$bin"
revision=$(git -C "$root" rev-parse --short HEAD)
git -C "$root" diff --quiet HEAD -- || revision+="-dirty"
"$kafka" start

latency_re='latency p50 ([0-9]+) ms, p99 ([0-9]+) ms, max ([0-9]+) ms'
summary_re='summary: ([0-9]+) records in ([0-9.]+) s'
rows=()
failures=0
for rate in $rates; do
  tag="r$rate"
  input="latency-in-$stamp-$tag"
  topics+=("$input" "$input-out" "$input-dlq" "$input-insights")
  "$kafka" topics --create --topic "$input" --partitions "$partitions" --replication-factor 1 >/dev/null
  plog="$logs/$tag-pipeline.log" glog="$logs/$tag-loadgen.log" rsslog="$logs/$tag-rss.txt"
  RUST_LOG=info "$bin" run --brokers "$bootstrap" --input-topic "$input" --output-topic "$input-out" \
    --dlq-topic "$input-dlq" --insights-topic "$input-insights" --group-id "latency-$stamp-$tag" \
    --workers "$workers" >"$plog" 2>&1 &
  pipeline_pid=$!
  # Wait for the partitions to be assigned, so the group join is not counted as latency.
  for _ in $(seq 1 60); do
    grep -q "assigned" "$plog" && break
    kill -0 "$pipeline_pid" 2>/dev/null || break
    sleep 0.5
  done
  grep -q "assigned" "$plog" || { log "the pipeline did not get an assignment; see $plog"; failures=$((failures + 1)); kill "$pipeline_pid" 2>/dev/null; wait "$pipeline_pid" || true; pipeline_pid=''; continue; }
  log "rate $rate events/s for $duration s (pipeline pid $pipeline_pid)"
  : >"$rsslog"
  (
    while kill -0 "$pipeline_pid" 2>/dev/null; do
      echo "$SECONDS $(ps -o rss= -p "$pipeline_pid" 2>/dev/null | tr -d ' ')" >>"$rsslog"
      sleep 5
    done
  ) &
  sampler=$!
  "$bin" loadgen --brokers "$bootstrap" --topic "$input" --rate "$rate" --duration "${duration}s" \
    --count 1000000000 --seed 1 >"$glog" 2>&1 || log "loadgen failed; see $glog"
  sleep 5
  kill -TERM "$pipeline_pid"
  rc=0
  wait "$pipeline_pid" || rc=$?
  pipeline_pid=''
  wait "$sampler" 2>/dev/null || true
  produced=$(grep -oE '[0-9]+ delivered' "$glog" | tail -n 1 | grep -oE '[0-9]+' || echo '?')
  achieved=$(grep -oE '[0-9.]+ records/s' "$glog" | tail -n 1 | grep -oE '[0-9.]+' || echo '?')
  line=$(grep -oE "summary: .*" "$plog" | tail -n 1 || true)
  p50='?' p99='?' max='?' n='?'
  [[ $line =~ $latency_re ]] && p50=${BASH_REMATCH[1]} p99=${BASH_REMATCH[2]} max=${BASH_REMATCH[3]}
  [[ $line =~ $summary_re ]] && n=${BASH_REMATCH[1]}
  rss_min=$(awk '$2 > 0 { print int($2 / 1024) }' "$rsslog" | sort -n | head -n 1)
  rss_max=$(awk '$2 > 0 { print int($2 / 1024) }' "$rsslog" | sort -n | tail -n 1)
  # RSS over the run, one sample per 20 s, to show it does not grow.
  rss_series=$(awk '$2 > 0 && (NR - 1) % 4 == 0 { printf "%s%d", sep, $2 / 1024; sep = " " }' "$rsslog")
  verdict=ok
  if ((rc != 0)) || [[ $n != "$produced" ]]; then
    verdict="**NO**: exit $rc, pipeline summary $n records, generator $produced"
    failures=$((failures + 1))
  fi
  log "  $line"
  rows+=("| $rate | ${achieved%.*} | $n | $p50 | $p99 | $max | ${rss_min:-?}–${rss_max:-?} | $rss_series | $verdict |")
done

cpu_model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
{
  echo "## End-to-end latency at fixed rates, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Realistic events, $partitions partitions, pipeline \`--workers $workers\`, $duration s per rate; generator, broker and pipeline on one host."
  echo
  echo "| target events/s | generated events/s | records | p50 ms | p99 ms | max ms | RSS MB (min–max) | RSS MB every 20 s | verified |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Latency: each output or dead letter's delivery report minus its input record's timestamp"
  echo "(the generator's CreateTime), over the whole run (the pipeline's summary line)."
  echo
  echo "- command: \`scripts/latency.sh $( ((${#ceiling})) && echo "--ceiling $ceiling" || echo "--rates '$rates'") --duration $duration --partitions $partitions --workers $workers\`"
  echo "- git: $revision"
  echo "- machine: $(nproc) CPUs ($cpu_model), $(uname -sr)"
  echo "- date: $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
} | tee "$report"
log "wrote $report (logs in $logs/)"
((failures == 0)) || { log "$failures rate(s) failed; see the table"; exit 1; }
