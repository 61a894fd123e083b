"""Helpers for the web area's tests: an ASGI app served by uvicorn in a thread, and built-issue fixtures."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


@contextmanager
def served(app: ASGIApp) -> Iterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1, a free port, in a thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1, lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):  # bounded: at most 5 s
        if server.started or not thread.is_alive():
            break
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def write_built_issue(
    out: Path,
    issue_id: str,
    *,
    subject: str = "Weekly news: 9 May 2025",
    edition: int = 1,
    window: tuple[str, str] = ("2025-05-02T16:00:00+00:00", "2025-05-09T16:00:00+00:00"),
    web_html: str | None = None,
    highlights: tuple[tuple[str, str], ...] = (("Start Well", "Midwives celebrated"),),
) -> Path:
    """A build folder as `digest build` writes it (`out/<id>/` with web.html, issue.json, email.*)."""
    folder = out / issue_id
    folder.mkdir(parents=True, exist_ok=True)
    html = web_html or (
        f'<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8"><title>{subject}</title></head>'
        f"<body><main><h1>{subject}</h1><p>Web version of issue {issue_id}.</p></main></body></html>"
    )
    (folder / "web.html").write_text(html, encoding="utf-8")
    (folder / "email.html").write_text(html.replace("Web version", "Email"), encoding="utf-8")
    (folder / "email.txt").write_text(f"{subject}\n\nPlain text of {issue_id}.\n", encoding="utf-8")
    entry = {"id": "e1", "title": "Midwives celebrated", "link": "https://example.org/a", "source": "News"}
    data = {
        "id": issue_id,
        "edition": edition,
        "window": {"start": window[0], "end": window[1]},
        "subject": subject,
        "preheader": "Midwives, green plan and dying matters week",
        "highlights": [
            {"priority": p, "reason": "matched 'midwives'", "entry": {**entry, "title": t}}
            for p, t in highlights
        ],
        "sections": [{"category": "News", "groups": [{"label": "Friday 9 May 2025", "entries": [entry]}]}],
        "sources": [],
    }
    (folder / "issue.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


def record_sent(db: object, folder: Path, issue_id: str, *, sent_at: datetime, edition: int = 1) -> None:
    """Record the fixture issue as built and sent in state."""
    import hashlib
    import sqlite3

    from digest.state.issues import mark_issue_sent, record_built_issue

    assert isinstance(db, sqlite3.Connection)
    data = json.loads((folder / "issue.json").read_text())
    record_built_issue(
        db,
        issue_id=issue_id,
        edition=edition,
        window_start=datetime.fromisoformat(data["window"]["start"]),
        window_end=datetime.fromisoformat(data["window"]["end"]),
        subject=data["subject"],
        built_at=sent_at,
        out_dir=folder,
        html_sha256=hashlib.sha256((folder / "email.html").read_bytes()).hexdigest(),
        text_sha256=hashlib.sha256((folder / "email.txt").read_bytes()).hexdigest(),
        entry_ids=["e1"],
        empty=False,
    )
    mark_issue_sent(db, issue_id, sent_at.astimezone(UTC))
