"""`digest schedule` end to end: the loop on a controlled clock driving the real pipeline (fetch, build,
send to the outbox) through both clock changes, a missed run caught up once, a run missed by too long
skipped once with why, and the real process stopping on SIGTERM and refusing a second scheduler."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from run_site import (
    SUBSCRIBERS,
    cli_env,
    copies,
    delivered,
    digest_command,
    make_site,
    run_cli,
    settle_slots_around_now,
)
from schedule_clock import FakeClock

from digest.cli.run import StopFlag, scheduled_job
from digest.config import Config
from digest.pipeline.run import run_due
from digest.schedule import ScheduleLoop, next_slot
from digest.state.store import open_store


@pytest.fixture(autouse=True)
def _restore_host_zone() -> Iterator[None]:
    yield
    time.tzset()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def _loop(config: Config, clock: FakeClock) -> ScheduleLoop:
    return ScheduleLoop(
        config.schedule,
        scheduled_job(config, StopFlag(), clock.now),
        now=clock.now,
        wait=clock.wait,
        retry_minutes=config.schedule.retry_minutes,
        max_sleep=3600,
    )


def _slot_runs(config: Config) -> list[tuple[datetime | None, str | None, str | None]]:
    db = open_store(config)
    try:
        return sorted(
            ((r.slot, r.outcome, r.issue_id) for r in db.runs.recent_runs(100)),
            key=lambda t: t[0] or utc(1970, 1, 1),
        )
    finally:
        db.close()


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            (
                [("Spring item", utc(2025, 3, 26, 12)), ("April item", utc(2025, 4, 2, 12))],
                utc(2025, 3, 26, 18),
                utc(2025, 4, 4, 12),
                [utc(2025, 3, 28, 8), utc(2025, 4, 4, 7)],  # 08:00 GMT, then 08:00 BST
            ),
            id="march-gmt-to-bst",
        ),
        pytest.param(
            (
                [("October item", utc(2025, 10, 22, 12)), ("Halloween item", utc(2025, 10, 29, 12))],
                utc(2025, 10, 22, 18),
                utc(2025, 10, 31, 12),
                [utc(2025, 10, 24, 7), utc(2025, 10, 31, 8)],  # 08:00 BST, then 08:00 GMT
            ),
            id="october-bst-to-gmt",
        ),
    ],
)
def test_the_scheduled_job_sends_at_0800_london_on_both_sides_of_a_clock_change(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[list[tuple[str, datetime]], datetime, datetime, list[datetime]],
) -> None:
    items, start, end, slots = case
    config = make_site(tmp_path, items)
    clock = FakeClock(start)
    clock.install(monkeypatch, "UTC")
    clock.stop_when = lambda c: c.now() >= end
    _loop(config, clock).run()

    assert _slot_runs(config) == [(slot, "sent", slot.strftime("%G-W%V")) for slot in slots]
    messages = delivered(config)
    assert len(messages) == 2 * len(SUBSCRIBERS)
    subjects = sorted({str(m["Subject"]) for m in messages})
    assert len(subjects) == 2
    assert all(n == 1 for n in copies(config).values())
    first_week = [m for m in messages if items[0][0] in str(m["Subject"]) + str(m.get_body())]
    assert len(first_week) == len(SUBSCRIBERS)


def test_a_missed_run_is_caught_up_once_on_start_and_never_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_site(tmp_path, [("Midwives celebrated", utc(2025, 5, 5, 9))])
    clock = FakeClock(utc(2025, 5, 9, 10, 30))  # the process was down at 08:00 BST (07:00Z)
    clock.install(monkeypatch)
    clock.stop_when = lambda c: c.now() >= utc(2025, 5, 9, 11)
    caplog.set_level(logging.INFO, logger="digest")
    _loop(config, clock).run()
    assert _slot_runs(config) == [(utc(2025, 5, 9, 7), "sent", "2025-W19")]
    assert len(delivered(config)) == len(SUBSCRIBERS)
    assert any("catching up the run of Friday 9 May 2025 08:00 BST" in r.getMessage() for r in caplog.records)

    # A restart an hour later (and a `digest run --scheduled` from a timer) find the slot done.
    clock.utc = utc(2025, 5, 9, 12)
    clock.stop_when = lambda c: c.now() >= utc(2025, 5, 9, 13)
    _loop(config, clock).run()
    again = run_due(config, now=utc(2025, 5, 9, 13))
    assert again.outcome == "nothing due"
    assert "is done: sent" in again.detail
    assert "next run Friday 16 May 2025 08:00 BST" in again.detail
    assert len(delivered(config)) == len(SUBSCRIBERS)
    assert len(_slot_runs(config)) == 1


def test_a_run_missed_by_more_than_catch_up_hours_is_skipped_once_with_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_site(tmp_path, [("Midwives celebrated", utc(2025, 5, 5, 9))], catch_up_hours=6)
    db = open_store(config)  # the scheduler ran last week, then the machine was down
    last_week = utc(2025, 5, 2, 7)
    db.runs.record_run(slot=last_week, at=last_week, outcome="skipped: nothing new")
    db.close()
    clock = FakeClock(utc(2025, 5, 9, 14))  # 7 hours after the slot
    clock.install(monkeypatch)
    clock.stop_when = lambda c: c.now() >= utc(2025, 5, 9, 15)
    caplog.set_level(logging.INFO, logger="digest")
    _loop(config, clock).run()
    _loop(config, clock).run()  # restarted: the skip is not recorded twice
    assert delivered(config) == []
    rows = _slot_runs(config)
    assert rows[1:] == [(utc(2025, 5, 9, 7), "skipped: missed", None)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "skipped: the run of Friday 9 May 2025 08:00 BST (2025-05-09T07:00:00Z) was missed by 7.0 h,"
        " more than catch_up_hours = 6; it is not sent late (run `digest run` to send now)"
    ]
    db = open_store(config)
    row = db.runs.run_for_slot(utc(2025, 5, 9, 7))
    db.close()
    assert row is not None
    assert row.detail is not None
    assert "more than catch_up_hours = 6" in row.detail


def test_waiting_for_approval_is_retried_and_sent_soon_after_approval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    config = make_site(tmp_path, [("Midwives celebrated", utc(2025, 5, 5, 9))], approval=True)
    clock = FakeClock(utc(2025, 5, 9, 6))
    clock.install(monkeypatch)

    def approve_at_0820(c: FakeClock) -> bool:
        if c.now() >= utc(2025, 5, 9, 7, 20) and not getattr(c, "approved", False):
            db = open_store(config)
            record = db.issues.latest_issue()
            assert record is not None
            db.approvals.record_approval(
                issue_id=record.id,
                approved_by="Comms Lead",
                approved_at=c.now(),
                html_sha256=record.html_sha256,
                text_sha256=record.text_sha256,
            )
            db.close()
            c.approved = True  # type: ignore[attr-defined]
        return c.now() >= utc(2025, 5, 9, 9)

    clock.stop_when = approve_at_0820
    _loop(config, clock).run()
    db = open_store(config)
    row = db.runs.run_for_slot(utc(2025, 5, 9, 7))
    db.close()
    assert row is not None
    assert row.outcome == "sent"
    assert row.finished_at == utc(2025, 5, 9, 7, 30)  # the first retry after the approval
    assert row.detail is not None
    assert "waiting for approval" in row.detail
    assert len(delivered(config)) == len(SUBSCRIBERS)
    db = open_store(config)
    issue = db.issues.latest_issue()
    db.close()
    assert issue is not None
    assert issue.built_at == utc(2025, 5, 9, 7)  # built once at the slot; the retries did not rebuild it


def _start_scheduler(config: Config) -> subprocess.Popen[str]:
    return subprocess.Popen(
        digest_command("--log-format", "json", "schedule", "--config", str(config.path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=config.root,
    )


def test_the_scheduler_process_logs_json_stops_on_sigterm_and_is_alone(tmp_path: Path) -> None:
    config = make_site(tmp_path, [("Midwives celebrated", utc(2025, 5, 5, 9))])
    _, following = settle_slots_around_now(config)  # nothing due whatever the wall clock says
    scheduler = _start_scheduler(config)
    assert scheduler.stderr is not None
    records = []
    for line in scheduler.stderr:
        records.append(json.loads(line))
        if records[-1]["message"].startswith("next run: "):
            break
    try:
        assert records[0]["message"].startswith("schedule: every friday at 08:00 Europe/London")
        upcoming = datetime.fromisoformat(records[-1]["next_run"])
        assert upcoming in (following, next_slot(config.schedule, following))  # the latter if one passed

        second = run_cli(config, "schedule")
        assert second.returncode == 7
        assert f"another digest schedule is in progress: held by pid {scheduler.pid}" in second.stderr

        status = json.loads(run_cli(config, "status", "--json").stdout)
        assert status["scheduler"]["pid"] == scheduler.pid
        assert datetime.fromisoformat(status["next_run"]) in (upcoming, next_slot(config.schedule, upcoming))
    finally:
        scheduler.send_signal(signal.SIGTERM)
        _out, err = scheduler.communicate(timeout=30)
    assert scheduler.returncode == 0, err
    messages = [json.loads(line)["message"] for line in err.splitlines()]
    assert any(m.startswith("SIGTERM received") for m in messages)
    assert messages[-1] == "stop requested: the schedule loop ends"
    assert delivered(config) == []
    assert json.loads(run_cli(config, "status", "--json").stdout)["scheduler"] is None


def test_digest_run_scheduled_from_a_timer_runs_each_slot_once_or_says_why_not(tmp_path: Path) -> None:
    # What `digest run --scheduled` does, on a fixed clock: 10:00Z on Friday 9 May 2025, 3 h after the slot.
    config = make_site(tmp_path, [("Midwives celebrated", utc(2025, 5, 5, 9))], catch_up_hours=0)
    now = utc(2025, 5, 9, 10)
    first = run_due(config, now=now)
    assert first.outcome == "nothing due"
    assert first.detail.startswith("first start: the slot of Friday 9 May 2025 08:00 BST")
    assert "; next run Friday 16 May 2025 08:00 BST" in first.detail
    assert _slot_runs(config) == []

    db = open_store(config)  # now say the job ran the week before: this slot was missed
    db.runs.record_run(slot=utc(2025, 5, 2, 7), at=utc(2025, 5, 2, 7), outcome="sent")
    db.close()
    second = run_due(config, now=now)
    assert second.outcome == "skipped: missed"
    assert "missed by 3.0 h, more than catch_up_hours = 0" in second.detail
    third = run_due(config, now=now + timedelta(minutes=5))
    assert "is done: skipped: missed; next run" in third.detail
    assert [outcome for _, outcome, _ in _slot_runs(config)] == ["sent", "skipped: missed"]
    assert delivered(config) == []

    # The command line a timer starts, on the real clock: its slots are settled, so nothing is due.
    settle_slots_around_now(config, outcome="skipped: missed")
    result = run_cli(config, "run", "--scheduled")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("nothing due: the run of "), result.stdout
    assert "is done: skipped: missed; next run " in result.stdout
    assert delivered(config) == []
