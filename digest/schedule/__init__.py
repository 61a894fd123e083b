"""The weekly schedule: slot arithmetic in the configured time zone, the catch-up rule, and the loop.

A *slot* is one scheduled moment, e.g. Friday 08:00 Europe/London, held as an aware UTC datetime. Slots
are computed here with zoneinfo, so they are right on both sides of the BST/GMT changes; they identify
runs in state (the unique `runs.slot`), which is what keeps a slot from running twice. With
`[schedule] holidays`, a week whose configured day is a bank holiday keeps its slot, moves it to the
next working day at the same local time, or has none (`on_holiday`); `place` decides, and every slot
function here goes through it, so a moved slot is a slot like any other.

`ScheduleLoop` drives the `schedule` library (`every().friday.at("08:00", "Europe/London")`) to fire
the job, and cross-checks each firing against the slot computed here. The library reads the wall clock
itself (`datetime.datetime.now()`); the loop reads `now` and waits through the functions it is handed,
so tests run it on a controlled clock with no real sleeping (they point the library's clock at the same
controlled clock). With holidays the library fires daily at the configured time and only the firings
that reach a new slot call the job. The loop never sleeps longer than `max_sleep` seconds at a time,
so a suspended machine, a changed system clock or a DST change of the host's own zone cannot make it
oversleep.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import schedule as schedule_lib
from babel.dates import format_datetime

from digest.config import ScheduleSettings
from digest.config.holidays import bank_holiday
from digest.errors import ConfigError
from digest.state import runs as run_state
from digest.state.runs import RunRecord

log = logging.getLogger(__name__)

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# How far a firing of the schedule library may be from the slot computed here before it is reported.
_FIRING_TOLERANCE = timedelta(minutes=5)
_SATURDAY = 5
# How many weeks in a row may have no slot (every one skipped for a bank holiday) before a search gives up.
_MAX_WEEKS = 60
_TICK = timedelta(microseconds=1)


def slot_on(settings: ScheduleSettings, day: date) -> datetime:
    """The slot time on a local calendar day, as aware UTC.

    A local time that does not exist (inside a spring-forward gap) moves forward by the gap, as clocks
    do; a local time that happens twice (autumn fall-back) is taken at its first occurrence.
    """
    # fold=0 reads a local time with the offset in force before a change (PEP 495): a time in a
    # spring-forward gap lands after the gap, a repeated autumn time is its first occurrence.
    local = datetime.combine(day, settings.at, tzinfo=ZoneInfo(settings.timezone)).replace(fold=0)
    return local.astimezone(UTC)


def _weekday(settings: ScheduleSettings) -> int:
    return _WEEKDAYS.index(settings.day)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one week's slot lands after `[schedule] holidays` / `on_holiday`.

    `nominal` is the configured day and time that week; `slot` is when it runs (the same, a later working
    day, or None: skipped); `holiday` names the bank holiday on the configured day, if there is one.
    """

    nominal: datetime
    slot: datetime | None
    holiday: str | None = None


def working_day(region: str, day: date) -> bool:
    return day.weekday() < _SATURDAY and bank_holiday(region, day) is None


def place(settings: ScheduleSettings, day: date) -> Placement:
    """The slot of the week whose configured day is the local date `day`.

    On a bank holiday of `[schedule] holidays`: `send` keeps the slot, `next_working_day` moves it to the
    first later day that is neither a weekend day nor a bank holiday (same local time; skipped if there
    is none within six days, so a slot never passes the next week's), `skip` drops it.
    """
    nominal = slot_on(settings, day)
    if settings.holidays is None:
        return Placement(nominal, nominal)
    holiday = bank_holiday(settings.holidays, day)
    if holiday is None or settings.on_holiday == "send":
        return Placement(nominal, nominal, holiday)
    if settings.on_holiday == "next_working_day":
        for ahead in range(1, 7):
            later = day + timedelta(days=ahead)
            if working_day(settings.holidays, later):
                return Placement(nominal, slot_on(settings, later), holiday)
    return Placement(nominal, None, holiday)


def _nominal_day(settings: ScheduleSettings, now: datetime) -> date:
    """The local date of the latest configured day whose slot time is at or before `now`."""
    local_day = now.astimezone(ZoneInfo(settings.timezone)).date()
    day = local_day - timedelta(days=(local_day.weekday() - _weekday(settings)) % 7)
    return day if slot_on(settings, day) <= now else day - timedelta(days=7)


def _weeks(settings: ScheduleSettings, now: datetime, step: int) -> Iterator[Placement]:
    """The placements of the weeks from the one of `now` on, going back (`step` -1) or forward (+1)."""
    day = _nominal_day(settings, now)
    for week in range(_MAX_WEEKS):
        yield place(settings, day + timedelta(weeks=week * step))
    raise ConfigError(
        f"schedule.holidays: no slot within {_MAX_WEEKS} weeks of {now.isoformat()}",
        hint="check [schedule] holidays and on_holiday",
    )


def placement_before(settings: ScheduleSettings, now: datetime) -> Placement:
    """The placement of the latest slot at or before `now` (a moved slot counts at its new time)."""
    # Slots only move forward, by less than a week, so they stay in order: the first found is the latest.
    return next(p for p in _weeks(settings, now, -1) if p.slot is not None and p.slot <= now)


def placement_after(settings: ScheduleSettings, now: datetime) -> Placement:
    """The placement of the first slot strictly after `now`."""
    return next(p for p in _weeks(settings, now, 1) if p.slot is not None and p.slot > now)


def issue_week_of(settings: ScheduleSettings, end: datetime) -> datetime:
    """The moment whose week names the issue whose window ends at `end` (the id `2026-W14`).

    That is `end` itself, unless the first slot at or after `end` is one a bank holiday moved
    (`on_holiday = "next_working_day"`): then it is the configured day the slot was moved from. Each
    week's slot so keeps its own week's id wherever it lands: Good Friday 2026 (week 14), sent on
    Tuesday 7 April, is `2026-W14`, and Friday 10 April stays `2026-W15`, whichever of them was sent;
    a build or preview between the holiday and the moved slot names the issue the slot will send.
    """
    if settings.holidays is None or settings.on_holiday != "next_working_day":
        return end
    placement = placement_after(settings, end - _TICK)
    if placement.slot is None or placement.slot == placement.nominal:
        return end
    return placement.nominal


def previous_slot(settings: ScheduleSettings, now: datetime) -> datetime:
    """The latest slot at or before `now` (aware UTC), bank holidays applied."""
    slot = placement_before(settings, now).slot
    assert slot is not None  # noqa: S101 - placement_before only returns placed slots
    return slot


def next_slot(settings: ScheduleSettings, now: datetime) -> datetime:
    """The first slot strictly after `now` (aware UTC), bank holidays applied."""
    slot = placement_after(settings, now).slot
    assert slot is not None  # noqa: S101 - placement_after only returns placed slots
    return slot


def local_day(moment: datetime, timezone: str) -> str:
    local = moment.astimezone(ZoneInfo(timezone))
    return f"{local:%A} {local.day} {local:%B %Y}"


def holiday_note(settings: ScheduleSettings, placement: Placement) -> str | None:
    """What a bank holiday did to one week's slot, in words; None when the week has no holiday.

    "Monday 26 May 2025 is a bank holiday (Spring Bank Holiday): sending on Tuesday 27 May 2025 at 08:00"
    """
    if placement.holiday is None:
        return None
    tz = settings.timezone
    said = f"{local_day(placement.nominal, tz)} is a bank holiday ({placement.holiday})"
    if placement.slot is None:
        why = "on_holiday = skip" if settings.on_holiday == "skip" else "no working day before the next"
        return f"{said}: no issue that week ({why})"
    at = f"{placement.slot.astimezone(ZoneInfo(tz)):%H:%M}"
    if placement.slot == placement.nominal:
        return f"{said}: sending as usual at {at} (on_holiday = send)"
    return f"{said}: sending on {local_day(placement.slot, tz)} at {at}"


def next_slot_note(settings: ScheduleSettings, now: datetime) -> str | None:
    """Why the next slot is where it is when a bank holiday is involved, else None (for `digest status`
    and the schedule's log): the weeks skipped since `now` and the holiday that moved the next slot."""
    if settings.holidays is None:
        return None
    notes: list[str] = []
    for placement in _weeks(settings, now, 1):
        if placement.slot is not None and placement.slot <= now:
            continue  # this week's slot has already been
        note = holiday_note(settings, placement)
        if note:
            notes.append(note)
        if placement.slot is not None:
            break
    return "; ".join(notes) or None


def describe_time(moment: datetime, timezone: str) -> str:
    """ "Friday 28 March 2025 08:00 GMT (2025-03-28T08:00:00Z)": local wall time plus the UTC instant."""
    local = moment.astimezone(ZoneInfo(timezone))
    utc = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{local:%A} {local.day} {local:%B %Y %H:%M %Z} ({utc})"


def friendly_time(moment: datetime, timezone: str, locale: str) -> str:
    """ "Monday 23 November 2026, 19:12 GMT": a time as `digest build`, `digest run` and `digest status`
    show it to people ([digest] timezone and locale); JSON output keeps ISO 8601."""
    local = moment.astimezone(ZoneInfo(timezone))
    return str(format_datetime(local, "EEEE d MMMM y, HH:mm zzz", locale=locale))


class Action(enum.StrEnum):
    """What to do about the latest slot when the job wakes up."""

    RUN = "run"
    SKIP = "skip"  # missed by more than catch_up_hours: record it as skipped, once
    NONE = "none"  # nothing due


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on the latest slot; `reason` says why, for the logs and the runs table."""

    action: Action
    slot: datetime
    reason: str
    run: RunRecord | None = None


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def decide(
    settings: ScheduleSettings, now: datetime, record: RunRecord | None, *, first: bool = False
) -> Decision:
    """Whether the latest slot at or before `now` should run now, given its run record (if any).

    Call it while holding the run lock: an unfinished record then means its process died mid-run.
    - no record: run it if at most `catch_up_hours` late, else skip it (recorded once, with why), except
      on the very first start (`first`: no slot has ever run), when nothing was missed;
    - unfinished (its process died): resume it within `catch_up_hours`, else give it up;
    - waiting for approval or failed: try again within `catch_up_hours`;
    - sent, nothing new, skipped: nothing to do until the next slot.
    """
    placement = placement_before(settings, now)
    slot = previous_slot(settings, now)
    when = describe_time(slot, settings.timezone)
    if placement.holiday is not None:
        moved_from = local_day(placement.nominal, settings.timezone)
        when += (
            f" (moved from {moved_from}, a bank holiday: {placement.holiday})"
            if placement.slot != placement.nominal
            else f" (a bank holiday: {placement.holiday})"
        )
    return decide_slot(slot, when, settings.catch_up_hours, now, record, first=first)


def decide_slot(
    slot: datetime,
    when: str,
    catch_up_hours: float,
    now: datetime,
    record: RunRecord | None,
    *,
    first: bool = False,
) -> Decision:
    """`decide` for a slot already found (`when` describes it): the catch-up rule, whatever the cadence."""
    late = now - slot
    window = timedelta(hours=catch_up_hours)
    within = late <= window
    limit = f"catch_up_hours = {catch_up_hours:g}"
    if record is None:
        if late < timedelta(minutes=1):
            return Decision(Action.RUN, slot, f"scheduled run for {when}")
        if within:
            return Decision(Action.RUN, slot, f"catching up the run of {when}, missed by {_hours(late)}")
        if first:
            return Decision(
                Action.NONE, slot, f"first start: the slot of {when} was before the schedule began"
            )
        return Decision(
            Action.SKIP,
            slot,
            f"the run of {when} was missed by {_hours(late)}, more than {limit}; "
            "it is not sent late (run `digest run` to send now)",
        )
    if record.outcome is None:
        if within:
            return Decision(Action.RUN, slot, f"resuming the interrupted run of {when}", record)
        return Decision(
            Action.SKIP,
            slot,
            f"the run of {when} was interrupted and is now {_hours(late)} late, more than {limit}; "
            "it is not resumed (run `digest run` to finish it)",
            record,
        )
    if record.outcome in run_state.FINAL:
        return Decision(Action.NONE, slot, f"the run of {when} is done: {record.outcome}", record)
    if within:
        return Decision(
            Action.RUN, slot, f"trying the run of {when} again (it was: {record.outcome})", record
        )
    return Decision(
        Action.NONE,
        slot,
        f"the run of {when} ended '{record.outcome}' and is now more than {limit} late; "
        "no more attempts until the next slot",
        record,
    )


@dataclass(frozen=True, slots=True)
class JobResult:
    """What one firing of the job did; `retry` asks the loop to try the same slot again later."""

    summary: str
    retry: bool = False


Job = Callable[[datetime], JobResult]


class ScheduleLoop:
    """The foreground loop of `digest schedule`.

    `job(now)` is called once at start (catching up a missed slot), at every slot, and every
    `retry_minutes` while its last result asked for a retry. `now()` returns aware UTC; `wait(seconds)`
    waits at most that long and returns True when the loop should stop (a signal arrived).
    """

    def __init__(
        self,
        settings: ScheduleSettings,
        job: Job,
        *,
        now: Callable[[], datetime],
        wait: Callable[[float], bool],
        retry_minutes: int = 15,
        max_sleep: float = 60.0,
        tick: Callable[[datetime], None] | None = None,
    ) -> None:
        self.settings = settings
        self.tick = tick  # called at every wake-up (at most `max_sleep` apart): work ahead of a slot
        self.job = job
        self.now = now
        self.wait = wait
        self.retry_minutes = retry_minutes
        self.max_sleep = max_sleep
        self.scheduler = schedule_lib.Scheduler()
        self._retrying = False
        self._announced: datetime | None = None
        self._handled: datetime | None = None  # the latest slot at the last call of the job

    def _weekly(self) -> None:
        if self.settings.holidays is not None:
            # A bank holiday can move a slot to another weekday: fire at the time every day and let the
            # slots computed here say which firings are slots (see _fire_slot).
            daily = self.scheduler.every().day
            daily.at(self.settings.time, self.settings.timezone).do(self._fire_slot).tag("weekly")
            return
        weekly = getattr(self.scheduler.every(), self.settings.day)
        weekly.at(self.settings.time, self.settings.timezone).do(self._fire_slot).tag("weekly")

    def _fire_slot(self) -> None:
        now = self.now()
        expected = previous_slot(self.settings, now)
        if self.settings.holidays is not None and expected == self._handled:
            log.debug("no slot at %s (bank holidays move or skip slots)", now.isoformat())
            return
        if now - expected > _FIRING_TOLERANCE:
            log.warning(
                "the schedule fired at %s, %s after the slot of %s; running that slot's checks anyway",
                now.isoformat(),
                _hours(now - expected),
                describe_time(expected, self.settings.timezone),
            )
        self._call(now)

    def _fire_retry(self) -> type[schedule_lib.CancelJob] | None:
        if not self._retrying:
            return schedule_lib.CancelJob
        self._call(self.now())
        return None if self._retrying else schedule_lib.CancelJob

    def _call(self, now: datetime) -> None:
        self._handled = previous_slot(self.settings, now)
        result = self.job(now)
        log.debug("job done: %s", result.summary)
        if result.retry and not self._retrying:
            self._retrying = True
            self.scheduler.every(self.retry_minutes).minutes.do(self._fire_retry).tag("retry")
            log.info("the slot will be tried again every %d minutes", self.retry_minutes)
        elif not result.retry and self._retrying:
            self._retrying = False
            self.scheduler.clear("retry")
        self._announced = None

    def next_run(self) -> datetime:
        """When the loop next calls the job (aware UTC), according to the schedule library."""
        fire: datetime | None = self.scheduler.next_run
        if fire is None:  # pragma: no cover - the weekly job is never cancelled
            return next_slot(self.settings, self.now())
        # The library keeps naive local wall-clock times; astimezone() reads them as the host's zone.
        return fire.astimezone(UTC)

    def _announce(self) -> None:
        upcoming = self.next_run()
        slot = next_slot(self.settings, self.now())
        if self.settings.holidays is not None:  # the daily firing is not the next run: the slot is
            upcoming = min(upcoming, slot) if self._retrying else slot
        if upcoming == self._announced:
            return
        self._announced = upcoming
        kind = "retry" if self._retrying and upcoming < slot else "run"
        log.info(
            "next %s: %s",
            kind,
            describe_time(upcoming, self.settings.timezone),
            extra={"next_run": upcoming.isoformat()},
        )
        note = next_slot_note(self.settings, self.now()) if kind == "run" else None
        if note:
            log.info("%s", note, extra={"next_run_note": note})

    def run(self) -> None:
        """Run until `wait` reports a stop. Catches up a missed slot first."""
        log.info(
            "schedule: every %s at %s %s (catch up within %g h)",
            self.settings.day,
            self.settings.time,
            self.settings.timezone,
            self.settings.catch_up_hours,
        )
        if self.settings.holidays is not None:
            log.info("bank holidays: %s (on_holiday = %s)", self.settings.holidays, self.settings.on_holiday)
        self._weekly()
        self._call(self.now())
        while True:
            self._announce()
            delay = (self.next_run() - self.now()).total_seconds()
            if self.wait(min(max(delay, 0.01), self.max_sleep)):
                log.info("stop requested: the schedule loop ends")
                return
            self.scheduler.run_pending()
            if self.tick is not None:
                self.tick(self.now())
