"""The transports call `handing_over` just before a message is committed, and never for one refused
earlier: SMTP once the recipient is accepted and before DATA (a real aiosmtpd that logs each command),
the outbox before the file is moved into `new/`. When it raises, that message is not handed over."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, syntax
from send_support import (
    ISSUE_ID,
    NOW,
    Recorder,
    free_port,
    make_built_issue,
    smtp_server,
    write_config,
    write_lock,
)
from state_support import sql

from digest.config import SmtpSettings
from digest.deliver import Delivery, Job, OutboxTransport, Recipient, SmtpTransport
from digest.errors import DeliveryError, StateError
from digest.pipeline.send import send_issue
from digest.state.store import open_store

pytestmark = pytest.mark.smtp


@dataclass
class Log:
    """What happened, in order, on the server (`rcpt`, `data`: the DATA command, `kept`) and in the
    client's `handing_over` (`handing`), each with the address it concerns."""

    events: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str, address: str) -> None:
        with self.lock:
            self.events.append((what, address.lower()))

    def of(self, what: str) -> list[str]:
        with self.lock:
            return [address for kind, address in self.events if kind == what]

    def index(self, what: str, address: str) -> int:
        with self.lock:
            return self.events.index((what, address))


@dataclass
class Logging(Recorder):
    log: Log = field(default_factory=Log)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        reply = await super().handle_RCPT(server, session, envelope, address, options)
        if reply.startswith("250"):
            self.log.add("rcpt", address)
        return reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        reply = await super().handle_DATA(server, session, envelope)
        for address in envelope.rcpt_tos:
            self.log.add("kept", address)
        return reply


class LoggingSMTP(SMTP):
    """Logs the DATA command itself (the handler's hook only runs once the whole message is in)."""

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802
        handler = self.event_handler
        for address in self.envelope.rcpt_tos:
            handler.log.add("data", address)
        await super().smtp_DATA(arg)


class LoggingController(Controller):
    def factory(self) -> SMTP:
        return LoggingSMTP(self.handler, **self.SMTP_kwargs)


def _settings(port: int, **extra: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "pool_size": 2,
        "rate_per_second": 1000.0,
        "timeout": 10.0,
        "retries": 2,
        "retry_delay": 0.02,
    }
    values.update(extra)
    return SmtpSettings(**values)


def _job(address: str) -> Job:
    message = (
        f"From: news@blmk.example\r\nTo: {address}\r\nSubject: test\r\nMessage-ID: <{address}.m@blmk.example>"
        "\r\n\r\nHello.\r\n"
    ).encode()
    return Job(Recipient(address, None, None), f"<{address}.m@blmk.example>", message)


def _serve(handler: Recorder, **kwargs: Any) -> LoggingController:
    controller = LoggingController(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller


def test_smtp_calls_handing_over_after_the_recipient_is_accepted_and_before_data() -> None:
    handler = Logging(rcpt_replies={"refused@example.org": ["550 5.1.1 no such user"]})
    controller = _serve(handler)
    try:
        transport = SmtpTransport(_settings(controller.port), envelope_from="bounces@blmk.example")
        addresses = ["a@example.org", "refused@example.org", "b@example.org", "c@example.org"]

        def handing_over(job: Job) -> None:
            handler.log.add("handing", job.recipient.email)

        deliveries = list(transport.send([_job(a) for a in addresses], handing_over=handing_over))
    finally:
        controller.stop()
    by_address = {d.job.recipient.email: d for d in deliveries}
    assert by_address["refused@example.org"].permanent
    accepted = ["a@example.org", "b@example.org", "c@example.org"]
    assert all(by_address[a].accepted for a in accepted)
    log = handler.log
    assert sorted(log.of("handing")) == accepted  # once each, never for the refused recipient
    for address in accepted:
        assert (
            log.index("rcpt", address)
            < log.index("handing", address)
            < log.index("data", address)
            < log.index("kept", address)
        ), log.events


def test_smtp_never_calls_handing_over_when_the_login_is_refused() -> None:
    handler = Logging()
    calls: list[str] = []

    def refuse(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        return AuthResult(success=False, handled=False)

    controller = _serve(handler, authenticator=refuse, auth_require_tls=False)
    try:
        transport = SmtpTransport(
            _settings(controller.port, username="digest"), envelope_from="b@blmk.example", password="wrong"
        )
        with pytest.raises(DeliveryError, match="refused the login"):
            list(
                transport.send(
                    [_job(f"r{i}@example.org") for i in range(6)],
                    handing_over=lambda job: calls.append(job.recipient.email),
                )
            )
    finally:
        controller.stop()
    assert calls == []
    assert handler.mail_attempts == 0 and handler.messages == []


def test_smtp_calls_handing_over_only_once_a_refused_recipient_is_accepted_on_retry() -> None:
    handler = Logging(rcpt_replies={"later@example.org": ["450 4.2.0 try later", "250 OK"]})
    controller = _serve(handler)
    calls: list[str] = []
    try:
        transport = SmtpTransport(_settings(controller.port), envelope_from="b@blmk.example")
        (delivery,) = transport.send(
            [_job("later@example.org")], handing_over=lambda job: calls.append(job.recipient.email)
        )
    finally:
        controller.stop()
    assert delivery.accepted
    assert handler.rcpt_attempts["later@example.org"] == 2
    assert calls == ["later@example.org"]  # not for the attempt whose recipient was refused


class BrokenStateError(StateError):
    """What a ledger write raises when the state is locked or full."""


def test_when_handing_over_raises_that_message_is_not_sent_nor_any_after_it() -> None:
    handler = Logging()
    controller = _serve(handler)
    handed: list[str] = []
    raised: list[BaseException] = []
    lock = threading.Lock()

    def handing_over(job: Job) -> None:
        with lock:
            if len(handed) >= 3 or raised:  # the third write fails, and every one after it
                raised.append(BrokenStateError("state.db: the database is locked"))
                raise raised[-1]
            handed.append(job.recipient.email)

    try:
        transport = SmtpTransport(_settings(controller.port), envelope_from="b@blmk.example")
        settled: list[Delivery] = []
        with pytest.raises(BrokenStateError) as caught:
            settled.extend(
                transport.send([_job(f"r{i:02d}@example.org") for i in range(20)], handing_over=handing_over)
            )
    finally:
        controller.stop()
    assert caught.value is raised[0]  # the caller's own exception, not a wrapper
    kept = set(handler.log.of("kept"))
    assert set(handler.log.of("data")) <= set(handed)  # no DATA without its hand-over call succeeding
    assert kept <= set(handed) and len(handed) == 3
    assert {d.job.recipient.email for d in settled} <= kept


def test_outbox_calls_handing_over_before_the_file_is_in_new_and_keeps_none_when_it_raises(
    tmp_path: Path,
) -> None:
    root = tmp_path / "outbox"
    transport = OutboxTransport(root)
    seen: list[tuple[int, int]] = []

    def handing_over(job: Job) -> None:
        seen.append((len(list((root / "tmp").iterdir())), len(list((root / "new").iterdir()))))
        if job.recipient.email.startswith("broken"):
            raise BrokenStateError("state.db: the database is locked")

    with pytest.raises(BrokenStateError):
        list(
            transport.send(
                [
                    _job("a@example.org"),
                    _job("b@example.org"),
                    _job("broken@example.org"),
                    _job("c@example.org"),
                ],
                handing_over=handing_over,
            )
        )
    # each file complete in tmp/ (one at a time) and not yet in new/ when handed over
    assert seen == [(1, 0), (1, 1), (1, 2)]
    assert sorted(p.name.split(".")[1] for p in (root / "new").iterdir()) == ["a@example", "b@example"]
    assert list((root / "tmp").iterdir()) == []  # the refused one is not left behind


def test_a_send_records_each_recipient_in_doubt_before_its_message_leaves(tmp_path: Path) -> None:
    """While the server holds its replies, everyone it has is recorded `in_doubt` (and then `sent`)."""
    pool = 2
    hold = threading.Event()
    handler = Recorder(hold=hold, hold_after=3)
    with smtp_server(handler) as server:
        config = write_config(
            tmp_path,
            transport="smtp",
            smtp=f'host = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\npool_size = {pool}\n'
            "rate_per_second = 1000\ntimeout = 10\nretries = 1\nretry_delay = 0.02",
        )
        make_built_issue(config)
        db = open_store(config)
        emails = [f"reader{i:02d}@example.org" for i in range(8)]
        for address in emails:
            db.subscribers.upsert_subscriber(address, name=None, at=NOW)
        sender = threading.Thread(target=send_issue, args=(config, db), kwargs={"now": NOW})
        sender.start()
        try:
            with open_store(config) as other:
                for _ in range(600):  # bounded: at most a minute
                    rows = list(other.ledger.iter_ledger(ISSUE_ID))
                    sent = {r.email for r in rows if r.status == "sent"}
                    doubt = {r.email for r in rows if r.status == "in_doubt"}
                    if len(sent) == 3 and len(doubt) == pool:  # the three answered, one held per connection
                        break
                    hold.wait(0.1)
            # Which three were answered first depends on how the two connections interleave.
            assert sent == set(handler.recipients()) and len(sent) == 3, rows
            assert len(doubt) == pool and not sent & doubt and sent | doubt == set(emails[:5]), rows
            assert len(rows) == 5
        finally:
            hold.set()
            sender.join(60)
    assert not sender.is_alive()
    statuses = {r.email: r.status for r in db.ledger.iter_ledger(ISSUE_ID)}
    db.close()
    assert statuses == dict.fromkeys(emails, "sent")


@dataclass
class HoldRcpt(Recorder):
    """Holds its reply to the first RCPT until `go` is set (`at_rcpt` says it is there)."""

    at_rcpt: threading.Event = field(default_factory=threading.Event)
    go: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        self.at_rcpt.set()
        for _ in range(6000):  # bounded: at most a minute
            if self.go.is_set():
                break
            await asyncio.sleep(0.01)
        return await super().handle_RCPT(server, session, envelope, address, options)


def test_a_state_locked_at_the_hand_over_stops_the_send_before_the_message_leaves(tmp_path: Path) -> None:
    """Another process locks the state while the server considers the first recipient: its `in_doubt`
    row cannot be written, so the message is not sent (the old code sent it, then failed to record it)."""
    handler = HoldRcpt()
    with smtp_server(handler) as server:
        config = write_config(
            tmp_path,
            transport="smtp",
            smtp=f'host = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\npool_size = 1\n'
            "rate_per_second = 1000\ntimeout = 10\nretries = 1\nretry_delay = 0.02",
        )
        make_built_issue(config)
        db = open_store(config)
        for i in range(3):
            db.subscribers.upsert_subscriber(f"reader{i}@example.org", name=None, at=NOW)
        sql(db).execute("PRAGMA busy_timeout = 200")  # give up on the lock soon (the default waits 30 s)
        outcome: list[BaseException] = []

        def run() -> None:
            try:
                send_issue(config, db, now=NOW)
            except StateError as e:
                outcome.append(e)

        sender = threading.Thread(target=run)
        sender.start()
        try:
            assert handler.at_rcpt.wait(60)
            with write_lock(config.state_path):
                handler.go.set()
                sender.join(60)
        finally:
            handler.go.set()
            sender.join(60)
        db.close()
    assert not sender.is_alive() and outcome, "the send should stop on the locked state"
    assert handler.rcpt_attempts["reader0@example.org"] == 1
    assert handler.messages == []  # nothing left without its row
