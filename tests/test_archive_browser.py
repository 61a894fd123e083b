"""The web archive in headless Chromium: the index and an issue page, with axe-core checks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_archive import make_config
from web_support import axe_serious, record_sent, screenshot_dir, served, write_built_issue

from digest.pipeline.web import publish_issue
from digest.state.store import open_store
from digest.web.public import create_public_app

pytestmark = pytest.mark.browser


def test_the_archive_index_is_accessible_and_links_every_issue(browser: object, tmp_path: Path) -> None:
    config = make_config(tmp_path / "site")
    db = open_store(config)
    for n, (issue_id, day) in enumerate((("2025-W18", 2), ("2025-W19", 9)), start=1):
        folder = write_built_issue(
            tmp_path / "out",
            issue_id,
            subject=f"BLMK weekly news: {day} May 2025",
            edition=n,
            window=(
                f"2025-04-{day + 23:02d}T16:00:00+00:00" if day == 2 else "2025-05-02T16:00:00+00:00",
                f"2025-05-{day:02d}T16:00:00+00:00",
            ),
        )
        record_sent(db, folder, issue_id, sent_at=datetime(2025, 5, day, 7, tzinfo=UTC), edition=n)
        publish_issue(config, db, issue_id)
    db.close()
    with served(create_public_app(config, clock=lambda: datetime.now(UTC))) as base:
        context = browser.new_context(bypass_csp=True, viewport={"width": 900, "height": 700})  # type: ignore[attr-defined]
        page = context.new_page()
        page.goto(f"{base}/")
        assert page.get_by_role("heading", level=1).inner_text() == "All issues"
        links = page.get_by_role("link", name="BLMK weekly news")
        assert links.count() == 2
        assert links.first.inner_text() == "BLMK weekly news: 9 May 2025"
        assert axe_serious(page) == []
        assert axe_serious(page, scheme="dark") == []
        links.first.click()
        page.wait_for_load_state()
        assert page.url == f"{base}/issues/2025-W19/"
        assert "Web version of issue 2025-W19" in page.content()
        page.goto(f"{base}/no-such-page")
        assert page.get_by_role("heading", level=1).inner_text() == "Not Found"
        assert axe_serious(page) == []
        context.close()


def test_the_shipped_sample_sent_to_the_outbox_is_published_and_accessible(
    browser: object, tmp_path: Path
) -> None:
    from web_support import AS_OF, PREVIEW_NOW, sample_project

    from digest.config import load_config
    from digest.pipeline.build import build_issue
    from digest.pipeline.send import send_issue

    config = load_config(sample_project(tmp_path))
    db = open_store(config)
    built = build_issue(config, db, now=PREVIEW_NOW, as_of=AS_OF).built
    assert built is not None
    db.subscribers.upsert_subscriber("ann@example.org", name="Ann", at=PREVIEW_NOW)
    send_issue(config, db, now=PREVIEW_NOW)  # the outbox transport; publishing is part of the send
    db.close()
    with served(create_public_app(config, clock=lambda: PREVIEW_NOW)) as base:
        context = browser.new_context(bypass_csp=True, viewport={"width": 900, "height": 700})  # type: ignore[attr-defined]
        page = context.new_page()
        page.goto(f"{base}/")
        assert page.get_by_role("link", name=built.issue.subject).count() == 1
        page.screenshot(path=str(screenshot_dir(tmp_path) / "archive.png"), full_page=True)
        page.get_by_role("link", name=built.issue.subject).click()
        page.wait_for_load_state()
        assert page.url == f"{base}/issues/{built.issue.id}/"
        assert axe_serious(page) == []
        assert axe_serious(page, scheme="dark") == []
        context.close()
