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

from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta

from digest.clean import normalised_title
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


def _titles_match(a: str, b: str) -> bool:
    if not a or not b:
        return False
    if a == b:
        return True
    for short, full in ((a, b), (b, a)):
        if short.endswith("…"):
            prefix = short[:-1].strip()
            if len(prefix.split()) >= _MIN_PREFIX_WORDS and full.rstrip("…").startswith(prefix):
                return True
    return False


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
    dated = sorted((i for i, e in enumerate(items) if not e.date_estimated), key=lambda i: items[i].published)
    for pos, i in enumerate(dated):
        for j in dated[pos + 1 :]:
            if items[j].published - items[i].published > title_window:
                break
            if items[i].source != items[j].source and _titles_match(titles[i], titles[j]):
                groups.join(i, j)
    members: dict[int, list[int]] = {}
    for i in range(len(items)):
        members.setdefault(groups.find(i), []).append(i)

    def preference(i: int) -> tuple[bool, bool, bool, bool, int]:
        e = items[i]
        return (e.id not in sent_ids, not e.pinned, e.priority is None, e.date_estimated, i)

    kept: list[tuple[int, Entry]] = []
    for group in members.values():
        best = min(group, key=preference)
        entry = items[best]
        others: list[str] = list(entry.also_from)
        for i in sorted(group):
            name = items[i].source
            if name != entry.source and name not in others:
                others.append(name)
        kept.append((min(group), replace(entry, also_from=tuple(others))))
    kept.sort(key=lambda pair: pair[0])
    return tuple(entry for _, entry in kept)
