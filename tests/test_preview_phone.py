"""The preview on a phone (375 x 800 in Chromium): the frames, the text part and the report stack, the page
never scrolls sideways, every control fits the screen and works, and axe-core finds nothing serious."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect
from test_preview_browser import click_and_wait
from web_support import axe_serious, preview_served, sample_project, screenshot_dir, wait_for

from digest.web.view import entry_anchor
from digest.web.workspace import Workspace

pytestmark = pytest.mark.browser
PHONE = {"width": 375, "height": 800}
# A title with a 150-character word (a pasted URL): it must wrap, not widen the page.
LONG_WORD = "https://www.blmkhealthandcarepartnership.org/our-priorities/start-well/" + "maternity-" * 8
LONG_ITEM = f"""---
title: "Read the plan: {LONG_WORD}"
date: 2025-05-08
category: News
summary: "The delivery plan for maternity and neonatal services, {LONG_WORD}"
link: https://example.org/plan
---

The plan.
"""
LATE_ITEM = """---
title: "Late news: a new community diagnostic centre opens"
date: 2025-05-08
category: News
summary: "Arrived after the issue was approved."
link: https://example.org/late-news
---

It arrived after the approval.
"""
# Everything a person can operate on the page (the skip link is off-screen until focused).
CONTROLS = (
    "header nav a[href], main a[href], main button, main summary, main textarea, "
    "main input:not([type=hidden]), main [tabindex='0']"
)


@pytest.fixture
def phone(browser: Any, tmp_path: Path) -> Iterator[tuple[Any, Workspace, Path]]:
    config = sample_project(tmp_path)
    (tmp_path / "feeds" / "items" / "long-plan.md").write_text(LONG_ITEM, encoding="utf-8")
    with preview_served(config) as (base, workspace):
        assert isinstance(workspace, Workspace)
        context = browser.new_context(bypass_csp=True, viewport=PHONE, is_mobile=True, has_touch=True)
        page = context.new_page()
        page.goto(base)
        try:
            yield page, workspace, tmp_path
        finally:
            context.close()


def page_width(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def outside(page: Any) -> list[str]:
    """The visible controls whose box is not within the 375 px of the screen, described."""
    found: list[str] = page.evaluate(
        """(selector) => [...document.querySelectorAll(selector)]
            .filter(e => e.getClientRects().length && !e.closest('.visually-hidden, .skip-link'))
            .map(e => [e, e.getBoundingClientRect()])
            .filter(([e, r]) => r.left < 0 || r.right > window.innerWidth)
            .map(([e, r]) => `${e.tagName} "${e.textContent.trim().slice(0, 40)}" ${r.left}..${r.right}`)""",
        CONTROLS,
    )
    return found


def fits(page: Any, locator: Any) -> None:
    """Scroll `locator` into view and check it lies within the screen's width."""
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box


def test_at_375_px_the_parts_stack_and_every_control_fits_without_sideways_scrolling(
    phone: tuple[Any, Workspace, Path], tmp_path: Path
) -> None:
    page, _, _ = phone
    for frame_id in ("#frame-desktop", "#frame-mobile"):
        page.frame_locator(frame_id).locator("body").wait_for()
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    assert page_width(page) <= PHONE["width"]
    assert outside(page) == []
    assert page.locator(CONTROLS).count() > 40

    # One above the other: the 600 px frame, the 375 px frame, the text part, then the report.
    boxes = [
        page.locator(s).bounding_box()
        for s in (".frame:nth-child(1)", ".frame:nth-child(2)", ".plain-text", "#report", "#test-send")
    ]
    for upper, lower in itertools.pairwise(boxes):
        assert upper is not None and lower is not None
        assert lower["y"] >= upper["y"] + upper["height"], (upper, lower)
        assert upper["x"] + upper["width"] <= PHONE["width"]
    # The frames still show the email at its real widths; their own box scrolls sideways, the page not.
    for frame_id, width in (("#frame-desktop", 600), ("#frame-mobile", 375)):
        inner = page.frame_locator(frame_id).locator("html").evaluate("e => [e.clientWidth, e.scrollWidth]")
        assert inner == [width, width], frame_id
    scroller = page.locator(".frame-scroll").first
    scroller.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("End")
    wait_for(lambda: scroller.evaluate("e => e.scrollLeft") > 0, what="the frame's box to scroll")
    assert page.evaluate("window.scrollX") == 0

    # Each kind of control is there and fits: pin, drop, reorder, re-tag, intro, test send, approve, rebuild.
    for name in (
        "Pin to highlights",
        "Drop",
        "Move up",
        "Move down",
        "Re-tag",
        "Save tags",
        "Save intro",
        "Send test",
        "Approve this issue",
        "Fetch feeds and rebuild",
    ):
        controls = page.get_by_role("button", name=re.compile(f"^{re.escape(name)}"))
        if name == "Re-tag":
            controls = page.locator("summary", has_text="Re-tag")
        assert controls.count() >= 1, name
        fits(page, controls.last)
    for label in ("Intro (Markdown)", "Your name", "Send a test to"):
        fits(page, page.get_by_label(label))
    long_card = page.locator(".entry", has_text="Read the plan:").first
    fits(page, long_card)

    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screenshot_dir(tmp_path) / "preview-phone.png"), full_page=False)
    assert axe_serious(page) == []
    assert axe_serious(page, scheme="dark") == []
    assert page_width(page) <= PHONE["width"]


def test_on_a_phone_each_control_works(phone: tuple[Any, Workspace, Path]) -> None:
    page, workspace, root = phone
    issue = workspace.snapshot.issue
    assert issue is not None
    highlighted = {h.item.entry.id for h in issue.highlights}
    target = next(i.entry for i in issue.entries if i.entry.id not in highlighted)

    # Pin: scroll to the entry's button, tap it, and see the notice.
    pin = page.locator(f"#{entry_anchor(target.id)}").get_by_role(
        "button", name=re.compile("^Pin to highlights")
    )
    fits(page, pin)
    click_and_wait(page, pin)
    expect(page.get_by_role("status").filter(has_text="Pinned")).to_be_visible()
    assert page_width(page) <= PHONE["width"]

    # Reorder, re-tag, drop, intro, test send: each answers with its notice on the narrow page.
    move = page.get_by_role("button", name=re.compile("^Move down")).first
    fits(page, move)
    click_and_wait(page, move)
    expect(page.locator("#notice")).to_be_visible()
    summary = page.locator("summary", has_text="Re-tag").first
    fits(page, summary)
    summary.click()
    retag = summary.locator("xpath=..")
    box = retag.locator("input[type=checkbox]").first
    fits(page, box)
    box.click()
    save = retag.get_by_role("button", name="Save tags")
    fits(page, save)
    click_and_wait(page, save)
    expect(page.locator("#notice")).to_be_visible()
    drop = page.locator(".entry", has_text="Read the plan:").first.get_by_role(
        "button", name=re.compile("^Drop")
    )
    fits(page, drop)
    click_and_wait(page, drop)
    expect(page.get_by_role("button", name=re.compile("^Restore"))).to_have_count(1)
    page.get_by_label("Intro (Markdown)").fill("A word from the **comms team**.")
    intro = page.get_by_role("button", name="Save intro")
    fits(page, intro)
    click_and_wait(page, intro)
    expect(page.locator("#notice")).to_be_visible()
    page.get_by_label("Send a test to").fill("comms@example.org")
    send = page.get_by_role("button", name="Send test")
    fits(page, send)
    click_and_wait(page, send)
    expect(page.locator("#notice")).to_contain_text("comms@example.org")

    # Approve, then a late entry: the rebuild control appears, fits, and voids the approval.
    page.get_by_label("Your name").fill("Priya Shah")
    approve = page.get_by_role("button", name="Approve this issue")
    fits(page, approve)
    click_and_wait(page, approve)
    expect(page.locator("#approval-state")).to_contain_text("Approved by Priya Shah")
    (root / "feeds" / "items" / "late-news.md").write_text(LATE_ITEM, encoding="utf-8")
    wait_for(lambda: workspace.snapshot.new_since_approval, what="the watcher to see the late entry")
    for _ in range(3):  # the preview may be reloading itself (the issue changed): then ours is aborted
        try:
            page.reload()
            break
        except PlaywrightError:
            page.wait_for_load_state()
    rebuild = page.get_by_role("button", name=re.compile("^Rebuild with new entries"))
    fits(page, rebuild)
    click_and_wait(page, rebuild)
    expect(page.locator("#approval-state")).to_contain_text("Approval voided")
    assert page_width(page) <= PHONE["width"]
    assert outside(page) == []
