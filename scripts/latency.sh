#!/usr/bin/env bash
# End-to-end latency at fixed input rates on a live stream, on the real broker: from the broker
# appending an input record to a reader seeing its output.
#
#   scripts/latency.sh --ceiling EVENTS_PER_S [OPTIONS]   rates of 50 % and 80 % of the ceiling
#   scripts/latency.sh --rates "R1 R2 ..." [OPTIONS]       explicit rates (events/s)
#
# Take the ceiling from scripts/bench.sh (its pipeline row). For each rate, on fresh topics:
#   1. the input topic is created with message.timestamp.type=LogAppendTime, so every input
#      record carries the time the broker appended it; the pipeline's outputs and dead letters
#      keep the input record's timestamp;
#   2. a reader (scripts/bench/latency_reader.py: confluent-kafka, assigned to the output and
#      dead-letter topics, isolation.level=read_committed) takes, for every record, the time it
#      got it minus that timestamp. Under --guarantee exactly-once a read_committed reader sees
#      a record when the transaction of its commit epoch commits, so that is what it measures;
#   3. the pipeline (release binary, --workers W) starts on the input and gets its partitions;
#   4. `kafka-pipeline loadgen --rate R --duration D` produces realistic events while the
#      pipeline's RSS is sampled every 5 s;
#   5. 5 s after the generator ends the pipeline gets SIGTERM (it drains and commits); the reader
#      stops once it has seen one record per generated record (30 s at most).
# Records appended in the first --warmup seconds are counted apart (connections, first
# metadata, the first epoch). Reported per rate: the reader's p50 / p99 / p99.9 / max, the
# pipeline's own figures (its summary line: delivery report minus the input timestamp, p50 /
# p99 / max), RSS, and whether the reader saw exactly one record per generated record. Next to
# the numbers: the settings that move latency as the clients report them (librdkafka's own
# configuration dump, `debug=conf` on the producer: linger.ms, batch.num.messages, batch.size;
# commit interval, workers and guarantee from `run --print-config`), the reader's settings, the
# command, git revision and machine.
# Generator, broker, pipeline and reader share the machine: compare numbers within one report.
# Prints a markdown table and writes it to target/bench/latency-<stamp>.md (logs in
# target/bench/latency-<stamp>/). Deletes its topics at the end unless --keep-topics.
#
# Options (defaults in brackets):
#   --ceiling N          the pipeline's maximum events/s; rates are 50 % and 80 % of it
#   --rates "R ..."      explicit rates instead
#   --duration SECONDS   generator run per rate [120]
#   --warmup SECONDS     left out of the figures at the start of each rate [10]
#   --partitions P       partitions of the input and output topics [6]
#   --workers W          pipeline --workers [2]
#   --guarantee G        at-least-once or exactly-once [at-least-once]
#   --run-args "ARGS"    more `run` flags, e.g. "--commit-interval 100ms" or
#                        "--producer-property linger.ms=1" (what moves latency)
#   --keep-topics        keep the topics
#   -h, --help           this text
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
kafka="$here/kafka.sh"
bootstrap=localhost:29092
# shellcheck source=scripts/lib/parse.sh
source "$here/lib/parse.sh"

log() { printf 'latency.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# The command as typed, quoted for a shell: words with anything unusual in single quotes.
command_line=scripts/latency.sh
for arg in "$@"; do
  if [[ $arg =~ ^[A-Za-z0-9_./=:,+-]+$ ]]; then command_line+=" $arg"; else command_line+=" '${arg//\'/\'\\\'\'}'"; fi
done

ceiling='' rates='' duration=120 warmup=10 partitions=6 workers=2 guarantee=at-least-once
run_args='' keep_topics=0
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --keep-topics) keep_topics=1; shift ;;
    --ceiling | --rates | --duration | --warmup | --partitions | --workers | --guarantee | --run-args)
      (($# >= 2)) || die "$1 needs a value (see --help)"
      case $1 in
        --ceiling) ceiling=$2 ;;
        --rates) rates=$2 ;;
        --duration) duration=$2 ;;
        --warmup) warmup=$2 ;;
        --partitions) partitions=$2 ;;
        --workers) workers=$2 ;;
        --guarantee) guarantee=$2 ;;
        --run-args) run_args=$2 ;;
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
[[ $warmup =~ ^[0-9]+$ ]] || die "--warmup must be a non-negative integer, got '$warmup'"
((warmup < duration)) || die "--warmup ($warmup s) must be shorter than --duration ($duration s)"
positive --partitions "$partitions"
positive --workers "$workers"
[[ $guarantee == at-least-once || $guarantee == exactly-once ]] ||
  die "--guarantee is at-least-once or exactly-once, got '$guarantee'"
read -r -a extra <<<"$run_args"

stamp=$(date -u +%Y%m%d-%H%M%S)
outdir="$root/target/bench"
logs="$outdir/latency-$stamp"
report="$outdir/latency-$stamp.md"
mkdir -p "$logs"

log "building the release binary"
(cd "$root" && cargo build --release --locked --bin kafka-pipeline) >&2
# Where cargo put it: $CARGO_TARGET_DIR (relative to the repository, where cargo ran) or target/.
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$root/$target_dir
scratch=$(mktemp -d "${TMPDIR:-/tmp}/kafka-pipeline-latency.XXXXXX")
pipeline_pid='' reader_pid='' sampler_pid='' created=0
cleanup() {
  local rc=$? pid
  set +e
  for pid in $pipeline_pid $reader_pid $sampler_pid; do kill -9 "$pid" 2>/dev/null; done
  if ((!created)); then
    :
  elif ((keep_topics)); then
    log "kept the topics latency-*-$stamp-*"
  else
    "$kafka" topics --delete --topic "latency-[a-z]+-$stamp-.*" >/dev/null 2>>"$logs/kafka-tools.log" ||
      log "warning: could not delete the topics latency-*-$stamp-*"
  fi
  rm -rf "$scratch"
  exit "$rc"
}
trap cleanup EXIT
bin="$scratch/kafka-pipeline"
cp "$target_dir/release/kafka-pipeline" "$bin"
revision=$(git -C "$root" rev-parse --short HEAD)
git -C "$root" diff --quiet HEAD -- || revision+="-dirty"
"$kafka" start
py=$("$here/python-env.sh" | tail -n 1)

create_topic() { # name partitions [configs…]
  local name=$1 n=$2 configs=() c
  shift 2
  for c in "$@"; do configs+=(--config "$c"); done
  created=1
  "$kafka" topics --create --topic "$name" --partitions "$n" --replication-factor 1 "${configs[@]}" \
    >/dev/null 2>>"$logs/kafka-tools.log" || die "cannot create topic $name (see $logs/kafka-tools.log)"
}

# The pipeline's flags for one rate (topics named after the tag).
pipeline_args() { # tag
  printf '%s\n' run --brokers "$bootstrap" --input-topic "latency-in-$stamp-$1" \
    --output-topic "latency-out-$stamp-$1" --dlq-topic "latency-dlq-$stamp-$1" \
    --insights-topic "latency-insights-$stamp-$1" --group-id "latency-$stamp-$1" \
    --workers "$workers" --guarantee "$guarantee" "${extra[@]}"
}

# Effective settings, from `run --print-config` (resolved flags) and from librdkafka's own
# configuration dump in a pipeline log (`--producer-property debug=conf`: the producer's
# properties that differ from librdkafka's defaults, logged once when it is created).
print_config_value() { # key (the flags are the first rate's; the values are the same for all)
  sed -n "s/^$1 = \"\\{0,1\\}\\([^\"]*\\)\"\\{0,1\\}\$/\\1/p" "$logs/print-config.txt" | head -n 1
}
producer_settings() { # log property…: "key=value" (or "key=default": librdkafka's own) each
  local logf=$1 key value
  shift
  for key in "$@"; do
    value=$(awk -v key="$key" '/ CONF \[/ { line = $0; sub(/.*\]: +/, "", line)
        if (index(line, key " = ") == 1) { print substr(line, length(key) + 4); exit } }' "$logf")
    printf '%s=%s ' "$key" "${value:-default}"
  done
}

mapfile -t first_args < <(pipeline_args "r${rates%% *}")
"$bin" "${first_args[@]}" --print-config >"$logs/print-config.txt" 2>&1 ||
  die "run --print-config failed: $(tail -n 3 "$logs/print-config.txt")"

latency_re='latency p50 ([0-9]+) ms, p99 ([0-9]+) ms, max ([0-9]+) ms'
summary_re='summary: ([0-9]+) records in ([0-9.]+) s'
reader_re='^latency-reader: records ([0-9]+), warm-up ([0-9]+), p50 ([0-9]+) ms, p99 ([0-9]+) ms, p99\.9 ([0-9]+) ms, max ([0-9]+) ms, cpu ([0-9.]+) s$'
rows=()
failures=0
first_plog=''

# One rate: the row goes to rows[]; a failure is counted and explained on stderr.
measure() { # rate
  local rate=$1 tag="r$1" problems=() args
  local input="latency-in-$stamp-$tag" out="latency-out-$stamp-$tag" dlq="latency-dlq-$stamp-$tag"
  local plog="$logs/$tag-pipeline.log" glog="$logs/$tag-loadgen.log" rsslog="$logs/$tag-rss.txt"
  local rlog="$logs/$tag-reader.log" progress="$logs/$tag-reader-seen.txt"
  create_topic "$input" "$partitions" message.timestamp.type=LogAppendTime
  create_topic "$out" "$partitions"
  create_topic "$dlq" 1
  create_topic "latency-insights-$stamp-$tag" 1

  "$py" "$here/bench/latency_reader.py" --bootstrap "$bootstrap" --topics "$out" "$dlq" \
    --warmup "$warmup" --progress "$progress" >"$rlog" 2>&1 &
  reader_pid=$!
  mapfile -t args < <(pipeline_args "$tag")
  RUST_LOG=info,librdkafka=debug "$bin" "${args[@]}" --producer-property debug=conf >"$plog" 2>&1 &
  pipeline_pid=$!
  [[ -n $first_plog ]] || first_plog=$plog
  # Wait for the partitions to be assigned, so the group join is not counted as latency.
  local _
  for _ in $(seq 1 120); do
    grep -q "assigned" "$plog" && break
    kill -0 "$pipeline_pid" 2>/dev/null || break
    sleep 0.5
  done
  if ! grep -q "assigned" "$plog" || ! kill -0 "$reader_pid" 2>/dev/null; then
    grep -q "assigned" "$plog" || log "the pipeline did not get an assignment; see $plog"
    kill -0 "$reader_pid" 2>/dev/null || log "the reader exited; see $rlog"
    kill "$pipeline_pid" "$reader_pid" 2>/dev/null || true
    wait "$pipeline_pid" "$reader_pid" 2>/dev/null || true
    pipeline_pid='' reader_pid=''
    failures=$((failures + 1))
    rows+=("| $guarantee | $rate | – | – | – | – | – | – | – | – | – | **NO**: did not start (see $logs) |")
    return
  fi

  log "rate $rate events/s for $duration s ($guarantee, pipeline pid $pipeline_pid, reader pid $reader_pid)"
  : >"$rsslog"
  (
    while kill -0 "$pipeline_pid" 2>/dev/null; do
      echo "$SECONDS $(ps -o rss= -p "$pipeline_pid" 2>/dev/null | tr -d ' ')" >>"$rsslog"
      sleep 5
    done
  ) &
  sampler_pid=$!
  "$bin" loadgen --brokers "$bootstrap" --topic "$input" --profile realistic --rate "$rate" \
    --duration "${duration}s" --count 1000000000 --seed 1 >"$glog" 2>&1 ||
    problems+=("loadgen failed (see $glog)")
  sleep 5
  local rc=0
  kill -TERM "$pipeline_pid"
  wait "$pipeline_pid" || rc=$?
  pipeline_pid=''
  wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=''
  ((rc == 0)) || problems+=("the pipeline exited with $rc after SIGTERM")

  local produced seen=0 deadline=$((SECONDS + 30))
  produced=$(loadgen_delivered <"$glog") || { produced='?'; problems+=("no delivered count from the generator"); }
  while kill -0 "$reader_pid" 2>/dev/null && ((SECONDS < deadline)); do
    seen=$(cat "$progress" 2>/dev/null || echo 0)
    [[ $produced != '?' && $seen =~ ^[0-9]+$ ]] && ((seen >= produced)) && break
    sleep 0.5
  done
  kill -TERM "$reader_pid" 2>/dev/null || true
  local reader_rc=0
  wait "$reader_pid" || reader_rc=$?
  reader_pid=''
  ((reader_rc == 0)) || problems+=("the reader exited with $reader_rc (see $rlog)")

  local line n='?' p50='?' p99='?' max='?' r_n='?' r_warm='?' r50='?' r99='?' r999='?' rmax='?' rcpu='?'
  line=$(grep -oE "summary: .*" "$plog" | tail -n 1 || true)
  [[ $line =~ $latency_re ]] && p50=${BASH_REMATCH[1]} p99=${BASH_REMATCH[2]} max=${BASH_REMATCH[3]}
  if [[ $line =~ $summary_re ]]; then n=${BASH_REMATCH[1]}; else problems+=("no summary line from the pipeline"); fi
  local rline
  rline=$(grep -E '^latency-reader: ' "$rlog" | tail -n 1 || true)
  if [[ $rline =~ $reader_re ]]; then
    r_n=${BASH_REMATCH[1]} r_warm=${BASH_REMATCH[2]} r50=${BASH_REMATCH[3]} r99=${BASH_REMATCH[4]}
    r999=${BASH_REMATCH[5]} rmax=${BASH_REMATCH[6]} rcpu=${BASH_REMATCH[7]}
  else
    problems+=("no figures from the reader ('${rline:-nothing}'; see $rlog)")
  fi
  if [[ $produced != '?' ]]; then
    [[ $n == "$produced" ]] || problems+=("the pipeline's summary counts $n records, the generator delivered $produced")
    if [[ $r_n != '?' ]] && ((r_n + r_warm != produced)); then
      problems+=("the reader saw $((r_n + r_warm)) records, the generator delivered $produced")
    fi
    [[ $r_n == '?' || $r_n -gt 0 ]] || problems+=("no record after the warm-up")
  fi
  local achieved
  achieved=$(sed -n 's/.*loadgen: .*, \([0-9]*\)\(\.[0-9]*\)\{0,1\} records\/s:.*/\1/p' "$glog" | tail -n 1)
  local rss_min rss_max rss_series
  rss_min=$(awk '$2 > 0 { print int($2 / 1024) }' "$rsslog" | sort -n | head -n 1)
  rss_max=$(awk '$2 > 0 { print int($2 / 1024) }' "$rsslog" | sort -n | tail -n 1)
  # RSS over the run, one sample per 20 s, to show it does not grow.
  rss_series=$(awk '$2 > 0 && (NR - 1) % 4 == 0 { printf "%s%d", sep, $2 / 1024; sep = " " }' "$rsslog")

  local verdict="yes: $r_n measured + $r_warm warm-up = $produced generated"
  if ((${#problems[@]})); then
    failures=$((failures + 1))
    local p
    for p in "${problems[@]}"; do log "  FAILED $tag: $p"; done
    verdict="**NO**: $(printf '%s; ' "${problems[@]}")"
    verdict=${verdict%; }
  fi
  log "  reader: ${rline:-no figures}"
  log "  pipeline: ${line:-no summary}"
  rows+=("| $guarantee | $rate | ${achieved:-?} | $r_n | $r50 | $r99 | $r999 | $rmax | $p50 / $p99 / $max | ${rss_min:-?}–${rss_max:-?} ($rss_series) | $rcpu | $verdict |")
}

for rate in $rates; do measure "$rate"; done

cpu_model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
mem_gib=$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")
reader_client=$("$py" -c 'import confluent_kafka as c; print(f"confluent-kafka {c.version()[0]}, librdkafka {c.libversion()[0]}")' 2>/dev/null || echo '?')
producer='?'
if [[ -n $first_plog ]]; then
  # linger.ms is an alias: librdkafka reports it as queue.buffering.max.ms.
  producer=$(producer_settings "$first_plog" queue.buffering.max.ms batch.num.messages batch.size \
    compression.codec enable.idempotence)
  producer=${producer/queue.buffering.max.ms=/linger.ms=}
fi
{
  echo "## End-to-end latency at fixed rates, live stream, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Realistic events, $partitions partitions, \`kafka-pipeline run --workers $workers --guarantee $guarantee${run_args:+ $run_args}\`, $duration s per rate, the first $warmup s left out; generator, broker, pipeline and reader on one host."
  echo
  echo "| guarantee | target events/s | generated events/s | records measured | p50 ms | p99 ms | p99.9 ms | max ms | pipeline's own p50 / p99 / max ms | RSS MB min–max (every 20 s) | reader CPU s | verified |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | --- |"
  printf '%s\n' "${rows[@]}"
  echo
  echo "p50–max: when a read_committed reader got each output or dead letter, minus its input"
  echo "record's broker append time (LogAppendTime on the input; outputs keep the input's"
  echo "timestamp). The pipeline's own figures (its summary line) end at the delivery report of"
  echo "the output instead (under exactly-once: before the epoch commits) and cover the whole run,"
  echo "warm-up included."
  echo
  echo "Settings:"
  echo "- pipeline: commit interval $(print_config_value commit-interval), workers $(print_config_value workers), guarantee $(print_config_value guarantee), channel capacity $(print_config_value channel-capacity)"
  echo "- pipeline producer, as librdkafka reports it (\"default\": librdkafka's own): $producer"
  echo "- reader: scripts/bench/latency_reader.py, $reader_client, isolation.level=read_committed, fetch.wait.max.ms=10"
  echo "- input: message.timestamp.type=LogAppendTime; loadgen --profile realistic --seed 1 (its own producer settings)"
  echo
  echo "- command: \`$command_line\`"
  echo "- git: $revision (release build)"
  echo "- machine: $(nproc) CPUs ($cpu_model), ${mem_gib} GiB, $(uname -sr); broker Apache Kafka $kafka_version on the same host"
  echo "- date: $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
} | tee "$report"
log "wrote $report (logs in $logs/)"
((failures == 0)) || { log "$failures rate(s) failed; see the table"; exit 1; }
