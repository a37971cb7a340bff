"""Runbook links on a base of your choosing: ``deploy/prometheus/render_rules.py`` writes the rule files with
every alert's ``runbook_url`` on that base, and promtool (Debian ``prometheus``, installed by the Makefile)
accepts the result."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "prometheus" / "render_rules.py"
WIKI = "https://wiki.internal.test/ops/cxpulse-runbooks"


def _module():
    spec = importlib.util.spec_from_file_location("cxpulse_render_rules", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


render_rules = _module()


def _runbook_urls(alerts_text: str) -> dict[str, str]:
    doc = yaml.safe_load(alerts_text)
    return {r["alert"]: r["annotations"]["runbook_url"] for g in doc["groups"] for r in g["rules"] if "alert" in r}


def test_checked_in_rules_use_the_default_base() -> None:
    urls = _runbook_urls((ROOT / "deploy/prometheus/rules/alerts.yml").read_text(encoding="utf-8"))
    assert {url.partition("#")[0] for url in urls.values()} == {render_rules.DEFAULT_RUNBOOK_BASE}


def test_rendered_rules_point_at_the_given_base_and_pass_promtool(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--runbook-base", WIKI + "/"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts.yml", "recording.yml"]
    urls = _runbook_urls((tmp_path / "alerts.yml").read_text(encoding="utf-8"))
    assert len(urls) >= 15
    for alert, url in urls.items():
        assert url == f"{WIKI}#{alert.lower()}", alert
    assert (tmp_path / "recording.yml").read_bytes() == (ROOT / "deploy/prometheus/rules/recording.yml").read_bytes()
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: install the Debian 'prometheus' package (the Makefile does)"
    check = subprocess.run([promtool, "check", "rules", str(tmp_path / "alerts.yml")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_environment_variable_sets_the_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(render_rules.ENV, WIKI)
    assert render_rules.main([str(tmp_path)]) == 0
    urls = _runbook_urls((tmp_path / "alerts.yml").read_text(encoding="utf-8"))
    assert urls["CxTargetDown"] == f"{WIKI}#cxtargetdown"


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ("wiki/runbooks", "error: runbook base 'wiki/runbooks' is not an absolute http(s) URL"),
        (f"{WIKI}#top", f"error: runbook base '{WIKI}#top' has a '#': the alert name is appended as the fragment"),
    ],
)
def test_a_bad_base_is_refused_in_one_line(tmp_path: Path, base: str, message: str) -> None:
    run = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "out"), "--runbook-base", base],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr == message + "\n"
    assert not (tmp_path / "out").exists()
