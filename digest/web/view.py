"""What the preview page shows, gathered from a `Workspace` into plain values for the template."""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from digest.checks.email import SIZE_LIMIT, SIZE_TARGET
from digest.errors import UsageError
from digest.models import (
    NAME_PLACEHOLDER,
    PREFERENCES_URL_PLACEHOLDER,
    UNSUBSCRIBE_URL_PLACEHOLDER,
    IssueEntry,
    PriorityMatch,
    unsubscribe_url,
)
from digest.pipeline import web
from digest.pipeline.ingest import source_reports
from digest.pipeline.topics import variant_summaries
from digest.pipeline.web import Store, html_lang, part_language
from digest.web.edits import can_move, highlight_ranks
from digest.web.pages import PageFormat
from digest.web.report import SizeReport, changes_since, link_report, source_rows
from digest.web.workspace import Snapshot, Workspace, send_state_of

SAMPLE_NAME = "Sam Sample"


def entry_anchor(entry_id: str) -> str:
    """A short, stable HTML id for an entry (entry ids are URLs and other unsafe strings)."""
    return "entry-" + hashlib.sha256(entry_id.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class EntryView:
    """One entry in the preview's list, with its controls' state."""

    id: str
    anchor: str
    title: str
    link: str | None
    source: str
    category: str
    published: str
    date_estimated: bool
    matches: tuple[PriorityMatch, ...]
    pinned: bool
    source_pinned: bool
    retagged: tuple[str, ...] | None
    highlighted: bool
    shown: tuple[str, ...]
    in_highlights: bool
    up: bool
    down: bool
    lang: str | None = None
    dir: str | None = None
    teaser: str = ""
    # The source's own words when the draft replaced them (None: the title / teaser is the source's).
    original_title: str | None = None
    original_teaser: str | None = None


@dataclass(frozen=True, slots=True)
class GroupView:
    label: str
    entries: tuple[EntryView, ...]


@dataclass(frozen=True, slots=True)
class SectionView:
    category: str
    groups: tuple[GroupView, ...]
    more: int


def _entry_views(
    snapshot: Snapshot, fmt: PageFormat
) -> tuple[tuple[EntryView, ...], tuple[SectionView, ...]]:
    issue = snapshot.issue
    if issue is None:
        return (), ()
    draft = snapshot.draft
    retag = draft.retag_map
    titles, teasers = dict(draft.titles), dict(draft.teasers)
    highlighted = {h.item.entry.id for h in issue.highlights}

    def view(
        item: IssueEntry,
        shown: tuple[str, ...],
        matches: tuple[PriorityMatch, ...],
        ranks: dict[str, int] | None = None,
    ) -> EntryView:
        e = item.entry
        lang, direction = part_language(e.language, html_lang(fmt.locale))
        return EntryView(
            id=e.id,
            anchor=entry_anchor(e.id),
            title=e.title,
            link=e.link,
            source=e.source,
            category=e.category,
            published=fmt.date(e.published),
            date_estimated=e.date_estimated,
            matches=matches,
            pinned=e.id in draft.pinned,
            source_pinned=e.pinned,
            retagged=retag.get(e.id),
            highlighted=e.id in highlighted,
            shown=shown,
            in_highlights=ranks is not None,
            up=can_move(draft, shown, e.id, -1, ranks=ranks),
            down=can_move(draft, shown, e.id, 1, ranks=ranks),
            lang=lang,
            dir=direction,
            teaser=e.summary_text,
            original_title=item.original.title if item.original and e.id in titles else None,
            original_teaser=item.original.summary_text if item.original and e.id in teasers else None,
        )

    shown_highlights = tuple(h.item.entry.id for h in issue.highlights)
    source_pinned = (h.item.entry.id for h in issue.highlights if h.item.entry.pinned)
    ranks = highlight_ranks(draft, source_pinned, shown_highlights)
    highlights = tuple(
        view(h.item, shown_highlights, (PriorityMatch(h.priority, h.reason, 0.0),), ranks)
        for h in issue.highlights
    )
    sections = []
    for section in issue.sections:
        groups = []
        for group in section.groups:
            shown = tuple(i.entry.id for i in group.entries)
            groups.append(GroupView(group.label, tuple(view(i, shown, i.matches) for i in group.entries)))
        sections.append(SectionView(section.category, tuple(groups), section.more))
    return highlights, tuple(sections)


def _dropped(db: Store, snapshot: Snapshot) -> tuple[tuple[str, str], ...]:
    """(id, title) of the entries the draft drops (the id alone when state no longer has the entry)."""
    return web.dropped_titles(db, snapshot.draft.dropped)


def _changes(db: Store, snapshot: Snapshot, fmt: PageFormat) -> tuple[str, ...]:
    issue = snapshot.issue
    if issue is None:
        return ()
    last = web.last_sent_issue(db)
    if last is None or last.id == issue.id:
        return changes_since(
            issue, size=snapshot.size, last_id=None, last_json=None, last_size=None, last_sent=None
        )
    last_json = None
    last_size = None
    try:
        folder = web.issue_folder(last)
        last_json = json.loads((folder / "issue.json").read_text(encoding="utf-8"))
        last_size = (folder / "email.html").stat().st_size
    except (OSError, ValueError, UsageError):
        pass
    return changes_since(
        issue,
        size=snapshot.size,
        last_id=last.id,
        last_json=last_json,
        last_size=last_size,
        last_sent=fmt.date(last.sent_at) if last.sent_at else None,
    )


@dataclass(frozen=True, slots=True)
class EmptyWindow:
    """Why there is no draft to preview (nothing new in the window), and what the comms team can do."""

    since: datetime
    until: datetime
    last_sent: str | None  # "issue 2025-W18, sent Friday 2 May 2025"
    newest: datetime | None  # the newest stored entry before the window (when nothing was sent yet)
    suggested_as_of: str | None  # an --as-of whose window holds that entry
    held_by: str | None = None  # "2025-W19": the window's entries are in this issue, whose sending started
    held_sent_on: str | None = None  # when that issue was sent ("Friday 9 May 2025"); None = part-sent
    held_count: int = 0


def _held_by(db: Store, since: datetime, until: datetime, fmt: PageFormat) -> EmptyWindow | None:
    """The window's entries are already in an issue whose sending started: name it and say what to do."""
    found = web.started_issue_in_window(db, since, until)
    if found is None:
        return None
    record, count = found
    sent_on = fmt.date(record.sent_at) if record.sent_at else None
    return EmptyWindow(since, until, None, None, None, record.id, sent_on, count)


def _empty_window(db: Store, workspace: Workspace, snapshot: Snapshot, fmt: PageFormat) -> EmptyWindow | None:
    since = snapshot.nothing_new_since
    if snapshot.issue is not None or since is None:
        return None
    until = workspace.as_of or snapshot.made_at
    held = _held_by(db, since, until, fmt)
    if held is not None:
        return held
    last = web.last_sent_issue(db)
    if last is not None:
        when = f", sent {fmt.date(last.sent_at)}" if last.sent_at else ""
        return EmptyWindow(since, until, f"issue {last.id}{when}", None, None)
    newest = web.newest_entry_before(db, since)
    suggested = None
    if newest is not None:
        # The start of the day after the newest entry, in the edition's time zone: its window holds it.
        day = newest.astimezone(fmt.tz).date() + timedelta(days=1)
        suggested = datetime.combine(day, time(), tzinfo=fmt.tz).isoformat()
    return EmptyWindow(since, until, None, newest, suggested)


def personalised(text: str, base_url: str, *, escape: bool) -> str:
    """A built email part with the personal placeholders filled with sample values (HTML-escaped or not)."""
    name = html.escape(SAMPLE_NAME) if escape else SAMPLE_NAME
    url = unsubscribe_url(base_url, "preview-sample")
    preferences = f"{base_url.rstrip('/')}/preferences?token=preview-sample"
    return (
        text.replace(NAME_PLACEHOLDER, name)
        .replace(UNSUBSCRIBE_URL_PLACEHOLDER, html.escape(url) if escape else url)
        .replace(PREFERENCES_URL_PLACEHOLDER, html.escape(preferences) if escape else preferences)
    )


def sample_text(workspace: Workspace, snapshot: Snapshot) -> str:
    """The plain-text part with the personal parts filled in with sample values."""
    if snapshot.folder is None:
        return ""
    try:
        text = (snapshot.folder / "email.txt").read_text(encoding="utf-8")
    except OSError:
        return ""
    return personalised(text, workspace.config.web.base_url, escape=False)


def page_context(workspace: Workspace, variant: str | None = None) -> dict[str, Any]:
    """Everything the preview page template uses, read at one moment from one snapshot; `variant` is the
    folder name of the topic variant the picker chose (None: the whole issue)."""
    snapshot = workspace.snapshot
    config = workspace.config
    fmt = PageFormat(locale=config.digest.locale, timezone=config.digest.timezone)
    highlights, sections = _entry_views(snapshot, fmt)
    db = workspace.open_store()
    try:
        approval = web.approval_status(db, snapshot.issue.id) if snapshot.issue else None
        # Read from state on every page load: `digest send` may have started since the build.
        sent = send_state_of(db, snapshot.issue.id, config.web.base_url) if snapshot.issue else None
        dropped = _dropped(db, snapshot)
        changes = _changes(db, snapshot, fmt)
        empty = _empty_window(db, workspace, snapshot, fmt)
        sources = (
            snapshot.issue.sources
            if snapshot.issue and snapshot.issue.sources
            else source_reports(config, db)
        )
        audience = config.edition.audience if config.edition else ()
        variants = (
            variant_summaries(config, db.for_edition(config.edition_id, audience), snapshot.issue.id)
            if snapshot.issue
            else ()
        )
        variants_sha256 = db.topics.fingerprint(snapshot.issue.id) if snapshot.issue else ""
    finally:
        db.close()
    shown = next((v for v in variants if v.name and v.name == variant and v.folder), None)
    links, link_problems = link_report(workspace.link_results(), {v.key: v.readers for v in variants})
    return {
        "snapshot": snapshot,
        "issue": snapshot.issue,
        "fmt": fmt,
        "building": workspace.building,
        "offline": workspace.offline,
        "as_of": workspace.as_of,
        "highlights": highlights,
        "empty": empty,
        "send_when_empty": config.digest.send_when_empty,
        "sections": sections,
        "dropped": dropped,
        "priorities": config.priorities,
        "approval": approval,
        "sent": sent,
        "read_only": sent is not None,
        "approval_required": config.approval.required,
        "size": SizeReport(snapshot.size, SIZE_LIMIT, SIZE_TARGET),
        "problems": snapshot.problems,
        "links": links,
        "links_enabled": workspace.checker is not None,
        "links_checking": workspace.links_checking,
        "links_broken": sum(1 for row in links if row.broken),
        "links_pending": sum(1 for row in links if row.status is None),
        "link_problems": link_problems if len(variants) > 1 else (),
        "link_copies": len(variants) > 1,
        "sources": source_rows(sources, failing_after=config.status.failing_after),
        "changes": changes,
        "text": sample_text(workspace, snapshot),
        "transport": config.delivery.transport,
        "intro": snapshot.draft.intro,
        "draft": snapshot.draft,
        "items_folder": config.preview.items_folder,
        "sample_name": SAMPLE_NAME,
        "priority_index": {p.name: i for i, p in enumerate(config.priorities)},
        "links_version": workspace.links_version,
        "variants": variants if len(variants) > 1 else (),
        "variant_shown": shown,
        "variants_sha256": variants_sha256,
        "email_src": f"/variant/{shown.name}/email.html" if shown else "/email.html",
    }
