"""Bank holidays in the schedule (`[schedule] holidays`, `on_holiday`): slots around Easter Monday, the
late May and August bank holidays and Christmas 2025, in all three modes, through the clock changes, on
the controlled clock; the config check; and `digest status` saying which day was chosen."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from run_site import make_site
from schedule_clock import FakeClock

from digest.cli import cli
from digest.cli.common import StopFlag
from digest.cli.run import scheduled_job
from digest.compose import base_issue_id
from digest.config import ScheduleSettings, load_config, parse_config
from digest.config.holidays import bank_holiday
from digest.errors import ConfigError
from digest.models import Window
from digest.schedule import (
    Action,
    JobResult,
    ScheduleLoop,
    decide,
    issue_week_of,
    next_slot,
    next_slot_note,
    previous_slot,
)
from digest.state.store import open_store

LONDON = ZoneInfo("Europe/London")
REPO = Path(__file__).resolve().parent.parent
SOURCE = {"name": "a", "url": "https://example.org/feed"}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON).astimezone(UTC)  # type: ignore[misc]


def weekly(
    day: str, on_holiday: str = "next_working_day", region: str = "england-and-wales"
) -> ScheduleSettings:
    return ScheduleSettings(
        day=day,
        time="08:00",
        timezone="Europe/London",
        holidays=region,
        on_holiday=on_holiday,  # type: ignore[arg-type]
    )


MONDAY = weekly("monday")
FRIDAY = weekly("friday")


@pytest.fixture(autouse=True)
def _restore_host_zone() -> Iterator[None]:
    yield
    time.tzset()


# --- the calendar and the configuration -------------------------------------------------------------


def test_the_england_and_wales_calendar_has_the_2025_bank_holidays() -> None:
    assert bank_holiday("england-and-wales", date(2025, 4, 21)) == "Easter Monday"
    assert bank_holiday("england-and-wales", date(2025, 5, 26)) == "Spring Bank Holiday"
    assert bank_holiday("england-and-wales", date(2025, 8, 25)) == "Late Summer Bank Holiday"
    assert bank_holiday("england-and-wales", date(2025, 5, 27)) is None
    # Scotland's differ: 2 January is a bank holiday there, the first Monday of August is its summer one.
    assert bank_holiday("scotland", date(2026, 1, 2)) is not None
    assert bank_holiday("england-and-wales", date(2026, 1, 2)) is None
    assert bank_holiday("northern-ireland", date(2025, 3, 17)) == "Saint Patrick's Day"
    assert bank_holiday("DE-BY", date(2025, 1, 6)) is not None  # Epiphany, in Bavaria only
    assert bank_holiday("DE-BE", date(2025, 1, 6)) is None


@pytest.mark.parametrize(
    "region",
    ["england-and-wales", "Scotland", "northern-ireland", "wales", "DE-BY", "de-by", "IE", "GB-SCT", "US-NY"],
)
def test_known_regions_are_accepted(tmp_path: Path, region: str) -> None:
    config = parse_config(
        {"sources": [SOURCE], "schedule": {"holidays": region, "on_holiday": "skip"}},
        tmp_path / "config.toml",
    )
    assert (config.schedule.holidays, config.schedule.on_holiday) == (region, "skip")


def test_defaults_are_no_holidays_and_send(tmp_path: Path) -> None:
    config = parse_config({"sources": [SOURCE]}, tmp_path / "config.toml")
    assert (config.schedule.holidays, config.schedule.on_holiday) == (None, "send")


@pytest.mark.parametrize("region", ["england-and-whales", "XX", "DE-XX", "", 44])
def test_an_unknown_region_is_one_line_naming_the_key_with_examples(tmp_path: Path, region: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"sources": [SOURCE], "schedule": {"holidays": region}}, tmp_path / "config.toml")
    (problem,) = caught.value.problems
    assert problem.startswith("schedule.holidays: "), problem
    assert "\n" not in problem
    if isinstance(region, str):
        assert "'england-and-wales'" in problem and "'DE-BY'" in problem and "'scotland'" in problem


def test_on_holiday_must_be_one_of_the_three_modes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"sources": [SOURCE], "schedule": {"holidays": "scotland", "on_holiday": "tuesday"}},
            tmp_path / "config.toml",
        )
    assert caught.value.problems == (
        "schedule.on_holiday: must be one of 'send', 'next_working_day', 'skip', not 'tuesday'",
    )


def test_the_shipped_config_example_works_when_uncommented(tmp_path: Path) -> None:
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    assert '# holidays = "england-and-wales"' in text and '# on_holiday = "next_working_day"' in text
    text = text.replace("# holidays = ", "holidays = ").replace("# on_holiday = ", "on_holiday = ")
    config = parse_config(tomllib.loads(text), REPO / "config.toml")
    assert (config.schedule.holidays, config.schedule.on_holiday) == ("england-and-wales", "next_working_day")


# --- slots: next_working_day ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("holiday", "moved_to"),
    [
        (date(2025, 4, 21), date(2025, 4, 22)),  # Easter Monday
        (date(2025, 5, 26), date(2025, 5, 27)),  # the late May bank holiday
        (date(2025, 8, 25), date(2025, 8, 26)),  # the August bank holiday
    ],
)
def test_a_monday_bank_holiday_moves_the_slot_to_tuesday_at_0800(holiday: date, moved_to: date) -> None:
    week_before = london(*(holiday - timedelta(days=7)).timetuple()[:3], 8)
    tuesday = london(*moved_to.timetuple()[:3], 8)
    following = london(*(holiday + timedelta(days=7)).timetuple()[:3], 8)
    assert next_slot(MONDAY, week_before) == tuesday
    assert next_slot(MONDAY, london(*holiday.timetuple()[:3], 9)) == tuesday
    # On the holiday itself, after 08:00, nothing has run yet: the latest slot is the week before's.
    assert previous_slot(MONDAY, london(*holiday.timetuple()[:3], 9)) == week_before
    assert previous_slot(MONDAY, tuesday - timedelta(seconds=1)) == week_before
    assert previous_slot(MONDAY, tuesday) == tuesday
    assert next_slot(MONDAY, tuesday) == following
    assert previous_slot(MONDAY, following - timedelta(seconds=1)) == tuesday


def test_the_moved_slot_is_at_0800_london_in_summer_time() -> None:
    assert next_slot(MONDAY, utc(2025, 5, 25)) == utc(2025, 5, 27, 7)


def test_good_friday_skips_the_weekend_and_easter_monday_to_tuesday() -> None:
    assert next_slot(FRIDAY, london(2025, 4, 11, 8)) == london(2025, 4, 22, 8)
    assert next_slot(FRIDAY, london(2025, 4, 22, 8)) == london(2025, 4, 25, 8)


def test_christmas_and_boxing_day_2025_move_thursday_and_friday_slots_to_monday_29_december() -> None:
    # 25 December 2025 is a Thursday, 26 (Boxing Day) a Friday; 27 and 28 are the weekend.
    thursday = weekly("thursday")
    assert next_slot(thursday, london(2025, 12, 18, 8)) == london(2025, 12, 29, 8)
    assert next_slot(FRIDAY, london(2025, 12, 19, 8)) == london(2025, 12, 29, 8)
    # New Year's Day 2026 is the next Thursday: moved to Friday 2 January (a working day in England).
    assert next_slot(thursday, london(2025, 12, 29, 8)) == london(2026, 1, 2, 8)
    assert next_slot(FRIDAY, london(2025, 12, 29, 8)) == london(2026, 1, 2, 8)
    # In Scotland 2 January is a bank holiday too: the Thursday slot goes on to Monday 5 January.
    assert next_slot(weekly("thursday", region="scotland"), london(2025, 12, 29, 8)) == london(2026, 1, 5, 8)


def test_a_slot_moved_across_the_spring_clock_change_stays_at_0800_local() -> None:
    # Good Friday 29 March 2024 (GMT), the clocks went forward on Sunday 31 March, Easter Monday 1 April:
    # the slot is Tuesday 2 April 2024 at 08:00 BST, which is 07:00Z.
    assert next_slot(FRIDAY, utc(2024, 3, 25)) == utc(2024, 4, 2, 7)
    assert previous_slot(FRIDAY, utc(2024, 4, 2, 7)) == utc(2024, 4, 2, 7)
    assert previous_slot(FRIDAY, utc(2024, 4, 2, 6, 59)) == utc(2024, 3, 22, 8)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)))
def test_next_working_day_slots_bracket_now_and_fall_at_0800_on_working_days(now: datetime) -> None:
    for settings_ in (MONDAY, FRIDAY, weekly("thursday", region="scotland")):
        before = previous_slot(settings_, now)
        after = next_slot(settings_, now)
        assert before <= now < after
        assert next_slot(settings_, before) == after  # nothing in between
        for slot in (before, after):
            local = slot.astimezone(LONDON)
            assert (local.hour, local.minute) == (8, 0)
            assert local.weekday() < 5
            assert bank_holiday(settings_.holidays or "", local.date()) is None
        assert timedelta(days=1) < after - before < timedelta(days=13)


# --- slots: skip and send -------------------------------------------------------------------------------


def test_skip_drops_the_holiday_week_and_the_next_run_is_the_week_after() -> None:
    skip = weekly("monday", "skip")
    assert next_slot(skip, london(2025, 5, 19, 8)) == london(2025, 6, 2, 8)
    assert previous_slot(skip, london(2025, 5, 27, 8)) == london(2025, 5, 19, 8)
    assert next_slot(skip, london(2025, 8, 18, 8)) == london(2025, 9, 1, 8)
    assert next_slot(skip, london(2025, 4, 14, 8)) == london(2025, 4, 28, 8)


def test_skip_can_drop_two_weeks_in_a_row_christmas_and_new_year() -> None:
    thursday = weekly("thursday", "skip")
    assert next_slot(thursday, london(2025, 12, 18, 8)) == london(2026, 1, 8, 8)
    note = next_slot_note(thursday, london(2025, 12, 18, 8))
    assert note == (
        "Thursday 25 December 2025 is a bank holiday (Christmas Day): no issue that week "
        "(on_holiday = skip); "
        "Thursday 1 January 2026 is a bank holiday (New Year's Day): no issue that week (on_holiday = skip)"
    )


def test_send_keeps_the_slot_on_the_holiday() -> None:
    send = weekly("monday", "send")
    assert next_slot(send, london(2025, 5, 19, 8)) == london(2025, 5, 26, 8)
    assert next_slot_note(send, london(2025, 5, 19, 8)) == (
        "Monday 26 May 2025 is a bank holiday (Spring Bank Holiday): "
        "sending as usual at 08:00 (on_holiday = send)"
    )
    # Without [schedule] holidays nothing is a holiday.
    plain = ScheduleSettings(day="monday", time="08:00", timezone="Europe/London")
    assert next_slot(plain, london(2025, 5, 19, 8)) == london(2025, 5, 26, 8)
    assert next_slot_note(plain, london(2025, 5, 19, 8)) is None


def test_the_note_says_which_day_was_chosen() -> None:
    assert next_slot_note(MONDAY, london(2025, 5, 20, 12)) == (
        "Monday 26 May 2025 is a bank holiday (Spring Bank Holiday): sending on Tuesday 27 May 2025 at 08:00"
    )
    # Still said on the holiday itself, until the moved slot has run; then nothing to say.
    assert next_slot_note(MONDAY, london(2025, 5, 26, 12)) is not None
    assert next_slot_note(MONDAY, london(2025, 5, 27, 8)) is None
    assert next_slot_note(MONDAY, london(2025, 5, 13, 8)) is None
    assert next_slot_note(FRIDAY, london(2025, 12, 20, 8)) == (
        "Friday 26 December 2025 is a bank holiday (Boxing Day): sending on Monday 29 December 2025 at 08:00"
    )


def test_decide_runs_the_moved_slot_and_its_reason_names_the_holiday() -> None:
    tuesday = london(2025, 5, 27, 8)
    verdict = decide(MONDAY, tuesday, None)
    assert (verdict.action, verdict.slot) == (Action.RUN, tuesday)
    assert verdict.reason == (
        "scheduled run for Tuesday 27 May 2025 08:00 BST (2025-05-27T07:00:00Z) "
        "(moved from Monday 26 May 2025, a bank holiday: Spring Bank Holiday)"
    )
    send = decide(weekly("monday", "send"), london(2025, 5, 26, 8), None)
    assert send.slot == london(2025, 5, 26, 8)
    assert send.reason.endswith("(a bank holiday: Spring Bank Holiday)")
    # On the holiday itself nothing new is due: the latest slot is still the week before's.
    assert decide(MONDAY, london(2025, 5, 26, 8), None, first=True).slot == london(2025, 5, 19, 8)


# --- the loop on a controlled clock ------------------------------------------------------------------


class Recorder:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[datetime] = []

    def __call__(self, now: datetime) -> JobResult:
        self.calls.append(now)
        return JobResult("done")


def _expected_slots(settings_: ScheduleSettings, start: datetime, end: datetime) -> list[datetime]:
    slots, moment = [], start
    while (moment := next_slot(settings_, moment)) < end:
        slots.append(moment)
    return slots


@pytest.mark.parametrize("host_tz", ["UTC", "America/New_York"])
@pytest.mark.parametrize("on_holiday", ["next_working_day", "skip", "send"])
def test_loop_fires_at_each_slot_the_holidays_leave_from_march_to_september(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, on_holiday: str, host_tz: str
) -> None:
    settings_ = weekly("monday", on_holiday)
    start, end = utc(2025, 3, 19, 12), utc(2025, 9, 3)  # across the March clock change
    clock = FakeClock(start)
    clock.install(monkeypatch, host_tz)
    clock.stop_when = lambda c: c.now() >= end
    job = Recorder(clock)
    caplog.set_level(logging.INFO, logger="digest")
    ScheduleLoop(settings_, job, now=clock.now, wait=clock.wait, max_sleep=6 * 3600).run()

    first, *fired = job.calls
    assert first == start
    assert fired == _expected_slots(settings_, start, end)
    # Easter Monday, the early May, late May and August bank holidays.
    holidays = {london(2025, 4, 21, 8), london(2025, 5, 5, 8), london(2025, 5, 26, 8), london(2025, 8, 25, 8)}
    moved = {london(2025, 4, 22, 8), london(2025, 5, 6, 8), london(2025, 5, 27, 8), london(2025, 8, 26, 8)}
    mondays = {london(2025, 3, 24, 8) + timedelta(weeks=w) for w in range(24)}  # to 1 September
    mondays = {london(*m.astimezone(LONDON).timetuple()[:3], 8) for m in mondays}
    expected = {
        "next_working_day": (mondays - holidays) | moved,
        "skip": mondays - holidays,
        "send": mondays,
    }[on_holiday]
    assert set(fired) == expected
    assert len(fired) == len(set(fired))  # each slot once
    for moment in fired:
        assert moment.astimezone(LONDON).hour == 8
    messages = [r.getMessage() for r in caplog.records]
    assert f"bank holidays: england-and-wales (on_holiday = {on_holiday})" in messages
    if on_holiday == "next_working_day":
        assert "next run: Tuesday 27 May 2025 08:00 BST (2025-05-27T07:00:00Z)" in messages
        note = "Monday 26 May 2025 is a bank holiday (Spring Bank Holiday): sending on Tuesday 27 May 2025"
        assert f"{note} at 08:00" in messages
        assert "next run: Monday 26 May 2025 08:00 BST (2025-05-26T07:00:00Z)" not in messages
    if on_holiday == "skip":
        assert "next run: Monday 2 June 2025 08:00 BST (2025-06-02T07:00:00Z)" in messages
        assert not any(m.startswith("next run: Monday 26 May") for m in messages)
    nexts = [m for m in messages if m.startswith("next run: ")]
    assert len(nexts) == len(fired) + 1  # announced once per slot, never a daily firing


def test_loop_with_holidays_retries_a_moved_slot_and_announces_the_retry(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(london(2025, 5, 26, 12))
    clock.install(monkeypatch)
    clock.stop_when = lambda c: c.now() >= london(2025, 5, 27, 9)
    waiting = JobResult("waiting for approval", retry=True)
    results = [JobResult("nothing due"), waiting, waiting, JobResult("sent")]
    calls: list[datetime] = []

    def job(now: datetime) -> JobResult:
        calls.append(now)
        return results.pop(0) if results else JobResult("done")

    caplog.set_level(logging.INFO, logger="digest")
    ScheduleLoop(MONDAY, job, now=clock.now, wait=clock.wait, retry_minutes=15).run()
    tuesday = london(2025, 5, 27, 8)
    assert calls[1:] == [tuesday, tuesday + timedelta(minutes=15), tuesday + timedelta(minutes=30)]
    messages = [r.getMessage() for r in caplog.records]
    assert "next retry: Tuesday 27 May 2025 08:15 BST (2025-05-27T07:15:00Z)" in messages


# --- digest status ----------------------------------------------------------------------------------


def test_digest_status_shows_the_chosen_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_site(tmp_path, [("Midwives celebrated", datetime(2025, 5, 19, 9, tzinfo=UTC))])
    text = config.path.read_text(encoding="utf-8")
    config.path.write_text(
        text.replace(
            'day = "friday"',
            'day = "monday"\nholidays = "england-and-wales"\non_holiday = "next_working_day"',
        ),
        encoding="utf-8",
    )
    monkeypatch.setattr("digest.cli.run._now", lambda: london(2025, 5, 23, 12))
    note = (
        "Monday 26 May 2025 is a bank holiday (Spring Bank Holiday): sending on Tuesday 27 May 2025 at 08:00"
    )
    result = CliRunner().invoke(cli, ["status", "--config", str(config.path), "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert datetime.fromisoformat(status["next_run"]) == utc(2025, 5, 27, 7)
    assert status["next_run_note"] == note
    table = CliRunner().invoke(cli, ["status", "--config", str(config.path)], env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    assert "next scheduled run: Tuesday 27 May 2025 08:00 BST" in table.output
    assert note in table.output
    # A week without a holiday: the key is there, null.
    monkeypatch.setattr("digest.cli.run._now", lambda: london(2025, 6, 3, 12))
    quiet = json.loads(CliRunner().invoke(cli, ["status", "--config", str(config.path), "--json"]).output)
    assert quiet["next_run_note"] is None


def test_holidays_is_imported_only_when_configured(tmp_path: Path) -> None:
    plain = make_site(tmp_path / "plain", [("A", datetime(2025, 5, 19, 9, tzinfo=UTC))])
    probe = (
        "import sys; from digest.config import load_config; from digest.schedule import next_slot; "
        "from datetime import datetime, UTC; c = load_config(__import__('pathlib').Path(sys.argv[1])); "
        "next_slot(c.schedule, datetime.now(UTC)); print('holidays' in sys.modules)"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe, str(plain.path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert run.stdout.strip() == "False"


# --- issue ids of moved slots -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "sent"),
    [
        # Christmas 2025: Friday 26 December (Boxing Day) moves to Monday 29 December, which is in ISO
        # week 2026-W01, like Friday 2 January 2026.
        (
            london(2025, 12, 18, 12),
            london(2026, 1, 2, 9),
            [
                (london(2025, 12, 19, 8), "2025-W51"),
                (london(2025, 12, 29, 8), "2025-W52"),
                (london(2026, 1, 2, 8), "2026-W01"),
            ],
        ),
        # Easter 2026: Good Friday (3 April) moves past Easter Monday to Tuesday 7 April, in the week
        # of Friday 10 April.
        (
            london(2026, 3, 26, 12),
            london(2026, 4, 10, 9),
            [
                (london(2026, 3, 27, 8), "2026-W13"),
                (london(2026, 4, 7, 8), "2026-W14"),
                (london(2026, 4, 10, 8), "2026-W15"),
            ],
        ),
    ],
)
def test_a_slot_moved_into_the_next_week_keeps_its_own_weeks_issue_id(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start: datetime,
    end: datetime,
    sent: list[tuple[datetime, str]],
) -> None:
    items = [(f"News of {when:%d %B}", when - timedelta(days=2)) for when, _ in sent]
    config = make_site(tmp_path, items, send_when_empty=True)
    text = config.path.read_text(encoding="utf-8").replace(
        'day = "friday"', 'day = "friday"\nholidays = "england-and-wales"\non_holiday = "next_working_day"'
    )
    config.path.write_text(text, encoding="utf-8")
    config = load_config(config.path)
    clock = FakeClock(start)
    clock.install(monkeypatch)
    clock.stop_when = lambda c: c.now() >= end
    job = scheduled_job(config, StopFlag(), clock.now)
    ScheduleLoop(config.schedule, job, now=clock.now, wait=clock.wait, max_sleep=6 * 3600).run()

    db = open_store(config)
    try:
        issues = sorted(db.issues.recent_issues(limit=10), key=lambda r: r.window_end)
        runs = {r.slot: (r.outcome, r.issue_id) for r in db.runs.recent_runs(10)}
    finally:
        db.close()
    assert [(r.window_end, r.id) for r in issues] == sent  # one id per slot, never "-2"
    assert all(r.sent_at is not None for r in issues)
    for slot, issue_id in sent:
        assert runs[slot] == ("sent", issue_id)


@pytest.mark.parametrize(
    ("as_of", "issue_id"),
    [
        (london(2026, 4, 2, 12), "2026-W14"),  # before Good Friday: the issue the moved slot sends
        (london(2026, 4, 6, 12), "2026-W14"),  # Easter Monday, in week 15: still that issue
        (london(2026, 4, 7, 8), "2026-W14"),  # the moved slot itself
        (london(2026, 4, 7, 9), "2026-W15"),  # after it: Friday 10 April's issue
        (london(2026, 4, 10, 8), "2026-W15"),
        (london(2025, 12, 27, 12), "2025-W52"),  # the weekend before Monday 29 December 2025
        (london(2025, 12, 29, 10), "2026-W01"),
        (london(2026, 12, 30, 12), "2026-W53"),  # 1 January 2027 (a Friday) moves to Monday 4 January
        (london(2027, 1, 4, 8), "2026-W53"),
        (london(2027, 1, 8, 8), "2027-W01"),
    ],
)
def test_a_build_between_a_holiday_and_its_moved_slot_names_the_issue_the_slot_sends(
    as_of: datetime, issue_id: str
) -> None:
    named = Window(start=as_of - timedelta(days=7), end=issue_week_of(FRIDAY, as_of))
    assert base_issue_id(named, "Europe/London") == issue_id
    # Without holidays, or when slots are not moved, the window's own week names the issue.
    for settings_ in (weekly("friday", "send"), weekly("friday", "skip")):
        assert issue_week_of(settings_, as_of) == as_of
