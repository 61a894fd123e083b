"""The edition's settings the templates may use (`RenderSettings`, `RenderOptions`, colours, priority
styles) and where templates are found: plain values, no template engine.

`digest.render` (the Jinja2 side) and `digest.render.context` (the view models) both import these, so
neither imports the other for its types.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from babel import Locale

from digest.checks.colour import contrast_ratio
from digest.config import Config

__all__ = [
    "BUILTIN_TEMPLATES",
    "TEMPLATES_ENV",
    "Colours",
    "PriorityStyle",
    "RenderOptions",
    "RenderSettings",
    "builtin_template_dirs",
    "html_lang",
    "priority_style",
    "template_search_path",
]

TEMPLATES_ENV = "DIGEST_TEMPLATES"
# The built-in templates: package data ([tool.setuptools.package-data] in pyproject.toml), a folder on
# disk for every install pip makes (wheels are unpacked), so Jinja2's FileSystemLoader reads it.
BUILTIN_TEMPLATES = Path(str(resources.files("digest") / "templates"))
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
            base_url=config.archive_url,
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
