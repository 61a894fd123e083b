"""The run lock: an OS-level flock, exclusive between processes, released when its holder dies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.errors import BusyError
from digest.schedule.lock import RunLock, is_locked, read_holder, run_lock

NOW = datetime(2025, 5, 9, 7, tzinfo=UTC)

HOLDER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path
    from digest.schedule.lock import RunLock

    lock = RunLock(Path(sys.argv[1]), now=datetime(2025, 5, 9, 7, tzinfo=UTC)).acquire()
    print("locked", flush=True)
    sys.stdin.read()  # hold the lock until the test closes stdin (or kills us)
    """
)


def _hold_in_child(path: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "locked"
    return child


def test_a_second_holder_in_the_same_process_is_refused_with_who_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    with run_lock(path, now=NOW):
        assert is_locked(path)
        with pytest.raises(BusyError) as caught:
            RunLock(path, now=NOW).acquire()
    error = caught.value
    assert error.exit_code == 7
    assert f"pid {os.getpid()}" in error.message
    assert f"on {socket.gethostname()}" in error.message
    assert "since 2025-05-09T07:00:00+00:00" in error.message
    assert error.hint and "released automatically" in error.hint
    assert not is_locked(path)
    assert read_holder(path) is None  # released: the note is cleared, the file stays
    assert path.exists()


def test_lock_contention_between_two_real_processes_names_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    child = _hold_in_child(path)
    try:
        with pytest.raises(BusyError) as caught:
            RunLock(path, now=NOW).acquire()
        assert f"pid {child.pid}" in caught.value.message
        holder = read_holder(path)
        assert holder is not None
        assert holder.pid == child.pid
    finally:
        child.communicate("")  # closing stdin lets the holder exit normally
    with run_lock(path, now=NOW) as lock:
        assert lock.held


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    child = _hold_in_child(path)
    assert is_locked(path)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.stdin is not None
    child.stdin.close()
    assert child.stdout is not None
    child.stdout.close()
    assert not is_locked(path)
    # The dead holder's note is still in the file, but the kernel released its lock.
    stale = read_holder(path)
    assert stale is not None
    assert stale.pid == child.pid
    with run_lock(path, now=NOW):
        holder = read_holder(path)
        assert holder is not None
        assert holder.pid == os.getpid()


def test_an_unwritable_lock_folder_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    from digest.errors import StateError

    with pytest.raises(StateError, match="cannot open the lock file"):
        RunLock(blocker / "run.lock", now=NOW).acquire()
