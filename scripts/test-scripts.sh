#!/usr/bin/env bash
# Tests of what the scripts parse (run by .ci/run; a few seconds):
#   1. the parsers of scripts/lib/parse.sh on clean and noisy input: the log4j line that broke
#      scripts/bench.sh (issue 22), floats, mawk's 2.00006e+06, empty output, repeated
#      partitions, counts past 2^31;
#   2. `scripts/kafka.sh offsets` with a stand-in `java` that prints that noise around real
#      GetOffsetShell lines: only TOPIC's `partition offset` lines reach stdout;
#   3. the real tool wrappers on the local broker (topics, produce, consume, offsets, groups),
#      also as a new user sees them (an adopted broker, a data directory without a log4j
#      configuration): stdout holds only the tool's data, and sum_offsets reads it.
# Part 3 needs the broker on localhost:29092 (scripts/kafka.sh start): without it the script
# says so and skips that part, except under CI=true, where that fails.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kafka="$here/kafka.sh"
# shellcheck source=scripts/lib/parse.sh
source "$here/lib/parse.sh"

failures=0
checks=0
pass() { checks=$((checks + 1)); }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); printf 'FAIL: %s\n' "$*" >&2; }

# expect NAME WANT COMMAND…: COMMAND succeeds and prints exactly WANT.
expect() {
  local name=$1 want=$2 got rc=0
  shift 2
  got=$("$@" 2>"$scratch/stderr") || rc=$?
  if ((rc == 0)) && [[ $got == "$want" ]]; then pass; else
    fail "$name: wanted '$want' (status 0), got '$got' (status $rc; stderr: $(cat "$scratch/stderr"))"
  fi
}

# refuse NAME MESSAGE COMMAND…: COMMAND fails, prints nothing on stdout and MESSAGE on stderr.
refuse() {
  local name=$1 message=$2 got rc=0
  shift 2
  got=$("$@" 2>"$scratch/stderr") || rc=$?
  if ((rc != 0)) && [[ -z $got ]] && grep -qF -- "$message" "$scratch/stderr"; then pass; else
    fail "$name: wanted a failure saying '$message', got status $rc, stdout '$got', stderr '$(cat "$scratch/stderr")'"
  fi
}

# feed INPUT FUNCTION ARGS…: FUNCTION ARGS with INPUT (printf's %b escapes) on stdin.
feed() { local input=$1; shift; "$@" < <(printf '%b' "$input"); }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/test-scripts.XXXXXX")
topics=()
cleanup() {
  local t
  for t in "${topics[@]}"; do "$kafka" topics --delete --topic "$t" >/dev/null 2>&1 || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT

# The stray line of issue 22, as log4j printed it on stdout before the partition lines.
log4j_noise="2026-01-01T12:54:57.722093490Z main ERROR Reconfiguration failed: No configuration found for '5ffd2b27' at 'null' in 'null'"

# --- 1. parsers -------------------------------------------------------------------------------

expect "sum_offsets: three partitions" 200000 feed '0 66667\n1 66666\n2 66667\n' sum_offsets t
expect "sum_offsets: no final newline" 7 feed '0 3\n1 4' sum_offsets t
expect "sum_offsets: an empty partition" 0 feed '0 0\n' sum_offsets t
expect "sum_offsets: past 2^31 (mawk's %d stops at 2147483647)" 6000000000 \
  feed '0 3000000000\n1 3000000000\n' sum_offsets t
expect "sum_offsets: leading zeros are decimal, not octal" 18 feed '0 09\n1 09\n' sum_offsets t
# What `kafka.sh offsets` printed in issue 22: the log line split at its colons, then the data.
refuse "sum_offsets: the log4j line of issue 22" "not a 'partition offset' line: '54 57.722093490Z main ERROR Reconfiguration failed'" \
  feed '54 57.722093490Z main ERROR Reconfiguration failed\n0 100000\n1 100000\n' sum_offsets t
refuse "sum_offsets: log4j noise after the data" "not a 'partition offset' line" \
  feed "0 5\n$log4j_noise\n" sum_offsets t
refuse "sum_offsets: a float" "'0 2.00006e+06'" feed '0 2.00006e+06\n' sum_offsets t
refuse "sum_offsets: a fraction" "'1 200059.72'" feed '0 1\n1 200059.72\n' sum_offsets t
refuse "sum_offsets: a negative offset" "'0 -1'" feed '0 -1\n' sum_offsets t
refuse "sum_offsets: an extra field" "'0 5 6'" feed '0 5 6\n' sum_offsets t
refuse "sum_offsets: a blank line" "''" feed '0 5\n\n1 5\n' sum_offsets t
refuse "sum_offsets: no output at all" "no 'partition offset' line" feed '' sum_offsets t
refuse "sum_offsets: a partition twice" "partition 1 appears twice" feed '0 5\n1 5\n1 5\n' sum_offsets t
refuse "sum_offsets: a raw GetOffsetShell line" "'t:0:5'" feed 't:0:5\n' sum_offsets t

lag_line='LAG 1234 committed=98765 p0=1000 p1=234'
expect "parse_lag total" 1234 feed "$lag_line\n" parse_lag total
expect "parse_lag committed" 98765 feed "$lag_line\n" parse_lag committed
expect "parse_lag: other lines are not read" 1234 feed "$log4j_noise\n$lag_line\nlag ok\n" parse_lag total
expect "parse_lag: no partitions" 0 feed 'LAG 0 committed=0\n' parse_lag total
refuse "parse_lag: no LAG line" "expected one LAG line, got 0" feed "$log4j_noise\n" parse_lag total
refuse "parse_lag: two LAG lines" "expected one LAG line, got 2" feed "$lag_line\n$lag_line\n" parse_lag total
refuse "parse_lag: a float" "not a 'LAG <total>" feed 'LAG 1.5e+06 committed=3\n' parse_lag total
refuse "parse_lag: committed missing" "not a 'LAG <total>" feed 'LAG 15 p0=15\n' parse_lag total

summary='[2026-01-01T00:00:10Z INFO  kafka_pipeline::commands::loadgen] loadgen: 20000 records (Realistic profile) to t in 10.00 s, 2000 records/s: 20000 delivered, 0 failed; 18800 valid, 1200 invalid (missing_field 600, bad_json 600)'
expect "loadgen_delivered" 20000 feed "started\n$summary\n" loadgen_delivered
expect "loadgen_delivered: the last summary counts" 20000 \
  feed "${summary/20000 delivered/5 delivered}\n$summary\n" loadgen_delivered
refuse "loadgen_delivered: failed deliveries" "3 records failed" \
  feed "${summary/0 failed/3 failed}\n" loadgen_delivered
refuse "loadgen_delivered: no summary line" "no 'loadgen: N records" feed "$log4j_noise\n" loadgen_delivered
refuse "loadgen_delivered: a float" "no 'D delivered, F failed'" \
  feed "${summary/20000 delivered/2e+04 delivered}\n" loadgen_delivered

expect "require_count" 42 require_count n 042
refuse "require_count: empty" "'' is not a non-negative integer" require_count n ''
refuse "require_count: a float" "'2.00006e+06' is not" require_count n 2.00006e+06
refuse "require_count: 19 digits" "is not a non-negative integer" require_count n 1234567890123456789

# --- 2. kafka.sh offsets with a noisy tool ----------------------------------------------------

# A stand-in for java that prints what GetOffsetShell would, with the noise around it. Needs the
# jars only for kafka.sh's check that they are fetched.
mkdir -p "$scratch/bin"
cat >"$scratch/bin/java" <<EOF
#!/usr/bin/env bash
printf '%s\n' "$log4j_noise" 'probe.t:0:3' 'probe-t:0:99' 'probe.t:1:0' 'probe.t:2:x' \
  '[2026-01-01 12:00:00,000] WARN something (org.apache.kafka.clients.NetworkClient)'
EOF
chmod +x "$scratch/bin/java"
if [[ -f ${KAFKA_PIPELINE_CACHE:-$HOME/.cache/kafka-pipeline}/kafka-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")/libs/.complete ]]; then
  noisy() { PATH="$scratch/bin:$PATH" "$kafka" offsets probe.t; }
  expect "kafka.sh offsets: only TOPIC's partition lines on stdout" $'0 3\n1 0' noisy
  noisy 2>"$scratch/noise" >/dev/null || true
  if grep -qF 'main ERROR Reconfiguration failed' "$scratch/noise" && grep -qF 'probe.t:2:x' "$scratch/noise" &&
    grep -qF 'WARN something' "$scratch/noise"; then pass; else
    fail "kafka.sh offsets: the noise should go to stderr, stderr was: $(cat "$scratch/noise")"
  fi
else
  echo "test-scripts.sh: the Kafka jars are not fetched yet (scripts/kafka.sh start): part 2 skipped" >&2
fi

# --- 3. the real wrappers on the broker -------------------------------------------------------

if ! "$kafka" status 2>/dev/null; then
  if [[ ${CI:-} == true ]]; then
    fail "no broker on localhost:29092 (scripts/kafka.sh start): the wrapper tests cannot run in CI"
  else
    printf '\n*** test-scripts.sh: NO BROKER on localhost:29092: the wrapper tests (part 3) are SKIPPED (scripts/kafka.sh start) ***\n\n' >&2
  fi
else
  # As a new user sees them: the broker is someone else's (adopted) and this data directory has
  # no log4j2.properties (what made log4j print on stdout in issue 22). Every wrapper runs the
  # tools the same way (kafka_tool), whoever started the broker.
  mkdir -p "$scratch/empty-data"
  wrapper() { KAFKA_BROKER_DATA=$scratch/empty-data "$kafka" "$@"; }
  consume_sorted() { wrapper consume "$t" --max-messages 5 | sort; }
  t=test-scripts-$(date -u +%Y%m%d%H%M%S)-$$
  topics+=("$t")
  expect "topics --create" "Created topic $t." \
    wrapper topics --create --topic "$t" --partitions 3 --replication-factor 1
  expect "produce" "" wrapper produce "$t" < <(printf 'r%s\n' 1 2 3 4 5)
  got=$(wrapper offsets "$t" 2>/dev/null)
  expect "offsets, read by sum_offsets" 5 feed "$got\n" sum_offsets "$t"
  if [[ $(wc -l <<<"$got") == 3 ]] && ! grep -qvE '^[0-2] [0-9]+$' <<<"$got"; then pass; else
    fail "offsets printed more than the three 'partition offset' lines: '$got'"
  fi
  expect "consume" $'r1\nr2\nr3\nr4\nr5' consume_sorted
  got=$(wrapper topics --list 2>/dev/null)
  if grep -qxF "$t" <<<"$got" && ! grep -qvE '^[A-Za-z0-9._-]+$' <<<"$got"; then pass; else
    fail "topics --list printed something other than topic names: '$(grep -vE '^[A-Za-z0-9._-]+$' <<<"$got" | head -n 3)'"
  fi
  got=$(wrapper groups --list 2>/dev/null)
  if ! grep -qvE '^[A-Za-z0-9._-]*$' <<<"$got"; then pass; else
    fail "groups --list printed something other than group names: '$(grep -vE '^[A-Za-z0-9._-]*$' <<<"$got" | head -n 3)'"
  fi
  refuse "offsets of a missing topic" "Could not match any topic-partitions" wrapper offsets "$t-missing"
fi

if ((failures)); then
  echo "test-scripts.sh: $failures of $checks checks failed" >&2
  exit 1
fi
echo "test-scripts.sh: all $checks checks passed"
