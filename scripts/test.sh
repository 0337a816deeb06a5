#!/usr/bin/env bash
# The whole test suite: starts the local broker (scripts/kafka.sh), prepares the Python client
# used by one test (scripts/python-env.sh), then runs every unit, integration and doc test.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh mixed_traffic).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/kafka.sh start
scripts/python-env.sh >/dev/null
cargo test --all-targets --locked "$@"
