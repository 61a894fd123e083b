"""The preview's working state: the latest build of the next issue, rebuilt when its inputs change.

One `Workspace` per `digest preview` process. It builds the next issue through the build pipeline (the
same `email.html` a send would use), keeps the result as an immutable `Snapshot` with a version number the
page polls, watches the config, local feed files, templates and the draft for changes, and checks the
email's links in the background. Builds are serialised by a lock; every method may be called from any
thread.
"""

from __future__ import annotations

import asyncio
import functools
import glob
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.checks.email import EmailProblem, check_email
from digest.checks.links import LinkChecker, LinkStatus, extract_links, links_by_copy
from digest.compose.draft import Draft, load_draft, save_draft
from digest.config import Config, load_config
from digest.config.editions import edition_config
from digest.errors import ApprovalError, ConfigError, DigestError, UsageError
from digest.models import Issue, issue_url
from digest.pipeline import desk, web
from digest.pipeline.build import build_issue, plan_issue
from digest.pipeline.ingest import IngestResult, ingest_sources
from digest.pipeline.items import OneOffItem, write_item
from digest.pipeline.send import send_issue
from digest.pipeline.topics import variant_emails
from digest.pipeline.web import Store, html_lang, template_search_path

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One build of the next issue as the preview shows it (or why there is none)."""

    version: int
    made_at: datetime
    issue: Issue | None = None
    folder: Path | None = None
    draft: Draft = field(default_factory=Draft)
    draft_file: Path | None = None
    html_sha256: str = ""
    text_sha256: str = ""
    size: int = 0
    problems: tuple[EmailProblem, ...] = ()
    links: tuple[str, ...] = ()  # the whole issue's links worth checking
    # Each topic variant's links worth checking, by variant key (the variants sent: with entries).
    variant_links: tuple[tuple[str, tuple[str, ...]], ...] = ()
    notes: tuple[str, ...] = ()
    nothing_new_since: datetime | None = None
    error: str | None = None
    hint: str | None = None
    fetched: bool = False
    # The issue is approved and still matches its approval, so the preview shows it as approved rather
    # than rebuilding it by itself (a rebuild with new entries would void the approval).
    held: bool = False
    new_since_approval: tuple[str, ...] = ()  # titles of entries a rebuild would add
    gone_since_approval: int = 0  # entries a rebuild would leave out
    changed_since_approval: tuple[str, ...] = ()  # inputs changed since ("templates", "config", ...)

    @property
    def ready(self) -> bool:
        return self.issue is not None and self.folder is not None

    @property
    def link_copies(self) -> dict[str, tuple[str, ...]]:
        """Every distinct link of the whole issue ("") and its variants, with the keys of the copies
        holding it: the whole issue's links first, then each variant's others."""
        return links_by_copy((("", self.links), *self.variant_links))


@dataclass(frozen=True, slots=True)
class SendState:
    """An issue whose sending has started: the preview shows it read-only and never changes it."""

    issue_id: str
    started_at: datetime
    sent_at: datetime | None  # None: part-sent (`digest send` has not finished it)
    archive_url: str  # its page in the web archive (published once every subscriber has it)

    @property
    def sent(self) -> bool:
        return self.sent_at is not None

    def refusal(self) -> str:
        """What to tell someone whose change was refused."""
        if self.sent:
            return (
                f"Issue {self.issue_id} has been sent: the preview shows it read-only and changed nothing."
                f" Its archive page: {self.archive_url}"
            )
        return (
            f"Issue {self.issue_id} is being sent (part-sent: finish it with `digest send`): the preview"
            f" shows it read-only and changed nothing. Once sent, it is published at {self.archive_url}"
        )


def send_state_of(db: Store, issue_id: str, base_url: str) -> SendState | None:
    """The send state of `issue_id`, or None when its sending has not started (it can still change)."""
    record = web.issue_record(db, issue_id)
    if record is None or record.send_started_at is None:
        return None
    return SendState(record.id, record.send_started_at, record.sent_at, issue_url(base_url, record.id))


class Workspace:
    """Builds and rebuilds the next issue for the preview; see the module docstring."""

    def __init__(
        self,
        config_path: Path,
        *,
        clock: Callable[[], datetime],
        as_of: datetime | None = None,
        offline: bool = False,
        check_links: bool = True,
        edition: str | None = None,
    ) -> None:
        self.config_path = config_path
        self.clock = clock
        self.as_of = as_of
        self.offline = offline
        self.edition = edition  # an [[editions]] id: the preview shows that edition's next issue
        self.config: Config = self._load()
        self.snapshot = Snapshot(version=0, made_at=clock())
        self.building = False
        self._lock = threading.RLock()
        self._version = 0
        self._seen: Fingerprint = ()
        self.checker = (
            LinkChecker(
                user_agent=self.config.fetch.user_agent,
                cache_path=self.config.state_path.parent / "linkcheck.json",
            )
            if check_links
            else None
        )
        self.links: dict[str, LinkStatus] = {}
        self.links_version = 0
        self.links_checking = False
        self.background: set[asyncio.Task[None]] = set()
        self._state = web.SharedState()  # PostgreSQL: one pool for the preview's life

    # --- building ----------------------------------------------------------------------------------

    def rebuild(
        self, *, fetch: bool = False, force: bool = False, changed: frozenset[str] = frozenset()
    ) -> Snapshot:
        """Build the next issue now (fetching the sources first when `fetch` and not offline).

        An issue that is approved, and whose files still match the approval, is not rebuilt unless
        `force`: the snapshot shows it as approved, with what a rebuild would change (`changed`: the
        kinds of input the watcher saw change). Only an explicit request voids an approval.
        """
        with self._lock:
            self.building = True
            previous = self.snapshot
            try:
                self._seen = self.fingerprint()
                snapshot = self._build(fetch=fetch and not self.offline, force=force)
            finally:
                self.building = False
            if snapshot.held:
                kinds = set(changed - {"feeds"})
                if (
                    previous.held
                    and previous.issue
                    and snapshot.issue
                    and previous.issue.id == snapshot.issue.id
                ):
                    kinds |= set(previous.changed_since_approval)
                snapshot = replace(snapshot, changed_since_approval=tuple(sorted(kinds)))
            self.snapshot = snapshot
            if snapshot.draft_file != previous.draft_file:
                # The first build names the draft file: watch it from now on without rebuilding for it.
                self._seen = tuple(m for m in self._seen if not m[0].startswith("draft:")) + tuple(
                    self._marks((("draft", snapshot.draft_file),) if snapshot.draft_file else ())
                )
            return snapshot

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def _build(self, *, fetch: bool, force: bool = False) -> Snapshot:
        now = self.clock()
        try:
            self.config = self._load()
        except ConfigError as e:
            problems = "; ".join(e.problems)
            error = f"{e.message}: {problems}" if problems else e.message
            return replace(self.snapshot, version=self._next_version(), made_at=now, error=error, hint=e.hint)
        config = self.config
        try:
            db = self._state.open(config)
            try:
                if not force:
                    result = ingest_sources(config, db, now=now, offline=not fetch)
                    held = self._held(config, db, result, now=now, fetch=fetch)
                    if held is not None:
                        return held
                    fetch = False  # fetched just now: the build reads what state holds
                outcome = build_issue(config, db, now=now, as_of=self.as_of, offline=not fetch)
                built = outcome.built
                if built is None:
                    return Snapshot(
                        self._next_version(),
                        now,
                        notes=tuple(outcome.notes),
                        nothing_new_since=outcome.nothing_new_since,
                        fetched=fetch,
                    )
                variant_links = self._variant_links(db, built.issue.id)
            finally:
                db.close()
            html = built.email_html.read_text(encoding="utf-8")
            return Snapshot(
                version=self._next_version(),
                made_at=now,
                issue=built.issue,
                folder=built.folder,
                draft=load_draft(built.draft),
                draft_file=built.draft,
                html_sha256=built.html_sha256,
                text_sha256=built.text_sha256,
                size=built.size,
                problems=check_email(html, lang=html_lang(config.digest.locale)),
                links=self._checkable(extract_links(html)),
                variant_links=variant_links,
                notes=tuple(outcome.notes),
                fetched=fetch,
            )
        except DigestError as e:
            log.warning("the preview build failed: %s", e.message)
            previous = self.snapshot
            return replace(previous, version=self._next_version(), made_at=now, error=e.message, hint=e.hint)
        except OSError as e:
            log.exception("the preview build failed")
            return replace(self.snapshot, version=self._next_version(), made_at=now, error=str(e), hint=None)

    def _held(
        self, config: Config, db: Store, result: IngestResult, *, now: datetime, fetch: bool
    ) -> Snapshot | None:
        """The approved next issue as it was approved, or None when it is not (validly) approved.

        Compares what a rebuild would hold with what was approved, so the page can say what is new.
        """
        planned = plan_issue(config, db, result.entries, result.reports, now=now, as_of=self.as_of)
        record = web.issue_record(db, planned.issue.id)
        if record is None or record.send_started_at is not None:
            return None
        if not web.approval_status(db, record.id).valid:
            return None
        try:
            folder = web.issue_folder(record)
            html = (folder / "email.html").read_text(encoding="utf-8")
        except (UsageError, OSError):
            return None
        if web.file_sha256(folder / "email.html") != record.html_sha256:
            return None
        approved_ids = web.issue_entry_ids(db, record.id)
        approved = plan_issue(
            config,
            db,
            [e for e in result.entries if e.id in approved_ids],
            result.reports,
            now=now,
            as_of=self.as_of,
        )
        would_hold = {i.entry.id: i.entry.title for i in planned.issue.entries}
        return Snapshot(
            version=self._next_version(),
            made_at=now,
            issue=approved.issue,
            folder=folder,
            draft=load_draft(planned.draft),
            draft_file=planned.draft,
            html_sha256=record.html_sha256,
            text_sha256=record.text_sha256,
            size=len(html.encode("utf-8")),
            problems=check_email(html, lang=html_lang(config.digest.locale)),
            links=self._checkable(extract_links(html)),
            variant_links=self._variant_links(db, record.id),
            fetched=fetch,
            held=True,
            new_since_approval=tuple(t for e, t in would_hold.items() if e not in approved_ids),
            gone_since_approval=len(approved_ids - would_hold.keys()),
        )

    def _checkable(self, links: tuple[str, ...]) -> tuple[str, ...]:
        """Links worth checking now: not this digest's own site (the issue page exists once it is sent)."""
        own = self.config.web.base_url.rstrip("/") + "/"
        return tuple(u for u in links if not u.startswith(own) and "%%" not in u)

    def _variant_links(self, db: Store, issue_id: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The links worth checking of each topic variant of the issue that is sent, by variant key."""
        found = []
        for key, email in variant_emails(db, issue_id):
            try:
                html = email.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                log.warning(
                    "preview: cannot read %s (topic variant %r): its links are not checked: %s", email, key, e
                )
                continue
            found.append((key, self._checkable(extract_links(html))))
        return tuple(found)

    def edit_draft(self, change: Callable[[Draft], Draft], *, actor: str = "", what: str = "") -> Snapshot:
        """Apply one change to the current issue's draft, save it, and rebuild without fetching.

        The change is recorded in the audit trail as `actor`'s, described by `what`, with the approval
        it voided (if any).

        Raises:
            RenderError: the draft file is unreadable or cannot be written.
            UsageError: the issue's sending has started (nothing is written).
            UsageError: there is no issue to edit yet.
            InvalidValueError: the change refused its input (the message says why).
        """
        with self._lock:
            draft_file = self.snapshot.draft_file
            if draft_file is None:
                raise UsageError("there is no issue to edit yet")
            self.refuse_if_sent()
            before = self.snapshot
            save_draft(draft_file, change(load_draft(draft_file)))
            snapshot = self.rebuild(fetch=False, force=True)
            self.record("edit", actor, what or "changed the draft", before=before, content=True)
            return snapshot

    def add_item(self, item: OneOffItem, *, actor: str) -> tuple[Path, Snapshot]:
        """Write a one-off item into `[preview] items_folder`, then fetch and rebuild (voiding an approval).

        Raises:
            UsageError: the issue's sending has started, no items folder, or an unusable item.
            StateError: the folder cannot be written.
        """
        with self._lock:
            self.refuse_if_sent()
            before = self.snapshot
            path = write_item(self.config, item, today=self.clock().astimezone(self.zone).date())
            snapshot = self.rebuild(fetch=True, force=True)
            name = " ".join(item.title.split())
            self.record(
                "edit", actor, f"added the one-off item “{name}” ({path.name})", before=before, content=True
            )
            return path, snapshot

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.config.digest.timezone)

    def rebuild_by(self, actor: str, *, fetch: bool = False, force: bool = False) -> Snapshot:
        """`rebuild`, recorded in the audit trail as `actor`'s (a content change when the email changed)."""
        with self._lock:
            before = self.snapshot
            snapshot = self.rebuild(fetch=fetch, force=force)
            changed = snapshot.html_sha256 != before.html_sha256 or snapshot.text_sha256 != before.text_sha256
            what = "fetched the feeds and rebuilt" if snapshot.fetched else "rebuilt"
            if force:
                what = "rebuilt the approved issue with the new entries"
            what += "" if changed else " (the email did not change)"
            self.record("rebuild", actor, what, before=before, content=changed)
            return snapshot

    def record(
        self,
        action: str,
        actor: str,
        what: str,
        *,
        before: Snapshot | None = None,
        content: bool | None = None,
    ) -> None:
        """Add an event about the issue shown to the audit trail, and a "void" event when an approval
        valid before the change (`before`) no longer covers the issue."""
        issue = self.snapshot.issue or (before.issue if before else None)
        db = self.open_store()
        try:
            now = self.clock()
            issue_id = issue.id if issue else None
            desk.record_audit(
                db, at=now, issue_id=issue_id, actor=actor, action=action, detail=what, content=content
            )
            if before is not None and issue_id is not None:
                status = web.approval_status(db, issue_id)
                if (
                    status.approval is not None
                    and status.voided
                    and (
                        status.approval.html_sha256 == before.html_sha256
                        and status.approval.text_sha256 == before.text_sha256
                    )
                ):
                    desk.record_audit(
                        db,
                        at=now,
                        issue_id=issue_id,
                        actor=actor,
                        action="void",
                        detail=f"voided the approval by {status.approval.approved_by} ({what})",
                    )
        finally:
            db.close()

    def desk_state(self) -> tuple[desk.FourEyes | None, list[desk.AuditEvent]]:
        """Four-eyes state of the issue shown and its audit trail (newest first)."""
        issue = self.snapshot.issue
        db = self.open_store()
        try:
            if issue is None:
                return None, desk.audit_events(db, limit=20)
            return desk.four_eyes(self.config, db, issue.id), desk.audit_events(db, issue_id=issue.id)
        finally:
            db.close()

    def has_users(self) -> bool:
        db = self.open_store()
        try:
            return desk.has_users(db)
        finally:
            db.close()

    def authenticate(self, name: str, password: str) -> desk.User | None:
        db = self.open_store()
        try:
            return desk.authenticate(db, name, password, now=self.clock())
        finally:
            db.close()

    def users(self) -> list[desk.User]:
        db = self.open_store()
        try:
            return desk.list_users(db)
        finally:
            db.close()

    def manage_user(self, action: str, name: str, *, actor: str, role: str = "", password: str = "") -> str:
        """An admin's change to the users ("add" or "remove"); returns what was done, for the audit trail.

        Raises:
            UsageError: a bad name, role or password, a taken name, an unknown user, or removing oneself.
        """
        db = self.open_store()
        try:
            if action == "add":
                desk.add_user(db, name, role, password, now=self.clock())
                what = f"added user {name} ({role})"
            else:
                if name == actor:
                    raise UsageError(
                        "you cannot remove yourself", hint="ask another admin, or use `digest users remove`"
                    )
                desk.remove_user(db, name)
                what = f"removed user {name}"
            desk.record_audit(db, at=self.clock(), issue_id=None, actor=actor, action="users", detail=what)
        finally:
            db.close()
        return what

    def user(self, name: str) -> desk.User | None:
        """A password user as state holds them now (None once removed)."""
        db = self.open_store()
        try:
            return desk.get_user(db, name)
        finally:
            db.close()

    def _load(self) -> Config:
        config = load_config(self.config_path)
        return edition_config(config, self.edition) if self.edition is not None else config

    def open_store(self) -> Store:
        """The configured state (SQLite or PostgreSQL, as `[state]` says); the caller closes it."""
        return self._state.open(self.config)

    def close_state(self) -> None:
        """Close the state's connection pool (PostgreSQL), when the preview stops."""
        self._state.close()

    def send_state(self) -> SendState | None:
        """Whether the issue shown has started sending (read from state now, not from the snapshot)."""
        issue = self.snapshot.issue
        if issue is None:
            return None
        db = self.open_store()
        try:
            return send_state_of(db, issue.id, self.config.web.base_url)
        finally:
            db.close()

    def refuse_if_sent(self) -> None:
        """Raises UsageError when the issue shown has started sending: the preview never changes it."""
        state = self.send_state()
        if state is not None:
            raise UsageError(state.refusal())

    # --- actions -----------------------------------------------------------------------------------

    def approve(
        self,
        name: str,
        *,
        seen_html_sha256: str,
        seen_text_sha256: str,
        seen_variants_sha256: str | None = None,
        signed_in: bool = False,
    ) -> str:
        """Record an approval of the issue as the approver saw it; returns the confirmation to show.

        `name`: the signed-in user (`signed_in`) or the name typed in the form. With `[approval]
        four_eyes`, the person who made the last content change cannot approve.

        Raises:
            UsageError: no issue, an unusable name, or the issue is already being sent.
            ApprovalError: the issue changed since the page the approver used was loaded, or four eyes.
        """
        issue = self.snapshot.issue
        if issue is None:
            raise UsageError("there is no issue to approve")
        self.refuse_if_sent()
        db = self.open_store()
        try:
            eyes = desk.four_eyes(self.config, db, issue.id)
            if eyes.refuses(web.clean_approver_name(name)):
                others = ", ".join(eyes.approvers) or "another approver"
                raise ApprovalError(
                    f"{name} made the last change to issue {issue.id}, so cannot approve it (four eyes);"
                    " nothing was approved",
                    hint=f"ask {others} to approve it ([approval] four_eyes = true)",
                )
            approval = web.approve_issue(
                db,
                issue.id,
                approved_by=name,
                now=self.clock(),
                seen_html_sha256=seen_html_sha256,
                seen_text_sha256=seen_text_sha256,
                seen_variants_sha256=seen_variants_sha256,
            )
            desk.record_audit(
                db,
                at=self.clock(),
                issue_id=issue.id,
                actor=approval.approved_by,
                action="approve",
                detail=f"approved issue {issue.id} (email.html {approval.html_sha256[:12]}…)"
                + ("" if signed_in else " (name typed in the form)"),
            )
        finally:
            db.close()
        return f"Issue {issue.id} approved by {approval.approved_by}."

    def test_send(self, addresses: tuple[str, ...], *, actor: str = "") -> tuple[str, str]:
        """Send the built issue to `addresses` only, through the configured transport ("[TEST] " subject).

        Returns ("ok" or "error", what happened). Raises the send pipeline's errors (bad address, ...).
        """
        issue = self.snapshot.issue
        if issue is None:
            raise UsageError("there is no issue to send yet")
        self.refuse_if_sent()
        db = self.open_store()
        try:
            report = send_issue(self.config, db, now=self.clock(), issue_id=issue.id, to=addresses)
        finally:
            db.close()
        via = f"through {report.transport}"
        self.record("test-send", actor, f"sent a test to {', '.join(addresses)} ({report.sent} sent)")
        if report.ok:
            return "ok", f"Test of issue {issue.id} sent to {', '.join(addresses)} {via}."
        failures = "; ".join(f"{f.email}: {f.reason}" for f in report.failed)
        detail = report.error or failures or "not every message was sent"
        hint = f" ({report.hint})" if report.hint else ""
        return (
            "error",
            f"The test send {via} failed: {detail}{hint}. Sent: {report.sent} of {report.planned}.",
        )

    # --- watching ----------------------------------------------------------------------------------

    def watched_files(self) -> tuple[tuple[str, Path], ...]:
        """(kind, path) of each file whose change changes the preview: config, feeds, templates, draft."""
        config = self.config
        files: list[tuple[str, Path]] = [("config", self.config_path)]
        for source in config.enabled_sources:
            if source.kind == "file":
                files.append(("feeds", Path(source.location)))
            elif source.kind == "glob":
                # The folder too: its modification time changes when a file is added or removed.
                files.append(("feeds", Path(source.location).parent))
                files += [("feeds", Path(p)) for p in sorted(glob.glob(source.location))]  # noqa: PTH207 - an absolute pattern
        for folder in template_search_path(config.theme.templates):
            files.append(("templates", folder))
            if folder.is_dir():
                files += [("templates", p) for p in sorted(folder.rglob("*"))]
        if self.snapshot.draft_file is not None:
            files.append(("draft", self.snapshot.draft_file))
        return tuple(files)

    def fingerprint(self) -> Fingerprint:
        """Modification time and size of every watched file: any difference means a rebuild."""
        return self._marks(self.watched_files())

    @staticmethod
    def _marks(files: tuple[tuple[str, Path], ...]) -> Fingerprint:
        marks = []
        for kind, path in files:
            try:
                stat = path.stat()
                marks.append((f"{kind}:{path}", stat.st_mtime_ns, stat.st_size))
            except OSError:
                marks.append((f"{kind}:{path}", -1, -1))
        return tuple(marks)

    def changed_kinds(self) -> frozenset[str]:
        """The kinds of input ("config", "feeds", "templates", "draft") changed since the last build."""
        now, seen = set(self.fingerprint()), set(self._seen)
        return frozenset(mark[0].split(":", 1)[0] for mark in now ^ seen)

    async def watch(self, interval: float) -> None:
        """Rebuild whenever an input changes (feeds and config also refetch), until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                changed = await asyncio.to_thread(self.changed_kinds)
                if changed:
                    log.info("preview: %s changed, rebuilding", ", ".join(sorted(changed)))
                    rebuild = functools.partial(
                        self.rebuild, fetch=bool(changed & {"feeds", "config"}), changed=changed
                    )
                    await asyncio.to_thread(rebuild)
                    await self.check_links()
            except Exception:  # the watcher must outlive any one failure; the page shows build errors
                log.exception("preview: watching for changes failed")

    async def check_links(self) -> None:
        """Check the links of the current email and of its topic variants (each distinct URL once; cached,
        concurrent) and bump `links_version` when done."""
        if self.checker is None or self.links_checking:
            return
        self.links_checking = True
        try:
            checked = -1
            while checked != self.snapshot.version:  # the draft may be rebuilt while links are checked
                snapshot = self.snapshot
                results = await self.checker.check(tuple(snapshot.link_copies), now=self.clock())
                self.links.update((r.url, r) for r in results)
                checked = snapshot.version
        finally:
            self.links_checking = False
            self.links_version += 1

    def link_results(self) -> tuple[tuple[str, LinkStatus | None, tuple[str, ...]], ...]:
        """(url, its status or None while checking, keys of the copies holding it) of every distinct link
        of the current email and its topic variants ("" is the whole issue)."""
        return tuple((url, self.links.get(url), keys) for url, keys in self.snapshot.link_copies.items())
