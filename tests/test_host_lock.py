"""With the state in PostgreSQL, `digest schedule` and `digest run` also take an advisory lock there,
so two hosts (each with its own `[state] lock` file) cannot both run the weekly send."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from send_support import write_config

from digest.config import Config, load_config
from digest.pipeline.host_lock import RUN_LOCK, host_lock
from digest.state.store import open_store

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)


def _host(root: Path, url: str, host: str) -> Config:
    """The config of one "host": the shared PostgreSQL state, its own lock file."""
    write_config(root, smtp="")
    text = (root / "config.toml").read_text(encoding="utf-8")
    path = root / f"{host}.toml"
    path.write_text(text + f'\n[state]\nurl = "{url}"\nlock = ".digest/{host}.lock"\n', encoding="utf-8")
    return load_config(path)


def _digest(config: Config, *args: str) -> list[str]:
    return [sys.executable, "-m", "digest", *args, "--config", str(config.path)]


def test_two_hosts_cannot_both_run_the_schedule(tmp_path: Path, postgres_db: str) -> None:
    one, two = _host(tmp_path, postgres_db, "one"), _host(tmp_path, postgres_db, "two")
    assert one.lock_path != two.lock_path  # the flocks alone would not keep them apart
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(
        _digest(one, "schedule"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        with open_store(one) as db:
            for _ in range(600):  # bounded: at most a minute until the first holds the lock
                if db.settings.get_setting("lock holder: digest schedule"):
                    break
                assert first.poll() is None, first.stderr.read() if first.stderr else ""
                time.sleep(0.1)  # a poll, bounded above; it decides nothing
            else:
                pytest.fail("the first digest schedule never took the lock")
        second = subprocess.run(
            _digest(two, "schedule"), env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert second.returncode == 7, second.stderr
        message = " ".join(second.stderr.split())
        assert "another host holds the schedule lock in PostgreSQL" in message
        assert f"pid {first.pid}" in message
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(60)
    # released on exit: the lock can be taken again
    with open_store(one) as db, host_lock(db, "digest schedule", now=NOW, what="schedule"):
        assert db.settings.get_setting("lock holder: digest schedule")


def test_digest_run_is_refused_while_another_host_runs(tmp_path: Path, postgres_db: str) -> None:
    one, two = _host(tmp_path, postgres_db, "one"), _host(tmp_path, postgres_db, "two")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open_store(one) as db, host_lock(db, RUN_LOCK, now=NOW, what="run"):
        other = subprocess.run(
            _digest(two, "run"), env=env, capture_output=True, text=True, timeout=120, check=False
        )
    assert other.returncode == 7, other.stderr
    message = " ".join(other.stderr.split())
    assert "another host holds the run lock in PostgreSQL" in message
    assert f"pid {os.getpid()}" in message
