"""Rules of cxpulse/core/contact.py, customer.py and definitions.py left open by the mutation run after contract v2.

Issue 16 ("Every rule pinned"): ``bench/mutants.py --only cxpulse/core/contact.py --only cxpulse/core/customer.py
--only cxpulse/core/definitions.py`` at ed5994d left two mutants of ``definitions.Amount.evaluate`` alive (its
branch on ``scale < 1``, which only one scale ever reached). The branch was replaced by one rounding; the tests
here pin what the amount (kpis.md "Resolution and cost (v2)": cost) must be, so that the simpler form cannot
drift: the millionths of the currency unit divided by exactly one million, rounded once, and null when no
handled contact lies in a queue with cost configured.

They also back an equivalence argument of ``docs/mutation-equivalent.txt``: ``ContactState.fits`` only
chooses between the one-step road and the full recompute for an in-order survey or follow-up; a follow-up
taken by each road gives the same document and publishes the same feedback breach, once.

Every figure is worked out by hand in the docstring or comment next to it; voice defaults T = 20 s, S = 5 s,
and ``ev`` ends a contact after talk 60 s + wrap 10 s.
"""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction
from typing import Any

import pytest

from cxpulse.core import definitions as d
from cxpulse.core.engine import KpiEngine
from cxpulse.core.measures import M, N_MEASURES
from cxpulse.models.events import to_us
from cxpulse.settings import KpiSettings
from test_kpi_edges import DAY, ev, iso, row, run

S = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


def counts(**values: int) -> list[int]:
    out = [0] * N_MEASURES
    for name, value in values.items():
        out[M[name]] = value
    return out


COST = next(f for f in d.FIELDS if isinstance(f, d.Amount) and f.name == "cost")


# -- definitions.Amount (cost) -------------------------------------------------------------------------------------
def test_cost_is_the_table_amount_of_millionths() -> None:
    """The document's ``cost`` is the sum of ``cost_micros`` scaled by one millionth, present when ``costed``."""
    assert (COST.value, COST.scale, COST.present) == (d.Sum.of("cost_micros"), Fraction(1, 1_000_000),
                                                      d.Sum.of("costed"))


@pytest.mark.parametrize(("micros", "costed", "expected"), [
    # 5 millionths is 0.000005: the double nearest to it is the literal 5e-06 (5 * 1e-06, a product of two
    # roundings, is the double below it, 4.9999999999999996e-06)
    (5, 1, 5e-06),
    # 12 345 678 901 234 567 millionths = 12 345 678 901.234567, rounded once to the nearest double
    (12_345_678_901_234_567, 7, 12_345_678_901.234567),
    # costed contacts that cost nothing (no handle time, cost per hour only): 0, not null
    (0, 2, 0.0),
    # 2.5 exactly: 2 500 000 millionths
    (2_500_000, 2, 2.5),
])
def test_cost_is_the_millionths_divided_by_one_million_rounded_once(micros: int, costed: int, expected: float) -> None:
    assert COST.evaluate(counts(cost_micros=micros, costed=costed)) == expected


def test_cost_is_null_when_no_handled_contact_is_costed() -> None:
    """kpis.md: cost is null where it is not configured; ``costed`` 0 means no handled contact of the window lies
    in a configured queue, whatever else is counted (here 3 handled contacts and a stray sum)."""
    assert COST.evaluate(counts(handled=3, cost_micros=0, costed=0)) is None
    assert COST.evaluate(counts(cost_micros=5, costed=0)) is None
    assert COST.evaluate(counts(cost_micros=5, costed=1)) == 5e-06  # one costed contact is enough


def test_a_cost_of_five_millionths_per_contact_reads_back_exactly() -> None:
    """cost_per_contact 0.000005 (5 millionths), no cost per hour: one handled contact costs 5 millionths.
    Document: cost = 5 / 1 000 000 = 5e-06 (the double nearest 0.000005; 5 * 1e-06 would be the double below
    it), cost_per_contact = 5 millionths / 1 costed contact / 1 000 000 = 5e-06, costed_contacts = 1."""
    kpi = KpiSettings(channels={"voice": {"cost_per_contact": 0.000005}})
    events = [ev("queued", "q1", DAY), ev("answered", "a1", DAY + 10 * S), ev("ended", "e1", DAY + 5 * MINUTE)]
    _, doc = run(events, kpi)
    w = row(doc)["windows"]["all"]
    assert (w["handled"], w["costed_contacts"], w["cost"], w["cost_per_contact"]) == (1, 1, 5e-06, 5e-06)


# -- ContactState.fits: the road of an in-order follow-up changes no figure ---------------------------------------
def follow_up(eid: str, at: Any, survey_id: str) -> dict[str, Any]:
    return {"event_id": eid, "type": "survey.followed_up", "ts": iso(at), "contact_id": "c1", "customer_id": "u1",
            "survey_event_id": survey_id, "agent_id": "sup-1"}


def test_a_late_follow_up_counts_and_is_published_once_by_either_road() -> None:
    """Target 1 h. Queued 10:00, detractor survey s1 (nps 1) at 10:01, follow-up f1 at 11:30.

    In order (queued, s1, f1), f1 sorts after every record and takes the one step; with f1 arriving before s1
    (within the allowed disorder: surveys and follow-ups do not move stream time), s1's arrival recomputes
    the contact. Either way: detractor_feedback 1, followed_up 1, response 11:30 - 10:01 = 89 min = 5340 s,
    one feedback breach at 10:01 + 1 h = 11:01 (the follow-up came after the target), published once with
    breached_at 11:01, and nothing awaits a follow-up."""
    kpi = KpiSettings(fcr_window="1h", channels={"voice": {"feedback_response_target": "1h"}})
    queued = ev("queued", "q1", DAY)
    s1 = ev("survey", "s1", DAY + MINUTE, nps=1)
    f1 = follow_up("f1", DAY + 90 * MINUTE, "s1")
    results = []
    for order in ([queued, s1, f1], [queued, f1, s1]):
        engine = KpiEngine(kpi, publish_breaches=True)
        for event in order:
            assert engine.process(event) is True
        published = [(b.contact_id, b.survey_event_id, b.breached_at_us)
                     for b in engine.due_feedback_breaches(to_us(DAY + 2 * 60 * MINUTE))]
        assert published == [("c1", "s1", to_us(DAY + 61 * MINUTE))]
        assert engine.due_feedback_breaches(to_us(DAY + 3 * 60 * MINUTE)) == []  # never twice
        doc = engine.snapshot(to_us(DAY + 2 * 60 * MINUTE), include_all=True)
        w = row(doc)["windows"]["all"]
        assert (w["detractor_feedback"], w["followed_up"], w["average_feedback_response_seconds"],
                w["feedback_breaches"]) == (1, 1, 5340.0, 1)
        assert (row(doc)["live"]["awaiting_follow_up"], row(doc)["live"]["oldest_awaiting_seconds"]) == (0, 0.0)
        results.append(doc)
    assert results[0] == results[1]
