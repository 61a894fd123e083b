"""Bank holidays (`[schedule] holidays`, `on_holiday`) for every edition cadence (issue 15 item 2): a daily
edition over Easter and Christmas, a monthly one on the August bank holiday and 1 January, a cron one over
the late May bank holiday, each in all three modes on the controlled clock; issue ids unique and stable;
the chosen day in the log, the run's reason and `digest status`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from run_site import make_site
from schedule_clock import FakeClock

from digest.cli import cli
from digest.cli.run import StopFlag, scheduled_job
from digest.compose import edition_issue_id
from digest.config import Config, ScheduleSettings, load_config
from digest.config.editions import edition_config
from digest.config.schema import Edition
from digest.models import Window
from digest.pipeline.run import prepare_ahead
from digest.schedule.cadence import (
    EditionsLoop,
    decide_edition,
    issue_named_at,
    slot_after,
    slot_before,
    slot_note,
)
from digest.state.store import open_store

LONDON = ZoneInfo("Europe/London")
MODES = ("send", "skip", "next_working_day")


@pytest.fixture(autouse=True)
def _restore_host_zone() -> Iterator[None]:
    yield
    time.tzset()


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON).astimezone(UTC)  # type: ignore[misc]


def _settings(on_holiday: str) -> ScheduleSettings:
    return ScheduleSettings(
        day="friday",
        time="08:00",
        timezone="Europe/London",
        holidays="england-and-wales",
        on_holiday=on_holiday,  # type: ignore[arg-type]
    )


def _edition(cadence: str, *, day: str = "", cron: str = "", at: str = "08:00") -> Edition:
    return Edition(
        id="ed",
        title="Edition",
        cadence=cadence,  # type: ignore[arg-type]
        time=at,
        timezone="Europe/London",
        day=day,
        cron=cron,
        sources=(),
        priorities=(),
        audience=(),
        theme=None,
    )


def _slots(settings: ScheduleSettings, edition: Edition, start: datetime, end: datetime) -> list[datetime]:
    found, now = [], start
    while (now := slot_after(settings, edition, now)) <= end:
        assert slot_before(settings, edition, now) == now
        assert slot_before(settings, edition, now - timedelta(seconds=1)) < now
        found.append(now)
    return found


def _site(tmp_path: Path, editions: str, on_holiday: str, items: list[tuple[str, datetime]]) -> Config:
    config = make_site(tmp_path, items, extra=editions, send_when_empty=True)
    text = config.path.read_text(encoding="utf-8").replace(
        'day = "friday"', f'day = "friday"\nholidays = "england-and-wales"\non_holiday = "{on_holiday}"', 1
    )
    config.path.write_text(text, encoding="utf-8")
    return load_config(config.path)


def _run_loop(config: Config, start: datetime, end: datetime) -> None:
    clock = FakeClock(start)
    clock.stop_when = lambda c: c.now() >= end
    narrowed = [edition_config(config, e.id) for e in config.editions]
    EditionsLoop(
        [(c.edition, c.schedule, scheduled_job(c, StopFlag(), clock.now)) for c in narrowed if c.edition],
        now=clock.now,
        wait=clock.wait,
        max_sleep=6 * 3600,
    ).run()


def _sent(config: Config, edition: str) -> list[tuple[datetime, str, datetime]]:
    """(slot, issue id, window start) of every run of the edition, which must all have sent."""
    with open_store(edition_config(config, edition)) as db:
        runs = sorted(db.runs.recent_runs(100), key=lambda r: str(r.slot))
        issues = {r.id: r for r in db.issues.recent_issues(limit=100)}
    assert all(r.outcome == "sent" for r in runs), [(r.slot, r.outcome) for r in runs]
    out = []
    for run in runs:
        assert run.slot is not None and run.issue_id is not None
        issue = issues[run.issue_id]
        assert issue.window_end == run.slot and issue.sent_at is not None
        out.append((run.slot, run.issue_id, issue.window_start))
    ids = [issue_id for _, issue_id, _ in out]
    assert len(set(ids)) == len(ids), ids  # one id per issue, never "-2"
    return out


# --- daily: Easter and Christmas ---------------------------------------------------------------------

DAILY = '[[editions]]\nid = "res"\ntitle = "Residents daily"\ncadence = "daily"\ntime = "07:00"\n'
# Easter 2025: Good Friday 18 April, Easter Monday 21 April; Christmas 2025: Thursday 25 and Friday 26.
EASTER = (london(2025, 4, 17, 6, 30), london(2025, 4, 23, 7, 30), (18, 21))
CHRISTMAS = (london(2025, 12, 24, 6, 30), london(2025, 12, 30, 7, 30), (25, 26))


@pytest.mark.parametrize("period", [EASTER, CHRISTMAS], ids=["easter", "christmas"])
@pytest.mark.parametrize("on_holiday", MODES)
def test_a_daily_edition_over_easter_and_christmas_in_each_mode(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    period: tuple[datetime, datetime, tuple[int, ...]],
    on_holiday: str,
) -> None:
    start, end, holidays = period
    first = start.astimezone(LONDON).date()
    days = [first + timedelta(days=n) for n in range(7)]
    items = [(f"News of {d:%d %B}", london(d.year, d.month, d.day, 6)) for d in days]
    items.append(("Holiday opening hours", london(first.year, first.month, holidays[0], 12)))
    config = _site(tmp_path, DAILY, on_holiday, items)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    with caplog.at_level(logging.INFO):
        _run_loop(config, start, end)

    kept = [d for d in days if on_holiday == "send" or d.day not in holidays]
    # The loop logs what each holiday does to the next run, in every mode.
    holiday = london(first.year, first.month, holidays[0])
    said = f"edition res: {holiday.astimezone(LONDON):%A} {holidays[0]} "
    notes = [r.getMessage() for r in caplog.records if r.getMessage().startswith(said)]
    assert notes and f"(on_holiday = {on_holiday}" in notes[0], notes
    sent = _sent(config, "res")
    # `send`: every day; `skip` and `next_working_day`: never on the holiday, and never two sends a day.
    assert [slot for slot, _, _ in sent] == [london(d.year, d.month, d.day, 7) for d in kept]
    assert [issue_id for _, issue_id, _ in sent] == [f"res-{d:%Y-%m-%d}" for d in kept]
    # Each issue starts where the last sent one ended: the issue after a holiday covers the holiday too.
    for (slot, _, _), (_, _, window_start) in pairwise(sent):
        assert window_start == slot
    # So no entry is lost, whichever mode: the holiday's news goes out the next day it sends.
    with open_store(edition_config(config, "res")) as db:
        counts = [db.issues.get_issue(issue_id) for _, issue_id, _ in sent]
    assert sum(r.entry_count for r in counts if r is not None) == len(items)


def test_the_daily_note_says_the_holiday_is_merged_or_skipped_or_sent() -> None:
    daily = _edition("daily", at="07:00")
    thursday = london(2025, 4, 17, 12)
    assert slot_note(_settings("next_working_day"), daily, thursday) == (
        "Friday 18 April 2025 is a bank holiday (Good Friday): merged into the issue of Saturday"
        " 19 April 2025 at 07:00 (on_holiday = next_working_day; the next working day is not before the"
        " next slot)"
    )
    assert slot_note(_settings("skip"), daily, thursday) == (
        "Friday 18 April 2025 is a bank holiday (Good Friday): no issue that day (on_holiday = skip)"
    )
    assert slot_note(_settings("send"), daily, thursday) == (
        "Friday 18 April 2025 is a bank holiday (Good Friday): sending as usual at 07:00 (on_holiday = send)"
    )
    assert slot_note(_settings("next_working_day"), daily, london(2025, 4, 22, 12)) is None


# --- monthly: the August bank holiday, 1 January, and a move into the next month -----------------------

MONTHLY = '[[editions]]\nid = "gp"\ntitle = "GP monthly"\ncadence = "monthly"\nday = {day}\ntime = "09:30"\n'


@pytest.mark.parametrize(
    ("day", "start", "end", "expected"),
    [
        # Monday 25 August 2025, the Late Summer Bank Holiday.
        (
            25,
            london(2025, 8, 20, 12),
            london(2025, 8, 28, 12),
            {
                "send": [(london(2025, 8, 25, 9, 30), "gp-2025-08")],
                "next_working_day": [(london(2025, 8, 26, 9, 30), "gp-2025-08")],
                "skip": [],
            },
        ),
        # Thursday 1 January 2026.
        (
            1,
            london(2025, 12, 30, 12),
            london(2026, 1, 5, 12),
            {
                "send": [(london(2026, 1, 1, 9, 30), "gp-2026-01")],
                "next_working_day": [(london(2026, 1, 2, 9, 30), "gp-2026-01")],
                "skip": [],
            },
        ),
    ],
    ids=["august", "new-year"],
)
@pytest.mark.parametrize("on_holiday", MODES)
def test_a_monthly_edition_on_a_bank_holiday_in_each_mode(  # noqa: PLR0917 - pytest passes each by name
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    day: int,
    start: datetime,
    end: datetime,
    expected: dict[str, list[tuple[datetime, str]]],
    on_holiday: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = _site(tmp_path, MONTHLY.format(day=day), on_holiday, [("Practice news", start)])
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    with caplog.at_level(logging.INFO):
        _run_loop(config, start, end)
    assert [(slot, issue_id) for slot, issue_id, _ in _sent(config, "gp")] == expected[on_holiday]
    # The chosen day is logged with the next run, in every mode.
    said = [m for r in caplog.records if " is a bank holiday " in (m := r.getMessage())]
    assert said and said[0].startswith("edition gp: "), said
    moved = expected["next_working_day"][0][0].astimezone(LONDON)
    chosen = {
        "send": "sending as usual at 09:30 (on_holiday = send)",
        "skip": "no issue that month (on_holiday = skip)",
        "next_working_day": f"sending on {moved:%A} {moved.day} {moved:%B %Y} at 09:30",
    }
    assert said[0].endswith(chosen[on_holiday]), said
    # `skip` drops the month: the next slot is the next month's, on its day.
    gp = edition_config(config, "gp")
    assert gp.edition is not None
    assert slot_after(gp.schedule, gp.edition, end).astimezone(LONDON).day == day


def test_a_monthly_slot_moved_into_the_next_month_keeps_its_months_id() -> None:
    # Good Friday 1997 was 28 March and Easter Monday 31 March: day 28 moves to Tuesday 1 April.
    monthly = _edition("monthly", day="28", at="09:30")
    settings = _settings("next_working_day")
    slots = _slots(settings, monthly, london(1997, 3, 1), london(1997, 5, 1))
    assert slots == [london(1997, 4, 1, 9, 30), london(1997, 4, 28, 9, 30)]
    names = [
        edition_issue_id(
            Window(start=s - timedelta(days=30), end=issue_named_at(settings, monthly, s)),
            "gp",
            "monthly",
            "Europe/London",
        )
        for s in slots
    ]
    assert names == ["gp-1997-03", "gp-1997-04"]
    # A build on Easter Monday names the issue the moved slot sends.
    named = issue_named_at(settings, monthly, london(1997, 3, 31, 12))
    assert named == london(1997, 3, 28, 9, 30)


# --- cron: the late May bank holiday ---------------------------------------------------------------------

CRON = '[[editions]]\nid = "brief"\ntitle = "Twice weekly"\ncadence = "{cron}"\n'


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        (
            "0 8 * * 1,4",
            {
                "send": [((5, 22), "05-22"), ((5, 26), "05-26"), ((5, 29), "05-29")],
                # Tuesday 27 May is before Thursday's slot: the Monday slot moves there, keeping its id.
                "next_working_day": [((5, 22), "05-22"), ((5, 27), "05-26"), ((5, 29), "05-29")],
                "skip": [((5, 22), "05-22"), ((5, 29), "05-29")],
            },
        ),
        (
            "0 8 * * 1,2",
            {
                "send": [((5, 26), "05-26"), ((5, 27), "05-27")],
                # Tuesday 27 May is the next slot itself: Monday's is merged into it, one send that day.
                "next_working_day": [((5, 27), "05-27")],
                "skip": [((5, 27), "05-27")],
            },
        ),
    ],
    ids=["mon-thu", "mon-tue"],
)
@pytest.mark.parametrize("on_holiday", MODES)
def test_a_cron_edition_over_the_late_may_bank_holiday_in_each_mode(  # noqa: PLR0917 - pytest passes each by name
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    cron: str,
    expected: dict[str, list[tuple[tuple[int, int], str]]],
    on_holiday: str,
) -> None:
    start, end = london(2025, 5, 21, 12), london(2025, 5, 29, 12)
    items = [(f"News {n}", start + timedelta(days=n)) for n in range(8)]
    config = _site(tmp_path, CRON.format(cron=cron), on_holiday, items)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    with caplog.at_level(logging.INFO):
        _run_loop(config, start, end)
    got = [(slot, issue_id) for slot, issue_id, _ in _sent(config, "brief")]
    assert got == [(london(2025, m, d, 8), f"brief-2025-{i}") for (m, d), i in expected[on_holiday]]
    messages = [r.getMessage() for r in caplog.records]
    if cron == "0 8 * * 1,4" and on_holiday == "next_working_day":
        note = (
            "edition brief: Monday 26 May 2025 is a bank holiday (Spring Bank Holiday): sending on"
            " Tuesday 27 May 2025 at 08:00"
        )
        assert note in messages
        assert any(
            "catch" not in m and "moved from Monday 26 May 2025, a bank holiday: Spring Bank Holiday" in m
            for m in messages
        ), messages
    else:
        assert not any("moved from" in m for m in messages)
    said = [m for m in messages if m.startswith("edition brief: Monday 26 May 2025 is a bank holiday")]
    chosen = {
        "send": "sending as usual at 08:00 (on_holiday = send)",
        "skip": "no issue for that slot (on_holiday = skip)",
        "next_working_day": "sending on Tuesday 27 May 2025 at 08:00"
        if cron == "0 8 * * 1,4"
        else "merged into the issue of Tuesday 27 May 2025 at 08:00",
    }
    assert said and chosen[on_holiday] in said[0], said


def test_the_moved_cron_slot_is_decided_with_the_holiday_in_its_reason() -> None:
    brief = _edition("cron", cron="0 8 * * 1,4")
    settings = _settings("next_working_day")
    verdict = decide_edition(settings, brief, london(2025, 5, 27, 8), None)
    assert verdict.slot == london(2025, 5, 27, 8)
    assert "moved from Monday 26 May 2025, a bank holiday: Spring Bank Holiday" in verdict.reason
    # On the holiday itself nothing is due: the latest slot is still Thursday's.
    assert slot_before(settings, brief, london(2025, 5, 26, 12)) == london(2025, 5, 22, 8)


def test_a_build_between_the_holiday_and_the_moved_cron_slot_names_the_issue_it_sends() -> None:
    brief = _edition("cron", cron="0 8 * * 1,4")
    settings = _settings("next_working_day")
    for as_of, issue_id in [
        (london(2025, 5, 23, 12), "brief-2025-05-26"),
        (london(2025, 5, 26, 12), "brief-2025-05-26"),
        (london(2025, 5, 27, 8), "brief-2025-05-26"),
        (london(2025, 5, 27, 9), "brief-2025-05-27"),  # after the moved slot: Thursday's issue's window
        (london(2025, 5, 29, 8), "brief-2025-05-29"),
    ]:
        named = Window(start=as_of - timedelta(days=3), end=issue_named_at(settings, brief, as_of))
        assert edition_issue_id(named, "brief", "cron", "Europe/London") == issue_id
    for mode in ("send", "skip"):
        assert issue_named_at(_settings(mode), brief, london(2025, 5, 26, 12)) == london(2025, 5, 26, 12)


# --- digest status -----------------------------------------------------------------------------------


def test_digest_status_shows_each_editions_chosen_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _site(
        tmp_path,
        MONTHLY.format(day=25) + CRON.format(cron="0 8 * * 1,4"),
        "next_working_day",
        [("Practice news", london(2025, 8, 20, 12))],
    )
    monkeypatch.setattr("digest.cli.run._now", lambda: london(2025, 8, 22, 12))
    gp_note = (
        "Monday 25 August 2025 is a bank holiday (Late Summer Bank Holiday): sending on Tuesday"
        " 26 August 2025 at 09:30"
    )
    brief_note = (
        "Monday 25 August 2025 is a bank holiday (Late Summer Bank Holiday): sending on Tuesday"
        " 26 August 2025 at 08:00"
    )
    args = ["status", "--config", str(config.path)]
    one = CliRunner().invoke(cli, [*args, "--edition", "gp", "--json"])
    assert one.exit_code == 0, one.output
    status = json.loads(one.output)
    assert datetime.fromisoformat(status["next_run"]) == london(2025, 8, 26, 9, 30)
    assert status["next_run_note"] == gp_note
    table = CliRunner().invoke(cli, [*args, "--edition", "gp"], env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    assert gp_note in table.output
    every = CliRunner().invoke(cli, [*args, "--json"])
    assert every.exit_code == 0, every.output
    editions = {e["id"]: e for e in json.loads(every.output)["editions"]}
    assert editions["gp"]["next_run_note"] == gp_note
    assert editions["brief"]["next_run_note"] == brief_note
    assert datetime.fromisoformat(editions["brief"]["next_run"]) == london(2025, 8, 26, 8)
    text = CliRunner().invoke(cli, args, env={"COLUMNS": "250"})
    assert gp_note in text.output and brief_note in text.output
    # Without a holiday ahead: null.
    monkeypatch.setattr("digest.cli.run._now", lambda: london(2025, 9, 2, 12))
    quiet = json.loads(CliRunner().invoke(cli, [*args, "--edition", "gp", "--json"]).output)
    assert quiet["next_run_note"] is None


def test_the_draft_ahead_of_a_moved_cron_slot_is_built_for_that_slot(tmp_path: Path) -> None:
    notify = '[notify]\nto = ["comms@example.org"]\npreview_url = "https://preview.example/"\n'
    config = _site(
        tmp_path,
        notify + CRON.format(cron="0 8 * * 1,4"),
        "next_working_day",
        [("News", london(2025, 5, 23))],
    )
    text = config.path.read_text(encoding="utf-8").replace(
        "catch_up_hours = 12", "catch_up_hours = 12\ndraft_ahead_hours = 24"
    )
    config.path.write_text(text, encoding="utf-8")
    brief = edition_config(load_config(config.path), "brief")
    # Monday 26 May 2025 12:00: the slot moved to Tuesday 08:00 is 20 hours away; the draft is its issue.
    assert prepare_ahead(brief, now=london(2025, 5, 26, 12)) == "brief-2025-05-26"
    assert prepare_ahead(brief, now=london(2025, 5, 26, 13)) is None  # once per slot
