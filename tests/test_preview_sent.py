"""Issue 9, item 10: the preview never edits a sent issue.

A preview page opened before `digest send` shows the issue read-only as soon as its sending starts: every
page load, poll and POST reads the issue's state; POSTs change nothing and say why, with the archive link.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from state_support import sql
from web_support import csrf_of, preview_served, sample_project

from digest.errors import UsageError
from digest.models import issue_url
from digest.state.store import open_store
from digest.web.workspace import Workspace

STARTED = datetime.fromisoformat("2025-05-09T17:40:00+01:00")
SENT = datetime.fromisoformat("2025-05-09T17:45:00+01:00")


@pytest.fixture
def preview(tmp_path: Path) -> Iterator[tuple[httpx.Client, Workspace]]:
    with preview_served(sample_project(tmp_path)) as (base, workspace), httpx.Client(base_url=base) as client:
        assert isinstance(workspace, Workspace)
        yield client, workspace


def mark(workspace: Workspace, *, finished: bool) -> str:
    """Record the shown issue as part-sent (or sent), as `digest send` in another process would."""
    issue = workspace.snapshot.issue
    assert issue is not None
    db = open_store(workspace.config.state_path)
    try:
        db.issues.mark_send_started(issue.id, STARTED)
        if finished:
            db.issues.mark_issue_sent(issue.id, SENT)
    finally:
        db.close()
    return issue.id


def draft_bytes(workspace: Workspace) -> bytes | None:
    path = workspace.snapshot.draft_file
    assert path is not None
    return path.read_bytes() if path.exists() else None


def notice_of(client: httpx.Client, response: httpx.Response) -> str:
    assert response.status_code == 303
    page = client.get(response.headers["location"]).text
    match = re.search(r'<div class="notice error" role="alert" id="notice"><p>(.*?)</p>', page, re.S)
    assert match, "no error notice on the page"
    return match.group(1)


def test_after_the_send_every_post_is_refused_and_changes_nothing(
    preview: tuple[httpx.Client, Workspace],
) -> None:
    client, workspace = preview
    token = csrf_of(client.get("/").text)
    # An edit before the send is saved (so the draft file exists and has content to protect).
    entry_id = workspace.snapshot.issue.entries[0].entry.id  # type: ignore[union-attr]
    other_id = workspace.snapshot.issue.entries[1].entry.id  # type: ignore[union-attr]
    assert client.post("/draft/pin", data={"csrf_token": token, "entry": entry_id}).status_code == 303
    snapshot = workspace.snapshot
    issue_id = mark(workspace, finished=True)
    before, version = draft_bytes(workspace), snapshot.version
    assert before is not None
    posts = {
        "/draft/drop": {"entry": other_id},
        "/draft/pin": {"entry": other_id},
        "/draft/unpin": {"entry": entry_id},
        "/draft/restore": {"entry": other_id},
        "/draft/move": {"entry": other_id, "direction": "up", "list": "day", "shown": [entry_id, other_id]},
        "/draft/retag": {"entry": other_id, "priority": ["Growth"]},
        "/draft/intro": {"intro": "A late intro."},
        "/approve": {
            "name": "Priya",
            "html_sha256": snapshot.html_sha256,
            "text_sha256": snapshot.text_sha256,
        },
        "/rebuild": {},
        "/test-send": {"to": "someone@example.org"},
    }
    archive = issue_url(workspace.config.web.base_url, issue_id)
    for path, data in posts.items():
        response = client.post(path, data={"csrf_token": token, **data})
        notice = notice_of(client, response)
        assert f"Issue {issue_id} has been sent" in notice, path
        assert "changed nothing" in notice
        assert archive in notice
        assert draft_bytes(workspace) == before, path
        assert workspace.snapshot.version == version, path  # nothing was rebuilt
    db = open_store(workspace.config.state_path)
    try:
        approvals = sql(db).execute("SELECT count(*) FROM approvals").fetchone()[0]
    finally:
        db.close()
    assert approvals == 0
    outbox = workspace.config.delivery.outbox
    assert not outbox.exists() or not any(outbox.rglob("*.eml"))


def test_a_page_load_shows_a_sent_issue_read_only_with_its_archive_link(
    preview: tuple[httpx.Client, Workspace],
) -> None:
    client, workspace = preview
    snapshot = workspace.snapshot
    token = csrf_of(client.get("/").text)
    approve = {"csrf_token": token, "name": "Priya Shah"}
    approve |= {"html_sha256": snapshot.html_sha256, "text_sha256": snapshot.text_sha256}
    assert client.post("/approve", data=approve).status_code == 303
    live = client.get("/").text
    assert "Approved</strong> by Priya Shah" in live
    assert 'action="/draft/drop"' in live
    assert 'data-read-only="0"' in live

    issue_id = mark(workspace, finished=True)
    page = client.get("/").text
    assert 'data-read-only="1"' in page
    assert "Approved</strong> by" not in page
    assert "<strong>Sent</strong>" in page
    archive = issue_url(workspace.config.web.base_url, issue_id)
    assert f'<a href="{archive}" id="archive-link">Its archive page</a>' in page
    for action in ("/draft/", "/approve", "/rebuild", "/test-send"):
        assert f'action="{action}' not in page, action
    assert 'action="/refresh"' in page  # checking for the next issue changes nothing of this one
    assert "Check for the next issue" in page
    # The email itself can still be looked at.
    assert client.get("/email.html").status_code == 200


def test_a_part_sent_issue_is_read_only_too(preview: tuple[httpx.Client, Workspace]) -> None:
    client, workspace = preview
    token = csrf_of(client.get("/").text)
    before = draft_bytes(workspace)
    issue_id = mark(workspace, finished=False)
    page = client.get("/").text
    assert "<strong>Being sent:</strong>" in page
    assert "digest send" in page
    assert 'action="/draft/' not in page
    entry_id = workspace.snapshot.issue.entries[0].entry.id  # type: ignore[union-attr]
    notice = notice_of(client, client.post("/draft/drop", data={"csrf_token": token, "entry": entry_id}))
    assert f"Issue {issue_id} is being sent (part-sent" in notice
    assert f"published at {issue_url(workspace.config.web.base_url, issue_id)}" in notice
    assert 'id="archive-link"' in page
    assert draft_bytes(workspace) == before


def test_the_poll_reports_read_only_once_sending_starts(preview: tuple[httpx.Client, Workspace]) -> None:
    client, workspace = preview
    assert client.get("/api/status").json()["read_only"] is False
    mark(workspace, finished=False)
    assert client.get("/api/status").json()["read_only"] is True


def test_the_workspace_refuses_to_edit_a_sent_draft(preview: tuple[httpx.Client, Workspace]) -> None:
    _, workspace = preview
    before = draft_bytes(workspace)
    mark(workspace, finished=True)
    with pytest.raises(UsageError, match="has been sent"):
        workspace.edit_draft(lambda draft: draft)
    with pytest.raises(UsageError, match="has been sent"):
        workspace.test_send(("someone@example.org",))
    assert draft_bytes(workspace) == before


@pytest.mark.browser
def test_an_open_page_turns_read_only_by_itself_when_the_send_starts(browser: Any, tmp_path: Path) -> None:
    from web_support import axe_serious, wait_for

    with preview_served(sample_project(tmp_path)) as (base, workspace):
        assert isinstance(workspace, Workspace)
        context = browser.new_context(bypass_csp=True, viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        try:
            page.goto(base)
            assert page.locator("form[action='/draft/drop']").count() > 0
            issue_id = mark(workspace, finished=True)
            # The page polls /api/status every second and reloads itself once the issue is read-only.
            wait_for(
                lambda: page.locator("#sent-state").count() == 1,
                what="the open page to reload as read-only",
                attempts=200,
                pause=0.1,
            )
            assert page.locator("form[action='/draft/drop']").count() == 0
            link = page.locator("#archive-link")
            assert link.get_attribute("href") == issue_url(workspace.config.web.base_url, issue_id)
            assert axe_serious(page) == []
        finally:
            context.close()
