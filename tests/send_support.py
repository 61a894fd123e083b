"""Test helpers for deliver/send: a built issue on disk and in state, configs, and a recording aiosmtpd."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from digest.config import Config, load_config
from digest.models import NAME_PLACEHOLDER, UNSUBSCRIBE_URL_PLACEHOLDER
from digest.state.store import open_store

NOW = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)
ISSUE_ID = "2025-W19"
SUBJECT = "BLMK weekly news \u2013 9 May 2025: \u201cStart Well\u201d and more"
STORY = (
    '<tr><td style="padding:16px;font-family:Arial,Helvetica,sans-serif;color:#212B32">'
    '<h3 style="margin:0 0 8px"><a href="https://example.org/news/{i}" style="color:#005EB8">'
    "Maternity services expand in Luton &amp; Dunstable \u2013 story {i}</a></h3>"
    '<p style="margin:0">Midwives at the L&amp;D hospital welcome families; £2.5m investment, café opens. '
    "Line breaks and = signs and trailing spaces matter to quoted-printable.   </p></td></tr>\n"
)


def sample_html(stories: int = 5) -> str:
    """An email.html shaped like render's output: long lines, entities, non-ASCII, both placeholders."""
    body = "".join(STORY.format(i=i) for i in range(stories))
    return (
        '<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8"><title>BLMK weekly news</title></head>'
        '<body style="margin:0;background:#F0F4F5"><div style="display:none">Preheader text</div>'
        f'<table role="presentation" width="600"><tr><td><p>Hello {NAME_PLACEHOLDER},</p></td></tr>\n'
        f"{body}"
        '<tr><td><p style="font-size:14px">You receive this email because you signed up. '
        f'<a href="{UNSUBSCRIBE_URL_PLACEHOLDER}" style="color:#005EB8">Unsubscribe</a></p></td></tr>'
        "</table></body></html>\n"
    )


def sample_text(stories: int = 5) -> str:
    lines = [f"Hello {NAME_PLACEHOLDER},", ""]
    for i in range(stories):
        lines += [
            f"Maternity services expand in Luton & Dunstable \u2013 story {i}",
            f"https://example.org/news/{i}",
            "",
        ]
    lines += [
        ".starts with a dot",
        "From the start of a line",
        f"Unsubscribe: {UNSUBSCRIBE_URL_PLACEHOLDER}",
        "",
    ]
    return "\n".join(lines)


def make_built_issue(
    config: Config,
    *,
    issue_id: str = ISSUE_ID,
    subject: str = SUBJECT,
    html: str | None = None,
    text: str | None = None,
    built_at: datetime = NOW,
) -> Path:
    """Write DIR/<id>/email.html, email.txt, issue.json as the build step does, and record the issue."""
    out = config.root / "out"
    folder = out / issue_id
    folder.mkdir(parents=True, exist_ok=True)
    html_bytes = (html if html is not None else sample_html()).encode("utf-8")
    text_bytes = (text if text is not None else sample_text()).encode("utf-8")
    (folder / "email.html").write_bytes(html_bytes)
    (folder / "email.txt").write_bytes(text_bytes)
    (folder / "issue.json").write_text(
        json.dumps({"id": issue_id, "subject": subject, "preheader": "Preheader text"}), encoding="utf-8"
    )
    db = open_store(config)
    try:
        db.issues.record_built_issue(
            issue_id=issue_id,
            edition=1,
            window_start=built_at - timedelta(days=7),
            window_end=built_at,
            subject=subject,
            built_at=built_at,
            out_dir=folder,
            html_sha256=hashlib.sha256(html_bytes).hexdigest(),
            text_sha256=hashlib.sha256(text_bytes).hexdigest(),
            entry_ids=("entry-1", "entry-2"),
            empty=False,
        )
    finally:
        db.close()
    return folder


def write_config(root: Path, extra: str = "", *, transport: str = "outbox", smtp: str = "") -> Config:
    """A minimal config in `root` with one local source, the given delivery transport and [smtp] lines."""
    (root / "feeds").mkdir(exist_ok=True)
    (root / "feeds" / "news.xml").write_text("<rss/>")
    path = root / "config.toml"
    path.write_text(
        f"""
[[sources]]
name = "news"
url = "feeds/news.xml"

[digest]
title = "BLMK weekly news"

[web]
base_url = "https://news.blmk.example"

[delivery]
transport = "{transport}"
from_address = "news@blmk.example"
from_name = "BLMK Health and Care Partnership"
reply_to = "comms@blmk.example"
list_id = "weekly.news.blmk.example"
unsubscribe_mailto = "unsubscribe@blmk.example"
{extra}

[smtp]
{smtp}
""",
        encoding="utf-8",
    )
    return load_config(path)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    """(text, html) bodies of a multipart/alternative message, decoded."""
    assert message.get_content_type() == "multipart/alternative"
    text_part, html_part = message.iter_parts()
    assert text_part.get_content_type() == "text/plain"
    assert html_part.get_content_type() == "text/html"
    return (
        str(text_part.get_content()).replace("\r\n", "\n"),
        str(html_part.get_content()).replace("\r\n", "\n"),
    )


@dataclass
class Received:
    envelope_from: str
    rcpt: tuple[str, ...]
    data: bytes
    peer: tuple[str, int]
    tls: bool
    authenticated: bool


@dataclass
class Recorder:
    """An aiosmtpd handler that records messages and can be told to refuse or stall some."""

    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)  # address -> replies to give in turn
    stall_after: int | None = None  # hold every DATA after this many accepted messages
    stalled: threading.Event = field(default_factory=threading.Event)
    delay: float = 0.0
    drop_at: int | None = None  # hang up (no reply) on this DATA, once
    drop_rcpt_at: int | None = None  # hang up at the RCPT after this many accepted messages, once
    rcpt_attempts: Counter[str] = field(default_factory=Counter)  # RCPT TO commands per address
    hold: threading.Event | None = None  # once `hold_after` messages are in, wait for this before each reply
    hold_after: int = 1
    dropped: bool = False
    mail_reply: str | None = None  # the reply to every MAIL FROM instead of 250 (a refused sender)
    mail_attempts: int = 0

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        self.mail_attempts += 1
        if self.mail_reply is not None:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        self.rcpt_attempts[address.lower()] += 1
        if self.drop_rcpt_at is not None and not self.dropped and len(self.messages) >= self.drop_rcpt_at:
            self.dropped = True
            server.transport.close()
            return "421 closing"  # never reaches the client: the connection is gone
        replies = self.rcpt_replies.get(address.lower())
        if replies:
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
            if not reply.startswith("250"):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.hold is not None and len(self.messages) >= self.hold_after:
            for _ in range(6000):  # bounded: at most a minute
                if self.hold.is_set():
                    break
                await asyncio.sleep(0.01)
        if self.drop_at is not None and not self.dropped and len(self.messages) == self.drop_at:
            self.dropped = True
            server.transport.close()
            return "421 closing"  # never reaches the client: the connection is gone
        with self.lock:
            stall = self.stall_after is not None and len(self.messages) >= self.stall_after
            if not stall:
                self.messages.append(
                    Received(
                        envelope.mail_from,
                        tuple(envelope.rcpt_tos),
                        bytes(envelope.content),
                        tuple(session.peer),
                        session.ssl is not None,
                        bool(session.authenticated),
                    )
                )
        if stall:
            self.stalled.set()
            await asyncio.sleep(3600)  # until the server is stopped under the client's feet
        return "250 Message accepted"

    def recipients(self) -> list[str]:
        with self.lock:
            return [r for m in self.messages for r in m.rcpt]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_server(handler: Recorder, *, port: int | None = None, **kwargs: Any) -> Iterator[Any]:
    """A real aiosmtpd on 127.0.0.1 (port 0 by default), stopped on exit."""
    from aiosmtpd.controller import Controller

    controller = Controller(handler, hostname="127.0.0.1", port=port or free_port(), **kwargs)
    controller.start()
    try:
        yield controller
    finally:
        with suppress(AssertionError, RuntimeError):  # already stopped by the test
            controller.stop()


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost made with the openssl CLI."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed"
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Another process holds a write lock on the state database until the block ends."""
    code = (
        "import sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
        "db.execute('ROLLBACK')\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


MESSAGE_ID_HEADER = re.compile(rb"^Message-ID: (<[^>\r\n]+>)", re.MULTILINE | re.IGNORECASE)


@dataclass
class Gate:
    """Keeps every copy; from the `hold_from`-th message on, holds its reply until `release`."""

    hold_from: int
    copies: list[tuple[str, bytes]] = field(default_factory=list)
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        found = MESSAGE_ID_HEADER.search(bytes(envelope.content))
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.copies.append((rcpt.lower(), found.group(1) if found else b""))
            hold = 0 < self.hold_from <= len(self.copies)
        if hold:
            self.reached.set()
            for _ in range(12000):  # bounded: at most two minutes
                if self.release.is_set():
                    break
                await asyncio.sleep(0.01)
        return "250 2.0.0 queued"

    def received(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return list(self.copies)


def wait_until_held(event: threading.Event, process: subprocess.Popen[bytes], what: str) -> None:
    """Wait for `event` (a server holding a reply) while `process` runs; fail if it exits first."""
    for _ in range(1200):  # bounded: at most two minutes
        if event.wait(0.1):
            return
        if process.poll() is not None:
            out = process.stdout.read().decode() if process.stdout else ""
            pytest.fail(f"{what} exited ({process.returncode}) before its server held a reply:\n{out}")
    pytest.fail(f"{what}: its server never held a reply")
