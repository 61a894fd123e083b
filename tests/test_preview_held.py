"""An approved issue is not rebuilt behind the comms team's back: new entries are shown, not merged."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
from web_support import AS_OF, PREVIEW_NOW, csrf_of, preview_served, sample_project, wait_for

from digest.pipeline.web import approval_status
from digest.web.workspace import Workspace

LATE_ITEM = """---
title: "Late news: a new community diagnostic centre opens"
date: 2025-05-08
category: News
summary: "Arrived after the issue was approved."
link: https://example.org/late-news
---

It arrived after the approval.
"""


def post(client: httpx.Client, path: str, data: dict[str, str]) -> httpx.Response:
    return client.post(path, data={"csrf_token": csrf_of(client.get("/").text), **data})


def approve(client: httpx.Client, workspace: Workspace) -> None:
    snapshot = workspace.snapshot
    response = post(
        client,
        "/approve",
        {"name": "Priya Shah", "html_sha256": snapshot.html_sha256, "text_sha256": snapshot.text_sha256},
    )
    assert response.status_code == 303


def approved(workspace: Workspace) -> bool:
    issue = workspace.snapshot.issue
    assert issue is not None
    db = workspace.open_store()
    try:
        return approval_status(db, issue.id).valid
    finally:
        db.close()


def test_new_entries_after_approval_are_shown_and_merged_only_on_request(tmp_path: Path) -> None:
    config = sample_project(tmp_path)
    with preview_served(config) as (base, workspace), httpx.Client(base_url=base) as client:
        assert isinstance(workspace, Workspace)
        approve(client, workspace)
        folder = workspace.snapshot.folder
        assert folder is not None
        before = hashlib.sha256((folder / "email.html").read_bytes()).hexdigest()

        (tmp_path / "feeds" / "items" / "late-news.md").write_text(LATE_ITEM, encoding="utf-8")
        wait_for(lambda: workspace.snapshot.new_since_approval, what="the watcher to see the new entry")
        assert workspace.snapshot.held
        assert approved(workspace)
        assert hashlib.sha256((folder / "email.html").read_bytes()).hexdigest() == before
        page = client.get("/").text
        assert "Approved</strong> by Priya Shah" in page
        assert "1 new entry since approval" in page
        assert "Late news: a new community diagnostic centre opens" in page
        assert "Rebuild with new entries (voids the approval)" in page

        # "Check for new entries" keeps the approved issue too.
        response = post(client, "/refresh", {})
        assert "1 new entry since approval" in client.get(response.headers["location"]).text
        assert approved(workspace)

        # Only the explicit control rebuilds, and says the approval is void.
        response = post(client, "/rebuild", {})
        page = client.get(response.headers["location"]).text
        assert "approve it again" in page
        assert "Approval voided" in page
        assert not workspace.snapshot.held
        assert not approved(workspace)
        assert "Late news" in (folder / "email.html").read_text(encoding="utf-8")


def test_opening_the_preview_again_keeps_an_approved_issue(tmp_path: Path) -> None:
    config = sample_project(tmp_path)
    with preview_served(config) as (base, workspace), httpx.Client(base_url=base) as client:
        assert isinstance(workspace, Workspace)
        approve(client, workspace)
    (tmp_path / "feeds" / "items" / "late-news.md").write_text(LATE_ITEM, encoding="utf-8")

    reopened = Workspace(config, clock=lambda: PREVIEW_NOW, as_of=AS_OF, check_links=False)
    snapshot = reopened.rebuild(fetch=True)
    assert snapshot.held
    assert approved(reopened)
    assert snapshot.new_since_approval == ("Late news: a new community diagnostic centre opens",)
    assert snapshot.issue is not None
    assert "Late news" not in {i.entry.title[:9] for i in snapshot.issue.entries}

    # A draft edit is an explicit change: it rebuilds (with the new entry) and voids the approval.
    edited = reopened.edit_draft(lambda draft: draft)
    assert not edited.held
    assert not approved(reopened)
