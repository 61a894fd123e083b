"""`digest send` killed with SIGKILL at random points: nobody lost, at most `pool_size` duplicates a kill.

A real aiosmtpd keeps every copy as soon as the whole message has arrived. Each run is killed while
the reply to one message (the `kill_at`-th of that run, drawn from a seeded generator) is held back,
so the kill always lands mid-send whatever the machine's speed; every other kill also happens while
another process holds a write lock on the state (the sender cannot record what the server accepted).
The next run resumes; its copies of recipients the server already had are the duplicates of that kill.
After each kill, every recipient the server has a copy for without a `sent` row is recorded `in_doubt`
(each row is written before its message is handed over), and there are at most `pool_size` of them.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from send_support import ISSUE_ID, NOW, make_built_issue, smtp_server, write_config, write_lock

from digest.config import Config
from digest.state.store import open_store

pytestmark = pytest.mark.smtp
REPO = Path(__file__).resolve().parent.parent
MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>\r\n]+>)", re.MULTILINE | re.IGNORECASE)
POOL = 4
KILLS = 10
SUBSCRIBERS = 150


@dataclass
class KillPoint:
    """Keeps every copy; from the `kill_at`-th message of the current run on, holds back the replies.

    So a run is stalled (one message held on each connection) until the test releases the held
    replies or kills the sender, however fast or slow the machine is.
    """

    kill_at: int = 0
    run_count: int = 0
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    copies: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_run(self, kill_at: int) -> None:
        with self.lock:
            self.kill_at, self.run_count = kill_at, 0
            self.reached, self.release = threading.Event(), threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        found = MESSAGE_ID.search(bytes(envelope.content))
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.copies.append((rcpt.lower(), found.group(1) if found else b""))
            self.run_count += 1
            hold = 0 < self.kill_at <= self.run_count
            reached, release = self.reached, self.release
        if hold:
            reached.set()
            for _ in range(6000):  # bounded: at most a minute
                if release.is_set():
                    break
                await asyncio.sleep(0.01)
        return "250 2.0.0 queued"

    def total(self) -> int:
        with self.lock:
            return len(self.copies)

    def release_held(self) -> None:
        """Answer the messages held so far; those arriving later are held until the next release."""
        with self.lock:
            held, self.release = self.release, threading.Event()
        held.set()

    def duplicates_since(self, start: int) -> int:
        """Copies kept since the `start`-th whose recipient already had one."""
        with self.lock:
            seen = Counter(rcpt for rcpt, _ in self.copies[:start])
            dup = 0
            for rcpt, _ in self.copies[start:]:
                dup += seen[rcpt] > 0
                seen[rcpt] += 1
            return dup

    def received(self) -> set[str]:
        with self.lock:
            return {rcpt for rcpt, _ in self.copies}


def _settled(handler: KillPoint, sender: subprocess.Popen[bytes]) -> None:
    """Wait (bounded) until the locked-out sender stops handing over messages, or exits."""
    last, still = handler.total(), 0
    for _ in range(100):  # at most about 5 s
        if sender.poll() is not None:
            return
        time.sleep(0.05)
        now = handler.total()
        still = still + 1 if now == last else 0
        last = now
        if still >= 10:
            return


def _check_in_doubt(config: Config, handler: KillPoint) -> int:
    """After a kill: what the server has without a `sent` row is all `in_doubt`, and at most POOL are."""
    db = open_store(config)
    try:
        rows = list(db.ledger.iter_ledger(ISSUE_ID))
    finally:
        db.close()
    sent = {row.email.lower() for row in rows if row.status == "sent"}
    doubt = {row.email.lower() for row in rows if row.status == "in_doubt"}
    others = [row for row in rows if row.status not in ("sent", "in_doubt")]
    unrecorded = handler.received() - sent
    assert unrecorded <= doubt, f"received without a row: {sorted(unrecorded - doubt)}"
    assert len(doubt) <= POOL, sorted(doubt)
    assert not others, others
    return len(doubt)


def test_sigkill_at_random_points_loses_no_one_and_duplicates_at_most_pool_size(tmp_path: Path) -> None:
    rng = random.Random(20261130)
    handler = KillPoint()
    env = {**os.environ, "DIGEST_SECRET": "kill-test-secret", "PYTHONPATH": str(REPO)}
    with smtp_server(handler) as server:
        config = write_config(
            tmp_path,
            transport="smtp",
            smtp=f'host = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\npool_size = {POOL}\n'
            "rate_per_second = 1000\ntimeout = 30\nretries = 1\nretry_delay = 0.05",
        )
        make_built_issue(config)
        db = open_store(config)
        emails = [f"reader{i:03d}@example.org" for i in range(SUBSCRIBERS)]
        for address in emails:
            db.subscribers.upsert_subscriber(address, name=None, at=NOW)
        db.close()
        command = [sys.executable, "-m", "digest", "send", "--config", str(config.path)]

        duplicates: list[int] = []  # per run: copies of recipients the server already had
        kills = locked_kills = 0
        doubts: list[int] = []  # per kill: recipients recorded in doubt
        for _ in range(KILLS * 2):  # bounded: a run that ends before its kill point is not a kill
            if kills >= KILLS:
                break
            start = handler.total()
            handler.next_run(rng.randint(1, 8))
            mode = "locked" if kills % 2 else rng.choice(("held", "released"))
            sender = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(1200):  # bounded: at most a minute
                if handler.reached.wait(0.05) or sender.poll() is not None:
                    break
            if handler.reached.is_set():
                if mode == "locked":
                    with write_lock(config.state_path):
                        handler.release_held()  # the replies come, but their rows cannot be written
                        _settled(handler, sender)
                        sender.send_signal(signal.SIGKILL)
                        sender.wait(30)
                    locked_kills += 1
                else:
                    if mode == "released":
                        handler.release_held()  # killed while it records them and sends the next
                    sender.send_signal(signal.SIGKILL)
                    sender.wait(30)
                kills += 1
                doubts.append(_check_in_doubt(config, handler))  # before the next run resumes
            else:
                sender.wait(60)
            handler.release_held()
            duplicates.append(handler.duplicates_since(start))
            assert len(handler.received()) < SUBSCRIBERS, "ran out of recipients before enough kills"

        handler.next_run(0)
        start = handler.total()
        left = _check_in_doubt(config, handler)
        final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert final.returncode == 0, final.stdout + final.stderr
        assert ", in doubt 0" in final.stdout, final.stdout
        if left:  # the resume says how many it found in doubt (and sends them again)
            assert f"{left} message(s) were in doubt from an earlier send" in final.stdout, final.stdout
        duplicates.append(handler.duplicates_since(start))

    # the duplicates of each kill show up in the run after it (the final run included)
    counts = Counter(rcpt for rcpt, _ in handler.copies)
    print(
        f"\n{kills} kills ({locked_kills} with the state locked): duplicates per run {duplicates},"
        f" in doubt after each kill {doubts}"
    )  # shown with pytest -s
    assert kills >= 10 and locked_kills >= 5
    assert any(doubts), doubts  # the kills did land with messages in flight
    assert set(counts) == set(emails), "a subscriber got no copy"  # 0 lost
    total_duplicates = sum(counts.values()) - len(emails)
    assert all(d <= POOL for d in duplicates), duplicates
    assert total_duplicates <= POOL * kills, (total_duplicates, duplicates)
    ids: dict[str, set[bytes]] = {}
    for rcpt, mid in handler.copies:
        ids.setdefault(rcpt, set()).add(mid)
    assert all(len(v) == 1 for v in ids.values()), "a re-sent copy carries a different Message-ID"
    db = open_store(config)
    assert db.ledger.sent_count(ISSUE_ID) == SUBSCRIBERS
    assert db.ledger.status_counts(ISSUE_ID)["in_doubt"] == 0  # each copy in doubt was sent again
    record = db.issues.get_issue(ISSUE_ID)
    assert record is not None and record.sent_at is not None
    db.close()
