"""A slow "250" is not a failure; a missing one is "in doubt"; a stalled ledger stops the pool.

Real aiosmtpd servers on 127.0.0.1. The slow content filter records the message as soon as the whole
of it has arrived (as Postfix queues it), then answers late, or only when the test opens a gate.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from send_support import ISSUE_ID, NOW, make_built_issue, smtp_server, write_config, write_lock
from state_support import sql

from digest.cli import main
from digest.config import Config
from digest.errors import DigestError
from digest.pipeline.send import send_issue
from digest.state.store import open_store

pytestmark = pytest.mark.smtp
MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>\r\n]+>)", re.MULTILINE | re.IGNORECASE)


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", "doubt-test-secret")


@dataclass
class SlowFilter:
    """Keeps each whole message, then answers after `delay` s, or (for `held` addresses) once `gate` opens."""

    delay: float = 0.0
    held: frozenset[str] = frozenset()
    gate: threading.Event = field(default_factory=threading.Event)
    stall_after: int | None = None  # messages after this many are kept, then answered once `gate` opens
    reached: threading.Event = field(default_factory=threading.Event)
    copies: list[tuple[str, bytes]] = field(default_factory=list)  # (recipient, Message-ID)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        found = MESSAGE_ID.search(bytes(envelope.content))
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.copies.append((rcpt.lower(), found.group(1) if found else b""))
            count = len(self.copies)
        wait = bool(self.held & {r.lower() for r in envelope.rcpt_tos})
        if self.stall_after is not None and count > self.stall_after:
            self.reached.set()
            wait = True
        if wait:
            for _ in range(6000):  # bounded: at most a minute
                if self.gate.is_set():
                    break
                await asyncio.sleep(0.01)
        elif self.delay:
            await asyncio.sleep(self.delay)
        return "250 2.0.0 queued"

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(rcpt for rcpt, _ in self.copies)

    def ids(self, rcpt: str) -> set[bytes]:
        with self.lock:
            return {mid for r, mid in self.copies if r == rcpt}


def setup(root: Path, port: int, *, count: int, smtp: str) -> tuple[Config, list[str]]:
    config = write_config(
        root,
        transport="smtp",
        smtp=f'host = "127.0.0.1"\nport = {port}\nsecurity = "none"\nrate_per_second = 1000\n'
        f"retries = 2\nretry_delay = 0.02\n{smtp}",
    )
    make_built_issue(config)
    db = open_store(config)
    emails = [f"reader{i:02d}@example.org" for i in range(count)]
    for address in emails:
        db.subscribers.upsert_subscriber(address, name=None, at=NOW)
    db.close()
    return config, emails


def send(config: Config, *args: str) -> int:
    return main(["send", "--config", str(config.path), *args])


def test_a_reply_slower_than_timeout_but_within_data_timeout_is_one_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = SlowFilter(delay=2.5)  # always longer than [smtp] timeout, far shorter than data_timeout
    with smtp_server(handler) as server:
        config, emails = setup(
            tmp_path, server.port, count=3, smtp="pool_size = 3\ntimeout = 1\ndata_timeout = 60"
        )
        assert config.smtp.data_timeout == 60
        assert send(config) == 0
    captured = capsys.readouterr()
    assert "sent 3, already sent 0, failed 0, in doubt 0" in captured.out
    assert "cannot be reached" not in captured.err
    assert handler.counts() == dict.fromkeys(emails, 1)


def test_data_timeout_defaults_to_ten_minutes(tmp_path: Path) -> None:
    config = write_config(tmp_path, transport="smtp")
    assert config.smtp.data_timeout == 600


def test_no_reply_within_data_timeout_is_in_doubt_not_retried_then_resent_with_the_same_message_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    held = "reader01@example.org"
    handler = SlowFilter(held=frozenset({held}))
    with smtp_server(handler) as server:
        config, emails = setup(
            tmp_path, server.port, count=4, smtp="pool_size = 2\ntimeout = 10\ndata_timeout = 0.5"
        )
        assert send(config) == 5
        captured = capsys.readouterr()
        # Never retried in the run: the server has exactly one copy; everyone else has theirs.
        assert handler.counts() == dict.fromkeys(emails, 1)
        assert "sent 3, already sent 0, failed 0, in doubt 1" in captured.out
        assert f"in doubt {held}: no reply to the end of the message within [smtp] data_timeout" in (
            captured.out
        )
        assert "cannot be reached" not in captured.out + captured.err
        db = open_store(config)
        row = db.ledger.ledger_entry(ISSUE_ID, held)
        assert row is not None and row.status == "in_doubt"
        (first_id,) = handler.ids(held)
        assert row.message_id == first_id.decode()
        record = db.issues.get_issue(ISSUE_ID)
        assert record is not None and record.sent_at is None  # not complete while one is in doubt
        db.close()
        assert main(["status", "--config", str(config.path), "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        (issue,) = (i for i in status["issues"] if i["id"] == ISSUE_ID)
        assert (issue["recipients"], issue["in_doubt"], issue["failures"]) == (3, 1, 0)
        assert main(["status", "--config", str(config.path)]) == 0
        assert f"{ISSUE_ID}: 1 in doubt" in capsys.readouterr().out

        handler.gate.set()  # the filter answers at last; the resume sends that copy again
        # with the Message-ID recorded for it, even if the one derived now would differ
        monkeypatch.setenv("DIGEST_SECRET", "a-rotated-secret")
        assert send(config) == 0
        assert "sent 1, already sent 3" in capsys.readouterr().out
    assert handler.counts()[held] == 2
    assert handler.ids(held) == {first_id}  # the same Message-ID: one message in the reader's client
    db = open_store(config)
    row = db.ledger.ledger_entry(ISSUE_ID, held)
    assert row is not None and row.status == "sent" and row.message_id == first_id.decode()
    record = db.issues.get_issue(ISSUE_ID)
    assert record is not None and record.sent_at is not None
    db.close()


def test_the_message_id_is_per_issue_and_recipient_and_names_no_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = SlowFilter()
    with smtp_server(handler) as server:
        config, emails = setup(tmp_path, server.port, count=3, smtp="pool_size = 2")
        assert send(config) == 0
        assert send(config, "--to", emails[0]) == 0  # a test send gets a fresh one
    capsys.readouterr()
    ids = {rcpt: handler.ids(rcpt) for rcpt in emails}
    real = [mid for rcpt in emails for mid in ids[rcpt]]
    assert len(ids[emails[0]]) == 2 and all(len(ids[r]) == 1 for r in emails[1:])
    assert len(set(real)) == len(real)
    for mid in real:
        assert mid.endswith(b"@blmk.example>")  # the domain of the From address
        assert b"reader" not in mid and b"example.org" not in mid
    db = open_store(config)
    stored = {r.email: r.message_id for r in db.ledger.iter_ledger(ISSUE_ID)}
    db.close()
    for rcpt in emails:
        assert stored[rcpt] is not None and stored[rcpt].encode() in ids[rcpt]


def test_a_failed_ledger_write_stops_every_worker_with_at_most_pool_size_unrecorded(
    tmp_path: Path,
) -> None:
    """The state is locked by another process mid-send and the ledger write gives up: at most
    `pool_size` messages reached the server without their `sent` row, and none is sent after."""
    pool = 4
    handler = SlowFilter(stall_after=5)
    with smtp_server(handler) as server:
        config, _ = setup(tmp_path, server.port, count=30, smtp=f"pool_size = {pool}\ntimeout = 10")
        db = open_store(config)
        sql(db).execute("PRAGMA busy_timeout = 300")  # give up on the lock soon (the default waits 30 s)
        outcome: list[BaseException] = []

        def run() -> None:
            try:
                send_issue(config, db, now=NOW)
            except (sqlite3.Error, DigestError) as e:
                outcome.append(e)

        sender = threading.Thread(target=run)
        sender.start()
        assert handler.reached.wait(60)
        with write_lock(config.state_path):
            handler.gate.set()  # the stalled reply comes: its row cannot be written
            sender.join(120)
            assert not sender.is_alive()
            received = sum(handler.counts().values())
        db.close()
    assert outcome, "the send should fail on the locked state"
    db = open_store(config)
    recorded = db.ledger.sent_count(ISSUE_ID)
    db.close()
    assert received - recorded <= pool, (received, recorded)
    assert sum(handler.counts().values()) == received  # nothing was handed over after the failure


def test_the_ledger_migration_keeps_every_row_and_accepts_the_new_statuses(tmp_path: Path) -> None:
    from digest.state import schema, to_iso

    path = tmp_path / "state.db"
    old = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(schema.MIGRATIONS[:3], start=1):
        for statement in script.split(";\n"):
            if statement.strip():
                old.execute(statement)
        old.execute(f"PRAGMA user_version = {number}")
    rows = [
        ("2025-W18", "a@example.org", "sent", "<x@y>", None),
        ("2025-W18", "b@example.org", "failed", None, "450"),
    ]
    for issue_id, email, status, message_id, detail in rows:
        old.execute(
            "INSERT INTO send_ledger (issue_id, email, status, message_id, detail, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (issue_id, email, status, message_id, detail, to_iso(NOW)),
        )
    old.close()
    db = open_store(path)
    kept = [
        (r.issue_id, r.email, r.status, r.message_id, r.detail) for r in db.ledger.iter_ledger("2025-W18")
    ]
    assert kept == rows
    db.ledger.record_in_doubt("2025-W18", "B@example.org", message_id="<m@y>", detail="no reply", at=NOW)
    db.ledger.record_failed("2025-W18", "c@example.org", detail="550 5.7.1", at=NOW, permanent=True)
    db.ledger.record_in_doubt("2025-W18", "a@example.org", message_id="<m@y>", detail="no reply", at=NOW)
    assert db.ledger.status_counts("2025-W18") == {"sent": 1, "failed": 0, "refused": 1, "in_doubt": 1}
    db.close()
