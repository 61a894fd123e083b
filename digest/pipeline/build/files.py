"""The files of a built issue: `issue.json`, a sample `email.eml`, and writing the five files atomically."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digest.config import Config
from digest.deliver import MessageTemplate, Recipient
from digest.deliver.headers import HeaderValueError
from digest.deliver.issue import message_sender
from digest.errors import ConfigError, RenderError
from digest.models import (
    Issue,
    IssueEntry,
    RenderedIssue,
    SourceReport,
    image_to_dict,
)
from digest.state import to_iso

SAMPLE_NAME = "Sam Sample"
SAMPLE_ADDRESS = "sam.sample@example.org"


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
        "image": image_to_dict(e.image) if e.image else None,
        "pinned": e.pinned,
        "language": e.language,
        "enriched": list(e.enriched),
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
    """A complete multipart/alternative message of the issue, personalised for a sample reader.

    Made by the encoder `digest send` uses (`MessageTemplate`: quoted-printable lines of at most 76
    characters, CRLF line ends), with a boundary derived from the content so the file is reproducible.

    Raises:
        ConfigError: a `[delivery]` address or list id cannot be used in a header.
    """
    issue = rendered.issue
    d = config.delivery
    digest_of = hashlib.sha256(rendered.email_text.encode() + rendered.email_html.encode()).hexdigest()[:24]
    try:
        template = MessageTemplate(
            html_body=rendered.email_html,
            text_body=rendered.email_text,
            subject=issue.subject,
            sender=message_sender(config),
            issue_id=issue.id,
            boundary=f"=_digest_{digest_of}",
        )
        return template.message(
            Recipient(SAMPLE_ADDRESS, SAMPLE_NAME),
            unsubscribe_url=unsubscribe,
            message_id=f"<{issue.id}.sample@{d.list_id}>",
            date=issue.window.end,
        )
    except HeaderValueError as e:
        raise ConfigError(str(e), hint="fix the [delivery] setting named above") from e


# email.eml is a complete message (From, Reply-To, a sample unsubscribe link): private, like the outbox.
_MODES = {"email.eml": 0o600}


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a file whole or not at all (a temporary file in the same folder, then renamed)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).chmod(mode)
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
            write_atomic(folder / name, data, _MODES.get(name, 0o644))
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
