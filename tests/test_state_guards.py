"""State's own guards, tested at the state layer (the pipeline's checks in front of them must not hide them).

A sent ledger row is never overwritten by a later failure; an issue whose sending has started is never
rebuilt (its row and its entry list stay as they were sent). Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.errors import DigestError
from digest.state.store import Store

ISSUE_ID = "2025-W19"
NOW = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)


@pytest.fixture
def db(store: Store) -> Store:
    """The Store on each backend (SQLite and PostgreSQL: the `store` fixture of conftest.py)."""
    return store


def build(db: Store, tmp_path: Path, *, subject: str, entry_ids: tuple[str, ...]) -> None:
    db.issues.record_built_issue(
        issue_id=ISSUE_ID,
        edition=1,
        window_start=NOW - timedelta(days=7),
        window_end=NOW,
        subject=subject,
        built_at=NOW,
        out_dir=tmp_path / "out" / ISSUE_ID,
        html_sha256="a" * 64,
        text_sha256="b" * 64,
        entry_ids=entry_ids,
        empty=False,
    )


def test_a_failure_never_overwrites_a_sent_row(db: Store, tmp_path: Path) -> None:
    build(db, tmp_path, subject="Weekly news", entry_ids=("e1",))
    email = "reader@example.org"
    db.ledger.record_sent(ISSUE_ID, email, message_id="<m1@example.org>", at=NOW)
    db.ledger.record_failed(ISSUE_ID, email, detail="451 try again later", at=NOW + timedelta(minutes=1))
    row = db.ledger.ledger_entry(ISSUE_ID, email)
    assert row is not None
    assert (row.status, row.message_id, row.detail) == ("sent", "<m1@example.org>", None)
    assert db.ledger.sent_count(ISSUE_ID) == 1
    # A failed row is still updated by a later failure, and by a success.
    other = "other@example.org"
    db.ledger.record_failed(ISSUE_ID, other, detail="451 first", at=NOW)
    db.ledger.record_failed(ISSUE_ID, other, detail="452 second", at=NOW)
    failed = db.ledger.ledger_entry(ISSUE_ID, other)
    assert failed is not None and (failed.status, failed.detail) == ("failed", "452 second")
    db.ledger.record_sent(ISSUE_ID, other, message_id="<m2@example.org>", at=NOW)
    assert db.ledger.sent_count(ISSUE_ID) == 2


def test_an_issue_whose_send_has_started_is_never_rebuilt(db: Store, tmp_path: Path) -> None:
    build(db, tmp_path, subject="Weekly news as built", entry_ids=("e1", "e2"))
    build(db, tmp_path, subject="Weekly news rebuilt", entry_ids=("e1", "e3"))  # not started: allowed
    assert db.issues.issue_entry_ids(ISSUE_ID) == frozenset({"e1", "e3"})
    db.issues.mark_send_started(ISSUE_ID, NOW + timedelta(hours=1))
    # Refused with an error (ValueError today; a DigestError such as StateError would do as well).
    with pytest.raises((ValueError, DigestError), match=ISSUE_ID):
        build(db, tmp_path, subject="A different issue", entry_ids=("e4",))
    record = db.issues.get_issue(ISSUE_ID)
    assert record is not None
    assert record.subject == "Weekly news rebuilt"
    assert record.send_started_at is not None
    assert db.issues.issue_entry_ids(ISSUE_ID) == frozenset({"e1", "e3"})
    db.issues.mark_issue_sent(ISSUE_ID, NOW + timedelta(hours=2))
    with pytest.raises((ValueError, DigestError), match=ISSUE_ID):
        build(db, tmp_path, subject="After the send", entry_ids=("e5",))
    record = db.issues.get_issue(ISSUE_ID)
    assert record is not None and record.subject == "Weekly news rebuilt" and record.sent_at is not None
