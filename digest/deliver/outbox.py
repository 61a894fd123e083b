"""The outbox transport: one `.eml` per recipient, written atomically into a Maildir folder.

Each message is written to `tmp/`, flushed to disk, then renamed into `new/`: a reader of the Maildir
(a mail client, `digest` tests, a script that relays the files) never sees a half-written message.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from digest.deliver.transport import Delivery, HandingOver, Job
from digest.errors import DeliveryError

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


PRIVATE_FILE = 0o600  # each message names its recipient: only the owner may read it
PRIVATE_FOLDER = 0o700


def ensure_maildir(root: Path) -> None:
    """Create `root` with its `tmp`, `new` and `cur` folders (the ones it creates 0700, whatever the umask).

    Raises:
        DeliveryError: a folder cannot be created.
    """
    try:
        for folder in (root, root / "tmp", root / "new", root / "cur"):
            if not folder.is_dir():
                folder.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
                folder.chmod(PRIVATE_FOLDER)
    except OSError as e:
        raise DeliveryError(
            f"{root}: cannot create the outbox Maildir: {e.strerror}",
            hint="check [delivery] outbox and the folder's permissions",
        ) from e


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OutboxTransport:
    """Delivers by writing files; a message is accepted once its file is in `new/`."""

    name = "outbox"

    def __init__(self, root: Path, *, label: str = "digest") -> None:
        self.root = root
        self._label = _UNSAFE.sub("-", label)
        self._host = _UNSAFE.sub("-", socket.gethostname()) or "localhost"

    def write(self, job: Job, *, handing_over: HandingOver | None = None) -> Path:
        """Write one message atomically (mode 0600, whatever the umask) and return its path in `new/`.

        `handing_over(job)` is called once the file is complete in `tmp/`, before it is moved into
        `new/` (the hand-over); when it raises, the file is removed and the exception goes on.
        """
        who = _UNSAFE.sub("_", job.recipient.email)[:80]
        name = f"{self._label}.{who}.{secrets.token_hex(6)}.{self._host}.eml"
        tmp = self.root / "tmp" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        try:
            os.fchmod(fd, PRIVATE_FILE)
            with os.fdopen(fd, "wb") as handle:
                if job.envelope_from:  # a Maildir file is a delivered message: it carries the envelope sender
                    handle.write(f"Return-Path: <{job.envelope_from}>\r\n".encode("ascii"))
                handle.write(job.message)
                handle.flush()
                os.fsync(handle.fileno())
            if handing_over is not None:
                handing_over(job)
        except BaseException:
            tmp.unlink(missing_ok=True)  # never left half-written (or not handed over) in tmp/
            raise
        final = self.root / "new" / name
        tmp.rename(final)
        return final

    def send(
        self,
        jobs: Iterable[Job],
        *,
        should_stop: Callable[[], bool] | None = None,
        handing_over: HandingOver | None = None,
    ) -> Iterator[Delivery]:
        """Write each job's file (none once `should_stop()` is true); DeliveryError when the folder
        cannot be written. `handing_over(job)` is called before each file is moved into `new/`.

        Raises:
            DeliveryError: the Maildir cannot be created or written (disk full, permissions).
            Whatever `handing_over` raises (that file is not moved into `new/`, no other is written).
        """
        ensure_maildir(self.root)
        try:
            for job in jobs:
                if should_stop is not None and should_stop():
                    return
                try:
                    path = self.write(job, handing_over=handing_over)
                except OSError as e:
                    raise DeliveryError(
                        f"{self.root}: cannot write to the outbox: {e.strerror}",
                        hint="free disk space or fix the folder's permissions, then run digest send again",
                    ) from e
                yield Delivery(job=job, accepted=True, detail=f"written to {path.name}")
        finally:
            try:
                _fsync_dir(self.root / "new")
            except OSError:
                log.warning("could not flush the outbox folder %s to disk", self.root / "new")
