"""Bad user input has one channel: InvalidValueError (a UsageError, exit code 2) with its message and hint.

No caller catches a bare ValueError around a larger call any more, so a ValueError raised by a bug inside
the sign-up path, the preference page or a preview edit is a bug (a 500), never "Enter an email address".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from send_support import write_config
from test_signup import START, Clock, form_fields, preferences_of, sign_up
from test_signup import config as config  # noqa: PLC0414 - the sign-up tests' fixture, reused here
from web_support import csrf_of, preview_served, sample_project, served

from digest.cli import main
from digest.compose.draft import Draft
from digest.config import Config
from digest.deliver import audience
from digest.deliver.tokens import BadTokenError, read_unsubscribe_token
from digest.errors import DigestError, InvalidValueError, UsageError
from digest.ingest.parse.select import split_selector
from digest.pipeline import signup
from digest.state.store import open_store
from digest.web import edits
from digest.web.public import create_public_app


def test_invalid_value_error_is_a_usage_error_with_exit_code_2_and_no_value_error() -> None:
    error = InvalidValueError("'x' is not a tag", hint="tags name audiences")
    assert isinstance(error, UsageError) and isinstance(error, DigestError)
    assert not isinstance(error, ValueError)
    assert error.exit_code == 2 and error.hint == "tags name audiences"
    # A bad link is bad input too: in the tree, and no `except ValueError` takes it for a bad address.
    with pytest.raises(BadTokenError) as caught:
        read_unsubscribe_token("secret", "not-a-token")
    assert isinstance(caught.value, DigestError) and not isinstance(caught.value, ValueError)
    assert caught.value.exit_code == 2 and not isinstance(caught.value, InvalidValueError)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: audience.normalise_address("  "), "the address is empty"),
        (lambda: audience.normalise_address("not-an-address"), "An email address must have an @-sign."),
        (
            lambda: audience.check_tag("no spaces"),
            "'no spaces' is not a tag (1-40 letters, digits, '_' or '-')",
        ),
        (
            lambda: audience.check_topics(["Nope"], ["Start Well"]),
            "'Nope' is not a priority (priorities: Start Well)",
        ),
        (lambda: split_selector(" "), "is empty: give a CSS selector such as '.news-card' or 'a@href'"),
        (lambda: split_selector("a[@@"), "'a[@@' is not a CSS selector digest can read ("),
        (lambda: edits.set_words(Draft(), "x" * 201, ""), "the subject is longer than 200"),
    ],
)
def test_bad_input_raises_invalid_value_error_with_the_same_message(call: object, message: str) -> None:
    assert callable(call)
    with pytest.raises(InvalidValueError) as caught:
        call()
    assert str(caught.value).startswith(message), str(caught.value)


def test_subscribers_add_not_an_address_exits_2_with_one_line_and_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(tmp_path)
    assert main(["subscribers", "add", "not-an-address", "--config", str(tmp_path / "config.toml")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: 'not-an-address' is not a valid email address: An email address must have an @-sign.",
        "hint: write one address like name@example.org (a name goes in --name)",
    ]


def test_an_import_row_with_a_bad_tag_is_rejected_for_its_tags_cell(tmp_path: Path) -> None:
    """The cell is the one that failed, not guessed from the message (a tag named 'priority!' is a tag
    problem, which the old `"priority" in str(e)` called a topics problem)."""
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("email,tags,topics\nann@example.org,priority!,Start Well\nbob@example.org,,Nope\n")
    with open_store(tmp_path / "state.db") as db:
        report = audience.import_csv(
            db, csv_file, at=START, consent="Reader list", priorities=("Start Well",)
        )
    reasons = [(r.line, r.value, r.reason) for r in report.rejected]
    assert reasons == [
        (2, "priority!", "tags: 'priority!' is not a tag (1-40 letters, digits, '_' or '-')"),
        (3, "Nope", "topics: 'Nope' is not a priority (priorities: Start Well)"),
    ]


@pytest.fixture
def app_client(config: Config, clock: Clock) -> Iterator[httpx.Client]:
    with served(create_public_app(config, clock=clock)) as base, httpx.Client(base_url=base) as c:
        yield c


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _bug(*args: object, **kwargs: object) -> None:
    raise ValueError("a bug deep inside the sign-up path")


def test_a_bad_address_still_gets_the_friendly_form(app_client: httpx.Client, clock: Clock) -> None:
    response = sign_up(app_client, clock, "ann@@example.org")
    assert response.status_code == 400
    assert "Enter an email address like name@example.org" in response.text


def test_a_value_error_from_a_bug_in_sign_up_is_not_shown_as_enter_an_email_address(
    config: Config, app_client: httpx.Client, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signup, "_start", _bug)
    response = sign_up(app_client, clock, "ann@example.org")
    assert response.status_code == 500
    assert "Enter an email address" not in response.text


def test_a_value_error_from_a_bug_in_a_change_of_address_is_not_shown_as_enter_an_email_address(
    config: Config, app_client: httpx.Client, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(config) as db:
        db.subscribers.upsert_subscriber("cat@example.org", name="Cat", at=START)
    token = preferences_of(config, "cat@example.org")
    page = app_client.get("/preferences", params={"token": token})
    fields = {"token": token, **form_fields(page.text)}
    bad = app_client.post("/preferences", data={**fields, "action": "address", "email": "cat@@new.example"})
    assert bad.status_code == 400 and "Enter an email address like name@example.org" in bad.text
    monkeypatch.setattr(signup, "_start", _bug)
    response = app_client.post(
        "/preferences", data={**fields, "action": "address", "email": "cat@new.example"}
    )
    assert response.status_code == 500
    assert "Enter an email address" not in response.text


def test_a_value_error_from_a_bug_in_a_preview_edit_is_not_shown_as_refused_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path = sample_project(tmp_path)
    with preview_served(config_path) as (base, _), httpx.Client(base_url=base) as client:
        token = csrf_of(client.get("/").text)
        refused = client.post("/draft/intro", data={"csrf_token": token, "intro": "x" * 20_001})
        assert refused.status_code == 303
        assert "the intro is longer than 20,000 characters" in client.get(refused.headers["location"]).text
        monkeypatch.setattr("digest.web.workspace.save_draft", _bug)
        broken = client.post("/draft/intro", data={"csrf_token": token, "intro": "Hello"})
        assert broken.status_code == 500
