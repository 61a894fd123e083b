"""The data model shared by every stage: frozen values, tuples for sequences, aware UTC datetimes.

Only the standard library is imported here, so every stage can depend on this module and on nothing else.
Configuration values (Source, Priority, ...) live in `digest.config`; this module holds what flows
between stages: entries, source health, the composed issue and the rendered issue.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import quote


class SourceStatus(enum.StrEnum):
    """Outcome of fetching one source in one run."""

    OK = "ok"
    NOT_MODIFIED = "not_modified"
    FAILED = "failed"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class Image:
    """An entry's picture: an absolute http(s) URL, its alternative text ("" when decorative), and its
    natural size in pixels when the feed or the URL gives it (None when unknown)."""

    url: str
    alt: str
    width: int | None = None
    height: int | None = None


def image_to_dict(image: Image) -> dict[str, object]:
    """An Image as JSON: url and alt, and width/height only when known."""
    data: dict[str, object] = {"url": image.url, "alt": image.alt}
    if image.width is not None:
        data["width"] = image.width
    if image.height is not None:
        data["height"] = image.height
    return data


def image_from_dict(data: dict[str, object]) -> Image:
    """Read back `image_to_dict` (older documents have no width/height)."""
    width, height = data.get("width"), data.get("height")
    return Image(
        str(data["url"]),
        str(data.get("alt") or ""),
        width if isinstance(width, int) else None,
        height if isinstance(height, int) else None,
    )


@dataclass(frozen=True, slots=True)
class Entry:
    """One clean news item, whatever format it came from.

    `id` is stable across runs: the feed's guid/id, else the canonical link, else a content hash.
    `link` is absolute with tracking parameters removed. `published` is aware UTC; when the feed gave
    no date it is the time digest first saw the entry and `date_estimated` is True.
    `summary_html` is sanitised (nh3 allowlist); `summary_text` is a plain-text excerpt.
    `priority`/`pinned` come from curated Markdown items only. `also_from` names the other sources
    that carried the same story (filled by de-duplication). `language` is the BCP 47 tag the feed
    gives the entry (`xml:lang`, `<language>`, JSON Feed `language`), None when it gives none.
    `enriched` names the fields filled in from the entry's article page ("date", "title", "image",
    "summary", "link"). `article` is where that page is when it is not `link`: a local file (relative to
    the config folder) that a local HTML listing links to.
    """

    id: str
    source: str
    category: str
    title: str
    link: str | None
    published: datetime
    updated: datetime | None = None
    date_estimated: bool = False
    summary_html: str = ""
    summary_text: str = ""
    author: str | None = None
    tags: tuple[str, ...] = ()
    image: Image | None = None
    priority: str | None = None
    pinned: bool = False
    also_from: tuple[str, ...] = ()
    enriched: tuple[str, ...] = ()
    article: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class SourceReport:
    """Health of one source after a fetch: what `digest fetch` shows and `issue.json` carries."""

    name: str
    url: str
    category: str
    status: SourceStatus
    entries: int = 0
    http_status: int | None = None
    error: str | None = None
    redirected_to: str | None = None
    permanent_redirect: bool = False
    newest_entry: datetime | None = None
    consecutive_failures: int = 0
    fetched_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open time range [start, end) an issue covers, aware UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class PriorityMatch:
    """Why an entry belongs to a strategic priority ("matched 'midwives'"), and how strongly."""

    priority: str
    reason: str
    strength: float


@dataclass(frozen=True, slots=True)
class IssueEntry:
    """An entry as placed in an issue, with the priorities it was matched (or re-tagged) to, and the
    enablers (the second tier, never highlighted) it was matched to."""

    entry: Entry
    matches: tuple[PriorityMatch, ...] = ()
    enablers: tuple[PriorityMatch, ...] = ()
    # The entry as its source gave it, when the draft changed its title or teaser (None: unchanged).
    original: Entry | None = None

    @property
    def priorities(self) -> tuple[str, ...]:
        return tuple(m.priority for m in self.matches)


@dataclass(frozen=True, slots=True)
class Highlight:
    """One entry in the priority highlights at the top of the issue."""

    priority: str
    reason: str
    item: IssueEntry


@dataclass(frozen=True, slots=True)
class Group:
    """Entries of one section under one heading (a day, a week, or everything)."""

    label: str
    date: date | None
    entries: tuple[IssueEntry, ...]


@dataclass(frozen=True, slots=True)
class Section:
    """A category's entries, grouped; `more` counts entries left out of the email by the section cap."""

    category: str
    groups: tuple[Group, ...]
    more: int = 0


@dataclass(frozen=True, slots=True)
class Issue:
    """One composed edition of the digest, ready to render. Built by the pure compose stage."""

    id: str
    edition: int
    title: str
    window: Window
    subject: str
    preheader: str
    intro_markdown: str
    highlights: tuple[Highlight, ...]
    sections: tuple[Section, ...]
    sources: tuple[SourceReport, ...] = ()
    empty: bool = False

    @property
    def entries(self) -> tuple[IssueEntry, ...]:
        """Every entry of the issue once: those of the sections, then any highlighted entry that is not
        repeated in its section (`[highlights] repeat_in_sections = false`)."""
        listed = tuple(e for s in self.sections for g in s.groups for e in g.entries)
        ids = {e.entry.id for e in listed}
        extra = tuple(h.item for h in self.highlights if h.item.entry.id not in ids)
        return listed + tuple({e.entry.id: e for e in extra}.values())


@dataclass(frozen=True, slots=True)
class RenderedIssue:
    """The final artefacts of one issue: inlined HTML email, plain text, web page, and notes."""

    issue: Issue
    email_html: str
    email_text: str
    web_html: str
    notes: tuple[str, ...] = field(default=())


# Personal parts of a rendered email. Render writes these markers into email.html and email.txt once per
# issue; deliver replaces them per recipient (HTML-escaped in the HTML part), never re-rendering.
NAME_PLACEHOLDER = "%%DIGEST_NAME%%"
UNSUBSCRIBE_URL_PLACEHOLDER = "%%DIGEST_UNSUBSCRIBE_URL%%"
# The reader's preference page (name, address, unsubscribe); in the footer when [subscribe] enabled = true.
PREFERENCES_URL_PLACEHOLDER = "%%DIGEST_PREFERENCES_URL%%"


@dataclass(frozen=True, slots=True)
class Draft:
    """The comms team's edits to one issue; its TOML file is read and written only by `digest.compose.draft`.

    Entry ids name entries; `retag` maps an entry id to the priority names that replace its matches.
    `order` places entries within their day (or week) group; `highlight_order` places the highlights
    that are not pinned in the draft, so a move in one list never reorders the other.
    """

    intro: str = ""
    pinned: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    retag: tuple[tuple[str, tuple[str, ...]], ...] = ()
    highlight_order: tuple[str, ...] = ()
    # This issue's subject line and preheader, replacing the configured ones ("": the configured).
    subject: str = ""
    preheader: str = ""
    # Entry id -> the title / teaser readers see instead of the source's.
    titles: tuple[tuple[str, str], ...] = ()
    teasers: tuple[tuple[str, str], ...] = ()

    @property
    def is_empty(self) -> bool:
        return self == Draft()

    @property
    def retag_map(self) -> dict[str, tuple[str, ...]]:
        return dict(self.retag)

    @property
    def entry_ids(self) -> frozenset[str]:
        """Every entry id the draft names."""
        return frozenset(
            (
                *self.pinned,
                *self.dropped,
                *self.order,
                *self.highlight_order,
                *(i for i, _ in self.retag),
                *(i for i, _ in self.titles),
                *(i for i, _ in self.teasers),
            )
        )


# --- the digest's own addresses (pure: used by render, publish, deliver and the web apps) -------------


def unsubscribe_url(base_url: str, token: str) -> str:
    """The page (GET: confirmation form, POST: unsubscribe) a token is used at."""
    return f"{base_url.rstrip('/')}/unsubscribe?token={quote(token, safe='')}"


def issue_url(base_url: str, issue_id: str) -> str:
    """The web-archive page of one issue: the email's "view in browser" link."""
    return f"{base_url.rstrip('/')}/issues/{quote(issue_id, safe='')}/"
