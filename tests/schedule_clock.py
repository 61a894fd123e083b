"""A controlled clock for schedule tests: the loop's `now`/`wait` and the `schedule` library's own clock.

The `schedule` library calls `datetime.datetime.now()` (naive local time) and `datetime.datetime.now(tz)`
itself. `FakeClock.install(monkeypatch)` points the library's `datetime` module name at a shim whose
`now` reads this clock, so the library and the loop see the same controlled time and nothing sleeps.
"""

from __future__ import annotations

import datetime as real_datetime
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

import pytest
import schedule


class FakeClock:
    """Aware UTC time that moves only when the code under test waits (or the test advances it)."""

    def __init__(self, start: datetime) -> None:
        assert start.tzinfo is not None
        self.utc = start.astimezone(UTC)
        self.waits: list[float] = []
        self.stop_when: Callable[[FakeClock], bool] = lambda _clock: False

    def now(self) -> datetime:
        return self.utc

    def advance(self, seconds: float) -> None:
        self.utc += timedelta(seconds=seconds)

    def wait(self, seconds: float) -> bool:
        """The loop's wait: moves time forward at once; True (stop) when `stop_when` says so."""
        assert seconds >= 0
        self.waits.append(seconds)
        if len(self.waits) > 200_000:
            raise AssertionError("the loop waited 200,000 times: it is spinning")
        self.advance(seconds)
        return self.stop_when(self)

    def install(self, monkeypatch: pytest.MonkeyPatch, host_tz: str = "UTC") -> None:
        """Make the schedule library read this clock; `host_tz` is the host's local zone (TZ)."""
        monkeypatch.setenv("TZ", host_tz)
        time.tzset()
        clock = self

        class ClockDatetime(real_datetime.datetime):
            @classmethod
            def now(cls, tz: tzinfo | None = None) -> ClockDatetime:  # type: ignore[override]
                moment = clock.utc.astimezone(tz) if tz is not None else clock.utc.astimezone()
                if tz is None:
                    moment = moment.replace(tzinfo=None)
                return cls.combine(moment.date(), moment.timetz())

        shim = types.SimpleNamespace(
            datetime=ClockDatetime,
            date=real_datetime.date,
            time=real_datetime.time,
            timedelta=real_datetime.timedelta,
            tzinfo=real_datetime.tzinfo,
        )
        monkeypatch.setattr(schedule, "datetime", shim)
