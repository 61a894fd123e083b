"""Issue 14 in headless Chromium: a reader signs up on the form, receives the confirmation at a local
aiosmtpd, follows the link and confirms, changes their name on the preference page, unsubscribes with one
click, and resubscribes through the unsubscribe page, with axe-core finding nothing serious or critical on
any page. The clock is injected (the form's minimum time is passed by moving it), nothing sleeps."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from send_support import Recorder, smtp_server
from web_support import axe_serious, sample_project, served, wait_for

from digest.config import load_config
from digest.deliver.reader_tokens import preferences_token
from digest.deliver.tokens import unsubscribe_secret, unsubscribe_token
from digest.state.store import open_store
from digest.web.public import create_public_app

pytestmark = [pytest.mark.browser, pytest.mark.smtp]
START = datetime(2025, 5, 9, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def confirm_path(recorder: Recorder, index: int) -> str:
    message = email.message_from_bytes(recorder.messages[index].data, policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(r"(https?://\S+/confirm\?token=\S+)", text)
    assert found, text
    parts = urlsplit(found.group(1))
    return f"/confirm?{parts.query}"


def no_serious(page: object) -> None:
    assert axe_serious(page) == []
    assert axe_serious(page, scheme="dark") == []


def test_sign_up_confirm_preferences_unsubscribe_and_resubscribe(
    browser: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    recorder = Recorder()
    clock = Clock()
    with smtp_server(recorder) as smtp:
        config = load_config(
            sample_project(
                tmp_path,
                replace={
                    'transport = "outbox"': 'transport = "smtp"',
                    'host = "localhost"': 'host = "127.0.0.1"',
                    "port = 587": f"port = {smtp.port}",
                    'security = "starttls"': 'security = "none"',
                },
                append='\n[subscribe]\nenabled = true\nprivacy_url = "https://example.org/privacy"\n',
            )
        )
        with served(create_public_app(config, clock=clock)) as base:
            context = browser.new_context(bypass_csp=True, viewport={"width": 800, "height": 800})  # type: ignore[attr-defined]
            page = context.new_page()

            page.goto(f"{base}/subscribe")
            assert page.get_by_role("heading", level=1).inner_text().startswith("Subscribe to")
            no_serious(page)
            page.get_by_label("Email address").fill("reader@example.org")
            page.get_by_label("Your name (optional)").fill("Rea Der")
            # Topics (issue 15 item 4): one labelled checkbox per priority, reached with the keyboard.
            topics = page.get_by_role("group", name="Topics (optional)")
            names = [p.name for p in config.priorities]
            assert topics.get_by_role("checkbox").count() == len(names) == 5
            for name in names:
                box = topics.get_by_role("checkbox", name=name, exact=True)
                assert box.count() == 1 and not box.is_checked()
            described = topics.get_by_role("checkbox", name="Start Well").get_attribute("aria-describedby")
            assert described and config.priorities[0].summary in page.locator(f"#{described}").inner_text()
            page.get_by_label("Your name (optional)").focus()
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.value") == names[0]
            page.keyboard.press("Space")
            page.keyboard.press("Tab")
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.value") == names[2]
            page.keyboard.press("Space")
            assert [topics.get_by_role("checkbox", name=n, exact=True).is_checked() for n in names] == [
                True,
                False,
                True,
                False,
                False,
            ]
            no_serious(page)
            clock.now += timedelta(seconds=8)  # a person takes a few seconds
            page.get_by_role("button", name="Subscribe").click()
            page.wait_for_load_state()
            assert page.get_by_role("heading", level=1).inner_text() == "Check your inbox"
            no_serious(page)
            wait_for(lambda: len(recorder.messages) == 1, what="the confirmation email")
            assert recorder.messages[0].rcpt == ("reader@example.org",)

            page.goto(base + confirm_path(recorder, 0))
            assert page.get_by_role("heading", level=1).inner_text() == "Confirm your subscription"
            no_serious(page)
            with open_store(config) as db:
                assert db.subscribers.get_subscriber("reader@example.org") is None  # GET changed nothing
            page.get_by_role("button", name="Confirm my subscription").click()
            page.wait_for_load_state()
            assert page.get_by_role("heading", level=1).inner_text() == "You are subscribed"
            no_serious(page)
            with open_store(config) as db:
                found = db.subscribers.get_subscriber("reader@example.org")
                assert found is not None and found.status == "active" and found.name == "Rea Der"
                assert found.consent is not None and found.consent.method == "form"
                assert db.consent.wording(found.consent.wording_sha256 or "") == config.subscribe.consent_text
                assert db.topics.topics_of("reader@example.org") == (names[2], names[0])
                secret = unsubscribe_secret(config, db)
                prefs = preferences_token(secret, found.token_id)
                unsubscribe = unsubscribe_token(secret, found.token_id)

            page.goto(f"{base}/preferences?token={prefs}")
            assert "reader@example.org" in page.content()
            no_serious(page)
            chosen = page.get_by_role("group", name="Topics")
            assert [chosen.get_by_role("checkbox", name=n, exact=True).is_checked() for n in names] == [
                True,
                False,
                True,
                False,
                False,
            ]
            chosen.get_by_role("checkbox", name=names[2], exact=True).uncheck()
            chosen.get_by_role("checkbox", name=names[1], exact=True).check()
            page.get_by_role("button", name="Save topics").click()
            page.wait_for_load_state()
            assert f"Your topics have been saved: {names[0]}, {names[1]}." in page.content()
            no_serious(page)
            with open_store(config) as db:
                assert db.topics.topics_of("reader@example.org") == (names[1], names[0])
            page.get_by_role("button", name="Get all topics").click()
            page.wait_for_load_state()
            assert "you will get all topics" in page.content()
            assert page.get_by_role("group", name="Topics").get_by_role("checkbox", checked=True).count() == 0
            with open_store(config) as db:
                assert db.topics.topics_of("reader@example.org") == ()
            page.get_by_label("Name used to greet you").fill("Reader Two")
            page.get_by_role("button", name="Save name").click()
            page.wait_for_load_state()
            assert "Your name has been saved" in page.content()
            no_serious(page)
            with open_store(config) as db:
                found = db.subscribers.get_subscriber("reader@example.org")
                assert found is not None and found.name == "Reader Two"

            # One click, as a mail client does from the List-Unsubscribe header (RFC 8058).
            answer = context.request.post(
                f"{base}/unsubscribe?token={unsubscribe}", form={"List-Unsubscribe": "One-Click"}
            )
            assert answer.status == 200
            with open_store(config) as db:
                found = db.subscribers.get_subscriber("reader@example.org")
                assert found is not None and found.status == "unsubscribed"

            page.goto(f"{base}/unsubscribe?token={unsubscribe}")
            assert page.get_by_role("heading", level=1).inner_text() == "You are already unsubscribed"
            no_serious(page)
            page.get_by_role("button", name="Subscribe again").click()
            page.wait_for_load_state()
            assert page.get_by_role("heading", level=1).inner_text() == "Check your inbox"
            wait_for(lambda: len(recorder.messages) == 2, what="the second confirmation email")
            page.goto(base + confirm_path(recorder, 1))
            page.get_by_role("button", name="Confirm my subscription").click()
            page.wait_for_load_state()
            assert page.get_by_role("heading", level=1).inner_text() == "You are subscribed"
            with open_store(config) as db:
                found = db.subscribers.get_subscriber("reader@example.org")
                assert found is not None and found.status == "active"
                assert found.consent is not None and found.consent.method == "resubscribe"
            context.close()
