"""Slots of `[[editions]]`, whatever their cadence, and the loop that runs every edition at its own slots.

A weekly edition's slots are those of `[schedule]` narrowed to it (its day, time and time zone; bank
holidays applied as for the single edition). Daily, monthly and cron editions are read as a cron
expression (`Edition.cron_expression`) evaluated with croniter in the edition's time zone, so a slot
keeps its local wall time on both sides of a DST change. `decide_edition` applies the same catch-up
rule as `digest.schedule.decide`.

`[schedule] holidays` / `on_holiday` apply to every cadence (`place_cron`): a slot on a bank holiday is
kept (`send`), dropped (`skip`), or moved to the same local time on the next working day (neither a
Saturday, a Sunday nor a bank holiday) when that is still before the cadence's next slot; when it is not
(a daily edition's next slot is always first), the holiday's slot is merged into the next slot that runs:
no issue of its own, and the next issue's window, which starts where the last sent one ended, covers it.
Slots so only move forward and never past the next one, and a moved slot keeps its own slot's issue id
(`issue_named_at`).

`EditionsLoop` is `digest schedule` for a config with editions: it wakes at the earliest next slot of
any edition (never sleeping more than `max_sleep` at a time), calls the job once for each edition whose
latest slot is new, and calls an edition again every `retry_minutes` while its last result asked for a
retry. Like `ScheduleLoop` it reads `now` and waits through the functions it is handed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from digest.config import Edition, ScheduleSettings
from digest.config.holidays import bank_holiday
from digest.errors import ConfigError
from digest.schedule import (
    Decision,
    Job,
    Placement,
    decide,
    decide_slot,
    describe_time,
    issue_week_of,
    local_day,
    next_slot,
    next_slot_note,
    previous_slot,
    working_day,
)
from digest.state.runs import RunRecord

log = logging.getLogger(__name__)

_SECOND = timedelta(seconds=1)
_TICK = timedelta(microseconds=1)
# How many slots in a row may be dropped for bank holidays before a search gives up (a year of daily ones).
_MAX_SLOTS = 400
# How far ahead a moved slot looks for a working day (Christmas to New Year, with weekends, is under 8).
_MAX_DAYS_AHEAD = 14


def _cron(edition: Edition, start: datetime) -> object:
    from croniter import croniter  # noqa: PLC0415 - only editions with a cron cadence need it

    return croniter(edition.cron_expression, start.astimezone(ZoneInfo(edition.timezone)))


def _uses_cron(edition: Edition | None) -> bool:
    return edition is not None and edition.cadence != "weekly"


def _cron_before(edition: Edition, now: datetime) -> datetime:
    """The latest slot of the cron expression at or before `now`, before any bank holiday."""
    # croniter's get_prev is strictly before its start: start a second later so a slot at `now` counts.
    moment: datetime = _cron(edition, now + _SECOND).get_prev(datetime)  # type: ignore[attr-defined]
    return moment.astimezone(UTC)


def _cron_after(edition: Edition, now: datetime) -> datetime:
    """The first slot of the cron expression strictly after `now`, before any bank holiday."""
    moment: datetime = _cron(edition, now).get_next(datetime)  # type: ignore[attr-defined]
    return moment.astimezone(UTC)


def place_cron(settings: ScheduleSettings, edition: Edition, nominal: datetime) -> Placement:
    """Where the daily, monthly or cron slot `nominal` lands after `[schedule] holidays` / `on_holiday`.

    On a bank holiday (in the edition's time zone): `send` keeps it; `skip` drops it; `next_working_day`
    moves it to the same local time on the first later day that is neither a weekend day nor a bank
    holiday, if that is before the cadence's next slot, and otherwise drops it (it is merged into the
    next slot that runs: never two sends where the cadence has one, never a slot past the next).
    """
    if settings.holidays is None:
        return Placement(nominal, nominal)
    zone = ZoneInfo(edition.timezone)
    local = nominal.astimezone(zone)
    holiday = bank_holiday(settings.holidays, local.date())
    if holiday is None or settings.on_holiday == "send":
        return Placement(nominal, nominal, holiday)
    if settings.on_holiday == "next_working_day":
        following = _cron_after(edition, nominal)
        for ahead in range(1, _MAX_DAYS_AHEAD + 1):
            later = local.date() + timedelta(days=ahead)
            if not working_day(settings.holidays, later):
                continue
            # The same local wall time; one inside a spring-forward gap lands after it (fold=0).
            moved = datetime.combine(later, local.time(), tzinfo=zone).replace(fold=0).astimezone(UTC)
            if moved < following:
                return Placement(nominal, moved, holiday)
            break
    return Placement(nominal, None, holiday)


def _placements(
    settings: ScheduleSettings, edition: Edition, now: datetime, step: int
) -> Iterator[Placement]:
    """The placements of the edition's slots from the latest at or before `now` on, back (-1) or on (+1)."""
    nominal = _cron_before(edition, now)
    for _ in range(_MAX_SLOTS):
        yield place_cron(settings, edition, nominal)
        nominal = _cron_before(edition, nominal - _SECOND) if step < 0 else _cron_after(edition, nominal)
    raise ConfigError(
        f"schedule.holidays: edition {edition.id} has no slot within {_MAX_SLOTS} slots of {now.isoformat()}",
        hint="check [schedule] holidays and on_holiday, and the edition's cadence",
    )


def placement_before_cron(settings: ScheduleSettings, edition: Edition, now: datetime) -> Placement:
    """The placement of the edition's latest slot at or before `now` (a moved slot counts at its new time)."""
    # A slot moves forward only, and never to or past the next one: the first found is the latest.
    return next(p for p in _placements(settings, edition, now, -1) if p.slot is not None and p.slot <= now)


def placement_after_cron(settings: ScheduleSettings, edition: Edition, now: datetime) -> Placement:
    """The placement of the edition's first slot strictly after `now`."""
    # The slot at or before `now` comes first: a bank holiday may have moved it after `now`.
    return next(p for p in _placements(settings, edition, now, 1) if p.slot is not None and p.slot > now)


def slot_before(settings: ScheduleSettings, edition: Edition | None, now: datetime) -> datetime:
    """The latest slot at or before `now` (aware UTC) of the edition (None: the `[schedule]` week)."""
    if edition is None or not _uses_cron(edition):
        return previous_slot(settings, now)
    if settings.holidays is None:
        return _cron_before(edition, now)
    slot = placement_before_cron(settings, edition, now).slot
    assert slot is not None  # noqa: S101 - only placed slots are returned
    return slot


def slot_after(settings: ScheduleSettings, edition: Edition | None, now: datetime) -> datetime:
    """The first slot strictly after `now` (aware UTC), bank holidays applied."""
    if edition is None or not _uses_cron(edition):
        return next_slot(settings, now)
    if settings.holidays is None:
        return _cron_after(edition, now)
    slot = placement_after_cron(settings, edition, now).slot
    assert slot is not None  # noqa: S101 - only placed slots are returned
    return slot


def issue_named_at(settings: ScheduleSettings, edition: Edition | None, end: datetime) -> datetime:
    """The moment whose period names the issue whose window ends at `end` (`staff-2025-05-26`).

    `end` itself, unless the first slot at or after `end` is one a bank holiday moved: then the moment
    it was moved from, so a moved slot keeps its own slot's id wherever it lands (a Monday slot of
    "0 8 * * 1,4" moved from the late May bank holiday 2025 to Tuesday is `...-2025-05-26`), and a build
    or preview between the holiday and the moved slot names the issue that slot sends. A slot merged
    into the next one has no issue of its own: the next slot's issue keeps its own id.
    """
    if edition is None or not _uses_cron(edition):
        return issue_week_of(settings, end)
    if settings.holidays is None or settings.on_holiday != "next_working_day":
        return end
    placement = placement_after_cron(settings, edition, end - _TICK)
    if placement.slot is None or placement.slot == placement.nominal:
        return end
    return placement.nominal


def _period(edition: Edition) -> str:
    return {"daily": "that day", "monthly": "that month"}.get(edition.cadence, "for that slot")


def _cron_note(settings: ScheduleSettings, edition: Edition, placement: Placement, then: Placement) -> str:
    """What a bank holiday did to one slot; `then` is the first slot after it that runs."""
    tz = edition.timezone
    said = f"{local_day(placement.nominal, tz)} is a bank holiday ({placement.holiday})"
    if placement.slot is None:
        if settings.on_holiday == "skip":
            return f"{said}: no issue {_period(edition)} (on_holiday = skip)"
        assert then.slot is not None  # noqa: S101 - `then` is a placed slot
        at = f"{then.slot.astimezone(ZoneInfo(tz)):%H:%M}"
        return (
            f"{said}: merged into the issue of {local_day(then.slot, tz)} at {at} (on_holiday ="
            " next_working_day; the next working day is not before the next slot)"
        )
    at = f"{placement.slot.astimezone(ZoneInfo(tz)):%H:%M}"
    if placement.slot == placement.nominal:
        return f"{said}: sending as usual at {at} (on_holiday = send)"
    return f"{said}: sending on {local_day(placement.slot, tz)} at {at}"


def slot_note(settings: ScheduleSettings, edition: Edition | None, now: datetime) -> str | None:
    """Why the edition's next slot is where it is when a bank holiday is involved, else None (for
    `digest status` and the schedule's log): the slots dropped since `now` and the holiday that moved
    the next one. The `[schedule]` week and weekly editions: `digest.schedule.next_slot_note`."""
    if edition is None or not _uses_cron(edition):
        return next_slot_note(settings, now)
    if settings.holidays is None:
        return None
    dropped: list[Placement] = []
    for placement in _placements(settings, edition, now, 1):
        if placement.slot is not None and placement.slot <= now:
            continue  # this slot has already been
        if placement.slot is None:
            dropped.append(placement)
            continue
        notes = [_cron_note(settings, edition, p, placement) for p in dropped]
        if placement.holiday is not None:
            notes.append(_cron_note(settings, edition, placement, placement))
        return "; ".join(notes) or None
    return None  # pragma: no cover - _placements raises before it runs out


def decide_edition(
    settings: ScheduleSettings,
    edition: Edition | None,
    now: datetime,
    record: RunRecord | None,
    *,
    first: bool = False,
) -> Decision:
    """`digest.schedule.decide` for an edition's latest slot: the same catch-up rule for every cadence."""
    if edition is None or not _uses_cron(edition):
        return decide(settings, now, record, first=first)
    slot = slot_before(settings, edition, now)
    when = f"{describe_time(slot, edition.timezone)} (edition {edition.id}, {edition.cadence}"
    if settings.holidays is not None:
        placement = placement_before_cron(settings, edition, now)
        if placement.holiday is not None and placement.slot != placement.nominal:
            moved_from = local_day(placement.nominal, edition.timezone)
            when += f"; moved from {moved_from}, a bank holiday: {placement.holiday}"
        elif placement.holiday is not None:
            when += f"; a bank holiday: {placement.holiday}"
    when += ")"
    return decide_slot(slot, when, settings.catch_up_hours, now, record, first=first)


def describe_cadence(edition: Edition) -> str:
    """ "weekly on friday at 08:00 Europe/London", "cron '0 8 * * mon-fri' in Europe/London"."""
    if edition.cadence == "cron":
        return f"cron {edition.cron!r} in {edition.timezone}"
    on = f" on {edition.day}" if edition.cadence == "weekly" else ""
    if edition.cadence == "monthly":
        on = f" on day {edition.day}"
    return f"{edition.cadence}{on} at {edition.time} {edition.timezone}"


class EditionsLoop:
    """The foreground loop of `digest schedule` over several editions.

    `jobs` maps each edition id to its job (`job(now) -> JobResult`, as for `ScheduleLoop`); `settings`
    is each edition's narrowed `[schedule]` (time zone, day, time, holidays, catch-up).
    """

    def __init__(
        self,
        editions: Sequence[tuple[Edition, ScheduleSettings, Job]],
        *,
        now: Callable[[], datetime],
        wait: Callable[[float], bool],
        retry_minutes: int = 15,
        max_sleep: float = 60.0,
    ) -> None:
        self.editions = tuple(editions)
        self.now = now
        self.wait = wait
        self.retry = timedelta(minutes=retry_minutes)
        self.max_sleep = max_sleep
        self._handled: dict[str, datetime] = {}  # each edition's latest slot when its job last ran
        self._retry_at: dict[str, datetime] = {}
        self._announced: dict[str, datetime] = {}

    def _call(self, edition: Edition, settings: ScheduleSettings, job: Job, now: datetime) -> None:
        self._handled[edition.id] = slot_before(settings, edition, now)
        result = job(now)
        log.debug("edition %s: job done: %s", edition.id, result.summary)
        if result.retry:
            self._retry_at[edition.id] = now + self.retry
            log.info("edition %s: the slot will be tried again in %s", edition.id, self.retry)
        else:
            self._retry_at.pop(edition.id, None)

    def _due(self, now: datetime) -> None:
        for edition, settings, job in self.editions:
            slot = slot_before(settings, edition, now)
            retry_at = self._retry_at.get(edition.id)
            if slot != self._handled.get(edition.id) or (retry_at is not None and retry_at <= now):
                self._call(edition, settings, job, now)

    def _next_wake(self, now: datetime) -> datetime:
        wakes = [slot_after(settings, edition, now) for edition, settings, _ in self.editions]
        wakes += self._retry_at.values()
        return min(wakes)

    def _announce(self, now: datetime) -> None:
        for edition, settings, _ in self.editions:
            upcoming = slot_after(settings, edition, now)
            if self._announced.get(edition.id) == upcoming:
                continue
            self._announced[edition.id] = upcoming
            log.info(
                "edition %s: next run %s",
                edition.id,
                describe_time(upcoming, edition.timezone),
                extra={"edition": edition.id, "next_run": upcoming.isoformat()},
            )
            note = slot_note(settings, edition, now)
            if note:
                log.info(
                    "edition %s: %s", edition.id, note, extra={"edition": edition.id, "next_run_note": note}
                )

    def run(self) -> None:
        """Run until `wait` reports a stop. Catches up each edition's missed slot first."""
        for edition, settings, _ in self.editions:
            log.info("schedule: edition %s %s", edition.id, describe_cadence(edition))
            if settings.holidays is not None:
                log.info(
                    "edition %s: bank holidays: %s (on_holiday = %s)",
                    edition.id,
                    settings.holidays,
                    settings.on_holiday,
                )
        for edition, settings, job in self.editions:
            self._call(edition, settings, job, self.now())
        while True:
            now = self.now()
            self._announce(now)
            delay = (self._next_wake(now) - now).total_seconds()
            if self.wait(min(max(delay, 0.01), self.max_sleep)):
                log.info("stop requested: the schedule loop ends")
                return
            self._due(self.now())
