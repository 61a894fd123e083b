"""State faults end every command with StateError (exit 6) and one line naming the file: another
process holding the write lock, a dropped table, a damaged page, a disk that takes no more bytes and an
empty state.db. Each fault is made for real on a copy of a small site, and each command runs as a process.
`digest status` reads a state folder it may not write."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from run_site import cli_env, digest_command, make_site
from state_support import sql

from digest.config import Config, load_config
from digest.errors import StateError
from digest.pipeline.build import build_issue
from digest.state.schema import MIGRATIONS
from digest.state.store import open_store

AS_OF = datetime(2025, 5, 9, 7, tzinfo=UTC)
FAST_BUSY = {"DIGEST_STATE_BUSY_TIMEOUT_MS": "200"}

COMMANDS: dict[str, tuple[str, ...]] = {
    "send": ("send",),
    "run": ("run",),
    "subscribers add": ("subscribers", "add", "dee@example.org"),
    "build": ("build", "--as-of", AS_OF.isoformat()),
    "fetch": ("fetch",),
    "status": ("status",),
}
WRITERS = tuple(name for name in COMMANDS if name != "status")
# A table each command needs.
NEEDS = {
    "send": "send_ledger",
    "run": "runs",
    "subscribers add": "subscribers",
    "build": "entries",
    "fetch": "feeds",
    "status": "runs",
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site with three subscribers and one built, unsent issue (copied by each test)."""
    root = tmp_path_factory.mktemp("template") / "site"
    config = make_site(root, [("Midwives celebrated", datetime(2025, 5, 5, 9, tzinfo=UTC))])
    db = open_store(config)
    try:
        assert build_issue(config, db, now=AS_OF, as_of=AS_OF).built is not None
    finally:
        db.close()
    return root


def copy_site(template: Path, where: Path) -> Config:
    shutil.copytree(template, where)
    return load_config(where / "config.toml")


def digest(
    config: Config,
    args: tuple[str, ...],
    *,
    preexec: Callable[[], None] | None = None,
    prefix: tuple[str, ...] = (),
    **env: str,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *digest_command(*args, "--config", str(config.path))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=cli_env(**FAST_BUSY, **env),
        cwd=config.root,
        preexec_fn=preexec,
    )


def assert_state_error(result: subprocess.CompletedProcess[str], path: Path, *words: str) -> str:
    """Exit 6, no traceback, and exactly one `error:` line, naming the state file and `words`."""
    assert result.returncode == 6, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "this is a bug" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert str(path) in errors[0], errors[0]
    for word in words:
        assert word in errors[0], errors[0]
    assert any(line.startswith("hint:") for line in result.stderr.splitlines()), result.stderr
    return errors[0]


HOLD = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "exclusive":
    db.execute("PRAGMA locking_mode=EXCLUSIVE")
    db.execute("BEGIN EXCLUSIVE")
    db.execute("UPDATE settings SET value = value")
else:
    db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


@contextmanager
def held(path: Path, mode: str) -> Iterator[None]:
    """Another process holds the state's write lock (`immediate`) or every lock (`exclusive`) until the
    block ends: for as long as the command under test runs, whatever the busy timeout."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0


@pytest.mark.parametrize("command", WRITERS)
def test_a_write_lock_held_by_another_process_is_exit_6(template: Path, tmp_path: Path, command: str) -> None:
    config = copy_site(template, tmp_path / "site")
    with held(config.state_path, "immediate"):
        result = digest(config, COMMANDS[command])
    line = assert_state_error(result, config.state_path, "locked by another process", "0.2 s")
    assert "OperationalError" not in line


def test_status_reads_while_another_process_writes_and_is_exit_6_when_it_locks_everything(
    template: Path, tmp_path: Path
) -> None:
    config = copy_site(template, tmp_path / "site")
    with held(config.state_path, "immediate"):
        reading = digest(config, COMMANDS["status"])
    assert reading.returncode == 0, reading.stderr
    assert "2025-W19" in reading.stdout
    with held(config.state_path, "exclusive"):
        result = digest(config, COMMANDS["status"])
    assert_state_error(result, config.state_path, "locked by another process")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_dropped_table_is_exit_6(template: Path, tmp_path: Path, command: str) -> None:
    config = copy_site(template, tmp_path / "site")
    db = sqlite3.connect(config.state_path)
    db.execute(f"DROP TABLE {NEEDS[command]}")
    db.commit()
    db.close()
    result = digest(config, COMMANDS[command])
    assert_state_error(result, config.state_path, f"no such table: {NEEDS[command]}")


def _damage(path: Path) -> None:
    """Overwrite every page but the first (the header and the schema's root) with garbage."""
    assert not path.with_name(path.name + "-wal").exists()
    page = 4096
    size = path.stat().st_size
    assert size > 3 * page
    with path.open("r+b") as handle:
        for offset in range(page, size, page):
            handle.seek(offset)
            handle.write(bytes([0xA5, 0x5A]) * (page // 2))


@pytest.mark.parametrize("command", COMMANDS)
def test_a_malformed_page_is_exit_6(template: Path, tmp_path: Path, command: str) -> None:
    config = copy_site(template, tmp_path / "site")
    _damage(config.state_path)
    result = digest(config, COMMANDS[command])
    line = assert_state_error(result, config.state_path, "damaged")
    assert "malformed" in line


@pytest.mark.parametrize("command", COMMANDS)
def test_an_empty_state_file_is_exit_6_and_left_alone(template: Path, tmp_path: Path, command: str) -> None:
    config = copy_site(template, tmp_path / "site")
    config.state_path.write_bytes(b"")
    result = digest(config, COMMANDS[command])
    assert_state_error(result, config.state_path, "empty (0 bytes)")
    assert config.state_path.stat().st_size == 0  # not silently made a new database


def _no_more_bytes() -> None:
    """In the child: the file system takes no more bytes (writes beyond 0 bytes fail with EFBIG)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


@pytest.mark.parametrize("command", WRITERS)
def test_a_disk_that_takes_no_more_bytes_is_exit_6(template: Path, tmp_path: Path, command: str) -> None:
    """RLIMIT_FSIZE makes every write of the child fail as on a full disk (SQLite reports it as an I/O
    error: it says "full" only for ENOSPC, which the SQLITE_FULL test below makes)."""
    config = copy_site(template, tmp_path / "site")
    before = config.state_path.read_bytes()
    result = digest(config, COMMANDS[command], preexec=_no_more_bytes)
    assert_state_error(result, config.state_path, "disk I/O error")
    assert config.state_path.read_bytes() == before


def test_sqlite_full_says_the_disk_is_full(template: Path, tmp_path: Path) -> None:
    """SQLITE_FULL (here from a page cap on the connection: the same error a full disk gives)."""
    config = copy_site(template, tmp_path / "site")
    db = open_store(config)
    try:
        pages = sql(db).execute("PRAGMA page_count").fetchone()[0]
        sql(db).execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StateError) as caught:
            for i in range(2000):
                db.subscribers.upsert_subscriber(f"p{i}@example.org", name="x" * 500, at=AS_OF)
    finally:
        db.close()
    assert "the disk is full" in caught.value.message
    assert str(config.state_path) in caught.value.message
    assert caught.value.hint and "free space" in caught.value.hint


def test_errors_while_iterating_rows_are_state_errors(tmp_path: Path) -> None:
    """An error met while fetching later rows (not at execute) is a StateError too: iteration, fetchone,
    fetchmany and fetchall all go through the boundary."""
    db = open_store(tmp_path / "state.db")
    # Row 1 is abs(-2**62); row 2 is abs(-2**63), which SQLite refuses ("integer overflow").
    query = "WITH t(n) AS (VALUES (1), (2)) SELECT abs(n * -4611686018427387904) FROM t"
    try:
        fetches: list[Callable[[sqlite3.Cursor], object]] = [
            list,
            lambda c: (c.fetchone(), c.fetchone()),
            lambda c: c.fetchmany(5),
            lambda c: c.fetchall(),
        ]
        for fetch in fetches:
            cursor = sql(db).execute(query)  # the first row is fine: execute succeeds
            with pytest.raises(StateError, match="integer overflow") as caught:
                fetch(cursor)
            assert str(tmp_path / "state.db") in caught.value.message
    finally:
        db.close()


def test_a_constraint_violation_is_not_a_state_error(tmp_path: Path) -> None:
    """Integrity errors stay answers for the state modules (a slot that already has a run)."""
    db = open_store(tmp_path / "state.db")
    try:
        with pytest.raises(sqlite3.IntegrityError):
            sql(db).execute("INSERT INTO settings (key, value) VALUES ('a', NULL)")
    finally:
        db.close()


def test_the_busy_timeout_comes_from_the_environment_and_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_STATE_BUSY_TIMEOUT_MS", "1234")
    db = open_store(tmp_path / "state.db")
    try:
        assert sql(db).execute("PRAGMA busy_timeout").fetchone()[0] == 1234
    finally:
        db.close()
    monkeypatch.setenv("DIGEST_STATE_BUSY_TIMEOUT_MS", "soon")
    with pytest.raises(Exception, match="DIGEST_STATE_BUSY_TIMEOUT_MS='soon'"):
        open_store(tmp_path / "state.db")
    monkeypatch.delenv("DIGEST_STATE_BUSY_TIMEOUT_MS")
    db = open_store(tmp_path / "state.db")
    try:
        assert sql(db).execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    finally:
        db.close()


# ---- digest status with a state folder it cannot write --------------------------------------------


def _read_only_site(
    root: Path, template: Path, *, schema: int | None = None
) -> tuple[Config, tuple[str, ...]]:
    """A copy of the site whose state folder the command cannot write, and the argv prefix that runs it so.

    Not root: the folder and file lose their write bits. Root (CI) ignores those, so the command runs in
    its own mount namespace where the state folder is a read-only bind mount (EROFS, which stops root
    too); when this kernel or container does not allow that, the test is skipped and says why.
    """
    config = copy_site(template, root / "site")
    if schema is not None:
        db = sqlite3.connect(config.state_path)
        db.execute(f"PRAGMA user_version = {schema}")
        db.close()
    folder = config.state_path.parent
    for leftover in folder.iterdir():
        if leftover != config.state_path:
            leftover.unlink()
    if os.geteuid() != 0:
        config.state_path.chmod(0o400)
        folder.chmod(0o500)
        return config, ()
    prefix = ("unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder))
    probe = subprocess.run(
        [*prefix, "sh", "-c", f'touch "{folder}/probe" 2>/dev/null && echo writable || echo read-only'],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if probe.stdout.strip() != "read-only":
        pytest.skip(f"as root, a read-only bind mount is needed and failed here: {probe.stderr.strip()}")
    return config, prefix


def _cleanup(config: Config) -> None:
    config.state_path.parent.chmod(0o700)


def test_status_works_with_a_read_only_state_folder(template: Path, tmp_path: Path) -> None:
    config, prefix = _read_only_site(tmp_path, template)
    try:
        before = sorted(p.name for p in config.state_path.parent.iterdir())
        result = digest(config, ("status", "--json"), prefix=prefix)
        assert result.returncode == 0, result.stderr
        assert '"id": "2025-W19"' in result.stdout
        assert sorted(p.name for p in config.state_path.parent.iterdir()) == before  # no -wal, no -shm
        # The writers fail with a clear StateError, not a traceback.
        add = digest(config, COMMANDS["subscribers add"], prefix=prefix)
        assert_state_error(add, config.state_path)
    finally:
        _cleanup(config)


def test_status_on_a_read_only_state_that_needs_a_migration_says_so(template: Path, tmp_path: Path) -> None:
    config, prefix = _read_only_site(tmp_path, template, schema=len(MIGRATIONS) - 1)
    try:
        result = digest(config, ("status",), prefix=prefix)
        assert_state_error(result, config.state_path, "needs an upgrade", "read-only")
    finally:
        _cleanup(config)


def test_read_only_open_does_not_migrate_or_write(template: Path, tmp_path: Path) -> None:
    """The read-only mode itself (whoever runs the test): nothing is created, nothing written."""
    config = copy_site(template, tmp_path / "site")
    before = config.state_path.read_bytes()
    db = open_store(config.state_path, read_only=True)
    try:
        assert sql(db).execute("SELECT count(*) FROM subscribers").fetchone()[0] == 3
        with pytest.raises(StateError, match="cannot be written"):
            sql(db).execute("DELETE FROM subscribers")
    finally:
        db.close()
    assert config.state_path.read_bytes() == before
    assert not config.state_path.with_name("state.db-wal").exists()
    with pytest.raises(StateError, match="no state database yet"):
        open_store(tmp_path / "none" / "state.db", read_only=True)
