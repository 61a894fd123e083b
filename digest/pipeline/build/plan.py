"""Planning the next issue: its id, window and draft, composed from entries; and retiring a stale one.

Nothing here renders or writes the issue's files: `plan_issue` is what the preview compares against an
approved issue, and what `build_from_entries` renders.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.compose import (
    ComposeSettings,
    base_issue_id,
    cap_window,
    compose_issue,
    draft_notes,
    edition_issue_id,
    issue_window,
    left_out_entries,
)
from digest.compose.draft import draft_path, load_draft
from digest.config import Config
from digest.errors import RenderError
from digest.models import Draft, Entry, Issue, SourceReport, Window
from digest.schedule.cadence import issue_named_at
from digest.state.store import Store


def _frozen_issue_ids(db: Store) -> dict[str, frozenset[str]]:
    """Issues whose sending started (they can no longer be rebuilt), with their entry ids."""
    return {
        r.id: db.issues.issue_entry_ids(r.id)
        for r in db.issues.recent_issues(limit=1_000_000)
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


def retire_stale_issue(db: Store, issue_id: str, out: Path) -> tuple[str, ...]:
    """Remove an unsent issue that a rebuild found empty: its state record first, then its folder.

    Once the record is gone nothing can send the stale copy (`digest send` finds issues through state);
    the folder goes too, so no stale email.html is left for a person to mistake for the issue. The draft
    is kept: it holds the comms team's edits. Returns notes for the user.
    """
    record = db.issues.discard_unsent_issue(issue_id)
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
    db: Store,
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
    last_sent = db.issues.last_sent_issue()
    window, cut = cap_window(
        issue_window(
            as_of=as_of or now,
            last_sent_end=last_sent.window_end if last_sent else None,
            lookback_days=config.digest.lookback_days,
        ),
        config.digest.max_window_days,
    )
    frozen = _frozen_issue_ids(db)
    exclude = db.issues.sent_entry_ids().union(*frozen.values())
    left_out = left_out_entries(entries, cut, exclude_ids=exclude) if cut else ()
    edition = config.edition
    # An issue is named after its slot's own period (week, day, month), even when a bank holiday moved
    # the slot into the next one (whose own slot keeps that period's id).
    named = Window(start=window.start, end=issue_named_at(config.schedule, edition, window.end))
    base = (
        base_issue_id(named, config.digest.timezone)
        if edition is None
        else edition_issue_id(named, edition.id, edition.cadence, edition.timezone)
    )
    issue_id = free_issue_id(base, frozen)
    draft_file = draft_path(out, issue_id)
    draft = load_draft(draft_file)
    _check_retag(draft, config, draft_file)
    issue = compose_issue(
        entries,
        window=window,
        issue_id=issue_id,
        edition=db.issues.sent_issue_count() + 1,
        settings=ComposeSettings.from_config(config),
        draft=draft,
        exclude_ids=exclude,
        sources=reports,
    )
    notes = tuple(draft_notes(draft, entries, window, exclude_ids=exclude))
    if cut and left_out:
        notes = (left_out_note(config, left_out, cut, since_last_sent=last_sent is not None), *notes)
    return PlannedIssue(issue=issue, draft=draft_file, notes=notes)


def left_out_note(config: Config, left_out: tuple[Entry, ...], cut: Window, *, since_last_sent: bool) -> str:
    """What a capped window left out (how many entries, from when) and how to include them."""
    zone = ZoneInfo(config.digest.timezone)
    days = config.digest.max_window_days
    first, last = (left_out[0].published.astimezone(zone), left_out[-1].published.astimezone(zone))
    count = f"{len(left_out)} entr{'y' if len(left_out) == 1 else 'ies'}"
    span = (
        f"of {first:%d %b %Y}" if first.date() == last.date() else f"from {first:%d %b %Y} to {last:%d %b %Y}"
    )
    began = "the last sent issue ended" if since_last_sent else "[digest] lookback_days starts"
    earlier = (cut.start + timedelta(days=days)).astimezone(zone).isoformat(timespec="seconds")
    return (
        f"{count} {span} left out: [digest] max_window_days = {days} limits an issue to its last {days}"
        f" days, and {began} on {cut.start.astimezone(zone):%d %b %Y}. To include them, raise"
        f" max_window_days, or first make an issue of the earlier period with --as-of {earlier}"
        " (digest build, run or preview) and send it"
    )
