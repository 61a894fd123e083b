"""Issue 15 item 4, the readers' half: topics chosen on the sign-up form (kept with the pending sign-up,
applied only when the address is confirmed) and changed on the preference page, through the same Store
operation as `digest subscribers topics`. The next issue's variant for such a reader holds only their
priorities' entries. Unknown names are refused with a 400 naming the field. The clock is injected."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from run_site import delivered, make_site
from send_support import parts
from test_signup import Clock, confirm, form_fields, link_in, mails
from test_topics import AS_OF, ITEMS, PRIORITIES
from web_support import served

from digest.cli import main
from digest.config import Config
from digest.deliver.reader_tokens import preferences_token
from digest.deliver.tokens import unsubscribe_secret, unsubscribe_token
from digest.pipeline.run import run_once
from digest.pipeline.subscribers import export_subscriber, forget_subscriber
from digest.state.store import Store, open_store
from digest.web.public import create_public_app

READERS = """
[web]
base_url = "https://news.example.org/digest"

[subscribe]
enabled = true
consent_text = "Send me the weekly news by email."
privacy_url = "https://example.org/privacy"
"""
BEFORE = datetime(2025, 5, 8, 9, 0, tzinfo=UTC)  # the day before the issue's slot (AS_OF)


@pytest.fixture
def site(tmp_path: Path, backend: tuple[str, Any], monkeypatch: pytest.MonkeyPatch) -> Config:
    """The run site of the topics tests with [[priorities]] and the reader pages, on each backend."""
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    kind, where = backend
    return make_site(
        tmp_path / "site",
        ITEMS,
        extra=PRIORITIES + READERS,
        state_url=str(where) if kind == "postgresql" else None,
    )


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = BEFORE
    return clock


@pytest.fixture
def client(site: Config, clock: Clock) -> Any:
    with served(create_public_app(site, clock=clock)) as base, httpx.Client(base_url=base) as c:
        yield c


def post_form(client: httpx.Client, clock: Clock, address: str, topics: list[str]) -> httpx.Response:
    page = client.get("/subscribe")
    assert page.status_code == 200
    clock.advance(5)  # a person takes a few seconds to fill the form
    return client.post(
        "/subscribe", data={**form_fields(page.text), "email": address, "name": "Dee", "topics": topics}
    )


def topics_of(config: Config, address: str) -> tuple[str, ...]:
    with open_store(config) as db:
        return db.topics.topics_of(address)


def ticked(page: str) -> list[str]:
    return re.findall(r'name="topics" value="([^"]+)" checked', page)


def test_topics_chosen_on_the_form_apply_on_confirmation_and_shape_the_next_issue(
    site: Config, client: httpx.Client, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    page = client.get("/subscribe")
    assert "<legend>Topics (optional)</legend>" in page.text
    assert [
        re.sub(r"\s+", " ", s) for s in re.findall(r'<label for="topic-\d">([^<]+)</label>', page.text)
    ] == [
        "Start Well",
        "Age Well",
        "Work Well",
    ]
    answer = post_form(client, clock, "dee@example.org", ["start well"])
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    # Pending: not on the list, and no topics held for the address until it is confirmed.
    assert topics_of(site, "dee@example.org") == ()
    with open_store(site) as db:
        pending = db.signups.get("dee@example.org")
        assert pending is not None and pending.topics == ("Start Well",)
        assert db.subscribers.get_subscriber("dee@example.org") is None
    show = ["subscribers", "show", "dee@example.org", "--config", str(site.path)]
    capsys.readouterr()
    assert main(show) == 0 and "topics:  Start Well (set when confirmed)" in capsys.readouterr().out
    [message] = mails(site)
    assert "You are subscribed" in confirm(client, link_in(message)).text
    assert topics_of(site, "dee@example.org") == ("Start Well",)
    assert main(show) == 0 and "topics:  Start Well\n" in capsys.readouterr().out

    sent = run_once(site, now=AS_OF, as_of=AS_OF)
    assert (sent.outcome, sent.issue_id) == ("sent", "2025-W19")
    issues = [m for m in delivered(site) if "Confirm" not in str(m["Subject"])]
    by_reader = {m["To"].addresses[0].addr_spec: parts(m) for m in issues}
    text, html = by_reader["dee@example.org"]
    assert "Midwives celebrated" in text and "Midwives celebrated" in html
    assert "care home opens" not in text.lower() and "Roadworks" not in text and "Roadworks" not in html
    whole, _ = by_reader["ann@example.org"]  # no choice: the whole issue
    assert "Roadworks" in whole and "care home opens" in whole.lower()
    with open_store(site) as db:
        assert db.ledger.sent_variants("2025-W19") == {"": 3, "Start Well": 1}


def test_no_box_ticked_means_all_topics(site: Config, client: httpx.Client, clock: Clock) -> None:
    assert post_form(client, clock, "eve@example.org", []).status_code == 200
    with open_store(site) as db:
        pending = db.signups.get("eve@example.org")
        assert pending is not None and pending.topics == ()
    [message] = mails(site)
    confirm(client, link_in(message))
    assert topics_of(site, "eve@example.org") == ()


def test_an_unconfirmed_request_never_changes_a_subscribers_topics(
    site: Config, client: httpx.Client, clock: Clock
) -> None:
    with open_store(site) as db:
        db.topics.set_topics("ann@example.org", ["Age Well"])
        db.topics.set_topics("bob@example.org", ["Work Well"])
        db.subscribers.set_status("bob@example.org", "unsubscribed", at=BEFORE, reason="test")
        secret = unsubscribe_secret(site, db)
        bob = db.subscribers.get_subscriber("bob@example.org")
        assert bob is not None
    # Someone posts an active subscriber's address with other topics: the same answer, nothing changes.
    assert "Check your inbox" in post_form(client, clock, "ann@example.org", ["Start Well"]).text
    assert topics_of(site, "ann@example.org") == ("Age Well",)
    assert mails(site) == []
    # A resubscribe asks for no topics: the reader's choice stays through the pending request and after.
    page = client.get("/unsubscribe", params={"token": unsubscribe_token(secret, bob.token_id)})
    clock.advance(5)
    again = client.post(
        "/resubscribe", data={"token": unsubscribe_token(secret, bob.token_id), **form_fields(page.text)}
    )
    assert "Check your inbox" in again.text
    [message] = mails(site)
    assert topics_of(site, "bob@example.org") == ("Work Well",)
    confirm(client, link_in(message))
    assert topics_of(site, "bob@example.org") == ("Work Well",)


def test_an_unknown_topic_is_refused_with_a_400_naming_the_field(
    site: Config, client: httpx.Client, clock: Clock
) -> None:
    answer = post_form(client, clock, "fay@example.org", ["Start Well", "Free Money"])
    assert answer.status_code == 400
    assert (
        "Topics: &#39;Free Money&#39; is not one of the topics (Start Well, Age Well, Work Well)"
        in answer.text
    )
    assert 'id="topics-error"' in answer.text and 'aria-describedby="topics-hint topics-error"' in answer.text
    assert 'aria-invalid="true"' not in answer.text  # the address was fine
    assert ticked(answer.text) == ["Start Well"]  # the known ticks are kept
    assert mails(site) == []
    with open_store(site) as db:
        assert db.signups.get("fay@example.org") is None


def test_without_priorities_the_form_offers_no_topics_and_refuses_any(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    config = make_site(tmp_path, ITEMS, extra=READERS)
    with served(create_public_app(config, clock=clock)) as base, httpx.Client(base_url=base) as c:
        page = c.get("/subscribe")
        assert "Topics" not in page.text and 'name="topics"' not in page.text
        assert post_form(c, clock, "gus@example.org", ["Start Well"]).status_code == 400
        assert mails(config) == []
        assert post_form(c, clock, "gus@example.org", []).status_code == 200
        with open_store(config) as db:
            pending = db.signups.get("gus@example.org")
            assert pending is not None and pending.topics is None  # nothing asked: nothing to apply
        prefs = c.get("/preferences", params={"token": preferences_of(config, "ann@example.org")})
        assert prefs.status_code == 200 and "Your topics" not in prefs.text


def preferences_of(config: Config, address: str) -> str:
    with open_store(config) as db:
        found = db.subscribers.get_subscriber(address)
        assert found is not None
        return preferences_token(unsubscribe_secret(config, db), found.token_id)


def test_the_preference_page_shows_changes_and_clears_topics(
    site: Config, client: httpx.Client, clock: Clock
) -> None:
    token = preferences_of(site, "cat@example.org")
    page = client.get("/preferences", params={"token": token})
    assert page.status_code == 200 and "You get all topics." in page.text and ticked(page.text) == []
    fields = dict(re.findall(r'name="(csrf_token)" value="([^"]*)"', page.text))
    # Without the form's CSRF token nothing changes.
    assert (
        client.post(
            "/preferences", data={"token": token, "action": "topics", "topics": ["Age Well"]}
        ).status_code
        == 403
    )
    assert topics_of(site, "cat@example.org") == ()

    clock.advance(60)
    saved = client.post(
        "/preferences",
        data={"token": token, "action": "topics", "topics": ["Age Well", "start well"], **fields},
    )
    assert saved.status_code == 200 and "Your topics have been saved: Start Well, Age Well." in saved.text
    assert ticked(saved.text) == ["Start Well", "Age Well"]
    assert topics_of(site, "cat@example.org") == ("Age Well", "Start Well")
    with open_store(site) as db:
        found = db.subscribers.get_subscriber("cat@example.org")
        assert found is not None and found.updated_at == clock.now  # recorded like a name change
    again = client.get("/preferences", params={"token": token})
    assert ticked(again.text) == ["Start Well", "Age Well"] and "You get news about" in again.text

    refused = client.post(
        "/preferences", data={"token": token, "action": "topics", "topics": ["Nope"], **fields}
    )
    assert refused.status_code == 400 and "Topics: &#39;Nope&#39; is not one of the topics" in refused.text
    assert topics_of(site, "cat@example.org") == ("Age Well", "Start Well")

    cleared = client.post(
        "/preferences",
        data={"token": token, "action": "all_topics", "topics": ["Work Well"], **fields},
    )
    assert "you will get all topics" in cleared.text and ticked(cleared.text) == []
    assert topics_of(site, "cat@example.org") == ()
    # Saving with no box ticked is all topics too.
    client.post("/preferences", data={"token": token, "action": "topics", "topics": ["Work Well"], **fields})
    assert topics_of(site, "cat@example.org") == ("Work Well",)
    client.post("/preferences", data={"token": token, "action": "topics", **fields})
    assert topics_of(site, "cat@example.org") == ()


def test_topics_follow_a_change_of_address_and_are_exported_and_forgotten(
    site: Config, client: httpx.Client, clock: Clock
) -> None:
    with open_store(site) as db:
        db.topics.set_topics("cat@example.org", ["Age Well"])
        db.tags.add_tags("cat@example.org", ["staff"])
    token = preferences_of(site, "cat@example.org")
    page = client.get("/preferences", params={"token": token})
    fields = dict(re.findall(r'name="(csrf_token)" value="([^"]*)"', page.text))
    moved = client.post(
        "/preferences", data={"token": token, "action": "address", "email": "cat@new.example", **fields}
    )
    assert "keeps receiving" in moved.text
    [message] = mails(site)
    assert topics_of(site, "cat@example.org") == ("Age Well",)  # until the new address is confirmed
    confirm(client, link_in(message))
    assert topics_of(site, "cat@new.example") == ("Age Well",)
    assert topics_of(site, "cat@example.org") == ()
    with open_store(site) as db:  # the editions whose audience they were in still come to them
        assert db.tags.tags_of("cat@new.example") == ("staff",) and db.tags.tags_of("cat@example.org") == ()
        assert export_subscriber(db, "cat@new.example")["profile"]["topics"] == ["Age Well"]
        forget_subscriber(db, "cat@new.example", now=clock.now + timedelta(days=1))
        assert db.topics.topics_of("cat@new.example") == ()


def test_a_pending_sign_up_keeps_its_topics_on_each_backend(store: Store) -> None:
    gap = timedelta(minutes=10)
    first = store.signups.start(
        "hal@example.org", name=None, method="form", at=BEFORE, min_gap=gap, topics=("Start Well",)
    )
    assert first is not None and first.topics == ("Start Well",)
    renewed = store.signups.start(
        "hal@example.org", name=None, method="form", at=BEFORE + 2 * gap, min_gap=gap, topics=()
    )
    assert renewed is not None and renewed.topics == ()
    asked_nothing = store.signups.start(
        "ivy@example.org", name=None, method="resubscribe", at=BEFORE, min_gap=gap
    )
    assert asked_nothing is not None and asked_nothing.topics is None
    assert store.signups.by_token(renewed.token_id) == renewed
    store.topics.set_topics("old@example.org", ["Age Well"])
    store.topics.move_address("old@example.org", "new@example.org")
    assert store.topics.topics_of("new@example.org") == ("Age Well",)
    assert store.topics.topics_of("old@example.org") == ()
    store.tags.add_tags("old@example.org", ["staff"])
    store.tags.add_tags("new@example.org", ["stale"])
    store.tags.move_address("old@example.org", "new@example.org")
    assert store.tags.tags_of("new@example.org") == ("staff",) and store.tags.tags_of("old@example.org") == ()
