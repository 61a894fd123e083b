"""Subscribers at scale: import 500,000 CSV rows, `send --dry-run` to 500,000, stream `list --csv`.

Each is `digest ...` as a whole process (interpreter start-up included) on the shipped sample with its
issue built, in a fresh folder. Goals (issue 14): import under 30 s, dry run under 10 s; `list` streams
(its peak memory is printed, and stays flat as the list grows).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AS_OF = "2025-05-09T17:00:00+01:00"


def _count() -> int:
    return int(os.environ.get("DIGEST_BENCH_SUBSCRIBERS", "500000"))


def _digest(*args: str, cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {**os.environ, "COLUMNS": "120"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "digest", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"digest {args[0]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed, done


def main() -> None:
    count = _count()
    with tempfile.TemporaryDirectory(prefix="digest-bench-subscribers-") as folder:
        root = Path(folder)
        shutil.copytree(REPO / "feeds", root / "feeds")
        shutil.copy(REPO / "config.toml", root / "config.toml")
        config = str(root / "config.toml")
        people = root / "people.csv"
        with people.open("w", encoding="utf-8") as f:
            f.write("Email Address;First Name;Last Name\n")
            f.writelines(f"reader{i:06d}@example.org;Reader;{i}\n" for i in range(count))
        _digest("build", "--config", config, "--as-of", AS_OF, cwd=root)
        seconds, done = _digest(
            "subscribers", "import", str(people), "--consent", "bench list", "--config", config, cwd=root
        )
        print(f"import {count:,} rows (semicolons, header aliases): {seconds:.1f} s (goal < 30 s)")
        print(f"  {done.stdout.strip().splitlines()[0]}")
        seconds, done = _digest("send", "--dry-run", "--config", config, cwd=root)
        print(
            f"send --dry-run to {count:,}: {seconds:.1f} s (goal < 10 s),"
            f" {len(done.stdout):,} bytes of output"
        )
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        seconds, done = _digest("subscribers", "list", "--csv", "--config", config, cwd=root)
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        peak = f"{after / 1024:.0f} MB" if after > before else "no more than the runs before"
        print(f"subscribers list --csv of {count:,}: {seconds:.1f} s, peak memory {peak}")
