"""An OS-level lock file (fcntl.flock) that keeps two digest runs from overlapping.

The kernel releases a flock when its process dies, however it dies (even SIGKILL), so a crashed run
never leaves a stale lock behind. The file also holds a short note of who holds the lock (pid, host,
since, command) so the process that finds it taken can say who has it. The file is never deleted:
unlinking a flocked file lets a third process lock a new file of the same name while the second still
holds the old one.

flock is reliable on local file systems; on NFS it may not be, so keep `[state] lock` on a local disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

from digest.errors import BusyError, StateError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a lock, as written into the lock file by the holder."""

    pid: int | None
    host: str | None
    since: str | None
    command: str | None

    def describe(self) -> str:
        parts = []
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.host:
            parts.append(f"on {self.host}")
        if self.since:
            parts.append(f"since {self.since}")
        if self.command:
            parts.append(f"({self.command})")
        return " ".join(parts) if parts else "another process (it has not written its details yet)"


def read_holder(path: Path) -> LockHolder | None:
    """The holder note in a lock file, or None when the file is missing or empty (never raises)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    return holder_from_note(text)


def holder_from_note(text: str) -> LockHolder | None:
    """A holder note (JSON: pid, host, since, command) read back; text that is not JSON is kept as the
    command; None for an empty note or JSON that is not an object."""
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return LockHolder(None, None, None, text.strip()[:200])
    if not isinstance(data, dict):
        return None
    pid = data.get("pid")
    return LockHolder(
        pid if isinstance(pid, int) else None,
        str(data["host"]) if data.get("host") else None,
        str(data["since"]) if data.get("since") else None,
        str(data["command"]) if data.get("command") else None,
    )


def is_locked(path: Path) -> bool:
    """True when some process holds the lock now (tested with a non-blocking shared lock)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class RunLock:
    """An exclusive, non-blocking flock on `path`, usable as a context manager.

    Raises (from `acquire`):
        BusyError: another process holds the lock; the message names its pid, host and start time.
        StateError: the lock file cannot be created or opened.
    """

    def __init__(self, path: Path, *, now: datetime, purpose: str = "digest run") -> None:
        self.path = path
        self.now = now
        self.purpose = purpose
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise StateError(
                f"{self.path}: cannot open the lock file: {e.strerror}",
                hint="check that the folder of [state] lock exists and is writable",
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read_holder(self.path)
            who = holder.describe() if holder else "another process"
            raise BusyError(
                f"{self.path}: another {self.purpose} is in progress: held by {who}",
                hint="wait for it to finish (digest status shows recent runs); the lock is released"
                " automatically when that process exits",
            ) from None
        except OSError as e:
            os.close(fd)
            raise StateError(f"{self.path}: cannot lock the lock file: {e.strerror}") from e
        note = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": self.now.isoformat(),
            "command": " ".join(["digest", *sys.argv[1:]])[:200] if sys.argv else self.purpose,
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(note) + "\n").encode(), 0)
        except OSError as e:  # the note only names the holder (a full disk): the flock is what locks
            log.warning("%s: cannot write who holds the lock: %s", self.path, e.strerror)
        self._fd = fd
        log.debug("lock %s acquired (pid %d)", self.path, note["pid"])
        return self

    def release(self) -> None:
        """Clear the holder note and unlock (the file itself stays, see the module docstring)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        log.debug("lock %s released", self.path)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


@contextlib.contextmanager
def run_lock(path: Path, *, now: datetime, purpose: str = "digest run") -> Iterator[RunLock]:
    """Hold the lock at `path` for the duration of the block (raises BusyError if it is taken)."""
    with RunLock(path, now=now, purpose=purpose) as lock:
        yield lock
