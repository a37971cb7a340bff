"""Write the rule files of ``deploy/prometheus/rules/`` with the runbook links pointing where your runbooks are.

    .venv/bin/python deploy/prometheus/render_rules.py OUT_DIR [--runbook-base URL]
    CXPULSE_RUNBOOK_BASE_URL=https://wiki.internal/cxpulse/runbooks deploy/prometheus/render_rules.py OUT_DIR

Every alert's ``runbook_url`` is ``<base>#<alert name in lower case>``; the checked-in rules carry
:data:`DEFAULT_RUNBOOK_BASE`, the project's own ``docs/runbooks.md``. A team that keeps its runbooks in a wiki
or in a fork renders a copy with its own base and points Prometheus at that copy (the Helm chart does the
same with its value ``prometheusRule.runbookBaseUrl``). The anchors stay the alert names, so a copy of
``docs/runbooks.md`` anywhere keeps working.

Why a renderer and not Prometheus templating: an annotation can only read the alert's labels and value and
the external labels; an external label would be attached to every alert sent to Alertmanager. The output is
checked with ``promtool check rules`` when promtool is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
RULES = HERE / "rules"
DEFAULT_RUNBOOK_BASE = "https://github.com/cxpulse/cxpulse/blob/main/docs/runbooks.md"
ENV = "CXPULSE_RUNBOOK_BASE_URL"


class BaseUrlError(ValueError):
    """The runbook base is not an absolute http(s) URL without a fragment (the message names it)."""


def check_base(base: str) -> str:
    """``base`` without a trailing slash, or :class:`BaseUrlError`."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BaseUrlError(f"runbook base {base!r} is not an absolute http(s) URL")
    if parts.fragment or "#" in base:
        raise BaseUrlError(f"runbook base {base!r} has a '#': the alert name is appended as the fragment")
    if any(c in base for c in " \"'\n"):
        raise BaseUrlError(f"runbook base {base!r} contains a space or a quote")
    return base.rstrip("/")


def render(base: str = DEFAULT_RUNBOOK_BASE) -> dict[str, str]:
    """File name -> text of every rule file, the alerts' runbook links on ``base``."""
    base = check_base(base)
    out = {}
    for path in sorted(RULES.glob("*.yml")):
        text = path.read_text(encoding="utf-8")
        out[path.name] = text.replace(f"{DEFAULT_RUNBOOK_BASE}#", f"{base}#")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the cxpulse rule files with your runbook base URL.")
    parser.add_argument("out", type=Path, help="folder to write recording.yml and alerts.yml into")
    parser.add_argument("--runbook-base", default=os.environ.get(ENV) or DEFAULT_RUNBOOK_BASE,
                        help=f"URL of the runbooks page, without '#' (default ${ENV} or {DEFAULT_RUNBOOK_BASE})")
    args = parser.parse_args(argv)
    try:
        files = render(args.runbook_base)
    except BaseUrlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text, encoding="utf-8")
    promtool = shutil.which("promtool")
    if promtool:
        check = subprocess.run([promtool, "check", "rules", *(str(args.out / n) for n in files)],
                               capture_output=True, text=True)
        if check.returncode != 0:
            print(f"error: promtool rejects the rendered rules:\n{check.stdout}{check.stderr}", file=sys.stderr)
            return 1
    print(f"wrote {', '.join(files)} into {args.out} (runbooks at {check_base(args.runbook_base)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
