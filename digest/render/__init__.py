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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

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
from digest.render.settings import (
    BUILTIN_TEMPLATES,
    TEMPLATES_ENV,
    Colours,
    PriorityStyle,
    RenderOptions,
    RenderSettings,
    builtin_template_dirs,
    html_lang,
    priority_style,
    template_search_path,
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

EMAIL_TEMPLATE = "email.mjml"
TEXT_TEMPLATE = "email.txt"
WEB_TEMPLATE = "web.html"


@dataclass(frozen=True, slots=True)
class RenderedParts:
    """The output of the template stage: MJML source (still to compile), plain text, web page HTML."""

    mjml: str
    text: str
    web_html: str


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
