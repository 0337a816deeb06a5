#!/usr/bin/env bash
# The whole test suite: starts the local broker (scripts/kafka.sh) and PostgreSQL
# (scripts/postgres.sh; without it tests/integration/sink.rs skips), prepares the Python client used by one
# test (scripts/python-env.sh), then runs every unit, integration and doc test.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh mixed_traffic).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/kafka.sh start
scripts/postgres.sh start >/dev/null || echo "test.sh: no PostgreSQL (apt-get install postgresql-15 postgresql-15-hll); tests/integration/sink.rs skips" >&2
scripts/python-env.sh >/dev/null
# fault-injection: the test-only hook of the supervision tests (src/fault.rs).
cargo test --all-targets --locked --features fault-injection "$@"
