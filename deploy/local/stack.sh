#!/usr/bin/env bash
# Local stack for development and tests: one Apache Kafka node (KRaft, broker+controller, jars from Maven
# Central) and one Redis, both as our own processes bound to 127.0.0.1, state under .local/.
#
#   deploy/local/stack.sh jars                      resolve the Kafka jars into .local/kafka-jars/<version>/
#   deploy/local/stack.sh up [--record FILE]        start what is not running; return when Kafka answers a
#                                                   metadata request and Redis answers PING (FILE gets the
#                                                   names of the services this call started, one a line)
#   deploy/local/stack.sh down [kafka] [redis]      stop (all by default)
#   deploy/local/stack.sh status                    what runs, pid, port (exit 0 all running, 3 otherwise)
#   deploy/local/stack.sh logs [-f] [kafka|redis]   tail of the logs
#   deploy/local/stack.sh clean                     down, then remove .local/ (jar cache included)
#   deploy/local/stack.sh env                       the CXPULSE_* variables pointing at this stack
#
# Environment (defaults in brackets):
#   CXPULSE_STACK_KAFKA_PORT [19092]  CXPULSE_STACK_CONTROLLER_PORT [19093]  CXPULSE_STACK_REDIS_PORT [16379]
#   CXPULSE_STACK_KAFKA_SASL_PORT [19094] (SASL_PLAINTEXT, PLAIN: CXPULSE_STACK_SASL_USER / _PASSWORD)
#   CXPULSE_STACK_DIR [<repo>/.local]  CXPULSE_STACK_KAFKA_VERSION [4.4.0]  CXPULSE_STACK_TIMEOUT [60]
#   CXPULSE_STACK_KAFKA_HEAP [-Xmx512m -Xms512m]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/local"
LOCAL="${CXPULSE_STACK_DIR:-$ROOT/.local}"
KAFKA_VERSION="${CXPULSE_STACK_KAFKA_VERSION:-4.4.0}"
KAFKA_PORT="${CXPULSE_STACK_KAFKA_PORT:-19092}"
# a second listener with SASL/PLAIN, so the tests prove cxpulse's Kafka security settings on a real broker
SASL_PORT="${CXPULSE_STACK_KAFKA_SASL_PORT:-19094}"
SASL_USER="${CXPULSE_STACK_SASL_USER:-cxpulse}"
SASL_PASSWORD="${CXPULSE_STACK_SASL_PASSWORD:-local-test-only}"
CONTROLLER_PORT="${CXPULSE_STACK_CONTROLLER_PORT:-19093}"
REDIS_PORT="${CXPULSE_STACK_REDIS_PORT:-16379}"
TIMEOUT="${CXPULSE_STACK_TIMEOUT:-60}"
KAFKA_HEAP="${CXPULSE_STACK_KAFKA_HEAP:--Xmx512m -Xms512m}"
HOST=127.0.0.1

JARS="$LOCAL/kafka-jars/$KAFKA_VERSION"
KAFKA_DIR="$LOCAL/kafka"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
REDIS_DIR="$LOCAL/redis"
REDIS_PID="$REDIS_DIR/redis.pid"
LOGS="$LOCAL/logs"
KAFKA_LOG="$LOGS/kafka.log"
REDIS_LOG="$LOGS/redis.log"
PY="${CXPULSE_STACK_PYTHON:-$ROOT/.venv/bin/python}"

say() { printf '%s\n' "stack: $*"; }
die() { printf '%s\n' "stack: ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------- helpers
# pid from a pidfile if that process is alive and is what we think it is (guards against pid reuse)
live_pid() {  # live_pid PIDFILE PATTERN
  local file="$1" pattern="$2" pid
  [[ -s "$file" ]] || return 1
  pid="$(tr -dc '0-9' <"$file")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
  printf '%s' "$pid"
}
kafka_pid() { live_pid "$KAFKA_PID" "kafka.Kafka"; }
redis_pid() { live_pid "$REDIS_PID" "redis-server"; }

port_busy() {  # is something listening on 127.0.0.1:PORT?
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

tail_log() {
  local log="$1"
  if [[ -s "$log" ]]; then
    printf '%s\n' "----- last 40 lines of $log -----" >&2
    tail -n 40 "$log" >&2
    printf '%s\n' "-----" >&2
  else
    printf '%s\n' "(no log at $log)" >&2
  fi
}

stop_pid() {  # stop_pid NAME PID SECONDS: TERM, wait, then KILL
  local name="$1" pid="$2" secs="$3" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { say "$name stopped (pid $pid)"; return 0; }
    sleep 0.1
  done
  say "$name did not stop within ${secs}s, killing pid $pid"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.2
}

# ---------------------------------------------------------------------------------------------- jars
jars() {
  if [[ -f "$JARS/.complete" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
  command -v java >/dev/null || die "java not found (apt-get install -y openjdk-17-jre-headless)"
  say "resolving Apache Kafka $KAFKA_VERSION (org.apache.kafka:kafka_2.13) from Maven Central into $JARS"
  local tmp="$JARS.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  local mvn_args=(-q -B -Dstyle.color=never -f "$HERE/kafka/pom.xml" "-Dkafka.version=$KAFKA_VERSION"
    dependency:copy-dependencies "-DoutputDirectory=$tmp" -DincludeScope=runtime)
  # CXPULSE_STACK_M2 overrides Maven's local repository (default: Maven's own, ~/.m2/repository)
  if [[ -n "${CXPULSE_STACK_M2:-}" ]]; then mvn_args+=("-Dmaven.repo.local=$CXPULSE_STACK_M2"); fi
  local out
  if ! out="$(mvn "${mvn_args[@]}" 2>&1)"; then
    printf '%s\n' "$out" | tail -n 40 >&2
    rm -rf "$tmp"
    die "mvn could not resolve kafka_2.13:$KAFKA_VERSION (output above)"
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"; }
  ls "$tmp"/log4j-core-*.jar "$tmp"/log4j-slf4j-impl-*.jar >/dev/null 2>&1 \
    || { rm -rf "$tmp"; die "no log4j2 backend on the resolved classpath"; }
  touch "$tmp/.complete"
  rm -rf "$JARS"
  mv "$tmp" "$JARS"
  say "$(ls "$JARS"/*.jar | wc -l) jars in $JARS"
}

# ---------------------------------------------------------------------------------------------- kafka
write_kafka_props() {
  mkdir -p "$KAFKA_DIR" "$KAFKA_DATA" "$LOGS"
  cat >"$KAFKA_PROPS" <<EOF
# generated by deploy/local/stack.sh on every start; edit the script, not this file
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,SASL://$HOST:$SASL_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT,SASL://$HOST:$SASL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl.sasl.enabled.mechanisms=PLAIN
listener.name.sasl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$SASL_USER" password="$SASL_PASSWORD" user_$SASL_USER="$SASL_PASSWORD";
log.dirs=$KAFKA_DATA
num.partitions=8
default.replication.factor=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
EOF
}

java_cmd() {  # java_cmd MAINCLASS ARGS...: the broker's JVM command line
  local main="$1"; shift
  # shellcheck disable=SC2086  # KAFKA_HEAP holds several options
  printf '%s\0' java $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties" -Dkafka.logs.dir="$LOGS" \
    -cp "$JARS/*" "$main" "$@"
}

format_kafka() {
  [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
  local cluster_id
  cluster_id="$(java -cp "$JARS/*" -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties" \
    kafka.tools.StorageTool random-uuid 2>>"$KAFKA_LOG" | tail -n 1)"
  [[ -n "$cluster_id" ]] || { tail_log "$KAFKA_LOG"; die "StorageTool random-uuid failed"; }
  say "formatting Kafka storage in $KAFKA_DATA (cluster id $cluster_id)"
  if ! java -cp "$JARS/*" -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_PROPS" >>"$KAFKA_LOG" 2>&1; then
    tail_log "$KAFKA_LOG"
    die "StorageTool format failed"
  fi
}

STARTED=()  # services started by this call of up

start_kafka() {
  local pid
  if pid="$(kafka_pid)"; then
    say "kafka already running (pid $pid, $HOST:$KAFKA_PORT)"
    return 0
  fi
  for port in "$KAFKA_PORT" "$SASL_PORT" "$CONTROLLER_PORT"; do
    port_busy "$port" && die "port $HOST:$port is in use by another process (not our Kafka: no live pid in $KAFKA_PID); set CXPULSE_STACK_KAFKA_PORT / CXPULSE_STACK_CONTROLLER_PORT"
  done
  jars
  write_kafka_props
  format_kafka
  printf '\n===== %s starting Kafka %s =====\n' "$(date -Is)" "$KAFKA_VERSION" >>"$KAFKA_LOG"
  local cmd=()
  mapfile -d '' cmd < <(java_cmd kafka.Kafka "$KAFKA_PROPS")
  # own session: not killed by a Ctrl-C meant for the terminal's foreground job
  # (9>&-: the broker must not inherit the lock of this script)
  setsid nohup "${cmd[@]}" >>"$KAFKA_LOG" 2>&1 </dev/null 9>&- &
  echo $! >"$KAFKA_PID"
  STARTED+=(kafka)
  say "kafka $KAFKA_VERSION starting (pid $!, $HOST:$KAFKA_PORT, controller $HOST:$CONTROLLER_PORT, log $KAFKA_LOG)"
}

# ---------------------------------------------------------------------------------------------- redis
start_redis() {
  local pid
  if pid="$(redis_pid)"; then
    say "redis already running (pid $pid, $HOST:$REDIS_PORT)"
    return 0
  fi
  command -v redis-server >/dev/null || die "redis-server not found (make deps, or apt-get install -y redis-server)"
  port_busy "$REDIS_PORT" && die "port $HOST:$REDIS_PORT is in use by another process (not our Redis); set CXPULSE_STACK_REDIS_PORT"
  mkdir -p "$REDIS_DIR" "$LOGS"
  rm -f "$REDIS_PID"
  redis-server --bind "$HOST" --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize yes --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" --dir "$REDIS_DIR" 9>&- \
    || { tail_log "$REDIS_LOG"; die "redis-server failed to start"; }
  local i
  for ((i = 0; i < 50; i++)); do [[ -s "$REDIS_PID" ]] && break; sleep 0.1; done
  STARTED+=(redis)
  say "redis starting (pid $(cat "$REDIS_PID" 2>/dev/null || echo '?'), $HOST:$REDIS_PORT, log $REDIS_LOG)"
}

# ---------------------------------------------------------------------------------------------- commands
cmd_up() {
  local record=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --record) record="$2"; shift 2 ;;
      *) die "up: unknown argument $1" ;;
    esac
  done
  [[ -x "$PY" ]] || die "$PY not found: run 'make venv' first"
  mkdir -p "$LOCAL" "$LOGS"
  start_redis
  # record before starting Kafka too: if Kafka fails, the caller still stops the Redis we started
  if [[ -n "$record" ]]; then printf '%s\n' "${STARTED[@]+"${STARTED[@]}"}" >"$record"; fi
  start_kafka
  if [[ -n "$record" ]]; then printf '%s\n' "${STARTED[@]+"${STARTED[@]}"}" >"$record"; fi
  if [[ ${#STARTED[@]} -eq 0 ]]; then
    say "already running"
  fi
  local rc=0
  "$PY" "$HERE/wait_ready.py" --timeout "$TIMEOUT" \
    --kafka "$HOST:$KAFKA_PORT" --kafka-pid "$(kafka_pid || echo 0)" \
    --redis "redis://$HOST:$REDIS_PORT/0" --redis-pid "$(redis_pid || echo 0)" || rc=$?
  if [[ "$rc" == 0 ]]; then
    say "ready: kafka $HOST:$KAFKA_PORT, redis redis://$HOST:$REDIS_PORT/0"
    return 0
  fi
  case "$rc" in
    10) tail_log "$KAFKA_LOG" ;;
    11) tail_log "$REDIS_LOG" ;;
    *) tail_log "$KAFKA_LOG"; tail_log "$REDIS_LOG" ;;
  esac
  # leave no half-started service behind: stop what this call started, so the next `up` starts afresh
  if [[ ${#STARTED[@]} -gt 0 ]]; then cmd_down "${STARTED[@]}" >&2; fi
  case "$rc" in
    10) die "kafka is not ready after ${TIMEOUT}s (log tail above; full log $KAFKA_LOG)" ;;
    11) die "redis is not ready after ${TIMEOUT}s (log tail above; full log $REDIS_LOG)" ;;
    *) die "readiness check failed (rc $rc)" ;;
  esac
}

cmd_down() {
  local which=("$@") pid
  [[ ${#which[@]} -gt 0 ]] || which=(kafka redis)
  for svc in "${which[@]}"; do
    case "$svc" in
      kafka)
        if pid="$(kafka_pid)"; then say "stopping kafka (pid $pid)"; stop_pid kafka "$pid" 60; else say "kafka not running"; fi
        rm -f "$KAFKA_PID" ;;
      redis)
        if pid="$(redis_pid)"; then say "stopping redis (pid $pid)"; stop_pid redis "$pid" 15; else say "redis not running"; fi
        rm -f "$REDIS_PID" ;;
      "") ;;
      *) die "down: unknown service $svc (kafka, redis)" ;;
    esac
  done
}

cmd_status() {
  local pid rc=0
  if pid="$(kafka_pid)"; then
    say "kafka  RUNNING  pid $pid  bootstrap $HOST:$KAFKA_PORT  controller $HOST:$CONTROLLER_PORT  version $KAFKA_VERSION  log $KAFKA_LOG"
  else
    say "kafka  STOPPED  (would listen on $HOST:$KAFKA_PORT)"; rc=3
  fi
  if pid="$(redis_pid)"; then
    say "redis  RUNNING  pid $pid  url redis://$HOST:$REDIS_PORT/0  log $REDIS_LOG"
  else
    say "redis  STOPPED  (would listen on $HOST:$REDIS_PORT)"; rc=3
  fi
  return "$rc"
}

cmd_logs() {
  local follow=() which=()
  for a in "$@"; do
    case "$a" in
      -f) follow=(-F) ;;
      kafka) which+=("$KAFKA_LOG") ;;
      redis) which+=("$REDIS_LOG") ;;
      *) die "logs: unknown argument $a" ;;
    esac
  done
  [[ ${#which[@]} -gt 0 ]] || which=("$KAFKA_LOG" "$REDIS_LOG")
  tail -n 50 "${follow[@]+"${follow[@]}"}" "${which[@]}"
}

cmd_clean() {
  cmd_down
  say "removing $LOCAL"
  rm -rf "$LOCAL"
}

cmd_env() {
  printf 'export CXPULSE_KAFKA__BOOTSTRAP_SERVERS=%s\n' "$HOST:$KAFKA_PORT"
  printf 'export CXPULSE_REDIS__URL=%s\n' "redis://$HOST:$REDIS_PORT/0"
  printf 'export CXPULSE_STACK_KAFKA_SASL=%s\n' "$HOST:$SASL_PORT"
}

lock() {  # one up/down/clean at a time (several engineers, one stack)
  mkdir -p "$LOCAL"
  exec 9>"$LOCAL/.stack.lock"
  if command -v flock >/dev/null && ! flock -w 180 9; then
    die "another stack.sh up/down/clean holds $LOCAL/.stack.lock"
  fi
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in up | down | clean | jars) lock ;; esac
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    clean) cmd_clean ;;
    jars) jars ;;
    env) cmd_env ;;
    *) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; [[ -z "$cmd" || "$cmd" == -h || "$cmd" == --help ]] || exit 2 ;;
  esac
}

main "$@"
