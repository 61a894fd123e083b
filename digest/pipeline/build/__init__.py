"""`digest build`: ingest -> compose -> render -> compile -> the issue's files, recorded in state.

One issue goes into `DIR/<issue-id>/` (default `out/` next to the config file): `email.html` (final,
inlined, with the personal placeholders), `email.txt`, `email.eml` (a complete multipart/alternative
message, placeholders filled with sample values), `web.html` and `issue.json`. The draft of the issue is
`DIR/<issue-id>.draft.toml`. An email over Gmail's clipping size is rebuilt smaller, step by step, and
the outcome's notes say what was given up.

The parts: `plan` (the next issue's id, window and draft, composed), `budget` (rendering within the
size budget), `files` (issue.json, the sample message, writing the files); this module runs them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from digest.config import Config
from digest.deliver.tokens import NO_SUBSCRIPTION, unsubscribe_secret, unsubscribe_token
from digest.errors import SourceError, StateError
from digest.models import Entry, SourceReport, unsubscribe_url
from digest.pipeline.build.budget import FALLBACK_CAPS, SHORT_EXCERPT, render_within_budget
from digest.pipeline.build.files import (
    SAMPLE_ADDRESS,
    SAMPLE_NAME,
    BuiltIssue,
    entry_document,
    issue_document,
    sample_message,
    source_document,
    write_issue,
)
from digest.pipeline.build.plan import PlannedIssue, free_issue_id, plan_issue, retire_stale_issue
from digest.pipeline.build.variants import build_variants, variant_notes
from digest.pipeline.desk import record_audit
from digest.pipeline.ingest import ingest_sources
from digest.render import RenderSettings
from digest.state.store import Store

__all__ = [
    "FALLBACK_CAPS",
    "SAMPLE_ADDRESS",
    "SAMPLE_NAME",
    "SHORT_EXCERPT",
    "BuildOutcome",
    "BuiltIssue",
    "PlannedIssue",
    "Progress",
    "build_from_entries",
    "build_issue",
    "entry_document",
    "failure_note",
    "free_issue_id",
    "issue_document",
    "plan_issue",
    "render_within_budget",
    "retire_stale_issue",
    "sample_message",
    "source_document",
    "write_issue",
]

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class BuildOutcome:
    """What `digest build` did: an issue built, or nothing new since a time; notes for the user."""

    built: BuiltIssue | None
    nothing_new_since: datetime | None
    notes: tuple[str, ...] = ()


def failure_note(db: Store, report: SourceReport, entries: Iterable[Entry]) -> str:
    """What a failed source meant for the build: its kept entries were used, or it has none yet."""
    why = (report.error or report.status.value).removeprefix(f"{report.name}: ")
    kept = sum(1 for e in entries if e.source == report.name or report.name in e.also_from)
    if kept:
        used = f"its last good entries were used ({kept} kept from earlier fetches)"
    else:
        record = db.feeds.get_feed(report.name)
        if record is None or record.status is None:  # never tried: the error says so
            used = "no entries from it yet"
        elif record.last_success_at is None:
            used = "no entries from it yet: it has never been fetched successfully"
        else:
            used = "no entries from it: its last good fetch had none"
    return f"source {report.name!r} failed ({why}); {used}"


def _unsubscribe_sample(config: Config, db: Store) -> str:
    secret = unsubscribe_secret(config, db)
    return unsubscribe_url(config.web.base_url, unsubscribe_token(secret, NO_SUBSCRIPTION))


def build_from_entries(
    config: Config,
    db: Store,
    entries: Iterable[Entry],
    reports: tuple[SourceReport, ...],
    *,
    now: datetime,
    as_of: datetime | None = None,
    out_dir: Path | None = None,
    on_progress: Progress | None = None,
    actor: str | None = None,
) -> BuildOutcome:
    """Compose, render and write one issue from the given entries (the part of `build_issue` after ingest);
    `actor` as in `build_issue`.

    Raises:
        SourceError: every source failed (not with `offline`): nothing is built, nothing looks quiet.
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
        notes += _part_sent_notes(db)
        return BuildOutcome(built=None, nothing_new_since=window.start, notes=tuple(notes))
    progress(f"rendering issue {issue_id}")
    rendered = render_within_budget(
        issue,
        RenderSettings.from_config(config),
        excerpt_chars=config.digest.excerpt_chars,
        limit=config.digest.max_html_kb * 1024,
    )
    notes += rendered.notes
    eml = sample_message(rendered, config, unsubscribe=_unsubscribe_sample(config, db))
    progress(f"writing {out / issue_id}")
    built = write_issue(rendered, out / issue_id, timezone=config.digest.timezone, eml=eml, draft=draft_file)
    try:
        db.issues.record_built_issue(
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
    if actor:
        record_audit(
            db,
            at=now,
            issue_id=issue_id,
            actor=actor,
            action="rebuild",
            detail=f"{actor} built the issue: {len(rendered.issue.entries)} entries",
            content=False,  # a command, not a person: four eyes still names whoever last edited it
        )
    progress(f"rendering the topic variants of issue {issue_id}")
    variants = build_variants(config, db, issue, built.folder)
    db.topics.record_variants(issue_id, variants)
    notes += variant_notes(variants)
    logger.debug("built issue %s: %d entries, %d bytes", issue_id, len(rendered.issue.entries), built.size)
    return BuildOutcome(built=built, nothing_new_since=None, notes=tuple(notes))


def _part_sent_notes(db: Store) -> list[str]:
    """Why a window can look empty although entries are in it: they are held by an issue being sent."""
    return [
        f"issue {record.id} holds this period's entries and its send is not finished:"
        " run digest send to finish it"
        for record in db.issues.recent_issues()
        if record.send_started_at is not None and record.sent_at is None
    ]


def build_issue(
    config: Config,
    db: Store,
    *,
    now: datetime,
    as_of: datetime | None = None,
    out_dir: Path | None = None,
    offline: bool = False,
    on_progress: Progress | None = None,
    actor: str | None = None,
) -> BuildOutcome:
    """Fetch every source (or, `offline`, use what state holds), then compose, render and write one issue.

    `actor` (the command that built it, such as "digest build") puts the build in the audit trail; the
    preview, which records its own rebuilds with the signed-in user, leaves it out.

    `as_of` (default `now`) ends the issue's window; it starts where the last sent issue ended, or
    `[digest] lookback_days` before for the first issue, but never more than `[digest] max_window_days`
    before its end (a note then says what was left out). With nothing new (and `send_when_empty` off)
    nothing is built and the outcome says since when.

    Raises:
        RenderError: the draft, a template or the MJML is broken, or the output cannot be written.
        StateError: the state database cannot be read or written.
    """
    progress = on_progress or (lambda _message: None)

    def fetched(report: SourceReport, done: int, total: int) -> None:
        progress(f"fetched {report.name} ({done}/{total}): {report.status.value}")

    result = ingest_sources(config, db, now=now, offline=offline, on_progress=fetched)
    if not offline and result.reports and len(result.failed) == len(result.reports):
        # Every source failed: building from what state still holds would look like a quiet week.
        reasons = "; ".join(f"{r.name}: {r.error or r.status.value}" for r in result.failed)
        raise SourceError(
            f"every source failed, so no issue was built: {reasons}",
            hint="check each source with digest fetch; use --offline to build from the entries kept in state",
        )
    notes = tuple(failure_note(db, r, result.entries) for r in result.failed)
    outcome = build_from_entries(
        config,
        db,
        result.entries,
        result.reports,
        now=now,
        as_of=as_of,
        out_dir=out_dir,
        on_progress=on_progress,
        actor=actor,
    )
    return replace(outcome, notes=notes + outcome.notes)
