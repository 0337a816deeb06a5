#!/usr/bin/env bash
# Fault-injection suite: runs the pipeline against a real broker while injecting faults, then
# accounts for every input record (target/release/examples/chaos account: lost, misrouted,
# wrong code, duplicates, committed vs end, output_rejected and reduced dead letters) and
# prints a table.
#
#   scripts/chaos.sh                  every scenario, full size (about 70 minutes, 20 of them
#                                     the soak)
#   scripts/chaos.sh --quick          short graceful, scaleout, hostile, poison (at-least-once)
#                                     and panic (worker-1) runs and 60 s of fuzzing (what CI
#                                     runs, ~3 minutes)
#   scripts/chaos.sh [--quick] NAME…  only these scenarios (--quick: their short sizes):
#       kill9 kill9-eos crashloop graceful broker scaleout scaleout-eos unwritable poison
#       hostile backpressure panic fuzz failover failover-eos soak
#   (failover and failover-eos run on the three-node cluster of `scripts/kafka.sh cluster`,
#   started if it is not running and then stopped again at the end; not part of --quick)
#
# The scenarios added for issue 20 (each described above its function):
#   poison        1,020,000- and 1,048,400-byte records (invalid JSON) in realistic traffic,
#                 on the default topic configs and again with the output's max.message.bytes
#                 below a processed record and the DLQ's below the big letters, at-least-once
#                 and exactly-once: committed to the end, SIGTERM exits 0, every input an
#                 output or a dead letter (output_rejected and reduced letters included)
#   panic         KAFKA_PIPELINE_FAULT=STAGE:N (the test-only fault hook; these binaries are
#                 built with --features fault-injection) for worker-1, producer and consumer:
#                 exit 4 within two commit intervals of the panic, /health 503 meanwhile, a
#                 restart completes with 0 lost
#   scaleout-eos  three exactly-once instances joining and leaving under 3,000 events/s: no
#                 instance exits by itself, 0 lost, 0 duplicates for a read_committed reader
#   kill9-eos     now on the default instance id, and measures how long a read_committed
#                 reader sees nothing after each kill -9 and restart (FAIL above 15 s)
#   soak          CHAOS_SOAK_SECONDS (1200) at CHAOS_SOAK_RATE (20,000/s), the private broker
#                 restarted every CHAOS_SOAK_RESTART_SECONDS (300): RSS of the last minute at
#                 most 10 % above the second minute's, 0 lost; not part of --quick
#
# Environment: CHAOS_BROKERS (default localhost:29092, the shared broker, which is never
# stopped), CHAOS_PRIVATE_PORT (the broker-restart scenario starts, stops and restarts its own
# broker there, the controller on the next port, data in target/chaos/<run>/private-broker;
# default: a free port; scripts/kafka.sh refuses a port some other process listens on),
# CHAOS_KEEP_TOPICS=1 (keep the scenario topics),
# CHAOS_PROFILE=debug (use the debug binaries, e.g. in CI right after `cargo test`; binaries
# come from $CARGO_TARGET_DIR when set, else target/),
# CHAOS_FUZZ_SECONDS (fuzz time, default 60 quick / 180 full), CHAOS_FAILOVER_RATE (events/s
# of the failover scenarios, default 3000), CHAOS_CLUSTER_BASE_PORT (the cluster's
# KAFKA_CLUSTER_BASE_PORT, default 29100: nodes on 29110, 29120, 29130), CHAOS_CLUSTER_CONFIG
# (broker settings for the cluster, KAFKA_EXTRA_CONFIG of scripts/kafka.sh, e.g.
# "broker.session.timeout.ms=3000"; takes effect where this run starts or restarts a node),
# CHAOS_PANIC_BATCH (the batch at which the panic scenario's stage panics, default 200),
# CHAOS_SOAK_SECONDS, CHAOS_SOAK_RATE, CHAOS_SOAK_RESTART_SECONDS (the soak, see above).
# Logs, RSS samples and the table go to target/chaos/<run>/. Exit status 1 if a scenario fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Counts read from the tools go through these parsers: one that cannot be read fails the run.
# shellcheck source=scripts/lib/parse.sh
source scripts/lib/parse.sh

quick=0
scenarios=()
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    kill9 | kill9-eos | crashloop | graceful | broker | scaleout | scaleout-eos | unwritable | poison | \
      hostile | backpressure | panic | fuzz | failover | failover-eos | soak) scenarios+=("$arg") ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
  esac
done
if ((${#scenarios[@]} == 0)); then
  if ((quick)); then
    scenarios=(graceful scaleout hostile poison panic fuzz)
  else
    scenarios=(kill9 kill9-eos crashloop graceful broker scaleout scaleout-eos unwritable poison
      hostile backpressure panic fuzz failover failover-eos soak)
  fi
fi

brokers=${CHAOS_BROKERS:-localhost:29092}
profile=${CHAOS_PROFILE:-release}
run_id=$(date -u +%Y%m%dT%H%M%S)-$$
out=target/chaos/$run_id
mkdir -p "$out"
table=$out/table.tsv
# Where cargo puts the binaries: $CARGO_TARGET_DIR (relative to the repository, where cargo
# runs) or target/.
target_dir=${CARGO_TARGET_DIR:-target}
bin=$target_dir/$profile/kafka-pipeline
tool=$target_dir/$profile/examples/chaos
suite_started=$SECONDS

log() { printf '[chaos %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# A port for the private broker whose next port (its controller) is free too: below the
# kernel's ephemeral range (32768+), nothing answering on either. kafka.sh still refuses a port
# taken between this probe and its start.
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
      ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 1))") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  log "no free port pair found for the private broker"
  return 1
}
private_port=${CHAOS_PRIVATE_PORT:-$(free_port)}
# Its own data directory: fresh each run, next to the run's logs.
private_kafka() { KAFKA_PORT=$private_port KAFKA_BROKER_DATA=$PWD/$out/private-broker scripts/kafka.sh "$@"; }
cluster_base=${CHAOS_CLUSTER_BASE_PORT:-29100}
cluster_kafka() {
  KAFKA_CLUSTER_BASE_PORT=$cluster_base KAFKA_EXTRA_CONFIG=${CHAOS_CLUSTER_CONFIG:-} \
    scripts/kafka.sh cluster "$@"
}

# With the test-only fault hook (src/fault.rs; the panic scenario), as scripts/test.sh builds it,
# so the debug binaries the tests built are reused as they are.
if [[ $profile == release ]]; then
  cargo build --release --locked --features fault-injection --bin kafka-pipeline --example chaos
else
  cargo build --locked --features fault-injection --bin kafka-pipeline --example chaos
fi
scripts/kafka.sh start

# --- process bookkeeping: everything started here is stopped by its pid on exit -------------

declare -A pids=()    # pipeline name -> pid
background=()         # other pids (load generators, RSS samplers)
private_broker=0
cluster_started=0     # this run started the three-node cluster: stop it on exit
cluster_brokers=""

cleanup() {
  local pid
  for pid in "${pids[@]}" "${background[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  if ((private_broker)); then private_kafka stop || true; fi
  if ((cluster_started)); then cluster_kafka stop || true; fi
  rm -rf "$out/private-broker/logs"
}
trap cleanup EXIT

# Samples the resident set size of a process once a second into $rss_file.
watch_rss() {
  local pid=$1 kb
  while kb=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null) && [[ -n $kb ]]; do
    echo "$((SECONDS - scenario_started)) $pid $kb" >>"$rss_file"
    sleep 1
  done
}

# start_pipeline NAME BROKERS INPUT GROUP [run flags…]: a pipeline on INPUT's -out/-dlq topics.
# No --instance-id by default: an explicit one makes a static group member, which keeps its
# partitions after it stops until the session times out (crashloop passes one on purpose).
start_pipeline() {
  local name=$1 b=$2 input=$3 group=$4
  shift 4
  "$bin" run --brokers "$b" --input-topic "$input" --output-topic "$input-out" \
    --dlq-topic "$input-dlq" --insights-topic "$input-insights" --group-id "$group" \
    --workers 2 --progress-interval 5s "$@" >>"$logs/$name.log" 2>&1 &
  pids[$name]=$!
  watch_rss "${pids[$name]}" &
  background+=($!)
  log "started $name (pid ${pids[$name]})"
}

# stop_pipeline NAME SIGNAL EXPECTED: signals the pipeline, waits, checks its exit status.
stop_pipeline() {
  local name=$1 signal=$2 expected=$3 pid=${pids[$1]} rc=0
  kill "-$signal" "$pid"
  wait "$pid" || rc=$?
  unset "pids[$name]"
  log "$name (pid $pid) exited with $rc after SIG$signal"
  ((rc == expected)) || fail "$name: exit $rc after SIG$signal, expected $expected"
}

# wait_pipeline NAME: waits for a pipeline that exits by itself (--exit-at-end), expects 0.
wait_pipeline() {
  local name=$1 pid=${pids[$1]} rc=0
  wait "$pid" || rc=$?
  unset "pids[$name]"
  log "$name (pid $pid) exited with $rc"
  ((rc == 0)) || fail "$name: exit $rc, expected 0"
}

# loadgen BROKERS TOPIC [loadgen flags…]: labelled traffic in the background; pid in $loadgen_pid.
loadgen() {
  local b=$1 topic=$2
  shift 2
  "$bin" loadgen --brokers "$b" --topic "$topic" --label "$@" >>"$logs/loadgen.log" 2>&1 &
  loadgen_pid=$!
  background+=("$loadgen_pid")
}

wait_loadgen() {
  local rc=0
  wait "$loadgen_pid" || rc=$?
  if ((rc != 0)); then fail "load generator exited with $rc"; fi
  tail -n 1 "$logs/loadgen.log" >&2
}

# topics BROKERS INPUT PARTITIONS [input configs…]: input, -out (same partitions), -dlq.
# With topic_rf=3 (the cluster): 3 replicas, min.insync.replicas=2, and -insights too.
topic_rf=1
topics() {
  local b=$1 input=$2 partitions=$3 rf=(--replication-factor "$topic_rf") isr=()
  shift 3
  if ((topic_rf >= 3)); then isr=(min.insync.replicas=2); fi
  "$tool" create-topic --brokers "$b" "${rf[@]}" "$input" "$partitions" "${isr[@]}" "$@"
  "$tool" create-topic --brokers "$b" "${rf[@]}" "$input-out" "$partitions" "${isr[@]}"
  "$tool" create-topic --brokers "$b" "${rf[@]}" "$input-dlq" 1 max.message.bytes=2000000 "${isr[@]}"
  if ((topic_rf > 1)); then
    "$tool" create-topic --brokers "$b" "${rf[@]}" "$input-insights" 1 "${isr[@]}"
  fi
}

drop_topics() {
  local b=$1 input=$2
  if [[ ${CHAOS_KEEP_TOPICS:-0} == 1 ]]; then return; fi
  "$tool" delete-topic --brokers "$b" "$input" "$input-out" "$input-dlq" "$input-insights" \
    >/dev/null 2>&1 || true
}

lag_total() { "$tool" lag --brokers "$1" --group "$2" --topic "$3" | parse_lag total; }
committed_total() { "$tool" lag --brokers "$1" --group "$2" --topic "$3" | parse_lag committed; }

# --- scenario bookkeeping ---------------------------------------------------------------------

begin() {
  scenario=$1
  scenario_started=$SECONDS
  logs=$out/$scenario
  mkdir -p "$logs"
  rss_file=$logs/rss.txt
  : >"$rss_file"
  failures=()
  account_line=""
  log "=== $scenario: $2"
}

fail() {
  failures+=("$*")
  log "FAIL ($scenario): $*"
}

# account BROKERS INPUT GROUP [account flags…]: runs the accounting, keeps its ACCOUNT line.
account() {
  local b=$1 input=$2 group=$3 rc=0
  shift 3
  "$tool" account --brokers "$b" --input "$input" --output "$input-out" --dlq "$input-dlq" \
    --group "$group" "$@" >"$logs/account.txt" 2>&1 || rc=$?
  sed 's/^/    /' "$logs/account.txt" >&2
  account_line=$(grep '^ACCOUNT' "$logs/account.txt" || true)
  if [[ -z $account_line ]]; then fail "accounting did not finish"; fi
  if ((rc != 0)); then fail "accounting: $(grep -E '^lost' "$logs/account.txt" || echo "exit $rc")"; fi
}

# field NAME: the ACCOUNT line's NAME=value (text, for the table; may be empty or `-`).
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$account_line"; }
# count NAME: the same as an integer, for arithmetic; fails when it is not one.
count() { require_count "the accounting's $1" "$(field "$1")"; }

max_rss_mb() { awk 'm < $3 { m = $3 } END { printf "%d", m / 1024 }' "$rss_file"; }

# finish [EVENTS]: appends the scenario's row to the table.
finish() {
  local events=${1:-$(field events)} verdict=PASS note=""
  if ((${#failures[@]})); then
    verdict=FAIL
    note=$(IFS=';'; echo "${failures[*]}")
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%ss\t%s\n' "$scenario" "${events:--}" \
    "$(field lost)" "$(field misrouted)" "$(field duplicates)" "$(max_rss_mb)" "$verdict" \
    "$((SECONDS - scenario_started))" "${extra_note:-}${note:+ $note}" >>"$table"
  extra_note=""
  log "=== $scenario: $verdict in $((SECONDS - scenario_started)) s"
}

sleep_random() { sleep "$(awk -v lo="$1" -v hi="$2" -v s="$RANDOM" 'BEGIN { srand(s); printf "%.1f", lo + rand() * (hi - lo) }')"; }

# --- scenarios --------------------------------------------------------------------------------

# 1. kill -9 at random moments under ~50k events/s, restarting each time.
scenario_kill9() {
  begin kill9 "kill -9 under load, restart each time"
  # A killed member stays in the group until its session times out (45 s by default), and a
  # restarted instance (a new member id) gets no partitions before that: 6 s (the broker's
  # minimum) lets each restart consume within seconds. Everything else is the defaults:
  # commits follow every 1 s commit epoch, so a kill re-delivers about two epochs.
  local input=chaos-kill9-$run_id group=chaos-kill9-$run_id-g kills=6 rate=50000 count=5500000
  kill_cycles kill9 "$input" "$group" "$kills" "$rate" "$count" 10 20 \
    --consumer-property session.timeout.ms=6000
  account "$brokers" "$input" "$group" --require-committed --max-duplicates "$bound"
  extra_note="$kills kills at ${rate}/s; uncommitted at each kill: ${lags[*]} (sum $bound: the duplicates bound; at most $(max_of "${lags[@]}") = $(calc "$(max_of "${lags[@]}") / $rate") s of traffic)"
  finish
  drop_topics "$brokers" "$input"
}

# kill_cycles NAME INPUT GROUP KILLS RATE COUNT MIN_S MAX_S [run flags…]: labelled traffic,
# then KILLS times: start a pipeline, wait MIN_S–MAX_S seconds, kill -9 it and note end -
# committed (what a restart may write again) in $lags and their sum in $bound; then a last run
# drains the input. The run flags go to every pipeline.
kill_cycles() {
  local name=$1 input=$2 group=$3 kills=$4 rate=$5 count=$6 lo=$7 hi=$8 i lag
  shift 8
  bound=0 lags=() committed_seen=()
  topics "$brokers" "$input" 6
  loadgen "$brokers" "$input" --profile realistic --rate "$rate" --count "$count" --seed 11
  for ((i = 1; i <= kills; i++)); do
    start_pipeline "$name-$i" "$brokers" "$input" "$group" "$@"
    sleep_random "$lo" "$hi"
    stop_pipeline "$name-$i" KILL 137
    # Nothing more is committed by a dead process: end - committed now bounds what it could
    # have written without committing, i.e. what the restart may write again.
    lag=$(lag_total "$brokers" "$group" "$input")
    bound=$((bound + lag))
    lags+=("$lag")
    committed_seen+=("$(committed_total "$brokers" "$group" "$input")")
    log "kill $i: uncommitted (end - committed) $lag, committed ${committed_seen[-1]}"
  done
  wait_loadgen
  start_pipeline "$name-final" "$brokers" "$input" "$group" "$@" --exit-at-end
  wait_pipeline "$name-final"
}

max_of() { printf '%s\n' "$@" | sort -n | tail -n 1; }
calc() { awk "BEGIN { printf \"%.1f\", $1 }"; }

# 1b. The same in exactly-once mode, on the default instance id (HOSTNAME-PID: a new
# transactional.id for every process, as most deployments run it): a read_committed reader
# sees every record once, the insights count every valid record exactly once across the
# kills, and after each kill -9 and immediate restart the reader sees new output on every
# output partition within 15 s (the dead process's open transaction is not fenced by the
# restart: it holds the output's last stable offset until transaction.timeout.ms passes).
# The stall is measured from the output's read_committed end offsets (`chaos watch-ends`,
# every 200 ms; `chaos recovery`: until every partition that stalled grows again), and the
# next kill waits for it. session.timeout.ms=6000 as in kill9: with the default 45 s a
# restarted member (a new member id) gets no partitions before the dead one's session ends.
scenario_kill9-eos() {
  begin kill9-eos "kill -9 under load with --guarantee exactly-once, default instance id"
  local input=chaos-kill9eos-$run_id group=chaos-kill9eos-$run_id-g kills=4 rate=30000
  local limit_ms=15000 ends=$logs/ends.txt watcher i at lag stall recovery
  if ((quick)); then kills=2 rate=10000; fi
  local flags=(--guarantee exactly-once --consumer-property session.timeout.ms=6000)
  local stalls=() lags=()
  topics "$brokers" "$input" 6
  # Until stopped after the last kill (at most 15 minutes): the stalls set the run's length.
  loadgen "$brokers" "$input" --profile realistic --rate "$rate" --count $((rate * 900)) --seed 11
  "$tool" watch-ends --brokers "$brokers" --topic "$input-out" >"$ends" 2>"$logs/watch.log" &
  watcher=$!
  background+=("$watcher")
  start_pipeline kill9-eos-1 "$brokers" "$input" "$group" "${flags[@]}"
  for ((i = 1; i <= kills; i++)); do
    sleep_random 10 20
    at=$(date +%s%3N)
    stop_pipeline "kill9-eos-$i" KILL 137
    lag=$(lag_total "$brokers" "$group" "$input")
    lags+=("$lag")
    start_pipeline "kill9-eos-$((i + 1))" "$brokers" "$input" "$group" "${flags[@]}"
    stall=$(wait_visible "$at" 120)
    recovery=$("$tool" recovery --ends "$ends" --at "$at")
    log "kill $i: uncommitted (end - committed) $lag; read_committed output stalled ${stall} ms ($recovery)"
    stalls+=("$(calc "$stall / 1000")")
    if ((stall >= 120000)); then
      fail "kill $i: a read_committed reader saw no new output on every partition within 120 s"
    elif ((stall > limit_ms)); then
      fail "kill $i: a read_committed reader saw no new output for $(calc "$stall / 1000") s (target: within $((limit_ms / 1000)) s)"
    fi
  done
  kill -TERM "$loadgen_pid" 2>/dev/null || true
  wait "$loadgen_pid" 2>/dev/null || true
  tail -n 1 "$logs/loadgen.log" >&2
  kill "$watcher" 2>/dev/null || true
  "$tool" wait-lag --brokers "$brokers" --group "$group" --topic "$input" --timeout 180 >&2 ||
    fail "lag did not reach 0 after the traffic stopped"
  stop_pipeline "kill9-eos-$((kills + 1))" TERM 0
  local stable_s
  wait_stable "$at" "$input-out" "$input-dlq" "$input-insights"
  # The accounting reads with librdkafka's default isolation.level=read_committed.
  account "$brokers" "$input" "$group" --require-committed --max-duplicates 0
  # Every record is counted once in the insights: in its window (received) or, when its window
  # had closed, as a late event of another one.
  local written counted
  written=$(($(count outputs) + $(count dlq)))
  counted=$("$bin" insights --brokers "$brokers" --topic "$input-insights" --json 2>/dev/null |
    awk '{ r = $0; sub(/.*"received":/, "", r); sub(/,.*/, "", r)
           l = $0; sub(/.*"late_events":/, "", l); sub(/,.*/, "", l); s += r + l }
         END { printf "%.0f\n", s }')
  counted=$(require_count "the insights' received + late events" "$counted")
  log "insights: received + late events $counted, records written $written"
  [[ $counted == "$written" ]] || fail "insights count $counted events, outputs + dead letters hold $written"
  extra_note="$kills kills at ${rate}/s, default instance id; read_committed reader saw nothing for ${stalls[*]} s after each kill + restart (target ≤ $((limit_ms / 1000)) s); uncommitted at each kill: ${lags[*]}; insights count every record once ($counted)"
  finish
  drop_topics "$brokers" "$input"
}

# wait_visible AT_MS TIMEOUT_S: after a fault at AT_MS (Unix ms), waits until the output flows
# again on every partition (from `chaos watch-ends` samples in $ends: `chaos recovery` finds no
# partition still stalled) and has for 3 s; prints the stall (recover_ms: until every partition
# that stalled grew again), or TIMEOUT_S in ms when it had not recovered by then.
wait_visible() {
  local at=$1 timeout_ms=$(($2 * 1000)) now recover
  while true; do
    sleep 1
    now=$(date +%s%3N)
    recover=$("$tool" recovery --ends "$ends" --at "$at" | sed -n 's/.*recover_ms=\([^ ]*\).*/\1/p')
    if [[ $recover =~ ^[0-9]+$ ]] && ((now - at >= 5000 && now - at >= recover + 3000)); then
      echo "$recover"
      return
    fi
    if ((now - at > timeout_ms)); then
      echo "$timeout_ms"
      return
    fi
  done
}

# 1c. A crash loop with static membership: kill -9 every 5 s for a minute, restarted under the
# same --instance-id; every cycle commits progress.
scenario_crashloop() {
  begin crashloop "kill -9 every 5 s for 60 s, same --instance-id (static membership)"
  local input=chaos-crashloop-$run_id group=chaos-crashloop-$run_id-g kills=12 rate=5000 count=400000
  kill_cycles crashloop "$input" "$group" "$kills" "$rate" "$count" 5 5 --instance-id crashloop
  local i stalled=0
  for ((i = 1; i < ${#committed_seen[@]}; i++)); do
    if ((committed_seen[i] <= committed_seen[i - 1])); then stalled=$((stalled + 1)); fi
  done
  ((stalled == 0)) || fail "$stalled of $((kills - 1)) cycles committed nothing (committed: ${committed_seen[*]})"
  account "$brokers" "$input" "$group" --require-committed --max-duplicates "$bound"
  extra_note="$kills kills 5 s apart at ${rate}/s; committed after each: ${committed_seen[*]}"
  finish
  drop_topics "$brokers" "$input"
}

# 2. SIGTERM mid-stream and restart: nothing lost, nothing duplicated.
scenario_graceful() {
  begin graceful "SIGTERM mid-stream, restart"
  local input=chaos-graceful-$run_id group=chaos-graceful-$run_id-g stops=4 rate=50000 count=1000000
  local partitions=6 i rc
  if ((quick)); then stops=2 rate=20000 count=200000 partitions=3; fi
  topics "$brokers" "$input" "$partitions"
  loadgen "$brokers" "$input" --profile realistic --rate "$rate" --count "$count" --seed 12
  for ((i = 1; i <= stops; i++)); do
    start_pipeline "graceful-$i" "$brokers" "$input" "$group"
    sleep_random 2 4
    stop_pipeline "graceful-$i" TERM 0
  done
  wait_loadgen
  start_pipeline graceful-final "$brokers" "$input" "$group" --exit-at-end
  wait_pipeline graceful-final
  account "$brokers" "$input" "$group" --require-committed --max-duplicates 0
  extra_note="$stops SIGTERM stops at ${rate}/s"
  finish
  drop_topics "$brokers" "$input"
}

# 3. Broker stop/start mid-stream (a private broker): the pipeline rides it out.
scenario_broker() {
  begin broker "private broker on :$private_port stopped and restarted mid-stream"
  local b=localhost:$private_port input=chaos-broker-$run_id group=chaos-broker-$run_id-g rc
  private_broker=1
  private_kafka start
  topics "$b" "$input" 3
  start_pipeline broker-1 "$b" "$input" "$group"
  loadgen "$b" "$input" --profile realistic --rate 10000 --count 400000 --seed 13
  sleep 10
  log "stopping the private broker"
  private_kafka stop
  sleep 10
  log "starting the private broker again"
  private_kafka start
  wait_loadgen
  "$tool" wait-lag --brokers "$b" --group "$group" --topic "$input" --timeout 180 >&2 ||
    fail "lag did not reach 0 after the broker came back"
  kill -0 "${pids[broker-1]}" 2>/dev/null || fail "the pipeline did not survive the broker restart"
  stop_pipeline broker-1 TERM 0
  account "$b" "$input" "$group" --require-committed
  extra_note="broker down ~10 s + restart; one pipeline process throughout"
  finish
  drop_topics "$b" "$input"
  private_kafka stop
  private_broker=0
}

# 4. Scale-out to three instances, then a graceful leave and a kill -9.
scenario_scaleout() {
  begin scaleout "6 partitions: 1 → 2 → 3 instances, SIGTERM one, kill -9 another"
  local input=chaos-scaleout-$run_id group=chaos-scaleout-$run_id-g rate=20000 count=1200000
  local step=8 rc bound
  if ((quick)); then rate=10000 count=200000 step=4; fi
  # A short session timeout so the killed member's partitions move within seconds.
  local flags=(--consumer-property session.timeout.ms=10000)
  topics "$brokers" "$input" 6
  loadgen "$brokers" "$input" --profile realistic --rate "$rate" --count "$count" --seed 14
  start_pipeline scale-a "$brokers" "$input" "$group" "${flags[@]}"
  sleep "$step"
  start_pipeline scale-b "$brokers" "$input" "$group" "${flags[@]}"
  sleep "$step"
  start_pipeline scale-c "$brokers" "$input" "$group" "${flags[@]}"
  sleep "$step"
  stop_pipeline scale-b TERM 0
  sleep "$step"
  # Checkpoint: everything committed so far (joins and the graceful leave) exactly once.
  account "$brokers" "$input" "$group" --committed-only --max-duplicates 0
  (($(count events) > 0)) || fail "nothing committed before the kill"
  local checkpoint_dups
  checkpoint_dups=$(field duplicates)
  stop_pipeline scale-c KILL 137
  bound=$(lag_total "$brokers" "$group" "$input")
  wait_loadgen
  "$tool" wait-lag --brokers "$brokers" --group "$group" --topic "$input" --timeout 120 >&2 ||
    fail "a partition stalled: lag did not reach 0"
  stop_pipeline scale-a TERM 0
  account "$brokers" "$input" "$group" --require-committed --max-duplicates "$bound"
  extra_note="graceful hand-offs: $checkpoint_dups duplicates; kill -9 bound $bound"
  finish
  drop_topics "$brokers" "$input"
}

# 5. The output topic is missing for 20 s (the producer may not create it), then created: every
# delivery fails with a retriable error meanwhile. (A record refused for good, one too large for
# the topic, is dead-lettered instead: the poison scenario. min.insync.replicas above the
# replication factor no longer refuses writes on one broker: Kafka 4 caps it, KIP-966.)
scenario_unwritable() {
  begin unwritable "output topic missing for 20 s, then created"
  local input=chaos-unwritable-$run_id group=chaos-unwritable-$run_id-g c1 c2 rc
  topics "$brokers" "$input" 3
  "$tool" create-topic --brokers "$brokers" "$input-insights" 1
  "$tool" delete-topic --brokers "$brokers" "$input-out" >&2
  start_pipeline unwritable-1 "$brokers" "$input" "$group" \
    --producer-property allow.auto.create.topics=false --producer-property message.timeout.ms=2000
  loadgen "$brokers" "$input" --profile realistic --rate 5000 --count 300000 --seed 15
  sleep 8
  c1=$(committed_total "$brokers" "$group" "$input")
  sleep 12
  c2=$(committed_total "$brokers" "$group" "$input")
  ((${c2:-0} == 0)) || fail "offsets advanced while the output was missing (${c1:-0} → $c2)"
  grep -q 'delivery to .* failed' "$logs/unwritable-1.log" ||
    fail "no delivery failure reported in the log"
  log "output topic created (committed offsets ${c1:-0} → ${c2:-0} over 12 s while missing)"
  "$tool" create-topic --brokers "$brokers" "$input-out" 3
  wait_loadgen
  "$tool" wait-lag --brokers "$brokers" --group "$group" --topic "$input" --timeout 120 >&2 ||
    fail "did not resume: lag did not reach 0"
  stop_pipeline unwritable-1 TERM 0
  account "$brokers" "$input" "$group" --require-committed
  local attempts
  attempts=$(sed -n 's/.*(attempt \([0-9]*\)).*/\1/p' "$logs/unwritable-1.log" | sort -n | tail -n 1)
  extra_note="committed offsets (sum) ${c1:-0} → ${c2:-0} during 12 s unwritable; retries backed off to attempt ${attempts:-?}"
  finish
  drop_topics "$brokers" "$input"
}

# 6. Hostile input: the hostile profile plus the tests/data corpus and generated big cases.
scenario_hostile() {
  begin hostile "hostile profile + tests/data corpus + 1 MB and 100,000-deep payloads"
  local input=chaos-hostile-$run_id group=chaos-hostile-$run_id-g count=200000 rc
  if ((quick)); then count=20000; fi
  topics "$brokers" "$input" 3 max.message.bytes=2000000
  # No --producer-property message.max.bytes: the producer sizes itself to the topics.
  start_pipeline hostile-1 "$brokers" "$input" "$group"
  loadgen "$brokers" "$input" --profile hostile --count "$count" --seed 16
  "$tool" produce-corpus --brokers "$brokers" --topic "$input" --dir tests/data --big >&2
  wait_loadgen
  "$tool" wait-lag --brokers "$brokers" --group "$group" --topic "$input" --timeout 120 >&2 ||
    fail "stalled: lag did not reach 0"
  kill -0 "${pids[hostile-1]}" 2>/dev/null || fail "the pipeline died"
  stop_pipeline hostile-1 TERM 0
  account "$brokers" "$input" "$group" --require-committed --max-duplicates 0
  finish
  drop_topics "$brokers" "$input"
}

# 7. Backpressure: a broker quota makes the output ~10x slower than the input for minutes.
scenario_backpressure() {
  begin backpressure "producer quota 1 MB/s for 150 s while the input arrives at 8,000/s"
  local input=chaos-bp-$run_id group=chaos-bp-$run_id-g client=chaos-bp-$run_id rc
  local version libs
  version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml)
  libs=${KAFKA_PIPELINE_CACHE:-$HOME/.cache/kafka-pipeline}/kafka-$version/libs
  quota() {
    java -Dlog4j2.configurationFile=scripts/kafka/tools-log4j2.properties -cp "$libs/*" \
      kafka.admin.ConfigCommand --bootstrap-server "$brokers" --alter \
      "$@" --entity-type clients --entity-name "$client" >&2
  }
  topics "$brokers" "$input" 3
  quota --add-config producer_byte_rate=1000000
  start_pipeline bp-1 "$brokers" "$input" "$group" --producer-property "client.id=$client"
  loadgen "$brokers" "$input" --profile realistic --rate 8000 --count 1200000 --seed 17
  local t lag
  for t in 30 60 90 120 150; do
    sleep 30
    lag=$(lag_total "$brokers" "$group" "$input")
    log "t=${t}s lag $lag, RSS $(tail -n 1 "$rss_file" | awk '{ printf "%d MB", $3 / 1024 }')"
  done
  wait_loadgen
  quota --delete-config producer_byte_rate
  "$tool" wait-lag --brokers "$brokers" --group "$group" --topic "$input" --timeout 180 >&2 ||
    fail "lag did not reach 0 after the quota was lifted"
  stop_pipeline bp-1 TERM 0
  if grep -qE 'were lost|max.poll.interval|leaving group' "$logs/bp-1.log"; then
    fail "consumer evicted: $(grep -m1 -E 'were lost|max.poll.interval|leaving group' "$logs/bp-1.log")"
  fi
  local assigned
  assigned=$(grep -c 'assigned partitions' "$logs/bp-1.log" || true)
  ((assigned == 1)) || fail "assigned $assigned times (expected once: no eviction)"
  account "$brokers" "$input" "$group" --require-committed --max-duplicates 0
  # RSS over time, one sample per 15 s.
  extra_note="RSS MB every 15 s: $(awk 'NR % 15 == 1 { printf "%d ", $3 / 1024 }' "$rss_file")"
  finish
  drop_topics "$brokers" "$input"
}

# 8. Fuzzing: the in-repo differential harness (tests/integration/chaos.rs) for a bounded time.
scenario_fuzz() {
  begin fuzz "differential fuzzing of the transform (simd-json vs serde_json)"
  local seconds=${CHAOS_FUZZ_SECONDS:-180} rc=0
  if ((quick)); then seconds=${CHAOS_FUZZ_SECONDS:-60}; fi
  local cargo_profile=()
  [[ $profile == release ]] && cargo_profile=(--release)
  CHAOS_FUZZ_SECONDS=$seconds cargo test "${cargo_profile[@]}" --locked --test integration \
    chaos::fuzz_transform -- --ignored --nocapture >"$logs/fuzz.log" 2>&1 || rc=$?
  grep -E '^fuzz:' "$logs/fuzz.log" >&2 || true
  ((rc == 0)) || fail "fuzzing found a problem (see $logs/fuzz.log)"
  local execs
  execs=$(sed -n 's/^fuzz: \([0-9]*\) inputs.*/\1/p' "$logs/fuzz.log" | tail -n 1)
  account_line="ACCOUNT lost=- misrouted=- duplicates=-"
  extra_note="$seconds s, $execs inputs"
  finish "$execs"
}

# 9. Failover on the three-node cluster (replication factor 3, min.insync.replicas 2): the
# leader of the busiest input partition, then the group coordinator, killed with kill -9 and
# restarted 15 s later, under steady labelled traffic; one pipeline process throughout, with
# all three nodes as its bootstrap list and librdkafka's defaults. A leader change is not a
# crash of the pipeline: nothing may be lost or duplicated. Per kill: time to the first output
# delivered afterwards and until every output partition grows again (the output topic's end
# offsets sampled every 200 ms by `chaos watch-ends`), the longest time without any output,
# and how long after the restart the lag is back to steady state (at most 3 s of traffic: with
# 1 s commit epochs the committed offsets trail the input by 1-2 s of it under load). The
# kills also go to $out/failover.tsv (the README's failover table).
ensure_cluster() {
  [[ -z $cluster_brokers ]] || return 0
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$((cluster_base + 10))") 2>/dev/null; then cluster_started=1; fi
  cluster_kafka start
  cluster_brokers=$(cluster_kafka bootstrap)
}

# kill_node WHAT NODE: kill -9, restart after 15 s, wait for the lag, measure the recovery.
kill_node() {
  local what=$1 node=$2 at lag="" restarted back deadline recovery
  at=$(date +%s%3N)
  cluster_kafka kill "$node"
  log "killed node $node ($what) with SIGKILL"
  sleep 15
  cluster_kafka restart "$node"
  restarted=$SECONDS
  local took=$((($(date +%s%3N) - at) / 1000))
  deadline=$((SECONDS + 30))
  back=never
  while ((SECONDS <= deadline)); do
    lag=$(lag_total "$b" "$group" "$input" 2>/dev/null || true)
    if [[ -n $lag ]] && ((lag <= threshold)); then back=$((SECONDS - restarted)); break; fi
    sleep 1
  done
  if [[ $back == never ]]; then
    fail "lag not back under $threshold within 30 s of restarting node $node (last: ${lag:-?})"
    back="over 30"
  fi
  log "node $node answering again ${took} s after the kill; lag $lag ${back} s later"
  sleep 10
  recovery=$("$tool" recovery --ends "$ends" --at "$at")
  log "$recovery"
  local first recover gap slow
  first=$(sed -n 's/.*first_ms=\([^ ]*\).*/\1/p' <<<"$recovery")
  recover=$(sed -n 's/.*recover_ms=\([^ ]*\).*/\1/p' <<<"$recovery")
  gap=$(sed -n 's/.*gap_ms=\([^ ]*\).*/\1/p' <<<"$recovery")
  slow=$(sed -n 's/.*slow=\([^ ]*\).*/\1/p' <<<"$recovery")
  secs() { if [[ $1 == never ]]; then echo never; else awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'; fi; }
  if [[ $recover == never ]]; then fail "output partitions $slow did not grow again after killing node $node"; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s s\t%s s\t%s\n' "$scenario" "$guarantee" "$node ($what)" \
    "$(secs "$first")" "$(secs "$recover")" "$(secs "$gap")" "$took" "$back" "$slow" >>"$out/failover.tsv"
  kill_notes+=("node $node ($what): all output +$(secs "$recover"), gap $(secs "$gap"), lag back ${back} s after the restart")
}

failover() {
  local guarantee=$1 rate=${CHAOS_FAILOVER_RATE:-3000}
  begin "$scenario_name" "3-node cluster: kill -9 the busiest input partition's leader, then the group coordinator, $rate/s, $guarantee"
  ensure_cluster
  local b=$cluster_brokers input=chaos-$scenario_name-$run_id group=chaos-$scenario_name-$run_id-g
  local threshold=$((3 * rate)) ends=$logs/ends.txt watcher busiest leader coordinator name=$scenario_name-1
  kill_notes=()
  topic_rf=3
  topics "$b" "$input" 6
  topic_rf=1
  start_pipeline "$name" "$b" "$input" "$group" --guarantee "$guarantee"
  loadgen "$b" "$input" --profile realistic --rate "$rate" --count $((rate * 900)) --seed 18
  "$tool" watch-ends --brokers "$b" --topic "$input-out" >"$ends" 2>"$logs/watch.log" &
  watcher=$!
  background+=("$watcher")
  sleep 20
  log "steady state: lag $(lag_total "$b" "$group" "$input" || true)"
  read -r busiest leader _ < <("$tool" leaders --brokers "$b" --topic "$input" | sort -k3,3nr | head -n 1)
  kill_node "leader of input partition $busiest" "$leader"
  # The `(N)` of COORDINATOR (ID) in the group's own row (`GROUP COORDINATOR (ID) …`).
  coordinator=$(cluster_kafka groups --describe --group "$group" --state 2>/dev/null |
    awk -v g="$group" '$1 == g { for (i = 2; i <= NF; i++) if ($i ~ /^\([0-9]+\)$/) { gsub(/[()]/, "", $i); print $i; exit } }' || true)
  if [[ $coordinator =~ ^[123]$ ]]; then
    kill_node "group coordinator" "$coordinator"
  else
    fail "could not find the group coordinator (got '$coordinator')"
  fi
  kill -TERM "$loadgen_pid" 2>/dev/null || true
  wait "$loadgen_pid" 2>/dev/null || true
  tail -n 1 "$logs/loadgen.log" >&2
  if kill -0 "${pids[$name]}" 2>/dev/null; then
    "$tool" wait-lag --brokers "$b" --group "$group" --topic "$input" --timeout 60 >&2 ||
      fail "lag did not reach 0 after the traffic stopped"
    stop_pipeline "$name" TERM 0
  else
    local rc=0
    wait "${pids[$name]}" || rc=$?
    unset "pids[$name]"
    fail "the pipeline did not survive the failovers (exit $rc; see $logs/$name.log)"
    # Account anyway: a fresh process finishes the input.
    start_pipeline "$scenario_name-final" "$b" "$input" "$group" --guarantee "$guarantee" --exit-at-end
    wait_pipeline "$scenario_name-final"
  fi
  kill "$watcher" 2>/dev/null || true
  account "$b" "$input" "$group" --require-committed --max-duplicates 0
  extra_note="$rate/s, $guarantee, one process; $(IFS=';'; echo "${kill_notes[*]}")"
  finish
  drop_topics "$b" "$input"
}

scenario_failover() { scenario_name=failover; failover at-least-once; }
scenario_failover-eos() { scenario_name=failover-eos; failover exactly-once; }

# 10. Poison records: input records of 1.0-1.05 MB (invalid JSON, so too_large dead letters of
# the same size) mixed into realistic traffic, with one pipeline process throughout. On the
# defaults (no --producer-property, every topic with Kafka's default max.message.bytes of
# 1,048,588): the 1,020,000-byte letters are written whole, the 1,048,400-byte ones (over the
# DLQ's limit with their headers) reduced. With `limits`: the output topic's max.message.bytes
# is below about half of the processed records (the producer's upper bound of a realistic
# one, 471-486 bytes plus the input topic's name in its lineage header: the limit is 481 plus
# that name), so those become output_rejected dead letters, and the DLQ's (100,000) is below
# every big letter, so all of them are reduced. (The producer's batch.size follows the
# smallest limit: batches of one record, a few hundred records/s, hence the smaller count.) Both guarantees. Each run: the lag reaches 0 (committed = end offsets),
# SIGTERM exits 0, and every input record is an output or a dead letter (reduced letters by
# their __pipeline.errors.* headers), none twice; the reduced letters are exactly the expected
# ones. Quick: at-least-once only, small counts.
scenario_poison() {
  local guarantees=(at-least-once exactly-once) g
  if ((quick)); then guarantees=(at-least-once); fi
  for g in "${guarantees[@]}"; do
    poison_run "$g" defaults
    poison_run "$g" limits
  done
}

poison_run() {
  local guarantee=$1 limits=$2 short=alo
  [[ $guarantee == exactly-once ]] && short=eos
  begin "poison-$short-$limits" "1.0-1.05 MB records in realistic traffic, $guarantee, $limits topic configs"
  local input=chaos-poison-$short-$limits-$run_id group=chaos-poison-$short-$limits-$run_id-g
  local rate=5000 count=100000 rounds=5 expected_reduced out_cfg=() dlq_cfg=() account_flags=()
  if ((quick)); then rate=2000 count=20000 rounds=2; fi
  if [[ $limits == limits ]]; then
    out_cfg=(max.message.bytes=$((481 + ${#input}))) dlq_cfg=(max.message.bytes=100000)
    account_flags=(--output-rejected)
    rate=1000 count=$((count / 5))
    expected_reduced=$((2 * rounds))
  else
    expected_reduced=$rounds
  fi
  "$tool" create-topic --brokers "$brokers" "$input" 3
  "$tool" create-topic --brokers "$brokers" "$input-out" 3 "${out_cfg[@]}"
  "$tool" create-topic --brokers "$brokers" "$input-dlq" 1 "${dlq_cfg[@]}"
  start_pipeline "poison-$short-$limits" "$brokers" "$input" "$group" --guarantee "$guarantee" \
    --metrics-addr 127.0.0.1:0
  loadgen "$brokers" "$input" --profile realistic --rate "$rate" --count "$count" --seed 19
  # Spread over the traffic: a round every (count / rate / rounds) seconds.
  "$tool" produce-poison --brokers "$brokers" --topic "$input" --sizes 1020000,1048400 \
    --rounds "$rounds" --interval-ms $((count * 1000 / rate / rounds)) >&2 ||
    fail "the poison records could not be produced"
  wait_loadgen
  "$tool" wait-lag --brokers "$brokers" --group "$group" --topic "$input" --timeout 120 >&2 ||
    fail "stalled: lag did not reach 0"
  local addr metric_reduced='?' metric_rejected='?'
  addr=$(sed -n 's|.*serving http://\([^/]*\)/.*|\1|p' "$logs/poison-$short-$limits.log" | head -n 1)
  if kill -0 "${pids[poison-$short-$limits]}" 2>/dev/null; then
    metric_reduced=$(metric "$addr" kafka_pipeline_dead_letters_truncated_total) || metric_reduced='?'
    metric_rejected=$(metric "$addr" 'kafka_pipeline_events_dead_lettered_total{code="output_rejected"}') ||
      metric_rejected='?'
    stop_pipeline "poison-$short-$limits" TERM 0
  else
    local rc=0
    wait "${pids[poison-$short-$limits]}" || rc=$?
    unset "pids[poison-$short-$limits]"
    fail "the pipeline exited by itself with $rc"
  fi
  account "$brokers" "$input" "$group" --require-committed --max-duplicates 0 "${account_flags[@]}"
  local reduced rejected outputs
  reduced=$(count reduced) rejected=$(count rejected) outputs=$(count outputs)
  ((reduced == expected_reduced)) || fail "$reduced reduced dead letters, expected $expected_reduced"
  if [[ $limits == limits ]]; then
    ((rejected > 0 && outputs > 0)) ||
      fail "expected both outputs and output_rejected letters, got $outputs and $rejected"
  else
    ((rejected == 0)) || fail "$rejected output_rejected letters on the default topic configs"
  fi
  # One process, nothing read twice: the metrics count the same letters.
  [[ $metric_reduced == "$reduced" ]] ||
    fail "kafka_pipeline_dead_letters_truncated_total is $metric_reduced, the DLQ holds $reduced reduced letters"
  [[ $metric_rejected == "$rejected" ]] ||
    fail "events_dead_lettered_total{code=\"output_rejected\"} is $metric_rejected, the DLQ holds $rejected"
  extra_note="$guarantee, $limits; ${rate}/s, $((2 * rounds)) poison records (1,020,000 and 1,048,400 bytes); reduced letters $reduced (expected $expected_reduced), output_rejected $rejected, outputs $outputs; the metrics say $metric_reduced reduced, $metric_rejected output_rejected"
  finish
  drop_topics "$brokers" "$input"
}

# 11. A stage that panics (the test-only fault hook, KAFKA_PIPELINE_FAULT=STAGE:N: the stage
# panics at its Nth batch) under load: the pipeline exits 4 within two commit intervals
# (--commit-interval 1s: 2 s) of the panic, /health answers 503 naming the stage meanwhile (not
# required when the exit comes within 1 s), and a restart without the fault completes the
# input: 0 lost, duplicates at most what was uncommitted at the exit (end - committed). The
# faulty run logs JSON (--log-format json), so the panic's own log line ("fault injection",
# written by the pipeline's panic hook) carries a millisecond timestamp; the exit is when the
# process is gone (polled every 20 ms). Quick: worker-1 only, small.
scenario_panic() {
  local stages=(worker-1 producer consumer) stage
  if ((quick)); then stages=(worker-1); fi
  for stage in "${stages[@]}"; do
    panic_run "$stage"
  done
}

panic_run() {
  local stage=$1 rate=20000 count=400000 nth=${CHAOS_PANIC_BATCH:-200} interval_ms=1000
  if ((quick)); then rate=10000 count=120000; fi
  begin "panic-$stage" "$stage panics at its batch $nth under ${rate}/s"
  local input=chaos-panic-$stage-$run_id group=chaos-panic-$stage-$run_id-g name=panic-$stage-1
  local limit_ms=$((2 * interval_ms)) pid log_file addr="" health=none body exited rc=0
  local panic_ts panicked took=-1 bound
  topics "$brokers" "$input" 3
  loadgen "$brokers" "$input" --profile realistic --rate "$rate" --count "$count" --seed 21
  KAFKA_PIPELINE_FAULT=$stage:$nth start_pipeline "$name" "$brokers" "$input" "$group" \
    --commit-interval "${interval_ms}ms" --metrics-addr 127.0.0.1:0 --log-format json
  pid=${pids[$name]} log_file=$logs/$name.log
  # Until the process is gone: /health every 20 ms once the address is logged.
  while kill -0 "$pid" 2>/dev/null; do
    if [[ -z $addr ]]; then
      addr=$(sed -n 's|.*serving http://\([^/]*\)/.*|\1|p' "$log_file" | head -n 1)
    elif [[ $health != 503* ]]; then
      body=$(curl -s --max-time 1 -w ' %{http_code}' "http://$addr/health" 2>/dev/null || true)
      if [[ $body == *' 503' && $body == *"$stage"* ]]; then health="503 at $(date +%s%3N)"; fi
    fi
    if ((SECONDS - scenario_started > 120)); then
      fail "no exit within 120 s"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.02
  done
  exited=$(date +%s%3N)
  wait "$pid" || rc=$?
  unset "pids[$name]"
  bound=$(lag_total "$brokers" "$group" "$input")
  panic_ts=$(grep -m1 'fault injection' "$log_file" | sed -n 's/.*"ts":"\([^"]*\)".*/\1/p' || true)
  if [[ -z $panic_ts ]]; then
    fail "no 'fault injection' line in the log (exit $rc)"
  else
    panicked=$(date -d "$panic_ts" +%s%3N)
    took=$((exited - panicked))
    if [[ $health == 503* ]]; then health="503 naming $stage $((${health#503 at } - panicked)) ms after the panic"; fi
  fi
  log "$name exited with $rc, $took ms after the panic ($panic_ts); /health: $health; uncommitted $bound"
  ((rc == 4)) || fail "exit $rc after the panic, expected 4"
  ((took >= 0 && took <= limit_ms)) ||
    fail "exit $took ms after the panic (limit: 2 commit intervals, $limit_ms ms)"
  grep -q "pipeline stage $stage panicked" "$log_file" || fail "the log does not name the stage ($stage)"
  if [[ $health != 503* ]] && ((took > 1000)); then fail "/health never answered 503 naming $stage"; fi
  wait_loadgen
  start_pipeline "panic-$stage-final" "$brokers" "$input" "$group" --exit-at-end
  wait_pipeline "panic-$stage-final"
  account "$brokers" "$input" "$group" --require-committed --max-duplicates "$bound"
  extra_note="${rate}/s, KAFKA_PIPELINE_FAULT=$stage:$nth: exit $rc $(calc "$took / 1000") s after the panic (limit $(calc "$limit_ms / 1000") s); /health $health; uncommitted at the exit $bound (the duplicates bound)"
  finish
  drop_topics "$brokers" "$input"
}

# 12. scaleout in exactly-once mode: 6 partitions, 3,000 events/s, instances joining and
# leaving (a → b → c join, b leaves with SIGTERM, d joins, c is killed with kill -9, then d
# and a leave), default instance ids. No instance exits by itself, and a read_committed reader
# sees every record once: 0 lost, 0 duplicates, at a checkpoint (committed records only) and at
# the end. Every rebalance bumps the group generation under open transactions (issue 20 item 3).
scenario_scaleout-eos() {
  begin scaleout-eos "6 partitions, exactly-once: 1 → 2 → 3 instances, SIGTERM one, a new one, kill -9 another, 3,000/s"
  local input=chaos-scaleouteos-$run_id group=chaos-scaleouteos-$run_id-g rate=3000 step=8
  local flags=(--guarantee exactly-once --consumer-property session.timeout.ms=10000)
  topics "$brokers" "$input" 6
  # Until stopped: the kill's open transaction may hold offsets until it times out.
  loadgen "$brokers" "$input" --profile realistic --rate "$rate" --count $((rate * 600)) --seed 22
  start_pipeline scale-a "$brokers" "$input" "$group" "${flags[@]}"
  sleep "$step"
  check_alive
  start_pipeline scale-b "$brokers" "$input" "$group" "${flags[@]}"
  sleep "$step"
  check_alive
  start_pipeline scale-c "$brokers" "$input" "$group" "${flags[@]}"
  sleep "$step"
  check_alive
  stop_running scale-b TERM 0
  sleep "$step"
  check_alive
  start_pipeline scale-d "$brokers" "$input" "$group" "${flags[@]}"
  sleep "$step"
  check_alive
  account "$brokers" "$input" "$group" --committed-only --max-duplicates 0
  (($(count events) > 0)) || fail "nothing committed before the kill"
  local killed_at stable_s
  killed_at=$(date +%s%3N)
  stop_running scale-c KILL 137
  sleep "$step"
  check_alive
  kill -TERM "$loadgen_pid" 2>/dev/null || true
  wait "$loadgen_pid" 2>/dev/null || true
  tail -n 1 "$logs/loadgen.log" >&2
  "$tool" wait-lag --brokers "$brokers" --group "$group" --topic "$input" --timeout 180 >&2 ||
    fail "a partition stalled: lag did not reach 0"
  check_alive
  stop_running scale-d TERM 0
  stop_running scale-a TERM 0
  # The killed instance's open transaction hides everything after its first record on each
  # partition from read_committed readers until it times out (transaction.timeout.ms).
  wait_stable "$killed_at" "$input-out" "$input-dlq"
  account "$brokers" "$input" "$group" --require-committed --max-duplicates 0
  local rebalances
  rebalances=$(cat "$logs"/scale-*.log | grep -c 'assigned partitions' || true)
  extra_note="${rate}/s; 4 joins, 3 leaves (SIGTERM, kill -9, SIGTERM×2); $rebalances assignments logged; output stable (no open transaction) $stable_s s after the kill -9 step"
  finish
  drop_topics "$brokers" "$input"
}

# metric ADDR SAMPLE: the value of one sample (`name` or `name{labels}`) of ADDR's /metrics.
metric() {
  local value
  value=$(curl -s --max-time 5 "http://$1/metrics" | awk -v m="$2" '$1 == m { print $2; exit }')
  require_count "metric $2" "$value"
}

# wait_stable SINCE_MS TOPIC…: waits (up to 180 s) until no transaction is open on the topics,
# so that the accounting sees what a read_committed reader will; $stable_s: seconds since
# SINCE_MS (Unix ms) when they were.
wait_stable() {
  local since=$1
  shift
  local topics=() topic
  for topic in "$@"; do topics+=(--topic "$topic"); done
  "$tool" wait-stable --brokers "$brokers" "${topics[@]}" --timeout 180 >&2 ||
    fail "a transaction was still open on $* 180 s later"
  stable_s=$(calc "($(date +%s%3N) - $since) / 1000")
  log "no open transaction on $* $stable_s s after the fault"
}

# check_alive: every pipeline still running is alive; one that exited by itself is a failure.
check_alive() {
  local name rc
  for name in "${!pids[@]}"; do
    if ! kill -0 "${pids[$name]}" 2>/dev/null; then
      rc=0
      wait "${pids[$name]}" || rc=$?
      unset "pids[$name]"
      fail "$name exited by itself with $rc (see its log)"
    fi
  done
}

# stop_running NAME SIGNAL EXPECTED: stop_pipeline, unless check_alive found it gone already.
stop_running() {
  if [[ -n ${pids[$1]:-} ]]; then stop_pipeline "$@"; fi
}

# 13. Soak: CHAOS_SOAK_SECONDS (default 1200) at CHAOS_SOAK_RATE events/s (default 20,000) on
# the private broker, restarted every CHAOS_SOAK_RESTART_SECONDS (default 300), one pipeline
# process throughout, RSS sampled every second. PASS when the mean RSS of the last minute of
# traffic is at most 10 % above that of the second minute, the pipeline survived, the lag
# reached 0 and nothing was lost (duplicates allowed: a broker restart can re-deliver an
# uncommitted epoch). The full run writes ~24 M records (about 20 GB of broker data under
# target/chaos/<run>/private-broker, removed at the end). Not part of --quick.
scenario_soak() {
  local seconds=${CHAOS_SOAK_SECONDS:-1200} rate=${CHAOS_SOAK_RATE:-20000}
  local every=${CHAOS_SOAK_RESTART_SECONDS:-300}
  seconds=$(require_count CHAOS_SOAK_SECONDS "$seconds")
  rate=$(require_count CHAOS_SOAK_RATE "$rate")
  every=$(require_count CHAOS_SOAK_RESTART_SECONDS "$every")
  begin soak "$seconds s at $rate/s, private broker restarted every $every s"
  local b=localhost:$private_port input=chaos-soak-$run_id group=chaos-soak-$run_id-g
  local next=$every restarts=0 t0 elapsed load_end
  private_broker=1
  private_kafka start
  topics "$b" "$input" 6
  start_pipeline soak-1 "$b" "$input" "$group"
  t0=$((SECONDS - scenario_started))
  loadgen "$b" "$input" --profile realistic --rate "$rate" --count $((rate * seconds)) --seed 23
  while kill -0 "$loadgen_pid" 2>/dev/null; do
    elapsed=$((SECONDS - scenario_started - t0))
    if ((elapsed >= next && next < seconds)); then
      log "t=${elapsed}s: restarting the private broker (RSS $(tail -n 1 "$rss_file" | awk '{ printf "%d MB", $3 / 1024 }'))"
      private_kafka stop
      private_kafka start
      restarts=$((restarts + 1))
      next=$((next + every))
    fi
    kill -0 "${pids[soak-1]}" 2>/dev/null || break
    sleep 1
  done
  load_end=$((SECONDS - scenario_started))
  if kill -0 "${pids[soak-1]}" 2>/dev/null; then
    wait_loadgen
    "$tool" wait-lag --brokers "$b" --group "$group" --topic "$input" --timeout 300 >&2 ||
      fail "lag did not reach 0 after the traffic ended"
    stop_pipeline soak-1 TERM 0
  else
    local rc=0
    wait "${pids[soak-1]}" || rc=$?
    unset "pids[soak-1]"
    fail "the pipeline died (exit $rc)"
    kill -TERM "$loadgen_pid" 2>/dev/null || true
    wait "$loadgen_pid" 2>/dev/null || true
  fi
  # Mean RSS (MB) of the second minute of traffic and of its last minute.
  local second last
  second=$(awk -v lo=$((t0 + 60)) -v hi=$((t0 + 120)) '$1 >= lo && $1 < hi { s += $3; n++ } END { if (n) printf "%.0f", s / n / 1024 }' "$rss_file")
  last=$(awk -v lo=$((load_end - 60)) -v hi="$load_end" '$1 >= lo && $1 < hi { s += $3; n++ } END { if (n) printf "%.0f", s / n / 1024 }' "$rss_file")
  if [[ -z $second || -z $last ]]; then
    fail "not enough RSS samples for the second and the last minute (the run is shorter than 2 minutes?)"
  elif ((last * 100 > second * 110)); then
    fail "RSS grew: last minute $last MB, second minute $second MB (limit +10 %)"
  fi
  account "$b" "$input" "$group" --require-committed
  # What the RSS holds besides the pipeline's own state: records read but not yet delivered
  # (a broker restart, or a cold broker on a busy machine, builds up a backlog).
  local in_flight
  in_flight=$(grep -oE 'in-flight [0-9]+' "$logs/soak-1.log" | awk 'm < $2 { m = $2 } END { print m + 0 }')
  extra_note="$seconds s at ${rate}/s, $restarts broker restarts; mean RSS second minute ${second:-?} MB, last minute ${last:-?} MB; RSS MB every 60 s: $(awk -v t0="$t0" '($1 - t0) % 60 == 0 && $1 >= t0 { printf "%d ", $3 / 1024 }' "$rss_file"); in-flight records at most $in_flight"
  finish
  drop_topics "$b" "$input"
  private_kafka stop
  private_broker=0
}

for s in "${scenarios[@]}"; do
  "scenario_$s"
done

{
  echo
  echo "| scenario | events | lost | misrouted | duplicates | max RSS MB | verdict | time | notes |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"
  awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' "$table"
  if [[ -s $out/failover.tsv ]]; then
    echo
    echo "| scenario | guarantee | node killed | first output after | all partitions after | longest gap | node answering after | lag back after restart | slow partitions (ms) |"
    echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
    awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' "$out/failover.tsv"
  fi
  echo
  echo "scripts/chaos.sh $*: $((SECONDS - suite_started)) s, git $(git rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%MZ), logs in $out"
} | tee "$out/table.md"
! grep -q $'\tFAIL\t' "$table"
