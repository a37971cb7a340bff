"""Distinct customers per window: an index of contacts by their first queued time (kpis.md "Resolution and
cost (v2)", *customers*).

Why not a fact like every other count: "the number of distinct customers with at least one contact whose t0
lies in the window" does not add up over buckets (a customer with contacts in two buckets counts once), and no
fact at a fixed time can say "this is the customer's latest contact before the window's end", since the end
moves with now. So the customer side keeps, per (queue, channel) and in total, its contacts sorted by t0, and a
window counts the distinct customers among the contacts inside it when it is read. That costs a pass over the
window's contacts per read (the 24 h window reads a day of contacts), not a cost per event.

Why the customer side: its partitions are keyed by customer, so every customer lives in exactly one partition
and the distinct counts of several partitions (and workers) simply add up, like every other count.

Each contact is indexed once, under the (queue, channel) of its first queued event; when its summary moves
(an earlier queued event arrived out of order) the old entry is replaced. Entries are dropped once past
``history_us`` (26 h by default), like the buckets. The ``all`` window (a replay's, and a live worker's since its
first event) needs every customer, but not the contacts' times: with ``keep_all`` (both use it) what is pruned stays as
one dict of customer ids, each with a bit per (queue, channel) it had a contact in (measured: a simulated week held
170 MiB of entries, Engine v2).

What an entry holds, and why no contact id: ``(t0, customer_id)``. A distinct count reads only customers, and
two equal entries (two contacts of one customer at the same t0 in the same key) count once either way, so when a
contact's summary moves, removing any entry equal to its old one is exact. The caller says what the contact's
summary said before (:meth:`note`'s ``previous``: the customer side holds every contact's summary anyway), so
the index keeps no contact id and no map of contacts: a week's worker held 20 MiB in that map and the ids of a
day of contacts, which the customer side otherwise drops from memory. Except with a short FCR window: the
customer side forgets a contact 2F + the allowed disorder after its t0, and when that is shorter than the index's
history (26 h by default; F under about 12.5 h) it may no longer know a contact whose entry the index still
holds, so the index keeps its own map then (``track_contacts``).
"""

from __future__ import annotations

from bisect import bisect_left, insort

Key = tuple[str, str]  # queue, channel
Entry = tuple[int, str]  # (t0, customer_id)


class DistinctCustomers:
    """Contacts by t0, per (queue, channel) and in total, for exact distinct customer counts per window."""

    __slots__ = ("by_key", "all", "contacts", "keep_all", "gone", "_bits", "_gone_per_key", "gone_from",
                 "pruned_before")

    def __init__(self, *, keep_all: bool = False, track_contacts: bool = False) -> None:
        self.by_key: dict[Key, list[Entry]] = {}
        self.all: list[Entry] = []
        # track_contacts: contact_id -> (t0, queue, channel) of its entry, for a caller that may forget a contact
        # before the index does (see the module docstring); None otherwise
        self.contacts: dict[str, tuple[int, str, str]] | None = {} if track_contacts else None
        self.keep_all = keep_all  # a replay: pruned contacts stay counted in ``gone`` for its ``all`` window
        # keep_all: customers of pruned contacts, each with a bit per key it had a pruned contact in (one dict
        # entry per customer, where a set per key and one in total cost an entry in each)
        self.gone: dict[str, int] = {}
        self._bits: dict[Key, int] = {}  # key -> its bit in ``gone``
        self._gone_per_key: dict[Key, int] = {}  # key -> customers in ``gone`` with its bit
        self.gone_from: int | None = None  # the earliest t0 pruned (keep_all)
        self.pruned_before = -(2**63)  # no window may start before this unless it spans all pruned contacts

    def note(self, customer_id: str, t0: int, queue: str, channel: str,
             previous: tuple[int, str, str] | None = None, contact_id: str | None = None) -> None:
        """A contact's t0 and first (queue, channel), as its FCR summary says. ``previous``: ``(t0, queue,
        channel)`` of the same contact's summary before this one (its entry is replaced; the same again is
        free), None for a contact noted for the first time. ``contact_id``: read only with ``track_contacts``,
        whose own record of the contact then takes the place of ``previous``."""
        contacts = self.contacts
        if contacts is not None and contact_id is not None:
            held = contacts.get(contact_id)
            if held is not None:
                previous = held
            contacts[contact_id] = (t0, queue, channel)
        if previous is not None:
            if previous[0] == t0 and previous[1] == queue and previous[2] == channel:
                return
            self._remove(customer_id, previous)
        entry = (t0, customer_id)
        _insert(self.by_key.setdefault((queue, channel), []), entry)
        _insert(self.all, entry)

    def _remove(self, customer_id: str, previous: tuple[int, str, str]) -> None:
        """Remove one entry equal to the contact's old one, where it still is (it may have been pruned)."""
        t0, queue, channel = previous
        entry = (t0, customer_id)
        for entries in (self.by_key.get((queue, channel)), self.all):
            if entries:
                index = bisect_left(entries, entry)
                if index < len(entries) and entries[index] == entry:
                    del entries[index]

    def count(self, key: Key | None, start_us: int, end_us: int) -> int:
        """Distinct customers with a contact whose t0 is in [start_us, end_us), in ``key`` (None: in total)."""
        entries = self.all if key is None else self.by_key.get(key)
        if start_us < self.pruned_before and self.keep_all:
            if self.gone_from is not None and start_us > self.gone_from:
                raise ValueError("a distinct count over a window that starts among pruned contacts")
            gone = self.gone
            held = len(gone) if key is None else self._gone_per_key.get(key, 0)
            if not entries:
                return held
            high = bisect_left(entries, (end_us,))
            if key is None:
                return held + len({customer for _, customer in entries[:high] if customer not in gone})
            bit = self._bits.get(key)
            flag = 0 if bit is None else 1 << bit
            return held + len({customer for _, customer in entries[:high] if not gone.get(customer, 0) & flag})
        if not entries:
            return 0
        low = bisect_left(entries, (start_us,))
        high = bisect_left(entries, (end_us,))
        return len({entry[1] for entry in entries[low:high]})

    def keys(self) -> list[Key]:
        return [key for key, entries in self.by_key.items() if entries]

    def prune(self, before_us: int) -> None:
        """Forget contacts with t0 before ``before_us`` (older than every window still reported)."""
        cut = bisect_left(self.all, (before_us,))
        if not cut:
            return
        self.pruned_before = max(self.pruned_before, before_us)
        if self.keep_all:
            if self.gone_from is None:
                self.gone_from = self.all[0][0]
            gone = self.gone
            for key, entries in self.by_key.items():  # every entry of ``all`` is in its key's list too
                high = bisect_left(entries, (before_us,))
                if not high:
                    continue
                bit = self._bits.get(key)
                if bit is None:
                    bit = self._bits[key] = len(self._bits)
                flag = 1 << bit
                added = 0
                for _, customer in entries[:high]:
                    mask = gone.get(customer, 0)
                    if not mask & flag:
                        gone[customer] = mask | flag
                        added += 1
                self._gone_per_key[key] = self._gone_per_key.get(key, 0) + added
        del self.all[:cut]
        for entries in self.by_key.values():
            del entries[:bisect_left(entries, (before_us,))]
        contacts = self.contacts
        if contacts:
            for contact_id in [cid for cid, held in contacts.items() if held[0] < before_us]:
                del contacts[contact_id]

    @property
    def gone_all(self) -> set[str]:
        """keep_all: the customers of every pruned contact (for tests and tools; counts read ``gone``)."""
        return set(self.gone)

    @property
    def gone_by_key(self) -> dict[Key, set[str]]:
        """keep_all: per key, the customers of its pruned contacts (for tests and tools)."""
        return {key: {customer for customer, mask in self.gone.items() if mask >> bit & 1}
                for key, bit in self._bits.items()}


def _insert(entries: list[Entry], entry: Entry) -> None:
    """Append when in order (the usual case), else insert in place."""
    if not entries or entries[-1] <= entry:
        entries.append(entry)
    else:
        insort(entries, entry)
