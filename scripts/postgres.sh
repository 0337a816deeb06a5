#!/usr/bin/env bash
# Local PostgreSQL 15 (Debian's packages) for the insights sink: development, tests and CI.
#
#   scripts/postgres.sh start    initialise the cluster (first time), start it on a free port,
#                                wait until it answers, print its URL; a running one is left alone
#   scripts/postgres.sh stop     stop the server this script started (fast shutdown)
#   scripts/postgres.sh status   exit 0 when the server this script started answers
#   scripts/postgres.sh url      print the URL (postgres://kafka_pipeline@127.0.0.1:PORT/kafka_pipeline)
#   scripts/postgres.sh psql …   run psql against it
#
# Data, socket, log and the chosen port live under ~/.cache/kafka-pipeline/postgres (outside the
# repository); the URL is written to <data>/url, which tests/integration/sink.rs reads. The port is the first
# free one from PG_PORT (default 55432) upwards, chosen once and kept; a port that something
# else listens on is never used, and a server this script did not start (a pid file that is
# not ours, another cluster) is never adopted or stopped. Local connections are trusted (a
# development server that listens on 127.0.0.1 only). Needs postgresql-15 and, for the sink's
# HyperLogLog columns, postgresql-15-hll: `start` installs whichever is missing with apt-get
# (as .ci/run does; through sudo when not root), unless KAFKA_PIPELINE_NO_INSTALL=1.
#
# PostgreSQL refuses to run as root. When run as root the server runs in a user namespace in
# which this user appears as uid 1000 (unshare --map-user), so the files stay ours and no
# other account or permission change is needed. Environment overrides: KAFKA_PIPELINE_CACHE
# (cache root), PG_BIN (default /usr/lib/postgresql/15/bin), PG_PORT (first port tried),
# PG_DATA (data folder, default <cache>/postgres).
set -euo pipefail

cache=${KAFKA_PIPELINE_CACHE:-$HOME/.cache/kafka-pipeline}
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
data=${PG_DATA:-$cache/postgres}
cluster=$data/cluster
socket=$data/socket
logfile=$data/postgres.log
portfile=$data/port
urlfile=$data/url
user=kafka_pipeline
db=kafka_pipeline

log() { printf 'postgres.sh: %s\n' "$*" >&2; }

# Runs a PostgreSQL program as a non-root user: directly when we are not root, else in a user
# namespace that maps uid 1000 onto us.
as_owner() {
  if [[ $(id -u) != 0 ]]; then
    "$@"
  else
    unshare --user --map-user=1000 --map-group=1000 -- "$@"
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The postmaster's pid when the server in our cluster directory runs (its pid file names our
# directory), else nothing.
running_pid() {
  [[ -f $cluster/postmaster.pid ]] || return 1
  local pid dir
  pid=$(sed -n 1p "$cluster/postmaster.pid")
  dir=$(sed -n 2p "$cluster/postmaster.pid")
  [[ $dir == "$cluster" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

port() { cat "$portfile"; }

answers() { as_owner "$bin/pg_isready" -q -h 127.0.0.1 -p "$(port)" -U "$user" -d postgres; }

choose_port() {
  if [[ -f $portfile ]] && ! port_open "$(port)"; then return; fi
  local p=${PG_PORT:-55432}
  while port_open "$p"; do p=$((p + 1)); done
  echo "$p" >"$portfile"
}

# Installs the Debian packages the server and the sink's first migration need when they are
# missing, the way .ci/run does: apt-get, as root or through sudo. Without dpkg (not Debian) or
# with KAFKA_PIPELINE_NO_INSTALL=1 nothing is installed and init_cluster says what is missing.
ensure_packages() {
  [[ ${KAFKA_PIPELINE_NO_INSTALL:-0} == 1 ]] && return
  command -v dpkg >/dev/null || return 0
  local missing=() sudo=()
  dpkg -s postgresql-15 >/dev/null 2>&1 || missing+=(postgresql-15)
  dpkg -s postgresql-15-hll >/dev/null 2>&1 || missing+=(postgresql-15-hll)
  ((${#missing[@]})) || return 0
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null ||
      { log "missing ${missing[*]}: run as root, or apt-get install ${missing[*]}"; exit 1; }
    sudo=(sudo)
  fi
  log "installing ${missing[*]} (apt-get)"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

init_cluster() {
  if [[ -f $cluster/PG_VERSION ]]; then return; fi
  [[ -x $bin/initdb ]] || { log "no PostgreSQL at $bin (apt-get install postgresql-15)"; exit 1; }
  log "initialising a PostgreSQL cluster in $cluster"
  mkdir -p "$data"
  as_owner "$bin/initdb" -D "$cluster" -U "$user" --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    >"$data/initdb.log" 2>&1 || { cat "$data/initdb.log" >&2; exit 1; }
}

start() {
  if pid=$(running_pid); then
    local wait_until=$((SECONDS + 10))
    until answers || ((SECONDS > wait_until)); do sleep 0.5; done
    if answers; then
      log "already running (pid $pid) on port $(port)"
      url
      return
    fi
    # A pid file whose process does not answer: a stale file whose pid was reused, or a server
    # stuck starting. pg_ctl start below refuses if a postmaster really runs in the directory.
    log "pid $pid in $cluster/postmaster.pid does not answer; starting anew"
  fi
  ensure_packages
  init_cluster
  choose_port
  mkdir -p "$socket"
  log "starting PostgreSQL on 127.0.0.1:$(port) (log: $logfile)"
  as_owner "$bin/pg_ctl" -D "$cluster" -l "$logfile" -w -t 60 -s \
    -o "-c listen_addresses=127.0.0.1 -p $(port) -k $socket -c fsync=off -c full_page_writes=off" start \
    || { tail -n 20 "$logfile" >&2; exit 1; }
  local deadline=$((SECONDS + 30))
  until answers; do
    ((SECONDS < deadline)) || { log "no answer within 30 s; see $logfile"; exit 1; }
    sleep 0.5
  done
  if ! as_owner "$bin/psql" -h 127.0.0.1 -p "$(port)" -U "$user" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$(port)" -U "$user" "$db"
  fi
  echo "postgres://$user@127.0.0.1:$(port)/$db" >"$urlfile"
  log "ready"
  url
}

stop() {
  if ! pid=$(running_pid); then
    log "not running"
    return
  fi
  log "stopping PostgreSQL (pid $pid)"
  as_owner "$bin/pg_ctl" -D "$cluster" -m fast -w -t 30 -s stop
}

url() { cat "$urlfile"; }

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if running_pid >/dev/null && answers; then log "answers on 127.0.0.1:$(port)"; url
    else log "not running"; exit 1; fi ;;
  url) url ;;
  psql) shift; as_owner "$bin/psql" -h 127.0.0.1 -p "$(port)" -U "$user" -d "$db" "$@" ;;
  *) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
