"""`digest send` of an issue with topic variants, killed with SIGKILL mid-send and resumed: nobody is lost,
nobody gets a second copy beyond the messages in flight at a kill (at most the pool size), and every copy,
the re-sent ones included, is the reader's own variant with the same Message-ID (issue 15 item 6)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from run_site import make_site
from send_support import parse, parts, smtp_server
from test_send_kill import KillPoint

from digest.cli import main
from digest.state.store import open_store

pytestmark = pytest.mark.smtp
REPO = Path(__file__).resolve().parent.parent
POOL = 2
KILLS = 3
PRIORITIES = """
[[priorities]]
name = "Start Well"
keywords = ["midwives"]

[[priorities]]
name = "Age Well"
keywords = ["care home"]
"""
CHOICES: tuple[tuple[str, ...], ...] = (("Start Well",), ("Age Well",), (), ("Start Well", "Age Well"))
READERS = tuple(f"reader{i:03d}@example.org" for i in range(60))
TO = re.compile(rb"^To: .*?<?([\w.@-]+)>?\r?$", re.MULTILINE)


class KeepingKillPoint(KillPoint):
    """A KillPoint that also keeps each copy's bytes, to check which variant it was."""

    bodies: list[tuple[str, bytes]]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.bodies.append((rcpt.lower(), bytes(envelope.content)))
        return await super().handle_DATA(server, session, envelope)


def test_sigkill_mid_send_across_variants_sends_each_reader_their_variant_and_nobody_twice(
    tmp_path: Path,
) -> None:
    handler = KeepingKillPoint()
    handler.bodies = []
    env = {**os.environ, "DIGEST_SECRET": "kill-test-secret", "PYTHONPATH": str(REPO)}
    with smtp_server(handler) as server:
        config = make_site(
            tmp_path,
            [
                ("Midwives celebrated", datetime(2025, 5, 5, 9, tzinfo=UTC)),
                ("A care home opens", datetime(2025, 5, 6, 9, tzinfo=UTC)),
                ("Roadworks on the A6", datetime(2025, 5, 7, 9, tzinfo=UTC)),
            ],
            transport="smtp",
            smtp=f'host = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\npool_size = {POOL}\n'
            "rate_per_second = 1000\ntimeout = 30\nretries = 1\nretry_delay = 0.05",
            subscribers=READERS,
            extra=PRIORITIES,
        )
        chosen = {a: CHOICES[i % len(CHOICES)] for i, a in enumerate(READERS)}
        with open_store(config) as db:
            for address, names in chosen.items():
                db.topics.set_topics(address, names)
        args = ["--config", str(config.path)]
        assert main(["build", "--as-of", "2025-05-09T08:00:00+01:00", *args]) == 0
        command = [sys.executable, "-m", "digest", "send", "--allow-insecure-links", *args]

        duplicates: list[int] = []
        kills = 0
        for kill_at in (7, 5, 9, 6, 8, 4):  # bounded: a run that ends before its kill point is not a kill
            if kills >= KILLS:
                break
            start = handler.total()
            handler.next_run(kill_at)
            sender = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(1200):  # bounded: at most a minute
                if handler.reached.wait(0.05) or sender.poll() is not None:
                    break
            if handler.reached.is_set():
                sender.send_signal(signal.SIGKILL)
                sender.wait(30)
                kills += 1
            else:
                sender.wait(60)
            handler.release_held()
            duplicates.append(handler.duplicates_since(start))

        handler.next_run(0)
        start = handler.total()
        final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert final.returncode == 0, final.stdout + final.stderr
        duplicates.append(handler.duplicates_since(start))

    assert kills == KILLS
    counts = Counter(rcpt for rcpt, _ in handler.copies)
    assert set(counts) == set(READERS)  # nobody lost (every variant here has entries)
    assert all(d <= POOL for d in duplicates), duplicates
    ids: dict[str, set[bytes]] = {}
    for rcpt, mid in handler.copies:
        ids.setdefault(rcpt, set()).add(mid)
    assert all(len(v) == 1 for v in ids.values()), "a re-sent copy carries a different Message-ID"
    for rcpt, data in handler.bodies:
        text, _ = parts(parse(data))
        names = set(chosen[rcpt])
        assert ("Midwives celebrated" in text) is (not names or "Start Well" in names), rcpt
        assert ("A care home opens" in text) is (not names or "Age Well" in names), rcpt
        assert ("Roadworks" in text) is (not names), rcpt
    with open_store(config) as db:
        assert db.ledger.sent_count("2025-W19") == len(READERS)
        assert db.ledger.sent_variants("2025-W19") == {
            "": 15,
            "Start Well": 15,
            "Age Well": 15,
            "Start Well; Age Well": 15,
        }
        record = db.issues.get_issue("2025-W19")
        assert record is not None and record.sent_at is not None
        for address in chosen:
            row = db.ledger.ledger_entry("2025-W19", address)
            assert row is not None and row.status == "sent"
