"""The run and schedule locks across hosts: a PostgreSQL advisory lock when the state is PostgreSQL.

The flock of `[state] lock` keeps runs on one host apart; with the state in PostgreSQL, hosts share
the state, so `digest run` and `digest schedule` also take an advisory lock in that database, and two
hosts cannot both run the weekly send. PostgreSQL releases it when the holder's session ends (a crash,
a lost connection), so a dead holder never blocks the next run. The holder writes a note (pid, host,
since, command) into the state's settings so the process that finds the lock taken can name it.
With SQLite nothing more is done: its one host is kept in order by the flock.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from digest.errors import BusyError
from digest.schedule.lock import LockHolder, holder_from_note
from digest.state.store import Store

RUN_LOCK = "digest run"
SCHEDULE_LOCK = "digest schedule"


def _note_key(name: str) -> str:
    return f"lock holder: {name}"


def _holder(db: Store, name: str) -> LockHolder | None:
    return holder_from_note(db.settings.get_setting(_note_key(name)) or "")


@contextmanager
def host_lock(db: Store, name: str, *, now: datetime, what: str) -> Iterator[None]:
    """Hold the lock `name` across every host using the state (PostgreSQL; nothing with SQLite).

    `what` names the lock in the message ("schedule", "run").

    Raises:
        BusyError: another process, on this host or another, holds the lock; the message names it.
        StateError: PostgreSQL cannot be reached.
    """
    if not db.has_advisory_locks:
        yield
        return
    with db.advisory_lock(name) as taken:
        if not taken:
            holder = _holder(db, name)
            who = holder.describe() if holder else "a process that has not written its details"
            raise BusyError(
                f"another host holds the {what} lock in PostgreSQL ({db.name}): held by {who}",
                hint="only one host runs the weekly send; wait for that run to finish, or stop digest"
                " on the other host (the lock goes when its session ends)",
            )
        note = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": now.isoformat(),
            "command": " ".join(["digest", *sys.argv[1:]])[:200] if sys.argv else what,
        }
        db.settings.set_setting(_note_key(name), json.dumps(note))
        try:
            yield
        finally:
            db.settings.set_setting(_note_key(name), "")
