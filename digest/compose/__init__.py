"""PURE: from entries to a composed `Issue` (window, selection, priority matches, highlights, sections).

Nothing here reads a clock, a file or the network: the window end (`as_of`), the entries already sent and
the draft are handed in, so the same inputs always give the same issue, whatever their order.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import format_date

from digest.config import Config, GroupBy, Priority
from digest.errors import RenderError
from digest.models import (
    Draft,
    Entry,
    Group,
    Highlight,
    Issue,
    IssueEntry,
    PriorityMatch,
    Section,
    SourceReport,
    Window,
)

EDITOR_PICK = "Editor's pick"
UNDATED_LABEL = "Date not given"
# How much a keyword found in each field counts towards a priority match.
_TITLE_WEIGHT, _TAG_WEIGHT, _SUMMARY_WEIGHT = 3.0, 2.0, 1.0
_EXPLICIT_STRENGTH = 10.0
_PREHEADER_CHARS = 140
_ONE = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ComposeSettings:
    """The edition settings compose needs (a slice of the config, easy to build in tests)."""

    title: str = "Weekly digest"
    timezone: str = "Europe/London"
    locale: str = "en_GB"
    date_format: str = "EEEE d MMMM y"
    group_by: GroupBy = "day"
    categories: tuple[str, ...] = ()
    section_cap: int = 10
    highlights_max: int = 5
    priorities: tuple[Priority, ...] = ()
    enablers: tuple[Priority, ...] = ()
    repeat_highlights: bool = True

    @classmethod
    def from_config(cls, config: Config) -> ComposeSettings:
        d = config.digest
        return cls(
            title=d.title,
            timezone=d.timezone,
            locale=d.locale,
            date_format=d.date_format,
            group_by=d.group_by,
            categories=d.categories,
            section_cap=d.section_cap,
            highlights_max=config.highlights.max,
            priorities=config.priorities,
            enablers=config.enablers,
            repeat_highlights=config.highlights.repeat_in_sections,
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


# ---------------------------------------------------------------------------------------------- window


def issue_window(*, as_of: datetime, last_sent_end: datetime | None, lookback_days: int) -> Window:
    """The time an issue covers: from the end of the last sent issue (or `lookback_days` back) to `as_of`.

    An `as_of` at or before the last sent end gives an empty window (start == end).
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be an aware datetime")
    end = as_of.astimezone(UTC)
    start = last_sent_end if last_sent_end is not None else end - timedelta(days=lookback_days)
    start = start.astimezone(UTC)
    return Window(start=min(start, end), end=end)


def cap_window(window: Window, max_days: int) -> tuple[Window, Window | None]:
    """The window cut to its last `max_days` days, and the older part cut off (None when nothing was).

    After a long pause an issue would otherwise cover everything since the last one: months in one email.
    """
    earliest = window.end - timedelta(days=max_days)
    if window.start >= earliest:
        return window, None
    return Window(start=earliest, end=window.end), Window(start=window.start, end=earliest)


def left_out_entries(
    entries: Iterable[Entry], cut: Window, *, exclude_ids: frozenset[str] = frozenset()
) -> tuple[Entry, ...]:
    """The entries an issue leaves out because its window was capped: those of `cut`, oldest first."""
    return tuple(reversed(select_entries(entries, cut, exclude_ids=exclude_ids)))


def base_issue_id(window: Window, timezone: str) -> str:
    """The ISO week of the window's last moment in the edition's time zone, e.g. `2025-W19`.

    A re-run in the same week gives the same id, so it rebuilds that issue rather than making a new one.
    """
    last = (window.end - _ONE).astimezone(ZoneInfo(timezone))
    year, week, _ = last.isocalendar()
    return f"{year}-W{week:02d}"


def edition_issue_id(window: Window, edition_id: str, cadence: str, timezone: str) -> str:
    """The id of an `[[editions]]` issue: the edition's id, then the period its window ends in, in the
    edition's time zone: `staff-2025-W19` (weekly), `staff-2025-05` (monthly), `staff-2025-05-09` (daily
    and cron). Re-runs in the same period give the same id, so they rebuild that issue."""
    last = (window.end - _ONE).astimezone(ZoneInfo(timezone))
    if cadence == "weekly":
        return f"{edition_id}-{base_issue_id(window, timezone)}"
    if cadence == "monthly":
        return f"{edition_id}-{last:%Y-%m}"
    return f"{edition_id}-{last:%Y-%m-%d}"


def in_window(entry: Entry, window: Window) -> bool:
    return window.start <= entry.published < window.end


def _newest(duplicates: list[Entry]) -> Entry:
    """Of entries sharing an id, the most recently updated (ties broken on every field, not input order)."""
    return max(duplicates, key=lambda e: (e.updated or e.published, e.published, e.source, repr(e)))


def select_entries(
    entries: Iterable[Entry], window: Window, *, exclude_ids: frozenset[str]
) -> tuple[Entry, ...]:
    """Entries inside the window, each id once, leaving out those already sent. Newest first."""
    by_id: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.id in exclude_ids or not in_window(entry, window):
            continue
        by_id.setdefault(entry.id, []).append(entry)
    chosen = [_newest(group) for group in by_id.values()]
    return tuple(sorted(chosen, key=_recency_key))


def _recency_key(entry: Entry) -> tuple[float, str, str]:
    return (-entry.published.timestamp(), entry.title.casefold(), entry.id)


# ---------------------------------------------------------------------------------------------- matching


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u00a0", " ")
    return text.casefold()


@lru_cache(maxsize=4096)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    words = _normalise(keyword).split()
    return re.compile(r"(?<!\w)" + r"\s+".join(re.escape(w) for w in words) + r"(?!\w)")


def _entry_fields(entry: Entry) -> tuple[tuple[float, str], ...]:
    """The matched fields with their weights: title 3, tags and category 2, summary 1 (spaces collapsed)."""
    return (
        (_TITLE_WEIGHT, " ".join(_normalise(entry.title).split())),
        (_TAG_WEIGHT, " | ".join(" ".join(_normalise(t).split()) for t in (*entry.tags, entry.category))),
        (_SUMMARY_WEIGHT, " ".join(_normalise(entry.summary_text).split())),
    )


@lru_cache(maxsize=4096)
def _plain_keyword(keyword: str) -> str:
    return " ".join(_normalise(keyword).split())


def _keyword_match(
    priority: Priority, entry: Entry, fields: tuple[tuple[float, str], ...]
) -> PriorityMatch | None:
    if priority.categories and entry.category.casefold() not in {c.casefold() for c in priority.categories}:
        return None
    found: list[tuple[float, int, str]] = []
    for position, keyword in enumerate(priority.keywords):
        if not keyword.strip():
            continue
        plain = _plain_keyword(keyword)
        pattern = _keyword_pattern(keyword)
        weight = 0.0
        for field_weight, text in fields:  # heaviest field first, so the first hit is the weight
            # A substring test first: most keywords are absent, and `in` is far cheaper than the regex.
            if plain in text and pattern.search(text):
                weight = field_weight
                break
        if weight:
            found.append((weight, position, keyword))
    if not found:
        return None
    found.sort(key=lambda f: (-f[0], f[1]))
    shown = ", ".join(f"'{k}'" for _, _, k in found[:3])
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    strength = sum(w for w, _, _ in found)
    return PriorityMatch(priority=priority.name, reason=f"matched {shown}{more}", strength=strength)


def match_priorities(entry: Entry, priorities: tuple[Priority, ...]) -> tuple[PriorityMatch, ...]:
    """The priorities an entry belongs to, strongest first, each with the reason.

    Keywords match whole words and phrases (case-insensitive, any run of spaces, curly or straight
    apostrophes) in the title (weight 3), tags and category (2) and summary (1); a priority with
    `categories` only matches entries of those categories. A curated item's own `priority` counts most.
    """
    fields = _entry_fields(entry)
    matches: list[tuple[int, PriorityMatch]] = []
    for position, priority in enumerate(priorities):
        if entry.priority and entry.priority.casefold() == priority.name.casefold():
            continue
        match = _keyword_match(priority, entry, fields)
        if match:
            matches.append((position, match))
    if entry.priority:
        name = next(
            (p.name for p in priorities if p.name.casefold() == entry.priority.casefold()), entry.priority
        )
        explicit = PriorityMatch(name, f"tagged '{name}' by its source", _EXPLICIT_STRENGTH)
        matches.append((-1, explicit))
    matches.sort(key=lambda m: (-m[1].strength, m[0]))
    return tuple(m for _, m in matches)


def match_enablers(entry: Entry, enablers: tuple[Priority, ...]) -> tuple[PriorityMatch, ...]:
    """The enablers (the second tier of priorities) an entry belongs to, strongest first.

    Matched by keywords like priorities (a curated item's `priority` names a priority, never an
    enabler). Enablers label entries quietly and never make a highlight.
    """
    if not enablers:
        return ()
    fields = _entry_fields(entry)
    found = [(i, m) for i, p in enumerate(enablers) if (m := _keyword_match(p, entry, fields))]
    found.sort(key=lambda pair: (-pair[1].strength, pair[0]))
    return tuple(m for _, m in found)


def _retagged(
    names: tuple[str, ...], priorities: tuple[Priority, ...], entry_id: str
) -> tuple[PriorityMatch, ...]:
    known = {p.name.casefold(): p.name for p in priorities}
    out = []
    for name in names:
        if name.casefold() not in known:
            raise RenderError(
                f"draft: retag of entry {entry_id!r} names the priority {name!r}, which is not in the config",
                hint=f"use one of: {', '.join(known.values()) or '(no [[priorities]] configured)'}",
            )
        out.append(PriorityMatch(known[name.casefold()], "re-tagged by the editor", _EXPLICIT_STRENGTH))
    return tuple(out)


# ---------------------------------------------------------------------------------------------- grouping


def section_order(categories: Iterable[str], configured: tuple[str, ...]) -> tuple[str, ...]:
    """Categories in the configured order, then any others alphabetically."""
    present = set(categories)
    first = [c for c in configured if c in present]
    rest = sorted(present - set(first), key=lambda c: (c.casefold(), c))
    return (*first, *rest)


def day_label(day: date, settings: ComposeSettings) -> str:
    return format_date(day, settings.date_format, locale=settings.locale)


def _local_day(entry: Entry, zone: ZoneInfo) -> date:
    return entry.published.astimezone(zone).date()


def _group_key(entry: Entry, settings: ComposeSettings) -> date | None:
    if entry.date_estimated or settings.group_by == "none":
        return None
    day = _local_day(entry, settings.zone)
    if settings.group_by == "week":
        return day - timedelta(days=day.weekday())
    return day


def _group_label(key: date | None, settings: ComposeSettings) -> str:
    if key is None:
        return "" if settings.group_by == "none" else UNDATED_LABEL
    if settings.group_by == "week":
        return f"Week of {day_label(key, settings)}"
    return day_label(key, settings)


def _ordered(items: list[IssueEntry], order: Mapping[str, int]) -> list[IssueEntry]:
    """Entries named in the draft's `order` first (in that order), then the rest newest first."""
    return sorted(items, key=lambda i: (order.get(i.entry.id, math.inf), *_recency_key(i.entry)))


def group_sections(
    items: tuple[IssueEntry, ...], settings: ComposeSettings, order: Mapping[str, int]
) -> tuple[Section, ...]:
    """Sections by category (configured order first), each grouped by day or week, newest first."""
    by_category: dict[str, list[IssueEntry]] = {}
    for item in items:
        by_category.setdefault(item.entry.category, []).append(item)
    sections = []
    for category in section_order(by_category, settings.categories):
        by_key: dict[date | None, list[IssueEntry]] = {}
        for item in by_category[category]:
            by_key.setdefault(_group_key(item.entry, settings), []).append(item)
        keys = sorted(by_key, key=lambda k: (k is None, -(k.toordinal() if k else 0)))
        groups = tuple(
            Group(label=_group_label(k, settings), date=k, entries=tuple(_ordered(by_key[k], order)))
            for k in keys
        )
        count = len(by_category[category])
        sections.append(Section(category=category, groups=groups, more=max(0, count - settings.section_cap)))
    return tuple(sections)


def cap_sections(issue: Issue, cap: int) -> Issue:
    """The issue with at most `cap` entries of each section in the email (the rest counted in `more`)."""
    sections = tuple(
        replace(s, more=max(s.more, sum(len(g.entries) for g in s.groups) - cap)) for s in issue.sections
    )
    return replace(issue, sections=sections)


# ---------------------------------------------------------------------------------------------- highlights


def rank_highlights(
    items: tuple[IssueEntry, ...], settings: ComposeSettings, draft: Draft
) -> tuple[Highlight, ...]:
    """Up to `highlights_max` matched entries, strongest match then newest first; pinned entries lead.

    Entries pinned in the draft come first in the draft's order, then entries pinned by their source,
    then the rest; the draft's `highlight_order` moves the entries it names ahead of the ranking (its
    day `order` does not touch the highlights). Pinned entries are always shown, even past the maximum.
    """
    pins = {entry_id: i for i, entry_id in enumerate(draft.pinned)}
    order = {entry_id: i for i, entry_id in enumerate(draft.highlight_order)}

    def pinned_rank(item: IssueEntry) -> float:
        if item.entry.id in pins:
            return pins[item.entry.id]
        return len(pins) if item.entry.pinned else math.inf

    def key(item: IssueEntry) -> tuple[float, float, float, float, str, str]:
        strength = item.matches[0].strength if item.matches else 0.0
        recency, title, entry_id = _recency_key(item.entry)
        return (pinned_rank(item), order.get(item.entry.id, math.inf), -strength, recency, title, entry_id)

    candidates = sorted((i for i in items if i.matches or pinned_rank(i) != math.inf), key=key)
    pinned = [i for i in candidates if pinned_rank(i) != math.inf]
    ranked = [i for i in candidates if pinned_rank(i) == math.inf][
        : max(0, settings.highlights_max - len(pinned))
    ]
    out = []
    for item in (*pinned, *ranked):
        if item.matches:
            out.append(Highlight(item.matches[0].priority, item.matches[0].reason, item))
        else:
            why = "pinned by the editor" if item.entry.id in pins else "pinned by its source"
            out.append(Highlight(EDITOR_PICK, why, item))
    return tuple(out)


# ---------------------------------------------------------------------------------------------- the issue


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:.-")
    return cut + "\u2026"


def subject_line(settings: ComposeSettings, window: Window, *, empty: bool) -> str:
    last_day = (window.end - _ONE).astimezone(settings.zone).date()
    when = format_date(last_day, "long", locale=settings.locale)
    return f"{settings.title}: {'no new updates, ' if empty else ''}{when}"


def preheader_text(highlights: tuple[Highlight, ...], items: tuple[IssueEntry, ...], since: str) -> str:
    """The inbox preview line: how many updates, then the first highlights' titles."""
    if not items:
        return f"No new updates since {since}."
    count = f"{len(items)} update{'s' if len(items) != 1 else ''} this time"
    lead = [h.item.entry.title for h in highlights] or [i.entry.title for i in items]
    return _shorten(f"{count}: " + "; ".join(lead[:3]), _PREHEADER_CHARS)


def reworded(item: IssueEntry, title: str | None, teaser: str | None) -> IssueEntry:
    """The entry with the draft's title and teaser in place of its source's (kept as `original`).

    Priorities are matched on the source's words (before this), so rewording never re-tags an entry.
    """
    if not title and not teaser:
        return item
    entry = item.entry
    changed = replace(
        entry,
        title=title or entry.title,
        summary_text=teaser or entry.summary_text,
        summary_html=f"<p>{html.escape(teaser)}</p>" if teaser else entry.summary_html,
    )
    return replace(item, entry=changed, original=entry)


def compose_issue(
    entries: Iterable[Entry],
    *,
    window: Window,
    issue_id: str,
    edition: int,
    settings: ComposeSettings,
    draft: Draft | None = None,
    exclude_ids: frozenset[str] = frozenset(),
    sources: tuple[SourceReport, ...] = (),
) -> Issue:
    """Compose one issue from every known entry: select, match, apply the draft, rank and group.

    Raises:
        RenderError: the draft re-tags an entry with a priority that is not configured.
    """
    draft = draft or Draft()
    dropped = frozenset(draft.dropped)
    selected = tuple(
        e for e in select_entries(entries, window, exclude_ids=exclude_ids) if e.id not in dropped
    )
    retag = draft.retag_map
    titles, teasers = dict(draft.titles), dict(draft.teasers)
    items = tuple(
        reworded(
            IssueEntry(
                entry=e,
                matches=(
                    _retagged(retag[e.id], settings.priorities, e.id)
                    if e.id in retag
                    else match_priorities(e, settings.priorities)
                ),
                enablers=match_enablers(e, settings.enablers),
            ),
            titles.get(e.id),
            teasers.get(e.id),
        )
        for e in selected
    )
    order = {entry_id: i for i, entry_id in enumerate(draft.order)}
    highlights = rank_highlights(items, settings, draft)
    listed = items
    if not settings.repeat_highlights:
        shown = {h.item.entry.id for h in highlights}
        listed = tuple(i for i in items if i.entry.id not in shown)
    since = day_label(window.start.astimezone(settings.zone).date(), settings)
    return Issue(
        id=issue_id,
        edition=edition,
        title=settings.title,
        window=window,
        subject=draft.subject or subject_line(settings, window, empty=not items),
        preheader=draft.preheader or preheader_text(highlights, items, since),
        intro_markdown=draft.intro,
        highlights=highlights,
        sections=group_sections(listed, settings, order),
        sources=sources,
        empty=not items,
    )


def draft_notes(
    draft: Draft, entries: Iterable[Entry], window: Window, *, exclude_ids: frozenset[str] = frozenset()
) -> tuple[str, ...]:
    """What in a draft cannot apply: ids naming no entry of this issue (a typo, or out of the window)."""
    entries = tuple(entries)
    selectable = {e.id for e in select_entries(entries, window, exclude_ids=exclude_ids)}
    known = {e.id for e in entries}
    notes = []
    for entry_id in sorted(draft.entry_ids - selectable):
        if entry_id in exclude_ids:
            where = "was sent in an earlier issue"
        elif entry_id in known:
            where = "is not in this issue's window"
        else:
            where = "names no known entry"
        notes.append(f"draft: entry {entry_id!r} {where}; its edits were not applied")
    return tuple(notes)
