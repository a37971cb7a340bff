"""Centre files are validated with errors that name the key and the bad value; load mode scales sensibly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cxpulse.simulator.centre import DEFAULT_CENTRE, CentreError, load_centre, parse_centre
from cxpulse.simulator.distributions import mean_of
from cxpulse.simulator.engine import Simulation
from cxpulse.simulator.erlang import agents_for_service_level
from cxpulse.simulator.load import events_per_simulated_second, scale_for_rate


def _default() -> dict:
    return yaml.safe_load(DEFAULT_CENTRE.read_text(encoding="utf-8"))


def test_default_centre_has_the_promised_queues() -> None:
    centre = load_centre()
    assert len(centre.queues) >= 6
    assert {q.channel for q in centre.queues.values()} == {"voice", "chat", "email", "sms", "social"}


def test_default_centre_is_staffed_near_erlang_c_at_the_peak() -> None:
    """Within a few agents of the 80% staffing: busy enough to breach sometimes, never hopeless."""
    thresholds = {"voice": 20, "chat": 30, "sms": 120, "social": 3600, "email": 14400}
    for name, queue in load_centre().queues.items():
        aht = mean_of(queue.talk) + mean_of(queue.wrap) + queue.hold_probability * mean_of(queue.hold)
        need = agents_for_service_level(queue.arrivals_per_hour / 3600, 1 / aht, thresholds[queue.channel])
        assert need - 4 <= queue.agents <= need + 4, (name, queue.agents, need)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("queues", "billing", "agents"), 0, "queues.billing.agents = 0"),
        (("queues", "billing", "channel"), "fax", "queues.billing.channel = 'fax'"),
        (("queues", "billing", "talk"), {"dist": "weibull", "mean": 3}, "queues.billing.talk"),
        (("queues", "sales", "talk", "mean"), -5, "queues.sales.talk.lognormal.mean = -5"),
        (("queues", "billing", "resolve_probability"), 1.5, "queues.billing.resolve_probability = 1.5"),
        (("queues", "billing", "agnets"), 3, "queues.billing.agnets = 3: Extra inputs are not permitted"),
        (("timezone",), "Mars/Olympus", "unknown IANA timezone 'Mars/Olympus'"),
        (("hour_profile",), [1.0] * 23, "hour_profile"),
        (("queues", "billing", "transfer", "to"), {"nowhere": 1}, "unknown queue 'nowhere'"),
        (("queues", "billing", "transfer", "to"), {"billing": 1}, "cannot transfer to itself"),
        (("answer_delay",), {"dist": "lognormal", "mean": 7}, "answer_delay.lognormal.sd"),
        (("queues", "sales", "answer_delay"), {"dist": "fixed", "value": -1}, "queues.sales.answer_delay.fixed.value = -1"),
        (("queues", "sales", "sl_target"), 1.5, "queues.sales.sl_target = 1.5"),
        (("queues", "sales", "sl_threshold_seconds"), 0, "queues.sales.sl_threshold_seconds = 0"),
        (("demo", "shortfall"), 1, "demo.shortfall = 1"),
        (("demo", "staffing_interval_seconds"), 5, "demo.staffing_interval_seconds = 5"),
        (("demo", "busy_shares"), 0.5, "demo.busy_shares = 0.5: Extra inputs are not permitted"),
    ],
)
def test_errors_name_key_and_value(path: tuple[str, ...], value: object, expected: str) -> None:
    data = _default()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(CentreError) as caught:
        parse_centre(data, "test.yaml")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("invalid centre (test.yaml):")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(CentreError, match="does not exist"):
        load_centre(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("queues: [unclosed", encoding="utf-8")
    with pytest.raises(CentreError, match="not valid YAML"):
        load_centre(bad)
    bad.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(CentreError, match="must be a mapping"):
        load_centre(bad)


def test_load_mode_scale_reaches_about_the_asked_rate() -> None:
    centre = load_centre()
    speed, target = 60.0, 4_000.0
    scale = scale_for_rate(centre, target, speed, seed=1)
    assert scale == pytest.approx(target / (speed * events_per_simulated_second(centre, 1)))
    start = 1_767_225_600_000
    sim = Simulation(centre, start_ms=start, seed=2, arrival_scale=scale, agent_scale=scale, flat_profile=True)
    warm, span = 15 * 60_000, 30 * 60_000  # skip the empty-centre ramp, then count 30 simulated minutes
    count = sum(1 for r in sim.events(start + warm + span) if r.at_ms >= start + warm)
    per_wall_second = count / (span / 1000 / speed)
    assert per_wall_second == pytest.approx(target, rel=0.1)
    with pytest.raises(ValueError, match="pace"):
        scale_for_rate(centre, target, 0.0)
