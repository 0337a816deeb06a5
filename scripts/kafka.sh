#!/usr/bin/env bash
# Local single-node Apache Kafka 4.x (KRaft) for development, tests and CI.
#
#   scripts/kafka.sh start    fetch the jars (first time), format storage (first time), start,
#                             and wait until the broker answers; a running broker is left alone
#   scripts/kafka.sh stop     stop the broker (SIGTERM, then SIGKILL after 30 s)
#   scripts/kafka.sh reset    stop, wipe all data, start again
#   scripts/kafka.sh status   exit 0 when the broker answers on the bootstrap address
#   scripts/kafka.sh topics … run Kafka's own kafka-topics tool against the broker
#   scripts/kafka.sh groups … run Kafka's own kafka-consumer-groups tool against the broker
#   scripts/kafka.sh produce TOPIC       one record per stdin line (Kafka's console producer)
#   scripts/kafka.sh consume TOPIC [ARGS] read a topic from the beginning (console consumer)
#   scripts/kafka.sh offsets TOPIC       end offset of each partition, one `partition offset` line
#   scripts/kafka.sh cluster start|stop|status|kill N|restart N|bootstrap|topics …|groups …
#                             a local three-node cluster (see "Three-node cluster" below)
#
# The official jars come from Maven Central through Maven (scripts/kafka/pom.xml) and are cached
# under ~/.cache/kafka-pipeline, outside the repository. PLAINTEXT listener on localhost:29092,
# KRaft controller on localhost:29093. Environment overrides: KAFKA_PIPELINE_CACHE (cache root),
# KAFKA_PORT (listener port, default 29092; a second broker for fault tests runs on another port),
# KAFKA_CONTROLLER_PORT (default KAFKA_PORT + 1), KAFKA_BROKER_DATA (data dir, default
# <cache>/broker, or <cache>/broker-<port> for a non-default port), KAFKA_HEAP_OPTS,
# KAFKA_ADOPT (1: a process this script did not start that already listens on KAFKA_PORT is
# used as the broker; default 1 on 29092, where a Docker Compose broker may run, 0 on any other
# port, where `start` then fails: a private broker for fault tests must be the test's own).
# `start` also fails when the controller port or an extra listener's port is taken.
# KAFKA_EXTRA_CONFIG: space-separated key=value lines appended to server.properties (written at
# every start, so a restart takes the current value), e.g. "broker.session.timeout.ms=3000".
#
# Optional secure listeners (development only; certificates from scripts/tls-certs.sh in
# KAFKA_TLS_DIR, default <cache>/tls; clients: -X ssl.ca.location=<cache>/tls/ca.pem):
#   KAFKA_SSL_PORT=N    an SSL listener on localhost:N (clients: -X security.protocol=ssl)
#   KAFKA_SASL_PORT=N   a SASL_SSL listener on localhost:N: SCRAM-SHA-256/512 and PLAIN for user
#                       KAFKA_SASL_USER (default pipeline), password KAFKA_SASL_PASSWORD (default
#                       pipeline-secret); SCRAM users are made only when fresh storage is formatted
#   KAFKA_OAUTH_PORT=N  a SASL_SSL listener on localhost:N with OAUTHBEARER, tokens checked by
#                       Kafka's unsecured JWT validator (unsigned; scope kafka-pipeline required)
#
# Three-node cluster (fault tests of the production topology; `scripts/kafka.sh cluster …`):
# three combined controller+broker KRaft nodes, node N (1-3) listening on localhost:BASE+10N
# with its controller on BASE+10N+1 (KAFKA_CLUSTER_BASE_PORT, default 29100: 29110/29111,
# 29120/29121, 29130/29131), data in <cache>/cluster-N, heap KAFKA_CLUSTER_HEAP_OPTS (default
# -Xms256m -Xmx512m each), one cluster id shared by the three (<cache>/cluster.id). Internal
# topics (__consumer_offsets, __transaction_state) and auto-created topics get 3 replicas with
# min.insync.replicas=2 for the transaction log. Nodes are never adopted: a port taken by a
# process whose pid is not in that node's broker.pid makes `start` fail.
#   cluster start      start the nodes that are not running, wait until every node answers
#   cluster stop       stop every node this script started (SIGTERM, SIGKILL after 30 s)
#   cluster status     each node (pid, answering or not), the controller quorum's leader and
#                      how many partition leaderships each node holds; exit 1 unless all answer
#   cluster kill N     kill -9 node N (a crash: no controlled shutdown)
#   cluster restart N  start node N again (after `kill`), wait until it answers
#   cluster bootstrap  print the bootstrap list (localhost:29110,localhost:29120,localhost:29130)
#   cluster topics …   Kafka's kafka-topics against the cluster (groups …: kafka-consumer-groups)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pom="$here/kafka/pom.xml"
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")
cache=${KAFKA_PIPELINE_CACHE:-$HOME/.cache/kafka-pipeline}
libs="$cache/kafka-$version/libs"
port=${KAFKA_PORT:-29092}
controller_port=${KAFKA_CONTROLLER_PORT:-$((port + 1))}
if [[ $port == 29092 ]]; then default_data=$cache/broker; else default_data=$cache/broker-$port; fi
data=${KAFKA_BROKER_DATA:-$default_data}
conf="$data/server.properties"
pidfile="$data/broker.pid"
logfile="$data/broker.log"
bootstrap=localhost:$port
heap=${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}
ssl_port=${KAFKA_SSL_PORT:-}
sasl_port=${KAFKA_SASL_PORT:-}
oauth_port=${KAFKA_OAUTH_PORT:-}
sasl_user=${KAFKA_SASL_USER:-pipeline}
sasl_password=${KAFKA_SASL_PASSWORD:-pipeline-secret}
tls_dir=${KAFKA_TLS_DIR:-$cache/tls}
if [[ $port == 29092 ]]; then adopt=${KAFKA_ADOPT:-1}; else adopt=${KAFKA_ADOPT:-0}; fi
# One node by default; `cluster` sets these per node (use_node).
node_id=1
voters=1@localhost:$controller_port
replicas=1
cluster_id=
cluster_base=${KAFKA_CLUSTER_BASE_PORT:-29100}
cluster_nodes=(1 2 3)

log() { printf 'kafka.sh: %s\n' "$*" >&2; }

fetch_jars() {
  if [[ -f "$libs/.complete" ]]; then return; fi
  command -v mvn >/dev/null || { log "Maven (mvn) is required to fetch the Kafka jars"; exit 1; }
  command -v java >/dev/null || { log "Java 17+ is required to run the broker"; exit 1; }
  log "fetching Apache Kafka $version jars from Maven Central into $libs"
  mkdir -p "$libs"
  mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs" >&2
  touch "$libs/.complete"
}

java_cp() { java -cp "$libs/*" -Dlog4j2.configurationFile="$data/log4j2.properties" "$@"; }

write_config() {
  mkdir -p "$data/logs"
  local listeners="PLAINTEXT://localhost:$port" map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  [[ -z $ssl_port ]] || { listeners+=",SSL://localhost:$ssl_port"; map+=",SSL:SSL"; }
  [[ -z $sasl_port ]] || { listeners+=",SASL_SSL://localhost:$sasl_port"; map+=",SASL_SSL:SASL_SSL"; }
  [[ -z $oauth_port ]] || { listeners+=",OAUTH://localhost:$oauth_port"; map+=",OAUTH:SASL_SSL"; }
  cat >"$conf" <<CONF
process.roles=broker,controller
node.id=$node_id
controller.quorum.voters=$voters
listeners=$listeners,CONTROLLER://localhost:$controller_port
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$map
log.dirs=$data/logs
num.partitions=1
auto.create.topics.enable=true
default.replication.factor=$replicas
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$(((replicas + 1) / 2))
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$(((replicas + 1) / 2))
group.initial.rebalance.delay.ms=0
log.retention.hours=24
CONF
  local kv
  for kv in ${KAFKA_EXTRA_CONFIG:-}; do echo "$kv" >>"$conf"; done
  if [[ -n $ssl_port || -n $sasl_port || -n $oauth_port ]]; then
    "$here/tls-certs.sh" "$tls_dir" >/dev/null
    local password
    password=$(cat "$tls_dir/password")
    cat >>"$conf" <<CONF
ssl.keystore.type=PKCS12
ssl.keystore.location=$tls_dir/broker.p12
ssl.keystore.password=$password
ssl.key.password=$password
CONF
  fi
  if [[ -n $sasl_port ]]; then
    cat >>"$conf" <<CONF
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$sasl_user="$sasl_password";
CONF
  fi
  # OAUTHBEARER with Kafka's unsecured JWT validator: it accepts unsigned tokens (alg none)
  # whose sub claim is the principal, that have not expired and that carry the scope
  # kafka-pipeline (librdkafka: enable.sasl.oauthbearer.unsecure.jwt=true and
  # sasl.oauthbearer.config=principal=NAME scope=kafka-pipeline). A token without that scope
  # is refused, which shows the validator runs. The login options (sub) are the broker's own
  # token, required by the login module even though no broker connects through this listener.
  if [[ -n $oauth_port ]]; then
    cat >>"$conf" <<CONF
listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER
listener.name.oauth.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="kafka-broker" unsecuredValidatorRequiredScope="kafka-pipeline";
listener.name.oauth.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler
CONF
  fi
  cat >"$data/log4j2.properties" <<'CONF'
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.server.name = org.apache.kafka.server
logger.server.level = INFO
CONF
}

format_storage() {
  if [[ -f "$data/logs/meta.properties" ]]; then return; fi
  local id=$cluster_id
  [[ -n $id ]] || id=$(java_cp kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  log "formatting KRaft storage in $data/logs (cluster id $id)"
  local scram=()
  if [[ -n $sasl_port ]]; then
    scram=(--add-scram "SCRAM-SHA-256=[name=$sasl_user,password=$sasl_password]"
      --add-scram "SCRAM-SHA-512=[name=$sasl_user,password=$sasl_password]")
  fi
  java_cp kafka.tools.StorageTool format -t "$id" -c "$conf" "${scram[@]}" >/dev/null
}

running_pid() {
  [[ -f "$pidfile" ]] || return 1
  local pid
  pid=$(cat "$pidfile")
  # A recycled pid is not our broker: its command line names this node's server.properties.
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$conf" &&
    echo "$pid"
}

# port_open [PORT]: something accepts connections on localhost:PORT (default: the listener).
port_open() { (exec 3<>"/dev/tcp/localhost/${1:-$port}") 2>/dev/null; }

# The port opens before the broker has elected itself controller; an admin request that lists
# topics only succeeds once it serves metadata.
answers() {
  port_open && java_cp org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
    --list >/dev/null 2>&1
}

start() {
  launch
  if ((launched)); then await_ready; fi
}

# launch: checks the ports and starts the broker in the background (launched=1); launched=0
# when this script's broker is already running or another process is adopted.
launch() {
  local pid
  launched=0
  if pid=$(running_pid); then
    log "broker already running (pid $pid) on $bootstrap"
    return
  fi
  if port_open; then
    if [[ $adopt == 1 ]]; then
      log "something else already listens on $bootstrap; using it as the broker"
      return
    fi
    log "$bootstrap is taken by a process this script did not start (no running broker.pid in" \
      "$data); refusing to use it as the broker (KAFKA_ADOPT=1 would)"
    exit 1
  fi
  local p
  for p in "$controller_port" $ssl_port $sasl_port $oauth_port; do
    if port_open "$p"; then
      log "port $p (controller or extra listener) is taken by another process; choose other ports"
      exit 1
    fi
  done
  fetch_jars
  write_config
  format_storage
  log "starting Apache Kafka $version on $bootstrap (log: $logfile)"
  local heap_opts
  read -ra heap_opts <<<"$heap"
  nohup java "${heap_opts[@]}" -XX:+UseG1GC -Djava.awt.headless=true -cp "$libs/*" \
    -Dlog4j2.configurationFile="$data/log4j2.properties" \
    kafka.Kafka "$conf" >>"$logfile" 2>&1 &
  echo $! >"$pidfile"
  launched=1
}

# await_ready: waits until the broker launched from this data dir answers (90 s at most).
await_ready() {
  local deadline=$((SECONDS + 90))
  until answers; do
    if ! running_pid >/dev/null; then
      log "broker exited during start-up; last lines of $logfile:"
      tail -n 30 "$logfile" >&2
      exit 1
    fi
    if ((SECONDS > deadline)); then
      log "broker did not answer within 90 s; see $logfile"
      exit 1
    fi
    sleep 1
  done
  # The answer came from another process if ours is gone (it took the port first).
  if ! running_pid >/dev/null; then
    log "broker exited during start-up while something else answers on $bootstrap; see $logfile"
    exit 1
  fi
  log "broker ready on $bootstrap"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    log "broker not running"
    return
  fi
  log "stopping broker (pid $pid)"
  kill "$pid"
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return; }
    sleep 1
  done
  log "broker did not stop in 30 s; killing it"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# --- three-node cluster -------------------------------------------------------------------------

cluster_port() { echo $((cluster_base + 10 * $1)); }
cluster_bootstrap() {
  local n list=()
  for n in "${cluster_nodes[@]}"; do list+=("localhost:$(cluster_port "$n")"); done
  (IFS=,; echo "${list[*]}")
}

# use_node N: points the single-broker variables (ports, data, pid file, config) at node N.
use_node() {
  [[ $1 =~ ^[123]$ ]] || { log "no cluster node ${1:-?} (nodes are 1, 2, 3)"; exit 2; }
  local n
  node_id=$1
  port=$(cluster_port "$1")
  controller_port=$((port + 1))
  data=$cache/cluster-$1
  conf="$data/server.properties"
  pidfile="$data/broker.pid"
  logfile="$data/broker.log"
  bootstrap=localhost:$port
  heap=${KAFKA_CLUSTER_HEAP_OPTS:--Xms256m -Xmx512m}
  adopt=0
  ssl_port='' sasl_port='' oauth_port=''
  replicas=3
  voters=
  for n in "${cluster_nodes[@]}"; do voters+="${voters:+,}$n@localhost:$(($(cluster_port "$n") + 1))"; done
  # One cluster id for the three nodes, made once (a node formatted with another id would not
  # join); wiping a node's data folder reformats it with the same id.
  if [[ ! -s $cache/cluster.id ]]; then
    fetch_jars
    mkdir -p "$cache"
    java_cp kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 >"$cache/cluster.id"
  fi
  cluster_id=$(cat "$cache/cluster.id")
}

cluster_start() {
  local n started=()
  # Launch every node first: a node only answers once a majority of controllers is up.
  for n in "${cluster_nodes[@]}"; do
    use_node "$n"
    launch
    if ((launched)); then started+=("$n"); fi
  done
  for n in "${cluster_nodes[@]}"; do
    use_node "$n"
    await_ready
  done
  log "cluster ready on $(cluster_bootstrap) (started: ${started[*]:-none, all were running})"
}

cluster_stop() {
  local n pid pids=()
  # SIGTERM to all at once: stopped one by one, the last two would wait for a controller
  # quorum that is gone.
  for n in "${cluster_nodes[@]}"; do
    use_node "$n"
    if pid=$(running_pid); then
      log "stopping node $n (pid $pid)"
      kill "$pid"
      pids+=("$pid")
    fi
  done
  for _ in $(seq 1 30); do
    local alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    pids=("${alive[@]}")
    ((${#pids[@]})) || break
    sleep 1
  done
  for pid in "${pids[@]}"; do
    log "pid $pid did not stop in 30 s; killing it"
    kill -9 "$pid" 2>/dev/null || true
  done
  for n in "${cluster_nodes[@]}"; do rm -f "$cache/cluster-$n/broker.pid"; done
  log "cluster stopped"
}

cluster_kill() {
  local pid
  use_node "$1"
  if ! pid=$(running_pid); then
    log "node $1 is not running (or not started by this script); nothing killed"
    exit 1
  fi
  kill -9 "$pid"
  log "node $1 (pid $pid) killed with SIGKILL"
}

cluster_status() {
  local n pid ok=1 answering=
  for n in "${cluster_nodes[@]}"; do
    use_node "$n"
    pid=$(running_pid) || pid=-
    if answers; then
      log "node $n on $bootstrap: pid $pid, answers"
      answering=$bootstrap
    else
      log "node $n on $bootstrap: pid $pid, does not answer"
      ok=0
    fi
  done
  if [[ -n $answering ]]; then
    java_cp org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$answering" \
      describe --status 2>/dev/null | sed -n 's/^LeaderId: *\(.*\)/controller quorum leader: node \1/p' >&2 || true
    java_cp org.apache.kafka.tools.TopicCommand --bootstrap-server "$answering" --describe \
      2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "Leader:") n[$(i + 1)]++ }
        END { for (l in n) printf "node %s leads %d partitions\n", l, n[l] }' | sort >&2 || true
  fi
  ((ok))
}

cluster() {
  local command=${1:-}
  shift || true
  case $command in
    start) cluster_start ;;
    stop) cluster_stop ;;
    status) cluster_status ;;
    kill) cluster_kill "${1:-}" ;;
    restart) use_node "${1:-}"; start ;;
    bootstrap) cluster_bootstrap ;;
    topics) use_node 1; fetch_jars; kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(cluster_bootstrap)" "$@" ;;
    groups) use_node 1; fetch_jars; kafka_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$(cluster_bootstrap)" "$@" ;;
    *) log "usage: scripts/kafka.sh cluster start|stop|status|kill N|restart N|bootstrap|topics …|groups …"; exit 2 ;;
  esac
}

# --- Kafka's tools -------------------------------------------------------------------------------

# kafka_tool CLASS ARGS…: one of Kafka's command-line tools, its stdout carrying only the tool's
# data (scripts parse it): log4j, log4j's own status messages (scripts/kafka/tools-log4j2.properties)
# and the JVM's unified logging all go to stderr. The configuration is the repository's, not the
# broker's: an adopted broker has no log4j2.properties in this data directory, and log4j then
# prints "main ERROR Reconfiguration failed" on stdout.
kafka_tool() {
  java -Xlog:disable -Xlog:all=warning:stderr -cp "$libs/*" \
    -Dlog4j2.configurationFile="$here/kafka/tools-log4j2.properties" "$@"
}

# offsets TOPIC: one `partition offset` line per partition of TOPIC on stdout, nothing else.
# GetOffsetShell prints topic:partition:offset (topic names cannot contain ':') and takes
# --topic as a regular expression ('.' escaped: the one metacharacter a topic name can hold);
# any other line it prints goes to stderr.
offsets() {
  [[ -n ${1:-} ]] || { log "usage: scripts/kafka.sh offsets TOPIC"; exit 2; }
  kafka_tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$bootstrap" --topic "${1//./\\.}" |
    awk -F: -v topic="$1" '
      NF == 3 && $1 == topic && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ { print $2, $3; next }
      { print > "/dev/stderr" }'
}

case "${1:-}" in
  cluster) shift; cluster "$@" ;;
  start) start ;;
  stop) stop ;;
  reset) stop; rm -rf "$data"; start ;;
  status) if answers; then log "broker answers on $bootstrap"; else log "no broker on $bootstrap"; exit 1; fi ;;
  topics) shift; fetch_jars; kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" "$@" ;;
  groups) shift; fetch_jars; kafka_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$bootstrap" "$@" ;;
  produce) fetch_jars; kafka_tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$bootstrap" --topic "$2" ;;
  offsets) fetch_jars; offsets "${2:-}" ;;
  consume) fetch_jars; t=$2; shift 2; kafka_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$bootstrap" --topic "$t" --from-beginning "$@" ;;
  *) sed -n '2,54p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
