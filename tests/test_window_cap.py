"""A long pause does not send a year in one email: `[digest] max_window_days` caps the window, and
build/run/preview say what was left out and how to include it. The clock is injected (`now`)."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from run_site import delivered, make_site
from web_support import preview_served

from digest.cli import main
from digest.compose import cap_window
from digest.config import Config, load_config
from digest.models import Window
from digest.pipeline.build import build_issue
from digest.pipeline.run import run_once
from digest.pipeline.send import send_issue
from digest.state.store import open_store
from digest.web.workspace import Workspace

FIRST = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)  # the last issue sent before the pause
LATER = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # a plain run after eighteen months
ITEMS = [
    ("Sent before the pause", datetime(2025, 5, 5, 9, tzinfo=UTC)),
    ("June story", datetime(2025, 6, 1, 9, tzinfo=UTC)),
    ("September story", datetime(2025, 9, 15, 9, tzinfo=UTC)),
    ("December story", datetime(2025, 12, 18, 9, tzinfo=UTC)),
    ("Recent story", datetime(2026, 11, 20, 9, tzinfo=UTC)),
]


def _site(root: Path, max_window_days: int | None = None) -> Config:
    config = make_site(root, ITEMS)
    if max_window_days is not None:
        text = config.path.read_text(encoding="utf-8")
        text = text.replace(
            'title = "Test weekly"', f'title = "Test weekly"\nmax_window_days = {max_window_days}'
        )
        config.path.write_text(text, encoding="utf-8")
        config = load_config(config.path)
    return config


def _send_first_issue(config: Config) -> None:
    db = open_store(config)
    try:
        outcome = build_issue(config, db, now=FIRST)
        assert outcome.built is not None
        assert [i.entry.title for i in outcome.built.issue.entries] == ["Sent before the pause"]
        report = send_issue(config, db, now=FIRST)
        assert report.completed
    finally:
        db.close()


def _titles(outcome: object) -> list[str]:
    built = getattr(outcome, "built", None)
    assert built is not None
    return sorted(i.entry.title for i in built.issue.entries)


def test_a_build_after_a_long_pause_covers_only_max_window_days_and_says_what_was_left_out(
    tmp_path: Path,
) -> None:
    config = _site(tmp_path / "site")
    assert config.digest.max_window_days == 31  # the default
    _send_first_issue(config)
    db = open_store(config)
    try:
        outcome = build_issue(config, db, now=LATER)
    finally:
        db.close()
    assert _titles(outcome) == ["Recent story"]
    assert outcome.built is not None
    window = outcome.built.issue.window
    assert (window.start, window.end) == (LATER - timedelta(days=31), LATER)
    note = next(n for n in outcome.notes if "left out" in n)
    assert note.startswith("3 entries from 01 Jun 2025 to 18 Dec 2025 left out:")
    assert "max_window_days = 31" in note and "the last sent issue ended on 09 May 2025" in note
    assert "raise max_window_days" in note
    as_of = re.search(r"--as-of (\S+)", note)
    assert as_of is not None and as_of[1] == "2025-06-09T17:00:00+01:00"

    # Following the hint makes an issue of the earlier period, which takes the first left-out entry.
    db = open_store(config)
    try:
        earlier = build_issue(config, db, now=LATER, as_of=datetime.fromisoformat(as_of[1]))
    finally:
        db.close()
    assert _titles(earlier) == ["June story"]


def test_raising_max_window_days_includes_everything_since_the_last_issue(tmp_path: Path) -> None:
    config = _site(tmp_path / "site", max_window_days=1000)
    _send_first_issue(config)
    db = open_store(config)
    try:
        outcome = build_issue(config, db, now=LATER)
    finally:
        db.close()
    assert _titles(outcome) == ["December story", "June story", "Recent story", "September story"]
    assert not [n for n in outcome.notes if "left out" in n]


def test_digest_build_prints_the_left_out_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _site(tmp_path / "site")
    _send_first_issue(config)
    code = main(["build", "--config", str(config.path), "--as-of", "2026-11-30T12:00:00+00:00"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "note: 3 entries from 01 Jun 2025 to 18 Dec 2025 left out" in err


def test_a_first_issue_is_capped_too_when_lookback_days_is_longer(tmp_path: Path) -> None:
    config = _site(tmp_path / "site", max_window_days=10)
    text = config.path.read_text(encoding="utf-8").replace(
        "max_window_days = 10", "max_window_days = 10\nlookback_days = 35"
    )
    config.path.write_text(text, encoding="utf-8")
    config = load_config(config.path)
    db = open_store(config)
    try:
        outcome = build_issue(config, db, now=datetime(2025, 6, 5, 12, tzinfo=UTC))
    finally:
        db.close()
    assert _titles(outcome) == ["June story"]
    note = next(n for n in outcome.notes if "left out" in n)
    assert note.startswith("1 entry of 05 May 2025 left out")
    assert "[digest] lookback_days starts on 01 May 2025" in note


def test_a_run_after_a_long_pause_sends_only_the_capped_window_and_logs_the_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _site(tmp_path / "site")
    first = run_once(config, now=FIRST)
    assert first.exit_code == 0
    with caplog.at_level(logging.INFO):
        later = run_once(config, now=LATER)
    assert later.exit_code == 0 and later.sent == 3
    assert any("3 entries from 01 Jun 2025 to 18 Dec 2025 left out" in r.getMessage() for r in caplog.records)
    later_copies = [m for m in delivered(config) if "Recent story" in _plain(m)]
    assert len(later_copies) == 3
    for message in later_copies:
        assert "June story" not in _plain(message) and "December story" not in _plain(message)


def _plain(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def test_cap_window_keeps_a_short_window_and_cuts_a_long_one() -> None:
    end = LATER
    short = Window(end - timedelta(days=7), end)
    assert cap_window(short, 31) == (short, None)
    exact = Window(end - timedelta(days=31), end)
    assert cap_window(exact, 31) == (exact, None)
    long = Window(FIRST, end)
    capped, cut = cap_window(long, 31)
    assert capped == Window(end - timedelta(days=31), end)
    assert cut == Window(FIRST, end - timedelta(days=31))


def test_the_preview_says_what_was_left_out(tmp_path: Path) -> None:
    config = _site(tmp_path / "site")
    _send_first_issue(config)
    with preview_served(config.path, offline=True, as_of=LATER) as (base, workspace):
        assert isinstance(workspace, Workspace)
        assert any(
            "3 entries from 01 Jun 2025 to 18 Dec 2025 left out" in n for n in workspace.snapshot.notes
        )
        page = httpx.get(f"{base}/").text
    assert "3 entries from 01 Jun 2025 to 18 Dec 2025 left out" in page
    assert "raise max_window_days" in page
