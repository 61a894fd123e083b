"""`python tests/paused_digest.py ARGS...`: the digest CLI with a gate between build and send.

For the crash tests only (digest itself has no such hook): the run writes "paused before sending issue
ID" to stderr once the issue is built and recorded, then waits there until a stop signal arrives (at
most a minute) and goes on, so a test can kill it or signal it at exactly that point.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import digest.pipeline.run as run_pipeline
from digest.cli import main

PAUSED = "paused before sending issue"
_real_send = run_pipeline._send


def _gated_send(*args: Any, stop: Callable[[], bool], **kwargs: Any) -> run_pipeline.RunOutcome:
    record = args[2]
    print(f"{PAUSED} {record.id}", file=sys.stderr, flush=True)
    idle = threading.Event()
    for _ in range(1200):  # bounded: a minute at most
        if stop():
            break
        idle.wait(0.05)
    return _real_send(*args, stop=stop, **kwargs)


if __name__ == "__main__":
    run_pipeline._send = _gated_send
    sys.exit(main(sys.argv[1:]))
