#!/usr/bin/env bash
# Render alertmanager.yml with the real URL of the generic webhook receiver: Alertmanager 0.25 (what the
# tests run) has no url_file for webhooks and no environment substitution. PagerDuty, Slack and the webhook's
# bearer token need no rendering: they are read from files (routing_key_file, api_url_file, credentials_file).
#   CXPULSE_ALERT_WEBHOOK_URL=https://tickets.example/hook deploy/alertmanager/render.sh OUTPUT
# An unset variable keeps the local placeholder. The result is checked with amtool check-config.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: render.sh OUTPUT}"
escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }   # for the replacement side of sed s|||
hook="$(escape "${CXPULSE_ALERT_WEBHOOK_URL:-http://127.0.0.1:9099/alerts}")"
sed -e "s|url: http://127.0.0.1:9099/alerts\$|url: '${hook//\'/\'\'}'|" "$here/alertmanager.yml" >"$out"
amtool check-config "$out" >/dev/null
echo "wrote $out"
