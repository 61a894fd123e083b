"""The state boundary: a `sqlite3.Connection` whose every failure leaves as `StateError`.

`open_state` connects with `StateConnection` as the factory, so every statement run through it (and
every row fetched from its cursors, where a damaged page may only show up) turns an SQLite fault into
a `StateError` naming the file and what to do: locked by another process, disk full, damaged file,
a table missing, read-only. Code outside `digest/state/` that still runs SQL gets the same guarantee
because it only ever holds such a connection.

Constraint violations (`sqlite3.IntegrityError`) are left as they are: the state modules catch them
as answers ("this slot already has a run"). Misuse (`ProgrammingError`, `InterfaceError`: a closed
connection, a wrong number of parameters) is a bug and stays one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from digest.errors import StateError

__all__ = ["StateConnection", "StateCursor", "state_error"]

_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)
Parameters = Any  # what sqlite3 accepts: a sequence or a mapping of values

# Primary SQLite result codes (https://sqlite.org/rescode.html).
_ERROR, _READONLY_OR_PERM, _BUSY, _LOCKED = 1, 8, 5, 6
_CORRUPT, _FULL, _CANTOPEN, _IOERR, _NOTADB = 11, 13, 14, 10, 26


def state_error(error: sqlite3.Error, path: Path | str, *, busy_timeout_ms: int = 0) -> StateError:
    """The StateError telling the user what `error` means for the state file `path` and what to do."""
    code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(error)
    folder = Path(path).parent
    if code in (_BUSY, _LOCKED):
        waited = f" (waited {busy_timeout_ms / 1000:g} s)" if busy_timeout_ms else ""
        return StateError(
            f"{path}: the state database is locked by another process{waited}",
            hint=f"another digest command (run, send, schedule, preview, serve) or a sqlite3 shell holds it;"
            f" `fuser {path}` shows which process; let it finish, then run the command again",
        )
    if code == _FULL:
        return StateError(
            f"{path}: the disk is full: the state database cannot be written",
            hint=f"free space on the disk that holds {folder} (df -h {folder}), then run the command again;"
            " the change that failed was rolled back",
        )
    if code in (_CORRUPT, _NOTADB):
        what = "is not a SQLite database" if code == _NOTADB else "is damaged (a malformed page)"
        return StateError(
            f"{path}: the state database {what}: {text}",
            hint="stop digest and restore the file from your backup (`sqlite3 FILE .recover` may save what is"
            " readable); do not delete it: it holds the subscribers, the editions and the send ledger",
        )
    if code == _READONLY_OR_PERM:
        return StateError(
            f"{path}: the state database cannot be written ({text})",
            hint=f"run digest as the user who owns {path}, or make the file and {folder} writable",
        )
    if code == _IOERR:
        return StateError(
            f"{path}: disk I/O error on the state database ({text})",
            hint=f"check the disk that holds {folder} (free space: df -h; errors: dmesg), then run the"
            " command again; if the disk failed, restore the file from your backup",
        )
    if code == _CANTOPEN:
        return StateError(
            f"{path}: cannot open the state database or its -wal/-shm files ({text})",
            hint=f"check that {folder} exists and this user may read and write it",
        )
    if code == _ERROR and ("no such table" in text or "no such column" in text):
        return StateError(
            f"{path}: the state database is missing part of its schema ({text})",
            hint="the file was changed outside digest (a table dropped, or another file put in its place);"
            " restore it from your backup",
        )
    return StateError(
        f"{path}: state database error: {text}",
        hint=f"check the file with `sqlite3 {path} 'PRAGMA integrity_check'`; restore it from your backup"
        " if it is damaged",
    )


class StateCursor(sqlite3.Cursor):
    """A cursor whose statements and fetches raise StateError instead of SQLite's errors."""

    def _fail(self, error: sqlite3.Error) -> StateError:
        connection = self.connection
        if isinstance(connection, StateConnection):
            return connection.fail(error)
        return state_error(error, "state database")  # pragma: no cover - only StateConnection makes these

    def execute(self, sql: str, parameters: Parameters = (), /) -> StateCursor:
        try:
            super().execute(sql, parameters)
        except _BUGS:
            raise
        except sqlite3.Error as e:
            raise self._fail(e) from e
        return self

    def executemany(self, sql: str, seq_of_parameters: Iterable[Parameters], /) -> StateCursor:
        try:
            super().executemany(sql, seq_of_parameters)
        except _BUGS:
            raise
        except sqlite3.Error as e:
            raise self._fail(e) from e
        return self

    def executescript(self, sql_script: str, /) -> StateCursor:
        try:
            super().executescript(sql_script)
        except _BUGS:
            raise
        except sqlite3.Error as e:
            raise self._fail(e) from e
        return self

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except _BUGS:
            raise
        except sqlite3.Error as e:
            raise self._fail(e) from e

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size)
        except _BUGS:
            raise
        except sqlite3.Error as e:
            raise self._fail(e) from e

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except _BUGS:
            raise
        except sqlite3.Error as e:
            raise self._fail(e) from e

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except _BUGS:
            raise
        except sqlite3.Error as e:
            raise self._fail(e) from e


class StateConnection(sqlite3.Connection):
    """The connection `open_state` returns: SQLite faults become StateError naming `state_path`."""

    state_path: Path
    busy_timeout_ms: int
    read_only: bool

    def fail(self, error: sqlite3.Error) -> StateError:
        return state_error(
            error,
            getattr(self, "state_path", "state database"),
            busy_timeout_ms=getattr(self, "busy_timeout_ms", 0),
        )

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or StateCursor)

    def execute(self, sql: str, parameters: Parameters = (), /) -> StateCursor:
        cursor: StateCursor = self.cursor()
        return cursor.execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Parameters], /) -> StateCursor:
        cursor: StateCursor = self.cursor()
        return cursor.executemany(sql, parameters)

    def executescript(self, sql_script: str, /) -> StateCursor:
        cursor: StateCursor = self.cursor()
        return cursor.executescript(sql_script)

    def commit(self) -> None:
        try:
            super().commit()
        except _BUGS:
            raise
        except sqlite3.Error as e:
            raise self.fail(e) from e

    def rollback(self) -> None:
        try:
            super().rollback()
        except _BUGS:
            raise
        except sqlite3.Error as e:
            raise self.fail(e) from e

    def close(self) -> None:
        try:
            super().close()
        except _BUGS:
            raise
        except sqlite3.Error as e:
            raise self.fail(e) from e
