"""What the templates get: an Issue as small view objects, the editor's intro as HTML, text filters.

Part of the render stage, without jinja2 (which only `digest.render` imports): `issue_context` turns a
composed Issue into cards, groups and sections, with feed text sanitised (nh3) and any personalisation
marker in it made inert; `intro_html` renders the editor's Markdown; `wrap_text`, `wrap_markdown` and
`underline` are the plain-text template's filters.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import nh3
from babel.dates import format_date
from markdown_it import MarkdownIt
from markupsafe import Markup
from wcwidth import wcswidth, wcwidth

from digest.models import (
    NAME_PLACEHOLDER,
    PREFERENCES_URL_PLACEHOLDER,
    UNSUBSCRIBE_URL_PLACEHOLDER,
    Entry,
    Image,
    Issue,
    IssueEntry,
    issue_url,
)
from digest.render.markdown_text import markdown_to_text
from digest.render.settings import PriorityStyle, RenderOptions, RenderSettings

TEXT_WIDTH = 78
# After the hidden preheader: zero-width non-joiners and no-break spaces, so the inbox preview ends there.
PREHEADER_SPACER = Markup("&zwnj;&nbsp;" * 90)  # noqa: S704 - a constant, no input in it
# The width of the email's picture slot: the 600 px body less 24 px padding each side.
IMAGE_SLOT = 552
_LINK_WITH_HREF = re.compile(r"<a (?=[^>]*\bhref=)")
_EMPTY_LINK = re.compile(r"<a\b[^>]*>\s*</a>")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_WEB_TAGS = {"p", "br", "a", "strong", "b", "em", "i", "ul", "ol", "li", "blockquote", "code"}


# ---------------------------------------------------------------------------------------------- views


@dataclass(frozen=True, slots=True)
class Card:
    """One entry as the templates show it."""

    id: str
    anchor: str
    title: str
    link: str | None
    excerpt: str
    summary_html: Markup
    source: str
    category: str
    date_label: str
    date_estimated: bool
    priorities: tuple[PriorityStyle, ...]
    image: Image | None
    highlighted: bool
    author: str | None
    enablers: tuple[PriorityStyle, ...] = ()
    lang: str | None = None
    dir: str | None = None

    @property
    def image_width(self) -> int:
        """The picture's width in the email: its natural width up to the slot, the slot when unknown."""
        if self.image is None or self.image.width is None:
            return IMAGE_SLOT
        return min(self.image.width, IMAGE_SLOT)

    @property
    def image_height(self) -> int | None:
        """The picture's height at `image_width`, when its natural size is known."""
        image = self.image
        if image is None or image.width is None or image.height is None:
            return None
        return max(1, round(image.height * self.image_width / image.width))


@dataclass(frozen=True, slots=True)
class HighlightView:
    """A highlight as readers see it: the priority label only (the tagging reason is for the comms team)."""

    priority: PriorityStyle
    card: Card


@dataclass(frozen=True, slots=True)
class GroupView:
    label: str
    cards: tuple[Card, ...]


@dataclass(frozen=True, slots=True)
class SectionView:
    """A section; `groups` hold what the email shows, `all_groups` everything (for the web version)."""

    category: str
    anchor: str
    groups: tuple[GroupView, ...]
    all_groups: tuple[GroupView, ...]
    more: int
    more_url: str


_PLACEHOLDER_PREFIX = "%%DIGEST_"


def defuse(text: str) -> str:
    """Feed text that happens to contain a personalisation marker, made inert (a word joiner inside it).

    Deliver replaces `%%DIGEST_...%%` markers in the rendered email; a feed title carrying one must not
    turn into someone's unsubscribe link.
    """
    return text.replace(_PLACEHOLDER_PREFIX, "%%\u2060DIGEST_")


def defuse_url(url: str) -> str:
    """A URL with any personalisation marker percent-encoded (`%%` -> `%25%25`), so it stays literal."""
    return url.replace(_PLACEHOLDER_PREFIX, "%25%25DIGEST_")


def excerpt(entry: Entry, limit: int) -> str:
    """A plain-text excerpt of at most `limit` characters, cut at a word boundary."""
    text = entry.summary_text or html.unescape(nh3.clean(entry.summary_html, tags=set()))
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:.-\u2026")
    return cut + "\u2026"


# Scripts and languages written right to left (ISO 15924 codes; ISO 639 codes usually written in them).
_RTL_SCRIPTS = frozenset({"arab", "hebr", "thaa", "syrc", "nkoo", "adlm", "rohg", "mand", "samr"})
_RTL_LANGUAGES = frozenset(
    {"ar", "arc", "ckb", "dv", "fa", "he", "iw", "ks", "ku-arab", "ps", "sd", "ug", "ur", "yi", "syr"}
)


def part_language(language: str | None, edition: str) -> tuple[str | None, str | None]:
    """The `lang` and `dir` an entry's part needs (WCAG 3.1.2): (None, None) when its language is unknown
    or the edition's (the primary subtags compare: en-US inside an en-GB edition needs nothing)."""
    if not language:
        return None, None
    primary = language.split("-", 1)[0].casefold()
    if primary == edition.split("-", 1)[0].casefold():
        return None, None
    subtags = [s.casefold() for s in language.split("-")]
    rtl = any(s in _RTL_SCRIPTS for s in subtags[1:]) or (
        primary in _RTL_LANGUAGES and not any(len(s) == 4 and s not in _RTL_SCRIPTS for s in subtags[1:])
    )
    return language, "rtl" if rtl else "ltr"


def _slug(text: str) -> str:
    return "section-" + (re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-") or "other")


def _date_label(value: datetime, settings: RenderSettings) -> str:
    local = value.astimezone(ZoneInfo(settings.timezone)).date()
    return format_date(local, settings.date_format, locale=settings.locale)


def _card(
    item: IssueEntry, settings: RenderSettings, options: RenderOptions, highlighted: frozenset[str]
) -> Card:
    entry = item.entry
    summary = nh3.clean(entry.summary_html, tags=_WEB_TAGS, link_rel=None)
    summary = _LINK_WITH_HREF.sub('<a rel="noopener noreferrer" ', summary)
    # A link around a picture is left empty once the picture is removed: drop it (it names nothing).
    summary = _TRAILING_SPACE.sub("\n", _EMPTY_LINK.sub("", summary))
    if not summary.strip() and entry.summary_text:
        summary = f"<p>{html.escape(entry.summary_text)}</p>"
    image = entry.image if options.images else None
    lang, direction = part_language(entry.language, settings.lang)
    if image is not None and image.width is not None and image.width < settings.min_image_width:
        image = None  # an avatar or an icon, stored before [digest] min_image_width was raised
    return Card(
        id=entry.id,
        anchor="entry-" + hashlib.sha256(entry.id.encode("utf-8")).hexdigest()[:12],
        title=defuse(" ".join(entry.title.split()) or "(untitled)"),
        link=defuse_url(entry.link) if entry.link else None,
        excerpt="" if options.headlines_only else defuse(excerpt(entry, options.excerpt_chars)),
        summary_html=Markup(defuse(summary)),  # noqa: S704 - sanitised by nh3 just above
        source=defuse(entry.source),
        category=defuse(entry.category),
        date_label="" if entry.date_estimated else _date_label(entry.published, settings),
        date_estimated=entry.date_estimated,
        priorities=tuple(settings.style_for(m.priority) for m in item.matches),
        image=(Image(defuse_url(image.url), defuse(image.alt), image.width, image.height) if image else None),
        highlighted=entry.id in highlighted,
        author=defuse(entry.author) if entry.author else None,
        enablers=tuple(settings.enabler_style(m.priority) for m in item.enablers),
        lang=lang,
        dir=direction,
    )


def _shown(groups: tuple[GroupView, ...], limit: int) -> tuple[GroupView, ...]:
    """The first `limit` cards across the groups, keeping the grouping."""
    out = []
    for group in groups:
        if limit <= 0:
            break
        out.append(GroupView(group.label, group.cards[:limit]))
        limit -= len(group.cards)
    return tuple(out)


def issue_context(issue: Issue, settings: RenderSettings, options: RenderOptions) -> dict[str, Any]:
    """The names every template gets."""
    highlighted = frozenset(h.item.entry.id for h in issue.highlights)
    web_url = issue_url(settings.base_url, issue.id)
    sections = []
    for section in issue.sections:
        all_groups = tuple(
            GroupView(g.label, tuple(_card(i, settings, options, highlighted) for i in g.entries))
            for g in section.groups
        )
        total = sum(len(g.cards) for g in all_groups)
        anchor = _slug(section.category)
        sections.append(
            SectionView(
                category=defuse(section.category),
                anchor=anchor,
                groups=_shown(all_groups, total - section.more),
                all_groups=all_groups,
                more=section.more,
                more_url=f"{web_url}#{anchor}",
            )
        )
    zone = ZoneInfo(settings.timezone)
    last_day = issue.window.end.astimezone(zone) - timedelta(microseconds=1)
    return {
        "issue": issue,
        "settings": settings,
        "colours": settings.colours,
        "options": options,
        "subject": defuse(issue.subject),
        "preheader": defuse(issue.preheader),
        "preheader_spacer": PREHEADER_SPACER,
        "date_label": format_date(last_day.date(), settings.date_format, locale=settings.locale),
        "since_label": _date_label(issue.window.start, settings),
        "intro_html": intro_html(defuse(issue.intro_markdown)),
        "intro_markdown": defuse(issue.intro_markdown),
        "highlights": tuple(
            HighlightView(settings.style_for(h.priority), _card(h.item, settings, options, frozenset()))
            for h in issue.highlights
        ),
        "sections": tuple(sections),
        "explained": tuple(p for p in settings.priorities if p.summary)
        if settings.explain_priorities
        else (),
        "entry_count": len(issue.entries),
        "web_url": web_url,
        "archive_url": settings.base_url + "/",
        "name_placeholder": NAME_PLACEHOLDER,
        "unsubscribe_url": UNSUBSCRIBE_URL_PLACEHOLDER,
        "preferences_url": PREFERENCES_URL_PLACEHOLDER if settings.preferences else "",
    }


# ---------------------------------------------------------------------------------------------- markdown

_markdown = MarkdownIt("commonmark", {"html": False, "typographer": False})
_HEADING = re.compile(r"<(/?)h([1-6])>")


def intro_html(markdown: str) -> Markup:
    """The editor's intro as HTML: raw HTML in it is escaped, headings start at h2 and skip no level."""
    if not markdown.strip():
        return Markup("")
    rendered = _markdown.render(markdown)
    levels = sorted({int(m.group(2)) for m in _HEADING.finditer(rendered)})
    mapping = {level: min(2 + i, 6) for i, level in enumerate(levels)}
    rendered = _HEADING.sub(lambda m: f"<{m.group(1)}h{mapping[int(m.group(2))]}>", rendered)
    rendered = nh3.clean(
        rendered,
        tags={
            "p",
            "br",
            "a",
            "strong",
            "em",
            "ul",
            "ol",
            "li",
            "blockquote",
            "code",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "img",
            "hr",
        },
        attributes={"a": {"href", "title"}, "img": {"src", "alt", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel=None,
    )
    return Markup(rendered)  # noqa: S704 - markdown with raw HTML off, then cleaned by nh3


# ---------------------------------------------------------------------------------------------- text


_WIDE_OR_WORD = re.compile(
    r"(\s+)|([\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\U00020000-\U0003fffd])|([^\s\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\U00020000-\U0003fffd]+)"
)


def display_width(text: str) -> int:
    """Columns `text` takes in a terminal or a mail client's monospace view (a CJK character takes two)."""
    width = wcswidth(text)
    return width if width >= 0 else sum(max(0, wcwidth(ch)) for ch in text)


# Closing punctuation that never starts a line (kinsoku): CJK full-width marks and closing brackets.
_NO_LINE_START = frozenset(
    "\u3001\u3002\uff0c\uff0e\uff1a\uff1b\uff01\uff1f\uff09\u300d\u300f\u3011\u201d\u2019\u30fb"
)


def _fill(text: str, width: int, initial: str, subsequent: str) -> str:
    """Greedy wrapping by display width: words break at spaces, CJK text between any two characters
    (never before closing punctuation such as "\u3002"); a URL or a long word is never broken."""
    lines: list[str] = []
    line: list[tuple[str, str]] = []  # (joiner, token) after the indent
    indent = initial
    used, space = display_width(initial), False
    for gap, wide, word in _WIDE_OR_WORD.findall(text):
        if gap:
            space = True
            continue
        token = wide or word
        joiner = " " if space and line else ""
        size = display_width(token)
        if line and used + len(joiner) + size > width:
            carried: list[tuple[str, str]] = []
            if token in _NO_LINE_START and len(line) > 1 and not line[-1][0]:
                carried = [("", line.pop()[1])]  # the character before the mark goes down with it
            lines.append(indent + "".join(j + t for j, t in line))
            indent, line, joiner = subsequent, carried, ""
            used = display_width(subsequent) + sum(display_width(t) for _, t in carried)
        line.append((joiner, token))
        used += len(joiner) + size
        space = False
    lines.append(indent + "".join(j + t for j, t in line))
    return "\n".join(lines)


def wrap_text(text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """Wrap each paragraph (blank-line separated) at `width` columns of display width (a CJK character
    takes two); URLs and long words are never broken."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    out = []
    for i, paragraph in enumerate(paragraphs):
        initial = first if first is not None and i == 0 else indent
        out.append(_fill(" ".join(paragraph.split()), width, initial, indent))
    return "\n\n".join(out)


def wrap_markdown(text: str, width: int = TEXT_WIDTH) -> str:
    """The editor's Markdown for the plain-text part: markup removed, links as "text (url)", wrapped."""
    return markdown_to_text(text, width)


def underline(text: str, char: str = "=") -> str:
    return char * min(display_width(text), TEXT_WIDTH)
