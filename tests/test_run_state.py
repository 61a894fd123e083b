"""The runs table: one row per slot (the unique index), appended details, recent runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest.state import runs as run_state
from digest.state.store import open_store

SLOT = datetime(2025, 5, 9, 7, tzinfo=UTC)


def test_a_slot_has_one_run_row_however_often_it_is_started(tmp_path: Path) -> None:
    db = open_store(tmp_path / "state.db")
    first = db.runs.start_run(started_at=SLOT, slot=SLOT)
    assert first is not None
    assert db.runs.start_run(started_at=SLOT + timedelta(minutes=1), slot=SLOT) is None
    other = open_store(tmp_path / "state.db")  # a second process sees the same row
    assert other.runs.start_run(started_at=SLOT, slot=SLOT) is None
    assert other.runs.record_run(slot=SLOT, at=SLOT, outcome="skipped: missed") is None
    record = db.runs.run_for_slot(SLOT)
    assert record is not None
    assert record.id == first
    assert not record.finished


def test_manual_runs_have_no_slot_and_are_never_unique(tmp_path: Path) -> None:
    db = open_store(tmp_path / "state.db")
    a = db.runs.start_run(started_at=SLOT)
    b = db.runs.start_run(started_at=SLOT)
    assert a is not None
    assert b is not None
    assert a != b
    assert db.runs.last_slot_run() is None


def test_finish_and_reopen_keep_the_history_of_a_slot_in_its_detail(tmp_path: Path) -> None:
    db = open_store(tmp_path / "state.db")
    run_id = db.runs.start_run(started_at=SLOT, slot=SLOT)
    assert run_id is not None
    db.runs.finish_run(
        run_id,
        finished_at=SLOT + timedelta(minutes=2),
        outcome=run_state.WAITING_FOR_APPROVAL,
        detail="issue 2025-W19 is not approved",
        issue_id="2025-W19",
    )
    db.runs.reopen_run(run_id, started_at=SLOT + timedelta(minutes=15), note="retry")
    reopened = db.runs.get_run(run_id)
    assert reopened is not None
    assert reopened.outcome is None
    assert reopened.issue_id == "2025-W19"
    db.runs.finish_run(run_id, finished_at=SLOT + timedelta(minutes=16), outcome=run_state.SENT)
    done = db.runs.get_run(run_id)
    assert done is not None
    assert done.outcome == "sent"
    assert done.detail == "issue 2025-W19 is not approved; retry"
    assert done.started_at == SLOT + timedelta(minutes=15)
    assert db.runs.runs_for_issue("2025-W19") == (done,)
    assert db.runs.recent_runs() == (done,)
    assert db.runs.last_slot_run() == done
