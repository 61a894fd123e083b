"""Start-up: `digest --help` and `digest --version` as whole processes beside `python -c pass`, same run.

Each command is started ROUNDS times, the three interleaved so that a busy machine slows them alike;
the figures are medians of wall time and of CPU time (user + system, from the child's rusage). The
budget (issue 9) is 0.3 s wall for `--help` and `--version`; the ratio to bare Python is digest's own
start-up cost (click and the CLI table: the commands' modules load only when one runs).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROUNDS = 15
BUDGET = 0.3  # seconds of wall time
DIGEST = Path(sys.executable).parent / "digest"  # the console script a person types


def _run(command: list[str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one whole process, from fork to exit."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "digest --help": [str(DIGEST), "--help"],
        "digest --version": [str(DIGEST), "--version"],
    }
    for command in commands.values():  # warm the page cache and the .pyc files
        _run(command)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(ROUNDS):
        for name, command in commands.items():
            wall, cpu = _run(command)
            walls[name].append(wall)
            cpus[name].append(cpu)
    base_wall = statistics.median(walls["python -c pass"])
    base_cpu = statistics.median(cpus["python -c pass"])
    print(f"whole processes, median of {ROUNDS} interleaved runs each (wall, CPU user+sys):")
    for name in commands:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        line = f"{name:<18} wall {wall * 1000:7.1f} ms  cpu {cpu * 1000:7.1f} ms"
        if name != "python -c pass":
            line += f"  ratio to python -c pass: wall {wall / base_wall:5.1f}x, cpu {cpu / base_cpu:5.1f}x"
            line += f"  budget {BUDGET:.1f} s: {'ok' if wall <= BUDGET else 'OVER'}"
        print(line)


if __name__ == "__main__":
    main()
