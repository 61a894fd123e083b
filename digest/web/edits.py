"""The preview's controls as pure changes to an issue draft: pin, drop, reorder, re-tag, intro.

Each function takes a `Draft` and returns a new one; the preview loads the draft, applies one change,
saves it through `digest.compose.draft` and rebuilds. Semantics are the render stage's (see
`digest.compose.draft`):
pinned entries lead the highlights in the draft's order; `highlight_order` moves the entries it names
ahead of the ranking in the highlights, `order` within their day; `retag` replaces an entry's matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from digest.compose.draft import MAX_SUBJECT, MAX_TEASER, MAX_TITLE, Draft, line_problem
from digest.errors import InvalidValueError

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
    """Leave the entry out of the issue (and forget its pin and places)."""
    dropped = draft.dropped if entry_id in draft.dropped else (*draft.dropped, entry_id)
    return replace(
        draft,
        dropped=dropped,
        pinned=_without(draft.pinned, entry_id),
        order=_without(draft.order, entry_id),
        highlight_order=_without(draft.highlight_order, entry_id),
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
) -> Draft:
    """Swap `entry_id` with its neighbour (`step` -1: up, +1: down) in a list as currently shown.

    In the highlights (`ranks` given), two entries pinned in the draft swap places in `pinned`; any
    other two rewrite `highlight_order` to the highlights as shown after the swap (without the draft's
    pins), so exactly these entries stay highlighted, in this order. In a day's list, `order` gets the
    day as shown after the swap at its front (the other days' entries keep their places: each entry is
    in one day). The two orders are separate, so a move in one list never reorders the other. A move
    that cannot be made returns the draft unchanged.
    """
    if not can_move(draft, shown, entry_id, step, ranks=ranks):
        return draft
    new = list(shown)
    i = new.index(entry_id)
    new[i], new[i + step] = new[i + step], new[i]
    if ranks is None:
        return replace(draft, order=(*new, *(e for e in draft.order if e not in new)))
    if entry_id in draft.pinned:
        in_list = [e for e in new if e in draft.pinned]
        others = iter(in_list)
        pinned = tuple(next(others) if e in in_list else e for e in draft.pinned)
        return replace(draft, pinned=pinned)
    return replace(draft, highlight_order=tuple(e for e in new if e not in draft.pinned))


def retag(draft: Draft, entry_id: str, priorities: Sequence[str] | None) -> Draft:
    """Replace the entry's keyword matches with these priorities (`[]`: none); None goes back to matching."""
    kept = tuple((e, names) for e, names in draft.retag if e != entry_id)
    if priorities is not None:
        kept = (*kept, (entry_id, tuple(dict.fromkeys(priorities))))
    return replace(draft, retag=tuple(sorted(kept)))


def set_intro(draft: Draft, markdown: str) -> Draft:
    """The editor's intro (Markdown), with line endings normalised and surrounding blank lines removed.

    Raises:
        InvalidValueError: the intro is longer than 20,000 characters.
    """
    text = markdown.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    if len(text) > MAX_INTRO:
        raise InvalidValueError(f"the intro is longer than {MAX_INTRO:,} characters")
    return replace(draft, intro=text)


def _one_line(what: str, text: str, limit: int) -> str:
    """Raises InvalidValueError when `text` is not one line of at most `limit` characters."""
    text = " ".join(text.split()) if "\n" not in text.strip() else text
    problem = line_problem(text, limit)
    if problem:
        raise InvalidValueError(f"the {what} {problem}")
    return text.strip()


def set_words(draft: Draft, subject: str, preheader: str) -> Draft:
    """This issue's subject line and preheader ("": back to the configured ones).

    Raises:
        InvalidValueError: either is longer than 200 characters or more than one line.
    """
    return replace(
        draft,
        subject=_one_line("subject", subject, MAX_SUBJECT),
        preheader=_one_line("preheader", preheader, MAX_SUBJECT),
    )


def _set(pairs: tuple[tuple[str, str], ...], entry_id: str, text: str) -> tuple[tuple[str, str], ...]:
    kept = tuple((e, t) for e, t in pairs if e != entry_id)
    return tuple(sorted((*kept, (entry_id, text)))) if text else kept


def reword(draft: Draft, entry_id: str, title: str, teaser: str) -> Draft:
    """The title and teaser readers see for an entry ("": the source's own).

    Raises:
        InvalidValueError: the title is not one line of at most 300 characters, or the teaser is over 2,000.
    """
    title = _one_line("title", title, MAX_TITLE)
    teaser = teaser.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(teaser) > MAX_TEASER:
        raise InvalidValueError(f"the teaser is longer than {MAX_TEASER:,} characters")
    return replace(
        draft, titles=_set(draft.titles, entry_id, title), teasers=_set(draft.teasers, entry_id, teaser)
    )
