"""The public web archive: one static page per sent issue, an index page and an Atom feed of issues.

Layout of the archive folder (`[web] archive_dir`), which any static web server can serve:

    index.html               every published issue, newest first
    feed.atom                Atom 1.0 feed of the newest issues
    issues/<id>/index.html   the issue's web version (the build's `web.html`), so `models.issue_url` resolves
    assets/site.css          the style sheet of the index (and of the unsubscribe pages of `digest serve`)
    archive.json             what the archive holds (the index and the feed are regenerated from it)

Each file is written atomically (a temporary file, then a rename), and publishing the same issue twice
replaces its page rather than adding a second entry. The HTML of the index page is produced by a renderer
handed in by the caller (the web area's page templates); this module owns the folder, the manifest and the
feed, and never renders email content itself.
"""

from __future__ import annotations

import fcntl
import html
import json
import logging
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from digest.errors import StateError, UsageError
from digest.models import issue_url

log = logging.getLogger(__name__)

ATOM_NS = "http://www.w3.org/2005/Atom"
FEED_ENTRIES = 50
MANIFEST = "archive.json"
_ISSUE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SITE_CSS = Path(__file__).parent.parent / "web" / "static" / "site.css"


@dataclass(frozen=True, slots=True)
class ArchivedIssue:
    """What the archive keeps about one published issue (read from its `issue.json`)."""

    id: str
    edition: int
    subject: str
    preheader: str
    window_start: datetime
    window_end: datetime
    sent_at: datetime
    highlights: tuple[str, ...] = ()
    entry_count: int = 0


@dataclass(frozen=True, slots=True)
class Site:
    """The archive's identity: title, public base URL, language and the organisation named as author."""

    title: str
    base_url: str
    lang: str
    organisation: str

    def issue_url(self, issue_id: str) -> str:
        return issue_url(self.base_url, issue_id)

    @property
    def feed_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/feed.atom"

    @property
    def index_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/"


IndexRenderer = Callable[[Site, Sequence[ArchivedIssue]], str]


def check_issue_id(issue_id: str) -> str:
    """An issue id safe to use as a folder name and in a URL path.

    Raises:
        UsageError: the id is empty, too long, or has characters other than letters, digits, '.', '_', '-'.
    """
    if not _ISSUE_ID.match(issue_id) or ".." in issue_id:
        raise UsageError(
            f"issue id {issue_id!r} cannot be published: use letters, digits, '.', '_' and '-' only"
        )
    return issue_id


def read_built_issue(folder: Path, *, sent_at: datetime) -> ArchivedIssue:
    """The archive record of a built issue, from its `issue.json`.

    Raises:
        UsageError: the folder has no readable `issue.json` or `web.html`, or `issue.json` lacks `id`,
            `subject` or `window`.
    """
    path = folder / "issue.json"
    if not (folder / "web.html").is_file():
        raise UsageError(f"{folder / 'web.html'}: missing; the issue folder is not a complete build")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise UsageError(f"{path}: missing; the issue folder is not a complete build") from e
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: cannot be read: {e}", hint="rebuild the issue with `digest build`") from e
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not an issue.json object", hint="rebuild the issue with `digest build`")
    try:
        window = data["window"]
        return ArchivedIssue(
            id=check_issue_id(str(data["id"])),
            edition=int(data.get("edition", 0)),
            subject=str(data["subject"]),
            preheader=str(data.get("preheader", "")),
            window_start=_aware(window["start"]),
            window_end=_aware(window["end"]),
            sent_at=sent_at.astimezone(UTC),
            highlights=tuple(_highlight_line(h) for h in data.get("highlights", ()) if isinstance(h, dict)),
            entry_count=_entry_count(data),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(
            f"{path}: missing or invalid field {e}", hint="rebuild the issue with `digest build`"
        ) from e


def _aware(value: object) -> datetime:
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"'{value}' has no time zone")
    return parsed.astimezone(UTC)


def _highlight_line(highlight: Mapping[str, Any]) -> str:
    entry = highlight.get("entry")
    title = entry.get("title") if isinstance(entry, dict) else None
    priority = highlight.get("priority")
    if title and priority:
        return f"{priority}: {title}"
    return str(title or "")


def _entry_count(data: Mapping[str, Any]) -> int:
    count = 0
    for section in data.get("sections", ()):
        for group in section.get("groups", ()) if isinstance(section, dict) else ():
            count += len(group.get("entries", ())) if isinstance(group, dict) else 0
    return count


def load_manifest(archive_dir: Path) -> tuple[ArchivedIssue, ...]:
    """The issues already published in an archive folder, newest first (an empty tuple for a new folder).

    Raises:
        StateError: `archive.json` exists but cannot be read.
    """
    path = archive_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        issues = tuple(
            ArchivedIssue(
                id=check_issue_id(str(item["id"])),
                edition=int(item["edition"]),
                subject=str(item["subject"]),
                preheader=str(item["preheader"]),
                window_start=_aware(item["window_start"]),
                window_end=_aware(item["window_end"]),
                sent_at=_aware(item["sent_at"]),
                highlights=tuple(str(h) for h in item.get("highlights", ())),
                entry_count=int(item.get("entry_count", 0)),
            )
            for item in data["issues"]
        )
    except FileNotFoundError:
        return ()
    except (OSError, ValueError, KeyError, TypeError, UsageError) as e:
        raise StateError(
            f"{path}: the archive manifest cannot be read: {e}",
            hint="move the file away and publish the sent issues again with `digest publish`",
        ) from e
    return _newest_first(issues)


def _newest_first(issues: Sequence[ArchivedIssue]) -> tuple[ArchivedIssue, ...]:
    return tuple(sorted(issues, key=lambda i: (i.window_end, i.sent_at, i.id), reverse=True))


def _manifest_json(issues: Sequence[ArchivedIssue]) -> str:
    items = []
    for issue in issues:
        item = asdict(issue)
        for key in ("window_start", "window_end", "sent_at"):
            item[key] = item[key].isoformat()
        item["highlights"] = list(issue.highlights)
        items.append(item)
    return json.dumps({"version": 1, "issues": items}, indent=2, ensure_ascii=False) + "\n"


def atom_feed(site: Site, issues: Sequence[ArchivedIssue]) -> str:
    """An Atom 1.0 feed (RFC 4287) of the newest published issues, as an XML document."""
    ET.register_namespace("", ATOM_NS)
    newest = _newest_first(issues)[:FEED_ENTRIES]

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            element.text = text
        return element

    feed = ET.Element(f"{{{ATOM_NS}}}feed", {"{http://www.w3.org/XML/1998/namespace}lang": site.lang})
    sub(feed, "id", site.index_url)
    sub(feed, "title", site.title)
    updated = max((i.sent_at for i in newest), default=datetime(2000, 1, 1, tzinfo=UTC))
    sub(feed, "updated", _rfc3339(updated))
    sub(feed, "link", rel="self", type="application/atom+xml", href=site.feed_url)
    sub(feed, "link", rel="alternate", type="text/html", href=site.index_url)
    author = sub(feed, "author")
    sub(author, "name", site.organisation or site.title)
    sub(feed, "generator", "digest")
    for issue in newest:
        url = site.issue_url(issue.id)
        entry = sub(feed, "entry")
        sub(entry, "id", url)
        sub(entry, "title", issue.subject)
        sub(entry, "updated", _rfc3339(issue.sent_at))
        sub(entry, "published", _rfc3339(issue.sent_at))
        sub(entry, "link", rel="alternate", type="text/html", href=url)
        sub(entry, "summary", issue.preheader or issue.subject)
        if issue.highlights:
            items = "".join(f"<li>{html.escape(line)}</li>" for line in issue.highlights)
            sub(entry, "content", f"<p>Highlights of this issue:</p><ul>{items}</ul>", type="html")
    ET.indent(feed)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="unicode") + "\n"


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def publish(
    archive_dir: Path,
    folder: Path,
    issue: ArchivedIssue,
    *,
    site: Site,
    render_index: IndexRenderer,
) -> Path:
    """Publish one built issue into the archive and regenerate the index page and the feed.

    Returns the path of the issue's page. Publishing an issue again replaces its page and its entry.

    Raises:
        StateError: the archive folder cannot be written, or its manifest cannot be read.
    """
    check_issue_id(issue.id)
    try:
        web_html = (folder / "web.html").read_bytes()
    except OSError as e:
        raise StateError(f"{folder / 'web.html'}: cannot be read: {e.strerror}") from e
    try:
        archive_dir.mkdir(parents=True, exist_ok=True)
        with _locked(archive_dir):
            page = archive_dir / "issues" / issue.id / "index.html"
            _write_atomic(page, web_html)
            issues = [i for i in load_manifest(archive_dir) if i.id != issue.id]
            issues = list(_newest_first([*issues, replace(issue)]))
            _write_site(archive_dir, site, issues, render_index)
    except OSError as e:
        raise StateError(
            f"{archive_dir}: cannot write the web archive: {e.strerror or e}",
            hint="check that [web] archive_dir is a writable folder",
        ) from e
    log.info("published issue %s to %s", issue.id, page)
    return page


def rebuild(archive_dir: Path, *, site: Site, render_index: IndexRenderer) -> tuple[ArchivedIssue, ...]:
    """Regenerate the index page, the feed and the style sheet from the manifest (after a config change).

    Raises:
        StateError: the archive folder cannot be written, or its manifest cannot be read.
    """
    try:
        archive_dir.mkdir(parents=True, exist_ok=True)
        with _locked(archive_dir):
            issues = load_manifest(archive_dir)
            _write_site(archive_dir, site, issues, render_index)
    except OSError as e:
        raise StateError(f"{archive_dir}: cannot write the web archive: {e.strerror or e}") from e
    return issues


def _write_site(
    archive_dir: Path, site: Site, issues: Sequence[ArchivedIssue], render_index: IndexRenderer
) -> None:
    _write_atomic(archive_dir / "assets" / "site.css", SITE_CSS.read_bytes())
    _write_atomic(archive_dir / "index.html", render_index(site, issues).encode("utf-8"))
    _write_atomic(archive_dir / "feed.atom", atom_feed(site, issues).encode("utf-8"))
    # The manifest goes last: if anything above failed, the next publish rebuilds every file.
    _write_atomic(archive_dir / MANIFEST, _manifest_json(issues).encode("utf-8"))


@contextmanager
def _locked(archive_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the archive folder, so two publishers never lose each other's issue."""
    with (archive_dir / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).chmod(0o644)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
