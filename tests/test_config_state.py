"""`[state] url` and `[state] password_env`: the PostgreSQL state in the config, validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.config import Config, parse_config
from digest.errors import ConfigError

SOURCES = [{"name": "items", "url": "feeds/*.md"}]


def _parse(tmp_path: Path, state: dict[str, object]) -> Config:
    (tmp_path / "feeds").mkdir(exist_ok=True)
    return parse_config({"sources": SOURCES, "state": state}, tmp_path / "config.toml")


def _problems(tmp_path: Path, state: dict[str, object]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        _parse(tmp_path, state)
    return caught.value.problems


def test_a_url_selects_postgresql_with_the_password_variable(tmp_path: Path) -> None:
    config = _parse(
        tmp_path, {"url": "postgresql://digest@db.example:5432/digest", "password_env": "DIGEST_DB_PASSWORD"}
    )
    assert config.state_url == "postgresql://digest@db.example:5432/digest"
    assert config.state_password_env == "DIGEST_DB_PASSWORD"


def test_without_a_url_the_state_stays_in_sqlite(tmp_path: Path) -> None:
    config = _parse(tmp_path, {"path": "s.db"})
    assert config.state_url is None
    assert config.state_path == tmp_path.resolve() / "s.db"


def test_path_and_url_together_are_refused_naming_both(tmp_path: Path) -> None:
    problems = _problems(tmp_path, {"path": "s.db", "url": "postgresql://digest@db.example/digest"})
    assert problems == (
        "state.path, state.url: set one, not both (path keeps the state in a SQLite file, url in PostgreSQL)",
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://digest:hunter2@db.example/digest", "state.url: must not contain a password"),
        ("postgresql://digest@db.example/digest?password=hunter2", "state.url: must not contain a password"),
        (
            "mysql://digest@db.example/digest",
            "state.url: 'mysql://digest@db.example/digest' is not a postgresql:// URL",
        ),
        ("postgresql://digest@db.example/", "names no database"),
        ("postgresql:///digest", "has no host"),
        ("postgresql://digest@db.example:port/digest", "the port is not a number"),
    ],
)
def test_a_bad_url_is_named_by_its_dotted_key(tmp_path: Path, url: str, problem: str) -> None:
    problems = _problems(tmp_path, {"url": url})
    assert len(problems) == 1
    assert problems[0].startswith("state.url: ")
    assert problem in problems[0]
    assert "hunter2" not in problems[0]


def test_password_env_needs_a_url_and_a_variable_name(tmp_path: Path) -> None:
    assert _problems(tmp_path, {"password_env": "DIGEST_DB_PASSWORD"}) == (
        "state.password_env: is only used with [state] url (the PostgreSQL state)",
    )
    problems = _problems(tmp_path, {"url": "postgresql://d@h/db", "password_env": "not a name"})
    assert problems == ("state.password_env: 'not a name' is not an environment variable name",)
    assert _problems(tmp_path, {"url": 5432}) == ("state.url: must be a string, not an integer",)
