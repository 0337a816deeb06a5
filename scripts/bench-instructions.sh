#!/usr/bin/env bash
# Instructions executed per event by the worker stage, counted by valgrind (callgrind):
# repeatable to a few parts per million whatever else the machine is doing, unlike wall-clock
# benchmarks on a shared machine. See benches/instructions.rs for the variants.
#
#   scripts/bench-instructions.sh
#
# Builds the bench binary (release profile, `cargo bench --no-run`), runs each variant once
# under callgrind collecting only inside the variant, and prints a markdown table:
# instructions per event for each variant, and the aggregation's cost relative to the
# transform ((transform_and_aggregate - transform_only) / transform_only). Needs valgrind
# (Debian package `valgrind`). Takes about a minute.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v valgrind >/dev/null || { echo "bench-instructions.sh: valgrind is required" >&2; exit 1; }
bin=$(cargo bench --bench instructions --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "instructions" and m.get("executable"):
        print(m["executable"])')
[[ -x $bin ]] || { echo "bench-instructions.sh: could not build benches/instructions.rs" >&2; exit 1; }

declare -A per_event
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for variant in transform_only transform_and_aggregate aggregate_only worker_steps; do
  valgrind --tool=callgrind --toggle-collect='instructions::measured' \
    --callgrind-out-file="$out/$variant.cg" "$bin" "$variant" >"$out/$variant.txt" 2>"$out/$variant.err"
  collected=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/$variant.err")
  events=$(sed -n "s/^$variant: \([0-9]*\) events.*/\1/p" "$out/$variant.txt")
  per_event[$variant]=$((collected / events))
done

t=${per_event[transform_only]}
ta=${per_event[transform_and_aggregate]}
echo "| variant (realistic events, seed 1) | instructions per event |"
echo "|---|---:|"
for variant in transform_only transform_and_aggregate aggregate_only worker_steps; do
  echo "| $variant | ${per_event[$variant]} |"
done
awk -v t="$t" -v ta="$ta" 'BEGIN { printf "\naggregation on top of the transform: %d instructions per event, %.1f %% of the transform\n", ta - t, 100 * (ta - t) / t }'
echo "git $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty'), $(rustc --version), $(uname -m)"
