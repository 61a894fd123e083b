"""Render and compile an issue within the HTML size budget, keeping as much of it as fits.

A variant of the email is a choice along three axes, each ordered from richest to leanest: how many
entries each section shows (as composed, then fewer, the rest on the web version), how long the excerpts
are (the configured length, then shorter, then none: headlines only), and whether pictures are shown.
Entries matter most, then excerpts, then pictures. The email only grows along each axis, so the richest
variant that fits is found by an ordered search (a binary search per axis, a few renders) instead of
trying every variant or giving up detail in fixed steps. The plain-text part and the web version are
never cut for the HTML's budget: they come from the full rendering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from digest.checks.email import SIZE_TARGET
from digest.compose import cap_sections
from digest.errors import RenderError
from digest.models import Issue, RenderedIssue
from digest.render import (
    RenderedParts,
    RenderOptions,
    RenderSettings,
    TemplateSet,
    render_issue,
    templates_for,
)
from digest.render import compile as email_compile

DEFAULT_BUDGET_KB = 95
# Shorter excerpt lengths tried, in characters, below the configured one; 0 is headlines only.
EXCERPT_STEPS = (200, 160, 120, 100, 80, 60, 0)
# Per-section caps tried, below the composed one.
CAP_STEPS = (30, 20, 15, 12, 10, 8, 6, 5, 4, 3, 2, 1)
# Kept for callers of the old fixed steps.
SHORT_EXCERPT = 100
FALLBACK_CAPS = (5, 3, 1)


@dataclass(frozen=True, slots=True, order=True)
class Variant:
    """One way to shape the email: per-section cap (None = as composed), excerpt length (0 = headlines
    only), pictures. Compared by richness: a greater variant keeps more."""

    cap_rank: int
    excerpt_chars: int
    pictures: bool
    cap: int | None = None

    def options(self) -> RenderOptions:
        if self.excerpt_chars == 0:
            return RenderOptions(excerpt_chars=0, headlines_only=True, images=self.pictures)
        return RenderOptions(excerpt_chars=self.excerpt_chars, images=self.pictures)

    def describe(self, full: Variant) -> str:
        """What this variant cut, compared with `full` ("" when nothing)."""
        cuts = []
        if self.pictures != full.pictures:
            cuts.append("without pictures")
        if self.excerpt_chars != full.excerpt_chars:
            cuts.append(
                "headlines only"
                if self.excerpt_chars == 0
                else f"excerpts cut to {self.excerpt_chars} characters"
            )
        if self.cap is not None:
            cuts.append(f"at most {self.cap} entries per section, the rest on the web version")
        return ", ".join(cuts)


@dataclass(frozen=True, slots=True)
class Axes:
    """The values of each axis, richest first."""

    caps: tuple[int | None, ...]
    excerpts: tuple[int, ...]

    def variant(self, cap_index: int, excerpt_index: int, pictures: bool) -> Variant:
        cap = self.caps[cap_index]
        return Variant(len(self.caps) - cap_index, self.excerpts[excerpt_index], pictures, cap)

    def all_variants(self) -> tuple[Variant, ...]:
        return tuple(
            self.variant(c, e, p)
            for c in range(len(self.caps))
            for e in range(len(self.excerpts))
            for p in (True, False)
        )


def budget_axes(issue: Issue, excerpt_chars: int) -> Axes:
    """The caps and excerpt lengths worth trying for this issue."""
    shown = max((sum(len(g.entries) for g in s.groups) - s.more for s in issue.sections), default=0)
    caps: tuple[int | None, ...] = (None, *(c for c in CAP_STEPS if c < shown))
    excerpts = (excerpt_chars, *(n for n in EXCERPT_STEPS if n < excerpt_chars))
    return Axes(caps, excerpts)


def _kb(size: int) -> str:
    return f"{size / 1024:.1f} KB"


class _Renderer:
    """Renders variants of one issue, each at most once, remembering the size of each."""

    def __init__(self, issue: Issue, settings: RenderSettings, templates: TemplateSet) -> None:
        self.issue = issue
        self.settings = settings
        self.templates = templates
        self.done: dict[Variant, tuple[Issue, RenderedParts, str]] = {}

    def render(self, variant: Variant) -> tuple[Issue, RenderedParts, str]:
        if variant not in self.done:
            shaped = cap_sections(self.issue, variant.cap) if variant.cap is not None else self.issue
            parts = render_issue(shaped, self.settings, variant.options(), self.templates)
            self.done[variant] = (shaped, parts, email_compile.compile_email(parts.mjml))
        return self.done[variant]

    def size(self, variant: Variant) -> int:
        return len(self.render(variant)[2].encode("utf-8"))


def _first_fitting(count: int, fits: Callable[[int], bool]) -> int | None:
    """The smallest index in [0, count) whose variant fits, given that fitting is monotone (once an index
    fits, every greater one does); None when even the last does not."""
    if count == 0 or not fits(count - 1):
        return None
    low, high = 0, count - 1
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    return low


def richest_fitting(axes: Axes, fits: Callable[[Variant], bool]) -> Variant | None:
    """The richest variant for which `fits` holds, by an ordered search: first the most entries per section
    (with the leanest excerpts and no pictures), then the longest excerpts at that cap, then pictures."""
    leanest = len(axes.excerpts) - 1
    cap = _first_fitting(len(axes.caps), lambda c: fits(axes.variant(c, leanest, False)))
    if cap is None:
        return None
    # The leanest excerpt fits at this cap (that is how the cap was found), so this finds one.
    excerpt = _first_fitting(len(axes.excerpts), lambda e: fits(axes.variant(cap, e, False))) or 0
    with_pictures = axes.variant(cap, excerpt, True)
    return with_pictures if fits(with_pictures) else axes.variant(cap, excerpt, False)


def render_within_budget(
    issue: Issue,
    settings: RenderSettings,
    *,
    excerpt_chars: int,
    templates: TemplateSet | None = None,
    limit: int = DEFAULT_BUDGET_KB * 1024,
) -> RenderedIssue:
    """Render and compile an issue with the richest email whose HTML is at most `limit` bytes.

    The notes say what was cut and the sizes before and after. The plain text and web version are those
    of the full issue whatever the email keeps.

    Raises:
        RenderError: even one headline per section without pictures is over the limit, or a template or
            the MJML is broken.
    """
    templates = templates or templates_for(settings.template_dirs)
    renderer = _Renderer(issue, settings, templates)
    axes = budget_axes(issue, excerpt_chars)
    full = axes.variant(0, 0, True)
    full_size = renderer.size(full)
    _, full_parts, _ = renderer.render(full)
    chosen = full if full_size <= limit else richest_fitting(axes, lambda v: renderer.size(v) <= limit)
    if chosen is None:
        leanest = axes.variant(len(axes.caps) - 1, len(axes.excerpts) - 1, False)
        raise RenderError(
            f"email.html is still {_kb(renderer.size(leanest))} with the fewest headlines per section and no"
            f" pictures, over the {limit // 1024} KB budget",
            hint="raise [digest] max_html_kb (at most 102), or split the sources into fewer categories",
        )
    shaped, _, email_html = renderer.render(chosen)
    size = len(email_html.encode("utf-8"))
    notes: tuple[str, ...] = ()
    if chosen != full:
        notes = (
            f"email.html was {_kb(full_size)}, over the {limit // 1024} KB budget ([digest] max_html_kb):"
            f" built {chosen.describe(full)}, now {_kb(size)}; the plain text and web version are complete",
        )
    elif size > min(SIZE_TARGET, limit - 8 * 1024):
        notes = (f"email.html is {_kb(size)}: close to the {limit // 1024} KB budget ([digest] max_html_kb)",)
    return RenderedIssue(shaped, email_html, full_parts.text, full_parts.web_html, notes)


__all__ = [
    "CAP_STEPS",
    "DEFAULT_BUDGET_KB",
    "EXCERPT_STEPS",
    "FALLBACK_CAPS",
    "SHORT_EXCERPT",
    "Axes",
    "Variant",
    "budget_axes",
    "render_within_budget",
    "richest_fitting",
]
