"""Issue 11 on the real broker: agent states through a live worker, worked out by hand, equal to the replay, and
the same after kill -9 and a restart.

Three agents over the last ten minutes (times in seconds before ``base``; ``nr`` = generated_at - base):

* A (team red, billing): available -600, on_contact -500, wrap_up -380, available -350 (still);
* B (team blue, billing + sales): available -590, away (break) -380, on_contact -340, logged_out -200; its
  away event is sent 40 s late (after the on_contact at -340: inside the 60 s allowance);
* C (team red, sales): available -560, away (lunch) -300 (still).

Two events are sent twice, one record is not a valid agent event (state "asleep": to agent-events-dlq).
Hand-worked seconds in the 15m window (it starts before -600): available 100 + (nr + 350) + 210 + 260 =
920 + nr, on_contact 120 + 140 = 260, wrap_up 30, away 40 + (nr + 300) = 340 + nr; team blue: 210, 140, 0, 40
(occupancy 140 / 350 = 0.4). Now: A available in billing, C away (lunch) in sales, B logged out.
Six billing calls (handle 120 s each) give staffing figures, checked equal to the replay's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from test_live_engine import workers  # noqa: F401 - the fixture
from worker_harness import Producer, WorkerProcess, config_path, consume_all, iso, now_us, parse_iso_us, replay

pytestmark = pytest.mark.integration

S = 1_000_000


def _agent(base: int, rel: int, agent: str, state: str, n: int, **extra: Any) -> dict[str, Any]:
    event = {"event_id": f"ag-{agent}-{n}", "type": "agent.state", "ts": iso(base + rel * S), "agent_id": f"agent-{agent}",
             "state": state, "reason": None, "queues": ["billing"], "team": "red"}
    event.update(extra)
    return event


def scenario(base: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(agent events in sending order, contact events)."""
    b_queues = {"queues": ["billing", "sales"], "team": "blue"}
    c_extra = {"queues": ["sales"]}
    agents = [
        _agent(base, -600, "A", "available", 1),
        _agent(base, -590, "B", "available", 1, **b_queues),
        _agent(base, -560, "C", "available", 1, **c_extra),
        _agent(base, -500, "A", "on_contact", 2),
        _agent(base, -500, "A", "on_contact", 2),  # a copy
        _agent(base, -380, "A", "wrap_up", 3),
        _agent(base, -350, "A", "available", 4),
        _agent(base, -340, "B", "on_contact", 3, **b_queues),
        _agent(base, -380, "B", "away", 2, reason="break", **b_queues),  # 40 s late
        _agent(base, -300, "C", "away", 2, reason="lunch", **c_extra),
        _agent(base, -560, "C", "available", 1, **c_extra),  # a copy, late
        _agent(base, -200, "B", "logged_out", 4, queues=[], team="blue"),
    ]
    contacts = []
    for i in range(6):
        t = base - 500 * S + i * 30 * S
        common = {"contact_id": f"call-{i}", "customer_id": f"cu-{i}", "channel": "voice", "queue": "billing"}
        contacts += [
            {"event_id": f"q{i}", "type": "contact.queued", "ts": iso(t), "reason": None, **common},
            {"event_id": f"a{i}", "type": "contact.answered", "ts": iso(t + 5 * S), "agent_id": "agent-A", "team": "red",
             **common},
            {"event_id": f"e{i}", "type": "contact.ended", "ts": iso(t + 125 * S), "agent_id": "agent-A",
             "talk_seconds": 100, "hold_seconds": 0, "wrap_seconds": 20, "resolved": True, **common},
        ]
    return agents, contacts


def check_hand_worked(doc: dict[str, Any], base: int) -> None:
    agents = doc["agents"]
    nr = (parse_iso_us(doc["generated_at"]) - base) / S
    assert agents["live"] == {"logged_in": 2, "available": 1, "on_contact": 0, "wrap_up": 0, "away": 1,
                              "away_by_reason": {"lunch": 1}}
    queues = {q["queue"]: q for q in agents["queues"]}
    assert queues["billing"]["live"]["available"] == 1 and queues["billing"]["live"]["logged_in"] == 1
    assert queues["sales"]["live"] == {"logged_in": 1, "available": 0, "on_contact": 0, "wrap_up": 0, "away": 1,
                                       "away_by_reason": {"lunch": 1}}
    assert queues["billing"]["staffing"]["agents_staffed"] == 1 and queues["sales"]["staffing"]["agents_staffed"] == 0
    assert queues["billing"]["staffing"]["aht_seconds"] == 120.0
    window = agents["windows"]["15m"]
    assert window["available_seconds"] == pytest.approx(920 + nr, abs=1e-6)
    assert window["on_contact_seconds"] == 260.0 and window["wrap_up_seconds"] == 30.0
    assert window["away_seconds"] == pytest.approx(340 + nr, abs=1e-6)
    assert window["occupancy"] == pytest.approx(290 / (920 + nr + 290), rel=1e-12)
    blue = next(t for t in agents["teams"] if t["team"] == "blue")
    assert blue["live"]["logged_in"] == 0
    assert (blue["windows"]["15m"]["available_seconds"], blue["windows"]["15m"]["on_contact_seconds"],
            blue["windows"]["15m"]["away_seconds"], blue["windows"]["15m"]["occupancy"]) == (210.0, 140.0, 40.0, 0.4)
    assert "listed" not in agents  # wallboard.show_agents is off by default


async def live_equals_replay(worker: WorkerProcess, path: Path, attempts: int = 10) -> dict[str, Any]:
    live: dict[str, Any] = {}
    offline: dict[str, Any] = {}
    for _ in range(attempts):
        live = await worker.kpis()
        offline = await asyncio.to_thread(replay, path, live["generated_at"], config_path(worker))
        if live["agents"] == offline["agents"]:
            return live
        await asyncio.sleep(1.0)
    assert live["agents"] == offline["agents"]
    raise AssertionError("unreachable")


async def test_agents_hand_worked_live_equals_replay_and_survive_kill_9(workers, kafka_bootstrap: str,  # noqa: F811
                                                                         tmp_path: Path) -> None:
    base = (now_us() // S) * S
    agents, contacts = scenario(base)
    worker = await workers(name="agents", store="rocksdb://")
    async with Producer(kafka_bootstrap, worker.topics) as producer:
        await producer.send(contacts)
        for event in agents:  # one at a time, in this order (key agent_id: one partition per agent)
            await producer.send([event], topic=worker.topics.agent_events, key=event["agent_id"].encode())
        await producer.send([b'{"event_id":"x","type":"agent.state","ts":"2026-01-01T00:00:00Z","agent_id":"agent-Z",'
                             b'"state":"asleep"}'], topic=worker.topics.agent_events, key=b"agent-Z")
    sent = len(agents) + len(contacts) + 1
    status = await worker.wait_processed(sent)
    health = status["topics"][worker.topics.agent_events]
    assert (health["processed"], health["duplicates"], health["invalid"]) == (10, 2, {"invalid_value": 1}), health

    path = tmp_path / "agents.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in contacts + agents) + b"\n")
    doc = await live_equals_replay(worker, path)
    check_hand_worked(doc, base)

    dead = await consume_all(kafka_bootstrap, [worker.topics.agent_events_dlq])
    assert len(dead) == 1 and b"asleep" in dead[0].value

    # kill -9 and restart on the same data dir: the same figures, nothing counted twice
    worker.kill()
    worker.start()
    await worker.wait_ready()
    doc = await live_equals_replay(worker, path)
    check_hand_worked(doc, base)
    # privacy: no agent id in the worker's log (INFO), nor in the document without wallboard.show_agents
    assert b"agent-A" not in worker.log_path.read_bytes() and b"agent-B" not in worker.log_path.read_bytes()
    assert b"agent-" not in orjson.dumps(doc)
