"""`digest send --join`: several senders share one send through batches claimed in PostgreSQL.

The kill test runs real processes against real aiosmtpd servers (one per sender, so each server counts
its sender's messages) and the throwaway PostgreSQL. Every server holds back its replies from a set
message on (a gate, not a timer), so each sender is provably mid-send when the test acts: the victim is
killed with SIGKILL while its replies are held, then the others are let go and finish the send.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from send_support import ISSUE_ID, NOW, Gate, make_built_issue, smtp_server, wait_until_held, write_config

from digest.cli import main
from digest.config import Config, load_config
from digest.state.backend import open_database
from digest.state.batches import CLAIMABLE
from digest.state.store import Store, open_store

pytestmark = pytest.mark.smtp
REPO = Path(__file__).resolve().parent.parent
POOL = 4
SUBSCRIBERS = 300
BATCH = 10


def _config(root: Path, url: str, name: str, port: int) -> Config:
    """A config file `name` in `root` (all share the built issue and the state) sending to `port`."""
    smtp = (
        f'host = "127.0.0.1"\nport = {port}\nsecurity = "none"\npool_size = {POOL}\n'
        f'rate_per_second = 10000\ntimeout = 60\nretries = 1\nretry_delay = 0.05\n\n[state]\nurl = "{url}"'
    )
    path = root / name
    if path.exists():
        return load_config(path)
    if not (root / "config.toml").exists():
        write_config(root, f"batch_size = {BATCH}", transport="smtp", smtp=smtp)
    text = re.sub(r"(?m)^port = \d+$", f"port = {port}", (root / "config.toml").read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_three_joiners_one_killed_lose_no_one_and_duplicate_at_most_pool_size(
    tmp_path: Path, postgres_db: str
) -> None:
    gates = [Gate(hold_from=1), Gate(hold_from=6), Gate(hold_from=1), Gate(hold_from=1)]
    env = {**os.environ, "DIGEST_SECRET": "join-test-secret", "PYTHONPATH": str(REPO)}
    emails = [f"reader{i:03d}@example.org" for i in range(SUBSCRIBERS)]
    with (
        smtp_server(gates[0]) as s0,
        smtp_server(gates[1]) as s1,
        smtp_server(gates[2]) as s2,
        smtp_server(gates[3]) as s3,
    ):
        names = ("config.toml", "victim.toml", "join2.toml", "join3.toml")
        configs = [
            _config(tmp_path, postgres_db, name, server.port)
            for name, server in zip(names, (s0, s1, s2, s3), strict=True)
        ]
        make_built_issue(configs[0])
        with open_store(configs[0]) as db:
            for address in emails:
                db.subscribers.upsert_subscriber(address, name=None, at=NOW)

        def start(config: Config, *extra: str) -> subprocess.Popen[bytes]:
            command = [sys.executable, "-m", "digest", "send", "--config", str(config.path), *extra]
            return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        first = start(configs[0])  # the first send cuts the batches; its server holds its first reply
        wait_until_held(gates[0].reached, first, "digest send")
        victim = start(configs[1], "--join")
        wait_until_held(gates[1].reached, victim, "the victim (digest send --join)")
        others = [start(configs[2], "--join"), start(configs[3], "--join")]
        for gate, process in zip(gates[2:], others, strict=True):
            wait_until_held(gate.reached, process, "digest send --join")
        victim.send_signal(signal.SIGKILL)  # mid-send: its replies are held, its batch is open
        victim.wait(30)
        # Every sender is stalled now: what any server has without a `sent` row is recorded in doubt,
        # and of the dead sender's at most POOL (each row written before its message was handed over).
        with open_store(configs[0]) as db:
            rows = list(db.ledger.iter_ledger(ISSUE_ID))
        sent = {row.email for row in rows if row.status == "sent"}
        doubt = {row.email for row in rows if row.status == "in_doubt"}
        unrecorded = {rcpt for gate in gates for rcpt, _ in gate.received()} - sent
        assert unrecorded <= doubt, sorted(unrecorded - doubt)
        assert 0 < len({rcpt for rcpt, _ in gates[1].received()} - sent) <= POOL
        for gate in (gates[0], gates[2], gates[3]):
            gate.release.set()
        outputs = []
        for process in (first, *others):
            out, _ = process.communicate(timeout=300)
            outputs.append(out.decode())
            assert process.returncode == 0, out.decode()

    copies = [copy for gate in gates for copy in gate.received()]
    counts = Counter(rcpt for rcpt, _ in copies)
    assert set(counts) == set(emails), "a subscriber got no copy"  # 0 lost
    duplicated = {rcpt for rcpt, n in counts.items() if n > 1}
    duplicates = sum(counts.values()) - len(emails)
    victim_had = {rcpt for rcpt, _ in gates[1].received()}
    assert duplicated <= victim_had, "a copy was duplicated that the dead sender never handed over"
    assert duplicates <= POOL, (duplicates, sorted(duplicated))
    ids: dict[str, set[bytes]] = {}
    for rcpt, mid in copies:
        ids.setdefault(rcpt, set()).add(mid)
    assert all(len(v) == 1 for v in ids.values()), "a re-sent copy carries a different Message-ID"
    assert any("Resumed a send left by a stopped process" in out for out in outputs), outputs
    for gate in (gates[0], gates[2], gates[3]):  # the work was shared: every live sender sent some
        assert gate.received()
    with open_store(configs[0]) as db:
        assert db.ledger.sent_count(ISSUE_ID) == SUBSCRIBERS
        record = db.issues.get_issue(ISSUE_ID)
        assert record is not None and record.sent_at is not None
        assert db.batches.open_count(ISSUE_ID) == 0


def test_join_with_nothing_being_sent_says_so(
    tmp_path: Path, postgres_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, postgres_db, "config.toml", 2525)
    make_built_issue(config)
    assert main(["send", "--join", "--config", str(config.path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Nothing to join: no issue is being sent" in out


def test_join_needs_postgresql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["send", "--join", "--config", str(config.path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--join needs the state in PostgreSQL ([state] url)" in err
    assert "digest state migrate --to" in err


def test_batches_are_claimed_once_each_and_a_dead_or_stale_holder_loses_its_batch(
    tmp_path: Path, postgres_db: str
) -> None:
    config = _config(tmp_path, postgres_db, "config.toml", 2525)
    make_built_issue(config)
    with open_store(config) as db, open_store(config) as other:
        for i in range(25):
            db.subscribers.upsert_subscriber(f"reader{i:02d}@example.org", name=None, at=NOW)
        assert db.batches.open_round(ISSUE_ID, size=BATCH) == 3
        assert db.batches.open_round(ISSUE_ID, size=BATCH) == 3  # open batches are kept, not cut again
        stale = timedelta(minutes=2)
        with db.transaction():  # a's claim is not committed yet: b skips its locked row
            one = db.batches.claim_batch(ISSUE_ID, "host-a:1:x", at=NOW, stale_after=stale)
            two = other.batches.claim_batch(ISSUE_ID, "host-b:2:y", at=NOW, stale_after=stale)
        assert one is not None and two is not None and one[0].lo != two[0].lo
        assert one[0].lo == "" and {len(db.batches.recipients(b)) for b, _ in (one, two)} == {BATCH}
        three = db.batches.claim_batch(ISSUE_ID, "host-c:3:z", at=NOW, stale_after=stale)
        assert three is not None and three[0].hi is None and len(db.batches.recipients(three[0])) == 5
        assert db.batches.claim_batch(ISSUE_ID, "host-c:3:z", at=NOW, stale_after=stale) is None
        # holder b is "gone": its batch is taken over at once; holder a's only once stale
        taken = db.batches.claim_batch(
            ISSUE_ID, "host-c:3:z", at=NOW, stale_after=stale, gone=lambda h: h.startswith("host-b")
        )
        assert taken is not None and taken[0].lo == two[0].lo and taken[1] == "host-b:2:y"
        assert not db.batches.holds(two[0], "host-b:2:y") and db.batches.holds(two[0], "host-c:3:z")
        # the new holder sends what the ledger does not settle; a copy in doubt keeps its Message-ID
        db.ledger.record_sent(ISSUE_ID, "reader10@example.org", message_id="<a@x>", at=NOW)
        db.ledger.record_in_doubt(ISSUE_ID, "reader11@example.org", message_id="<b@x>", detail="-", at=NOW)
        left = db.batches.recipients(two[0])
        assert [r[0] for r in left][:2] == ["reader11@example.org", "reader12@example.org"]
        assert (left[0][3], left[1][3], len(left)) == ("<b@x>", None, BATCH - 1)
        assert db.batches.claim_batch(ISSUE_ID, "host-c:3:z", at=NOW, stale_after=stale) is None
        later = db.batches.claim_batch(ISSUE_ID, "host-c:3:z", at=NOW + stale * 2, stale_after=stale)
        assert later is not None and later[0].lo == "" and later[1] == "host-a:1:x"
        assert not db.batches.finish(one[0], "host-a:1:x")  # no longer a's
        assert [w.holder for w in db.batches.workers(ISSUE_ID)] == ["host-c:3:z"]
        for batch in (one[0], two[0], three[0]):
            assert db.batches.finish(batch, "host-c:3:z")
        assert db.batches.open_count(ISSUE_ID) == 0 and db.batches.issue_in_progress() is None


def test_status_shows_the_senders_of_a_send_in_progress(
    tmp_path: Path, postgres_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, postgres_db, "config.toml", 2525)
    make_built_issue(config)
    with open_store(config) as db:
        for i in range(25):
            db.subscribers.upsert_subscriber(f"reader{i:02d}@example.org", name=None, at=NOW)
        db.batches.open_round(ISSUE_ID, size=BATCH)
        for holder in ("web1:41:aa", "web2:42:bb"):
            db.batches.claim_batch(ISSUE_ID, holder, at=NOW, stale_after=timedelta(minutes=2))
    assert main(["status", "--json", "--config", str(config.path)]) == 0
    data = json.loads(capsys.readouterr().out)
    (issue,) = data["issues"]
    assert [(w["holder"], w["batches"]) for w in issue["workers"]] == [("web1:41:aa", 1), ("web2:42:bb", 1)]
    assert main(["status", "--config", str(config.path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "being sent by 2 sender(s), 0 of 3 batches done: web1:41:aa" in out


def test_a_claim_late_in_a_large_send_reads_only_the_open_batches(tmp_path: Path, postgres_db: str) -> None:
    # 1,000,000 subscribers make 4,000 batches of 250: near the end of the send a claim must not step
    # over the thousands done (the partial index send_batches_open holds the open ones only).
    db = open_database(path=tmp_path / "unused.db", url=postgres_db)
    try:
        db.execute_many(
            "INSERT INTO send_batches (issue_id, lo, hi, done) VALUES (?, ?, ?, ?)",
            [(ISSUE_ID, f"r{i:05d}", f"r{i + 1:05d}", int(i < 3990)) for i in range(4000)],
        )
        db.execute("ANALYZE send_batches")
        plan = [
            str(row[0])
            for row in db.fetch_all(
                f"EXPLAIN (ANALYZE, COSTS OFF) {CLAIMABLE} FOR UPDATE SKIP LOCKED", (ISSUE_ID, "2025")
            )
        ]
        stepped_over = [int(line.rsplit(":", 1)[1]) for line in plan if "Rows Removed by Filter" in line]
        assert any("send_batches_open" in line for line in plan), plan
        assert sum(stepped_over) == 0, plan
        claimed = Store(db).batches.claim_batch(
            ISSUE_ID, "host-a:1:x", at=NOW, stale_after=timedelta(minutes=2)
        )
        assert claimed is not None and claimed[0].lo == "r03990"
    finally:
        db.close()


def test_the_state_lends_a_connection_to_every_smtp_worker_at_once(tmp_path: Path, postgres_db: str) -> None:
    """Each SMTP worker writes its recipient's in_doubt row from its own thread before the hand-over: with
    `[smtp] pool_size = 8` the PostgreSQL pool must lend 8 connections (and the sender's two) at once, not
    4 (a fifth worker would wait for a connection while holding its server's reply)."""
    _config(tmp_path, postgres_db, "config.toml", 2525)  # no server: nothing is sent
    config_text = (tmp_path / "config.toml").read_text(encoding="utf-8")
    (tmp_path / "config.toml").write_text(
        re.sub(r"(?m)^pool_size = \d+$", "pool_size = 8", config_text), encoding="utf-8"
    )
    config = load_config(tmp_path / "config.toml")
    assert config.smtp.pool_size == 8
    workers = 10
    all_in = threading.Barrier(workers)
    failures: list[BaseException] = []
    with open_store(config) as db:

        def hold_a_connection() -> None:
            try:
                with db.transaction():
                    db.settings.get_setting("nothing")
                    all_in.wait(timeout=60)  # never passes if the pool lends fewer than `workers`
            except BaseException as e:  # noqa: BLE001 - reported below
                failures.append(e)

        threads = [threading.Thread(target=hold_a_connection) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
    assert failures == []
