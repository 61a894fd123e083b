"""The only importer of jinja2: a composed Issue -> MJML source, plain text, and the web version's HTML.

Templates are looked up along a search path: the `[theme] templates` folder first (when configured), then
the built-in templates, so a theme overrides one file by having a file of the same name. The built-in
templates are the repository's `templates/` folder, found (see `builtin_template_dirs`) through the
DIGEST_TEMPLATES environment variable when set, else next to the `digest` package (a checkout or an
editable install), else under `<prefix>/share/digest/templates` (where a wheel install puts them).
Templates get the Issue's content as small view objects and the edition's settings (`RenderSettings`),
never the raw config. Autoescaping is on for every template except `*.txt`; undefined names are errors.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import nh3
from babel import Locale
from babel.dates import format_date
from markdown_it import MarkdownIt
from markupsafe import Markup

from digest.colour import contrast_ratio
from digest.config import Config
from digest.errors import RenderError, TemplateNotFoundError
from digest.models import NAME_PLACEHOLDER, UNSUBSCRIBE_URL_PLACEHOLDER, Entry, Image, Issue, IssueEntry
from digest.tokens import issue_url

TEMPLATES_ENV = "DIGEST_TEMPLATES"
# The repository's templates/ folder, beside the package in a checkout or an editable install.
BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# Where a wheel install puts the same folder ([tool.setuptools.data-files] in pyproject.toml).
INSTALLED_TEMPLATES = Path(sys.prefix) / "share" / "digest" / "templates"
EMAIL_TEMPLATE = "email.mjml"
TEXT_TEMPLATE = "email.txt"
WEB_TEMPLATE = "web.html"
TEXT_WIDTH = 78
_WHITE = "#FFFFFF"
_LINK_WITH_HREF = re.compile(r"<a (?=[^>]*\bhref=)")
_WEB_TAGS = {"p", "br", "a", "strong", "b", "em", "i", "ul", "ol", "li", "blockquote", "code"}


@dataclass(frozen=True, slots=True)
class Colours:
    primary: str = "#005EB8"
    text: str = "#212B32"
    background: str = "#F0F4F5"
    card: str = "#FFFFFF"
    secondary_text: str = "#4C6272"
    dark_link: str = "#8CC8FF"


@dataclass(frozen=True, slots=True)
class PriorityStyle:
    """How a priority's label looks: its colour and a text colour readable on it (4.5:1 or more)."""

    name: str
    colour: str
    text_colour: str
    link: str | None = None
    summary: str = ""


@dataclass(frozen=True, slots=True)
class RenderSettings:
    """Everything about the edition the templates may use, taken from the config once."""

    title: str
    lang: str
    timezone: str
    locale: str
    date_format: str
    base_url: str
    organisation: str = ""
    organisation_line: str = ""
    logo_url: str | None = None
    logo_alt: str = ""
    why_line: str = ""
    colours: Colours = field(default_factory=Colours)
    priorities: tuple[PriorityStyle, ...] = ()
    template_dirs: tuple[Path, ...] = (BUILTIN_TEMPLATES,)

    @classmethod
    def from_config(cls, config: Config) -> RenderSettings:
        t = config.theme
        colours = Colours(
            primary=t.primary_colour,
            text=t.text_colour,
            background=t.background_colour,
            card=t.card_colour,
            secondary_text=t.secondary_text_colour,
            dark_link=t.dark_link_colour,
        )
        return cls(
            title=config.digest.title,
            lang=html_lang(config.digest.locale),
            timezone=config.digest.timezone,
            locale=config.digest.locale,
            date_format=config.digest.date_format,
            base_url=config.web.base_url,
            organisation=t.organisation,
            organisation_line=t.organisation_line,
            logo_url=t.logo_url,
            logo_alt=t.logo_alt,
            why_line=t.why_line,
            colours=colours,
            priorities=tuple(
                priority_style(p.name, p.colour or colours.primary, colours.text, p.link, p.summary)
                for p in config.priorities
            ),
            template_dirs=template_search_path(t.templates),
        )

    def style_for(self, name: str) -> PriorityStyle:
        for style in self.priorities:
            if style.name == name:
                return style
        return priority_style(name, self.colours.secondary_text, self.colours.text)


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """What the size budget may change: excerpt length, headlines only, and pictures."""

    excerpt_chars: int = 240
    headlines_only: bool = False
    images: bool = True


@dataclass(frozen=True, slots=True)
class RenderedParts:
    """The output of the template stage: MJML source (still to compile), plain text, web page HTML."""

    mjml: str
    text: str
    web_html: str


def html_lang(locale: str) -> str:
    """A BCP 47 language tag for `<html lang>` from a babel locale code: en_GB -> en-GB."""
    parsed = Locale.parse(locale)
    return "-".join(p for p in (parsed.language, parsed.script, parsed.territory) if p)


def priority_style(
    name: str, colour: str, dark_text: str, link: str | None = None, summary: str = ""
) -> PriorityStyle:
    """White label text when it reads at 4.5:1 on the colour, else the dark text colour."""
    text = _WHITE if contrast_ratio(_WHITE, colour) >= 4.5 else dark_text
    return PriorityStyle(name, colour, text, link, summary)


def builtin_template_dirs(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """Where the built-in templates are: the first of the candidates that holds them.

    DIGEST_TEMPLATES, when set, is taken as given (a wrong folder fails, naming it, rather than being
    silently passed over). Otherwise the `templates/` folder beside the package, then
    `<prefix>/share/digest/templates`; when neither holds `email.mjml`, both are returned, so that the
    "template not found" error lists each path searched.
    """
    env = os.environ if environ is None else environ
    if env.get(TEMPLATES_ENV):
        return (Path(env[TEMPLATES_ENV]).expanduser().resolve(),)
    candidates = (BUILTIN_TEMPLATES, INSTALLED_TEMPLATES)
    for folder in candidates:
        if (folder / EMAIL_TEMPLATE).is_file():
            return (folder,)
    return candidates


def template_search_path(
    theme_dir: Path | None, environ: Mapping[str, str] | None = None
) -> tuple[Path, ...]:
    """The theme folder (if any) first, then the built-in templates."""
    return ((theme_dir,) if theme_dir else ()) + builtin_template_dirs(environ)


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
    reasons: tuple[str, ...]
    image: Image | None
    highlighted: bool
    author: str | None


@dataclass(frozen=True, slots=True)
class HighlightView:
    priority: PriorityStyle
    reason: str
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
    if not summary.strip() and entry.summary_text:
        summary = f"<p>{html.escape(entry.summary_text)}</p>"
    image = entry.image if options.images and not options.headlines_only else None
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
        reasons=tuple(defuse(f"{m.priority}: {m.reason}") for m in item.matches),
        image=Image(defuse_url(image.url), defuse(image.alt)) if image else None,
        highlighted=entry.id in highlighted,
        author=defuse(entry.author) if entry.author else None,
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
        "date_label": format_date(last_day.date(), settings.date_format, locale=settings.locale),
        "since_label": _date_label(issue.window.start, settings),
        "intro_html": intro_html(defuse(issue.intro_markdown)),
        "intro_markdown": defuse(issue.intro_markdown),
        "highlights": tuple(
            HighlightView(
                settings.style_for(h.priority), h.reason, _card(h.item, settings, options, frozenset())
            )
            for h in issue.highlights
        ),
        "sections": tuple(sections),
        "entry_count": len(issue.entries),
        "web_url": web_url,
        "archive_url": settings.base_url + "/",
        "name_placeholder": NAME_PLACEHOLDER,
        "unsubscribe_url": UNSUBSCRIBE_URL_PLACEHOLDER,
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


def wrap_text(text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """Wrap each paragraph (blank-line separated) at `width`; URLs and long words are never broken."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    out = []
    for i, paragraph in enumerate(paragraphs):
        initial = first if first is not None and i == 0 else indent
        out.append(
            textwrap.fill(
                " ".join(paragraph.split()),
                width=width,
                initial_indent=initial,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return "\n\n".join(out)


_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


def wrap_markdown(text: str, width: int = TEXT_WIDTH) -> str:
    """Wrap Markdown for the plain-text part: paragraphs wrapped, list items and headings kept per line."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        lines = paragraph.splitlines()
        if any(_LIST_ITEM.match(line) or line.lstrip().startswith("#") for line in lines):
            wrapped = []
            for line in lines:
                marker = _LIST_ITEM.match(line)
                hang = " " * len(marker.group(0)) if marker else ""
                wrapped.append(
                    wrap_text(line, width, indent=hang, first=line[: len(line) - len(line.lstrip())])
                )
            out.append("\n".join(wrapped))
        elif paragraph.strip():
            out.append(wrap_text(paragraph, width))
    return "\n\n".join(out)


def underline(text: str, char: str = "=") -> str:
    return char * min(len(text), TEXT_WIDTH)


# ---------------------------------------------------------------------------------------------- environment


def make_environment(search_path: Sequence[Path]) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in search_path]),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "mjml", "xml"), disabled_extensions=("txt",), default=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = wrap_text
    env.filters["underline"] = underline
    env.filters["wrap_markdown"] = wrap_markdown
    return env


class TemplateSet:
    """The templates of one search path, loaded once and reused for every render."""

    def __init__(self, search_path: Sequence[Path]) -> None:
        self.search_path = tuple(search_path)
        self.env = make_environment(self.search_path)

    def render(self, name: str, context: dict[str, Any]) -> str:
        """Render one template.

        Raises:
            TemplateNotFoundError: the template (or one it includes) is in no folder of the search path.
            RenderError: the template has a syntax error or uses an undefined name.
        """
        try:
            return self.env.get_template(name).render(context)
        except jinja2.TemplateNotFound as e:
            missing = e.name if isinstance(e.name, str) else name
            searched = ", ".join(str(p / missing) for p in self.search_path)
            raise TemplateNotFoundError(
                f"template {missing!r} not found; searched: {searched}",
                hint=(
                    "restore the file in templates/ or fix [theme] templates in the config; if digest's"
                    f" own templates/ folder is missing, set {TEMPLATES_ENV} to a copy of it"
                ),
            ) from None
        except jinja2.TemplateSyntaxError as e:
            raise RenderError(
                f"{e.filename or e.name or name}:{e.lineno}: template syntax error: {e.message}",
                hint="fix the template at the line given",
            ) from e
        except jinja2.UndefinedError as e:
            raise RenderError(
                f"template {name!r}: {e.message}", hint="the template uses a name digest does not provide"
            ) from e


def template_layout(search_path: Sequence[Path]) -> tuple[tuple[str, ...], ...]:
    """Which template files each folder of the search path holds (relative paths, sorted).

    An added or removed file changes which folder a name resolves to, which Jinja2's own reload check
    (the mtime of the file it loaded) cannot notice; an edited file it does notice.
    """
    layout = []
    for folder in search_path:
        try:
            names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        except OSError:
            names = []
        layout.append(tuple(names))
    return tuple(layout)


@lru_cache(maxsize=8)
def _template_set(search_path: tuple[Path, ...], layout: tuple[tuple[str, ...], ...]) -> TemplateSet:
    return TemplateSet(search_path)


def templates_for(search_path: tuple[Path, ...]) -> TemplateSet:
    """The template set of a search path, reused while its folders hold the same files.

    A long-running process (`digest schedule`, `digest preview`) picks up a new or removed override
    template (a fresh set is made) and an edited one (Jinja2 reloads a file whose mtime changed).
    """
    return _template_set(search_path, template_layout(search_path))


class PageSet:
    """HTML page templates of one folder (the web area's preview, unsubscribe and archive pages).

    Every template is autoescaped whatever its name, and undefined names are errors, so feed content
    reaches a page only as escaped text. Jinja2 reloads a template whose file changed.
    """

    def __init__(self, folder: Path, *, filters: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self.folder = folder
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(folder)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(filters or {})

    def render(self, name: str, **context: Any) -> str:
        """Render one page template with `context` (every value escaped unless marked safe).

        Raises:
            TemplateNotFoundError: there is no such template in the folder.
            RenderError: the template has a syntax error or uses an undefined name.
        """
        try:
            return self.env.get_template(name).render(**context)
        except jinja2.TemplateNotFound as e:
            raise TemplateNotFoundError(
                f"page template {name!r} not found in {self.folder}",
                hint="reinstall digest: its page templates are part of the package",
            ) from e
        except jinja2.TemplateSyntaxError as e:
            raise RenderError(f"{e.filename or name}:{e.lineno}: template syntax error: {e.message}") from e
        except jinja2.UndefinedError as e:
            raise RenderError(f"page template {name!r}: {e.message}") from e


def render_issue(
    issue: Issue, settings: RenderSettings, options: RenderOptions, templates: TemplateSet | None = None
) -> RenderedParts:
    """Render an issue's MJML, plain text and web page (the MJML still needs `compile.compile_email`)."""
    templates = templates or templates_for(settings.template_dirs)
    context = issue_context(issue, settings, options)
    return RenderedParts(
        mjml=templates.render(EMAIL_TEMPLATE, context),
        text=_tidy_text(templates.render(TEXT_TEMPLATE, context)),
        web_html=templates.render(WEB_TEMPLATE, context),
    )


def _tidy_text(text: str) -> str:
    """Trailing spaces gone, at most one blank line in a row, one final newline."""
    lines = [line if line == "-- " else line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out).strip("\n") + "\n"
