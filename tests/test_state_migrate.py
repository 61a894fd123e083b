"""`digest state migrate --to URL`: a SQLite state built by the real pipeline, copied into PostgreSQL."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.cli import main
from digest.config import load_config
from digest.state.backend import Database, SqliteDatabase, open_database
from digest.state.store import open_store

REPO = Path(__file__).resolve().parent.parent
AS_OF = "2025-05-09T17:00:00+01:00"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """The shipped sample, built, with subscribers, one issue sent to the outbox and a run recorded."""
    monkeypatch.delenv("DIGEST_SECRET", raising=False)  # the send keeps a generated one in settings
    folder = tmp_path / "site"
    folder.mkdir()
    shutil.copy(REPO / "config.toml", folder / "config.toml")
    shutil.copytree(REPO / "feeds", folder / "feeds")
    config = str(folder / "config.toml")
    assert main(["build", "--config", config, "--as-of", AS_OF]) == 0
    for address in ("Ann@Example.org", "bob@example.org", "cat@example.org"):
        assert main(["subscribers", "add", "--config", config, address, "--name", "Reader"]) == 0
    assert main(["send", "--config", config]) == 0
    db = open_store(folder / ".digest" / "state.db")
    db.runs.start_run(started_at=datetime(2025, 5, 9, 16, tzinfo=UTC))
    db.runs.start_run(started_at=datetime(2025, 5, 9, 17, tzinfo=UTC))
    db.close()
    capsys.readouterr()
    return folder


def _everything(db: Database) -> dict[str, list[tuple[object, ...]]]:
    return {
        table: sorted(
            (tuple(row) for row in db.fetch_all(f'SELECT * FROM "{table}"')), key=lambda r: tuple(map(str, r))
        )
        for table in db.table_names()
    }


def test_migrate_copies_every_table_and_prints_the_counts(
    site: Path, postgres_db: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = SqliteDatabase.open(site / ".digest" / "state.db")
    expected = _everything(source)
    source.close()
    filled = {table for table, rows in expected.items() if rows}
    assert {
        "subscribers",
        "send_ledger",
        "issues",
        "issue_entries",
        "entries",
        "feeds",
        "runs",
        "settings",
    } <= filled

    code = main(["state", "migrate", "--config", str(site / "config.toml"), "--to", postgres_db])
    out = capsys.readouterr().out
    assert code == 0
    printed = {line.split()[0]: line.split()[1:] for line in out.splitlines() if " of " in line}
    assert printed == {table: [str(len(rows)), "of", str(len(rows))] for table, rows in expected.items()}
    assert "every count matches" in out
    assert f'url = "{postgres_db}"' in out

    target = open_database(path=tmp_path / "unused.db", url=postgres_db)
    try:
        assert _everything(target) == expected
        # The identity sequence continues after the copied run ids; addresses keep their case rules.
        row = target.fetch_one("INSERT INTO runs (started_at) VALUES (?) RETURNING id", ("2026-01-01",))
        assert row is not None and row["id"] == max(r[0] for r in expected["runs"]) + 1
        assert target.fetch_one("SELECT email FROM subscribers WHERE email = ?", ("ANN@EXAMPLE.ORG",)) == (
            "Ann@example.org",
        )
    finally:
        target.close()


def test_migrate_refuses_a_database_that_is_not_empty(
    site: Path, postgres_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["state", "migrate", "--config", str(site / "config.toml"), "--to", postgres_db]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 6
    err = capsys.readouterr().err
    assert "not an empty database: table approvals" in err or "not an empty database: table " in err
    assert "hint: migrate into a new, empty database" in err


def test_migrate_refuses_a_database_with_other_data_before_creating_anything(
    site: Path, postgres_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import psycopg

    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id integer)")
        conn.execute("INSERT INTO customers VALUES (1)")
    assert main(["state", "migrate", "--config", str(site / "config.toml"), "--to", postgres_db]) == 6
    assert "not an empty database: table customers holds 1 row" in capsys.readouterr().err
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    assert tables == [("customers",)]


def test_a_failure_part_way_keeps_nothing(
    site: Path, postgres_db: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # SQLite keeps text in an INTEGER column; PostgreSQL refuses it, after earlier tables were copied.
    raw = sqlite3.connect(site / ".digest" / "state.db")
    with raw:
        raw.execute("UPDATE issues SET edition = 'not a number'")
    raw.close()
    assert main(["state", "migrate", "--config", str(site / "config.toml"), "--to", postgres_db]) == 6
    err = capsys.readouterr().err
    assert "PostgreSQL state database error" in err
    target = open_database(path=tmp_path / "unused.db", url=postgres_db)
    try:
        assert all(rows == [] for rows in _everything(target).values())
    finally:
        target.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "postgresql://digest:hunter2@127.0.0.1/digest"], "--to: must not contain a password"),
        # the migrate's own flag, not the config key it does not read
        (["--to", "postgresql://digest:hunter2@127.0.0.1/digest"], "and --password-env NAME"),
        (["--to", "sqlite:///x.db"], "is not a postgresql:// URL"),
        (["--to", "postgresql://d@127.0.0.1/d", "--password-env", "DIGEST_NO_SUCH_VARIABLE"], "is not set"),
    ],
)
def test_migrate_refuses_bad_arguments(
    site: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["state", "migrate", "--config", str(site / "config.toml"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "hunter2" not in err


def test_migrate_needs_a_sqlite_state_to_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    shutil.copytree(REPO / "feeds", tmp_path / "feeds")
    code = main(["state", "migrate", "--config", str(tmp_path / "config.toml"), "--to", "postgresql://d@h/d"])
    assert code == 2
    assert "no SQLite state here to migrate" in capsys.readouterr().err
    assert load_config(tmp_path / "config.toml").state_url is None
