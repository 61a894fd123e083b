"""Join: one `digest send` vs three senders sharing the send (`--join`), and the cost of claiming.

Needs Debian's PostgreSQL (a throwaway server is started the way tests/pg_server.py does; if it cannot
start, the figures that need it are skipped with why). Three local aiosmtpd sinks, each in its own
process, accept every message at once and keep nothing.

1. Throughput: `JOIN_SEND` subscribers (default 20,000; DIGEST_BENCH_JOIN_SEND=N) in PostgreSQL,
   to sinks that reply at once; then `RELAY_SEND` (default 5,000; DIGEST_BENCH_JOIN_RELAY=N) to sinks
   that take `RELAY_DELAY` per message, as a real relay does. One `digest send` to one sink, then the
   same send with three senders: the first `digest send` and, once it has cut the batches, two
   `digest send --join`, each to its own sink. Messages/s are the subscribers over the wall time from
   the first start to the last exit (process start-up included); the ratio is three senders over one.
   1,000,000 subscribers would take over 20 minutes a run on 2 cores, hence these numbers.
2. Claiming: `JOIN_CLAIM` subscribers (default 1,000,000; DIGEST_BENCH_JOIN_CLAIM=N) in the state, the
   state operations each message costs, without SMTP: on PostgreSQL the batch path (cut the batches,
   claim a batch, read its recipients, check each recipient before the hand-over, write its ledger row,
   mark the batch done) over `CLAIM_BATCHES` batches; on SQLite the single-sender path (claim the issue,
   page through the pending recipients, check the claim and the ledger row before each hand-over,
   write its ledger row) over as many messages. The ledger write is shown apart: both paths pay it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

JOIN_SEND = int(os.environ.get("DIGEST_BENCH_JOIN_SEND", "20000"))
RELAY_SEND = int(os.environ.get("DIGEST_BENCH_JOIN_RELAY", "5000"))
JOIN_CLAIM = int(os.environ.get("DIGEST_BENCH_JOIN_CLAIM", "1000000"))
BATCH = 250
CLAIM_BATCHES = 10
RELAY_DELAY = 0.05  # seconds a "real relay" sink takes per message (queue write, scan)
POOL = 4
NOW = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)
ISSUE = "2025-W19"

_SINK = """
import asyncio, sys, threading
from aiosmtpd.controller import Controller

DELAY = float(sys.argv[2])

class Sink:
    async def handle_DATA(self, server, session, envelope):
        if DELAY:
            await asyncio.sleep(DELAY)
        return "250 OK"

Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1])).start()
threading.Event().wait()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sinks(count: int, delay: float = 0.0) -> Iterator[list[int]]:
    """`count` aiosmtpd sinks, each in its own process, replying after `delay` seconds: their ports."""
    started: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        for _ in range(count):
            port = _free_port()
            process = subprocess.Popen(
                [sys.executable, "-c", _SINK, str(port), str(delay)], stderr=subprocess.DEVNULL
            )
            started.append((process, port))
        for _, port in started:
            for _ in range(200):  # bounded wait for the port to open
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.05)
        yield [port for _, port in started]
    finally:
        for process, _ in started:
            process.kill()
            process.wait()


def _fill_postgres(url: str, count: int) -> None:
    """`count` active subscribers, inserted by the server itself (the bench's own setup, not digest's)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO subscribers (email, name, status, created_at, updated_at, token_id)"
            " SELECT 'reader' || lpad(i::text, 8, '0') || '@example.org', 'Reader ' || i, 'active',"
            " %s, %s, md5(i::text) FROM generate_series(1, %s) AS i",
            (NOW.isoformat(), NOW.isoformat(), count),
        )


def _project(root: Path, url: str | None, ports: list[int]) -> list[Path]:
    """Config files (one per sink) sharing the state and the built issue in `root`."""
    from send_support import make_built_issue, write_config

    state = f'\n\n[state]\nurl = "{url}"' if url else ""
    smtp = (
        f'host = "127.0.0.1"\nport = {ports[0]}\nsecurity = "none"\npool_size = {POOL}\n'
        f"rate_per_second = 10000\ntimeout = 60\nretries = 1\nretry_delay = 0.05{state}"
    )
    config = write_config(root, f"batch_size = {BATCH}", transport="smtp", smtp=smtp)
    make_built_issue(config)
    paths = [config.path]
    text = config.path.read_text(encoding="utf-8")
    for i, port in enumerate(ports[1:], start=1):
        path = root / f"worker{i}.toml"
        path.write_text(text.replace(f"port = {ports[0]}\n", f"port = {port}\n"), encoding="utf-8")
        paths.append(path)
    return paths


def _send(config: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DIGEST_SECRET": "benchmark-secret", "NO_COLOR": "1", "COLUMNS": "120"}
    command = [sys.executable, "-m", "digest", "send", "--config", str(config), *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen[str]) -> str:
    out, _ = process.communicate(timeout=3600)
    if process.returncode != 0:
        raise RuntimeError(f"digest send exited {process.returncode}: {out[-2000:]}")
    return out


def timed_send(url: str, workers: int, delay: float = 0.0, count: int = JOIN_SEND) -> float:
    """Wall seconds of sending the issue to `count` subscribers with `workers` senders, to sinks
    replying after `delay` seconds."""
    from digest.config import load_config
    from digest.state.store import open_store

    with tempfile.TemporaryDirectory(prefix="digest-bench-join-") as folder, sinks(workers, delay) as ports:
        root = Path(folder)
        configs = _project(root, url, ports)
        _fill_postgres(url, count)
        config = load_config(configs[0])
        start = time.perf_counter()
        first = _send(configs[0])
        joiners = []
        if workers > 1:
            with open_store(config) as db:
                for _ in range(6000):  # bounded: until the first sender has cut the batches
                    if db.batches.open_count(ISSUE) or first.poll() is not None:
                        break
                    time.sleep(0.01)
            joiners = [_send(path, "--join") for path in configs[1:]]
        for process in (first, *joiners):
            _finish(process)
        took = time.perf_counter() - start
        with open_store(config) as db:
            sent = db.ledger.sent_count(ISSUE)
        if sent != count:
            raise RuntimeError(f"{sent} of {count} recorded sent")
        return took


def _fresh_database(server_url: str, name: str) -> str:
    from pg_server import admin

    admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name


def claim_cost_postgres(url: str) -> tuple[float, float, float, int]:
    """(cut seconds, claim µs/message, ledger µs/message, messages) on PostgreSQL with JOIN_CLAIM."""
    from digest.pipeline.batched import CHECK_EVERY
    from digest.state.backend import open_database
    from digest.state.store import Store

    with tempfile.TemporaryDirectory(prefix="digest-bench-claim-") as folder:
        store = Store(open_database(path=Path(folder) / "unused.db", url=url))
        _fill_postgres(url, JOIN_CLAIM)
        _record_issue(store, Path(folder))
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
                t = time.perf_counter()
                store.ledger.record_sent(ISSUE, email, message_id="<x@bench>", at=NOW)
                ledger += time.perf_counter() - t
                messages += 1
            t = time.perf_counter()
            store.batches.finish(batch, "bench:1:x")
            claim += time.perf_counter() - t
        store.close()
    return cut, claim / messages * 1e6, ledger / messages * 1e6, messages


def claim_cost_sqlite() -> tuple[float, float, int]:
    """(claim µs/message, ledger µs/message, messages) on SQLite with JOIN_CLAIM subscribers."""
    from digest.state.store import open_store

    messages_wanted = CLAIM_BATCHES * BATCH
    with tempfile.TemporaryDirectory(prefix="digest-bench-claim-") as folder:
        store = open_store(Path(folder) / "state.db")
        from state_support import sql

        connection = sql(store)  # the bench's own setup, not digest's: one transaction for all rows
        with connection:
            connection.executemany(
                "INSERT INTO subscribers (email, name, status, created_at, updated_at, token_id)"
                " VALUES (?, ?, 'active', ?, ?, ?)",
                (
                    (f"reader{i:08d}@example.org", f"Reader {i}", NOW.isoformat(), NOW.isoformat(), f"t{i}")
                    for i in range(1, JOIN_CLAIM + 1)
                ),
            )
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
            t = time.perf_counter()
            store.ledger.record_sent(ISSUE, email, message_id="<x@bench>", at=NOW)
            ledger += time.perf_counter() - t
            messages += 1
        store.close()
    return claim / messages * 1e6, ledger / messages * 1e6, messages


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


def _timed(what: str, run: Callable[[], float]) -> float | None:
    try:
        return run()
    except (RuntimeError, OSError, subprocess.SubprocessError, ImportError) as e:
        print(f"  {what}: not measured: {e}", flush=True)
        return None


def _throughput(server_url: str, delay: float, count: int) -> None:
    """One sender vs three, to sinks replying after `delay` seconds."""
    name = "at once" if not delay else f"after {delay * 1000:.0f} ms each (as a relay writing its queue)"
    print(f"  {count:,} subscribers, sinks replying {name}:", flush=True)
    tag = int(delay * 1000)
    one = _timed("one sender", lambda: timed_send(_fresh_database(server_url, f"one_{tag}"), 1, delay, count))
    if one is not None:
        print(f"    one digest send, one sink:           {count / one:8.1f} messages/s ({one:.1f} s)")
    three = _timed(
        "three senders", lambda: timed_send(_fresh_database(server_url, f"three_{tag}"), 3, delay, count)
    )
    if three is not None:
        print(f"    send + 2 --join, three sinks:        {count / three:8.1f} messages/s ({three:.1f} s)")
    if one is not None and three is not None:
        print(f"    ratio three senders / one:           {one / three:8.2f}x (goal 2.5x)", flush=True)


def _claiming(server_url: str) -> None:
    print(f"  claiming, {JOIN_CLAIM:,} subscribers in state, {CLAIM_BATCHES * BATCH:,} messages:", flush=True)
    try:
        cut, pg_claim, pg_ledger, count = claim_cost_postgres(_fresh_database(server_url, "claim"))
        print(
            f"    PostgreSQL batches: claim {pg_claim:7.1f} µs/message, ledger row {pg_ledger:7.1f}"
            f" µs/message; cutting {JOIN_CLAIM:,} into batches took {cut:.1f} s"
        )
    except (RuntimeError, OSError, ImportError) as e:
        print(f"    PostgreSQL claiming: not measured: {e}")
    sq_claim, sq_ledger, count = claim_cost_sqlite()
    print(
        f"    SQLite single sender: claim {sq_claim:7.1f} µs/message, ledger row {sq_ledger:7.1f}"
        f" µs/message ({count:,} messages)"
    )


def main() -> None:
    from pg_server import PgServer, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        print("  skipped: PostgreSQL is not installed (apt-get install -y postgresql): every figure needs it")
        return
    server = PgServer(bin_dir)
    try:
        try:
            server.start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            print(f"  skipped: the throwaway PostgreSQL did not start: {e}")
            return
        print(
            f"  state in PostgreSQL, batch_size {BATCH}, pool_size {POOL} per sender, {os.cpu_count()}"
            " CPU(s) shared by the senders, the sinks and PostgreSQL",
            flush=True,
        )
        _throughput(server.url, 0.0, JOIN_SEND)
        _throughput(server.url, RELAY_DELAY, RELAY_SEND)
        _claiming(server.url)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
