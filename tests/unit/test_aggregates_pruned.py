"""Facts that arrive in buckets a prune has passed: counted in the totals (and in an hour that still has buckets
after the limit), no bucket made. Why it matters: a worker catching up a backlog passes days of event time between
two prunes of its wall-clock timer; every bucket it made there was deleted unread at the next prune, and they set
its memory (docs/performance.md, session 19).

The property: whatever the order of facts, advances and prunes, the aggregates equal those of the same sequence
where every bucket was made and only the prunes deleted them, once both are pruned at the same last limit."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from cxpulse.core import measures as m
from cxpulse.core.aggregates import HOUR_US, Aggregates

MINUTE_US = 60_000_000
KEY = ("sales", "voice")


def test_a_late_fact_in_a_pruned_bucket_counts_in_the_total_and_its_live_hour_but_makes_no_bucket() -> None:
    """Buckets 1 min; now 14:00. prune(12:30) deletes every bucket starting at or before 12:29 (limit =
    bound - bucket). Then late facts: one at 12:10 (its bucket 12:10 is past the limit; its hour 12:00 still has
    buckets after the limit, 12:30-12:59, so that hour keeps counting), one at 11:20 (bucket and hour 11:00 both
    wholly before the limit), one at 12:45 (after the limit: a bucket as always). All three reach the total.

    Kills: ``start <= pruned_to -> <`` (a bucket at exactly the limit made), the hour's ``> -> >=`` (hour 12:00
    dropped) and the totals of pruned rows."""
    t0 = 10 * HOUR_US
    agg = Aggregates(MINUTE_US, t0 + 4 * HOUR_US)
    agg.apply([(m.OFFERED, t0 + 2 * HOUR_US + 40 * MINUTE_US, *KEY, 1)])
    bound = t0 + 2 * HOUR_US + 30 * MINUTE_US
    agg.prune(bound)
    limit = bound - MINUTE_US
    late = [(m.OFFERED, t0 + 2 * HOUR_US + 10 * MINUTE_US, *KEY, 1), (m.OFFERED, t0 + HOUR_US + 20 * MINUTE_US, *KEY, 1),
            (m.OFFERED, t0 + 2 * HOUR_US + 45 * MINUTE_US, *KEY, 1), (m.ANSWERED, limit, *KEY, 1)]
    agg.apply(late)
    assert sorted(agg.buckets[KEY]) == [t0 + 2 * HOUR_US + 40 * MINUTE_US, t0 + 2 * HOUR_US + 45 * MINUTE_US]
    assert sorted(agg.hours[KEY]) == [t0 + 2 * HOUR_US]
    assert agg.hours[KEY][t0 + 2 * HOUR_US][m.OFFERED] == 3  # 12:40, 12:10, 12:45
    assert agg.hours[KEY][t0 + 2 * HOUR_US][m.ANSWERED] == 1  # at 12:29, the limit itself
    assert agg.totals[KEY][m.OFFERED] == 4
    assert agg.totals[KEY][m.ANSWERED] == 1
    window = agg.window(bound, t0 + 4 * HOUR_US, [KEY])[KEY]
    assert window[m.OFFERED] == 2


def test_an_hour_whose_last_bucket_is_the_limit_is_pruned_whole_and_takes_no_late_fact() -> None:
    """prune(12:00) with 1-minute buckets: the limit is 11:59, the last bucket of hour 11:00, so that hour is gone
    as a whole (``prune`` deletes it) and a late fact at 11:30 joins neither a bucket nor the hour, only the total.

    Kills ``_fold_pruned``'s ``hour + 1 h - bucket > limit`` -> ``>=`` and ``- bucket`` -> ``+ bucket`` (hour 11:00
    made again)."""
    t0 = 10 * HOUR_US
    agg = Aggregates(MINUTE_US, t0 + 4 * HOUR_US)
    agg.prune(t0 + 2 * HOUR_US)
    agg.apply([(m.OFFERED, t0 + HOUR_US + 30 * MINUTE_US, *KEY, 1)])
    assert agg.hours[KEY] == {}
    assert agg.buckets[KEY] == {}
    assert agg.totals[KEY][m.OFFERED] == 1


def test_a_prune_at_an_earlier_limit_keeps_the_later_one() -> None:
    """A clock stepped back: prune(B2 < B1) after prune(B1) does not bring pruned buckets back: a fact at B1 - 2
    minutes still makes none."""
    t0 = 10 * HOUR_US
    agg = Aggregates(MINUTE_US, t0 + 4 * HOUR_US)
    agg.prune(t0 + 3 * HOUR_US)
    agg.prune(t0 + 2 * HOUR_US)
    agg.apply([(m.OFFERED, t0 + 3 * HOUR_US - 2 * MINUTE_US, *KEY, 1)])
    assert agg.buckets[KEY] == {}
    assert agg.totals[KEY][m.OFFERED] == 1


def _unpruned(agg: Aggregates) -> None:
    """Make ``agg`` forget its prunes' limit, as the code before session 19 did (the reference)."""
    agg._pruned_to = -(1 << 61)  # type: ignore[attr-defined]


MEASURES = st.sampled_from([m.OFFERED, m.ANSWERED, m.ABANDONED, m.SLA_BREACHES])
KEYS = st.sampled_from([KEY, ("billing", "chat")])
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("fact"), MEASURES, st.integers(0, 6 * 60), KEYS, st.sampled_from([1, -1, 3])),
        st.tuples(st.just("advance"), st.integers(0, 6 * 60)),
        st.tuples(st.just("prune"), st.integers(0, 6 * 60)),
        st.tuples(st.just("read"), st.integers(0, 6 * 60)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(STEPS, st.integers(0, 6 * 60))
def test_pruned_buckets_never_made_equal_made_then_pruned(steps: list[tuple], last: int) -> None:
    t0 = 10 * HOUR_US
    now = t0
    lean, full = Aggregates(MINUTE_US, now), Aggregates(MINUTE_US, now)
    pruned = -(1 << 61)
    for step in steps:
        if step[0] == "fact":
            _, measure, minute, key, value = step
            fact = (measure, t0 + minute * 30_000_000 + 7, *key, value)  # half-minute steps, off the edges
            for agg in (lean, full):
                agg.apply([fact])
        elif step[0] == "advance":
            now = max(now, t0 + step[1] * MINUTE_US)
            for agg in (lean, full):
                agg.advance(now)
        elif step[0] == "prune":
            bound = t0 + step[1] * MINUTE_US
            for agg in (lean, full):
                agg.prune(bound)
            _unpruned(full)
            pruned = max(pruned, bound)
        else:  # a window that starts after every prune so far reads the same counts
            start = max(pruned, t0 + step[1] * MINUTE_US)
            start -= start % MINUTE_US
            if start < now:
                assert lean.window(start, now) == full.window(start, now)
    final = max(pruned, t0 + last * MINUTE_US)
    for agg in (lean, full):
        agg.prune(final)
    assert lean.totals == full.totals
    assert lean.buckets == full.buckets
    assert lean.hours == full.hours
