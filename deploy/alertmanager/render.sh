#!/usr/bin/env bash
# Render alertmanager.yml with real webhook URLs (Alertmanager 0.25 has no environment substitution).
#   CXPULSE_PAGER_WEBHOOK_URL=... CXPULSE_CHAT_WEBHOOK_URL=... deploy/alertmanager/render.sh OUTPUT
# An unset variable keeps the local placeholder. The result is checked with amtool check-config.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: render.sh OUTPUT}"
escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }   # for the replacement side of sed s|||
pager="$(escape "${CXPULSE_PAGER_WEBHOOK_URL:-http://127.0.0.1:9099/pager}")"
chat="$(escape "${CXPULSE_CHAT_WEBHOOK_URL:-http://127.0.0.1:9099/chat}")"
sed -e "s|url: http://127.0.0.1:9099/pager\$|url: '${pager//\'/\'\'}'|" \
    -e "s|url: http://127.0.0.1:9099/chat\$|url: '${chat//\'/\'\'}'|" \
    "$here/alertmanager.yml" >"$out"
amtool check-config "$out" >/dev/null
echo "wrote $out"
