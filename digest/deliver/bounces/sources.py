"""Bounce mailboxes, registered by name in `SOURCES`: a Maildir folder, or an IMAP folder.

A source yields each unprocessed message once (`Incoming`) and, when told `done`, moves it out of
the way so the next run does not see it again: a Maildir message goes to `cur/` with the S flag; an
IMAP message is flagged \\Seen and, with `[bounces] move_to`, moved to that folder. With `dry_run`
nothing is changed (the IMAP folder is opened read-only, messages are fetched with BODY.PEEK).
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from digest.config import BounceSettings
from digest.errors import ConfigError, MailboxError


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message of a bounce mailbox: `source` names it (a file name or `UID n`)."""

    source: str
    raw: bytes
    key: str


class BounceSource(Protocol):
    name: str

    def messages(self) -> Iterator[Incoming]: ...

    def done(self, item: Incoming) -> None: ...

    def close(self) -> None: ...


class MaildirSource:
    """Messages in `new/`, and in `cur/` without the S (seen) flag, in name order."""

    name = "maildir"

    def __init__(self, path: Path, *, dry_run: bool) -> None:
        missing = [sub for sub in ("new", "cur", "tmp") if not (path / sub).is_dir()]
        if missing:
            raise MailboxError(
                f"{path}: not a Maildir folder (no {', '.join(missing)}/ in it)",
                hint="point --maildir or [bounces] maildir at the folder holding new/, cur/ and tmp/",
            )
        self.path = path
        self.dry_run = dry_run

    def messages(self) -> Iterator[Incoming]:
        names = [("new", p.name) for p in (self.path / "new").iterdir() if not p.name.startswith(".")]
        for p in (self.path / "cur").iterdir():
            flags = p.name.rpartition(":2,")[2] if ":2," in p.name else ""
            if not p.name.startswith(".") and "S" not in flags:
                names.append(("cur", p.name))
        for sub, name in sorted(names, key=lambda n: n[1]):
            path = self.path / sub / name
            try:
                raw = path.read_bytes()
            except FileNotFoundError:  # taken by another reader meanwhile
                continue
            except OSError as e:
                raise MailboxError(f"{path}: cannot read: {e.strerror}") from e
            yield Incoming(source=name.partition(":")[0], raw=raw, key=f"{sub}/{name}")

    def done(self, item: Incoming) -> None:
        if self.dry_run:
            return
        sub, _, name = item.key.partition("/")
        base, _, flags = name.partition(":2,")
        new_flags = "".join(sorted(set(flags) | {"S"}))
        try:
            (self.path / sub / name).replace(self.path / "cur" / f"{base}:2,{new_flags}")
        except OSError as e:
            raise MailboxError(f"{self.path / sub / name}: cannot move it to cur/: {e.strerror}") from e

    def close(self) -> None:
        return None


class ImapSource:
    """Unseen messages of `[bounces] folder` on `[bounces] imap_host`."""

    name = "imap"

    def __init__(self, settings: BounceSettings, *, dry_run: bool) -> None:
        host = settings.imap_host or ""
        where = f"imap {host}:{settings.imap_port}"
        password = os.environ.get(settings.password_env or "")
        if not password:
            raise MailboxError(
                f"{where}: the environment variable {settings.password_env} ([bounces] password_env)"
                " is not set",
                hint=f"set {settings.password_env} to the password of {settings.imap_user}",
            )
        self.settings = settings
        self.dry_run = dry_run
        self.where = where
        context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
        try:
            if settings.tls == "tls":
                self.conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    host, settings.imap_port, ssl_context=context, timeout=settings.timeout
                )
            else:
                self.conn = imaplib.IMAP4(host, settings.imap_port, timeout=settings.timeout)
                if settings.tls == "starttls":
                    self.conn.starttls(ssl_context=context)
            self.conn.login(settings.imap_user or "", password)
            status, data = self.conn.select(_quoted(settings.folder), readonly=dry_run)
            if status != "OK":
                raise MailboxError(
                    f"{where}: cannot open the folder {settings.folder!r}: {_text(data)}",
                    hint="check [bounces] folder",
                )
        except imaplib.IMAP4.error as e:
            raise MailboxError(
                f"{where}: {e}", hint="check [bounces] imap_user and the password in its password_env"
            ) from e
        except (TimeoutError, OSError, ssl.SSLError) as e:
            raise MailboxError(
                f"{where}: cannot connect: {e}", hint="check [bounces] imap_host, imap_port and tls"
            ) from e

    def messages(self) -> Iterator[Incoming]:
        try:
            status, data = self.conn.uid("SEARCH", "UNSEEN")
            uids = data[0].split() if status == "OK" and data and isinstance(data[0], bytes) else []
            for uid_bytes in uids:
                uid = uid_bytes.decode()
                status, parts = self.conn.uid("FETCH", uid, "(BODY.PEEK[])")
                raw = next((p[1] for p in parts if isinstance(p, tuple)), None)
                if status != "OK" or raw is None:
                    continue
                yield Incoming(source=f"UID {uid}", raw=raw, key=uid)
        except (imaplib.IMAP4.error, OSError) as e:
            raise MailboxError(f"{self.where}: reading {self.settings.folder!r} failed: {e}") from e

    def done(self, item: Incoming) -> None:
        if self.dry_run:
            return
        try:
            self.conn.uid("STORE", item.key, "+FLAGS", "(\\Seen)")
            target = self.settings.move_to
            if target:
                capabilities = self.conn.capabilities
                if "MOVE" in capabilities:
                    status, data = self.conn.uid("MOVE", item.key, _quoted(target))
                else:
                    status, data = self.conn.uid("COPY", item.key, _quoted(target))
                    if status == "OK":
                        self.conn.uid("STORE", item.key, "+FLAGS", "(\\Deleted)")
                        self.conn.expunge()
                if status != "OK":
                    raise MailboxError(
                        f"{self.where}: cannot move {item.source} to {target!r}: {_text(data)}",
                        hint="check [bounces] move_to names an existing folder",
                    )
        except (imaplib.IMAP4.error, OSError) as e:
            raise MailboxError(f"{self.where}: marking {item.source} as processed failed: {e}") from e

    def close(self) -> None:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            self.conn.logout()


def _quoted(folder: str) -> str:
    return '"' + re.sub(r'(["\\\\])', r"\\\\\\1", folder) + '"'


def _text(data: object) -> str:
    if isinstance(data, list) and data and isinstance(data[0], bytes):
        return data[0].decode("utf-8", "replace")
    return str(data)


def _open_maildir(settings: BounceSettings, maildir: Path | None, dry_run: bool) -> BounceSource:
    path = maildir or settings.maildir
    if path is None:
        raise ConfigError("no Maildir to read", hint="pass --maildir PATH or set [bounces] maildir")
    return MaildirSource(path, dry_run=dry_run)


def _open_imap(settings: BounceSettings, _maildir: Path | None, dry_run: bool) -> BounceSource:
    if settings.imap_host is None:
        raise ConfigError(
            "no IMAP mailbox configured: [bounces] imap_host is not set",
            hint="set [bounces] imap_host, imap_user and password_env",
        )
    return ImapSource(settings, dry_run=dry_run)


SOURCES: dict[str, Callable[[BounceSettings, Path | None, bool], BounceSource]] = {
    "maildir": _open_maildir,
    "imap": _open_imap,
}


def open_source(name: str, settings: BounceSettings, *, maildir: Path | None, dry_run: bool) -> BounceSource:
    """Open the registered bounce source `name`.

    Raises:
        MailboxError: the mailbox cannot be opened (not a Maildir, IMAP refused, ...).
    """
    return SOURCES[name](settings, maildir, dry_run)
