"""Unsubscribe: GET only confirms, the form POST and the RFC 8058 one-click POST unsubscribe."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote

import httpx
import pytest
from itsdangerous import URLSafeSerializer
from state_support import sql
from test_archive import make_config
from web_support import served

from digest.config import Config
from digest.deliver.audience import add_subscriber, import_csv
from digest.deliver.tokens import unsubscribe_secret, unsubscribe_token
from digest.models import unsubscribe_url
from digest.state.schema import MIGRATIONS
from digest.state.store import open_store
from digest.web.public import create_public_app

NOW = datetime(2025, 5, 9, 9, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    config = make_config(tmp_path)
    db = open_store(config)
    db.subscribers.upsert_subscriber("Ann.Reader@example.org", name="Ann", at=NOW)
    db.subscribers.upsert_subscriber("bob@example.org", name="Bob", at=NOW)
    db.close()
    return config


@pytest.fixture
def client(config: Config) -> Iterator[httpx.Client]:
    with served(create_public_app(config, clock=lambda: NOW)) as base, httpx.Client(base_url=base) as c:
        yield c


def token_for(config: Config, email: str) -> str:
    """The token the next email to `email` carries (of its current subscription)."""
    db = open_store(config)
    try:
        subscriber = db.subscribers.get_subscriber(email)
        assert subscriber is not None
        return unsubscribe_token(unsubscribe_secret(config, db), subscriber.token_id)
    finally:
        db.close()


def status(config: Config, email: str) -> str:
    db = open_store(config)
    try:
        subscriber = db.subscribers.get_subscriber(email)
        assert subscriber is not None
        return subscriber.status
    finally:
        db.close()


def path_of(config: Config, token: str) -> str:
    return httpx.URL(unsubscribe_url(config.web.base_url, token)).raw_path.decode().removeprefix("/digest")


def test_get_shows_a_confirmation_and_never_unsubscribes(config: Config, client: httpx.Client) -> None:
    path = path_of(config, token_for(config, "ann.reader@example.org"))
    for _ in range(3):  # a link scanner following the link, again and again
        page = client.get(path)
        assert page.status_code == 200
        assert "Do you want to stop receiving" in page.text
        assert "Ann.Reader@example.org" in page.text  # as stored
        assert '<form method="post"' in page.text
    assert client.head(path).status_code == 200
    assert status(config, "ann.reader@example.org") == "active"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"


def test_the_form_post_unsubscribes_that_address_only(config: Config, client: httpx.Client) -> None:
    token = token_for(config, "ann.reader@example.org")
    page = client.post("/unsubscribe", data={"token": token})
    assert page.status_code == 200
    assert "You have been unsubscribed" in page.text
    assert status(config, "ann.reader@example.org") == "unsubscribed"
    assert status(config, "bob@example.org") == "active"
    again = client.post("/unsubscribe", data={"token": token})
    assert again.status_code == 200
    assert "already unsubscribed" in again.text


def test_rfc8058_one_click_post_answers_200_without_a_redirect(config: Config, client: httpx.Client) -> None:
    path = path_of(config, token_for(config, "bob@example.org"))
    # What a mail provider sends: the List-Unsubscribe URL, this exact body, no cookies.
    response = client.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert not response.is_redirect
    assert status(config, "bob@example.org") == "unsubscribed"
    assert status(config, "ann.reader@example.org") == "active"
    db = open_store(config)
    subscriber = db.subscribers.get_subscriber("bob@example.org")
    assert subscriber is not None
    assert subscriber.reason == "unsubscribed (one-click)"
    assert subscriber.updated_at == NOW


def test_one_click_as_multipart_form_data_also_works(config: Config, client: httpx.Client) -> None:
    path = path_of(config, token_for(config, "bob@example.org"))
    response = client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    assert status(config, "bob@example.org") == "unsubscribed"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-token",
        "eyJlbWFpbCI6ImJvYkBleGFtcGxlLm9yZyJ9.forged-signature",
        unsubscribe_token("another-secret", "0123456789abcdef0123456789abcdef"),
        URLSafeSerializer("another-secret", salt="digest.unsubscribe.v1").dumps({"email": "bob@example.org"}),
    ],
)
def test_a_bad_token_gets_a_plain_error_page(config: Config, client: httpx.Client, token: str) -> None:
    for response in (
        client.get("/unsubscribe", params={"token": token}),
        client.post(
            "/unsubscribe",
            params={"token": token},
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
        client.post("/unsubscribe", data={"token": token}),
    ):
        assert response.status_code == 400
        assert "This unsubscribe link is not valid" in response.text
        assert "Traceback" not in response.text
        assert "itsdangerous" not in response.text
    assert status(config, "bob@example.org") == "active"


def test_a_token_cannot_be_altered_to_name_another_address(config: Config, client: httpx.Client) -> None:
    token = token_for(config, "bob@example.org")
    payload, _, signature = token.partition(".")
    other = token_for(config, "ann.reader@example.org").partition(".")[0]
    response = client.post("/unsubscribe", data={"token": f"{other}.{signature}"})
    assert response.status_code == 400
    assert status(config, "ann.reader@example.org") == "active"
    assert payload != other


def test_the_secret_from_the_environment_signs_the_tokens(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    generated = token_for(config, "bob@example.org")
    monkeypatch.setenv("DIGEST_SECRET", "s3cret-from-the-environment")
    from_env = token_for(config, "bob@example.org")
    db = open_store(config)
    bob = db.subscribers.get_subscriber("bob@example.org")
    db.close()
    assert bob is not None
    assert from_env == unsubscribe_token("s3cret-from-the-environment", bob.token_id)
    assert from_env != generated
    with served(create_public_app(config, clock=lambda: NOW)) as base:
        assert httpx.post(f"{base}/unsubscribe", data={"token": generated}).status_code == 400
        assert httpx.post(f"{base}/unsubscribe", data={"token": from_env}).status_code == 200
    assert status(config, "bob@example.org") == "unsubscribed"


def test_an_address_removed_since_gets_a_link_no_longer_valid_page(
    config: Config, client: httpx.Client
) -> None:
    token = token_for(config, "bob@example.org")
    db = open_store(config)
    db.subscribers.delete_subscriber("bob@example.org")
    db.close()
    page = client.get("/unsubscribe", params={"token": token})
    assert page.status_code == 200
    assert "This unsubscribe link is no longer valid" in page.text
    assert "bob@example.org" not in page.text
    assert client.post("/unsubscribe", data={"token": token}).status_code == 200


def test_feed_like_markup_in_an_address_is_escaped(config: Config, client: httpx.Client) -> None:
    db = open_store(config)
    db.subscribers.upsert_subscriber('"<script>alert(1)</script>"@example.org', name=None, at=NOW)
    db.close()
    token = token_for(config, '"<script>alert(1)</script>"@example.org')
    page = client.get("/unsubscribe", params={"token": token})
    assert "<script>alert(1)" not in page.text
    assert "&lt;script&gt;" in page.text


def _token_texts(token: str) -> list[str]:
    """Every part of a token as text, each also base64-decoded where it decodes."""
    texts = [token, unquote(token)]
    for part in token.split("."):
        texts.append(part)
        padded = part + "=" * (-len(part) % 4)
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            with contextlib.suppress(ValueError, binascii.Error):
                texts.append(decode(padded).decode("latin-1"))
    return [t.lower() for t in texts]


def _address_forms(email: str) -> list[str]:
    forms = [email, email.lower(), quote(email), quote(email.lower())]
    for encode in (base64.urlsafe_b64encode, base64.b64encode):
        for form in (email, email.lower(), json.dumps({"email": email.lower()}, separators=(",", ":"))):
            forms.append(encode(form.encode()).decode().rstrip("="))
    # base64 of the address at any of the three alignments it can have inside a longer payload
    for skip in range(3):
        encoded = base64.urlsafe_b64encode(b"x" * skip + email.lower().encode()).decode()
        forms.append(encoded[(skip * 4 + 2) // 3 + 1 : -2])
    return [f.lower() for f in forms if f]


def test_a_token_names_no_one(config: Config) -> None:
    for email in ("Ann.Reader@example.org", "bob@example.org"):
        token = token_for(config, email)
        local = email.split("@")[0].lower()
        for text in _token_texts(token):
            for form in _address_forms(email):
                assert form not in text, (token, form)
            assert local not in text and "example" not in text


def test_an_old_token_does_not_unsubscribe_after_re_subscribing(config: Config, client: httpx.Client) -> None:
    db = open_store(config)
    old = token_for(config, "bob@example.org")
    assert client.post("/unsubscribe", data={"token": old}).status_code == 200
    assert status(config, "bob@example.org") == "unsubscribed"
    add_subscriber(db, "bob@example.org", name=None, at=NOW, resubscribe=True)  # `add --resubscribe`
    db.close()
    assert status(config, "bob@example.org") == "active"
    for response in (
        client.get(path_of(config, old)),
        client.post("/unsubscribe", data={"token": old}),
        client.post(  # the RFC 8058 one-click POST of the old email
            path_of(config, old),
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
    ):
        assert response.status_code == 200
        assert "This unsubscribe link is no longer valid" in response.text
        assert "You have been unsubscribed" not in response.text
    assert status(config, "bob@example.org") == "active"
    # The link of the new subscription works, one-click included.
    new = token_for(config, "bob@example.org")
    assert new != old
    response = client.post(
        path_of(config, new),
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "You have been unsubscribed" in response.text
    assert status(config, "bob@example.org") == "unsubscribed"


def _token_id(config: Config, email: str) -> str:
    db = open_store(config)
    try:
        subscriber = db.subscribers.get_subscriber(email)
        assert subscriber is not None
        return subscriber.token_id
    finally:
        db.close()


def test_every_way_of_subscribing_again_gives_a_new_token_id(config: Config, tmp_path: Path) -> None:
    db = open_store(config)
    ids = {_token_id(config, "bob@example.org")}
    # add after remove
    db.subscribers.delete_subscriber("bob@example.org")
    add_subscriber(db, "bob@example.org", name=None, at=NOW)
    ids.add(_token_id(config, "bob@example.org"))
    # reactivation of an unsubscribed or bounced address by `add` or a status change
    for before in ("unsubscribed", "bounced"):
        db.subscribers.set_status("bob@example.org", before, at=NOW)
        add_subscriber(db, "BOB@example.org", name=None, at=NOW, resubscribe=True)
        ids.add(_token_id(config, "bob@example.org"))
        db.subscribers.set_status("bob@example.org", before, at=NOW)
        db.subscribers.set_status("bob@example.org", "active", at=NOW)
        ids.add(_token_id(config, "bob@example.org"))
    # import of a removed address
    db.subscribers.delete_subscriber("bob@example.org")
    csv = tmp_path / "people.csv"
    csv.write_text("email,name\nbob@example.org,Bob\n", encoding="utf-8")
    import_csv(db, csv, at=NOW, consent="test list")
    ids.add(_token_id(config, "bob@example.org"))
    assert len(ids) == 7
    # Changes that are not a new subscription keep the id (links in emails sent stay valid).
    same = _token_id(config, "bob@example.org")
    add_subscriber(db, "bob@example.org", name="Robert", at=NOW)
    import_csv(db, csv, at=NOW, consent="test list")
    db.subscribers.set_status("bob@example.org", "active", at=NOW)
    db.close()
    assert _token_id(config, "bob@example.org") == same


def test_tokens_of_before_the_upgrade_work_until_re_subscribing(config: Config, client: httpx.Client) -> None:
    """Emails sent by the previous version carry tokens naming the address: they keep working."""
    db = open_store(config)
    sql(db).execute("UPDATE subscribers SET address_tokens = 1")  # as the migration leaves existing rows
    secret = unsubscribe_secret(config, db)
    db.close()
    legacy = {
        email: URLSafeSerializer(secret, salt="digest.unsubscribe.v1").dumps({"email": email})
        for email in ("ann.reader@example.org", "bob@example.org")
    }
    page = client.get("/unsubscribe", params={"token": legacy["ann.reader@example.org"]})
    assert "Do you want to stop receiving" in page.text
    assert client.post("/unsubscribe", data={"token": legacy["ann.reader@example.org"]}).status_code == 200
    assert status(config, "ann.reader@example.org") == "unsubscribed"
    db = open_store(config)
    db.subscribers.set_status("bob@example.org", "unsubscribed", at=NOW)
    add_subscriber(db, "bob@example.org", name=None, at=NOW, resubscribe=True)
    db.close()
    page = client.post("/unsubscribe", data={"token": legacy["bob@example.org"]})
    assert "This unsubscribe link is no longer valid" in page.text
    assert status(config, "bob@example.org") == "active"


def test_the_migration_gives_existing_subscribers_distinct_token_ids(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "state.db")
    for number, script in enumerate(MIGRATIONS[:3], start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version = {number}")
    for email in ("a@example.org", "b@example.org"):
        db.execute(
            "INSERT INTO subscribers (email, status, created_at, updated_at) VALUES (?, 'active', ?, ?)",
            (email, NOW.isoformat(), NOW.isoformat()),
        )
    db.commit()
    db.close()
    state = open_store(tmp_path / "state.db")
    found = list(state.subscribers.iter_subscribers())
    state.close()
    assert len({s.token_id for s in found}) == 2
    assert all(len(s.token_id) == 32 and s.address_tokens for s in found)


def test_a_subscriber_inserted_without_a_token_id_gets_one(tmp_path: Path) -> None:
    db = open_store(tmp_path / "state.db")
    sql(db).execute(
        "INSERT INTO subscribers (email, status, created_at, updated_at)"
        " VALUES ('c@example.org', 'active', ?, ?)",
        (NOW.isoformat(), NOW.isoformat()),
    )
    found = db.subscribers.get_subscriber("c@example.org")
    db.close()
    assert found is not None
    assert len(found.token_id) == 32
    assert not found.address_tokens


def test_other_methods_and_large_bodies_get_pages(config: Config, client: httpx.Client) -> None:
    assert client.put("/unsubscribe").status_code == 405
    big = client.post(
        "/unsubscribe", content=b"x" * 200_000, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert big.status_code == 413
    assert "Traceback" not in big.text
