#!/usr/bin/env bash
# Run a command with the local stack up, then stop what this call started, also when the command fails or
# is interrupted; exit with the command's own exit code.
#
#   deploy/local/with_stack.sh .venv/bin/python -m pytest
#
# Services that were already running are left running. CXPULSE_KEEP_STACK=1 keeps everything running.
# The command sees CXPULSE_KAFKA__BOOTSTRAP_SERVERS and CXPULSE_REDIS__URL pointing at the stack.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STACK="$HERE/stack.sh"
[[ $# -gt 0 ]] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }

record="$(mktemp "${TMPDIR:-/tmp}/cxpulse-stack.XXXXXX")"
cleanup() {
  local rc=$? started
  trap - EXIT INT TERM
  started="$(tr '\n' ' ' <"$record" 2>/dev/null || true)"
  rm -f "$record"
  if [[ -n "${started// /}" ]]; then
    if [[ "${CXPULSE_KEEP_STACK:-0}" == 1 ]]; then
      echo "with_stack: CXPULSE_KEEP_STACK=1: leaving running: $started"
    else
      echo "with_stack: stopping what was started for this run: $started"
      # shellcheck disable=SC2086
      "$STACK" down $started || true
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$STACK" up --record "$record"
eval "$("$STACK" env)"

rc=0
"$@" || rc=$?
exit "$rc"
