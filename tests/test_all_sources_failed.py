"""When every source fails, build and run fail loudly (exit 3) instead of looking like a quiet week."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from feed_server import write_config

from digest.cli import main
from digest.config import load_config
from digest.state.store import open_store


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    port = _closed_port()  # nothing listens once the socket is closed: connections are refused
    (tmp_path / "page.xml").write_text("<html><body>not a feed</body></html>")
    return write_config(
        tmp_path,
        [
            {"name": "down", "url": f"http://127.0.0.1:{port}/feed.xml", "category": "News"},
            {"name": "web page", "url": "page.xml", "category": "Blog"},
        ],
        retries=0,
        timeout=2,
    )


def test_build_exits_3_naming_every_failed_source(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--config", str(broken), "--as-of", "2025-05-09T17:00:00+01:00"]) == 3
    err = capsys.readouterr().err
    assert "every source failed, so no issue was built" in err
    assert "down:" in err
    assert "web page:" in err
    assert "nothing new" not in err


def test_run_exits_3_and_records_the_failure(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(broken), "--as-of", "2025-05-09T17:00:00+01:00"]) == 3
    assert "every source failed" in capsys.readouterr().err
    db = open_store(load_config(broken).state_path)
    [run] = db.runs.recent_runs()
    assert run.outcome is not None
    assert run.outcome.startswith("failed: every source failed")


def test_offline_build_still_uses_what_state_holds(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--offline is the explicit way to build from kept entries; it never fails for fetch reasons."""
    assert main(["build", "--config", str(broken), "--offline", "--as-of", "2025-05-09T17:00:00+01:00"]) == 0
    assert "nothing new since" in capsys.readouterr().err
