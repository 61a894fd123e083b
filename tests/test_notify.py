"""Issue 13, item 6: the team is told when a draft is ready, while an issue waits, and after a send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from run_site import SUBSCRIBERS, copies, delivered, make_site

from digest.config import Config, load_config
from digest.errors import ConfigError
from digest.pipeline.run import prepare_ahead, run_due, run_once
from digest.state.store import open_store

AS_OF = datetime(2025, 5, 9, 7, tzinfo=UTC)  # the Friday 08:00 BST slot of week 19
NOW = datetime(2025, 5, 9, 7, 0, 5, tzinfo=UTC)
ITEMS = [
    ("Midwives celebrated", datetime(2025, 5, 5, 9, tzinfo=UTC)),
    ("New pharmacy services", datetime(2025, 5, 7, 12, tzinfo=UTC)),
]
TEAM = ("comms@example.org", "lead@example.org")
NOTIFY = f"""
[notify]
to = {list(TEAM)!r}
preview_url = "https://preview.intranet.example/"
""".replace("'", '"')


def site(tmp_path: Path, *, approval: bool, ahead: float = 0) -> Config:
    config = make_site(tmp_path, ITEMS, approval=approval, extra=NOTIFY)
    path = tmp_path / "config.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("catch_up_hours = 12", f"catch_up_hours = 12\ndraft_ahead_hours = {ahead}"))
    return load_config(config.path)


def team_messages(config: Config) -> list[tuple[str, str, str]]:
    return [
        (str(m["To"]), str(m["Subject"]), str(m.get_body(("plain",)).get_content()))  # type: ignore[union-attr]
        for m in delivered(config)
        if str(m["To"]) in TEAM
    ]


def ledger_addresses(config: Config, issue_id: str) -> set[str]:
    with open_store(config) as db:
        return {row.email for row in db.ledger.iter_ledger(issue_id)}


def test_the_draft_is_built_ahead_and_the_team_gets_a_link(tmp_path: Path) -> None:
    config = site(tmp_path, approval=True, ahead=24)
    slot = AS_OF
    assert prepare_ahead(config, now=slot - timedelta(hours=25)) is None  # not yet
    assert team_messages(config) == []
    built = prepare_ahead(config, now=slot - timedelta(hours=23))
    assert built == "2025-W19"
    told = team_messages(config)
    assert sorted(t for t, _, _ in told) == sorted(TEAM)
    assert all(s.startswith("Draft ready for review: ") for _, s, _ in told)
    assert all("https://preview.intranet.example/" in body for _, _, body in told)
    assert prepare_ahead(config, now=slot - timedelta(hours=22)) is None  # once per slot
    # The scheduled path does it too, when nothing is due yet (here: already done, so nothing more).
    assert run_due(config, now=slot - timedelta(hours=2)).outcome == "nothing due"
    assert len(team_messages(config)) == 2
    with open_store(config) as db:
        assert db.ledger.status_counts("2025-W19")["sent"] == 0  # nobody was sent the issue


def test_a_waiting_issue_reminds_the_team_once_per_remind_hours(tmp_path: Path) -> None:
    config = site(tmp_path, approval=True)
    assert run_once(config, now=NOW, as_of=AS_OF).outcome == "waiting for approval"
    assert run_once(config, now=NOW + timedelta(minutes=15), as_of=AS_OF).outcome == "waiting for approval"
    reminders = [m for m in team_messages(config) if m[1].startswith("Waiting for approval: ")]
    assert sorted(t for t, _, _ in reminders) == sorted(TEAM)  # once, not once per retry
    assert "https://preview.intranet.example/" in reminders[0][2]
    run_once(config, now=NOW + timedelta(hours=25), as_of=AS_OF)
    assert len([m for m in team_messages(config) if m[1].startswith("Waiting")]) == 4


def test_after_a_send_the_team_gets_a_report_outside_the_ledger(tmp_path: Path) -> None:
    config = site(tmp_path, approval=False)
    result = run_once(config, now=NOW, as_of=AS_OF)
    assert (result.outcome, result.sent) == ("sent", len(SUBSCRIBERS))
    reports = team_messages(config)
    assert sorted(t for t, _, _ in reports) == sorted(TEAM)
    _, subject, body = reports[0]
    assert subject == f"Issue 2025-W19 sent: {len(SUBSCRIBERS)} delivered"
    assert f"Sent: {len(SUBSCRIBERS)}\nFailed: 0\nIn doubt: 0\nBounces so far: 0 hard, 0 soft" in body
    assert ledger_addresses(config, "2025-W19") == set(SUBSCRIBERS)  # the team is not in the ledger
    assert all(n == 1 for n in copies(config).values())


def test_notify_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        make_site(tmp_path, ITEMS, extra='[notify]\nto = ["not an address"]\npreview_url = "ftp://x"\n')
    text = "\n".join(caught.value.problems)
    assert "notify.to[0]: 'not an address' is not an email address" in text
    assert "notify.preview_url" in text


def test_the_schedule_loop_ticks_between_slots_so_a_draft_can_be_built_ahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from schedule_clock import FakeClock

    from digest.config import ScheduleSettings
    from digest.schedule import JobResult, ScheduleLoop

    clock = FakeClock(datetime(2025, 5, 8, 6, tzinfo=UTC))  # a day before the Friday 08:00 BST slot
    clock.install(monkeypatch)
    clock.stop_when = lambda c: c.now() >= datetime(2025, 5, 9, 6, tzinfo=UTC)
    ticks: list[datetime] = []
    settings = ScheduleSettings(day="friday", time="08:00", timezone="Europe/London", draft_ahead_hours=24)
    ScheduleLoop(
        settings, lambda now: JobResult("nothing due"), now=clock.now, wait=clock.wait, tick=ticks.append
    ).run()
    # Woken at least every minute: the tick sees the moment 24 h before the slot (07:00Z on Thursday).
    assert any(
        datetime(2025, 5, 8, 7, tzinfo=UTC) <= t <= datetime(2025, 5, 8, 7, 1, tzinfo=UTC) for t in ticks
    )
