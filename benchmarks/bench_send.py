"""Send: `digest send` as a whole process vs a raw pooled smtplib client sending the same bytes.

The shipped sample issue is built (`digest build`) for 1,000 subscribers and sent with
`digest send --config ...` as a child process (start-up, config, state, building each personal message,
the ledger row of each, the summary) through `[smtp]` with the shipped pool size, to a local aiosmtpd in a
process of its own that keeps each message it receives. The baseline, in the same run and against the same
server, is the least a client can do: as many threads as the pool, each with one smtplib connection
opened at the start, sending the very bytes (and envelopes) that `digest send` sent. The ratio is what
digest costs over that floor. Runs alternate (digest, raw, digest, raw, ...); the median of each is shown.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from digest.config.sections import MAX_RATE_PER_SECOND

REPO = Path(__file__).resolve().parent.parent
SUBSCRIBERS = 1_000
ROUNDS = 3
AS_OF = "2025-05-09T17:00:00+01:00"

# Keeps every message (envelope and bytes) in memory; a message to DUMP writes them all to the file named
# by its first line and forgets them, so a run can be replayed byte for byte (and disk stays out of it).
DUMP = "dump@control.invalid"
_SINK = """
import json, sys, threading
from pathlib import Path
from aiosmtpd.controller import Controller

kept = []

class Keep:
    async def handle_DATA(self, server, session, envelope):
        if envelope.rcpt_tos == [sys.argv[2]]:
            path = Path(envelope.original_content.decode().splitlines()[0])
            with path.with_suffix(".tmp").open("wb") as f:
                for sender, recipients, data in kept:
                    head = json.dumps({"from": sender, "to": recipients, "size": len(data)}).encode()
                    f.write(head + b"\\n" + data)
            path.with_suffix(".tmp").rename(path)
            kept.clear()
        else:
            kept.append((envelope.mail_from, envelope.rcpt_tos, envelope.original_content))
        return "250 OK"

Controller(Keep(), hostname="127.0.0.1", port=int(sys.argv[1]), data_size_limit=0).start()
threading.Event().wait()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sink() -> tuple[subprocess.Popen[bytes], int]:
    """aiosmtpd in its own process, keeping what it receives until asked for it (`dump_messages`)."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", _SINK, str(port), DUMP],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):  # bounded wait for the port to open
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server, port
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("aiosmtpd did not start")


def _digest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIGEST_SECRET": "benchmark-secret", "NO_COLOR": "1", "COLUMNS": "120"}
    command = [str(Path(sys.executable).with_name("digest")), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def make_project(root: Path, port: int) -> None:
    """The shipped sample with SMTP to 127.0.0.1:`port` (the shipped pool size), its issue built,
    SUBSCRIBERS imported."""
    shutil.copytree(REPO / "feeds", root / "feeds")
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    for old, new in (
        ('transport = "outbox"', 'transport = "smtp"'),
        ('host = "localhost"', 'host = "127.0.0.1"'),
        ("port = 587", f"port = {port}"),
        ('security = "starttls"', 'security = "none"'),
        # As fast as the config allows: the schema refuses more (and digest build with it).
        ("rate_per_second = 10", f"rate_per_second = {MAX_RATE_PER_SECOND:g}"),
        ('base_url = "http://127.0.0.1:8080"', 'base_url = "https://news.blmk.example"'),
    ):
        assert old in text, f"{old!r} is not in the shipped config.toml"
        text = text.replace(old, new)
    config = root / "config.toml"
    config.write_text(text, encoding="utf-8")
    with (root / "subscribers.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "name"])
        writer.writerows([f"reader{i:05d}@example.org", f"Reader {i}"] for i in range(SUBSCRIBERS))
    for args in (
        ("build", "--config", str(config), "--as-of", AS_OF),
        (
            "subscribers",
            "import",
            "--config",
            str(config),
            str(root / "subscribers.csv"),
            "--consent",
            "bench",
        ),
    ):
        done = _digest(*args, cwd=root)
        if done.returncode != 0:
            raise RuntimeError(f"digest {args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")


def timed_digest_send(config: Path, cwd: Path) -> float:
    """Wall seconds of `digest send` as a whole process (interpreter start-up included)."""
    start = time.perf_counter()
    done = _digest("send", "--config", str(config), cwd=cwd)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or f"sent {SUBSCRIBERS}," not in done.stdout:
        raise RuntimeError(f"digest send failed ({done.returncode}): {done.stdout} {done.stderr}")
    return elapsed


def dump_messages(port: int, path: Path) -> list[tuple[str, list[str], bytes]]:
    """Every message the sink kept since the last dump: (envelope sender, recipients, bytes)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as conn:
        conn.sendmail("bench@control.invalid", [DUMP], f"{path}\r\n".encode())
    messages = []
    data = path.read_bytes()
    at = 0
    while at < len(data):
        end = data.index(b"\n", at)
        head = json.loads(data[at:end])
        body = data[end + 1 : end + 1 + head["size"]]
        messages.append((head["from"], head["to"], body))
        at = end + 1 + head["size"]
    path.unlink()
    return messages


def timed_raw_client(port: int, messages: list[tuple[str, list[str], bytes]], pool: int) -> float:
    """Wall seconds for `pool` threads, one smtplib connection each, to send `messages` (shared queue)."""
    lock = threading.Lock()
    queue = list(reversed(messages))
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as conn:
                while True:
                    with lock:
                        if not queue:
                            return
                        sender, recipients, data = queue.pop()
                    conn.sendmail(sender, recipients, data)
        except (OSError, smtplib.SMTPException) as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(pool)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"the raw client failed: {errors[0]}")
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        server, port = start_sink()
        try:
            pristine = base / "pristine"
            pristine.mkdir()
            make_project(pristine, port)
            digest_times: list[float] = []
            raw_times: list[float] = []
            digest_cpu: list[float] = []
            raw_cpu: list[float] = []
            size = 0
            pool = 0
            for n in range(ROUNDS):
                project = base / f"project-{n}"
                shutil.copytree(pristine, project)  # a fresh state: every send is a first send
                config = project / "config.toml"
                pool = int(
                    next(x for x in config.read_text().splitlines() if x.startswith("pool_size")).split("=")[
                        1
                    ]
                )
                children = resource.getrusage(resource.RUSAGE_CHILDREN)
                digest_times.append(timed_digest_send(config, project))
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                digest_cpu.append(after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime)
                messages = dump_messages(port, base / "sent.bin")
                assert len(messages) == SUBSCRIBERS, len(messages)
                size = sum(len(m[2]) for m in messages) // len(messages)
                cpu = time.process_time()
                raw_times.append(timed_raw_client(port, messages, pool))
                raw_cpu.append(time.process_time() - cpu)
                assert len(dump_messages(port, base / "replayed.bin")) == SUBSCRIBERS
                shutil.rmtree(project)
        finally:
            server.terminate()
            server.wait(timeout=10)
    ours, raw = statistics.median(digest_times), statistics.median(raw_times)
    ours_cpu, theirs_cpu = statistics.median(digest_cpu), statistics.median(raw_cpu)
    print(
        f"{SUBSCRIBERS:,} messages of {size / 1000:.0f} KB (the sample issue) to a local aiosmtpd (its own"
        f" process); pool of {pool} connections; median of {ROUNDS} alternating runs"
    )
    for label, wall, cpu in (
        ("digest send, whole process", ours, ours_cpu),
        (f"baseline: raw smtplib x {pool}, same bytes", raw, theirs_cpu),
    ):
        print(f"  {label:38s} {wall:6.2f} s wall {SUBSCRIBERS / wall:5,.0f} msg/s {cpu:6.2f} s CPU")
    print(f"  ratio digest send / raw client: {ours / raw:.2f}x wall, {ours_cpu / theirs_cpu:.2f}x CPU")
    print(
        "  runs (digest / raw, s): "
        + ", ".join(f"{d:.2f}/{r:.2f}" for d, r in zip(digest_times, raw_times, strict=True))
    )


if __name__ == "__main__":
    main()
