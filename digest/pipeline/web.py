"""The web area's pipeline: publishing sent issues, unsubscribing, approving, and the site's identity.

`publish_issue` is called by the send pipeline once an issue is sent. The Starlette apps in
`digest.web` are thin shells over the functions here: they reach state (`open_state` and the
operations below) and page rendering (`render_page`, `html_lang`, ...) only through this module,
never `digest.state` or `digest.render` themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import unicodedata
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from digest.config import Config
from digest.deliver.tokens import (
    BadTokenError,
    StaleTokenError,
    read_address_token,
    read_unsubscribe_token,
    unsubscribe_secret,
)
from digest.errors import ApprovalError, StateError, UsageError
from digest.publish import archive
from digest.publish.archive import ArchivedIssue, Site
from digest.render import html_lang, part_language, template_search_path
from digest.render.pages import PageFormat, render_message, render_page
from digest.state import subscribers
from digest.state.approvals import Approval
from digest.state.issues import IssueRecord
from digest.state.store import Store, open_store

__all__ = [
    "ApprovalStatus",
    "IssueRecord",
    "PageFormat",
    "SharedState",
    "Store",
    "UnsubscribeOutcome",
    "approval_status",
    "approve_issue",
    "check_unsubscribe_token",
    "dropped_titles",
    "html_lang",
    "issue_entry_ids",
    "issue_folder",
    "issue_record",
    "last_sent_issue",
    "newest_entry_before",
    "open_state",
    "part_language",
    "publish_issue",
    "rebuild_archive",
    "render_archive_index",
    "render_message",
    "render_page",
    "started_issue_in_window",
    "template_search_path",
    "unsubscribe",
]

log = logging.getLogger(__name__)

MAX_APPROVER_NAME = 100


def site_of(config: Config) -> Site:
    """The public site's identity, from `[digest]`, `[web]` and `[theme]`."""
    return Site(
        title=config.digest.title,
        base_url=config.archive_url,
        lang=config.digest.locale.replace("_", "-"),
        organisation=config.theme.organisation,
    )


def render_archive_index(site: Site, issues: Sequence[ArchivedIssue], *, fmt: PageFormat) -> str:
    """The archive's index page: every published issue, newest first, and a link to the Atom feed."""
    return render_page(
        "archive_index.html",
        lang=site.lang,
        title=f"{site.title}: all issues",
        site=site,
        issues=issues,
        fmt=fmt,
        css="assets/site.css",
    )


def page_format(config: Config) -> PageFormat:
    return PageFormat(locale=config.digest.locale, timezone=config.digest.timezone)


def _index_renderer(config: Config) -> archive.IndexRenderer:
    fmt = page_format(config)
    return lambda site, published: render_archive_index(site, published, fmt=fmt)


def issue_folder(record: IssueRecord) -> Path:
    """The build folder of an issue (`DIR/<issue-id>/`), whichever of the two the state row names.

    Raises:
        UsageError: the folder (with its `issue.json`) no longer exists.
    """
    for folder in (record.out_dir, record.out_dir / record.id):
        if (folder / "issue.json").is_file():
            return folder
    raise UsageError(
        f"issue {record.id}: its build folder {record.out_dir} is gone",
        hint=f"rebuild it with `digest build --as-of {record.window_end.isoformat()}`",
    )


def publish_issue(config: Config, db: Store, issue_id: str) -> Path:
    """Publish a sent issue to the web archive (`[web] archive_dir`) and refresh the index and the feed.

    Returns the path of the issue's page (`issues/<id>/index.html`); `models.issue_url` points at it.

    Raises:
        UsageError: the issue is unknown, not sent yet, or its build folder is gone.
        StateError: the archive folder cannot be written.
    """
    record = db.issues.get_issue(issue_id)
    if record is None:
        raise UsageError(f"issue {issue_id}: not found in state", hint="`digest status` lists the issues")
    if record.sent_at is None:
        raise UsageError(
            f"issue {issue_id}: not sent yet; only sent issues are published to the archive",
            hint="the send pipeline publishes it once every subscriber has been sent it",
        )
    folder = issue_folder(record)
    published = archive.read_built_issue(folder, sent_at=record.sent_at)
    if published.id != issue_id:
        raise UsageError(f"{folder / 'issue.json'}: holds issue {published.id}, not {issue_id}")
    return archive.publish(
        config.web.archive_dir,
        folder,
        published,
        site=site_of(config),
        render_index=_index_renderer(config),
    )


def rebuild_archive(config: Config) -> tuple[ArchivedIssue, ...]:
    """Regenerate the archive's index page and feed from what it holds (title or base URL may have changed).

    Raises:
        StateError: the archive folder cannot be written or its manifest read.
    """
    return archive.rebuild(config.web.archive_dir, site=site_of(config), render_index=_index_renderer(config))


# --- state, as the web apps need it ----------------------------------------------------------------


def open_state(config: Config) -> Store:
    """The configured state (`[state] url` PostgreSQL, else the `[state] path` SQLite file); close it after.

    Raises:
        StateError: the database cannot be reached, opened or migrated.
    """
    return open_store(config)


class SharedState:
    """The state of a long-running web app (the preview, `digest serve`), one handle per use.

    SQLite is opened for each use (a connection to a local file is cheap). PostgreSQL keeps one
    connection pool for the app's life, so a request does not connect, check the migrations and open
    a pool again: each use gets a handle on it (closing the handle leaves the pool open). A changed
    `[state] url` (the preview reloads its config) opens a new pool; `close()` closes every pool.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._store: Store | None = None
        self._key: tuple[str, str | None] | None = None
        self._retired: list[Store] = []

    def open(self, config: Config) -> Store:
        """A handle on the configured state for one use; close it after.

        Raises:
            StateError: the database cannot be reached, opened or migrated.
        """
        if config.state_url is None:
            return open_store(config)
        key = (config.state_url, config.state_password_env)
        with self._lock:
            if self._store is None or self._key != key:
                if self._store is not None:
                    self._retired.append(self._store)  # a request may still use it: closed at the end
                self._store, self._key = open_store(config), key
            return self._store.another()

    @contextmanager
    def use(self, config: Config) -> Iterator[Store]:
        """`open` for the block, closing the handle at its end."""
        db = self.open(config)
        try:
            yield db
        finally:
            db.close()

    @asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """An ASGI app's lifespan that closes the pool when the app stops."""
        try:
            yield
        finally:
            self.close()

    def close(self) -> None:
        with self._lock:
            for store in (*self._retired, *((self._store,) if self._store else ())):
                store.close()
            self._store, self._key, self._retired = None, None, []


def issue_record(db: Store, issue_id: str) -> IssueRecord | None:
    """What state knows about one built issue (None when it is unknown)."""
    return db.issues.get_issue(issue_id)


def issue_entry_ids(db: Store, issue_id: str) -> frozenset[str]:
    """The ids of the entries a built issue holds."""
    return db.issues.issue_entry_ids(issue_id)


def last_sent_issue(db: Store) -> IssueRecord | None:
    """The sent issue with the latest window end (the next window starts where it ended)."""
    return db.issues.last_sent_issue()


def dropped_titles(db: Store, entry_ids: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(id, title) of each entry id (the id alone as title when state no longer has the entry)."""
    rows = []
    for entry_id in entry_ids:
        found = db.entries.find_entry(entry_id)
        rows.append((entry_id, found.title if found else entry_id))
    return tuple(rows)


def newest_entry_before(db: Store, moment: datetime) -> datetime | None:
    """When the newest stored entry published before `moment` was published (None when there is none)."""
    return db.entries.newest_before(moment)


def started_issue_in_window(db: Store, since: datetime, until: datetime) -> tuple[IssueRecord, int] | None:
    """The latest issue whose sending started and whose window overlaps [since, until), with how many
    entries it holds (issues holding none are passed over); None when there is none."""
    for record in db.issues.recent_issues(limit=1_000_000):
        if record.send_started_at is None or not (record.window_start < until and since < record.window_end):
            continue
        count = len(db.issues.issue_entry_ids(record.id))
        if count:
            return record, count
    return None


# --- unsubscribe ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnsubscribeOutcome:
    """What a valid unsubscribe token found: the address, its status before, and whether it changed now."""

    email: str
    known: bool
    status_before: str | None
    unsubscribed_now: bool


def csrf_secret(config: Config, db: Store) -> bytes:
    """The secret the public app's CSRF tokens are keyed with: derived from the unsubscribe secret
    (`$<[web] secret_env>` or the one in state), so every `digest serve` process and host on this state
    accepts a form another served, and a restart does not expire the forms open in browsers."""
    return hmac.new(unsubscribe_secret(config, db).encode("utf-8"), b"digest csrf", hashlib.sha256).digest()


def check_unsubscribe_token(config: Config, db: Store, token: str) -> UnsubscribeOutcome:
    """Read a token without changing anything (the confirmation page of a GET).

    Raises:
        StaleTokenError: the token is genuine but its subscription has ended: the address was
            re-subscribed (a new subscription, with new links) or removed since it was issued.
        BadTokenError: the token is missing, altered or signed with another secret.
    """
    if not token:
        raise BadTokenError("this unsubscribe link has no token")
    subscriber = _token_subscriber(unsubscribe_secret(config, db), db, token)
    if subscriber is None:
        raise StaleTokenError("this unsubscribe link is no longer valid")
    return UnsubscribeOutcome(
        email=subscriber.email,
        known=True,
        status_before=subscriber.status,
        unsubscribed_now=False,
    )


def _token_subscriber(secret: str, db: Store, token: str) -> subscribers.Subscriber | None:
    try:
        token_id = read_unsubscribe_token(secret, token)
    except BadTokenError:
        # An old-style token naming the address counts only until the address is re-subscribed.
        email = read_address_token(secret, token)
        found = db.subscribers.get_subscriber(email)
        return found if found is not None and found.address_tokens else None
    return db.subscribers.subscriber_by_token(token_id)


def unsubscribe(config: Config, db: Store, token: str, *, now: datetime, how: str) -> UnsubscribeOutcome:
    """Unsubscribe the subscription a token names (idempotent: an unsubscribed address stays as it is).

    `how` is kept as the reason ("one-click", "unsubscribe page").

    Raises:
        StaleTokenError: the token's subscription has ended (re-subscribed or removed since); nothing changes.
        BadTokenError: the token is missing, altered or signed with another secret.
    """
    found = check_unsubscribe_token(config, db, token)
    if not found.known or found.status_before == "unsubscribed":
        return found
    changed = db.subscribers.set_status(found.email, "unsubscribed", at=now, reason=f"unsubscribed ({how})")
    if changed:
        log.info("unsubscribed %s (%s)", mask_email(found.email), how)
    return UnsubscribeOutcome(found.email, True, found.status_before, unsubscribed_now=changed)


def mask_email(email: str) -> str:
    """`j***@example.org`: enough to follow a log line, not enough to harvest addresses."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


# --- approval ------------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file (what an approval records for email.html and email.txt).

    Raises:
        StateError: the file cannot be read.
    """
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as e:
        raise StateError(f"{path}: cannot be read: {e.strerror}") from e


@dataclass(frozen=True, slots=True)
class ApprovalStatus:
    """The approval of an issue, if any, and whether it still covers the issue's current content."""

    approval: Approval | None
    valid: bool

    @property
    def voided(self) -> bool:
        return self.approval is not None and not self.valid


def approval_status(db: Store, issue_id: str) -> ApprovalStatus:
    """Whether the issue as it is now built is approved (any change to email.html or email.txt voids it)."""
    record = db.issues.get_issue(issue_id)
    approval = db.approvals.get_approval(issue_id)
    if record is None or approval is None:
        return ApprovalStatus(approval, valid=False)
    return ApprovalStatus(approval, valid=approval.covers(record.html_sha256, record.text_sha256))


def clean_approver_name(name: str) -> str:
    """The approver's name as typed, trimmed; it must be printable text of at most 100 characters.

    Raises:
        UsageError: the name is empty, too long, or holds control characters.
    """
    cleaned = " ".join(name.split())
    if not cleaned:
        raise UsageError("type your name to approve the issue")
    if len(cleaned) > MAX_APPROVER_NAME:
        raise UsageError(f"the name is longer than {MAX_APPROVER_NAME} characters")
    if any(unicodedata.category(c).startswith("C") for c in cleaned):
        raise UsageError("the name holds control characters")
    return cleaned


def approve_issue(
    db: Store,
    issue_id: str,
    *,
    approved_by: str,
    now: datetime,
    seen_html_sha256: str,
    seen_text_sha256: str,
    seen_variants_sha256: str | None = None,
) -> Approval:
    """Record that `approved_by` approved the issue exactly as they saw it (the hashes shown to them).

    The hashes must match both the issue's state record and the files on disk, so an approval never covers
    content the approver did not see; `seen_variants_sha256` (the preview's) must match the issue's topic
    variants as recorded now (the approval records them all: a later change to any voids it).

    Raises:
        UsageError: the name is unusable, the issue is unknown, or it is already being sent.
        ApprovalError: the issue changed since the approver loaded it.
    """
    name = clean_approver_name(approved_by)
    record = db.issues.get_issue(issue_id)
    if record is None:
        raise UsageError(f"issue {issue_id}: not found in state")
    if record.send_started_at is not None:
        raise UsageError(f"issue {issue_id}: already being sent or sent; there is nothing left to approve")
    folder = issue_folder(record)
    on_disk = (file_sha256(folder / "email.html"), file_sha256(folder / "email.txt"))
    current = (record.html_sha256, record.text_sha256)
    variants_changed = seen_variants_sha256 is not None and seen_variants_sha256 != db.topics.fingerprint(
        issue_id
    )
    if (seen_html_sha256, seen_text_sha256) != current or on_disk != current or variants_changed:
        raise ApprovalError(
            f"issue {issue_id} changed after you loaded it; nothing was approved",
            hint="review the new version of the draft, then approve it",
        )
    approval = db.approvals.record_approval(
        issue_id=issue_id,
        approved_by=name,
        approved_at=now,
        html_sha256=record.html_sha256,
        text_sha256=record.text_sha256,
    )
    log.info("issue %s approved by %s", issue_id, name)
    return approval
