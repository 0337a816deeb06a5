#!/usr/bin/env bash
# Python virtualenv for the project's Python checks (tests/python).
#
#   py=$(scripts/python-env.sh)      # create/update the venv; last stdout line is its python
#   "$py" tests/python/read_topic.py --expect 5
#
# The venv lives at ${KAFKA_PIPELINE_CACHE:-$HOME/.cache/kafka-pipeline}/venv, outside the
# repository. tests/python/requirements.txt is installed into it only when the venv is new or the
# file (or the interpreter) changed since the last successful install (a hash stamp in the venv).
# Idempotent and safe to run concurrently (flock). Logs go to stderr; stdout carries only the path.
# Environment overrides: KAFKA_PIPELINE_CACHE (cache root), PYTHON (interpreter, default python3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
reqs="$root/tests/python/requirements.txt"
cache=${KAFKA_PIPELINE_CACHE:-$HOME/.cache/kafka-pipeline}
venv="$cache/venv"
py="$venv/bin/python"
stamp="$venv/.requirements.sha256"
base_python=${PYTHON:-python3}

log() { printf 'python-env.sh: %s\n' "$*" >&2; }

[[ -f "$reqs" ]] || { log "missing $reqs"; exit 1; }
command -v "$base_python" >/dev/null || { log "$base_python is required"; exit 1; }
mkdir -p "$cache"

# One writer at a time: parallel callers wait here instead of installing over each other.
if command -v flock >/dev/null; then
  exec 9>"$cache/venv.lock"
  flock 9
fi

# The stamp covers the requirements file and the base interpreter, so either changing reinstalls.
want=$({
  cat "$reqs"
  "$base_python" -c 'import sys; print(sys.version); print(sys.executable)'
} | sha256sum | cut -d' ' -f1)

if [[ -x "$py" ]] && ! "$py" -c 'import sys' 2>/dev/null; then
  log "venv at $venv is broken (interpreter gone?); recreating it"
  rm -rf "$venv"
fi

if [[ ! -x "$py" ]]; then
  log "creating venv at $venv"
  if ! "$base_python" -m venv "$venv" >&2; then
    rm -rf "$venv"
    log "'$base_python -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)"
    exit 1
  fi
fi

if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
  log "installing $reqs into $venv"
  rm -f "$stamp"
  "$py" -m pip install --quiet --disable-pip-version-check -r "$reqs" >&2
  printf '%s\n' "$want" >"$stamp"
else
  log "venv up to date ($venv)"
fi

printf '%s\n' "$py"
