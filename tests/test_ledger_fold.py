"""The send ledger does not grow without bound: rows of a sent issue older than `[state] ledger_keep_days`
are folded into per-issue counts (both backends, an injected clock); status keeps showing the counts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from run_site import make_site, run_cli

from digest.config import load_config
from digest.errors import ConfigError
from digest.pipeline.ledger import fold_old_ledger
from digest.pipeline.run import run_once
from digest.pipeline.status import gather_status
from digest.state.folds import FoldResult
from digest.state.store import Store, open_store

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
OLD = NOW - timedelta(days=401)


def sent_issue(store: Store, issue_id: str, *, at: datetime, recipients: int, failed: int = 0) -> None:
    store.issues.record_built_issue(
        issue_id=issue_id, edition=1, window_start=at - timedelta(days=7), window_end=at,
        subject=issue_id, built_at=at, out_dir=Path("out") / issue_id, html_sha256="a" * 64,
        text_sha256="b" * 64, entry_ids=("e",), empty=False,
    )  # fmt: skip
    store.issues.mark_send_started(issue_id, at)
    for i in range(recipients):
        store.ledger.record_sent(issue_id, f"r{i}@example.org", message_id=f"<{issue_id}.{i}@x>", at=at)
    for i in range(failed):
        store.ledger.record_failed(
            issue_id, f"f{i}@example.org", detail="550 no such user", at=at, permanent=True
        )
    store.issues.mark_issue_sent(issue_id, at)


def test_old_rows_of_sent_issues_are_folded_into_counts(store: Store) -> None:
    sent_issue(store, "2025-W10", at=OLD, recipients=5, failed=2)
    sent_issue(store, "2026-W20", at=NOW - timedelta(days=10), recipients=3)  # recent: kept
    # An old issue whose sending never finished keeps its rows: a resumed send needs them.
    store.issues.record_built_issue(
        issue_id="2025-W11", edition=2, window_start=OLD, window_end=OLD, subject="x", built_at=OLD,
        out_dir=Path("out"), html_sha256="a" * 64, text_sha256="b" * 64, entry_ids=(), empty=False,
    )  # fmt: skip
    store.ledger.record_sent("2025-W11", "r0@example.org", message_id="<m@x>", at=OLD)

    result = store.folds.fold_ledger(before=NOW - timedelta(days=400), at=NOW)
    assert result == FoldResult(rows=7, issues=1)
    assert store.folds.folded_counts("2025-W10") == {"sent": 5, "refused": 2}
    assert list(store.ledger.iter_ledger("2025-W10")) == []  # addresses and Message-IDs are gone
    assert store.bounces.sent_message("<2025-W10.0@x>") is None
    assert store.ledger.sent_count("2026-W20") == 3 and store.folds.folded_counts("2026-W20") == {}
    assert store.ledger.sent_count("2025-W11") == 1
    # Folding again changes nothing; rows that age later add to the counts.
    assert store.folds.fold_ledger(before=NOW - timedelta(days=400), at=NOW) == FoldResult(0, 0)
    store.ledger.record_sent(
        "2025-W10", "late@example.org", message_id="<late@x>", at=OLD + timedelta(days=1)
    )
    assert store.folds.fold_ledger(before=NOW, at=NOW) == FoldResult(rows=4, issues=2)
    assert store.folds.folded_counts("2025-W10") == {"sent": 6, "refused": 2}
    assert store.folds.folded_counts("2026-W20") == {"sent": 3}
    assert store.folds.folded_rows() == 11


def test_status_shows_folded_counts_and_run_folds_with_its_clock(
    backend: tuple[str, Any], tmp_path: Path
) -> None:
    kind, where = backend
    config = make_site(
        tmp_path / "site",
        [("Midwives celebrated", datetime(2025, 5, 5, 9, tzinfo=UTC))],
        state_url=where if kind == "postgresql" else None,
    )
    as_of = datetime(2025, 5, 9, 7, tzinfo=UTC)
    assert run_once(config, now=as_of, as_of=as_of).outcome == "sent"
    db = open_store(config)
    try:
        assert db.dialect == kind
        assert db.ledger.sent_count("2025-W19") == 3
        # A run 401 days later (an injected clock) folds the issue's rows at its end.
        later = as_of + timedelta(days=401)
        run_once(config, now=later, as_of=later)
        assert db.ledger.sent_count("2025-W19") == 0
        assert db.folds.folded_counts("2025-W19") == {"sent": 3}
        issue = next(i for i in gather_status(config, db, now=later).issues if i.id == "2025-W19")
        assert issue.recipients == 3
    finally:
        db.close()
    status = json.loads(run_cli(config, "status", "--json").stdout)
    assert next(i for i in status["issues"] if i["id"] == "2025-W19")["recipients"] == 3


def test_digest_state_fold_command(tmp_path: Path) -> None:
    config = make_site(tmp_path, [("Midwives celebrated", datetime(2025, 5, 5, 9, tzinfo=UTC))])
    as_of = datetime(2025, 5, 9, 7, tzinfo=UTC)
    assert run_once(config, now=as_of, as_of=as_of).outcome == "sent"
    result = run_cli(config, "state", "fold")  # the wall clock: 2025-05-09 is more than 400 days ago
    assert result.returncode == 0, result.stderr
    assert "Folded 3 send-ledger rows of 1 issue older than 400 days" in result.stdout
    db = open_store(config)
    try:
        assert db.folds.folded_counts("2025-W19") == {"sent": 3}
        assert fold_old_ledger(config, db, now=datetime.now(UTC)) == FoldResult(0, 0)
    finally:
        db.close()


@pytest.mark.parametrize(
    ("value", "ok"), [("30", True), ("36500", True), ("29", False), ("0", False), ('"x"', False)]
)
def test_ledger_keep_days_is_validated(tmp_path: Path, value: str, ok: bool) -> None:
    config = make_site(tmp_path, [])
    text = config.path.read_text(encoding="utf-8").replace(
        "[state]\n", f"[state]\nledger_keep_days = {value}\n"
    )
    config.path.write_text(text, encoding="utf-8")
    if ok:
        assert load_config(config.path).ledger_keep_days == int(value)
        return
    with pytest.raises(ConfigError) as caught:
        load_config(config.path)
    assert any("ledger_keep_days" in p for p in caught.value.problems)


def test_ledger_keep_days_defaults_to_400(tmp_path: Path) -> None:
    assert make_site(tmp_path, []).ledger_keep_days == 400


def bounce(store: Store, email: str, issue_id: str | None, kind: str, at: datetime) -> None:
    store.bounces.record_event(
        at=at, source="maildir:x", kind=kind, email=email, issue_id=issue_id,  # type: ignore[arg-type]
        status="5.1.1" if kind == "hard" else "4.2.2", diagnostic=f"about {email}", changed_to=None,
    )  # fmt: skip


def test_bounce_events_and_sns_ids_are_folded_with_the_ledger(store: Store) -> None:
    sent_issue(store, "2025-W10", at=OLD, recipients=4)
    sent_issue(store, "2026-W20", at=NOW - timedelta(days=10), recipients=2)
    store.issues.record_built_issue(
        issue_id="2025-W11", edition=2, window_start=OLD, window_end=OLD, subject="x", built_at=OLD,
        out_dir=Path("out"), html_sha256="a" * 64, text_sha256="b" * 64, entry_ids=(), empty=False,
    )  # fmt: skip
    bounce(store, "r0@example.org", "2025-W10", "hard", OLD + timedelta(hours=1))
    bounce(store, "R1@example.org", "2025-W10", "soft", OLD + timedelta(hours=1))
    bounce(store, "r1@example.org", "2025-W10", "soft", OLD + timedelta(hours=3))
    bounce(store, "r2@example.org", "2025-W10", "complaint", OLD + timedelta(hours=2))
    bounce(store, "r3@example.org", "2025-W10", "soft", OLD + timedelta(hours=2))
    bounce(store, "r3@example.org", "2025-W10", "soft", NOW - timedelta(days=5))  # a late one: r3 waits
    bounce(store, "x@example.org", None, "hard", OLD)  # matched to no issue
    bounce(store, "y@example.org", None, "hard", NOW - timedelta(days=1))
    bounce(store, "r0@example.org", "2026-W20", "soft", NOW - timedelta(days=9))  # a recent issue
    bounce(store, "z@example.org", "2025-W11", "hard", OLD)  # an issue whose sending never finished
    store.bounces.remember_hook_message("old-sns-id", at=OLD)
    store.bounces.remember_hook_message("new-sns-id", at=NOW - timedelta(hours=1))
    before = store.bounces.issue_bounces("2025-W10")
    assert (before.hard, before.soft, before.complaints) == (1, 2, 1)

    result = store.folds.fold_ledger(before=NOW - timedelta(days=400), at=NOW)
    assert result == FoldResult(rows=4, issues=1, bounce_events=5, hook_messages=1)
    for gone in ("r1@example.org", "r2@example.org", "x@example.org"):
        assert list(store.bounces.events_for(gone)) == []  # no address, status or diagnostic is left
    assert [e.issue_id for e in store.bounces.events_for("r0@example.org")] == ["2026-W20"]
    assert len(list(store.bounces.events_for("r3@example.org"))) == 2
    assert len(list(store.bounces.events_for("y@example.org"))) == 1
    assert len(list(store.bounces.events_for("z@example.org"))) == 1
    assert store.bounces.issue_bounces("2025-W10") == before  # the rates of status and notify hold
    assert store.folds.folded_bounces("2025-W10") == {"hard": 1, "soft": 1, "complaint": 1}
    assert not store.bounces.hook_message_seen("old-sns-id")
    assert store.bounces.hook_message_seen("new-sns-id")

    # r3's late event ages too: the issue's soft count stays one per address.
    result = store.folds.fold_ledger(before=NOW, at=NOW)
    assert (result.bounce_events, result.hook_messages) == (4, 1)
    assert store.bounces.issue_bounces("2025-W10") == before
    assert store.folds.folded_bounces("2025-W10") == {"hard": 1, "soft": 2, "complaint": 1}
    assert list(store.bounces.events_for("r3@example.org")) == []
    assert list(store.bounces.events_for("y@example.org")) == []
    assert store.bounces.issue_bounces("2026-W20").soft == 1
    assert len(list(store.bounces.events_for("z@example.org"))) == 1  # kept until its issue is sent
