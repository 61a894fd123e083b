"""Edition-scoped state on both backends: issues and runs of one edition, an audience by tags, and the
unscoped view (a config without [[editions]]) unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.state.backend import open_database
from digest.state.store import Store

AT = datetime(2025, 5, 9, 7, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        database = open_database(path=tmp_path / "state.db")
    else:
        database = open_database(path=tmp_path / "unused.db", url=request.getfixturevalue("postgres_db"))
    with Store(database) as opened:
        yield opened


def _build(store: Store, issue_id: str, entries: tuple[str, ...], end: datetime = AT) -> None:
    store.issues.record_built_issue(
        issue_id=issue_id,
        edition=1,
        window_start=datetime(2025, 5, 2, 7, tzinfo=UTC),
        window_end=end,
        subject=issue_id,
        built_at=end,
        out_dir=Path("/tmp") / issue_id,  # noqa: S108 - a value stored, never written
        html_sha256="h",
        text_sha256="t",
        entry_ids=entries,
        empty=False,
    )


def test_each_edition_has_its_own_issues_sent_entries_and_runs(store: Store) -> None:
    staff, residents = store.for_edition("staff"), store.for_edition("residents")
    _build(staff, "staff-2025-W19", ("a", "b"))
    _build(residents, "residents-2025-05-09", ("a",))
    residents.issues.mark_issue_sent("residents-2025-05-09", AT)

    assert staff.issues.last_sent_issue() is None  # the residents' send is not the staff's window
    assert staff.issues.sent_entry_ids() == frozenset()  # entry a can still go to staff
    assert residents.issues.sent_entry_ids() == {"a"}
    assert [r.id for r in staff.issues.recent_issues()] == ["staff-2025-W19"]
    assert staff.issues.latest_issue().id == "staff-2025-W19"  # type: ignore[union-attr]
    assert residents.issues.sent_issue_count() == 1 and staff.issues.sent_issue_count() == 0
    assert store.issues.issue_edition("staff-2025-W19") == "staff"
    # Unscoped (no [[editions]]): every issue, as before.
    assert {r.id for r in store.issues.recent_issues()} == {"staff-2025-W19", "residents-2025-05-09"}

    # Two editions may share a slot; each slot runs once per edition.
    assert staff.runs.start_run(started_at=AT, slot=AT) is not None
    assert residents.runs.start_run(started_at=AT, slot=AT) is not None
    assert staff.runs.start_run(started_at=AT, slot=AT) is None
    assert staff.runs.run_for_slot(AT) is not None
    assert residents.runs.last_slot_run() is not None
    assert len(staff.runs.recent_runs()) == 1


def test_an_audience_is_the_subscribers_holding_any_of_its_tags(store: Store) -> None:
    for address in ("ann@example.org", "Bob@example.org", "cat@example.org", "dan@example.org"):
        store.subscribers.upsert_subscriber(address, name=None, at=AT)
    store.tags.add_tags("ann@example.org", ["staff"])
    store.tags.add_tags("bob@example.org", ["Partners"])  # another case than the subscriber row
    store.tags.add_tags("cat@example.org", ["residents", "staff"])
    store.subscribers.set_status("cat@example.org", "unsubscribed", at=AT)

    staff = store.for_edition("staff", ("staff", "partners"))
    pending = [email for email, _, _ in staff.ledger.pending_recipients("staff-2025-W19")]
    assert pending == ["ann@example.org", "Bob@example.org"]
    assert staff.ledger.pending_count("staff-2025-W19") == 2
    assert store.ledger.pending_count("staff-2025-W19") == 3
    assert [s.email for s in store.tags.iter_tagged(["staff"])] == ["ann@example.org", "cat@example.org"]
    assert store.tags.count_tagged(["staff"], "active") == 1
    assert store.tags.remove_tags("cat@example.org", ["staff", "nope"]) == 1
    assert store.tags.tags_of("cat@example.org") == ("residents",)
