"""Configuration: the shipped config passes `digest check`; bad configs list every problem with its path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from digest.cli import main
from digest.config import load_config, parse_config
from digest.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_shipped_config_passes_digest_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(REPO / "config.toml")]) == 0
    assert "ok" in capsys.readouterr().out


def test_shipped_config_is_commented() -> None:
    text = (REPO / "config.toml").read_text()
    assert sum(1 for line in text.splitlines() if line.lstrip().startswith("#")) > 40


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "digest", "check", "--config", str(REPO / "config.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_problem_is_reported_at_once_with_its_dotted_path(tmp_path: Path) -> None:
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "a.xml").write_text("<rss/>")
    config = tmp_path / "config.toml"
    config.write_text(
        """
[state]
path = 3
colour = "blue"

[[sources]]
name = "ok"
url = "feeds/a.xml"

[[sources]]
name = "missing"
url = "feeds/blog.xml"

[[sources]]
name = "bad url"
url = "http://"

[[sources]]
name = "escape"
url = "../outside.xml"

[[sources]]
name = "wrong type"
url = "feeds/a.xml"
timeout = "soon"

[digest]
timezone = "Mars/Olympus"
group_by = "month"

[smtp]
security = "ssl"
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    problems = "\n".join(caught.value.problems)
    assert "state.path: must be a string, not an integer" in problems
    assert "state.colour: unknown key" in problems
    assert "sources[1].url: file feeds/blog.xml does not exist" in problems
    assert "sources[2].url: 'http://' is not an http(s) URL" in problems
    assert "sources[3].url: '../outside.xml' is outside the config folder" in problems
    assert "sources[4].timeout: must be a number, not a string" in problems
    assert "digest.timezone: unknown time zone 'Mars/Olympus'" in problems
    assert "digest.group_by: must be one of" in problems
    assert "smtp.security: must be one of" in problems
    assert len(caught.value.problems) == 9
    assert caught.value.exit_code == 2


def test_check_exits_2_and_names_each_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[[sources]]\nname = "x"\nurl = "nope.xml"\nspeed = 3\n')
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "sources[0].url: file nope.xml does not exist" in err
    assert "sources[0].speed: unknown key" in err


def test_missing_and_malformed_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[state\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_paths_resolve_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "one.md").write_text("---\ntitle: x\n---\n")
    config = parse_config(
        {"sources": [{"name": "items", "url": "feeds/*.md"}], "state": {"path": "s/state.db"}},
        tmp_path / "config.toml",
    )
    assert config.state_path == tmp_path.resolve() / "s" / "state.db"
    assert config.sources[0].kind == "glob"
    assert config.sources[0].location == str(tmp_path.resolve() / "feeds" / "*.md")


@pytest.mark.parametrize(
    ("value", "problem"),
    [(0, "state.keep_days: must be at least 1, not 0"), ("90", "state.keep_days: must be an integer")],
)
def test_state_keep_days_defaults_to_90_and_is_validated(tmp_path: Path, value: object, problem: str) -> None:
    (tmp_path / "a.xml").write_text("<rss/>")
    sources = [{"name": "a", "url": "a.xml"}]
    assert parse_config({"sources": sources}, tmp_path / "config.toml").keep_days == 90
    assert load_config(REPO / "config.toml").keep_days == 90
    config = parse_config({"sources": sources, "state": {"keep_days": 30}}, tmp_path / "config.toml")
    assert config.keep_days == 30
    with pytest.raises(ConfigError) as caught:
        parse_config({"sources": sources, "state": {"keep_days": value}}, tmp_path / "config.toml")
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_a_config_without_sources_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({}, tmp_path / "config.toml")
    assert any(p.startswith("sources:") for p in caught.value.problems)


def test_catch_up_hours_may_be_zero_but_not_negative(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_text("<rss/>")
    base = {"sources": [{"name": "a", "url": "a.xml"}]}
    assert (
        parse_config({**base, "schedule": {"catch_up_hours": 0}}, tmp_path / "c.toml").schedule.catch_up_hours
        == 0
    )
    with pytest.raises(ConfigError) as caught:
        parse_config({**base, "schedule": {"catch_up_hours": -1}}, tmp_path / "c.toml")
    assert caught.value.problems == (
        "schedule.catch_up_hours: must be at least 0, not -1 (allowed: at least 0, at most 8760)",
    )
