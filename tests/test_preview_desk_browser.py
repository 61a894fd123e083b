"""Issue 13, item 8: the comms team's desk in headless Chromium: two users sign in; the editor rewords an
entry and adds a one-off item; the approver cannot approve their own change (four eyes) but approves the
editor's; the sent test email carries the new words; the audit trail lists each step; axe on the sign-in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from playwright.sync_api import expect
from web_support import axe_serious, preview_served, sample_project

from digest.cli import cli
from digest.state.store import open_store
from digest.web.view import entry_anchor
from digest.web.workspace import Workspace

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
HIGHLIGHTS = "Our priorities in the news"
_AFTER_POST = re.compile(r"/\?notice=")


def add_user(config: Path, name: str, role: str) -> None:
    result = CliRunner().invoke(
        cli,
        ["users", "add", name, "--role", role, "--config", str(config), "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output


def fresh(context: Any, page: Any, base: str) -> Any:
    """The preview afresh in a new tab (the old one closed). Not `page.reload()`: the preview reloads
    itself when the issue changed, and a reload of ours racing with it is aborted."""
    page.close()
    new = context.new_page()
    new.goto(base)
    new.wait_for_load_state()
    return new


def submit(page: Any, button: Any) -> None:
    with page.expect_navigation(url=_AFTER_POST):
        button.click()
    page.wait_for_load_state()


def sign_in(browser: Any, base: str, name: str) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(base)
    expect(page).to_have_url(f"{base}/signin")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation(url=f"{base}/"):
        page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signed-in")).to_contain_text(f"Signed in as {name}")
    return context, page


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[tuple[str, Workspace, Path]]:
    config = sample_project(
        tmp_path,
        replace={
            "four_eyes = false": "four_eyes = true",
            '# items_folder = "feeds/items"': 'items_folder = "feeds/items"',
        },
    )
    add_user(config, "erin", "editor")
    add_user(config, "priya", "approver")
    add_user(config, "sam", "admin")
    with preview_served(config, status_code=401) as (base, workspace):
        assert isinstance(workspace, Workspace)
        yield base, workspace, tmp_path


def test_the_sign_in_page_has_no_serious_accessibility_violations(
    browser: Any, desk: tuple[str, Workspace, Path]
) -> None:
    base, _, _ = desk
    context = browser.new_context(bypass_csp=True, viewport={"width": 375, "height": 800})
    page = context.new_page()
    page.goto(f"{base}/signin")
    assert axe_serious(page) == []
    assert axe_serious(page, scheme="dark") == []
    page.get_by_label("User name").fill("erin")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("do not match")
    assert axe_serious(page) == []
    context.close()


def test_two_users_edit_approve_and_send_a_test_with_four_eyes_and_an_audit_trail(
    browser: Any, desk: tuple[str, Workspace, Path]
) -> None:
    base, workspace, root = desk
    issue = workspace.snapshot.issue
    assert issue is not None
    target = issue.sections[0].groups[0].entries[0].entry
    editor_context, editor = sign_in(browser, base, "erin")
    approver_context, approver = sign_in(browser, base, "priya")
    try:
        # The editor has no Approve button, and a forged approval POST is refused with 403.
        expect(editor.locator("#cannot-approve")).to_contain_text("Your role (editor) cannot approve")
        csrf = editor.locator('input[name="csrf_token"]').first.get_attribute("value")
        forged = editor_context.request.post(
            f"{base}/approve",
            form={"csrf_token": csrf, "html_sha256": workspace.snapshot.html_sha256, "text_sha256": ""},
            max_redirects=0,
        )
        assert forged.status == 403

        # The approver changes the intro, then cannot approve their own change.
        approver.get_by_label("Intro (Markdown)").fill("A word from the team.")
        submit(approver, approver.get_by_role("button", name="Save intro"))
        expect(approver.locator("#four-eyes")).to_contain_text("priya made the last change")
        submit(approver, approver.get_by_role("button", name="Approve this issue"))
        expect(approver.locator("#notice")).to_contain_text("cannot approve it (four eyes)")
        expect(approver.locator("#approval-state")).to_contain_text("Not approved yet")

        # The editor rewords an entry and adds a one-off item.
        editor = fresh(editor_context, editor, base)
        card = editor.locator(f"#{entry_anchor(target.id)}")
        card.locator("summary", has_text="Edit the words").click()
        card.get_by_label("Title readers see").fill("The full story, not cut short")
        submit(editor, card.get_by_role("button", name="Save the words"))
        card = editor.locator(f"#{entry_anchor(target.id)}")
        expect(card.locator(".original-title")).to_have_text(target.title)
        form = editor.locator("#add-item")
        form.get_by_label("Title").fill("Walk-in flu clinic on Saturday")
        form.get_by_label("Link").fill("https://example.org/flu")
        form.get_by_label("Summary").fill("Free flu jabs for everyone over 65.")
        form.get_by_label("Date").fill("2025-05-08")
        form.get_by_label("Priority").select_option("Live Well")
        form.get_by_label("Picture address").fill("https://example.org/flu.jpg")
        form.get_by_label("Picture description (alt text)").fill("A nurse giving a flu jab")
        submit(editor, form.get_by_role("button", name="Add the item"))
        expect(editor.locator("#notice")).to_contain_text("Added “Walk-in flu clinic on Saturday”")
        highlights = (
            editor.frame_locator("#frame-desktop").locator("h2", has_text=HIGHLIGHTS).locator("xpath=..")
        )
        expect(highlights).to_contain_text("Walk-in flu clinic on Saturday")

        # Now the last change is the editor's: the approver approves, as themselves.
        approver = fresh(approver_context, approver, base)
        expect(approver.locator("#four-eyes")).to_contain_text("erin made the last change")
        submit(approver, approver.get_by_role("button", name="Approve this issue"))
        expect(approver.locator("#approval-state")).to_contain_text("Approved by priya")

        # The editor sends a test: it carries the new title and the one-off item.
        editor = fresh(editor_context, editor, base)
        editor.get_by_label("Send a test to").fill("comms@example.org")
        submit(editor, editor.get_by_role("button", name="Send test"))
        expect(editor.locator("#notice")).to_contain_text("sent to comms@example.org")
        audit = editor.locator("#audit")
        for text in (
            "priya saved the editor's intro",
            f"erin reworded “{target.title}”: “The full story, not cut short”",
            "erin added the one-off item “Walk-in flu clinic on Saturday”",
            "priya approved issue",
            "erin sent a test to comms@example.org",
        ):
            expect(audit).to_contain_text(text)
    finally:
        editor_context.close()
        approver_context.close()
    [path] = [p for p in (root / ".digest" / "outbox").rglob("*") if p.is_file()]
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "The full story, not cut short" in html
    assert "Walk-in flu clinic on Saturday" in html
    with open_store(workspace.config) as db:
        approval = db.approvals.get_approval(issue.id)
        actions = [(e.actor, e.action) for e in reversed(db.audit.events(issue_id=issue.id))]
    assert approval is not None and approval.approved_by == "priya"
    assert actions == [
        ("priya", "edit"),
        ("erin", "edit"),
        ("erin", "edit"),
        ("priya", "approve"),
        ("erin", "test-send"),
    ]


def test_the_admins_page_has_no_serious_accessibility_violations(
    browser: Any, desk: tuple[str, Workspace, Path]
) -> None:
    base, _, _ = desk
    context = browser.new_context(bypass_csp=True, viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.goto(f"{base}/signin")
        page.get_by_label("User name").fill("sam")
        page.get_by_label("Password").fill(PASSWORD)
        with page.expect_navigation(url=f"{base}/"):
            page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#users")).to_contain_text("priya (approver)")
        expect(page.locator("#add-item")).to_be_visible()
        assert axe_serious(page) == []
        assert axe_serious(page, scheme="dark") == []
    finally:
        context.close()
