#!/usr/bin/env bash
# `make run`: the local stack, cxpulse's processes in the background, the simulator in the foreground.
# Ctrl-C (or the simulator ending) stops the background processes and the stack services this run started
# (services already running before, e.g. from `make up`, are left running).
#
# To add a long-running process, call start_bg in the "background processes" section:
#   start_bg NAME COMMAND [ARGS...]     output goes to .local/logs/NAME.log, stopped (TERM) on exit
#   wait_http NAME URL [SECONDS]        optional: wait until URL answers HTTP (fails printing NAME's log)
# and add/adjust its line in print_endpoints.
#
# Environment: CXPULSE_RUN_SPEED [1 = real time] simulator speed, CXPULSE_RUN_HISTORY [1h] simulated past
# written at once first (so every window has data from the start); the CXPULSE_STACK_* ports of stack.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
STACK="$ROOT/deploy/local/stack.sh"
PY="$ROOT/.venv/bin/python"
CXPULSE="$ROOT/.venv/bin/cxpulse"
LOGS="${CXPULSE_STACK_DIR:-$ROOT/.local}/logs"
SPEED="${CXPULSE_RUN_SPEED:-1}"
HISTORY="${CXPULSE_RUN_HISTORY:-1h}"

BG_NAMES=()
BG_PIDS=()
record="$(mktemp "${TMPDIR:-/tmp}/cxpulse-run.XXXXXX")"

say() { printf '%s\n' "run: $*"; }

cleanup() {
  local rc=$? i pid started
  trap - EXIT INT TERM
  echo
  for ((i = ${#BG_PIDS[@]} - 1; i >= 0; i--)); do  # reverse order of start
    pid="${BG_PIDS[$i]}"
    if kill -0 "$pid" 2>/dev/null; then
      say "stopping ${BG_NAMES[$i]} (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < 100; i++)); do  # up to 10 s for all of them
    local alive=0
    for pid in "${BG_PIDS[@]+"${BG_PIDS[@]}"}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for pid in "${BG_PIDS[@]+"${BG_PIDS[@]}"}"; do kill -KILL "$pid" 2>/dev/null || true; done
  started="$(tr '\n' ' ' <"$record" 2>/dev/null || true)"
  rm -f "$record"
  if [[ -n "${started// /}" ]]; then
    # shellcheck disable=SC2086
    "$STACK" down $started || true
  else
    say "the stack was already running before 'make run': left running ('make down' stops it)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_bg() {  # start_bg NAME COMMAND [ARGS...]
  local name="$1"; shift
  mkdir -p "$LOGS"
  printf '\n===== %s %s =====\n' "$(date -Is)" "$*" >>"$LOGS/$name.log"
  # a non-interactive shell starts background jobs with SIGINT ignored: Ctrl-C reaches only the
  # foreground simulator; cleanup stops these with TERM
  "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  BG_NAMES+=("$name")
  BG_PIDS+=("$!")
  say "started $name (pid $!, log $LOGS/$name.log)"
}

wait_http() {  # wait_http NAME URL [SECONDS]
  local name="$1" url="$2" secs="${3:-60}"
  if ! "$PY" - "$url" "$secs" <<'PYEOF'
import sys, time, urllib.request, urllib.error
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while True:
    try:
        urllib.request.urlopen(url, timeout=2).close()
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # it answers HTTP
    except Exception:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.5)
PYEOF
  then
    echo "run: ERROR: $name does not answer $url after ${secs}s; last lines of $LOGS/$name.log:" >&2
    tail -n 40 "$LOGS/$name.log" >&2 || true
    exit 1
  fi
}

# ------------------------------------------------------------------------------------ stack
"$STACK" up --record "$record"
eval "$("$STACK" env)"   # CXPULSE_KAFKA__BOOTSTRAP_SERVERS, CXPULSE_REDIS__URL for everything below

# ------------------------------------------------------------------------------------ background processes
STATE="${CXPULSE_STACK_DIR:-$ROOT/.local}"
mkdir -p "$STATE/prometheus" "$STATE/alertmanager"
export CXPULSE_WORKER__DATA_DIR="$STATE/worker"
export CXPULSE_CONFIG="${CXPULSE_CONFIG:-$ROOT/config/cxpulse.example.yaml}"
start_bg worker "$CXPULSE" worker
start_bg wallboard "$CXPULSE" wallboard
start_bg prometheus prometheus --config.file="$ROOT/deploy/prometheus/prometheus.yml" \
  --storage.tsdb.path="$STATE/prometheus" --web.listen-address=127.0.0.1:9090
start_bg alertmanager prometheus-alertmanager --config.file="$ROOT/deploy/alertmanager/alertmanager.yml" \
  --storage.path="$STATE/alertmanager" --web.listen-address=127.0.0.1:9093 --cluster.listen-address=
wait_http worker "http://127.0.0.1:6066/readyz" 120
wait_http wallboard "http://127.0.0.1:8088/healthz" 30
wait_http prometheus "http://127.0.0.1:9090/-/ready" 30
wait_http alertmanager "http://127.0.0.1:9093/-/ready" 30

print_endpoints() {
  cat <<EOF2

================================ cxpulse local run ================================
  Kafka bootstrap   $CXPULSE_KAFKA__BOOTSTRAP_SERVERS
  Redis             $CXPULSE_REDIS__URL
  Wallboard (TV)    http://127.0.0.1:8088/                 (?queues=billing,sales&window=1h)
  Worker API        http://127.0.0.1:6066/api/v1/kpis      (/metrics, /api/v1/status, /readyz)
  Prometheus        http://127.0.0.1:9090/alerts           (rules: deploy/prometheus/rules/)
  Alertmanager      http://127.0.0.1:9093/
  Grafana           not run locally: dashboards in grafana/dashboards/ (docker compose: deploy/)
  Simulator         cxpulse simulate --demo --history $HISTORY --speed $SPEED   (foreground: the last $HISTORY at once, then live;
                    --demo: the busy hours of the day whatever the clock, staffing that sometimes falls short)
  Logs              $LOGS/
  Ctrl-C stops what this run started.
====================================================================================

EOF2
}
print_endpoints

# ------------------------------------------------------------------------------------ foreground
say "starting: $CXPULSE simulate --demo --history $HISTORY --speed $SPEED"
rc=0
"$CXPULSE" simulate --demo --history "$HISTORY" --speed "$SPEED" || rc=$?
exit "$rc"
