"""Copy the rule files and the Grafana dashboards into the Helm chart (``deploy/helm/cxpulse/files/``).

    .venv/bin/python deploy/helm/sync_files.py            # after changing deploy/prometheus/rules or grafana/
    .venv/bin/python deploy/helm/sync_files.py --check    # exit 1 when the chart's copies are stale

Why copies: Helm reads files only from inside the chart (``.Files``), and a symbolic link out of it is not
packaged the same way by every Helm version. One source stays the truth (``deploy/prometheus/rules/*.yml``,
written by ``generate_recording_rules.py``, and ``grafana/dashboards/*.json``, written by ``grafana/build.py``);
the unit tests fail while a copy differs, so the PrometheusRule and the dashboards' ConfigMaps cannot drift.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "cxpulse"
SOURCES = {  # folder in the chart -> (source folder, pattern)
    "files/rules": (ROOT / "deploy" / "prometheus" / "rules", "*.yml"),
    "files/dashboards": (ROOT / "grafana" / "dashboards", "*.json"),
}


def wanted() -> dict[Path, bytes]:
    """Chart path -> the bytes it must hold."""
    out: dict[Path, bytes] = {}
    for into, (source, pattern) in SOURCES.items():
        for path in sorted(source.glob(pattern)):
            out[CHART / into / path.name] = path.read_bytes()
    return out


def stale() -> list[str]:
    """Chart files that differ from their source, are missing, or have no source any more."""
    files = wanted()
    problems = [str(p.relative_to(ROOT)) for p, data in files.items() if not p.is_file() or p.read_bytes() != data]
    for into, (_, pattern) in SOURCES.items():
        problems += [str(p.relative_to(ROOT)) for p in sorted((CHART / into).glob(pattern)) if p not in files]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Copy rules and dashboards into the cxpulse Helm chart.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the chart's copies are stale")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale()
        for name in problems:
            print(f"{name} is stale: run deploy/helm/sync_files.py", file=sys.stderr)
        return 1 if problems else 0
    for into, (_, pattern) in SOURCES.items():
        (CHART / into).mkdir(parents=True, exist_ok=True)
        for path in (CHART / into).glob(pattern):
            path.unlink()
    for path, data in wanted().items():
        path.write_bytes(data)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
