"""A scheduled run asked to stop in the middle of an SMTP send (a real aiosmtpd, a pool of connections):
the messages in flight are finished and recorded, the rest is left, and the next run resumes so that
every subscriber has exactly one copy."""

from __future__ import annotations

import logging
import signal
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from run_site import cli_env, digest_command, make_site
from send_support import Recorder, free_port, smtp_server

from digest.pipeline.run import run_once
from digest.state.store import open_store

AS_OF = datetime(2025, 5, 9, 7, tzinfo=UTC)
PEOPLE = tuple(f"reader{i:02d}@example.org" for i in range(24))


@pytest.mark.smtp
def test_a_stop_mid_send_finishes_the_messages_in_flight_and_the_next_run_sends_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handler = Recorder(delay=0.02)
    with smtp_server(handler) as server:
        config = make_site(
            tmp_path,
            [("Midwives celebrated", datetime(2025, 5, 5, 9, tzinfo=UTC))],
            transport="smtp",
            smtp=f'host = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\npool_size = 4\n'
            "rate_per_second = 1000\n",
            subscribers=PEOPLE,
        )
        progress: list[int] = []
        stopped = run_once(
            config,
            now=AS_OF,
            as_of=AS_OF,
            stop=lambda: len([d for d in progress if d]) >= 5,
            on_progress=lambda done, _total: progress.append(done),
        )
        assert stopped.outcome == "stopped: will resume"
        assert stopped.exit_code == 130
        received = handler.recipients()
        assert 5 <= len(received) < len(PEOPLE)
        db = open_store(config)
        recorded = db.ledger.sent_count("2025-W19")
        db.close()
        assert recorded == len(received)  # nothing accepted by the server is missing from the ledger

        caplog.clear()
        with caplog.at_level(logging.INFO, logger="digest.pipeline.send"):
            resumed = run_once(config, now=AS_OF, as_of=AS_OF)
        assert "issue 2025-W19: its send was interrupted and is resumed before anything is built" in (
            caplog.messages
        )
        assert (resumed.outcome, resumed.issue_id) == ("sent", "2025-W19")
        assert resumed.sent == len(PEOPLE) - len(received)
        assert resumed.already_sent == len(received)
    counts = Counter(r.lower() for r in handler.recipients())
    assert set(counts) == set(PEOPLE)
    assert set(counts.values()) == {1}


def test_ctrl_c_while_waiting_to_retry_an_unreachable_server_stops_the_run_at_once_with_exit_130(
    tmp_path: Path,
) -> None:
    # Nothing listens on the port; the backoff would wait 60 s and more before the run failed (exit 5).
    config = make_site(
        tmp_path,
        [("Midwives celebrated", datetime(2025, 5, 5, 9, tzinfo=UTC))],
        transport="smtp",
        smtp=f'host = "127.0.0.1"\nport = {free_port()}\nsecurity = "none"\npool_size = 1\n'
        "retries = 3\nretry_delay = 60\n",
        subscribers=PEOPLE[:2],
    )
    command = digest_command(
        "run", "--config", str(config.path), "--as-of", AS_OF.isoformat(), "--allow-insecure-links"
    )
    child = subprocess.Popen(
        command, env=cli_env(), cwd=config.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    before: list[str] = []
    try:
        assert child.stderr is not None
        for line in child.stderr:  # up to the first retry (or the end, if it never comes)
            before.append(line)
            if "retrying reader" in line:
                break
        assert "retrying reader" in before[-1], "".join(before)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)  # without waking on the signal: 60 s, then 120 s
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    err = "".join(before) + err
    assert child.returncode == 130, out + err
    assert out.startswith("stopped: will resume (issue 2025-W19): stopped during the send: 0 sent now"), out
    assert "cannot be reached" not in out + err
    db = open_store(config)
    assert list(db.ledger.iter_ledger("2025-W19")) == []
    assert db.ledger.get_claim("2025-W19") is None
    record = db.issues.get_issue("2025-W19")
    assert record is not None and record.sent_at is None
    assert [r.outcome for r in db.runs.recent_runs(5)] == ["stopped: will resume"]
    db.close()
