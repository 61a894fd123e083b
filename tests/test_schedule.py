"""Slots in Europe/London on both sides of the clock changes, the catch-up rule, and the loop on a
controlled clock (the `schedule` library's own clock included: nothing sleeps)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from schedule_clock import FakeClock

from digest.config import ScheduleSettings, load_config, parse_config
from digest.errors import ConfigError
from digest.schedule import (
    Action,
    JobResult,
    ScheduleLoop,
    decide,
    describe_time,
    next_slot,
    previous_slot,
    slot_on,
)
from digest.state.runs import RunRecord

LONDON = ZoneInfo("Europe/London")
REPO = Path(__file__).resolve().parent.parent
FRIDAY_0800 = ScheduleSettings(day="friday", time="08:00", timezone="Europe/London", catch_up_hours=12)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture(autouse=True)
def _restore_host_zone() -> Iterator[None]:
    yield
    time.tzset()


# --- slots -------------------------------------------------------------------------------------------


def test_slot_is_0800_london_on_both_sides_of_the_march_change() -> None:
    # The clocks go forward on Sunday 30 March 2025: 08:00 GMT is 08:00Z, 08:00 BST is 07:00Z.
    assert slot_on(FRIDAY_0800, date(2025, 3, 28)) == utc(2025, 3, 28, 8)
    assert slot_on(FRIDAY_0800, date(2025, 4, 4)) == utc(2025, 4, 4, 7)
    assert next_slot(FRIDAY_0800, utc(2025, 3, 28, 8)) == utc(2025, 4, 4, 7)
    assert previous_slot(FRIDAY_0800, utc(2025, 4, 4, 6, 59)) == utc(2025, 3, 28, 8)
    assert previous_slot(FRIDAY_0800, utc(2025, 4, 4, 7)) == utc(2025, 4, 4, 7)


def test_slot_is_0800_london_on_both_sides_of_the_october_change() -> None:
    # The clocks go back on Sunday 26 October 2025: 08:00 BST is 07:00Z, 08:00 GMT is 08:00Z.
    assert slot_on(FRIDAY_0800, date(2025, 10, 24)) == utc(2025, 10, 24, 7)
    assert slot_on(FRIDAY_0800, date(2025, 10, 31)) == utc(2025, 10, 31, 8)
    assert next_slot(FRIDAY_0800, utc(2025, 10, 24, 7)) == utc(2025, 10, 31, 8)
    # 07:30Z on 31 October is 07:30 GMT: the week's slot has not come yet.
    assert previous_slot(FRIDAY_0800, utc(2025, 10, 31, 7, 30)) == utc(2025, 10, 24, 7)


def test_a_time_inside_the_spring_gap_moves_forward_and_a_repeated_time_is_taken_once() -> None:
    sunday_0130 = ScheduleSettings(day="sunday", time="01:30", timezone="Europe/London")
    # 01:30 does not exist on 30 March 2025 (01:00 GMT -> 02:00 BST): it runs at 02:30 BST.
    assert slot_on(sunday_0130, date(2025, 3, 30)) == utc(2025, 3, 30, 1, 30)
    assert slot_on(sunday_0130, date(2025, 3, 30)).astimezone(LONDON).hour == 2
    # 01:30 happens twice on 26 October 2025; the first (BST) is the slot.
    assert slot_on(sunday_0130, date(2025, 10, 26)) == utc(2025, 10, 26, 0, 30)
    assert slot_on(sunday_0130, date(2025, 11, 2)) == utc(2025, 11, 2, 1, 30)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)))
def test_slots_bracket_now_and_fall_on_friday_0800_london(now: datetime) -> None:
    before = previous_slot(FRIDAY_0800, now)
    after = next_slot(FRIDAY_0800, now)
    assert before <= now < after
    for slot in (before, after):
        local = slot.astimezone(LONDON)
        assert (local.weekday(), local.hour, local.minute) == (4, 8, 0)
    assert after - before in (timedelta(days=7), timedelta(days=7, hours=1), timedelta(days=6, hours=23))


def test_describe_time_names_the_local_zone_and_the_utc_instant() -> None:
    assert describe_time(utc(2025, 4, 4, 7), "Europe/London") == (
        "Friday 4 April 2025 08:00 BST (2025-04-04T07:00:00Z)"
    )


# --- the catch-up rule ---------------------------------------------------------------------------------


def _record(outcome: str | None, slot: datetime) -> RunRecord:
    finished = None if outcome is None else slot + timedelta(minutes=1)
    return RunRecord(1, slot, slot, finished, outcome, None, None)


def test_decide_runs_a_slot_on_time_and_catches_up_one_missed_within_the_window() -> None:
    slot = utc(2025, 5, 9, 7)
    on_time = decide(FRIDAY_0800, slot, None)
    assert (on_time.action, on_time.slot) == (Action.RUN, slot)
    assert "scheduled run" in on_time.reason
    late = decide(FRIDAY_0800, slot + timedelta(hours=11, minutes=59), None)
    assert (late.action, late.slot) == (Action.RUN, slot)
    assert "missed by 12.0 h" in late.reason


def test_decide_skips_a_slot_missed_by_more_than_catch_up_hours_and_says_why() -> None:
    slot = utc(2025, 5, 9, 7)
    verdict = decide(FRIDAY_0800, slot + timedelta(hours=12, minutes=1), None)
    assert verdict.action is Action.SKIP
    assert "missed by 12.0 h, more than catch_up_hours = 12" in verdict.reason
    assert "Friday 9 May 2025 08:00 BST" in verdict.reason


def test_decide_never_runs_a_finished_slot_twice_but_resumes_or_retries_within_the_window() -> None:
    slot = utc(2025, 5, 9, 7)
    now = slot + timedelta(hours=2)
    for outcome in ("sent", "skipped: nothing new", "skipped: missed", "already sent", "interrupted"):
        assert decide(FRIDAY_0800, now, _record(outcome, slot)).action is Action.NONE, outcome
    resumed = decide(FRIDAY_0800, now, _record(None, slot))
    assert resumed.action is Action.RUN
    assert "resuming the interrupted run" in resumed.reason
    retry = decide(FRIDAY_0800, now, _record("waiting for approval", slot))
    assert retry.action is Action.RUN
    assert "waiting for approval" in retry.reason
    assert decide(FRIDAY_0800, now, _record("failed: DeliveryError", slot)).action is Action.RUN
    too_late = slot + timedelta(hours=13)
    assert decide(FRIDAY_0800, too_late, _record("waiting for approval", slot)).action is Action.NONE
    assert decide(FRIDAY_0800, too_late, _record(None, slot)).action is Action.SKIP


def test_the_first_start_ever_does_not_call_an_old_slot_missed() -> None:
    slot = utc(2025, 5, 9, 7)
    verdict = decide(FRIDAY_0800, slot + timedelta(days=2), None, first=True)
    assert verdict.action is Action.NONE
    assert "first start" in verdict.reason
    assert decide(FRIDAY_0800, slot + timedelta(hours=2), None, first=True).action is Action.RUN


def test_catch_up_hours_zero_never_runs_late() -> None:
    settings = ScheduleSettings(catch_up_hours=0)
    slot = utc(2025, 5, 9, 7)
    assert decide(settings, slot, None).action is Action.RUN
    assert decide(settings, slot + timedelta(minutes=5), None).action is Action.SKIP


# --- the loop on a controlled clock ----------------------------------------------------------------------


class Recorder:
    """A job that records when it was called and answers with the results it is given, in turn."""

    def __init__(self, clock: FakeClock, results: tuple[JobResult, ...] = ()) -> None:
        self.clock = clock
        self.calls: list[datetime] = []
        self.results = list(results)

    def __call__(self, now: datetime) -> JobResult:
        assert now == self.clock.now()
        self.calls.append(now)
        return self.results.pop(0) if self.results else JobResult("done")


@pytest.mark.parametrize("host_tz", ["UTC", "Europe/London", "America/New_York"])
def test_loop_fires_at_0800_london_through_the_march_and_october_changes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, host_tz: str
) -> None:
    clock = FakeClock(utc(2025, 3, 19, 12))  # a Wednesday, GMT
    clock.install(monkeypatch, host_tz)
    clock.stop_when = lambda c: c.now() >= utc(2025, 11, 3)
    job = Recorder(clock)
    caplog.set_level(logging.INFO, logger="digest")
    ScheduleLoop(FRIDAY_0800, job, now=clock.now, wait=clock.wait, max_sleep=6 * 3600).run()

    start, *fired = job.calls
    assert start == utc(2025, 3, 19, 12)  # the start-up check for a missed slot
    assert fired[:3] == [utc(2025, 3, 21, 8), utc(2025, 3, 28, 8), utc(2025, 4, 4, 7)]
    assert fired[-2:] == [utc(2025, 10, 24, 7), utc(2025, 10, 31, 8)]
    for moment in fired:
        local = moment.astimezone(LONDON)
        assert (local.weekday(), local.hour, local.minute, local.second) == (4, 8, 0, 0), moment
    assert len(fired) == 33  # every Friday from 21 March to 31 October 2025, once
    assert max(clock.waits) <= 6 * 3600
    messages = [r.getMessage() for r in caplog.records]
    assert "next run: Friday 21 March 2025 08:00 GMT (2025-03-21T08:00:00Z)" in messages
    assert "next run: Friday 4 April 2025 08:00 BST (2025-04-04T07:00:00Z)" in messages
    assert "next run: Friday 31 October 2025 08:00 GMT (2025-10-31T08:00:00Z)" in messages
    assert "stop requested: the schedule loop ends" in messages


def test_loop_logs_the_next_run_at_start_and_after_each_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(utc(2025, 5, 8, 9))
    clock.install(monkeypatch)
    clock.stop_when = lambda c: c.now() >= utc(2025, 5, 17)
    caplog.set_level(logging.INFO, logger="digest")
    ScheduleLoop(FRIDAY_0800, Recorder(clock), now=clock.now, wait=clock.wait).run()
    nexts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("next run")]
    assert nexts == [
        "next run: Friday 9 May 2025 08:00 BST (2025-05-09T07:00:00Z)",
        "next run: Friday 16 May 2025 08:00 BST (2025-05-16T07:00:00Z)",
        "next run: Friday 23 May 2025 08:00 BST (2025-05-23T07:00:00Z)",
    ]
    assert max(clock.waits) <= 60.0  # production never sleeps more than a minute at a time


def test_loop_retries_a_slot_every_retry_minutes_until_it_no_longer_asks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(utc(2025, 5, 9, 6))
    clock.install(monkeypatch)
    clock.stop_when = lambda c: c.now() >= utc(2025, 5, 9, 12)
    waiting = JobResult("waiting for approval", retry=True)
    job = Recorder(clock, (JobResult("nothing due"), waiting, waiting, waiting, JobResult("sent")))
    ScheduleLoop(FRIDAY_0800, job, now=clock.now, wait=clock.wait, retry_minutes=15).run()
    assert job.calls[1:] == [
        utc(2025, 5, 9, 7),
        utc(2025, 5, 9, 7, 15),
        utc(2025, 5, 9, 7, 30),
        utc(2025, 5, 9, 7, 45),
    ]


def test_loop_stops_at_once_when_wait_reports_a_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(utc(2025, 5, 9, 6))
    clock.install(monkeypatch)
    clock.stop_when = lambda _c: True
    job = Recorder(clock)
    ScheduleLoop(FRIDAY_0800, job, now=clock.now, wait=clock.wait).run()
    assert job.calls == [utc(2025, 5, 9, 6)]
    assert len(clock.waits) == 1


# --- configuration ---------------------------------------------------------------------------------------


def test_schedule_settings_are_read_and_checked(tmp_path: Path) -> None:
    source = {"name": "a", "url": "https://example.org/feed"}
    config = parse_config(
        {"sources": [source], "schedule": {"day": "monday", "time": "07:30", "retry_minutes": 5}},
        tmp_path / "config.toml",
    )
    assert (config.schedule.day, config.schedule.at, config.schedule.retry_minutes) == (
        "monday",
        time_of_day(7, 30),
        5,
    )
    assert load_config(REPO / "config.toml").schedule.retry_minutes == 15
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"sources": [source], "schedule": {"day": "fri", "time": "8am", "retry_minutes": 0}},
            tmp_path / "config.toml",
        )
    problems = "\n".join(caught.value.problems)
    assert "schedule.day: must be one of" in problems
    assert "schedule.time: '8am' is not a time of day as HH:MM" in problems
    assert "schedule.retry_minutes: must be at least 1, not 0" in problems
