"""The preview's controls as pure changes to an issue draft: pin, drop, reorder, re-tag, intro.

Each function takes a `Draft` and returns a new one; the preview loads the draft, applies one change,
saves it through `digest.draft` and rebuilds. Semantics are the render stage's (see `digest.draft`):
pinned entries lead the highlights in the draft's order; `order` moves the entries it names ahead of the
ranking, in highlights and within their day; `retag` replaces an entry's keyword matches.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from digest.draft import Draft

MAX_INTRO = 20_000


def _without(ids: tuple[str, ...], entry_id: str) -> tuple[str, ...]:
    return tuple(i for i in ids if i != entry_id)


def highlight_ranks(draft: Draft, source_pinned: Iterable[str], shown: Sequence[str]) -> dict[str, int]:
    """The class of each highlighted entry: 0 pinned in the draft, 1 pinned by its source, 2 the rest."""
    by_source = frozenset(source_pinned)
    return {e: 0 if e in draft.pinned else 1 if e in by_source else 2 for e in shown}


def pin(draft: Draft, entry_id: str) -> Draft:
    """Always highlight the entry (after the entries pinned before it); a dropped entry comes back."""
    pinned = draft.pinned if entry_id in draft.pinned else (*draft.pinned, entry_id)
    return replace(draft, pinned=pinned, dropped=_without(draft.dropped, entry_id))


def unpin(draft: Draft, entry_id: str) -> Draft:
    return replace(draft, pinned=_without(draft.pinned, entry_id))


def drop(draft: Draft, entry_id: str) -> Draft:
    """Leave the entry out of the issue (and forget its pin and place)."""
    dropped = draft.dropped if entry_id in draft.dropped else (*draft.dropped, entry_id)
    return replace(
        draft,
        dropped=dropped,
        pinned=_without(draft.pinned, entry_id),
        order=_without(draft.order, entry_id),
    )


def restore(draft: Draft, entry_id: str) -> Draft:
    return replace(draft, dropped=_without(draft.dropped, entry_id))


def can_move(
    draft: Draft, shown: Sequence[str], entry_id: str, step: int, *, ranks: Mapping[str, int] | None = None
) -> bool:
    """Whether `entry_id` can swap places with its neighbour in a list as shown.

    `ranks` gives the highlights' classes (pinned in the draft, pinned by the source, the rest): entries
    of different classes cannot swap there, since each class always leads the next. In a day's list
    (`ranks` None) any two neighbours can swap.
    """
    if entry_id not in shown or step not in (-1, 1):
        return False
    i = list(shown).index(entry_id)
    j = i + step
    if not 0 <= j < len(shown):
        return False
    return ranks is None or ranks.get(shown[i]) == ranks.get(shown[j])


def move(
    draft: Draft,
    shown: Sequence[str],
    entry_id: str,
    step: int,
    *,
    ranks: Mapping[str, int] | None = None,
    highlights: Sequence[str] = (),
    days: Sequence[Sequence[str]] = (),
) -> Draft:
    """Swap `entry_id` with its neighbour (`step` -1: up, +1: down) in a list as currently shown.

    In the highlights (`ranks` given), two entries pinned in the draft swap places in `pinned`.
    Otherwise `order` is rewritten (see `merged_order`) so that this list shows the swap and the other
    lists as shown (`highlights` without the draft's pins, and the `days`) stay as they are where the
    single `order` allows:
    a move never pulls an entry ahead elsewhere or into the highlights. A move that cannot be made
    returns the draft unchanged.
    """
    if not can_move(draft, shown, entry_id, step, ranks=ranks):
        return draft
    new = list(shown)
    i = new.index(entry_id)
    new[i], new[i + step] = new[i + step], new[i]
    if ranks is not None and entry_id in draft.pinned:
        in_list = [e for e in new if e in draft.pinned]
        others = iter(in_list)
        pinned = tuple(next(others) if e in in_list else e for e in draft.pinned)
        return replace(draft, pinned=pinned)
    moved = [e for e in new if ranks is None or e not in draft.pinned]
    return replace(draft, order=merged_order(moved, highlights, days, draft.order))


def merged_order(
    first: Sequence[str],
    highlights: Sequence[str],
    days: Sequence[Sequence[str]],
    previous: Sequence[str],
) -> tuple[str, ...]:
    """One `order` for the draft in which `first` reads as given and the other lists keep their order.

    The draft has a single `order` for the whole issue, and the entries it names go ahead of the
    ranking both in the highlights (which also decides which matched entries make the cut) and within
    their day. Naming only the moved list would pull its entries ahead in every other list they are in;
    so every list as shown is written down: `first` (the list moved in), then the `highlights` (ranked
    ones, without the draft's pins), then each of the `days`, and last every other entry after the
    highlights (so none climbs into them). Where two lists disagree about the same two entries, the
    earlier one wins. Ids of `previous` that no list shows keep their relative order at the end.
    """
    after: dict[str, set[str]] = {}
    seen: dict[str, int] = {}

    def reaches(start: str, goal: str) -> bool:
        stack, visited = [start], {start}
        while stack:
            for nxt in after.get(stack.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in visited:
                    visited.add(nxt)
                    stack.append(nxt)
        return False

    def add(a: str, b: str) -> None:
        if a != b and not reaches(b, a):
            after.setdefault(a, set()).add(b)

    for sequence in (first, highlights, *days):
        for entry_id in sequence:
            seen.setdefault(entry_id, len(seen))
        for a, b in itertools.pairwise(sequence):
            add(a, b)
    if highlights:
        for entry_id in [e for e in seen if e not in highlights]:
            add(highlights[-1], entry_id)
    before = dict.fromkeys(seen, 0)
    for targets in after.values():
        for b in targets:
            before[b] += 1
    rank = {e: i for i, e in enumerate(previous)}

    def key(entry_id: str) -> tuple[float, int, str]:
        return (rank.get(entry_id, math.inf), seen[entry_id], entry_id)

    ready = [key(e) for e, n in before.items() if n == 0]
    heapq.heapify(ready)
    out: list[str] = []
    while ready:
        entry_id = heapq.heappop(ready)[2]
        out.append(entry_id)
        for b in after.get(entry_id, ()):
            before[b] -= 1
            if before[b] == 0:
                heapq.heappush(ready, key(b))
    return (*out, *(e for e in previous if e not in seen))


def retag(draft: Draft, entry_id: str, priorities: Sequence[str] | None) -> Draft:
    """Replace the entry's keyword matches with these priorities (`[]`: none); None goes back to matching."""
    kept = tuple((e, names) for e, names in draft.retag if e != entry_id)
    if priorities is not None:
        kept = (*kept, (entry_id, tuple(dict.fromkeys(priorities))))
    return replace(draft, retag=tuple(sorted(kept)))


def set_intro(draft: Draft, markdown: str) -> Draft:
    """The editor's intro (Markdown), with line endings normalised and surrounding blank lines removed.

    Raises:
        ValueError: the intro is longer than 20,000 characters.
    """
    text = markdown.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    if len(text) > MAX_INTRO:
        raise ValueError(f"the intro is longer than {MAX_INTRO:,} characters")
    return replace(draft, intro=text)
