"""PURE de-duplication of entries: within a feed, across feeds, and against entries already sent.

Two entries are the same story when they share an id or a canonical link, or, when they come from different
sources, when their normalised titles match (a title cut short with "…" matches the full one) and both have
real dates within `title_window` of each other. Undated entries are never matched by title alone: two
different stories can share a title (BLMK published two "Local NHS waiting lists fall, new figures show").

One entry of each group is kept, in this order of preference: one already sent (so later stages can leave
it out), a curated one (pinned, then with a priority), one with a real date, then the earliest in the input.
The kept entry records the other sources in `also_from`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta

from digest.ingest.clean import normalised_title
from digest.models import Entry

TITLE_WINDOW = timedelta(days=3)
_MIN_PREFIX_WORDS = 4


class _Groups:
    """Union-find over entry positions."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _title_candidates(titles: list[str]) -> list[tuple[int, int]]:
    """Pairs of positions whose normalised titles match: equal, or one cut short with "…" and the other
    starting with what is left of it (at least four words). Sorted lookups, not all pairs."""
    by_title: dict[str, list[int]] = {}
    for i, title in enumerate(titles):
        if title:
            by_title.setdefault(title, []).append(i)
    keys = sorted(by_title)
    pairs = [(a, b) for group in by_title.values() for n, a in enumerate(group) for b in group[n + 1 :]]
    for i, title in enumerate(titles):
        if not title.endswith("…"):
            continue
        prefix = title[:-1].strip()
        if len(prefix.split()) < _MIN_PREFIX_WORDS:
            continue
        start = bisect.bisect_left(keys, prefix)
        for key in keys[start:]:
            if not key.startswith(prefix):
                break
            pairs.extend((i, j) for j in by_title[key] if j != i)
    return pairs


def _join_same_keys(items: list[Entry], groups: _Groups) -> None:
    """Join entries that share an id or a canonical link."""
    by_id: dict[str, int] = {}
    by_link: dict[str, int] = {}
    for i, entry in enumerate(items):
        for key, index in ((entry.id, by_id), (entry.link, by_link)):
            if key is None:
                continue
            if key in index:
                groups.join(index[key], i)
            else:
                index[key] = i


def dedupe(
    entries: Iterable[Entry],
    *,
    sent_ids: frozenset[str] = frozenset(),
    title_window: timedelta = TITLE_WINDOW,
) -> tuple[Entry, ...]:
    """Keep one entry per story, in input order, with `also_from` naming the other sources that carried it."""
    items = list(entries)
    groups = _Groups(len(items))
    _join_same_keys(items, groups)
    titles = [normalised_title(e.title) for e in items]
    for i, j in _title_candidates(titles):
        a, b = items[i], items[j]
        if a.date_estimated or b.date_estimated or a.source == b.source:
            continue
        if abs(a.published - b.published) <= title_window:
            groups.join(i, j)
    members: dict[int, list[int]] = {}
    for i in range(len(items)):
        members.setdefault(groups.find(i), []).append(i)

    def preference(i: int) -> tuple[bool, bool, bool, bool, int]:
        e = items[i]
        return (e.id not in sent_ids, not e.pinned, e.priority is None, e.date_estimated, i)

    kept: list[tuple[int, Entry]] = []
    for group in members.values():
        if len(group) == 1:
            kept.append((group[0], items[group[0]]))
            continue
        entry = items[min(group, key=preference)]
        others: list[str] = list(entry.also_from)
        for i in sorted(group):
            name = items[i].source
            if name != entry.source and name not in others:
                others.append(name)
        kept.append((min(group), replace(entry, also_from=tuple(others))))
    kept.sort(key=lambda pair: pair[0])
    return tuple(entry for _, entry in kept)
