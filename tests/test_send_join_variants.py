"""`digest send --join` of an issue with topic variants: every sender routes each recipient of the batches it
claims to their own variant, as a single sender does (issue 10 item 3 with issue 15 item 4).

Real processes against real aiosmtpd servers (one per sender) and the throwaway PostgreSQL, gated as in
test_send_join.py: every server holds back its replies from a set message on, so each sender is provably
mid-send (and holds a batch) before the test lets them go or kills one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from run_site import make_site
from send_support import Gate, parse, parts, smtp_server, wait_until_held
from topics_support import ITEMS, PRIORITIES

from digest.cli import main
from digest.compose.variants import choice_key
from digest.config import Config, load_config
from digest.state.backend import open_database
from digest.state.store import open_store

pytestmark = pytest.mark.smtp
REPO = Path(__file__).resolve().parent.parent
ISSUE = "2025-W19"
POOL = 3
BATCH = 8
# The whole issue, two variants with entries, and "Work Well", a variant with none this issue.
CHOICES: tuple[tuple[str, ...], ...] = (("Start Well",), ("Age Well",), (), ("Work Well",), ("Start Well",))
READERS = tuple(f"reader{i:03d}@example.org" for i in range(120))
CHOSEN = {address: CHOICES[i % len(CHOICES)] for i, address in enumerate(READERS)}
EMPTY = {address for address, names in CHOSEN.items() if names == ("Work Well",)}
CONFIGURED = ("Start Well", "Age Well", "Work Well")


@dataclass
class KeepingGate(Gate):
    """A Gate that also keeps each copy's bytes, to tell which variant it was."""

    bodies: list[tuple[str, bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.bodies.append((rcpt.lower(), bytes(envelope.content)))
        return await super().handle_DATA(server, session, envelope)


def _site(root: Path, url: str, ports: list[int]) -> list[Config]:
    """The site with its readers' topics, built; one config per sender (each its own SMTP port)."""
    smtp = (
        f'host = "127.0.0.1"\nport = {ports[0]}\nsecurity = "none"\npool_size = {POOL}\n'
        "rate_per_second = 10000\ntimeout = 60\nretries = 1\nretry_delay = 0.05"
    )
    make_site(root, ITEMS, transport="smtp", smtp=smtp, subscribers=READERS, extra=PRIORITIES, state_url=url)
    text = (root / "config.toml").read_text(encoding="utf-8")
    text = text.replace("[delivery]\n", f"[delivery]\nbatch_size = {BATCH}\n", 1)
    (root / "config.toml").write_text(text, encoding="utf-8")
    configs = [load_config(root / "config.toml")]
    for n, port in enumerate(ports[1:], start=1):
        path = root / f"join{n}.toml"
        path.write_text(re.sub(r"(?m)^port = \d+$", f"port = {port}", text), encoding="utf-8")
        configs.append(load_config(path))
    assert configs[0].delivery.batch_size == BATCH
    with open_store(configs[0]) as db:
        for address, names in CHOSEN.items():
            db.topics.set_topics(address, names)
    assert main(["build", "--as-of", "2025-05-09T08:00:00+01:00", "--config", str(configs[0].path)]) == 0
    with open_store(configs[0]) as db:
        variants = {key: v.entry_count for key, v in db.topics.variants_of(ISSUE).items()}
    assert variants == {"Start Well": 1, "Age Well": 1, "Work Well": 0}
    return configs


def _start(config: Config, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DIGEST_SECRET": "join-variants-secret", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "digest", "send", "--allow-insecure-links", "--config", str(config.path)]
    return subprocess.Popen([*command, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _check_copies(gates: list[KeepingGate]) -> None:
    """Every copy is its reader's own variant: only their priorities' entries (all for the whole issue)."""
    for gate in gates:
        for rcpt, data in gate.bodies:
            text, html = parts(parse(data))
            names = set(CHOSEN[rcpt])
            assert names != {"Work Well"}, f"{rcpt}: their variant is empty, yet they got a copy"
            assert ("Midwives celebrated" in text) is (not names or "Start Well" in names), rcpt
            assert ("care home opens" in text) is (not names or "Age Well" in names), rcpt
            assert ("Roadworks" in text) is (not names), rcpt
            assert ("Roadworks" in html) is (not names), rcpt


def _check_ledger(url: str, root: Path) -> None:
    """The ledger's variant of each reader is their choice's; the readers of the empty one have no row."""
    db = open_database(path=root / "unused.db", url=url)
    try:
        rows = db.fetch_all(
            "SELECT email, status, coalesce(variant, '') FROM send_ledger WHERE issue_id = ?", (ISSUE,)
        )
    finally:
        db.close()
    got = {str(email): (str(status), str(variant)) for email, status, variant in rows}
    expected = {
        address: ("sent", choice_key(names, CONFIGURED))
        for address, names in CHOSEN.items()
        if address not in EMPTY
    }
    assert got == expected


def _no_entries_in(output: str) -> int:
    found = re.search(r"(\d+) reader\(s\) not sent this issue: their topics have no entries", output)
    return int(found.group(1)) if found else 0


def test_one_sender_and_two_joiners_send_each_reader_their_own_variant_once(
    tmp_path: Path, postgres_db: str
) -> None:
    gates = [KeepingGate(hold_from=1) for _ in range(3)]
    with smtp_server(gates[0]) as s0, smtp_server(gates[1]) as s1, smtp_server(gates[2]) as s2:
        configs = _site(tmp_path, postgres_db, [s0.port, s1.port, s2.port])
        first = _start(configs[0])  # cuts the batches; its server holds its first reply
        wait_until_held(gates[0].reached, first, "digest send")
        joiners = [_start(configs[1], "--join"), _start(configs[2], "--join")]
        for gate, process in zip(gates[1:], joiners, strict=True):
            # On a single sender (the old behaviour with variants) the joiner finds nothing to join.
            wait_until_held(gate.reached, process, "digest send --join")
        for gate in gates:
            gate.release.set()
        outputs = []
        for process in (first, *joiners):
            out, _ = process.communicate(timeout=300)
            outputs.append(" ".join(out.decode().split()))
            assert process.returncode == 0, out.decode()

    counts = Counter(rcpt for gate in gates for rcpt, _ in gate.received())
    assert set(counts) == set(READERS) - EMPTY  # nobody lost; the empty variant's readers get nothing
    assert set(counts.values()) == {1}  # nobody twice
    assert all(gate.received() for gate in gates)  # the work was shared
    _check_copies(gates)
    _check_ledger(postgres_db, tmp_path)
    # The first sender reports every reader of the empty variant; each joiner those of its batches.
    assert _no_entries_in(outputs[0]) == len(EMPTY), outputs[0]
    assert sum(_no_entries_in(out) for out in outputs[1:]) <= len(EMPTY)
    for out in outputs:  # every sender saw the send complete without the empty variant's readers
        assert "The issue is marked sent." in out, out
    assert "joined the send" in outputs[1] and "joined the send" in outputs[2]
    with open_store(configs[0]) as db:
        assert db.ledger.sent_variants(ISSUE) == {
            "": len([a for a in CHOSEN.values() if not a]),
            "Start Well": len([a for a in CHOSEN.values() if a == ("Start Well",)]),
            "Age Well": len([a for a in CHOSEN.values() if a == ("Age Well",)]),
        }
        record = db.issues.get_issue(ISSUE)
        assert record is not None and record.sent_at is not None
        assert db.batches.open_count(ISSUE) == 0


def test_a_joiner_killed_mid_send_loses_no_one_and_resends_only_its_own_variant_copies(
    tmp_path: Path, postgres_db: str
) -> None:
    gates = [KeepingGate(hold_from=1), KeepingGate(hold_from=5), KeepingGate(hold_from=1)]
    with smtp_server(gates[0]) as s0, smtp_server(gates[1]) as s1, smtp_server(gates[2]) as s2:
        configs = _site(tmp_path, postgres_db, [s0.port, s1.port, s2.port])
        first = _start(configs[0])
        wait_until_held(gates[0].reached, first, "digest send")
        victim = _start(configs[1], "--join")
        wait_until_held(gates[1].reached, victim, "the victim (digest send --join)")
        other = _start(configs[2], "--join")
        wait_until_held(gates[2].reached, other, "digest send --join")
        victim.send_signal(signal.SIGKILL)  # mid-send: its replies are held, its batch is open
        victim.wait(30)
        with open_store(configs[0]) as db:
            sent = {row.email for row in db.ledger.iter_ledger(ISSUE) if row.status == "sent"}
        assert 0 < len({rcpt for rcpt, _ in gates[1].received()} - sent) <= POOL
        for gate in (gates[0], gates[2]):
            gate.release.set()
        outputs = []
        for process in (first, other):
            out, _ = process.communicate(timeout=300)
            outputs.append(" ".join(out.decode().split()))
            assert process.returncode == 0, out.decode()

    copies = [copy for gate in gates for copy in gate.received()]
    counts = Counter(rcpt for rcpt, _ in copies)
    assert set(counts) == set(READERS) - EMPTY  # 0 lost
    duplicated = {rcpt for rcpt, n in counts.items() if n > 1}
    assert duplicated <= {rcpt for rcpt, _ in gates[1].received()}, "duplicated but never handed by the dead"
    assert sum(counts.values()) - len(counts) <= POOL, sorted(duplicated)
    ids: dict[str, set[bytes]] = {}
    for rcpt, mid in copies:
        ids.setdefault(rcpt, set()).add(mid)
    assert all(len(v) == 1 for v in ids.values()), "a re-sent copy carries a different Message-ID"
    _check_copies(gates)  # each duplicate is its reader's own variant, like the first copy
    _check_ledger(postgres_db, tmp_path)
    assert any("Resumed a send left by a stopped process" in out for out in outputs), outputs
    with open_store(configs[0]) as db:
        record = db.issues.get_issue(ISSUE)
        assert record is not None and record.sent_at is not None
        assert db.batches.open_count(ISSUE) == 0
