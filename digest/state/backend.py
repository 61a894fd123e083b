"""The database under the state store: one small typed interface, SQLite or PostgreSQL behind it.

SQL is written once, with `?` placeholders; the PostgreSQL backend translates them to `%s` (outside
string literals, quoted names and comments). Rows come back as `Row`, indexable by position and by
column name. Every backend error (sqlite3.Error, psycopg.Error, pool timeouts, a refused connection)
leaves this layer as a `StateError` naming the database (never a password) through `mapped_errors`,
the one place that translates them.

`open_database(...)` picks the backend: a `url` selects PostgreSQL (`digest.state.postgres`, which
imports psycopg only then), otherwise the SQLite file at `path`.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol, overload

from digest.errors import StateError

Dialect = Literal["sqlite", "postgresql"]
Params = Sequence[object]


class Row(Sequence[Any]):
    """One result row: `row[0]`, `row["column"]`, `row.keys()`, `dict(row.items())`."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = tuple(values)
        self._index = index

    @overload
    def __getitem__(self, key: int | str) -> Any: ...
    @overload
    def __getitem__(self, key: slice) -> tuple[Any, ...]: ...
    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key]]
            except KeyError:
                raise KeyError(f"no column {key!r} in this row (columns: {', '.join(self._index)})") from None
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return self._values == other._values
        if isinstance(other, tuple):
            return self._values == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(self.items())!r})"

    def keys(self) -> list[str]:
        return list(self._index)

    def items(self) -> list[tuple[str, Any]]:
        return [(name, self._values[i]) for name, i in self._index.items()]


def count_of(row: Row | None) -> int:
    """The number a `SELECT count(*) ...` returned (0 when no row came back)."""
    return int(row[0]) if row else 0


def column_index(names: Iterable[str]) -> dict[str, int]:
    """Column name -> position (the first of duplicate names wins, as in sqlite3.Row)."""
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    return index


class Database(Protocol):
    """The state database, whichever the backend. Thread-safe; statements outside `transaction()`
    each commit on their own.

    Raises (every method): StateError, with a hint naming the database.
    """

    dialect: Dialect
    name: str  # the file path, or the URL without a password: for messages and hints

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed (-1 when not known)."""
        ...

    def execute_many(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one statement for each parameter row; the number of rows changed in all."""
        ...

    def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query (or of an INSERT ... RETURNING), None when there is none."""
        ...

    def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a query."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """A block run as one transaction, committed at its end, rolled back if it raises.

        SQLite: BEGIN IMMEDIATE (the write lock is taken at once). PostgreSQL: one connection of the
        pool for the whole block, READ COMMITTED. Nested blocks are savepoints.
        """
        ...

    def advisory_lock(self, name: str) -> AbstractContextManager[bool]:
        """Try to take the lock `name` shared by every host using this database, without waiting.

        Yields True when taken (released at the end of the block), False when another holds it.
        PostgreSQL only (pg_try_advisory_lock); SQLite raises StateError (its lock is the file lock
        `[state] lock`): check `has_advisory_locks` first.
        """
        ...

    @property
    def has_advisory_locks(self) -> bool: ...

    def schema_version(self) -> int:
        """The number of migrations applied."""
        ...

    def table_names(self) -> list[str]:
        """The state's tables (without the backend's own bookkeeping), in name order."""
        ...

    def column_names(self, table: str) -> list[str]:
        """The columns of `table`, in their order in the table."""
        ...

    def close(self) -> None: ...


# --- errors: the one place backend exceptions become StateError ------------------------------------


def _postgres_classes() -> tuple[type[BaseException], type[BaseException], type[BaseException]] | None:
    if "psycopg" not in sys.modules:
        return None
    import psycopg  # noqa: PLC0415 - loaded already, as the check above shows
    import psycopg.errors  # noqa: PLC0415

    return psycopg.Error, psycopg.errors.UniqueViolation, psycopg.OperationalError


def state_error(error: BaseException, database: str, *, secret: str | None = None) -> StateError | None:
    """The StateError for a backend exception, or None when `error` is not one.

    `database` names the file or the password-free URL; `secret` (the password) is scrubbed from the
    message should a driver ever repeat it.
    """
    message: str | None = None
    hint = f"check that the state database {database} is reachable and writable"
    pg = _postgres_classes()
    if isinstance(error, sqlite3.IntegrityError) or (pg and isinstance(error, pg[1])):
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        message = f"{database}: a record with the same key is already in state ({detail})"
        hint = "this is a conflict between two writers or a bug in digest; run again with -v and report it"
    elif isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
        message = f"{database}: the state database is locked by another process ({error})"
        hint = "wait for the other digest process to finish, then run again"
    elif isinstance(error, sqlite3.Error):
        message = f"{database}: state database error: {error}"
        hint = "check the [state] path in config; if the file is not a digest database, move it away"
    elif pg and isinstance(error, pg[2]):
        text = " ".join(str(error).split()) or type(error).__name__
        message = f"{database}: cannot reach the PostgreSQL state database: {text}"
        hint = (
            f"check that PostgreSQL is running and accepts connections for {database}"
            " ([state] url), and that the password is in the variable [state] password_env names"
        )
    elif pg and isinstance(error, pg[0]):
        text = " ".join(str(error).split()) or type(error).__name__
        message = f"{database}: PostgreSQL state database error: {text}"
    elif isinstance(error, ConnectionError | TimeoutError):
        message = f"{database}: cannot reach the state database: {error}"
    if message is None:
        return None
    if secret:
        message = message.replace(secret, "***")
    return StateError(message, hint=hint)


@contextmanager
def mapped_errors(database: str, *, secret: str | None = None) -> Iterator[None]:
    """Turn any backend exception raised in the block into a StateError (see `state_error`)."""
    try:
        yield
    except StateError:
        raise
    except Exception as e:
        mapped = state_error(e, database, secret=secret)
        if mapped is None:
            raise
        raise mapped from e


# --- placeholders -----------------------------------------------------------------------------------

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\?|%", re.DOTALL)


@lru_cache(maxsize=512)
def to_format_style(sql: str) -> str:
    """`?` placeholders -> `%s` (psycopg), leaving `?` in string literals, quoted names and comments.

    Every literal `%` is doubled, since psycopg reads `%` as the start of a placeholder everywhere.
    """

    def replace(match: re.Match[str]) -> str:
        piece = match.group(0)
        if piece == "?":
            return "%s"
        return piece.replace("%", "%%")

    return _TOKENS.sub(replace, sql)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def quoted(name: str) -> str:
    """A table or column name as a quoted SQL identifier (only plain names are accepted)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a plain SQL name: {name!r}")
    return f'"{name}"'


def split_script(script: str) -> list[str]:
    """A migration's statements (separated by `;` at the end of a line)."""
    return [s for s in script.split(";\n") if s.strip()]


# --- SQLite -----------------------------------------------------------------------------------------


def _row_factory(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Row:
    return Row(values, _index_of(tuple(d[0] for d in cursor.description)))


@lru_cache(maxsize=1024)
def _index_of(names: tuple[str, ...]) -> dict[str, int]:
    return column_index(names)


class SqliteDatabase:
    """The state in one SQLite file (WAL, foreign keys on), one connection shared by the threads."""

    dialect: Dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection, name: str) -> None:
        self.connection = connection
        self.connection.row_factory = _row_factory
        self.name = name
        self._lock = threading.RLock()
        self._depth = 0

    @classmethod
    def open(cls, path: Path, *, read_only: bool = False) -> SqliteDatabase:
        """Open (creating if needed) and migrate the SQLite state at `path` (as `open_state` does);
        `read_only` opens it without writing anything, and without migrating."""
        from digest.state import open_state  # noqa: PLC0415 - digest.state imports this module

        return cls(open_state(path, read_only=read_only), str(path))

    @property
    def has_advisory_locks(self) -> bool:
        return False

    def execute(self, sql: str, params: Params = ()) -> int:
        with self._lock, mapped_errors(self.name):
            return self.connection.execute(sql, tuple(params)).rowcount

    def execute_many(self, sql: str, rows: Iterable[Params]) -> int:
        with self._lock, mapped_errors(self.name):
            return self.connection.executemany(sql, (tuple(r) for r in rows)).rowcount

    def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        with self._lock, mapped_errors(self.name):
            cursor = self.connection.execute(sql, tuple(params))
            row: Row | None = cursor.fetchone()
            cursor.close()  # finishes an INSERT ... RETURNING whose other rows were not read
            return row

    def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        with self._lock, mapped_errors(self.name):
            rows: list[Row] = self.connection.execute(sql, tuple(params)).fetchall()
            return rows

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            savepoint = f"digest_{self._depth}" if self._depth else None
            with mapped_errors(self.name):
                self.connection.execute(f"SAVEPOINT {savepoint}" if savepoint else "BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                with mapped_errors(self.name):
                    if savepoint:
                        self.connection.execute(f"ROLLBACK TO {savepoint}")
                        self.connection.execute(f"RELEASE {savepoint}")
                    elif self.connection.in_transaction:
                        self.connection.execute("ROLLBACK")
                raise
            finally:
                self._depth -= 1
            with mapped_errors(self.name):
                self.connection.execute(f"RELEASE {savepoint}" if savepoint else "COMMIT")

    @contextmanager
    def advisory_lock(self, name: str) -> Iterator[bool]:
        raise StateError(
            f"{self.name}: the lock {name!r} across hosts needs the state in PostgreSQL",
            hint="with SQLite, one host runs digest and the [state] lock file keeps runs apart",
        )
        yield False  # pragma: no cover - unreachable, makes this a generator

    def schema_version(self) -> int:
        row = self.fetch_one("PRAGMA user_version")
        return int(row[0]) if row else 0

    def table_names(self) -> list[str]:
        rows = self.fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            " ORDER BY name"
        )
        return [str(r[0]) for r in rows]

    def column_names(self, table: str) -> list[str]:
        return [str(r["name"]) for r in self.fetch_all(f"PRAGMA table_info({quoted(table)})")]

    def foreign_tables(self, table: str) -> set[str]:
        """The tables `table` refers to through foreign keys."""
        return {str(r["table"]) for r in self.fetch_all(f"PRAGMA foreign_key_list({quoted(table)})")}

    def fetch_batches(self, sql: str, params: Params = (), size: int = 1000) -> Iterator[list[Row]]:
        """The rows of a query, `size` at a time (for tables too large to hold at once).

        Hold `transaction()` around the loop: the connection is not shared with other threads meanwhile.
        """
        with mapped_errors(self.name):
            cursor = self.connection.execute(sql, tuple(params))
        while True:
            with mapped_errors(self.name):
                rows: list[Row] = cursor.fetchmany(size)
            if not rows:
                return
            yield rows

    def close(self) -> None:
        with self._lock:
            self.connection.close()


def open_database(
    *, path: Path, url: str | None = None, password_env: str | None = None, pool_size: int = 4
) -> Database:
    """The configured state database, created or migrated to the current schema.

    `url` (`[state] url`) selects PostgreSQL, with the password from the environment variable
    `password_env` names; otherwise the SQLite file `path` (`[state] path`).

    Raises:
        StateError: the database cannot be reached, opened or migrated (the hint names it).
    """
    if url:
        from digest.state.postgres import PostgresDatabase  # noqa: PLC0415 - psycopg only when configured

        return PostgresDatabase.open(url, password_env=password_env, pool_size=pool_size)
    return SqliteDatabase.open(path)
