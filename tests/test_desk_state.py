"""The desk's state parts (users, audit trail) behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.errors import UsageError
from digest.pipeline import desk
from digest.state.backend import open_database
from digest.state.store import Store

NOW = datetime(2025, 5, 8, 15, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        database = open_database(path=tmp_path / "state.db")
    else:
        database = open_database(path=tmp_path / "unused.db", url=request.getfixturevalue("postgres_db"))
    with Store(database) as opened:
        yield opened


def test_users_and_sign_in(store: Store) -> None:
    assert not desk.has_users(store)
    desk.add_user(store, "asha@blmk.example", "admin", "a long passphrase", now=NOW)
    desk.add_user(store, "erin", "editor", "another passphrase", now=NOW)
    with pytest.raises(UsageError, match="already exists"):
        desk.add_user(store, "erin", "approver", "another passphrase", now=NOW)
    assert [(u.name, u.role) for u in desk.list_users(store)] == [
        ("asha@blmk.example", "admin"),
        ("erin", "editor"),
    ]
    assert desk.authenticate(store, "erin", "another passphrase", now=NOW) is not None
    assert desk.authenticate(store, "erin", "wrong passphrase", now=NOW) is None
    assert desk.authenticate(store, "nobody", "another passphrase", now=NOW) is None
    desk.change_password(store, "erin", "a third passphrase", now=NOW)
    assert desk.authenticate(store, "erin", "another passphrase", now=NOW) is None
    desk.remove_user(store, "erin")
    assert desk.get_user(store, "erin") is None
    assert desk.allowed("admin", "users") and desk.allowed("approver", "approve")
    assert not desk.allowed("editor", "approve") and not desk.allowed(None, "edit")


def test_the_audit_trail_and_four_eyes(store: Store) -> None:

    class Settings:
        four_eyes = True

    class FakeConfig:
        approval = Settings()

    desk.add_user(store, "priya", "approver", "a long passphrase", now=NOW)
    desk.add_user(store, "sam", "admin", "a long passphrase", now=NOW)
    desk.record_audit(store, at=NOW, issue_id="2025-W19", actor="priya", action="edit", detail="dropped “X”")
    desk.record_audit(
        store, at=NOW + timedelta(minutes=1), issue_id="2025-W19", actor="sam", action="test-send", detail="t"
    )
    desk.record_audit(store, at=NOW, issue_id="2025-W20", actor="sam", action="edit", detail="other issue")
    eyes = desk.four_eyes(FakeConfig(), store, "2025-W19")  # type: ignore[arg-type]
    assert (eyes.last_changed_by, eyes.approvers) == ("priya", ("sam",))
    assert eyes.refuses("priya") and not eyes.refuses("sam")
    events = desk.audit_events(store, issue_id="2025-W19")
    assert [(e.actor, e.action, e.content) for e in events] == [
        ("sam", "test-send", False),
        ("priya", "edit", True),
    ]
    assert events[1].detail == "dropped “X”"
    assert events[1].at == NOW
    assert len(desk.audit_events(store)) == 3
