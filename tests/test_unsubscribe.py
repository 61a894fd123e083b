"""Unsubscribe: GET only confirms, the form POST and the RFC 8058 one-click POST unsubscribe."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from test_archive import make_config
from web_support import served

from digest.config import Config
from digest.deliver.tokens import unsubscribe_secret, unsubscribe_token, unsubscribe_url
from digest.state import open_state
from digest.state.subscribers import get_subscriber, upsert_subscriber
from digest.web.public import create_public_app

NOW = datetime(2025, 5, 9, 9, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    config = make_config(tmp_path)
    db = open_state(config.state_path)
    upsert_subscriber(db, "Ann.Reader@example.org", name="Ann", at=NOW)
    upsert_subscriber(db, "bob@example.org", name="Bob", at=NOW)
    db.close()
    return config


@pytest.fixture
def client(config: Config) -> Iterator[httpx.Client]:
    with served(create_public_app(config, clock=lambda: NOW)) as base, httpx.Client(base_url=base) as c:
        yield c


def token_for(config: Config, email: str) -> str:
    db = open_state(config.state_path)
    try:
        return unsubscribe_token(unsubscribe_secret(config, db), email)
    finally:
        db.close()


def status(config: Config, email: str) -> str:
    db = open_state(config.state_path)
    try:
        subscriber = get_subscriber(db, email)
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
        assert "ann.reader@example.org" in page.text
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
    db = open_state(config.state_path)
    subscriber = get_subscriber(db, "bob@example.org")
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
        unsubscribe_token("another-secret", "bob@example.org"),
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
    assert from_env == unsubscribe_token("s3cret-from-the-environment", "bob@example.org")
    assert from_env != generated
    with served(create_public_app(config, clock=lambda: NOW)) as base:
        assert httpx.post(f"{base}/unsubscribe", data={"token": generated}).status_code == 400
        assert httpx.post(f"{base}/unsubscribe", data={"token": from_env}).status_code == 200
    assert status(config, "bob@example.org") == "unsubscribed"


def test_an_address_no_longer_on_the_list_is_told_so(config: Config, client: httpx.Client) -> None:
    token = token_for(config, "gone@example.org")
    page = client.get("/unsubscribe", params={"token": token})
    assert page.status_code == 200
    assert "not on the list" in page.text
    assert client.post("/unsubscribe", data={"token": token}).status_code == 200


def test_feed_like_markup_in_an_address_is_escaped(config: Config, client: httpx.Client) -> None:
    token = token_for(config, '"<script>alert(1)</script>"@example.org')
    page = client.get("/unsubscribe", params={"token": token})
    assert "<script>alert(1)" not in page.text
    assert "&lt;script&gt;" in page.text


def test_other_methods_and_large_bodies_get_pages(config: Config, client: httpx.Client) -> None:
    assert client.put("/unsubscribe").status_code == 405
    big = client.post(
        "/unsubscribe", content=b"x" * 200_000, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert big.status_code == 413
    assert "Traceback" not in big.text
