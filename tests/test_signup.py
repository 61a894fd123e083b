"""Issue 14: sign-up with double opt-in on `digest serve`, no abuse through the form, resubscribe from the
unsubscribe page, the preference page, and pending sign-ups deleted by the next run. The clock is injected:
nothing here waits."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from test_archive import make_config
from test_build import AS_OF, REPO
from web_support import served

from digest.cli import main
from digest.config import Config, load_config
from digest.deliver.reader_tokens import preferences_token, truncated_ip
from digest.deliver.tokens import unsubscribe_secret, unsubscribe_token
from digest.errors import ConfigError
from digest.pipeline.signup import delete_stale_signups
from digest.state.consent import wording_sha256
from digest.state.store import open_store
from digest.web.public import create_public_app

START = datetime(2025, 5, 9, 9, 0, tzinfo=UTC)
CONSENT = "Send me BLMK weekly news by email. I can unsubscribe at any time."
SUBSCRIBE = f"""
[subscribe]
enabled = true
consent_text = "{CONSENT}"
privacy_url = "https://example.org/privacy"
record_ip = "truncated"
"""


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    return make_config(
        tmp_path, SUBSCRIBE + '\n[delivery]\noutbox = "outbox"\nfrom_address = "news@example.org"\n'
    )


@pytest.fixture
def client(config: Config, clock: Clock) -> Iterator[httpx.Client]:
    with served(create_public_app(config, clock=clock)) as base, httpx.Client(base_url=base) as c:
        yield c


def mails(config: Config) -> list[email.message.EmailMessage]:
    folder = config.delivery.outbox / "new"
    found = sorted(folder.iterdir()) if folder.exists() else []
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in found]  # type: ignore[misc]


def form_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'name="(csrf_token|stamp)" value="([^"]*)"', page))


def sign_up(client: httpx.Client, clock: Clock, address: str, **extra: str) -> httpx.Response:
    page = client.get("/subscribe")
    assert page.status_code == 200
    clock.advance(5)  # a person takes a few seconds to fill the form
    return client.post(
        "/subscribe", data={**form_fields(page.text), "email": address, "name": "Ann", **extra}
    )


def link_in(message: email.message.EmailMessage) -> str:
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(r"https://news\.example\.org/digest(/confirm\?token=\S+)", text)
    assert found, text
    return unquote(found.group(1)).replace("/confirm?token=", "")


def confirm(client: httpx.Client, token: str) -> httpx.Response:
    page = client.get("/confirm", params={"token": token})
    assert page.status_code == 200 and "Confirm my" in page.text
    return client.post("/confirm", params={"token": token}, data={"token": token, **form_fields(page.text)})


def subscriber(config: Config, address: str) -> tuple[str, str | None] | None:
    with open_store(config) as db:
        found = db.subscribers.get_subscriber(address)
        return (found.status, found.name) if found else None


def test_disabled_by_default_serves_no_reader_pages(tmp_path: Path, clock: Clock) -> None:
    config = make_config(tmp_path)
    assert not config.subscribe.enabled
    with served(create_public_app(config, clock=clock)) as base, httpx.Client(base_url=base) as c:
        for path in ("/subscribe", "/confirm?token=x", "/preferences?token=x"):
            assert c.get(path).status_code == 404, path


def test_double_opt_in_from_form_to_active_with_a_consent_record(
    config: Config, client: httpx.Client, clock: Clock
) -> None:
    page = client.get("/subscribe")
    assert CONSENT in page.text and "https://example.org/privacy" in page.text
    assert sign_up(client, clock, "ann@example.org").status_code == 200
    assert subscriber(config, "ann@example.org") is None  # pending: not on the list yet
    [message] = mails(config)
    assert message["To"] == "Ann <ann@example.org>" and "Confirm your subscription" in message["Subject"]
    assert message["List-Id"] and message["Message-ID"]
    assert message.get_body(("html",)) is not None
    token = link_in(message)
    # GET never confirms (link scanners follow every link).
    for _ in range(3):
        assert client.get("/confirm", params={"token": token}).status_code == 200
    assert subscriber(config, "ann@example.org") is None
    done = confirm(client, token)
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert subscriber(config, "ann@example.org") == ("active", "Ann")
    with open_store(config) as db:
        found = db.subscribers.get_subscriber("ann@example.org")
        assert found is not None and found.consent is not None
        assert found.consent.method == "form" and found.consent.source == "/subscribe"
        assert found.consent.wording_sha256 == wording_sha256(CONSENT)
        assert found.consent.ip == "127.0.0.0"  # last octet zeroed
        assert found.consent.consented_at == clock.now
        assert db.signups.count() == 0
    # The link is used: a second POST changes nothing and says so.
    assert "no longer valid" in client.get("/confirm", params={"token": token}).text


def test_the_confirmation_link_expires(config: Config, client: httpx.Client, clock: Clock) -> None:
    sign_up(client, clock, "late@example.org")
    token = link_in(mails(config)[0])
    clock.advance(48 * 3600 + 1)
    assert "has expired" in client.get("/confirm", params={"token": token}).text
    assert "not valid" in client.get("/confirm", params={"token": token[:-3] + "xyz"}).text
    assert subscriber(config, "late@example.org") is None


def test_every_address_gets_the_same_answer_and_active_or_suppressed_get_no_mail(
    config: Config, client: httpx.Client, clock: Clock
) -> None:
    with open_store(config) as db:
        db.subscribers.upsert_subscriber("active@example.org", name=None, at=START)
        db.subscribers.upsert_subscriber("gone@example.org", name=None, at=START)
        db.subscribers.set_status("gone@example.org", "unsubscribed", at=START)
    answers = set()
    for address in ("new@example.org", "new@example.org", "active@example.org", "gone@example.org"):
        response = sign_up(client, clock, address)
        assert response.status_code == 200
        answers.add(re.sub(r'value="[^"]*"', "", response.text))
    assert len(answers) == 1 and "Check your inbox" in answers.pop()
    # One mail: to the new address, once (the second sign-up is within 10 minutes).
    assert [m["To"].addresses[0].addr_spec for m in mails(config)] == ["new@example.org"]
    clock.advance(11 * 60)
    sign_up(client, clock, "new@example.org")
    assert len(mails(config)) == 2


@pytest.mark.parametrize(
    ("wait", "extra"),
    [(0.5, {}), (2 * 86400, {}), (5, {"website": "http://spam.example"}), (5, {"stamp": "forged.stamp"})],
)
def test_bots_are_refused_quietly(
    config: Config, client: httpx.Client, clock: Clock, wait: float, extra: dict[str, str]
) -> None:
    page = client.get("/subscribe")
    clock.advance(wait)
    data = {**form_fields(page.text), "email": "bot@example.org", **extra}
    response = client.post("/subscribe", data=data)
    assert response.status_code == 200 and "Check your inbox" in response.text
    assert mails(config) == []
    with open_store(config) as db:
        assert db.signups.count() == 0


def test_csrf_is_required(config: Config, client: httpx.Client, clock: Clock) -> None:
    page = client.get("/subscribe")
    clock.advance(5)
    fields = form_fields(page.text)
    response = client.post("/subscribe", data={"stamp": fields["stamp"], "email": "x@example.org"})
    assert response.status_code == 403
    cross = client.post(
        "/subscribe", data={**fields, "email": "x@example.org"}, headers={"origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    assert mails(config) == []


def test_a_burst_of_100_posts_from_one_client_sends_at_most_5_emails(
    config: Config, client: httpx.Client, clock: Clock
) -> None:
    page = client.get("/subscribe")
    fields = form_fields(page.text)
    clock.advance(5)
    for i in range(100):
        response = client.post("/subscribe", data={**fields, "email": f"victim{i}@example.org"})
        assert response.status_code == 200 and "Check your inbox" in response.text
    assert len(mails(config)) == 5
    # The window slides: an hour later the client may sign up again.
    clock.advance(3601)
    client.post(
        "/subscribe", data={**form_fields(client.get("/subscribe").text), "email": "later@example.org"}
    )
    assert len(mails(config)) == 5  # the new form is younger than 2 s: refused quietly
    clock.advance(5)
    page = client.get("/subscribe")
    clock.advance(5)
    client.post("/subscribe", data={**form_fields(page.text), "email": "later@example.org"})
    assert len(mails(config)) == 6


def test_one_confirmation_per_address_per_10_minutes_across_clients(config: Config, clock: Clock) -> None:
    app = create_public_app(config, clock=clock)
    with served(app) as base:
        for _ in range(5):  # five clients (a new session each), one address
            with httpx.Client(base_url=base) as c:
                sign_up(c, clock, "target@example.org")
    assert len(mails(config)) == 1


def test_pending_sign_ups_are_deleted_after_pending_keep_days(
    config: Config, client: httpx.Client, clock: Clock
) -> None:
    sign_up(client, clock, "slow@example.org")
    with open_store(config) as db:
        assert delete_stale_signups(config, db, now=clock.now + timedelta(days=6)) == 0
        assert db.signups.count() == 1
        assert delete_stale_signups(config, db, now=clock.now + timedelta(days=7, seconds=1)) == 1
        assert db.signups.count() == 0


def test_resubscribe_from_the_unsubscribe_page_through_double_opt_in(
    config: Config, client: httpx.Client, clock: Clock
) -> None:
    with open_store(config) as db:
        db.subscribers.upsert_subscriber("bob@example.org", name="Bob", at=START)
        found = db.subscribers.get_subscriber("bob@example.org")
        assert found is not None
        token = unsubscribe_token(unsubscribe_secret(config, db), found.token_id)
    done = client.post("/unsubscribe", params={"token": token}, data={"token": token})
    assert "You have been unsubscribed" in done.text and "Subscribe again" in done.text
    assert subscriber(config, "bob@example.org") == ("unsubscribed", "Bob")
    fields = dict(re.findall(r'name="(csrf_token)" value="([^"]*)"', done.text))
    asked = client.post("/resubscribe", data={"token": token, **fields})
    assert "Check your inbox" in asked.text
    assert subscriber(config, "bob@example.org") == ("unsubscribed", "Bob")  # not before confirming
    [message] = mails(config)
    assert confirm(client, link_in(message)).status_code == 200
    assert subscriber(config, "bob@example.org") == ("active", "Bob")
    with open_store(config) as db:
        found = db.subscribers.get_subscriber("bob@example.org")
        assert found is not None and found.consent is not None and found.consent.method == "resubscribe"


def preferences_of(config: Config, address: str) -> str:
    with open_store(config) as db:
        found = db.subscribers.get_subscriber(address)
        assert found is not None
        return preferences_token(unsubscribe_secret(config, db), found.token_id)


def test_preference_page_changes_name_address_and_unsubscribes(
    config: Config, client: httpx.Client, clock: Clock
) -> None:
    with open_store(config) as db:
        db.subscribers.upsert_subscriber("cat@example.org", name="Cat", at=START)
    token = preferences_of(config, "cat@example.org")
    page = client.get("/preferences", params={"token": token})
    assert page.status_code == 200 and "cat@example.org" in page.text
    fields = dict(re.findall(r'name="(csrf_token)" value="([^"]*)"', page.text))
    saved = client.post(
        "/preferences", data={"token": token, "action": "name", "name": "Catherine", **fields}
    )
    assert "Your name has been saved" in saved.text
    assert subscriber(config, "cat@example.org") == ("active", "Catherine")
    clock.advance(5)
    moved = client.post(
        "/preferences", data={"token": token, "action": "address", "email": "cat@new.example", **fields}
    )
    assert "keeps receiving" in moved.text
    assert subscriber(config, "cat@example.org") == ("active", "Catherine")  # until confirmed
    [message] = mails(config)
    assert message["To"].addresses[0].addr_spec == "cat@new.example"
    assert "new address" in message["Subject"]
    assert "Your new address is confirmed" in confirm(client, link_in(message)).text
    assert subscriber(config, "cat@example.org") is None
    assert subscriber(config, "cat@new.example") == ("active", "Catherine")
    # The same token (the subscription id moved with the address) still opens the page.
    page = client.get("/preferences", params={"token": token})
    assert "cat@new.example" in page.text
    gone = client.post("/preferences", data={"token": token, "action": "unsubscribe", **fields})
    assert "You have been unsubscribed" in gone.text
    assert subscriber(config, "cat@new.example") == ("unsubscribed", "Catherine")
    assert "no longer valid" in client.get("/preferences", params={"token": token}).text


def test_a_bad_preference_token_is_refused(client: httpx.Client) -> None:
    assert client.get("/preferences", params={"token": "not-a-token"}).status_code == 400


def test_truncated_ip() -> None:
    assert truncated_ip("192.0.2.77") == "192.0.2.0"
    assert truncated_ip("2001:db8:1234:5678:9abc::1") == "2001:db8:1234::"
    assert truncated_ip("::ffff:192.0.2.9") == "192.0.2.0"
    assert truncated_ip("testclient") is None


def test_config_needs_consent_and_privacy_when_enabled(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        make_config(tmp_path, '[subscribe]\nenabled = true\nconsent_text = ""\nrecord_ip = "full"\n')
    text = "\n".join(raised.value.problems)
    assert (
        "subscribe.consent_text" in text and "subscribe.privacy_url" in text and "subscribe.record_ip" in text
    )


def test_every_email_footer_links_to_the_preference_page(
    tmp_path: Path, clock: Clock, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Built with [subscribe] enabled, the issue's footer has the preference link; each copy sent carries
    the reader's own (opaque) link, which opens their page."""
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    site = tmp_path / "site"
    site.mkdir()
    shutil.copytree(REPO / "feeds", site / "feeds")
    text = (REPO / "config.toml").read_text(encoding="utf-8") + SUBSCRIBE
    (site / "config.toml").write_text(text, encoding="utf-8")
    c = ["--config", str(site / "config.toml")]
    assert main(["build", *c, "--as-of", AS_OF]) == 0
    built = site / "out" / "2025-W19"
    assert "%%DIGEST_PREFERENCES_URL%%" in (built / "email.txt").read_text(encoding="utf-8")
    assert "%%DIGEST_PREFERENCES_URL%%" in (built / "email.html").read_text(encoding="utf-8")
    assert main(["subscribers", "add", "dee@example.org", "--name", "Dee", *c]) == 0
    assert main(["send", *c]) == 0, capsys.readouterr().err
    config = load_config(site / "config.toml")
    [message] = mails(config)
    plain = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html_part = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    found = re.search(r"/preferences\?token=(\S+)", plain)
    assert found and "preferences?token=" in html_part and "%%DIGEST_" not in plain + html_part
    assert "dee@example.org" not in found.group(1)
    with served(create_public_app(config, clock=clock)) as base, httpx.Client(base_url=base) as c2:
        page = c2.get("/preferences", params={"token": unquote(found.group(1))})
        assert page.status_code == 200 and "dee@example.org" in page.text and 'value="Dee"' in page.text


def test_show_prints_a_pending_sign_up(
    config: Config, client: httpx.Client, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    sign_up(client, clock, "pending@example.org")
    capsys.readouterr()
    assert main(["subscribers", "show", "pending@example.org", "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert "status:  pending (signed up, not confirmed)" in out and "source:  /subscribe" in out
    assert "ip:      127.0.0.0" in out
