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
sets of customer ids (per key and in total), a fraction of the index's entries (measured: a simulated week held
170 MiB of entries, Engine v2).
"""

from __future__ import annotations

from bisect import bisect_left, insort

Key = tuple[str, str]  # queue, channel
Entry = tuple[int, str, str]  # (t0, customer_id, contact_id)


class DistinctCustomers:
    """Contacts by t0, per (queue, channel) and in total, for exact distinct customer counts per window."""

    __slots__ = ("by_key", "all", "contacts", "keep_all", "gone_by_key", "gone_all", "gone_from", "pruned_before")

    def __init__(self, *, keep_all: bool = False) -> None:
        self.by_key: dict[Key, list[Entry]] = {}
        self.all: list[Entry] = []
        self.contacts: dict[str, tuple[int, Key, str]] = {}  # contact_id -> (t0, key, customer_id)
        self.keep_all = keep_all  # a replay: pruned contacts stay counted in ``gone_*`` for its ``all`` window
        self.gone_by_key: dict[Key, set[str]] = {}  # keep_all: customers of pruned contacts, per key
        self.gone_all: set[str] = set()
        self.gone_from: int | None = None  # the earliest t0 pruned (keep_all)
        self.pruned_before = -(2**63)  # no window may start before this unless it spans all pruned contacts

    def note(self, contact_id: str, customer_id: str, t0: int, queue: str, channel: str) -> None:
        """A contact's t0 and first (queue, channel), as its FCR summary says; a repeat of the same is free."""
        key = (queue, channel)
        held = self.contacts.get(contact_id)
        if held is not None:
            if held[0] == t0 and held[1] == key:
                return
            self._remove(contact_id, held)
        entry = (t0, customer_id, contact_id)
        self.contacts[contact_id] = (t0, key, customer_id)
        _insert(self.by_key.setdefault(key, []), entry)
        _insert(self.all, entry)

    def _remove(self, contact_id: str, held: tuple[int, Key, str]) -> None:
        t0, key, customer_id = held
        entry = (t0, customer_id, contact_id)
        for entries in (self.by_key[key], self.all):  # note() made the key's list before holding the contact
            index = bisect_left(entries, entry)
            if index < len(entries) and entries[index] == entry:
                del entries[index]

    def count(self, key: Key | None, start_us: int, end_us: int) -> int:
        """Distinct customers with a contact whose t0 is in [start_us, end_us), in ``key`` (None: in total)."""
        entries = self.all if key is None else self.by_key.get(key)
        if start_us < self.pruned_before and self.keep_all:
            if self.gone_from is not None and start_us > self.gone_from:
                raise ValueError("a distinct count over a window that starts among pruned contacts")
            gone = self.gone_all if key is None else self.gone_by_key.get(key, set())
            if not entries:
                return len(gone)
            high = bisect_left(entries, (end_us,))
            return len(gone.union(entry[1] for entry in entries[:high]))
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
            self.gone_all.update(entry[1] for entry in self.all[:cut])
            for key, entries in self.by_key.items():
                high = bisect_left(entries, (before_us,))
                if high:
                    self.gone_by_key.setdefault(key, set()).update(entry[1] for entry in entries[:high])
        contacts = self.contacts
        for entry in self.all[:cut]:  # each held contact has exactly its one entry (note() removes the old one)
            contacts.pop(entry[2], None)
        del self.all[:cut]
        for entries in self.by_key.values():
            del entries[:bisect_left(entries, (before_us,))]


def _insert(entries: list[Entry], entry: Entry) -> None:
    """Append when in order (the usual case), else insert in place."""
    if not entries or entries[-1] <= entry:
        entries.append(entry)
    else:
        insort(entries, entry)
