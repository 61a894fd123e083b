"""Unsubscribe in headless Chromium: through the confirmation page, and by an RFC 8058 one-click POST."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_archive import make_config
from web_support import axe_serious, screenshot_dir, served

from digest.deliver.tokens import unsubscribe_secret, unsubscribe_token
from digest.state.store import open_store
from digest.web.public import create_public_app

NOW = datetime(2025, 5, 9, 9, 0, tzinfo=UTC)
pytestmark = pytest.mark.browser


def status(db_path: Path, email: str) -> str:
    db = open_store(db_path)
    try:
        subscriber = db.subscribers.get_subscriber(email)
        assert subscriber is not None
        return subscriber.status
    finally:
        db.close()


def test_unsubscribe_through_the_page(
    browser: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from web_support import sample_project

    from digest.config import load_config

    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    config = load_config(sample_project(tmp_path))  # the shipped sample, as the README screenshots show it
    db = open_store(config)
    db.subscribers.upsert_subscriber("ann@example.org", name="Ann", at=NOW)
    subscriber = db.subscribers.get_subscriber("ann@example.org")
    assert subscriber is not None
    token = unsubscribe_token(unsubscribe_secret(config, db), subscriber.token_id)
    db.close()
    shots = screenshot_dir(tmp_path)
    with served(create_public_app(config, clock=lambda: NOW)) as base:
        context = browser.new_context(bypass_csp=True, viewport={"width": 800, "height": 700})  # type: ignore[attr-defined]
        page = context.new_page()
        page.goto(f"{base}/unsubscribe?token={token}")
        assert page.get_by_role("heading", level=1).inner_text().startswith("Unsubscribe from")
        assert status(config.state_path, "ann@example.org") == "active"
        page.screenshot(path=str(shots / "unsubscribe-confirm.png"), full_page=True)
        assert axe_serious(page) == []
        assert axe_serious(page, scheme="dark") == []

        page.get_by_role("button", name="Unsubscribe ann@example.org").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", level=1).inner_text() == "You have been unsubscribed"
        assert status(config.state_path, "ann@example.org") == "unsubscribed"
        page.screenshot(path=str(shots / "unsubscribe-done.png"), full_page=True)
        assert axe_serious(page) == []

        page.goto(f"{base}/unsubscribe?token={token[:-3]}xyz")
        assert page.get_by_role("heading", level=1).inner_text() == "This unsubscribe link is not valid"
        assert "Traceback" not in page.content()
        assert axe_serious(page) == []
        context.close()


def test_one_click_post_from_the_browser(
    browser: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    config = make_config(tmp_path / "site")
    db = open_store(config)
    db.subscribers.upsert_subscriber("bob@example.org", name=None, at=NOW)
    subscriber = db.subscribers.get_subscriber("bob@example.org")
    assert subscriber is not None
    token = unsubscribe_token(unsubscribe_secret(config, db), subscriber.token_id)
    db.close()
    with served(create_public_app(config, clock=lambda: NOW)) as base:
        # The public pages allow no script (CSP); bypass it to run the POST from a page of the same site.
        context = browser.new_context(bypass_csp=True)  # type: ignore[attr-defined]
        page = context.new_page()
        page.goto(f"{base}/")
        # What a mail client's one-click does: POST the List-Unsubscribe URL with this exact body.
        answer = page.evaluate(
            """async (url) => {
                const r = await fetch(url, {method: 'POST', redirect: 'manual', credentials: 'omit',
                    headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                    body: 'List-Unsubscribe=One-Click'});
                return {status: r.status, type: r.type, redirected: r.redirected};
            }""",
            f"{base}/unsubscribe?token={token}",
        )
        context.close()
    assert answer == {"status": 200, "type": "basic", "redirected": False}
    assert status(config.state_path, "bob@example.org") == "unsubscribed"
