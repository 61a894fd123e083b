"""The preview in headless Chromium: pin, drop, approve (voided by an edit), test send, axe-core."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from web_support import axe_serious, preview_served, sample_project, screenshot_dir, wait_for

from digest.web.view import entry_anchor
from digest.web.workspace import Workspace

pytestmark = pytest.mark.browser
HIGHLIGHTS = "Our priorities in the news"


def highlights_text(page: Any, frame_id: str = "#frame-desktop") -> str:
    """The text of the highlights block of the email shown in one of the preview's frames."""
    frame = page.frame_locator(frame_id)
    heading = frame.locator("h2", has_text=HIGHLIGHTS)
    return str(heading.locator("xpath=..").inner_text())


def email_text(page: Any) -> str:
    return str(page.frame_locator("#frame-desktop").locator("body").inner_text())


@pytest.fixture
def preview_page(browser: Any, tmp_path: Path) -> Iterator[tuple[Any, Workspace]]:
    config = sample_project(tmp_path)
    with preview_served(config) as (base, workspace):
        assert isinstance(workspace, Workspace)
        context = browser.new_context(bypass_csp=True, viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(base)
        try:
            yield page, workspace
        finally:
            context.close()


def click_and_wait(page: Any, button: Any) -> None:
    """Submit a form and wait for the page its POST redirects to (`/?notice=...`), fully loaded.

    Waiting for any navigation is not enough: a reload started by the page's own script (it polls the
    preview's version) is a navigation too, and would end the wait before the form's answer arrived.
    """
    with page.expect_navigation(url=_AFTER_POST):
        button.click()
    page.wait_for_load_state()


_AFTER_POST = re.compile(r"/\?notice=")


def highlights_of(page: Any, frame_id: str = "#frame-desktop") -> Any:
    """A locator of the highlights block in one of the preview's frames (for auto-waiting assertions)."""
    heading = page.frame_locator(frame_id).locator("h2", has_text=HIGHLIGHTS)
    return heading.locator("xpath=..")


def test_pin_an_entry_and_see_it_in_the_highlights(preview_page: tuple[Any, Workspace]) -> None:
    page, workspace = preview_page
    issue = workspace.snapshot.issue
    assert issue is not None
    highlighted = {h.item.entry.id for h in issue.highlights}
    target = next(i.entry for i in issue.entries if i.entry.id not in highlighted)
    assert target.title[:40] not in highlights_text(page)
    card = page.locator(f"#{entry_anchor(target.id)}")
    click_and_wait(page, card.get_by_role("button", name=re.compile("^Pin to highlights")))
    expect(page.get_by_role("status").filter(has_text="Pinned")).to_be_visible()
    expect(highlights_of(page)).to_contain_text(target.title[:40])
    expect(highlights_of(page, "#frame-mobile")).to_contain_text(target.title[:40])


def test_a_poll_during_a_post_does_not_reload_the_page_away_from_its_answer(
    preview_page: tuple[Any, Workspace],
) -> None:
    """The race behind a flaky pin test: the edit bumps the preview's version before the browser has the
    POST's redirect; a poll landing in between must not reload the page (that cancels the form's navigation
    and loses its notice). The test holds the redirect until such a poll has been answered."""
    page, workspace = preview_page
    issue = workspace.snapshot.issue
    assert issue is not None
    before = workspace.snapshot.version
    held: list[Any] = []

    def hold(route: Any) -> None:
        held.append((route, route.fetch(max_redirects=0)))  # the server applies the edit now

    page.route("**/draft/pin", hold)
    target = next(i.entry for i in issue.entries if not i.entry.pinned)
    card = page.locator(f"#{entry_anchor(target.id)}")
    # A poll sent once the edit is applied sees the new version; wait until its answer has arrived.
    with page.expect_request(lambda r: "/api/status" in r.url and bool(held), timeout=30_000) as poll:
        card.get_by_role("button", name=re.compile("^Pin to highlights")).click(no_wait_after=True)
    assert poll.value.response() is not None
    assert len(held) == 1 and workspace.snapshot.version > before
    with page.expect_navigation(url=_AFTER_POST):
        route, response = held[0]
        route.fulfill(response=response)
    expect(page.get_by_role("status").filter(has_text="Pinned")).to_be_visible()
    expect(highlights_of(page)).to_contain_text(target.title[:40])


def test_drop_an_entry_and_see_it_gone(preview_page: tuple[Any, Workspace]) -> None:
    page, workspace = preview_page
    issue = workspace.snapshot.issue
    assert issue is not None
    target = issue.entries[-1].entry
    assert target.title[:40] in email_text(page)
    card = page.locator(f"#{entry_anchor(target.id)}")
    click_and_wait(page, card.get_by_role("button", name=re.compile("^Drop")))
    assert target.title[:40] not in email_text(page)
    assert page.get_by_role("button", name=re.compile("^Restore")).count() == 1


def test_approve_then_an_edit_voids_the_approval(preview_page: tuple[Any, Workspace], tmp_path: Path) -> None:
    page, _ = preview_page
    assert "Not approved yet" in page.locator("#approval-state").inner_text()
    page.get_by_label("Your name").fill("Priya Shah")
    click_and_wait(page, page.get_by_role("button", name="Approve this issue"))
    assert page.locator("#approval-state").inner_text().startswith("Approved by Priya Shah")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screenshot_dir(tmp_path) / "preview.png"), full_page=False)
    page.get_by_label("Intro (Markdown)").fill("A last-minute **change** to the intro.")
    click_and_wait(page, page.get_by_role("button", name="Save intro"))
    assert page.locator("#approval-state").inner_text().startswith("Approval voided")
    assert "last-minute change" in email_text(page)


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        self.messages.append(bytes(envelope.content))
        return "250 OK"


def test_a_test_send_arrives_at_a_local_smtp_server(browser: Any, tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        config = sample_project(
            tmp_path,
            replace={
                'transport = "outbox"': 'transport = "smtp"',
                'host = "localhost"': 'host = "127.0.0.1"',
                "port = 587": f"port = {port}",
                'security = "starttls"': 'security = "none"',
            },
        )
        with preview_served(config) as (base, workspace):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.goto(f"{base}/#test-send")
            page.get_by_label("Send a test to").fill("comms@example.org, editor@example.org")
            click_and_wait(page, page.get_by_role("button", name="Send test"))
            notice = page.locator("#notice").inner_text()
            context.close()
        wait_for(lambda: len(inbox.messages) == 2, what="two test messages")
    finally:
        controller.stop()
    assert "sent to comms@example.org, editor@example.org through smtp" in notice
    message = message_from_bytes(inbox.messages[0], policy=policy.default)
    assert str(message["Subject"]).startswith("[TEST] ")
    assert workspace.snapshot.issue is not None
    assert workspace.snapshot.issue.subject in str(message["Subject"])
    assert sorted(str(message_from_bytes(m, policy=policy.default)["To"]) for m in inbox.messages) == [
        "comms@example.org",
        "editor@example.org",
    ]


def test_the_preview_page_has_no_serious_accessibility_violations(
    preview_page: tuple[Any, Workspace], tmp_path: Path
) -> None:
    page, _ = preview_page
    page.locator("#report").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir(tmp_path) / "preview-report.png"), full_page=False)
    page.goto(page.url.split("#")[0] + "#top")
    assert axe_serious(page) == []
    assert axe_serious(page, scheme="dark") == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400


def test_the_page_reloads_itself_and_runs_no_feed_script(browser: Any, tmp_path: Path) -> None:
    config = sample_project(tmp_path)
    with preview_served(config) as (base, _):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(base)
        version = page.locator("#preview-state").get_attribute("data-version")
        (tmp_path / "feeds" / "items" / "hostile.md").write_text(
            '---\ntitle: <img src=x onerror="window.top.__owned=1;alert(1)"> Midwives '
            "<script>alert(2)</script>\n"
            "date: 2025-05-08\ncategory: Campaigns and events\n"
            'summary: <img src=y onerror="alert(3)"> A hostile item.\n---\nBody.\n',
            encoding="utf-8",
        )
        # No navigation by the test: the page's own script notices the rebuild and reloads.
        page.wait_for_function(
            "v => document.getElementById('preview-state').dataset.version !== v", arg=version, timeout=15000
        )
        page.wait_for_load_state()
        assert "<script>alert(2)</script>" in page.locator("#entries").inner_text()
        assert page.evaluate("window.__owned") is None
        assert dialogs == []
        assert "A hostile item." in email_text(page)
        context.close()


def test_the_frames_show_the_email_at_exactly_600_and_375_pixels(preview_page: tuple[Any, Workspace]) -> None:
    page, _ = preview_page
    for frame_id, width in (("#frame-desktop", 600), ("#frame-mobile", 375)):
        frame = page.frame_locator(frame_id)
        frame.locator("body").wait_for()
        shown = frame.locator("html").evaluate("e => [e.clientWidth, e.scrollWidth]")
        assert shown == [width, width], frame_id
