"""Rules of kpis.md / events.md that the mutation run (issue 16, session 3) found without a test, in the core's
modules outside the hot path (contact, customer, live, partials, report, windows).

Each test names the rule and its section of shared/spec/kpis.md, computes the expected figures by hand (the
arithmetic is in the comments) and says which mutant of ``bench/mutants.py`` it kills (docs/mutation.md).
Defaults: voice T = 20 s, S = 5 s, buckets of 60 s; allowed disorder 60 s unless said otherwise.
"""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from cxpulse.core import engine as engine_module
from cxpulse.core.contact import (
    ABANDONED, ANSWERED, ENDED, KIND, QUEUED, RANK, RANK_OF, SURVEY, ContactState, Summary, record_of,
)
from cxpulse.core.customer import CustomerState
from cxpulse.core.live import LiveKpis
from cxpulse.models.agent_events import parse_agent_event
from cxpulse.models.events import parse_any_event, to_us
from cxpulse.settings import KpiSettings
from test_kpi_edges import DAY, S, all_of, ev, row, run

H = timedelta(hours=1)


# -- contact.py ------------------------------------------------------------------------------------------------
def test_a_second_queued_while_waiting_is_refused_also_after_a_recompute() -> None:
    """events.md: a contact has at most one open queue visit; a ``contact.queued`` while it waits is refused.

    c1 queued q1 at 10:00:05 (in order: one step). A survey of c1 at 10:00:00 sorts before q1, so the contact is
    recomputed from all its events and takes its position from the walk (``ContactState.sync``): still waiting
    in q1. q2 at 10:00:10 sorts after everything and must not open a second visit: offered stays 1 (q1 only),
    1 waiting, and at the end of the replay q2 is rejected as a lifecycle error.

    Kills ``ContactState.sync`` ``waiting[0] -> waiting[1]`` (the position would read the open visit's outcome,
    None, as "not waiting", and q2 would be taken in order as a new visit: offered 2)."""
    events = [
        ev("queued", "q1", DAY + 5 * S),
        ev("survey", "s1", DAY, nps=10),
        ev("queued", "q2", DAY + 10 * S),
    ]
    engine, doc = run(events, now=DAY + 15 * S)
    assert all_of(doc)["offered"] == 1  # q1 only
    assert row(doc)["live"] == {"waiting": 1, "longest_wait_seconds": 10.0, "awaiting_follow_up": 0, "oldest_awaiting_seconds": 0.0}  # q1 waiting 10:00:05 -> 10:00:15
    assert dict(engine.health.invalid) == {"lifecycle": 1}  # q2
    assert all_of(doc, "unknown", "unknown")["promoters"] == 1  # s1 is before any queued (kpis.md "Surveys")


def test_a_refused_event_stays_a_duplicate_after_a_restore() -> None:
    """kpis.md "Duplicates": a copy of an event counts once, and a refused event sent again is a copy too, also
    after the worker restored the contact from its stored form.

    c1: queued q1, then ended e1 with no answer: e1 is refused (events.md: no contact.answered in service) when
    the replay ends. The stored row, read back by a worker (``ContactState.from_dict`` -> ``from_row``), must
    still know e1: sending e1 again is a duplicate (handle returns False, duplicates 1, processed 0).

    Kills ``ContactState.from_row`` ``row[1] -> row[0]`` for the refused ids (they would be read from the
    records column: e1 forgotten)."""
    engine, _ = run([ev("queued", "q1", DAY), ev("ended", "e1", DAY + S)])
    state = engine.contacts.contacts["c1"]
    assert state.rejected == ["e1"]
    live = LiveKpis(KpiSettings(fcr_window="1h"), clock=lambda: 0)
    live.rebuild_contacts([("c1", 0, ContactState.from_dict(orjson.loads(orjson.dumps(state.to_dict()))))], {0})
    again = ev("ended", "e1", DAY + S)
    assert live.handle("contact-events", 0, parse_any_event(again), orjson.dumps(again), 7) is False
    health = live.topic_health("contact-events")
    assert (health.processed, health.duplicates) == (0, 1)


def test_late_outcome_first_wait_exactly_t_is_no_breach() -> None:
    """kpis.md "Per queue visit": a breach is a wait that *exceeds* T (20 s for voice). Here the answer arrives
    before its queued event, so the visit's facts come from the full walk (``contact_facts``), not from the
    in-order step: queued 10:00:00, answered 10:00:20 (wait exactly T): answered within T 1, breaches 0, SL 1.0.

    Kills ``contact_facts`` ``wait > T -> >=`` (the walk would count a breach at 10:00:20)."""
    _, doc = run([ev("answered", "a1", DAY + 20 * S), ev("queued", "q1", DAY)])
    w = all_of(doc)
    assert (w["answered"], w["answered_within_threshold"], w["sla_breaches"], w["service_level"]) == (1, 1, 0, 1.0)


def test_late_outcome_first_breach_is_at_queued_plus_t() -> None:
    """kpis.md "Per queue visit": the breach is attributed at queued ``ts`` + T, also when the visit's facts come
    from the full walk (the abandon arrives before its queued event). Queued 00:00:10 on 5 May (UTC), abandoned
    00:00:40 (wait 30 s > T = 20 s): the breach is at 00:00:30, inside ``today`` = [00:00:00, now): 1 breach
    there, as in ``all``.

    Kills ``contact_facts`` ``queued + T -> queued - T`` (the breach would be at 23:59:50 the day before, outside
    ``today``)."""
    midnight = DAY.replace(day=5, hour=0)
    _, doc = run([ev("abandoned", "x1", midnight + 40 * S), ev("queued", "q1", midnight + 10 * S)],
                 now=midnight + 60 * S)
    windows = row(doc)["windows"]
    assert windows["today"]["start"] == "2026-05-05T00:00:00.000Z"
    assert (windows["today"]["abandoned"], windows["today"]["sla_breaches"]) == (1, 1)
    assert windows["all"]["sla_breaches"] == 1


def test_records_decoded_from_the_legacy_form_sort_like_new_ones() -> None:
    """A contact's records sort by (ts, rank): a visit opens before it closes, an end after its answer, a survey
    last (kpis.md "Per queue visit": a transfer's new visit and the old end share a ts). The legacy decoder
    (cxpulse.streams.codec) rebuilds records with ``RANK_OF``; ``record_of`` writes the ranks itself. Both must
    give each kind the same rank: queued 0, answered 1, abandoned 1, ended 2, survey 3.

    Kills each ``RANK_OF`` value mutant (0 -> 1, 1 -> 0, 1 -> 0, 2 -> 1, 3 -> 2)."""
    events = [ev("queued", "q", DAY), ev("answered", "a", DAY), ev("abandoned", "x", DAY), ev("ended", "e", DAY),
              ev("survey", "s", DAY, nps=9),
              {"event_id": "f", "type": "survey.followed_up", "ts": "2026-05-04T10:00:00Z", "contact_id": "c1",
               "customer_id": "u1", "survey_event_id": "s"}]  # contract v2: a follow-up after its survey
    ranks = {rec[KIND]: rec[RANK] for rec in (record_of(parse_any_event(e)) for e in events)}
    assert ranks == RANK_OF == {QUEUED: 0, ANSWERED: 1, ABANDONED: 1, ENDED: 2, SURVEY: 3, "f": 4}


# -- customer.py -----------------------------------------------------------------------------------------------
F = 100  # an FCR window of 100 µs keeps the arithmetic small; the rule does not depend on the unit


def customer(**t0s: int) -> CustomerState:
    """Customer u1 with one contact per keyword: contact id -> first queued time t0 (reason null: any matches)."""
    state = CustomerState()
    for contact_id, t0 in t0s.items():
        state.contacts[contact_id] = Summary(contact_id, "u1", t0, None, "billing", "voice", None)
    return state


def kept_after_forgetting(limit: int, **t0s: int) -> set[str]:
    state = customer(**t0s)
    state.forget_before(limit, F)
    return set(state.contacts)


def test_forgetting_keeps_every_contact_a_remaining_one_looks_back_to() -> None:
    """kpis.md "First contact resolution": Y is a repeat when another contact has its t0 in [t0y - F, t0y). So a
    contact X older than the limit may go only when no remaining contact starts within F after it, or the next
    derivation of Y's facts would turn a counted repeat into a first contact. F = 100, limit = 1000:

    - alone, t0 1000 is not before the limit: kept; t0 999 is: gone;
    - X 950 with Y 1020: 1020 - 950 = 70 <= F, Y looks back to X: both kept;
    - X 900 with Y 1000: 1000 - 900 = 100 = F, still inside [t0y - F, t0y): both kept;
    - X 899 with Y 1000: 101 > F: X gone;
    - a chain 800, 880, 960 under Y 1040 (gaps of 80): all kept; 700 and 650 with nothing after them: both gone
      (650 is within F of 700, but 700 is gone itself).

    Kills ``CustomerState.forget_before`` sorting oldest first (``reverse=True -> False``: X would be judged
    before Y is kept), ``t0 < limit -> <=``, ``nearest - t0 > F -> >=`` and ``-> nearest + t0``, and its
    ``continue`` removed (a dropped contact would keep the ones within F before it)."""
    assert kept_after_forgetting(1000, y=1000) == {"y"}
    assert kept_after_forgetting(1000, x=999) == set()
    assert kept_after_forgetting(1000, x=950, y=1020) == {"x", "y"}
    assert kept_after_forgetting(1000, x=900, y=1000) == {"x", "y"}
    assert kept_after_forgetting(1000, x=899, y=1000) == {"y"}
    assert kept_after_forgetting(1000, a=800, b=880, c=960, y=1040) == {"a", "b", "c", "y"}
    assert kept_after_forgetting(1000, a=700, b=650) == set()


def test_a_packed_customer_is_forgotten_only_when_its_newest_contact_is_old(monkeypatch: pytest.MonkeyPatch) -> None:
    """kpis.md "First contact resolution" needs a customer's contacts within 2F; ``CustomerProcessor.forget``
    drops those whose t0 is before now - 2F - allowance. A customer packed out of memory is judged by the t0
    of its *newest* contact (``CustomerState.newest_t0``, the packed prefix), so a customer with one recent
    contact is never dropped whole.

    F = 1 h, allowance 60 s; u1 has c1 at 10:00 and c2 at 12:00, packed. At now = 13:01 the limit is
    13:01 - 2 h - 60 s = 11:00: c1 is older, c2 is not, so u1 stays (with both contacts). At now = 15:01 the
    limit is 13:00, past c2 too: u1 goes.

    Kills ``CustomerState.newest_t0`` ``max -> min`` (u1 would be judged by c1 and dropped at 13:01)."""
    monkeypatch.setattr(engine_module, "RECENT_CUSTOMERS", 0)  # the replay's evict() packs every saved customer
    kpi = KpiSettings(fcr_window="1h", allowed_disorder="60s")
    engine, _ = run([ev("queued", "c1q", DAY, "c1"), ev("queued", "c2q", DAY + 2 * H, "c2")], kpi)
    proc = engine.customers
    proc.dirty.clear()  # saved
    assert proc.evict() == 1 and set(proc.packed) == {"u1"}
    assert proc.forget(to_us(DAY + 3 * H + 60 * S)) == []
    assert set(proc.get("u1").contacts) == {"c1", "c2"}  # type: ignore[union-attr]
    proc.dirty.clear()
    assert proc.evict() == 1
    assert proc.forget(to_us(DAY + 5 * H + 60 * S)) == ["u1"]


def test_a_first_contact_resolved_at_the_epoch_is_confirmed() -> None:
    """kpis.md "First contact resolution": a first contact resolved at its final end is confirmed when no
    matching contact of the customer starts within (t0, t0 + F]; events.md allows ``ts`` from the epoch.
    Customer u1: c1 (reason billing) queued, answered and ended resolved at 1970-01-01T00:00:00Z, c2 (reason
    tech: no match) queued 10 s later. F = 1 h: c1 is closed at max(t0 + F, end) = 01:00:00 and confirmed;
    c2 has not ended (no first-contact fact). At 02:00: first 1, resolved 1, closed 1, confirmed 1.

    Kills ``customer_facts`` reading the end time instead of ``resolved`` for a customer with several
    contacts (``final[1] -> final[0]``: an end at ts 0 would read as "not resolved")."""
    epoch = DAY.replace(year=1970, month=1, day=1, hour=0)
    events = [ev("queued", "q1", epoch, "c1", reason="billing"), ev("answered", "a1", epoch, "c1"),
              ev("ended", "e1", epoch, "c1", resolved=True), ev("queued", "q2", epoch + 10 * S, "c2", reason="tech")]
    _, doc = run(events, now=epoch + 2 * H)
    w = doc["totals"]["windows"]["all"]
    assert (w["first_contacts"], w["first_contacts_resolved"]) == (1, 1)
    assert (w["first_contacts_closed"], w["first_contacts_confirmed"]) == (1, 1)


# -- live.py: the agent side (contract v2) ------------------------------------------------------------------------
def agent_event(eid: str, ts: str, agent: str, state: str, **extra: object) -> dict[str, object]:
    event: dict[str, object] = {"event_id": eid, "type": "agent.state", "ts": ts, "agent_id": agent, "state": state,
                                "queues": ["billing"], "team": "red", "reason": None, "agent_name": None}
    event.update(extra)
    return event


def test_live_agents_count_per_topic_and_stay_unlisted_unless_asked() -> None:
    """kpis.md "Agents (v2)" and "Duplicates" (one agent's events with the same id count once), live, over two
    partitions at now = 09:05: A available since 09:00 (partition 0, sent twice), B on a contact since 08:59
    (partition 1). Expected: processed 2, duplicates 1 on agent-events; the newest event time 09:00; logged in 2;
    in ``15m`` = [08:50, 09:05) available 300 s (09:00 -> 09:05) and on contact 360 s (08:59 -> 09:05), occupancy
    360 / (300 + 360) = 6/11. Agents' names are listed only when the wallboard asks (wallboard.show_agents,
    off by default): no ``listed`` entry. Before any agent event there are no agent figures at all.

    Kills ``LiveKpis.agents`` creating no processor (``is None -> is not``), ``handle_agent``'s processed and
    duplicates counts (``-= 1``, ``+= 0``), ``agent_figures`` ``first_ts is not None -> is`` (figures dropped
    once an agent was seen) and ``agent_listing = False -> True`` (names in the document by default)."""
    now = to_us(DAY.replace(hour=9, minute=5))
    live = LiveKpis(KpiSettings(), clock=lambda: now)
    assert live.agent_figures(now) is None and "agents" not in live.document(now)
    a1 = agent_event("a1", "2026-05-04T09:00:00Z", "A", "available", agent_name="Ann")
    b1 = agent_event("b1", "2026-05-04T08:59:00Z", "B", "on_contact")
    assert live.handle_agent("agent-events", 0, parse_agent_event(a1), 0) is True
    assert live.handle_agent("agent-events", 0, parse_agent_event(a1), 1) is False  # a copy
    assert live.handle_agent("agent-events", 1, parse_agent_event(b1), 2) is True
    health = live.topic_health("agent-events")
    assert (health.processed, health.duplicates) == (2, 1)
    assert live.last_event_ts_us == to_us(DAY.replace(hour=9))  # 09:00, not B's earlier 08:59
    agents = live.document(now)["agents"]
    assert agents["live"]["logged_in"] == 2 and "listed" not in agents
    w = agents["windows"]["15m"]
    assert (w["available_seconds"], w["on_contact_seconds"], w["occupancy"]) == (300.0, 360.0, 360 / 660)


def test_a_rebuild_keeps_the_agents_of_the_assigned_partitions_only() -> None:
    """After a rebalance a worker rebuilds the agent side from the table, for its partitions only (kpis.md
    "Agents (v2)": each agent once). Stored: A on partition 0, B on partition 1; assigned {0}: 1 agent restored
    (A), processors for partition 0 only, and B nowhere.

    Kills ``rebuild_agents`` counting from 1, by ``-= 1`` or ``+= 0``, and ``partition in assigned -> not in``."""
    now = to_us(DAY.replace(hour=9, minute=5))
    source = LiveKpis(KpiSettings(), clock=lambda: now)
    source.handle_agent("agent-events", 0, parse_agent_event(agent_event("a1", "2026-05-04T09:00:00Z", "A", "available")), 0)
    source.handle_agent("agent-events", 1, parse_agent_event(agent_event("b1", "2026-05-04T08:59:00Z", "B", "away")), 1)
    stored = [("A", 0, source.agent_parts[0].agents["A"]), ("B", 1, source.agent_parts[1].agents["B"])]
    rebuilt = LiveKpis(KpiSettings(), clock=lambda: now)
    assert rebuilt.rebuild_agents(stored, {0}) == 1
    assert set(rebuilt.agent_parts) == {0} and set(rebuilt.agent_parts[0].agents) == {"A"}
