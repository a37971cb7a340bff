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
(an earlier queued event arrived out of order) the old entry is replaced. Entries older than the pruning bound
are dropped (the live worker keeps two days, like its buckets); a replay keeps all of them for its ``all``
window.
"""

from __future__ import annotations

from bisect import bisect_left, insort

Key = tuple[str, str]  # queue, channel
Entry = tuple[int, str, str]  # (t0, customer_id, contact_id)


class DistinctCustomers:
    """Contacts by t0, per (queue, channel) and in total, for exact distinct customer counts per window."""

    __slots__ = ("by_key", "all", "contacts", "keep_all")

    def __init__(self, *, keep_all: bool = False) -> None:
        self.by_key: dict[Key, list[Entry]] = {}
        self.all: list[Entry] = []
        self.contacts: dict[str, tuple[int, Key, str]] = {}  # contact_id -> (t0, key, customer_id)
        self.keep_all = keep_all  # a replay: never prune (its ``all`` window spans the whole file)

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
        for entries in (self.by_key.get(key), self.all):
            if entries is None:
                continue
            index = bisect_left(entries, entry)
            if index < len(entries) and entries[index] == entry:
                del entries[index]

    def count(self, key: Key | None, start_us: int, end_us: int) -> int:
        """Distinct customers with a contact whose t0 is in [start_us, end_us), in ``key`` (None: in total)."""
        entries = self.all if key is None else self.by_key.get(key)
        if not entries:
            return 0
        low = bisect_left(entries, (start_us,))
        high = bisect_left(entries, (end_us,))
        if high - low < 2:
            return high - low
        return len({entry[1] for entry in entries[low:high]})

    def keys(self) -> list[Key]:
        return [key for key, entries in self.by_key.items() if entries]

    def prune(self, before_us: int) -> None:
        """Forget contacts with t0 before ``before_us`` (older than every window still reported)."""
        if self.keep_all:
            return
        cut = bisect_left(self.all, (before_us,))
        if not cut:
            return
        contacts = self.contacts
        for t0, _, contact_id in self.all[:cut]:
            held = contacts.get(contact_id)
            if held is not None and held[0] == t0:
                del contacts[contact_id]
        del self.all[:cut]
        for entries in self.by_key.values():
            del entries[:bisect_left(entries, (before_us,))]


def _insert(entries: list[Entry], entry: Entry) -> None:
    """Append when in order (the usual case), else insert in place."""
    if not entries or entries[-1] <= entry:
        entries.append(entry)
    else:
        insort(entries, entry)
