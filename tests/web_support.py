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

from digest.state.store import Store

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

    assert isinstance(db, Store)
    data = json.loads((folder / "issue.json").read_text())
    db.issues.record_built_issue(
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
    db.issues.mark_issue_sent(issue_id, sent_at.astimezone(UTC))


REPO = Path(__file__).resolve().parent.parent
AS_OF = datetime.fromisoformat("2025-05-09T17:00:00+01:00")
PREVIEW_NOW = datetime.fromisoformat("2025-05-09T17:30:00+01:00")


def sample_project(root: Path, *, replace: dict[str, str] | None = None, append: str = "") -> Path:
    """A copy of the shipped sample (config.toml and feeds/) in `root`; returns the config path.

    `replace` swaps exact lines of the shipped config (e.g. the transport), `append` adds tables.
    """
    import shutil

    shutil.copytree(REPO / "feeds", root / "feeds")
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    for old, new in (replace or {}).items():
        assert old in text, f"{old!r} is not in the shipped config"
        text = text.replace(old, new)
    (root / "config.toml").write_text(text + append, encoding="utf-8")
    return root / "config.toml"


def wait_for(predicate: object, *, what: str, attempts: int = 300, pause: float = 0.05) -> None:
    """Poll `predicate()` until true (bounded: `attempts` x `pause`)."""
    assert callable(predicate)
    for _ in range(attempts):
        if predicate():
            return
        time.sleep(pause)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def preview_served(
    config_path: Path,
    *,
    check_links: bool = False,
    access_token: str | None = None,
    offline: bool = False,
    as_of: datetime = AS_OF,
    status_code: int = 200,
) -> Iterator[tuple[str, object]]:
    """The preview app of `config_path` on 127.0.0.1, after its first build; yields (base URL, workspace).

    `status_code`: what an anonymous GET /api/status gets (401 once users must sign in).
    """
    import httpx

    from digest.web.app import create_preview_app
    from digest.web.workspace import Workspace

    workspace = Workspace(
        config_path, clock=lambda: PREVIEW_NOW, as_of=as_of, offline=offline, check_links=check_links
    )
    app = create_preview_app(workspace, access_token=access_token, watch_interval=0.1)
    with served(app) as base:
        wait_for(lambda: workspace.snapshot.version >= 1, what="the first preview build", attempts=600)
        if check_links:
            wait_for(lambda: workspace.links_version >= 1, what="the first link check", attempts=600)
        headers = {"authorization": f"Bearer {access_token}"} if access_token else {}
        assert httpx.get(f"{base}/api/status", headers=headers).status_code == status_code
        yield base, workspace


def csrf_of(html: str) -> str:
    """The CSRF token in a preview page's forms."""
    import re

    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


SCREENSHOTS = REPO / "docs" / "screenshots"


def screenshot_dir(tmp_path: Path) -> Path:
    """Where browser tests put screenshots: docs/screenshots/ with DIGEST_SCREENSHOTS=1, else tmp_path."""
    import os

    if os.environ.get("DIGEST_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path


def axe_serious(page: object, *, scheme: str = "light") -> list[dict[str, object]]:
    """axe-core's serious and critical WCAG 2.2 AA violations on the page (in light or dark scheme)."""
    from conftest import AXE_JS

    page.emulate_media(color_scheme=scheme)  # type: ignore[attr-defined]
    page.add_script_tag(path=str(AXE_JS))  # type: ignore[attr-defined]
    result = page.evaluate(  # type: ignore[attr-defined]
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations']})",
        AXE_TAGS,
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
