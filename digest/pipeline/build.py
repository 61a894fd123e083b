"""`digest build`: ingest -> compose -> render -> compile -> the issue's files, recorded in state.

One issue goes into `DIR/<issue-id>/` (default `out/` next to the config file): `email.html` (final,
inlined, with the personal placeholders), `email.txt`, `email.eml` (a complete multipart/alternative
message, placeholders filled with sample values), `web.html` and `issue.json`. The draft of the issue is
`DIR/<issue-id>.draft.toml`. An email over Gmail's clipping size is rebuilt smaller, step by step, and
the outcome's notes say what was given up.
"""

from __future__ import annotations

import email.policy
import hashlib
import html
import json
import logging
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from digest import compile as email_compile
from digest.compose import (
    ComposeSettings,
    base_issue_id,
    cap_sections,
    compose_issue,
    draft_notes,
    issue_window,
)
from digest.config import Config
from digest.draft import draft_path, load_draft
from digest.emailcheck import SIZE_LIMIT, SIZE_TARGET
from digest.errors import RenderError, StateError
from digest.models import (
    NAME_PLACEHOLDER,
    UNSUBSCRIBE_URL_PLACEHOLDER,
    Draft,
    Entry,
    Issue,
    IssueEntry,
    RenderedIssue,
    SourceReport,
)
from digest.pipeline.ingest import ingest_sources
from digest.render import RenderOptions, RenderSettings, TemplateSet, render_issue, templates_for
from digest.state import issues as state_issues
from digest.state import to_iso
from digest.state.settings import generated_secret
from digest.tokens import unsubscribe_token, unsubscribe_url

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
SAMPLE_NAME = "Sam Sample"
SAMPLE_ADDRESS = "sam.sample@example.org"
SHORT_EXCERPT = 100
FALLBACK_CAPS = (5, 3, 1)


@dataclass(frozen=True, slots=True)
class BuiltIssue:
    """A built issue and where its files are."""

    issue: Issue
    folder: Path
    email_html: Path
    email_text: Path
    email_eml: Path
    web_html: Path
    issue_json: Path
    draft: Path
    html_sha256: str
    text_sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class BuildOutcome:
    """What `digest build` did: an issue built, or nothing new since a time; notes for the user."""

    built: BuiltIssue | None
    nothing_new_since: datetime | None
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------- size


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


# ---------------------------------------------------------------------------------------------- files


def entry_document(item: IssueEntry) -> dict[str, Any]:
    e = item.entry
    return {
        "id": e.id,
        "title": e.title,
        "link": e.link,
        "published": to_iso(e.published),
        "date_estimated": e.date_estimated,
        "updated": to_iso(e.updated) if e.updated else None,
        "source": e.source,
        "also_from": list(e.also_from),
        "category": e.category,
        "priorities": list(item.priorities),
        "matches": [
            {"priority": m.priority, "reason": m.reason, "strength": m.strength} for m in item.matches
        ],
        "summary": e.summary_text,
        "summary_html": e.summary_html,
        "author": e.author,
        "tags": list(e.tags),
        "image": {"url": e.image.url, "alt": e.image.alt} if e.image else None,
        "pinned": e.pinned,
    }


def source_document(report: SourceReport) -> dict[str, Any]:
    """A source's health, the same fields as `digest fetch --json`."""
    return {
        "name": report.name,
        "url": report.url,
        "category": report.category,
        "status": str(report.status),
        "entries": report.entries,
        "http_status": report.http_status,
        "error": report.error,
        "redirected_to": report.redirected_to,
        "permanent_redirect": report.permanent_redirect,
        "newest_entry": to_iso(report.newest_entry) if report.newest_entry else None,
        "consecutive_failures": report.consecutive_failures,
        "fetched_at": to_iso(report.fetched_at) if report.fetched_at else None,
    }


def issue_document(issue: Issue, *, timezone: str) -> dict[str, Any]:
    """The composed issue as `issue.json` (documented in the README)."""
    return {
        "id": issue.id,
        "edition": issue.edition,
        "title": issue.title,
        "window": {
            "start": to_iso(issue.window.start),
            "end": to_iso(issue.window.end),
            "timezone": timezone,
        },
        "subject": issue.subject,
        "preheader": issue.preheader,
        "intro": issue.intro_markdown,
        "empty": issue.empty,
        "highlights": [
            {"priority": h.priority, "reason": h.reason, "entry": entry_document(h.item)}
            for h in issue.highlights
        ],
        "sections": [
            {
                "category": s.category,
                "more": s.more,
                "groups": [
                    {
                        "label": g.label,
                        "date": g.date.isoformat() if g.date else None,
                        "entries": [entry_document(i) for i in g.entries],
                    }
                    for g in s.groups
                ],
            }
            for s in issue.sections
        ],
        "sources": [source_document(r) for r in issue.sources],
    }


def sample_message(rendered: RenderedIssue, config: Config, *, unsubscribe: str) -> bytes:
    """A complete multipart/alternative message of the issue, personalised for a sample reader."""
    issue = rendered.issue
    text = rendered.email_text.replace(NAME_PLACEHOLDER, SAMPLE_NAME).replace(
        UNSUBSCRIBE_URL_PLACEHOLDER, unsubscribe
    )
    body = rendered.email_html.replace(NAME_PLACEHOLDER, html.escape(SAMPLE_NAME)).replace(
        UNSUBSCRIBE_URL_PLACEHOLDER, html.escape(unsubscribe)
    )
    d = config.delivery
    message = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
    message["From"] = formataddr((d.from_name, d.from_address)) if d.from_name else d.from_address
    message["To"] = formataddr((SAMPLE_NAME, SAMPLE_ADDRESS))
    if d.reply_to:
        message["Reply-To"] = d.reply_to
    message["Subject"] = issue.subject
    message["Date"] = format_datetime(issue.window.end)
    message["Message-ID"] = f"<{issue.id}.sample@{d.list_id}>"
    message["List-Id"] = f"{config.digest.title} <{d.list_id}>"
    targets = [f"<{unsubscribe}>"] + (
        [f"<mailto:{d.unsubscribe_mailto}?subject=unsubscribe>"] if d.unsubscribe_mailto else []
    )
    message["List-Unsubscribe"] = ", ".join(targets)
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["X-Digest-Issue"] = issue.id
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(body, subtype="html", cte="quoted-printable")
    digest_of = hashlib.sha256(text.encode() + body.encode()).hexdigest()[:24]
    message.set_boundary(f"=_digest_{digest_of}")
    return message.as_bytes()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_issue(
    rendered: RenderedIssue, folder: Path, *, timezone: str, eml: bytes, draft: Path
) -> BuiltIssue:
    """Write the issue's five files into `folder` (each atomically).

    Raises:
        RenderError: the folder cannot be created or written.
    """
    html_bytes = rendered.email_html.encode("utf-8")
    text_bytes = rendered.email_text.encode("utf-8")
    document = (
        json.dumps(issue_document(rendered.issue, timezone=timezone), indent=2, ensure_ascii=False) + "\n"
    )
    files = {
        "email.html": html_bytes,
        "email.txt": text_bytes,
        "email.eml": eml,
        "web.html": rendered.web_html.encode("utf-8"),
        "issue.json": document.encode("utf-8"),
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            _write_atomic(folder / name, data)
    except OSError as e:
        raise RenderError(
            f"{folder}: cannot write the issue: {e.strerror}",
            hint="check the --out folder exists and is writable",
        ) from e
    return BuiltIssue(
        issue=rendered.issue,
        folder=folder,
        email_html=folder / "email.html",
        email_text=folder / "email.txt",
        email_eml=folder / "email.eml",
        web_html=folder / "web.html",
        issue_json=folder / "issue.json",
        draft=draft,
        html_sha256=hashlib.sha256(html_bytes).hexdigest(),
        text_sha256=hashlib.sha256(text_bytes).hexdigest(),
        size=len(html_bytes),
    )


# ---------------------------------------------------------------------------------------------- state


def _frozen_issue_ids(db: sqlite3.Connection) -> dict[str, frozenset[str]]:
    """Issues whose sending started (they can no longer be rebuilt), with their entry ids."""
    return {
        r.id: state_issues.issue_entry_ids(db, r.id)
        for r in state_issues.recent_issues(db, limit=1_000_000)
        if r.send_started_at is not None
    }


def free_issue_id(base: str, frozen: Iterable[str]) -> str:
    """`base`, or `base-2`, `base-3`... when an issue of that id was already (being) sent."""
    taken = set(frozen)
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _is_issue_folder(folder: Path, issue_id: str) -> bool:
    """A folder `digest build` wrote for this issue (so it is safe to remove)."""
    return folder.name == issue_id and folder.is_dir() and (folder / "issue.json").is_file()


def retire_stale_issue(db: sqlite3.Connection, issue_id: str, out: Path) -> tuple[str, ...]:
    """Remove an unsent issue that a rebuild found empty: its state record first, then its folder.

    Once the record is gone nothing can send the stale copy (`digest send` finds issues through state);
    the folder goes too, so no stale email.html is left for a person to mistake for the issue. The draft
    is kept: it holds the comms team's edits. Returns notes for the user.
    """
    record = state_issues.discard_unsent_issue(db, issue_id)
    folders = {out / issue_id} | ({record.out_dir} if record else set())
    removed = [f for f in sorted(folders) if _is_issue_folder(f, issue_id)]
    if record is None and not removed:
        return ()
    notes = []
    for folder in removed:
        try:
            shutil.rmtree(folder)
        except OSError as e:
            notes.append(f"could not remove the stale folder {folder}: {e.strerror}; delete it by hand")
    where = f" and its folder {', '.join(str(f) for f in removed)}" if removed else ""
    notes.insert(0, f"issue {issue_id} now holds nothing: the earlier unsent build{where} was removed")
    return tuple(notes)


def _unsubscribe_sample(config: Config, db: sqlite3.Connection) -> str:
    secret = os.environ.get(config.web.secret_env) or generated_secret(db, "unsubscribe_secret")
    return unsubscribe_url(config.web.base_url, unsubscribe_token(secret, SAMPLE_ADDRESS))


# ---------------------------------------------------------------------------------------------- build


def _check_retag(draft: Draft, config: Config, path: Path) -> None:
    """Every priority a draft re-tags an entry with is configured.

    Raises:
        RenderError: naming the draft file, the entry and the unknown priority.
    """
    known = {p.name.casefold() for p in config.priorities}
    for entry_id, names in draft.retag:
        for name in names:
            if name.casefold() not in known:
                raise RenderError(
                    f"{path}: retag.{entry_id!r} names the priority {name!r}, which is not in the config",
                    hint="use one of: "
                    + (", ".join(p.name for p in config.priorities) or "(no [[priorities]] configured)"),
                )


@dataclass(frozen=True, slots=True)
class PlannedIssue:
    """The next issue as composed from the given entries, before anything is rendered or written."""

    issue: Issue
    draft: Path
    notes: tuple[str, ...]


def plan_issue(
    config: Config,
    db: sqlite3.Connection,
    entries: Iterable[Entry],
    reports: tuple[SourceReport, ...],
    *,
    now: datetime,
    as_of: datetime | None = None,
    out_dir: Path | None = None,
) -> PlannedIssue:
    """Compose the next issue (its id, window, draft applied) without rendering, writing or recording it.

    Raises:
        RenderError: the draft is broken or re-tags with an unknown priority.
        StateError: the state database cannot be read.
    """
    entries = tuple(entries)
    out = out_dir or config.root / "out"
    last_sent = state_issues.last_sent_issue(db)
    window = issue_window(
        as_of=as_of or now,
        last_sent_end=last_sent.window_end if last_sent else None,
        lookback_days=config.digest.lookback_days,
    )
    frozen = _frozen_issue_ids(db)
    exclude = state_issues.sent_entry_ids(db).union(*frozen.values())
    issue_id = free_issue_id(base_issue_id(window, config.digest.timezone), frozen)
    draft_file = draft_path(out, issue_id)
    draft = load_draft(draft_file)
    _check_retag(draft, config, draft_file)
    issue = compose_issue(
        entries,
        window=window,
        issue_id=issue_id,
        edition=state_issues.sent_issue_count(db) + 1,
        settings=ComposeSettings.from_config(config),
        draft=draft,
        exclude_ids=exclude,
        sources=reports,
    )
    notes = tuple(draft_notes(draft, entries, window, exclude_ids=exclude))
    return PlannedIssue(issue=issue, draft=draft_file, notes=notes)


def build_from_entries(
    config: Config,
    db: sqlite3.Connection,
    entries: Iterable[Entry],
    reports: tuple[SourceReport, ...],
    *,
    now: datetime,
    as_of: datetime | None = None,
    out_dir: Path | None = None,
    on_progress: Progress | None = None,
) -> BuildOutcome:
    """Compose, render and write one issue from the given entries (the part of `build_issue` after ingest).

    Raises:
        RenderError: the draft, a template or the MJML is broken, or the output cannot be written.
        StateError: the issue cannot be recorded in state.
    """
    progress = on_progress or (lambda _message: None)
    out = out_dir or config.root / "out"
    planned = plan_issue(config, db, entries, reports, now=now, as_of=as_of, out_dir=out)
    issue, issue_id, window, draft_file = planned.issue, planned.issue.id, planned.issue.window, planned.draft
    notes = list(planned.notes)
    progress(f"composing issue {issue_id}")
    if issue.empty and not config.digest.send_when_empty:
        notes += retire_stale_issue(db, issue_id, out)
        return BuildOutcome(built=None, nothing_new_since=window.start, notes=tuple(notes))
    progress(f"rendering issue {issue_id}")
    rendered = render_within_budget(
        issue, RenderSettings.from_config(config), excerpt_chars=config.digest.excerpt_chars
    )
    notes += rendered.notes
    eml = sample_message(rendered, config, unsubscribe=_unsubscribe_sample(config, db))
    progress(f"writing {out / issue_id}")
    built = write_issue(rendered, out / issue_id, timezone=config.digest.timezone, eml=eml, draft=draft_file)
    try:
        state_issues.record_built_issue(
            db,
            issue_id=issue_id,
            edition=rendered.issue.edition,
            window_start=window.start,
            window_end=window.end,
            subject=rendered.issue.subject,
            built_at=now,
            out_dir=built.folder,
            html_sha256=built.html_sha256,
            text_sha256=built.text_sha256,
            entry_ids=(i.entry.id for i in rendered.issue.entries),
            empty=rendered.issue.empty,
        )
    except ValueError as e:  # its sending started between our check and now
        raise StateError(
            f"issue {issue_id}: {e}", hint="run `digest build` again to build the next issue"
        ) from e
    logger.debug("built issue %s: %d entries, %d bytes", issue_id, len(rendered.issue.entries), built.size)
    return BuildOutcome(built=built, nothing_new_since=None, notes=tuple(notes))


def build_issue(
    config: Config,
    db: sqlite3.Connection,
    *,
    now: datetime,
    as_of: datetime | None = None,
    out_dir: Path | None = None,
    offline: bool = False,
    on_progress: Progress | None = None,
) -> BuildOutcome:
    """Fetch every source (or, `offline`, use what state holds), then compose, render and write one issue.

    `as_of` (default `now`) ends the issue's window; it starts where the last sent issue ended, or
    `[digest] lookback_days` before for the first issue. With nothing new (and `send_when_empty` off)
    nothing is built and the outcome says since when.

    Raises:
        RenderError: the draft, a template or the MJML is broken, or the output cannot be written.
        StateError: the state database cannot be read or written.
    """
    progress = on_progress or (lambda _message: None)

    def fetched(report: SourceReport, done: int, total: int) -> None:
        progress(f"fetched {report.name} ({done}/{total}): {report.status.value}")

    result = ingest_sources(config, db, now=now, offline=offline, on_progress=fetched)
    notes = tuple(
        f"source {r.name!r} failed ({(r.error or r.status.value).removeprefix(f'{r.name}: ')});"
        " its last good entries were used"
        for r in result.failed
    )
    outcome = build_from_entries(
        config,
        db,
        result.entries,
        result.reports,
        now=now,
        as_of=as_of,
        out_dir=out_dir,
        on_progress=on_progress,
    )
    return replace(outcome, notes=notes + outcome.notes)
