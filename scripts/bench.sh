#!/usr/bin/env bash
# End-to-end benchmark on the real broker: the pipeline against a minimal rust-rdkafka copy (the
# ceiling), kcat, and Python pipelines on confluent-kafka and kafka-python, on one prefilled input
# topic.
#
#   scripts/bench.sh [OPTIONS]
#
# Builds the release binary and the copy example (cargo decides whether they are stale; into
# $CARGO_TARGET_DIR when set), starts the local broker (scripts/kafka.sh), prepares the Python
# venv (scripts/python-env.sh), installs Debian's kcat when it is missing (as root; otherwise
# that row is skipped), prefills a fresh
# input topic bench-in-<stamp> with realistic events, then runs, interleaved, once per round:
#   copy      examples/copy.rs: one thread, BaseConsumer::poll + BaseProducer::send with the
#             pipeline's librdkafka settings, nothing else — the ceiling
#   kcat      kcat -C … -e | kcat -P … (Debian's kcat, its own librdkafka): events/s from wall
#             time, start-up included; verified as output = input (tombstones become empty
#             values)
#   passthrough  kafka-pipeline run --passthrough: the pipeline's threads, nothing parsed
#   pipeline  kafka-pipeline run, once per --workers value
#   confluent scripts/bench/confluent.py: the baseline's loop on confluent-kafka (librdkafka)
#   baseline  scripts/bench/baseline.py, the original Python pipeline's style (kafka-python,
#             json.loads, skip records with missing fields, produce), on its own, smaller input
#             topic bench-in-<stamp>-baseline: the first --baseline-count events of the same
#             generator (same seed, base time and partitions)
# Every run reads its input from the beginning with a fresh group id into fresh output and
# dead-letter topics, exits when the input is drained and committed (--exit-at-end), and runs
# under /usr/bin/time. events/s comes from the run's `summary:` line (first consume to last
# delivery); CPU s per 1M events is (user + sys) / events * 1e6 over the whole process; peak RSS
# is the process's maximum. Each run is verified against the topics' end offsets: output total =
# input - dead letters, dead-letter total = dead letters (copy, kcat, pass-through: output = input, no dead
# letters). A failed or unverified run is marked in the table and makes the script exit 1; so does
# a topic total that cannot be read as an integer (scripts/lib/parse.sh).
#
# Prints a markdown table, the ratios to the references (pipeline: its best --workers value),
# the command, git revision and machine, and writes the same to target/bench/<stamp>.md (run logs
# in target/bench/<stamp>/). Deletes its topics and groups at the end unless --keep-topics.
#
# Options (defaults in brackets):
#   --count N              events in the input topic [2000000]
#   --partitions P         partitions of the input and output topics [6]
#   --workers "W ..."      pipeline --workers values to run ["1 2 4"]
#   --ceiling-workers W    --workers of the pass-through run [1]
#   --seed S               load generator seed [1]
#   --rounds R             times to run the interleaved sequence [1]
#   --baseline-count N     events in the Python baseline's input topic [200000]
#   --skip-baseline        do not run the Python pipelines (confluent, baseline)
#   --skip-references      do not run copy and kcat
#   --keep-topics          keep the bench topics and groups (to inspect them)
#   --timeout SECONDS      stop a run that takes longer than this and mark it failed [1800]
#   --variant "LABEL=ARGS" one more pipeline run (first --workers value) with extra arguments,
#                          e.g. --variant "linger 20=--producer-property linger.ms=20";
#                          repeatable: how the librdkafka settings in the README were measured
#   --profile P            cargo profile of the binaries, release or debug [release]; debug
#                          reuses what `cargo test` built (CI's short round checks that every
#                          row verifies; its figures are not a benchmark, and the report says so)
#   -h, --help             this text
#
# The input is written uncompressed (compression.type=none), as the original Python producer
# writes it and as plain kafka-python can read it. The broker shares the machine's cores with
# every run: compare numbers within one table, not across machines or busy hours.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
kafka="$here/kafka.sh"
bootstrap=localhost:29092
# shellcheck source=scripts/lib/parse.sh
source "$here/lib/parse.sh"

log() { printf 'bench.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# The command as typed, quoted for a shell: words with anything unusual in single quotes.
command_line=${BASH_SOURCE[0]}
for arg in "$@"; do
  if [[ $arg =~ ^[A-Za-z0-9_./=:,+-]+$ ]]; then command_line+=" $arg"; else command_line+=" '${arg//\'/\'\\\'\'}'"; fi
done

count=2000000
partitions=6
workers_list="1 2 4"
ceiling_workers=1
seed=1
rounds=1
baseline_count=200000
skip_baseline=0
skip_references=0
keep_topics=0
run_timeout=1800
variants=()
profile=release

while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --skip-baseline) skip_baseline=1; shift ;;
    --skip-references) skip_references=1; shift ;;
    --keep-topics) keep_topics=1; shift ;;
    --count | --partitions | --workers | --ceiling-workers | --seed | --rounds | --baseline-count | --timeout | --variant | --profile)
      (($# >= 2)) || die "$1 needs a value (see --help)"
      case $1 in
        --count) count=$2 ;;
        --partitions) partitions=$2 ;;
        --workers) workers_list=$2 ;;
        --ceiling-workers) ceiling_workers=$2 ;;
        --seed) seed=$2 ;;
        --rounds) rounds=$2 ;;
        --baseline-count) baseline_count=$2 ;;
        --timeout) run_timeout=$2 ;;
        --profile) profile=$2 ;;
        --variant)
          [[ $2 == *=* && -n ${2%%=*} ]] || die "--variant takes LABEL=ARGS, got '$2'"
          variants+=("$2")
          ;;
      esac
      shift 2
      ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

positive() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"; }
positive --count "$count"
positive --partitions "$partitions"
positive --ceiling-workers "$ceiling_workers"
positive --rounds "$rounds"
positive --baseline-count "$baseline_count"
positive --timeout "$run_timeout"
[[ $seed =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer, got '$seed'"
[[ $profile == release || $profile == debug ]] || die "--profile is release or debug, got '$profile'"
read -r -a workers <<<"$workers_list"
((${#workers[@]} > 0)) || die "--workers needs at least one value"
for w in "${workers[@]}"; do positive --workers "$w"; done

# Thousands separators for integers, fixed decimals for the rest (awk does the float math;
# "%.0f", not mawk's "%d", which stops at 2147483647).
commas() {
  awk -v n="$1" 'BEGIN { s = sprintf("%.0f", n); o = ""
    while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
    print s o }'
}
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

# ---------------------------------------------------------------------------------------------
# 1. Binary, broker, Python.

stamp=$(date -u +%Y%m%d-%H%M%S)
outdir="$root/target/bench"
logs="$outdir/$stamp"
report="$outdir/$stamp.md"
mkdir -p "$logs"

log "building the $profile binary and the copy example"
# The debug profile reuses what scripts/test.sh built (with its test-only fault hook, inert
# unless KAFKA_PIPELINE_FAULT is set), so CI links nothing twice.
cargo_profile=(--features fault-injection)
[[ $profile == release ]] && cargo_profile=(--release)
(cd "$root" && cargo build "${cargo_profile[@]}" --locked --bin kafka-pipeline --example copy) >&2
# Where cargo put them: $CARGO_TARGET_DIR (relative to the repository, where cargo ran) or target/.
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$root/$target_dir
# Run a copy, so that a rebuild during the benchmark cannot mix two binaries in one table.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/kafka-pipeline-bench.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
bin="$scratch/kafka-pipeline"
cp "$target_dir/$profile/kafka-pipeline" "$bin"
copy_bin="$scratch/copy"
cp "$target_dir/$profile/examples/copy" "$copy_bin"
kcat_ok=0
if ((!skip_references)); then
  if ! command -v kcat >/dev/null && ((EUID == 0)); then
    log "installing Debian's kcat"
    # A fresh machine (a container image) has no package lists yet: update them and try again.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >&2 ||
      { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >&2; } || true
  fi
  if command -v kcat >/dev/null; then kcat_ok=1; else log "kcat not available: its row is skipped"; fi
fi
revision=$(git -C "$root" rev-parse --short HEAD)
git -C "$root" diff --quiet HEAD -- || revision+="-dirty"
"$bin" run --help | grep -q -- '--passthrough' ||
  die "this kafka-pipeline has no 'run --passthrough' ; rebuild from a newer revision"

"$kafka" start

py=
if ((!skip_baseline)); then
  py=$("$here/python-env.sh" | tail -n 1)
fi

# ---------------------------------------------------------------------------------------------
# Topics, groups and cleanup.

input="bench-in-$stamp"
baseline_input="bench-in-$stamp-baseline"
groups=()

cleanup() {
  local rc=$?
  set +e
  rm -rf "$scratch"
  if ((keep_topics)); then
    log "kept the topics bench-*-$stamp* and groups ${groups[*]:-(none)} (--keep-topics)"
  else
    log "deleting the topics bench-*-$stamp* and the bench groups"
    "$kafka" topics --delete --topic "bench-[a-z]+-$stamp.*" >/dev/null 2>&1 ||
      log "warning: could not delete the topics bench-*-$stamp*"
    if ((${#groups[@]})); then
      local args=() g
      for g in "${groups[@]}"; do args+=(--group "$g"); done
      "$kafka" groups --delete "${args[@]}" >/dev/null 2>&1 ||
        log "warning: could not delete the groups ${groups[*]}"
    fi
  fi
  exit "$rc"
}
# A run goes in the background with `wait`, so that Ctrl-C reaches this shell at once (bash runs
# no INT trap for a foreground child that survives the signal). timeout(1) keeps the run in its
# own process group, out of reach of Ctrl-C; on a signal, send the command itself (time's child
# is timeout, timeout's child the command) one SIGTERM, a graceful shutdown: through timeout it
# would get two (timeout signals the child and its whole group), and a second signal makes
# kafka-pipeline exit at once without leaving its group. Then wait for it, exit and clean up.
running=
on_signal() {
  if [[ -n $running ]]; then
    log "interrupted: stopping the current run"
    local t
    for t in $(pgrep -P "$running"); do pkill -TERM -P "$t"; done
    wait "$running" 2>/dev/null
  fi
  exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

create_topic() {
  "$kafka" topics --create --topic "$1" --partitions "$partitions" --replication-factor 1 >/dev/null
}

# Sum of the end offsets of a topic's partitions (its record count: bench topics start at 0);
# fails, saying why, unless every line is `partition offset`. The tool's stderr goes to a log.
topic_total() {
  "$kafka" offsets "$1" 2>>"$logs/kafka-tools.log" | sum_offsets "$1"
}

# Records a read_committed reader sees in a topic (kcat), for transactional outputs; fails when
# kcat is missing or fails.
committed_records() {
  command -v kcat >/dev/null || { log "kcat is needed to count the records of $1"; return 1; }
  local n
  n=$(kcat -C -b "$bootstrap" -t "$1" -o beginning -e -q -X isolation.level=read_committed -f 'x\n' | wc -l) &&
    require_count "the committed records of $1" "$n"
}

# ---------------------------------------------------------------------------------------------
# 2. Prefill.

# Event times end at the present (1,000 events per second of event time), as in a live feed:
# events stamped in the future would wait for their insight windows and skew the run.
base_time=$(( $(date +%s) - count / 1000 ))
prefill() { # topic count
  log "prefilling $1 with $2 realistic events (seed $seed, $partitions partitions)"
  "$bin" loadgen --topic "$1" --partitions "$partitions" --count "$2" --profile realistic \
    --seed "$seed" --base-time "$base_time" -X compression.type=none \
    >"$logs/prefill-$1.log" 2>&1 || { tail -n 20 "$logs/prefill-$1.log" >&2; die "loadgen failed"; }
  grep '^loadgen:' "$logs/prefill-$1.log" >&2 || true
}
prefill "$input" "$count"
input_count=$(topic_total "$input") || die "cannot read the end offsets of $input"
((input_count == count)) || log "warning: $input holds $input_count records, not --count $count"
baseline_input_count=0
if ((!skip_baseline)); then
  prefill "$baseline_input" "$baseline_count"
  baseline_input_count=$(topic_total "$baseline_input") ||
    die "cannot read the end offsets of $baseline_input"
fi

# ---------------------------------------------------------------------------------------------
# 3–4. Runs.

rows=()        # markdown table rows
results=()     # "round kind workers rate" per successful run, for the ratios
failures=0

summary_re='summary: ([0-9]+) records in ([0-9.]+) s \(first consume to last delivery\): ([0-9]+) records/s; valid ([0-9]+), dead letters ([0-9]+)'

# One run: kind (copy, kcat, passthrough, pipeline, variant, confluent, baseline), workers,
# round[, variant index].
run_case() {
  local kind=$1 w=$2 round=$3 variant_index=${4:-}
  local tag=$kind name=$kind extra=()
  [[ $kind == pipeline ]] && tag+="-w$w"
  if [[ $kind == variant ]]; then
    local spec=${variants[$variant_index]}
    tag+="$variant_index-w$w"
    name="pipeline (${spec%%=*})"
    read -r -a extra <<<"${spec#*=}"
  fi
  if ((rounds > 1)); then tag+="-r$round"; name+=" #$round"; fi
  local out="bench-out-$stamp-$tag" dlq="bench-dlq-$stamp-$tag" ins="bench-insights-$stamp-$tag"
  local group="bench-$stamp-$tag" logf="$logs/$tag.log" timef="$logs/$tag.time"
  local expected=$input_count cmd
  groups+=("$group")
  create_topic "$out"
  case $kind in
    passthrough | pipeline | variant)
      create_topic "$dlq"
      cmd=("$bin" run --input-topic "$input" --output-topic "$out" --dlq-topic "$dlq"
        --insights-topic "$ins" --group-id "$group" --workers "$w" --exit-at-end "${extra[@]}")
      [[ $kind == passthrough ]] && cmd+=(--passthrough)
      ;;
    copy)
      cmd=("$copy_bin" --input-topic "$input" --output-topic "$out" --group-id "$group")
      ;;
    kcat)
      # Key and value separated by \x1f, records by \x1e: no realistic record contains them.
      cmd=(bash -c "kcat -C -b $bootstrap -t $input -o beginning -e -q -f '%k\x1f%s\x1e' | kcat -P -b $bootstrap -t $out -K '\x1f' -D '\x1e' -X enable.idempotence=true -X linger.ms=5")
      ;;
    confluent)
      cmd=("$py" "$here/bench/confluent.py" --bootstrap "$bootstrap" --input "$input"
        --output "$out" --group "$group")
      ;;
    baseline)
      expected=$baseline_input_count
      cmd=("$py" "$here/bench/baseline.py" --bootstrap "$bootstrap" --input "$baseline_input"
        --output "$out" --group "$group")
      ;;
  esac

  log "run $tag: ${cmd[*]##*/}"
  local rc=0
  RUST_LOG=info /usr/bin/time -o "$timef" -f '%e %U %S %M' \
    timeout --kill-after=30 "$run_timeout" "${cmd[@]}" >"$logf" 2>&1 &
  running=$!
  wait "$running" || rc=$?
  running=

  local wall user sys rss n='' rate valid dead problems=()
  read -r wall user sys rss < <(tail -n 1 "$timef" 2>/dev/null) || true
  log "  process: ${wall:-?} s wall, ${user:-?} s user, ${sys:-?} s sys, ${rss:-?} KB peak RSS"
  local line
  line=$(grep -oE "$summary_re" "$logf" | tail -n 1 || true)
  if ((rc == 124 || rc == 137)); then
    problems+=("timed out after $run_timeout s (exit status $rc)")
  elif ((rc != 0)); then
    problems+=("exit status $rc")
  fi
  if [[ $kind == kcat && $rc == 0 && -n ${wall:-} ]]; then
    # No summary line: the whole process's wall time, start-up included.
    n=$expected dead=0 valid=$expected
    rate=$(calc '%.0f' "$n / $wall")
    line="kcat: $n records in $wall s wall"
  fi
  if [[ $kind == kcat ]]; then
    :
  elif [[ $line =~ $summary_re ]]; then
    n=${BASH_REMATCH[1]} rate=${BASH_REMATCH[3]}
    valid=${BASH_REMATCH[4]} dead=${BASH_REMATCH[5]}
    log "  $line"
  else
    problems+=("no summary line")
  fi

  local verified='' out_total dlq_total=0
  out_total=$(topic_total "$out") || { out_total='?'; problems+=("cannot read the end offsets of $out"); }
  if [[ $kind == passthrough || $kind == pipeline || $kind == variant ]]; then
    dlq_total=$(topic_total "$dlq") || { dlq_total='?'; problems+=("cannot read the end offsets of $dlq"); }
  fi
  if [[ " ${extra[*]} " == *" exactly-once "* ]]; then
    # Transactional topics hold a commit marker per transaction and partition: count the
    # committed records themselves.
    out_total=$(committed_records "$out") || { out_total='?'; problems+=("cannot count the committed records of $out"); }
    dlq_total=$(committed_records "$dlq") || { dlq_total='?'; problems+=("cannot count the committed records of $dlq"); }
  fi
  if [[ -n $n ]]; then
    ((n == expected)) || problems+=("summary counts $n records, the input holds $expected")
    ((valid + dead == n)) || problems+=("valid $valid + dead letters $dead != $n records")
    if [[ $kind == passthrough || $kind == copy || $kind == kcat ]]; then
      ((dead == 0)) || problems+=("a pass-through run reports $dead dead letters")
      [[ $out_total == "$expected" ]] || problems+=("output holds $out_total records, the input $expected")
    else
      [[ $out_total == $((expected - dead)) ]] ||
        problems+=("output holds $out_total records, expected input $expected - dead letters $dead = $((expected - dead))")
    fi
    if [[ $kind == pipeline || $kind == variant ]]; then
      [[ $dlq_total == "$dead" ]] || problems+=("dead-letter topic holds $dlq_total records, the summary says $dead")
    fi
  fi

  if ((${#problems[@]} == 0)); then
    verified="yes: out $(commas "$out_total")"
    [[ $kind == pipeline || $kind == variant ]] && verified+=" + dlq $(commas "$dlq_total")"
    [[ $kind == baseline || $kind == confluent ]] && verified+=" + skipped $(commas "$dead")"
    results+=("$round $kind$variant_index $w $rate")
  else
    failures=$((failures + 1))
    local p
    for p in "${problems[@]}"; do log "  FAILED $tag: $p"; done
    log "  log: $logf"
    verified="**NO**: $(printf '%s; ' "${problems[@]}")"
    verified=${verified%; }
  fi

  local wlabel=$w events rate_s='–' cpu='–' rss_mb='–'
  [[ $kind == baseline || $kind == confluent ]] && wlabel="1 (Python)"
  [[ $kind == copy || $kind == kcat ]] && wlabel="1 (reference)"
  events=${n:-$expected}
  [[ -n $n ]] && rate_s=$(commas "$rate")
  if [[ -n ${user:-} && $events -gt 0 ]]; then
    cpu=$(calc '%.2f' "($user + $sys) / $events * 1e6")
    rss_mb=$(calc '%.0f' "$rss / 1024")
  fi
  rows+=("| $name | $wlabel | $(commas "$events") | $rate_s | $cpu | $rss_mb | $verified |")
}

for ((round = 1; round <= rounds; round++)); do
  ((rounds == 1)) || log "round $round of $rounds"
  ((skip_references)) || run_case copy 1 "$round"
  ((kcat_ok)) && run_case kcat 1 "$round"
  run_case passthrough "$ceiling_workers" "$round"
  for w in "${workers[@]}"; do run_case pipeline "$w" "$round"; done
  for i in "${!variants[@]}"; do run_case variant "${workers[0]}" "$round" "$i"; done
  ((skip_baseline)) || run_case confluent 1 "$round"
  ((skip_baseline)) || run_case baseline 1 "$round"
done

# ---------------------------------------------------------------------------------------------
# 5. Report.

# Median events/s of one configuration over the rounds ("" when no run of it succeeded).
median_rate() { # kind workers
  printf '%s\n' "${results[@]}" | awk -v k="$1" -v w="$2" '$2 == k && $3 == w { print $4 }' |
    sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.0f\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

ratios=()
best_w='' best_rate=''
for w in "${workers[@]}"; do
  r=$(median_rate pipeline "$w")
  [[ -n $r ]] || continue
  if [[ -z $best_rate ]] || awk "BEGIN { exit !($r > $best_rate) }"; then best_w=$w best_rate=$r; fi
done
passthrough_rate=$(median_rate passthrough "$ceiling_workers")
copy_rate=$(median_rate copy 1)
kcat_rate=$(median_rate kcat 1)
baseline_rate='' confluent_rate=''
((skip_baseline)) || { baseline_rate=$(median_rate baseline 1); confluent_rate=$(median_rate confluent 1); }
of=''
((rounds > 1)) && of=" (medians over $rounds rounds)"
ratio() { # label numerator numerator-name denominator denominator-name target
  if [[ -n $2 && -n $4 ]]; then
    ratios+=("- $1: $3 $(commas "$2") / $5 $(commas "$4") events/s$of: **$(calc '%.2f' "$2 / $4")×** (target $6)")
  else
    ratios+=("- $1: n/a (no verified run of both)")
  fi
}
ratio "pass-through / copy" "$passthrough_rate" "pass-through" "$copy_rate" "copy" "≥ 0.9"
ratio "pipeline / copy" "$best_rate" "pipeline (--workers ${best_w:-?})" "$copy_rate" "copy" "≥ 0.6"
ratio "pipeline / kcat" "$best_rate" "pipeline" "$kcat_rate" "kcat" "≥ 1.0"
ratio "pipeline / confluent-kafka Python" "$best_rate" "pipeline" "$confluent_rate" "confluent" "≥ 3"
ratio "pipeline / kafka-python baseline" "$best_rate" "pipeline" "$baseline_rate" "baseline" "≥ 20"

base_rate=$(median_rate pipeline "${workers[0]}")
for i in "${!variants[@]}"; do
  r=$(median_rate "variant$i" "${workers[0]}")
  if [[ -n $r && -n $base_rate ]]; then
    ratios+=("- pipeline (${variants[$i]%%=*}), --workers ${workers[0]}: $(commas "$r") events/s, **$(calc '%.2f' "$r / $base_rate")×** the default settings ($(commas "$base_rate") events/s)$of")
  else
    ratios+=("- pipeline (${variants[$i]%%=*}): n/a (no verified run of it and of the default)")
  fi
done

cpu_model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
mem_gib=$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")

{
  echo "## End-to-end benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  if [[ $profile != release ]]; then
    echo "**$profile build** (\`--profile $profile\`): a check that every row runs and verifies; its figures are not a benchmark."
    echo
  fi
  echo "Input: $(commas "$input_count") realistic events (loadgen seed $seed, $partitions partitions, uncompressed) in one topic; every run reads it from the beginning with a fresh group."
  if ((!skip_baseline)); then
    echo "The Python baseline reads the first $(commas "$baseline_input_count") events of the same generator from its own topic."
  fi
  echo
  echo "| run | workers | events | events/s | CPU s per 1M events | peak RSS MB | verified |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | --- |"
  printf '%s\n' "${rows[@]}"
  echo
  printf '%s\n' "${ratios[@]}"
  echo
  echo "events/s: first consume to last delivery (the run's summary line). CPU and RSS: the whole"
  echo "process under /usr/bin/time, start-up and group join included."
  echo
  echo "- command: \`$command_line\`"
  echo "- git: $revision ($profile build)"
  echo "- machine: $(nproc) CPUs ($cpu_model), ${mem_gib} GiB, $(uname -sr); broker Apache Kafka $kafka_version on the same host"
  echo "- $(rustc --version 2>/dev/null || echo 'rustc: unknown'); $("${py:-python3}" --version 2>&1) with kafka-python $(sed -n 's/^kafka-python==//p' "$root/tests/python/requirements.txt") and confluent-kafka $(sed -n 's/^confluent-kafka==//p' "$root/tests/python/requirements.txt"); $( ((kcat_ok)) && kcat -V 2>/dev/null | sed -n 's/^Version \([^ ]*\) .*librdkafka \([^ ]*\).*/kcat \1 (librdkafka \2)/p' || echo 'kcat: not run')"
  echo "- date: $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
} | tee "$report"
log "wrote $report (run logs in $logs/)"

if ((failures)); then
  log "$failures run(s) failed or did not verify; see the table"
  exit 1
fi
