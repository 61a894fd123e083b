"""The preview's topic variant picker and the pre-send report per variant (issue 15 item 5)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from web_support import axe_serious, csrf_of, preview_served, sample_project

from digest.compose.variants import variant_folder_name
from digest.config import load_config
from digest.state.store import open_store

AT = datetime(2025, 1, 1, tzinfo=UTC)


def test_the_picker_lists_every_variant_with_its_readers_and_shows_the_one_chosen(tmp_path: Path) -> None:
    config_path = sample_project(tmp_path)
    config = load_config(config_path)
    names = [p.name for p in config.priorities]
    with open_store(config) as db:
        for i in range(5):
            db.subscribers.upsert_subscriber(f"all{i}@example.org", name=None, at=AT)
        for i in range(3):
            db.subscribers.upsert_subscriber(f"start{i}@example.org", name=None, at=AT)
            db.topics.set_topics(f"start{i}@example.org", [names[0]])
        db.subscribers.upsert_subscriber("pair@example.org", name=None, at=AT)
        db.topics.set_topics("pair@example.org", [names[1], names[0]])
    start = variant_folder_name(names[0])
    with preview_served(config_path) as (base, workspace), httpx.Client(base_url=base) as client:
        page = client.get("/").text
        assert "Topic variants" in page
        assert "Whole issue (no topics chosen): 5 readers" in page
        assert f"{names[0]}: 3 readers" in page
        assert f"{names[0]}; {names[1]}: 1 reader," in page
        assert 'src="/email.html?v=' in page
        chosen = client.get("/", params={"variant": start}).text
        assert f'src="/variant/{start}/email.html?v=' in chosen
        assert f"Showing the topic variant <strong>{names[0]}</strong>" in chosen
        variant = client.get(f"/variant/{start}/email.html")
        assert variant.status_code == 200
        assert "Sam Sample" in variant.text and "%%DIGEST" not in variant.text
        assert "sandbox" in variant.headers["content-security-policy"]
        whole = client.get("/email.html").text
        assert len(variant.text) < len(whole)  # fewer entries
        assert client.get("/variant/v-0123456789ab/email.html").status_code == 404
        assert client.get("/variant/..%2Femail.html/email.html").status_code == 404
        snapshot = workspace.snapshot
        assert snapshot.folder is not None and (snapshot.folder / "variants" / start / "email.html").is_file()

        # One approval records every variant; the page's hash of them must still be current.
        form = {
            "csrf_token": csrf_of(page),
            "name": "Priya",
            "html_sha256": snapshot.html_sha256,
            "text_sha256": snapshot.text_sha256,
            "variants_sha256": "stale",
        }
        stale = client.post("/approve", data=form, follow_redirects=True).text
        assert "changed after you loaded it; nothing was approved" in stale
        form["variants_sha256"] = re.findall(r'name="variants_sha256" value="([0-9a-f]{64})"', page)[0]
        client.post("/approve", data=form, follow_redirects=True)
        with open_store(config) as db:
            assert snapshot.issue is not None
            assert db.approvals.is_approved(snapshot.issue.id, snapshot.html_sha256, snapshot.text_sha256)


@pytest.mark.browser
def test_the_picker_switches_the_frames_and_the_page_has_no_serious_accessibility_violations(
    browser: Any, tmp_path: Path
) -> None:
    config_path = sample_project(tmp_path)
    config = load_config(config_path)
    names = [p.name for p in config.priorities]
    with open_store(config) as db:
        db.subscribers.upsert_subscriber("all@example.org", name=None, at=AT)
        db.subscribers.upsert_subscriber("start@example.org", name=None, at=AT)
        db.topics.set_topics("start@example.org", [names[0]])
    with preview_served(config_path) as (base, _workspace):
        context = browser.new_context(bypass_csp=True, viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        try:
            page.goto(base)
            option = page.locator(f"#variant option[value='{variant_folder_name(names[0])}']")
            assert option.inner_text().startswith(f"{names[0]}: 1 reader, ")
            page.select_option("#variant", value=variant_folder_name(names[0]))
            with page.expect_navigation():
                page.get_by_role("button", name="Show").click()
            src = page.locator("#frame-desktop").get_attribute("src")
            assert src is not None and src.startswith(f"/variant/{variant_folder_name(names[0])}/email.html")
            frame_text = page.frame_locator("#frame-desktop").locator("body").inner_text()
            assert "Sam Sample" in frame_text
            assert axe_serious(page) == []
            assert axe_serious(page, scheme="dark") == []
        finally:
            context.close()
