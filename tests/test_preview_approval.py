"""Approval: who, when and the hashes of exactly what was approved; any content change voids it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from state_support import sql
from test_archive import make_config
from web_support import record_sent, write_built_issue

from digest.errors import ApprovalError, UsageError
from digest.pipeline.web import approval_status, approve_issue, clean_approver_name
from digest.state.store import Store, open_store

NOW = datetime(2025, 5, 8, 15, 0, tzinfo=UTC)


def built(tmp_path: Path) -> tuple[Store, Path, str, str]:
    config = make_config(tmp_path)
    db = open_store(config)
    folder = write_built_issue(tmp_path / "out", "2025-W19")
    record_sent(db, folder, "2025-W19", sent_at=NOW)
    sql(db).execute("UPDATE issues SET sent_at = NULL, send_started_at = NULL")
    sql(db).execute("DELETE FROM sent_entries")
    record = db.issues.get_issue("2025-W19")
    assert record is not None
    return db, folder, record.html_sha256, record.text_sha256


def rebuild(db: Store, folder: Path, html: str) -> None:
    (folder / "email.html").write_text(html)
    db.issues.record_built_issue(
        issue_id="2025-W19",
        edition=1,
        window_start=NOW - timedelta(days=7),
        window_end=NOW,
        subject="s",
        built_at=NOW,
        out_dir=folder,
        html_sha256=hashlib.sha256(html.encode()).hexdigest(),
        text_sha256=hashlib.sha256((folder / "email.txt").read_bytes()).hexdigest(),
        entry_ids=["e1"],
        empty=False,
    )


def test_an_approval_records_who_when_and_the_hashes(tmp_path: Path) -> None:
    db, folder, html_sha, text_sha = built(tmp_path)
    approval = approve_issue(
        db,
        "2025-W19",
        approved_by="  Priya   Shah ",
        now=NOW,
        seen_html_sha256=html_sha,
        seen_text_sha256=text_sha,
    )
    assert approval.approved_by == "Priya Shah"
    assert approval.approved_at == NOW
    assert approval.html_sha256 == hashlib.sha256((folder / "email.html").read_bytes()).hexdigest()
    assert approval.text_sha256 == hashlib.sha256((folder / "email.txt").read_bytes()).hexdigest()
    status = approval_status(db, "2025-W19")
    assert status.valid
    assert not status.voided
    assert db.approvals.is_approved("2025-W19", html_sha, text_sha)


def test_a_content_change_voids_the_approval(tmp_path: Path) -> None:
    db, folder, html_sha, text_sha = built(tmp_path)
    approve_issue(
        db, "2025-W19", approved_by="Priya", now=NOW, seen_html_sha256=html_sha, seen_text_sha256=text_sha
    )
    rebuild(db, folder, "<html>changed intro</html>")
    status = approval_status(db, "2025-W19")
    assert status.voided
    assert status.approval is not None
    assert status.approval.approved_by == "Priya"


def test_approving_what_was_not_seen_is_refused(tmp_path: Path) -> None:
    db, folder, html_sha, text_sha = built(tmp_path)
    rebuild(db, folder, "<html>rebuilt while the page was open</html>")
    with pytest.raises(ApprovalError, match="changed after you loaded it"):
        approve_issue(
            db, "2025-W19", approved_by="Priya", now=NOW, seen_html_sha256=html_sha, seen_text_sha256=text_sha
        )
    assert approval_status(db, "2025-W19").approval is None


def test_a_file_changed_behind_the_state_record_is_not_approved(tmp_path: Path) -> None:
    db, folder, html_sha, text_sha = built(tmp_path)
    (folder / "email.txt").write_text("edited by hand")
    with pytest.raises(ApprovalError):
        approve_issue(
            db, "2025-W19", approved_by="Priya", now=NOW, seen_html_sha256=html_sha, seen_text_sha256=text_sha
        )


def test_a_sent_issue_cannot_be_approved(tmp_path: Path) -> None:
    db, _, html_sha, text_sha = built(tmp_path)
    db.issues.mark_send_started("2025-W19", NOW)
    with pytest.raises(UsageError, match="already being sent"):
        approve_issue(
            db, "2025-W19", approved_by="Priya", now=NOW, seen_html_sha256=html_sha, seen_text_sha256=text_sha
        )


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "Eve\x00", "Eve\u202e"])
def test_unusable_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError):
        clean_approver_name(name)
