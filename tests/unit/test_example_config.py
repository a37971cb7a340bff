"""The shipped example settings describe the simulator's default centre, and load."""

from __future__ import annotations

from pathlib import Path

from cxpulse.settings import load_settings
from cxpulse.simulator.centre import load_centre

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "cxpulse.example.yaml"


def test_example_settings_load_and_cover_every_simulated_queue() -> None:
    settings = load_settings(EXAMPLE)
    centre = load_centre()
    simulated = set(centre.queues)
    assert set(settings.kpi.queues) == simulated
    assert settings.kpi.timezone == centre.timezone
    for name, queue in centre.queues.items():
        effective = settings.kpi.for_queue(name, queue.channel)
        assert effective.sl_threshold_seconds > 0
        # voice queues keep the 5 s short-abandon default of kpis.md, the others 0
        assert effective.short_abandon_seconds == (5 if queue.channel == "voice" else 0)
    assert {q.channel for q in centre.queues.values()} == {"voice", "chat", "email", "sms", "social"}
