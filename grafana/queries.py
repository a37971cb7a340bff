"""Every PromQL expression of the checked-in dashboards, for tests that run them against a real Prometheus.

No dependency beyond the standard library, and no package: load it by path, e.g.

    sys.path.insert(0, str(ROOT / "grafana")); import queries
    for dashboard, panel, expr in queries.all_panel_queries():
        promql = queries.substitute(expr)            # $queue -> .*, $__rate_interval -> 1m, ...
        promql = queries.substitute(expr, queue="billing", channel="voice")

It reads ``grafana/dashboards/*.json`` (what Grafana gets), not the builder, so it sees exactly what is
deployed; ``tests/unit/test_grafana_dashboards.py`` makes sure that JSON is what ``build.py`` writes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"

# Values for the dashboard and Grafana variables that keep every expression valid PromQL.
# $queue / $channel are multi-value "All" variables whose all-value is ".*" (they are only used in =~).
DEFAULTS = {
    "queue": ".*",
    "channel": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def _panels(panels: list[dict]) -> list[dict]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(_panels(panel.get("panels") or []))  # collapsed rows hold their panels
    return out


def dashboards() -> dict[str, dict]:
    """File stem (wallboard, supervisor, pipeline) -> dashboard JSON."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


def all_panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL expr with Grafana variables unsubstituted) for every target."""
    rows = []
    for name, dash in dashboards().items():
        for panel in _panels(dash.get("panels") or []):
            if panel.get("type") == "row":
                continue
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    rows.append((name, panel.get("title", ""), target["expr"]))
    return rows


def substitute(expr: str, **values: str) -> str:
    """Replace ``$name`` and ``${name}`` by ``values`` or :data:`DEFAULTS`; unknown variables raise KeyError."""
    merged = {**DEFAULTS, **values}

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in merged:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return merged[name]

    return _VARIABLE.sub(repl, expr)
