"""Join: 1,000,000 subscribers, one `digest send` vs three senders sharing the send (`--join`), and claiming.

Needs Debian's PostgreSQL: a throwaway server is started as tests/pg_server.py does (if it cannot start,
every figure is skipped with why). Budget: about 4-5 minutes on 2 busy cores, the load included.

1. The state: `SUBSCRIBERS` active subscribers (default 1,000,000; DIGEST_BENCH_JOIN_SUBSCRIBERS=N),
   bulk-loaded with COPY (the bench's own setup; the load time is printed), and one built issue.
2. Throughput over a fixed window. Sending 1,000,000 messages through sinks that take 50 ms each would
   take hours, so each run sends the issue for `WINDOW` seconds (default 12; DIGEST_BENCH_JOIN_WINDOW=S)
   and then stops every sender gracefully (SIGTERM: the messages in flight are finished and recorded);
   the ledger is emptied before the next run, so every run starts at 1,000,000 pending. A run starts
   `digest send` (which cuts the pending recipients into batches of `BATCH`) and, for three senders, two
   `digest send --join` once the batches are cut, each sender to its own local aiosmtpd sink (its own
   process). The window opens once every sender has claimed a batch and a message is recorded (the
   start-up before that is printed apart: process start, counting the 1,000,000 pending, cutting the
   batches); messages/s are the `sent` ledger rows written during the window over its length. After the stop
   the sinks are checked against the ledger: every message a sink accepted has its row, and no address
   reached the sinks twice. One sender and three take turns for `ROUNDS` rounds (default 2;
   DIGEST_BENCH_JOIN_ROUNDS=N) and the ratio is of their pooled rates, with the machine's load average
   printed beside each run: the 2 cores are shared with other work, which moves single runs a lot.
   The sinks model a relay: `RELAY_DELAY` (50 ms) before the reply to the end of DATA, as a relay
   writing its queue and scanning the message. The figure with sinks that reply at once is printed
   too: then the senders, the sinks and PostgreSQL compete for the same 2 cores, so it says more about
   the machine than about `--join`. Every sender has the same settings (`[smtp] pool_size` `POOL`,
   `[delivery] batch_size` `BATCH`). A relay-bound send scales with the connections open to relays,
   which is what each `--join` adds (each host with its own relay).
3. Claiming: the state operations each message costs without SMTP, with the same 1,000,000 pending.
   On PostgreSQL the batch path (claim a batch, read its recipients, check the batch is still held
   before the hand-overs as `deliver_batches` does, mark it done) over `CLAIM_BATCHES` batches; on
   SQLite (the same subscribers, made by one INSERT ... SELECT) the single-sender path (claim the issue,
   page through the pending recipients, check the claim and the ledger row before each hand-over) over
   as many messages. The ledger rows each message writes on both (in_doubt before the hand-over, then
   sent) are shown apart: on PostgreSQL each is a round trip to the server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

SUBSCRIBERS = int(os.environ.get("DIGEST_BENCH_JOIN_SUBSCRIBERS", "1000000"))
WINDOW = float(os.environ.get("DIGEST_BENCH_JOIN_WINDOW", "12"))
ROUNDS = int(os.environ.get("DIGEST_BENCH_JOIN_ROUNDS", "2"))
BATCH = 250
CLAIM_BATCHES = 10
RELAY_DELAY = 0.05  # seconds a "real relay" sink takes before its reply to the end of DATA
POOL = 4
START_TIMEOUT = 180.0  # seconds for every sender to be sending (bounded: a busy machine is slow, not stuck)
STOP_TIMEOUT = 120.0
NOW = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)
ISSUE = "2025-W19"
STAMP = NOW.isoformat()

_SINK = """
import asyncio, os, signal, sys, threading
from aiosmtpd.controller import Controller

DELAY = float(sys.argv[2])
accepted = []

class Sink:
    async def handle_DATA(self, server, session, envelope):
        if DELAY:
            await asyncio.sleep(DELAY)
        accepted.extend(envelope.rcpt_tos)
        return "250 OK"

def stop(*_):
    with open(sys.argv[3], "w") as out:
        out.write("\\n".join(accepted))
    os._exit(0)

signal.signal(signal.SIGTERM, stop)
Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1])).start()
threading.Event().wait()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sinks:
    """Local aiosmtpd sinks; `accepted()` stops them and returns every recipient they accepted."""

    ports: list[int]
    processes: list[subprocess.Popen[bytes]]
    files: list[Path]

    def accepted(self) -> list[str]:
        recipients: list[str] = []
        for process, path in zip(self.processes, self.files, strict=True):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
            text = path.read_text(encoding="utf-8") if path.exists() else ""
            recipients += [line for line in text.splitlines() if line]
        return recipients


@contextmanager
def sinks(count: int, delay: float, folder: Path) -> Iterator[Sinks]:
    """`count` aiosmtpd sinks, each in its own process, replying after `delay` seconds."""
    started = Sinks([], [], [])
    try:
        for i in range(count):
            port = _free_port()
            path = folder / f"sink{i}.txt"
            process = subprocess.Popen(
                [sys.executable, "-c", _SINK, str(port), str(delay), str(path)], stderr=subprocess.DEVNULL
            )
            started.ports.append(port)
            started.processes.append(process)
            started.files.append(path)
        for port in started.ports:
            for _ in range(400):  # bounded wait for the port to open
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.05)
        yield started
    finally:
        for process in started.processes:
            if process.poll() is None:
                process.kill()
            process.wait()


def _sql(url: str, *statements: str | tuple[str, tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The bench's own setup and counting, not digest's: run statements, the rows of the last one."""
    import psycopg

    rows: list[tuple[Any, ...]] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            sql, params = statement if isinstance(statement, tuple) else (statement, ())
            cursor = conn.execute(sql, params)  # type: ignore[arg-type]
            rows = cursor.fetchall() if cursor.description else []
    return rows


def load_postgres(url: str, count: int) -> float:
    """`count` active subscribers by COPY, then ANALYZE: the seconds it took."""
    import psycopg

    start = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        columns = "email, name, status, created_at, updated_at, status_at, token_id"
        with cursor.copy(f"COPY subscribers ({columns}) FROM STDIN") as copy:
            for i in range(1, count + 1):
                copy.write_row(
                    (f"reader{i:08d}@example.org", f"Reader {i}", "active", STAMP, STAMP, STAMP, f"{i:032x}")
                )
    _sql(url, "VACUUM ANALYZE subscribers")
    return time.perf_counter() - start


def _reset(url: str) -> None:
    """Forget every send of the issue (ledger rows, batches, claim), so each run starts at all pending."""
    _sql(
        url,
        ("DELETE FROM send_ledger WHERE issue_id = %s", (ISSUE,)),
        ("DELETE FROM send_batches WHERE issue_id = %s", (ISSUE,)),
        ("DELETE FROM send_claims WHERE issue_id = %s", (ISSUE,)),
        ("UPDATE issues SET send_started_at = NULL, sent_at = NULL WHERE id = %s", (ISSUE,)),
        "VACUUM ANALYZE send_ledger",
        "VACUUM ANALYZE send_batches",
    )


def _count(url: str) -> int:
    rows = _sql(url, ("SELECT count(*) FROM send_ledger WHERE issue_id = %s AND status = 'sent'", (ISSUE,)))
    return int(rows[0][0])


def _holders(url: str) -> set[str]:
    rows = _sql(url, ("SELECT DISTINCT holder FROM send_batches WHERE issue_id = %s", (ISSUE,)))
    return {str(r[0]) for r in rows if r[0] is not None}


def _project(root: Path, url: str) -> Path:
    """The config (sink port filled in per run) sharing the state; the issue built and recorded."""
    from send_support import make_built_issue, write_config

    smtp = (
        f'host = "127.0.0.1"\nport = 1\nsecurity = "none"\npool_size = {POOL}\n'
        f'rate_per_second = 10000\ntimeout = 60\nretries = 1\nretry_delay = 0.05\n\n[state]\nurl = "{url}"'
    )
    config = write_config(root, f"batch_size = {BATCH}", transport="smtp", smtp=smtp)
    make_built_issue(config)
    return config.path


def _configs(template: Path, ports: list[int]) -> list[Path]:
    text = template.read_text(encoding="utf-8")
    paths = []
    for i, port in enumerate(ports):
        path = template.parent / f"sender{i}.toml"
        path.write_text(text.replace("port = 1\n", f"port = {port}\n"), encoding="utf-8")
        paths.append(path)
    return paths


def _send(config: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DIGEST_SECRET": "benchmark-secret", "NO_COLOR": "1", "COLUMNS": "120"}
    command = [sys.executable, "-m", "digest", "send", "--config", str(config), *extra]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


@dataclass(frozen=True)
class Window:
    """One measured run: start-up seconds, messages recorded in the window, its seconds."""

    startup: float
    messages: int
    seconds: float
    load: float  # the machine's 1-minute load average as the window closed (2 cores, shared)
    recorded: int  # ledger rows once every sender stopped
    accepted: int  # messages the sinks accepted
    duplicates: int  # addresses the sinks accepted more than once

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def _wait_sending(url: str, workers: int, senders: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    """Until `workers` senders have claimed batches and a message is recorded (bounded)."""
    seen: set[str] = set()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for process, log in zip(senders, logs, strict=False):
            if process.poll() is not None:
                raise RuntimeError(f"a sender exited {process.returncode}: {log.read_text()[-1500:]}")
        seen |= _holders(url)
        if len(seen) >= workers and _count(url) > 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{len(seen)} of {workers} senders sending after {START_TIMEOUT:.0f} s")


def measured_send(url: str, template: Path, workers: int, delay: float) -> Window:
    """Send the issue with `workers` senders for WINDOW seconds, then stop them with SIGTERM."""
    _reset(url)
    with (
        tempfile.TemporaryDirectory(prefix="digest-bench-join-") as name,
        sinks(workers, delay, Path(name)) as sink,
    ):
        folder = Path(name)
        configs = _configs(template, sink.ports)
        logs = [folder / f"sender{i}.log" for i in range(workers)]
        senders: list[subprocess.Popen[bytes]] = []
        try:
            start = time.perf_counter()
            senders.append(_send(configs[0], logs[0]))
            for _ in range(int(START_TIMEOUT * 10)):  # bounded: until the first sender has cut the batches
                if _holders(url) or senders[0].poll() is not None:
                    break
                time.sleep(0.1)
            senders += [_send(path, log, "--join") for path, log in zip(configs[1:], logs[1:], strict=True)]
            _wait_sending(url, workers, senders, logs)
            opened, first = time.perf_counter(), _count(url)
            time.sleep(WINDOW)
            closed, last = time.perf_counter(), _count(url)
            load = os.getloadavg()[0]
        finally:
            for process in senders:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in senders:
                with suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=STOP_TIMEOUT)
                if process.poll() is None:
                    process.kill()
                    process.wait()
        for process, log in zip(senders, logs, strict=True):
            if process.returncode not in (0, 130):
                raise RuntimeError(f"a sender exited {process.returncode}: {log.read_text()[-1500:]}")
        recorded = _count(url)
        accepted = sink.accepted()
    duplicates = sum(n - 1 for n in Counter(a.lower() for a in accepted).values() if n > 1)
    return Window(opened - start, last - first, closed - opened, load, recorded, len(accepted), duplicates)


def _timed(what: str, run: Any) -> Window | None:
    try:
        window: Window = run()
    except (RuntimeError, OSError, subprocess.SubprocessError, ImportError) as e:
        print(f"    {what}: not measured: {e}", flush=True)
        return None
    check = "all recorded" if window.accepted == window.recorded else "MISMATCH"
    print(
        f"    {what:30} {window.rate:7.1f} messages/s ({window.messages:,} in {window.seconds:.1f} s;"
        f" start-up {window.startup:.1f} s; load {window.load:.1f}; stopped: {window.recorded:,} recorded,"
        f" {window.accepted:,} accepted, {check}, {window.duplicates} twice)",
        flush=True,
    )
    return window


def _rate(windows: list[Window]) -> float:
    return sum(w.messages for w in windows) / sum(w.seconds for w in windows)


def _throughput(url: str, template: Path, delay: float) -> None:
    """One sender vs three, to sinks replying after `delay` seconds, ROUNDS times in turn."""
    how = "at once" if not delay else f"after {delay * 1000:.0f} ms each (a relay writing its queue)"
    print(f"  sinks replying {how}; {ROUNDS} round(s) of {WINDOW:.0f} s windows, in turn:", flush=True)
    ones: list[Window] = []
    threes: list[Window] = []
    for _ in range(ROUNDS):
        one = _timed("one digest send, one sink:", lambda: measured_send(url, template, 1, delay))
        ones += [one] if one is not None else []
        three = _timed("send + 2 --join, three sinks:", lambda: measured_send(url, template, 3, delay))
        threes += [three] if three is not None else []
    if ones and threes:
        one_rate, three_rate = _rate(ones), _rate(threes)
        print(
            f"    one sender {one_rate:.1f} messages/s, three {three_rate:.1f}:"
            f" ratio {three_rate / one_rate:.2f}x (goal 2.5x)",
            flush=True,
        )


def claim_cost_postgres(url: str) -> tuple[float, float, float, int]:
    """(cut seconds, claim µs/message, ledger µs/message, messages) on PostgreSQL at SUBSCRIBERS pending."""
    from digest.pipeline.batched import CHECK_EVERY
    from digest.state.backend import open_database
    from digest.state.store import Store

    _reset(url)
    with tempfile.TemporaryDirectory(prefix="digest-bench-claim-") as folder:
        store = Store(open_database(path=Path(folder) / "unused.db", url=url))
        start = time.perf_counter()
        store.batches.open_round(ISSUE, size=BATCH)
        cut = time.perf_counter() - start
        claim = ledger = 0.0
        messages = 0
        for _ in range(CLAIM_BATCHES):
            t = time.perf_counter()
            claimed = store.batches.claim_batch(ISSUE, "bench:1:x", at=NOW, stale_after=timedelta(minutes=2))
            assert claimed is not None
            batch = claimed[0]
            recipients = store.batches.recipients(batch)
            claim += time.perf_counter() - t
            checked = time.monotonic()
            for email, _, _, _ in recipients:
                t = time.perf_counter()
                if time.monotonic() - checked >= CHECK_EVERY.total_seconds():  # as deliver_batches does
                    assert store.batches.holds(batch, "bench:1:x")
                    checked = time.monotonic()
                claim += time.perf_counter() - t
                ledger += _ledger_rows(store, email)
                messages += 1
            t = time.perf_counter()
            store.batches.finish(batch, "bench:1:x")
            claim += time.perf_counter() - t
        store.close()
    return cut, claim / messages * 1e6, ledger / messages * 1e6, messages


def claim_cost_sqlite() -> tuple[float, float, float, int]:
    """(load seconds, claim µs/message, ledger µs/message, messages) on SQLite at SUBSCRIBERS pending."""
    from state_support import sql

    from digest.state.store import open_store

    messages_wanted = CLAIM_BATCHES * BATCH
    with tempfile.TemporaryDirectory(prefix="digest-bench-claim-") as folder:
        store = open_store(Path(folder) / "state.db")
        start = time.perf_counter()
        connection = sql(store)  # the bench's own setup, not digest's: SQLite makes the rows itself
        with connection:
            connection.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
                " INSERT INTO subscribers (email, name, status, created_at, updated_at, status_at, token_id)"
                " SELECT printf('reader%08d@example.org', i), 'Reader ' || i, 'active', ?, ?, ?,"
                " printf('%032x', i) FROM n",
                (SUBSCRIBERS, STAMP, STAMP, STAMP),
            )
        load = time.perf_counter() - start
        _record_issue(store, Path(folder))
        claim = ledger = 0.0
        messages = 0
        t = time.perf_counter()
        store.ledger.claim_send(ISSUE, "bench:1:x", at=NOW)
        pending = store.ledger.pending_recipients(ISSUE)
        claim += time.perf_counter() - t
        while messages < messages_wanted:
            t = time.perf_counter()
            email, _, _ = next(pending)
            claimed = store.ledger.get_claim(ISSUE)
            assert claimed is not None and claimed.holder == "bench:1:x"
            store.ledger.ledger_entry(ISSUE, email)
            claim += time.perf_counter() - t
            ledger += _ledger_rows(store, email)
            messages += 1
        store.close()
    return load, claim / messages * 1e6, ledger / messages * 1e6, messages


def _ledger_rows(store: Any, email: str) -> float:
    """Seconds to write a message's ledger rows as a send does: in_doubt before the hand-over, then sent."""
    t = time.perf_counter()
    store.ledger.record_in_doubt(ISSUE, email, message_id="<x@bench>", detail="handed over", at=NOW)
    store.ledger.record_sent(ISSUE, email, message_id="<x@bench>", at=NOW)
    return time.perf_counter() - t


def _record_issue(store: object, folder: Path) -> None:
    from digest.state.store import Store

    assert isinstance(store, Store)
    store.issues.record_built_issue(
        issue_id=ISSUE,
        edition=1,
        window_start=NOW - timedelta(days=7),
        window_end=NOW,
        subject="bench",
        built_at=NOW,
        out_dir=folder,
        html_sha256="0",
        text_sha256="0",
        entry_ids=(),
        empty=False,
    )


def _claiming(url: str) -> None:
    print(f"  claiming, {SUBSCRIBERS:,} pending, {CLAIM_BATCHES * BATCH:,} messages, no SMTP:", flush=True)
    try:
        cut, pg_claim, pg_ledger, _ = claim_cost_postgres(url)
        print(
            f"    PostgreSQL batches:   claim {pg_claim:7.1f} µs/message, ledger rows {pg_ledger:7.1f}"
            f" µs/message; cutting {SUBSCRIBERS:,} into batches took {cut:.1f} s",
            flush=True,
        )
    except (RuntimeError, OSError, ImportError) as e:
        print(f"    PostgreSQL claiming: not measured: {e}")
    load, sq_claim, sq_ledger, _ = claim_cost_sqlite()
    print(
        f"    SQLite single sender: claim {sq_claim:7.1f} µs/message, ledger rows {sq_ledger:7.1f}"
        f" µs/message; loading {SUBSCRIBERS:,} took {load:.1f} s",
        flush=True,
    )


def main() -> None:
    from pg_server import PgServer, admin, find_pg_bin

    from digest.state.backend import open_database

    bin_dir = find_pg_bin()
    if bin_dir is None:
        print("  skipped: PostgreSQL is not installed (apt-get install -y postgresql): every figure needs it")
        return
    server = PgServer(bin_dir)
    began = time.perf_counter()
    try:
        try:
            server.start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            print(f"  skipped: the throwaway PostgreSQL did not start: {e}")
            return
        admin(server.url, "CREATE DATABASE bench_join")
        url = server.url.rsplit("/", 1)[0] + "/bench_join"
        with tempfile.TemporaryDirectory(prefix="digest-bench-join-") as folder:
            open_database(path=Path(folder) / "unused.db", url=url).close()  # migrate
            load = load_postgres(url, SUBSCRIBERS)
            template = _project(Path(folder), url)
            print(
                f"  state in PostgreSQL: {SUBSCRIBERS:,} subscribers loaded by COPY in {load:.1f} s;"
                f" batch_size {BATCH}, pool_size {POOL} per sender; {os.cpu_count()} CPU(s) shared by"
                " the senders, the sinks and PostgreSQL",
                flush=True,
            )
            _throughput(url, template, RELAY_DELAY)
            _throughput(url, template, 0.0)
            _claiming(url)
    finally:
        server.stop()
    print(f"  (bench_join took {time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
