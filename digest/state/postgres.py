"""The state in PostgreSQL (`[state] url`): psycopg 3 with a psycopg_pool connection pool.

Imported only when a URL is configured, so psycopg never slows down the start of a SQLite setup.
The password comes from the environment variable `[state] password_env` names, never from the URL.
Migrations are `schema.POSTGRES_MIGRATIONS`, their number kept in the one-row `schema_version` table;
they run in one transaction under an advisory lock, so two hosts starting at once migrate once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg.conninfo
import psycopg.sql
from psycopg.rows import RowMaker
from psycopg_pool import ConnectionPool

from digest.errors import StateError
from digest.state.backend import (
    Dialect,
    Params,
    Row,
    column_index,
    mapped_errors,
    split_script,
    to_format_style,
)
from digest.state.schema import POSTGRES_MIGRATIONS

log = logging.getLogger(__name__)

MIGRATION_LOCK = "digest state migrations"
CONNECT_TIMEOUT = 10  # seconds: a connection attempt, and the wait for a free pooled connection
CHECK_IDLE = 5.0  # seconds a pooled connection may have sat idle and still be lent without a check


def redacted(url: str) -> str:
    """The URL without any password, for messages and hints."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    user = f"{parts.username}@" if parts.username else ""
    netloc = user + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def lock_key(name: str) -> int:
    """The signed 64-bit key of an advisory lock (stable across hosts and Python versions)."""
    digest = hashlib.sha256(f"digest:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class IdleCheck:
    """The pool's check: a connection is checked (one empty query) before it is lent only when it was
    never lent or was last lent `idle` seconds ago or more (so it may have sat idle that long); one lent
    moments ago is lent as it is.

    A sender writes two ledger rows per message, each on a pooled connection: checking every time made
    each two round trips. A connection that broke since it was last lent still fails its statement (a
    StateError), and the pool drops it; one idle long enough (a server restart, a firewall's idle
    timeout) is replaced before it is lent, as before. The time is noted when a connection is lent, not
    when it is given back: a pool `reset` callback would make psycopg-pool give connections back in a
    background worker, so one asked for at once after would find none and the pool would open another.
    """

    def __init__(self, idle: float = CHECK_IDLE, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._idle = idle
        self._monotonic = monotonic
        self._lent: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def check(self, conn: psycopg.Connection[Any]) -> None:
        """Raise when a connection that may have sat idle too long no longer works (the pool replaces it)."""
        now = self._monotonic()
        with self._lock:
            lent = self._lent.get(conn)
            self._lent[conn] = now
        if lent is None or now - lent >= self._idle:
            ConnectionPool.check_connection(conn)


def _row_factory(cursor: psycopg.Cursor[Any]) -> RowMaker[Row]:
    index = column_index(column.name for column in cursor.description or ())

    def make(values: Sequence[Any]) -> Row:
        return Row(values, index)

    return make


class PostgresDatabase:
    """The state in a PostgreSQL database: a pool of connections shared by the threads.

    Outside `transaction()` each statement runs on a pooled connection in autocommit mode; inside, the
    thread keeps one connection for the whole block.
    """

    dialect: Dialect = "postgresql"

    def __init__(self, pool: ConnectionPool[Any], name: str, secret: str | None) -> None:
        self._pool = pool
        self.name = name
        self._secret = secret
        self._local = threading.local()

    @classmethod
    def open(
        cls, url: str, *, password_env: str | None = None, pool_size: int = 4, require_empty: bool = False
    ) -> PostgresDatabase:
        """Connect, apply the migrations this database lacks, and open the pool.

        With `require_empty`, a database where any table holds a row is refused before anything is
        created in it (the target of `digest state migrate`).

        Raises:
            StateError: the server cannot be reached, refuses the login, holds a newer schema, or
                (with `require_empty`) is not empty.
        """
        name = redacted(url)
        password: str | None = None
        if password_env:
            password = os.environ.get(password_env)
            if not password:
                raise StateError(
                    f"{name}: the environment variable {password_env} ([state] password_env) is not set",
                    hint=f"set {password_env} to the password of the PostgreSQL user in [state] url",
                )
        extra: dict[str, Any] = {"password": password} if password else {}
        with mapped_errors(name, secret=password):
            given = psycopg.conninfo.conninfo_to_dict(url)
            if "connect_timeout" not in given:
                extra["connect_timeout"] = CONNECT_TIMEOUT
            conninfo = psycopg.conninfo.make_conninfo(url, **extra)
            with psycopg.connect(conninfo, autocommit=True) as conn:
                if require_empty:
                    refuse_rows(conn, name)
                migrate(conn, name)
            checks = IdleCheck()
            pool: ConnectionPool[Any] = ConnectionPool(
                conninfo,
                min_size=1,
                max_size=max(1, pool_size),
                kwargs={"autocommit": True, "row_factory": _row_factory},
                check=checks.check,
                timeout=CONNECT_TIMEOUT,
                name="digest-state",
                open=False,
            )
            pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        return cls(pool, name, password)

    def _current(self) -> psycopg.Connection[Row] | None:
        conn: psycopg.Connection[Row] | None = getattr(self._local, "conn", None)
        return conn

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Row]]:
        current = self._current()
        with mapped_errors(self.name, secret=self._secret):
            if current is not None:
                yield current
                return
            with self._pool.connection() as conn:
                yield conn

    @property
    def has_advisory_locks(self) -> bool:
        return True

    def execute(self, sql: str, params: Params = ()) -> int:
        with self._connection() as conn:
            return conn.execute(to_format_style(sql), tuple(params)).rowcount

    def execute_many(self, sql: str, rows: Iterable[Params]) -> int:
        with self._connection() as conn, conn.cursor() as cursor:
            cursor.executemany(to_format_style(sql), [tuple(r) for r in rows])
            return cursor.rowcount

    def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        with self._connection() as conn:
            return conn.execute(to_format_style(sql), tuple(params)).fetchone()

    def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        with self._connection() as conn:
            return conn.execute(to_format_style(sql), tuple(params)).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        current = self._current()
        with mapped_errors(self.name, secret=self._secret):
            if current is not None:
                with current.transaction():  # a savepoint
                    yield
                return
            with self._pool.connection() as conn:
                self._local.conn = conn
                try:
                    with conn.transaction():
                        yield
                finally:
                    self._local.conn = None

    @contextmanager
    def advisory_lock(self, name: str) -> Iterator[bool]:
        key = lock_key(name)
        with mapped_errors(self.name, secret=self._secret):
            conn = self._pool.getconn()
        try:
            with mapped_errors(self.name, secret=self._secret):
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            taken = bool(row and row[0])
            try:
                yield taken
            finally:
                if taken:
                    with mapped_errors(self.name, secret=self._secret):
                        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        finally:
            self._pool.putconn(conn)

    def schema_version(self) -> int:
        row = self.fetch_one("SELECT version FROM schema_version")
        return int(row[0]) if row else 0

    def table_names(self) -> list[str]:
        rows = self.fetch_all(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            " AND table_type = 'BASE TABLE' AND table_name <> 'schema_version' ORDER BY table_name"
        )
        return [str(r[0]) for r in rows]

    def column_names(self, table: str) -> list[str]:
        rows = self.fetch_all(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = ? ORDER BY ordinal_position",
            (table,),
        )
        return [str(r[0]) for r in rows]

    def identity_columns(self, table: str) -> list[str]:
        """The columns of `table` whose values come from an identity sequence."""
        rows = self.fetch_all(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = ? AND is_identity = 'YES' ORDER BY ordinal_position",
            (table,),
        )
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        self._pool.close()


def refuse_rows(conn: psycopg.Connection[Any], name: str) -> None:
    """Raise StateError when a table of the database's current schema holds a row."""
    tables = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_type = 'BASE TABLE' ORDER BY table_name"
    ).fetchall()
    for (table,) in tables:
        query = psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(table))
        row = conn.execute(query).fetchone()
        rows = int(row[0]) if row else 0
        if rows:
            raise StateError(
                f"{name}: not an empty database: table {table} holds {rows} row{'s' * (rows != 1)}",
                hint="migrate into a new, empty database (createdb NAME), never over one in use",
            )


def migrate(conn: psycopg.Connection[Any], name: str) -> int:
    """Apply the PostgreSQL migrations `conn`'s database lacks, in one transaction; the new version.

    Raises:
        StateError: the database holds a schema newer than this digest understands.
        psycopg.Error: the server failed (the caller maps it).
    """
    latest = len(POSTGRES_MIGRATIONS)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(MIGRATION_LOCK),))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (id INTEGER PRIMARY KEY DEFAULT 1 CHECK (id = 1), version INTEGER NOT NULL)"
        )
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        version = int(row[0]) if row else 0
        if version > latest:
            raise StateError(
                f"{name}: state schema version {version} is newer than this digest understands ({latest})",
                hint="upgrade digest on this host, or point [state] url at another database",
            )
        for number, script in enumerate(POSTGRES_MIGRATIONS[version:], start=version + 1):
            for statement in split_script(script):
                conn.execute(statement)  # migration text: no parameters
            conn.execute("UPDATE schema_version SET version = %s", (number,))
            log.info("%s: applied state migration %d", name, number)
        return max(version, latest)
