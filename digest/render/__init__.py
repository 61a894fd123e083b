"""The only importer of jinja2: a composed Issue -> MJML source, plain text, and the web version's HTML.

Templates are looked up along a search path: the `[theme] templates` folder first (when configured), then
the built-in templates, so a theme overrides one file by having a file of the same name. The built-in
templates are package data (`digest/templates/`), found through `importlib.resources` wherever the package
is installed (a checkout, `pip install -e`, `pip install --user`, any prefix or `--target`); the
DIGEST_TEMPLATES environment variable, when set, names another folder to use instead.
Templates get the Issue's content as small view objects (made in `digest.render.context`) and the
edition's settings (`RenderSettings`), never the raw config. Autoescaping is on for every template
except `*.txt`; undefined names are errors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from babel import Locale

from digest.checks.colour import contrast_ratio
from digest.config import Config
from digest.errors import RenderError, TemplateNotFoundError
from digest.models import Issue
from digest.render.context import (
    TEXT_WIDTH,
    Card,
    GroupView,
    HighlightView,
    SectionView,
    defuse,
    defuse_url,
    excerpt,
    intro_html,
    issue_context,
    part_language,
    underline,
    wrap_markdown,
    wrap_text,
)

__all__ = [
    "BUILTIN_TEMPLATES",
    "EMAIL_TEMPLATE",
    "TEMPLATES_ENV",
    "TEXT_TEMPLATE",
    "TEXT_WIDTH",
    "WEB_TEMPLATE",
    "Card",
    "Colours",
    "GroupView",
    "HighlightView",
    "PageSet",
    "PriorityStyle",
    "RenderOptions",
    "RenderSettings",
    "RenderedParts",
    "SectionView",
    "TemplateSet",
    "builtin_template_dirs",
    "defuse",
    "defuse_url",
    "excerpt",
    "html_lang",
    "intro_html",
    "issue_context",
    "make_environment",
    "part_language",
    "priority_style",
    "render_issue",
    "template_layout",
    "template_search_path",
    "templates_for",
    "underline",
    "wrap_markdown",
    "wrap_text",
]

TEMPLATES_ENV = "DIGEST_TEMPLATES"
# The built-in templates: package data ([tool.setuptools.package-data] in pyproject.toml), a folder on
# disk for every install pip makes (wheels are unpacked), so Jinja2's FileSystemLoader reads it.
BUILTIN_TEMPLATES = Path(str(resources.files("digest") / "templates"))
EMAIL_TEMPLATE = "email.mjml"
TEXT_TEMPLATE = "email.txt"
WEB_TEMPLATE = "web.html"
_WHITE = "#FFFFFF"


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
    enablers: tuple[PriorityStyle, ...] = ()
    explain_priorities: bool = False
    min_image_width: int = 120
    preferences: bool = False  # the footer links to the preference page ([subscribe] enabled)
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
            enablers=tuple(
                priority_style(p.name, colours.secondary_text, colours.text, p.link, p.summary)
                for p in config.enablers
            ),
            explain_priorities=config.highlights.explain,
            min_image_width=config.digest.min_image_width,
            preferences=config.subscribe.enabled,
            template_dirs=template_search_path(t.templates),
        )

    def enabler_style(self, name: str) -> PriorityStyle:
        for style in self.enablers:
            if style.name == name:
                return style
        return priority_style(name, self.colours.secondary_text, self.colours.text)

    def style_for(self, name: str) -> PriorityStyle:
        for style in self.priorities:
            if style.name == name:
                return style
        return priority_style(name, self.colours.secondary_text, self.colours.text)


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """What the size budget may change: excerpt length, headlines only (no excerpts), and pictures."""

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
    """Where the built-in templates are: DIGEST_TEMPLATES when set, else the package's own folder.

    DIGEST_TEMPLATES is taken as given (a wrong folder fails, naming it, rather than being silently
    passed over).
    """
    env = os.environ if environ is None else environ
    if env.get(TEMPLATES_ENV):
        return (Path(env[TEMPLATES_ENV]).expanduser().resolve(),)
    return (BUILTIN_TEMPLATES,)


def template_search_path(
    theme_dir: Path | None, environ: Mapping[str, str] | None = None
) -> tuple[Path, ...]:
    """The theme folder (if any) first, then the built-in templates."""
    return ((theme_dir,) if theme_dir else ()) + builtin_template_dirs(environ)


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
                    "restore the file in the theme folder or fix [theme] templates in the config; if"
                    f" digest's own templates are missing, reinstall digest (or set {TEMPLATES_ENV} to a"
                    " folder holding them)"
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
