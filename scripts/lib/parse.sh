# shellcheck shell=bash
# Parsers for what the scripts read from scripts/kafka.sh and the project's tools, sourced by
# scripts/bench.sh, scripts/latency.sh and scripts/commit-lag.sh and tested by
# scripts/test-scripts.sh. Each one reads only the lines it is meant for, checks that their
# numbers are integers and prints the result on stdout; on anything else it says on stderr what
# it got and returns 1. A count that cannot be read must fail the run, not become a wrong figure
# (issue 22: a log line on stdout made every bench total off by a fraction and unverified).
#
# Sums use bash arithmetic (64-bit). Not awk: Debian's default awk (mawk) prints a large
# non-integer as 2.00006e+06, and its printf "%d" stops at 2147483647; where awk must print a
# large integer, use printf "%.0f".

# parse_error WHAT PROBLEM: the message every parser prints before it returns 1.
parse_error() { printf '%s: cannot read %s: %s\n' "${0##*/}" "$1" "$2" >&2; }

# require_count WHAT VALUE: prints VALUE as a plain decimal integer when it is a non-negative
# integer (at most 18 digits, so bash arithmetic holds it); otherwise an error.
require_count() {
  if [[ $2 =~ ^[0-9]{1,18}$ ]]; then
    echo "$((10#$2))"
  else
    parse_error "$1" "'$2' is not a non-negative integer"
    return 1
  fi
}

# sum_offsets [TOPIC] < `scripts/kafka.sh offsets TOPIC`: the sum of the end offsets, i.e. the
# topic's record count when it starts at offset 0 (a fresh topic, no compaction). Every line
# must be `partition offset` (two integers), each partition once, and there must be one.
sum_offsets() {
  local what="the end offsets${1:+ of $1}" line partition total=0 lines=0 seen=' '
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ ! $line =~ ^([0-9]{1,9})\ ([0-9]{1,18})$ ]]; then
      parse_error "$what" "not a 'partition offset' line: '$line'"
      return 1
    fi
    partition=$((10#${BASH_REMATCH[1]}))
    if [[ $seen == *" $partition "* ]]; then
      parse_error "$what" "partition $partition appears twice"
      return 1
    fi
    seen+="$partition "
    total=$((total + 10#${BASH_REMATCH[2]}))
    lines=$((lines + 1))
  done
  if ((lines == 0)); then
    parse_error "$what" "no 'partition offset' line"
    return 1
  fi
  echo "$total"
}

# parse_lag total|committed < `examples/chaos lag`: from its one `LAG <total> committed=<sum>
# p0=<lag> …` line, the total lag (end offsets minus committed offsets) or the sum of the
# committed offsets. Other lines are not read; no LAG line, or two, is an error.
parse_lag() {
  local which=$1 line value='' lines=0
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line == 'LAG '* ]] || continue
    lines=$((lines + 1))
    if [[ ! $line =~ ^LAG\ ([0-9]{1,18})\ committed=([0-9]{1,18})(\ |$) ]]; then
      parse_error "the lag" "not a 'LAG <total> committed=<sum> …' line: '$line'"
      return 1
    fi
    case $which in
      total) value=$((10#${BASH_REMATCH[1]})) ;;
      committed) value=$((10#${BASH_REMATCH[2]})) ;;
      *) parse_error "the lag" "parse_lag takes total or committed, not '$which'"; return 1 ;;
    esac
  done
  if ((lines != 1)); then
    parse_error "the lag" "expected one LAG line, got $lines"
    return 1
  fi
  echo "$value"
}

# loadgen_delivered < a `kafka-pipeline loadgen` log: the records its last summary line
# (`loadgen: N records (…) to T in S s, R records/s: D delivered, F failed; …`) says were
# delivered. A failed delivery or no summary line is an error.
loadgen_delivered() {
  local line summary=''
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line == *'loadgen: '*' records ('* ]] && summary=${line#*loadgen: }
  done
  if [[ -z $summary ]]; then
    parse_error "the load generator's log" "no 'loadgen: N records …' summary line"
    return 1
  fi
  if [[ ! $summary =~ records/s:\ ([0-9]{1,18})\ delivered,\ ([0-9]{1,18})\ failed ]]; then
    parse_error "the load generator's summary" "no 'D delivered, F failed' in '$summary'"
    return 1
  fi
  if ((10#${BASH_REMATCH[2]} != 0)); then
    parse_error "the load generator's summary" "${BASH_REMATCH[2]} records failed: '$summary'"
    return 1
  fi
  echo "$((10#${BASH_REMATCH[1]}))"
}
