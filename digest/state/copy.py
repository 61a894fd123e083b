"""Copy a SQLite state into an empty PostgreSQL database (`digest state migrate --to URL`).

Table-generic: the tables and columns are read from the SQLite schema itself, so a table or column a
later migration adds is copied without a change here. Parents are copied before the tables that refer
to them. Everything happens in one PostgreSQL transaction, and the row count of every table is checked
before it commits; the SQLite file is held with BEGIN IMMEDIATE meanwhile, so no writer changes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from digest.errors import StateError
from digest.state.backend import SqliteDatabase, quoted

if TYPE_CHECKING:
    from digest.state.postgres import PostgresDatabase

log = logging.getLogger(__name__)
BATCH = 1000


@dataclass(frozen=True, slots=True)
class TableCount:
    """One table copied: its rows in the SQLite state and in PostgreSQL after the copy."""

    table: str
    source_rows: int
    copied_rows: int


def copy_order(source: SqliteDatabase) -> list[str]:
    """The source's tables, each after the tables its foreign keys refer to (else in name order)."""
    tables = source.table_names()
    parents = {t: source.foreign_tables(t) & set(tables) - {t} for t in tables}
    order: list[str] = []
    while len(order) < len(tables):
        ready = [t for t in tables if t not in order and parents[t] <= set(order)]
        if not ready:  # a cycle of foreign keys: the rest in name order (checks run at commit anyway)
            ready = [t for t in tables if t not in order]
        order.extend(ready)
    return order


def _count(db: SqliteDatabase | PostgresDatabase, table: str) -> int:
    row = db.fetch_one(f"SELECT count(*) FROM {quoted(table)}")
    return int(row[0]) if row else 0


def check_empty(target: PostgresDatabase) -> None:
    """Raise StateError when any table of the target holds a row."""
    for table in target.table_names():
        rows = _count(target, table)
        if rows:
            raise StateError(
                f"{target.name}: not an empty database: table {table} holds {rows} row{'s' * (rows != 1)}",
                hint="migrate into a new, empty database (createdb NAME), never over one in use",
            )


def copy_state(source: SqliteDatabase, target: PostgresDatabase) -> tuple[TableCount, ...]:
    """Copy every table of `source` into the empty, migrated `target`, in one transaction.

    Raises:
        StateError: the target is not empty, lacks a table or column of the source (a migration
            without its PostgreSQL form), is at another schema version, or a count differs after the copy.
    """
    if source.schema_version() != target.schema_version():
        raise StateError(
            f"{source.name} is at schema version {source.schema_version()} but {target.name} at"
            f" {target.schema_version()}",
            hint="run the same digest version against both (it migrates each when it opens it)",
        )
    counts: list[TableCount] = []
    with source.transaction(), target.transaction():
        check_empty(target)
        target_tables = set(target.table_names())
        for table in copy_order(source):
            if table not in target_tables:
                raise StateError(
                    f"{target.name}: the PostgreSQL schema has no table {table}",
                    hint="a migration lacks its PostgreSQL form in digest/state/schema.py: report it",
                )
            columns = source.column_names(table)
            missing = [c for c in columns if c not in target.column_names(table)]
            if missing:
                raise StateError(
                    f"{target.name}: table {table} has no column {', '.join(missing)} in PostgreSQL",
                    hint="a migration lacks its PostgreSQL form in digest/state/schema.py: report it",
                )
            names = ", ".join(quoted(c) for c in columns)
            insert = f"INSERT INTO {quoted(table)} ({names}) VALUES ({', '.join('?' * len(columns))})"
            for batch in source.fetch_batches(f"SELECT {names} FROM {quoted(table)}", size=BATCH):
                target.execute_many(insert, batch)
            for column in target.identity_columns(table):
                target.execute(
                    f"SELECT setval(pg_get_serial_sequence(?, ?), max_id) FROM"
                    f" (SELECT max({quoted(column)}) AS max_id FROM {quoted(table)}) AS m"
                    " WHERE max_id IS NOT NULL",
                    (quoted(table), column),
                )
            counts.append(TableCount(table, _count(source, table), _count(target, table)))
            log.info("copied %s: %d rows", table, counts[-1].copied_rows)
        wrong = [c for c in counts if c.source_rows != c.copied_rows]
        if wrong:
            listed = ", ".join(f"{c.table} {c.copied_rows} of {c.source_rows}" for c in wrong)
            raise StateError(
                f"{target.name}: the copy does not hold every row ({listed}); nothing was kept",
                hint="run digest state migrate again with -v and report the output",
            )
    return tuple(counts)
