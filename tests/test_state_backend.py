"""The database layer under state, on SQLite and on a real PostgreSQL (parametrised)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import free_port, running_server

from digest.errors import StateError
from digest.state import schema
from digest.state.backend import Database, Row, SqliteDatabase, open_database, to_format_style

TABLES = [
    "approvals",
    "entries",
    "feeds",
    "issue_entries",
    "issues",
    "runs",
    "send_claims",
    "send_ledger",
    "sent_entries",
    "settings",
    "subscribers",
]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database: Database = open_database(path=tmp_path / "state.db")
    else:
        url = request.getfixturevalue("postgres_db")
        database = open_database(path=tmp_path / "unused.db", url=url)
    yield database
    database.close()


def test_the_two_dialects_have_the_same_number_of_migrations() -> None:
    assert len(schema.POSTGRES_MIGRATIONS) == len(schema.MIGRATIONS), (
        "each migration in schema.MIGRATIONS needs its PostgreSQL form in POSTGRES_MIGRATIONS"
    )


def test_migrations_apply_and_give_every_table(db: Database) -> None:
    assert db.schema_version() == len(schema.MIGRATIONS)
    assert set(TABLES) <= set(db.table_names())  # later migrations may add tables
    assert db.table_names() == sorted(db.table_names())


def test_both_dialects_give_the_same_tables_and_columns(tmp_path: Path, postgres_db: str) -> None:
    lite = open_database(path=tmp_path / "state.db")
    pg = open_database(path=tmp_path / "unused.db", url=postgres_db)
    try:
        assert pg.table_names() == lite.table_names()
        for table in lite.table_names():
            assert pg.column_names(table) == lite.column_names(table), table
    finally:
        lite.close()
        pg.close()


def test_opening_again_applies_nothing_and_keeps_the_data(tmp_path: Path, postgres_db: str) -> None:
    first = open_database(path=tmp_path / "x.db", url=postgres_db)
    first.execute("INSERT INTO settings (key, value) VALUES (?, ?)", ("k", "v"))
    first.close()
    again = open_database(path=tmp_path / "x.db", url=postgres_db)
    try:
        assert again.schema_version() == len(schema.POSTGRES_MIGRATIONS)
        assert again.fetch_all("SELECT key, value FROM settings") == [("k", "v")]
    finally:
        again.close()


def test_a_newer_postgresql_schema_is_refused(tmp_path: Path, postgres_db: str) -> None:
    db = open_database(path=tmp_path / "x.db", url=postgres_db)
    db.execute("UPDATE schema_version SET version = ?", (len(schema.POSTGRES_MIGRATIONS) + 1,))
    db.close()
    with pytest.raises(StateError, match="newer than this digest understands") as caught:
        open_database(path=tmp_path / "x.db", url=postgres_db)
    assert caught.value.hint and "upgrade digest" in caught.value.hint


def test_placeholders_bind_values_and_leave_question_marks_in_literals(db: Database) -> None:
    db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", ("what?", "50% 'off'?"))
    row = db.fetch_one("SELECT key, value, 'is it?' AS q, 7 % 4 AS m FROM settings WHERE key = ?", ("what?",))
    assert row is not None
    assert row["value"] == "50% 'off'?"
    assert row[2] == "is it?"
    assert row["m"] == 3
    assert row.keys() == ["key", "value", "q", "m"]
    assert db.fetch_one("SELECT value FROM settings WHERE key = ?", ("nothing",)) is None


def test_translation_keeps_question_marks_in_literals_names_and_comments() -> None:
    sql = "SELECT '?', 'it''s ?', \"odd?\" FROM t -- why?\nWHERE a = ? /* and ? */ AND b LIKE '5%' AND c = ?"
    assert to_format_style(sql) == (
        "SELECT '?', 'it''s ?', \"odd?\" FROM t -- why?\nWHERE a = %s /* and ? */ AND b LIKE '5%%' AND c = %s"
    )


def test_case_of_an_address_does_not_make_another_subscriber(db: Database) -> None:
    insert = "INSERT INTO subscribers (email, created_at, updated_at) VALUES (?, 'now', 'now')"
    db.execute(insert, ("Ann@Example.org",))
    row = db.fetch_one("SELECT email FROM subscribers WHERE email = ?", ("ann@example.org",))
    assert row is not None and row[0] == "Ann@Example.org"
    with pytest.raises(StateError, match="already in state"):
        db.execute(insert, ("ANN@example.ORG",))


def test_a_unique_violation_maps_to_state_error_naming_the_database(db: Database) -> None:
    db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", ("a", "1"))
    with pytest.raises(StateError) as caught:
        db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", ("a", "2"))
    assert caught.value.message.startswith(db.name)
    assert caught.value.hint
    assert isinstance(caught.value.__cause__, Exception)


def test_a_transaction_commits_and_rolls_back_on_error(db: Database) -> None:
    with db.transaction():
        db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", ("kept", "1"))
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", ("dropped", "1"))
        raise RuntimeError("boom")
    with pytest.raises(StateError), db.transaction():
        db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", ("also dropped", "1"))
        db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", ("kept", "again"))
    assert db.fetch_all("SELECT key FROM settings ORDER BY key") == [("kept",)]


def test_a_nested_transaction_rolls_back_alone(db: Database) -> None:
    with db.transaction():
        db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", ("outer", "1"))
        with pytest.raises(RuntimeError), db.transaction():
            db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", ("inner", "1"))
            raise RuntimeError("boom")
    assert db.fetch_all("SELECT key FROM settings") == [("outer",)]


def test_other_threads_see_a_transaction_only_once_committed(db: Database) -> None:
    seen: list[object] = []
    inside = threading.Event()
    checked = threading.Event()

    def look() -> None:
        inside.wait(30)
        if db.dialect == "postgresql":  # SQLite shares one connection: the reader waits for the commit
            seen.append(db.fetch_one("SELECT value FROM settings WHERE key = ?", ("t",)))
        checked.set()

    reader = threading.Thread(target=look)
    reader.start()
    with db.transaction():
        db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", ("t", "1"))
        inside.set()
        if db.dialect == "postgresql":
            assert checked.wait(30)
    reader.join(30)
    assert seen == ([None] if db.dialect == "postgresql" else [])
    assert db.fetch_one("SELECT value FROM settings WHERE key = ?", ("t",)) == ("1",)


def test_insert_returning_gives_the_new_id(db: Database) -> None:
    first = db.fetch_one(
        "INSERT INTO runs (started_at) VALUES (?) RETURNING id", ("2026-01-01T00:00:00+00:00",)
    )
    second = db.fetch_one(
        "INSERT INTO runs (started_at) VALUES (?) RETURNING id", ("2026-01-02T00:00:00+00:00",)
    )
    assert first is not None and second is not None
    assert second["id"] == first["id"] + 1


def test_execute_many_counts_rows(db: Database) -> None:
    changed = db.execute_many(
        "INSERT INTO settings (key, value) VALUES (?, ?)", [(f"k{i}", str(i)) for i in range(5)]
    )
    assert changed == 5
    assert db.execute("UPDATE settings SET value = ? WHERE key <> ?", ("x", "k0")) == 4


def test_advisory_lock_is_exclusive_between_two_connections(tmp_path: Path, postgres_db: str) -> None:
    one = open_database(path=tmp_path / "x.db", url=postgres_db)
    two = open_database(path=tmp_path / "x.db", url=postgres_db)
    try:
        with one.advisory_lock("weekly send") as taken:
            assert taken
            with two.advisory_lock("weekly send") as other:
                assert not other
            with two.advisory_lock("another lock") as different:
                assert different
        with two.advisory_lock("weekly send") as after:
            assert after
    finally:
        one.close()
        two.close()


def test_sqlite_has_no_advisory_lock_and_says_so(tmp_path: Path) -> None:
    db = SqliteDatabase.open(tmp_path / "state.db")
    assert not db.has_advisory_locks
    with pytest.raises(StateError, match="needs the state in PostgreSQL"), db.advisory_lock("weekly send"):
        pass
    db.close()


def test_a_server_not_listening_is_a_state_error_with_a_hint(tmp_path: Path) -> None:
    url = f"postgresql://digest@127.0.0.1:{free_port()}/digest"
    with pytest.raises(StateError) as caught:
        open_database(path=tmp_path / "x.db", url=url)
    assert "cannot reach the PostgreSQL state database" in caught.value.message
    assert caught.value.hint and url in caught.value.hint


def test_a_stopped_server_is_a_state_error_and_never_shows_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_TEST_PG_PASSWORD", "s3cret-pw")
    with running_server() as server:
        url = server.url
        db = open_database(path=tmp_path / "x.db", url=url, password_env="DIGEST_TEST_PG_PASSWORD")
        db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", ("a", "1"))
        server.stop()
        try:
            with pytest.raises(StateError) as caught:
                db.fetch_all("SELECT * FROM settings")
        finally:
            db.close()
    assert "s3cret-pw" not in caught.value.message
    assert caught.value.hint and "s3cret-pw" not in caught.value.hint
    assert url in caught.value.message
    assert "PostgreSQL" in caught.value.hint


def test_an_unset_password_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIGEST_TEST_PG_PASSWORD", raising=False)
    with pytest.raises(StateError, match="DIGEST_TEST_PG_PASSWORD"):
        open_database(
            path=tmp_path / "x.db",
            url="postgresql://digest@127.0.0.1:1/digest",
            password_env="DIGEST_TEST_PG_PASSWORD",
        )


def test_a_sqlite_file_that_is_not_a_database_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StateError) as caught:
        open_database(path=path)
    assert str(path) in caught.value.message


def test_rows_read_by_position_and_name() -> None:
    row = Row(("a", 1), {"key": 0, "n": 1})
    assert row[0] == "a" and row["n"] == 1 and row == ("a", 1) and len(row) == 2
    assert dict(row.items()) == {"key": "a", "n": 1}
    with pytest.raises(KeyError, match="no column 'x'"):
        row["x"]


def test_sqlite_errors_raised_inside_are_mapped(tmp_path: Path) -> None:
    db = SqliteDatabase.open(tmp_path / "state.db")
    with pytest.raises(StateError) as caught:
        db.execute("SELECT * FROM no_such_table")
    assert isinstance(caught.value.__cause__, sqlite3.Error)
    db.close()


def test_psycopg_is_imported_only_for_a_postgresql_state(tmp_path: Path) -> None:
    code = (
        "import sys, pathlib\n"
        "import digest.cli\n"
        "from digest.state.backend import open_database\n"
        f"open_database(path=pathlib.Path({str(tmp_path / 'state.db')!r})).close()\n"
        "assert 'psycopg' not in sys.modules and 'psycopg_pool' not in sys.modules, 'imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_a_pooled_connection_is_checked_only_when_it_sat_idle(postgres_db: str) -> None:
    # Ledger rows go through the pool: checking a connection lent moments ago doubled their round trips.
    # A closed connection shows whether the check ran (its query fails).
    import psycopg

    from digest.state.postgres import IdleCheck

    now = [100.0]
    checks = IdleCheck(idle=5.0, monotonic=lambda: now[0])
    conn = psycopg.connect(postgres_db, autocommit=True)
    checks.check(conn)  # never lent before: checked, and it works
    conn.close()
    now[0] += 1.0
    checks.check(conn)  # lent 1 s ago: lent without a query
    now[0] += 5.0
    with pytest.raises(psycopg.OperationalError):
        checks.check(conn)  # last lent 5 s ago, so maybe idle that long: checked, the pool replaces it


def test_a_connection_given_back_is_lent_again_at_once_not_a_new_one(postgres_db: str) -> None:
    """Back-to-back uses from one thread get the same connection: psycopg-pool gives a connection back in
    a background worker when the pool has a reset callback, and one asked for at once after found none
    and opened another (the web app's one-pool test failed about half the time)."""
    database = open_database(path=Path("unused.db"), url=postgres_db)
    try:
        pids = set()
        for _ in range(200):
            row = database.fetch_one("SELECT pg_backend_pid()")
            assert row is not None
            pids.add(row[0])
    finally:
        database.close()
    assert len(pids) == 1, pids
