"""Personal data is private on disk whatever the umask: state.db and its -wal/-shm, the outbox's .eml
files and the build's email.eml are 0600, the folders digest creates for them 0700."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from run_site import cli_env, digest_command, make_site

from digest.state.store import open_store

AS_OF = datetime(2025, 5, 9, 7, tzinfo=UTC)
UMASKS = (0o022, 0o000)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.parametrize("value", UMASKS, ids=lambda v: f"umask{v:03o}")
def test_a_new_state_database_and_its_wal_and_shm_are_0600(tmp_path: Path, value: int) -> None:
    path = tmp_path / "site" / ".digest" / "state.db"
    with umask(value):
        db = open_store(path)
        try:
            db.subscribers.upsert_subscriber("ann@example.org", name="Ann", at=AS_OF)
            wal, shm = path.with_name("state.db-wal"), path.with_name("state.db-shm")
            assert wal.exists() and shm.exists()  # while the connection is open
            assert (mode(path), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
        finally:
            db.close()
    assert mode(path.parent) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.db"]  # no temporary file left


@pytest.mark.parametrize("value", UMASKS, ids=lambda v: f"umask{v:03o}")
def test_the_outbox_messages_and_the_builds_email_eml_are_0600(tmp_path: Path, value: int) -> None:
    config = make_site(tmp_path / "site", [("Midwives celebrated", datetime(2025, 5, 5, 9, tzinfo=UTC))])
    for args in (("build", "--as-of", AS_OF.isoformat()), ("send",)):
        result = subprocess.run(
            digest_command(*args, "--config", str(config.path)),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=cli_env(),
            cwd=config.root,
            umask=value,
        )
        assert result.returncode == 0, result.stderr
    outbox = config.delivery.outbox
    messages = sorted((outbox / "new").iterdir())
    assert len(messages) == 3
    assert {mode(m) for m in messages} == {0o600}
    assert {mode(outbox / sub) for sub in ("tmp", "new", "cur")} | {mode(outbox)} == {0o700}
    built = next(config.root.rglob("email.eml"))
    assert mode(built) == 0o600
    assert mode(built.with_name("web.html")) == 0o644  # the public page stays readable by a web server
