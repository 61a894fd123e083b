"""Slots of `[[editions]]`, whatever their cadence, and the loop that runs every edition at its own slots.

A weekly edition's slots are those of `[schedule]` narrowed to it (its day, time and time zone; bank
holidays applied as for the single edition). Daily, monthly and cron editions are read as a cron
expression (`Edition.cron_expression`) evaluated with croniter in the edition's time zone, so a slot
keeps its local wall time on both sides of a DST change. `decide_edition` applies the same catch-up
rule as `digest.schedule.decide`.

`EditionsLoop` is `digest schedule` for a config with editions: it wakes at the earliest next slot of
any edition (never sleeping more than `max_sleep` at a time), calls the job once for each edition whose
latest slot is new, and calls an edition again every `retry_minutes` while its last result asked for a
retry. Like `ScheduleLoop` it reads `now` and waits through the functions it is handed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from digest.config import Edition, ScheduleSettings
from digest.schedule import (
    Decision,
    Job,
    decide,
    decide_slot,
    describe_time,
    next_slot,
    previous_slot,
)
from digest.state.runs import RunRecord

log = logging.getLogger(__name__)

_SECOND = timedelta(seconds=1)


def _cron(edition: Edition, start: datetime) -> object:
    from croniter import croniter  # noqa: PLC0415 - only editions with a cron cadence need it

    return croniter(edition.cron_expression, start.astimezone(ZoneInfo(edition.timezone)))


def _uses_cron(edition: Edition | None) -> bool:
    return edition is not None and edition.cadence != "weekly"


def slot_before(settings: ScheduleSettings, edition: Edition | None, now: datetime) -> datetime:
    """The latest slot at or before `now` (aware UTC) of the edition (None: the `[schedule]` week)."""
    if edition is None or not _uses_cron(edition):
        return previous_slot(settings, now)
    # croniter's get_prev is strictly before its start: start a second later so a slot at `now` counts.
    moment: datetime = _cron(edition, now + _SECOND).get_prev(datetime)  # type: ignore[attr-defined]
    return moment.astimezone(UTC)


def slot_after(settings: ScheduleSettings, edition: Edition | None, now: datetime) -> datetime:
    """The first slot strictly after `now` (aware UTC)."""
    if edition is None or not _uses_cron(edition):
        return next_slot(settings, now)
    moment: datetime = _cron(edition, now).get_next(datetime)  # type: ignore[attr-defined]
    return moment.astimezone(UTC)


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
    when = f"{describe_time(slot, edition.timezone)} (edition {edition.id}, {edition.cadence})"
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

    def run(self) -> None:
        """Run until `wait` reports a stop. Catches up each edition's missed slot first."""
        for edition, _, _ in self.editions:
            log.info("schedule: edition %s %s", edition.id, describe_cadence(edition))
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
