"""The SQLite state store: feed cache, entries, issues, subscribers, the send ledger, approvals, runs.

One database file (`[state] path`). `open_state` creates it and applies migrations. Each part of the
store has its own module (`state.feeds`, `state.issues`, ...) of plain functions over a
`sqlite3.Connection`; datetimes are stored as ISO 8601 UTC strings.

The connection `open_state` returns is a `StateConnection` (`state.connection`): every SQLite error
raised through it, also while rows are fetched and also for SQL that still runs outside this package,
leaves as a `StateError` (exit 6) naming the file and what to do.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from digest.errors import ConfigError, StateError
from digest.state.connection import StateConnection, state_error
from digest.state.schema import MIGRATIONS

__all__ = ["StateConnection", "from_iso", "open_state", "to_iso", "transaction", "writable"]


DEFAULT_BUSY_TIMEOUT_MS = 30_000
BUSY_TIMEOUT_ENV = "DIGEST_STATE_BUSY_TIMEOUT_MS"
PRIVATE_FILE = 0o600  # state.db and its -wal/-shm (SQLite gives those the database file's mode)
PRIVATE_FOLDER = 0o700


def busy_timeout_ms() -> int:
    """How long a statement waits for another process's lock: $DIGEST_STATE_BUSY_TIMEOUT_MS, else 30 s.

    Raises:
        ConfigError: the variable is not a whole number of milliseconds from 0 to 3,600,000.
    """
    raw = os.environ.get(BUSY_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_BUSY_TIMEOUT_MS
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 3_600_000:
        raise ConfigError(
            f"{BUSY_TIMEOUT_ENV}={raw!r}: not a number of milliseconds from 0 to 3600000",
            hint=f"unset it to wait {DEFAULT_BUSY_TIMEOUT_MS // 1000} s for a locked state database",
        )
    return value


def _connect(
    target: str | Path, path: Path, *, uri: bool, timeout_ms: int, read_only: bool
) -> StateConnection:
    db = sqlite3.connect(
        target,
        timeout=timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
        factory=StateConnection,
        uri=uri,
    )
    assert isinstance(db, StateConnection)  # noqa: S101 - the factory above
    db.state_path, db.busy_timeout_ms, db.read_only = path, timeout_ms, read_only
    db.row_factory = sqlite3.Row
    return db


def _check_not_empty(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    except OSError as e:
        raise StateError(f"{path}: cannot read the state database: {e.strerror}") from e
    if size == 0:
        raise StateError(
            f"{path}: the state database is empty (0 bytes): it was truncated or replaced",
            hint="restore it from your backup (it holds the subscribers, the editions and the send ledger);"
            " only if you mean to start again from nothing, delete the empty file",
        )


def _create_private(path: Path, timeout_ms: int) -> None:
    """Create the state folder (0700) and a new, migrated database file (0600), whatever the umask.

    The database is made under a temporary name and linked into place, so `path` never exists as an
    empty file (which `open_state` refuses) and two processes starting at once end up with one database.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
        path.parent.chmod(PRIVATE_FOLDER)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)  # mode 0600
    os.fchmod(fd, PRIVATE_FILE)
    os.close(fd)
    tmp = Path(name)
    try:
        db = _connect(tmp, path, uri=False, timeout_ms=timeout_ms, read_only=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            _migrate(db)
        finally:
            db.close()
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process created it first: use theirs
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                tmp.replace(path)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)


def writable(path: Path) -> bool:
    """Whether this process may write the state file (or create it and its -wal/-shm in its folder)."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    return not path.exists() or os.access(path, os.R_OK | os.W_OK)


def open_state(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) the state database and bring its schema up to date.

    New files are private: the folder 0700, `state.db` and its -wal/-shm 0600. Every SQLite error on
    the returned connection (also while fetching rows) is raised as StateError naming the file. With
    `read_only`, the file is opened without writing anything (`mode=ro`, or `immutable` when its
    -wal/-shm cannot be created) and no migration is attempted.

    Raises:
        StateError: the file cannot be created or opened, is empty, damaged or locked, is not a digest
            state database, is newer than this version of digest understands, or (read-only) is missing
            or needs a migration.
    """
    timeout_ms = busy_timeout_ms()
    if read_only:
        return _open_read_only(path, timeout_ms)
    _check_not_empty(path)
    try:
        if not path.exists():
            _create_private(path, timeout_ms)
        db = _connect(path, path, uri=False, timeout_ms=timeout_ms, read_only=False)
    except sqlite3.Error as e:
        raise state_error(e, path, busy_timeout_ms=timeout_ms) from e
    except OSError as e:
        raise StateError(
            f"{path}: cannot create the state database: {e.strerror}",
            hint="check the [state] path in config and that this user may write its folder",
        ) from e
    try:
        _check_not_empty(path)  # a file truncated between our check and the connect
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        _migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def _open_read_only(path: Path, timeout_ms: int) -> sqlite3.Connection:
    if not path.exists():
        raise StateError(
            f"{path}: there is no state database yet, and it cannot be created here (read-only)",
            hint="run digest fetch or digest build once as a user who may write the folder",
        )
    _check_not_empty(path)
    wal, shm = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))
    # Without -wal/-shm and without a writable folder, SQLite can read a WAL database only as immutable.
    immutable = not (wal.exists() and shm.exists())
    target = f"{path.resolve().as_uri()}?{'immutable=1' if immutable else 'mode=ro'}"
    try:
        db = _connect(target, path, uri=True, timeout_ms=timeout_ms, read_only=True)
    except sqlite3.Error as e:
        raise state_error(e, path, busy_timeout_ms=timeout_ms) from e
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        _check_version(version)
        _check_current(path, version)
    except BaseException:
        db.close()
        raise
    return db


def _check_current(path: Path, version: int) -> None:
    if version < len(MIGRATIONS):
        raise StateError(
            f"{path}: the state database needs an upgrade (schema {version}, this digest uses"
            f" {len(MIGRATIONS)}), and it is read-only here",
            hint="run digest fetch once as a user who may write the file and its folder; it upgrades it",
        )


def _check_version(version: int) -> None:
    if version > len(MIGRATIONS):
        raise StateError(
            f"state schema version {version} is newer than this digest understands ({len(MIGRATIONS)})",
            hint="upgrade digest, or point [state] path at another file",
        )


def _migrate(db: sqlite3.Connection) -> None:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    _check_version(version)
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        with transaction(db):
            for statement in script.split(";\n"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")


@contextmanager
def transaction(db: sqlite3.Connection, *, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """Run a block in one transaction (BEGIN IMMEDIATE by default), committing or rolling back."""
    db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield db
    except BaseException:
        if db.in_transaction:  # SQLite rolls back by itself after some errors (a full disk, ...)
            with suppress(sqlite3.Error, StateError):  # the error that got us here is the one to report
                db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def to_iso(value: datetime) -> str:
    """An aware datetime as an ISO 8601 UTC string (the storage format of every time in state)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to state")
    return value.astimezone(UTC).isoformat()


def from_iso(value: str) -> datetime:
    """Read back a time written by `to_iso`."""
    return datetime.fromisoformat(value).astimezone(UTC)
