"""PURE de-duplication of entries: within a feed, across feeds, and against entries already sent.

Two entries are the same story when they share an id or a canonical link, or, when they come from different
sources, when their normalised titles match (a title cut short with "…" matches the full one) and both have
real dates within `title_window` of the story's first entry (matching does not chain beyond the window).
Undated entries are never matched by title alone: two different stories can share a title (BLMK published
two "Local NHS waiting lists fall, new figures show"); nor is a title a source repeats itself, such as a
bulletin's name ("Weekly bulletin"). The work is linear in the number of entries, apart from sorting.

One entry of each group is kept, in this order of preference: one already sent (so later stages can leave
it out), a curated one (pinned, then with a priority), one with a real date, then the earliest in the input.
The kept entry records the other sources in `also_from`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

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


def _repeated_titles(items: list[Entry], titles: list[str]) -> set[tuple[str, str]]:
    """(source, title) pairs a source uses for more than one of its entries: a bulletin's name such as
    "Weekly bulletin", not a story's headline."""
    seen: set[tuple[str, str]] = set()
    repeated: set[tuple[str, str]] = set()
    for entry, title in zip(items, titles, strict=True):
        key = (entry.source, title)
        if key in seen:
            repeated.add(key)
        seen.add(key)
    return repeated


def _join_same_titles(items: list[Entry], titles: list[str], groups: _Groups, window: timedelta) -> None:
    """Join entries of different sources whose normalised titles match, without chaining.

    Entries sharing a title are taken in date order; each story is anchored at its earliest entry and
    only entries within `window` of that anchor join it, so a title seen every two days does not make one
    story of a month. Titles a source repeats itself, and undated entries, never match on title alone.
    A title cut short with "…" joins the nearest story (in time) whose title starts with what is left.
    Sorting within each title is the only super-linear step.
    """
    repeated = _repeated_titles(items, titles)
    by_title: dict[str, list[int]] = {}
    for i, (entry, title) in enumerate(zip(items, titles, strict=True)):
        if title and not entry.date_estimated and (entry.source, title) not in repeated:
            by_title.setdefault(title, []).append(i)
    # title -> each of its stories as (anchor, the sources in it), in date order
    anchors: dict[str, list[tuple[int, set[str]]]] = {}
    for title, members in by_title.items():
        members.sort(key=lambda i: (items[i].published, i))
        anchor = -1
        sources: set[str] = set()
        for i in members:
            entry = items[i]
            if (
                anchor >= 0
                and entry.published - items[anchor].published <= window
                and entry.source not in sources
            ):
                groups.join(anchor, i)
            else:
                anchor, sources = i, set()
                anchors.setdefault(title, []).append((i, sources))
            sources.add(entry.source)
    keys = sorted(anchors)
    for title, members in by_title.items():
        if not title.endswith("…"):
            continue
        prefix = title[:-1].strip()
        if len(prefix.split()) < _MIN_PREFIX_WORDS:
            continue
        for i in members:
            _join_nearest(i, prefix, keys=keys, anchors=anchors, items=items, groups=groups, window=window)


def _join_nearest(
    i: int,
    prefix: str,
    *,
    keys: list[str],
    anchors: dict[str, list[tuple[int, set[str]]]],
    items: list[Entry],
    groups: _Groups,
    window: timedelta,
) -> None:
    """Join entry `i` (its title cut short to `prefix`) to the nearest story, in time, whose title starts
    with `prefix` and which holds an entry from another source. Ties go to the earlier story, then to the
    title that sorts first, so the outcome does not depend on the order of the input."""
    entry = items[i]
    best: tuple[timedelta, datetime, str, int] | None = None
    for key in keys[bisect.bisect_left(keys, prefix) :]:
        if not key.startswith(prefix):
            break
        for j, sources in anchors[key]:
            gap = abs(items[j].published - entry.published)
            if j == i or gap > window or not sources - {entry.source}:
                continue
            candidate = (gap, items[j].published, key, j)
            if best is None or candidate[:3] < best[:3]:
                best = candidate
    if best is not None:
        groups.join(i, best[3])


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
    _join_same_titles(items, titles, groups, title_window)
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
