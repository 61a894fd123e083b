"""Render and compile an issue within Gmail's clipping size, giving up detail step by step."""

from __future__ import annotations

from dataclasses import replace

from digest.checks.email import SIZE_LIMIT, SIZE_TARGET
from digest.compose import cap_sections
from digest.errors import RenderError
from digest.models import Issue, RenderedIssue
from digest.render import RenderOptions, RenderSettings, TemplateSet, render_issue, templates_for
from digest.render import compile as email_compile

SHORT_EXCERPT = 100
FALLBACK_CAPS = (5, 3, 1)


def _kb(size: int) -> str:
    return f"{size / 1024:.1f} KB"


def render_within_budget(
    issue: Issue,
    settings: RenderSettings,
    *,
    excerpt_chars: int,
    templates: TemplateSet | None = None,
    limit: int = SIZE_LIMIT,
) -> RenderedIssue:
    """Render and compile an issue, degrading until the HTML is under `limit` bytes.

    The steps: full excerpts; excerpts of 100 characters; headlines only (no excerpts or pictures);
    then at most 5, 3 and finally 1 entry per section, with "N more on the web version" links.
    Each step taken is described in the result's notes.

    Raises:
        RenderError: even the smallest form is over the limit, or a template or the MJML is broken.
    """
    templates = templates or templates_for(settings.template_dirs)
    full = RenderOptions(excerpt_chars=excerpt_chars)
    steps: list[tuple[RenderOptions, int | None, str]] = [(full, None, "")]
    if excerpt_chars > SHORT_EXCERPT:
        steps.append(
            (replace(full, excerpt_chars=SHORT_EXCERPT), None, f"excerpts cut to {SHORT_EXCERPT} characters")
        )
    headlines = replace(full, headlines_only=True, images=False)
    steps.append((headlines, None, "headlines only (no excerpts or pictures)"))
    current_cap = max((s.more + sum(len(g.entries) for g in s.groups) for s in issue.sections), default=0)
    for cap in FALLBACK_CAPS:
        if cap < current_cap:
            steps.append(
                (headlines, cap, f"headlines only, at most {cap} per section (the rest on the web version)")
            )
    first_size = 0
    size = 0
    for options, step_cap, what in steps:
        shaped = cap_sections(issue, step_cap) if step_cap is not None else issue
        parts = render_issue(shaped, settings, options, templates)
        email_html = email_compile.compile_email(parts.mjml)
        size = len(email_html.encode("utf-8"))
        first_size = first_size or size
        if size <= limit:
            notes: tuple[str, ...] = ()
            if what:
                notes = (
                    f"email.html was {_kb(first_size)}, over the {limit // 1024} KB at which Gmail clips: "
                    f"built with {what}, now {_kb(size)}",
                )
            elif size > SIZE_TARGET:
                notes = (f"email.html is {_kb(size)}: close to the {limit // 1024} KB at which Gmail clips",)
            return RenderedIssue(shaped, email_html, parts.text, parts.web_html, notes)
    raise RenderError(
        f"email.html is still {_kb(size)} with headlines only and few entries per section,"
        f" over the {limit // 1024} KB at which Gmail clips",
        hint="lower [highlights] max, or split the sources into fewer categories",
    )
