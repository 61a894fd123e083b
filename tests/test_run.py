"""`digest run` end to end on a real state file and the outbox transport: once, quiet weeks, approval,
lock contention between two real processes, and a run killed between build and send, then resumed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from paused_digest import PAUSED
from run_site import SUBSCRIBERS, cli_env, copies, delivered, digest_command, make_site, run_cli

from digest.errors import BusyError, DigestError
from digest.pipeline.run import run_once
from digest.schedule.lock import RunLock
from digest.state import runs as run_state
from digest.state.store import open_store

PAUSED_DIGEST = Path(__file__).with_name("paused_digest.py")
# Week 19 of 2025: the sample's week; the Friday 08:00 BST slot is 07:00Z.
AS_OF = datetime(2025, 5, 9, 7, tzinfo=UTC)
NOW = datetime(2025, 5, 9, 7, 0, 5, tzinfo=UTC)
ITEMS = [
    ("Midwives celebrated", datetime(2025, 5, 5, 9, tzinfo=UTC)),
    ("New pharmacy services", datetime(2025, 5, 7, 12, tzinfo=UTC)),
]


def _runs(config_path: Path) -> list[run_state.RunRecord]:
    db = open_store(config_path)
    try:
        return sorted(db.runs.recent_runs(50), key=lambda r: r.id)
    finally:
        db.close()


def test_one_run_sends_once_and_a_second_run_sends_nothing_new(tmp_path: Path) -> None:
    config = make_site(tmp_path, ITEMS)
    first = run_once(config, now=NOW, as_of=AS_OF)
    assert (first.outcome, first.issue_id, first.sent, first.exit_code) == ("sent", "2025-W19", 3, 0)
    assert all(n == 1 for n in copies(config).values())
    assert sorted(a for a, _ in copies(config)) == sorted(SUBSCRIBERS)

    again = run_once(config, now=NOW + timedelta(minutes=5), as_of=AS_OF + timedelta(minutes=5))
    assert again.outcome == "skipped: nothing new"
    assert again.exit_code == 0
    assert len(delivered(config)) == 3
    outcomes = [(r.outcome, r.issue_id, r.slot) for r in _runs(config.state_path)]
    assert outcomes == [("sent", "2025-W19", None), ("skipped: nothing new", None, None)]


def test_a_quiet_week_sends_nothing_and_status_says_skipped_nothing_new(tmp_path: Path) -> None:
    config = make_site(tmp_path, ITEMS)
    run_once(config, now=NOW, as_of=AS_OF)
    next_week = AS_OF + timedelta(days=7)
    result = run_cli(config, "run", "--as-of", next_week.isoformat())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("skipped: nothing new since Friday 9 May 2025, 08:00 BST")
    assert "no issue is sent" in result.stderr
    assert len(delivered(config)) == 3
    status = json.loads(run_cli(config, "status", "--json").stdout)
    assert status["runs"][0]["outcome"] == "skipped: nothing new"
    assert status["issues"][0]["id"] == "2025-W19"


def test_send_when_empty_sends_a_short_no_new_updates_issue(tmp_path: Path) -> None:
    config = make_site(tmp_path, [], send_when_empty=True)
    result = run_once(config, now=NOW, as_of=AS_OF)
    assert result.outcome == "sent"
    assert result.issue_id is not None
    db = open_store(config)
    record = db.issues.get_issue(result.issue_id)
    db.close()
    assert record is not None
    assert record.empty
    assert len(delivered(config)) == 3


def test_approval_gate_waits_then_sends_exactly_what_was_approved(tmp_path: Path) -> None:
    config = make_site(tmp_path, ITEMS, approval=True)
    waiting = run_cli(config, "run", "--as-of", AS_OF.isoformat())
    assert waiting.returncode == 8, waiting.stderr
    assert waiting.stdout.startswith("waiting for approval (issue 2025-W19)")
    assert "nobody has approved it yet" in waiting.stdout
    assert "hint: approve it in digest preview" in waiting.stdout
    assert delivered(config) == []

    db = open_store(config)
    record = db.issues.latest_issue()
    assert record is not None
    # An approval of other content (the issue changed after it was approved) does not count.
    db.approvals.record_approval(
        issue_id=record.id,
        approved_by="Comms Lead",
        approved_at=NOW,
        html_sha256="0" * 64,
        text_sha256=record.text_sha256,
    )
    voided = run_once(config, now=NOW + timedelta(minutes=15), as_of=AS_OF)
    assert voided.outcome == "waiting for approval"
    assert "no longer matches" in voided.detail
    assert voided.retry
    db.approvals.record_approval(
        issue_id=record.id,
        approved_by="Comms Lead",
        approved_at=NOW,
        html_sha256=record.html_sha256,
        text_sha256=record.text_sha256,
    )
    db.close()
    sent = run_once(config, now=NOW + timedelta(minutes=30), as_of=AS_OF + timedelta(minutes=30))
    assert (sent.outcome, sent.issue_id, sent.sent) == ("sent", "2025-W19", 3)
    assert all(n == 1 for n in copies(config).values())
    html = next(p for p in delivered(config)[0].walk() if p.get_content_type() == "text/html")
    assert "Midwives celebrated" in str(html.get_content())
    db = open_store(config)
    after = db.issues.get_issue("2025-W19")
    db.close()
    assert after is not None
    assert (after.html_sha256, after.sent_at is not None) == (record.html_sha256, True)
    assert [r.outcome for r in _runs(config.state_path)] == [
        "waiting for approval",
        "waiting for approval",
        "sent",
    ]


def test_a_run_fails_busy_while_another_holds_the_lock(tmp_path: Path) -> None:
    config = make_site(tmp_path, ITEMS)
    with RunLock(config.lock_path, now=NOW), pytest.raises(BusyError) as caught:
        run_once(config, now=NOW, as_of=AS_OF)
    assert "another digest run is in progress" in caught.value.message
    assert delivered(config) == []


def _start_paused_run(config_path: Path, *args: str) -> subprocess.Popen[str]:
    """A real `digest run` held between build and send (by tests/paused_digest.py, not by digest)."""
    child = subprocess.Popen(
        [sys.executable, str(PAUSED_DIGEST), "run", "--config", str(config_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=config_path.parent,
    )
    assert child.stderr is not None
    for line in child.stderr:
        if PAUSED in line:
            return child
    child.kill()
    raise AssertionError(f"the run never reached the send: {child.communicate()}")


def test_lock_contention_between_two_real_digest_run_processes(tmp_path: Path) -> None:
    config = make_site(tmp_path, ITEMS)
    first = _start_paused_run(config.path, "--as-of", AS_OF.isoformat())
    try:
        second = run_cli(config, "run", "--as-of", AS_OF.isoformat())
        assert second.returncode == 7
        assert f"another digest run is in progress: held by pid {first.pid}" in second.stderr
        assert "digest run --config" in second.stderr
        assert "hint: wait for it to finish" in second.stderr
    finally:
        first.kill()
        first.communicate()
    assert delivered(config) == []


def test_a_run_killed_between_build_and_send_is_resumed_and_everyone_gets_one_copy(tmp_path: Path) -> None:
    config = make_site(tmp_path, ITEMS)
    child = _start_paused_run(config.path, "--as-of", AS_OF.isoformat())
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL
    db = open_store(config)
    built = db.issues.latest_issue()
    db.close()
    assert built is not None
    assert (built.id, built.sent_at) == ("2025-W19", None)  # built, recorded, not sent
    assert delivered(config) == []
    killed = _runs(config.state_path)
    assert [(r.outcome, r.finished_at) for r in killed] == [(None, None)]  # the row of a dead run

    status = json.loads(run_cli(config, "status", "--json").stdout)
    assert status["run_in_progress"] is None  # the kernel released the dead run's lock
    resumed = run_cli(config, "run", "--as-of", AS_OF.isoformat())
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("sent (issue 2025-W19): 3 sent now")
    assert "issue 2025-W19: built by this run" in resumed.stderr  # never sent: rebuilt, not resumed
    assert copies(config) and all(n == 1 for n in copies(config).values())
    assert sorted(a for a, _ in copies(config)) == sorted(SUBSCRIBERS)
    again = run_cli(config, "run", "--as-of", AS_OF.isoformat())
    assert again.stdout.startswith("skipped: nothing new")
    assert len(delivered(config)) == 3


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_between_build_and_send_stops_cleanly_and_the_next_run_sends(
    tmp_path: Path, signum: signal.Signals
) -> None:
    config = make_site(tmp_path, ITEMS)
    child = _start_paused_run(config.path, "--as-of", AS_OF.isoformat())
    child.send_signal(signum)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert (
        f"{signum.name} received: stopping; a run or send in progress stops after the messages in flight"
        in err
    )
    assert out.startswith("stopped: will resume (issue 2025-W19): stopped before sending")
    assert delivered(config) == []
    resumed = run_cli(config, "run", "--as-of", AS_OF.isoformat())
    assert resumed.stdout.startswith("sent (issue 2025-W19): 3 sent now"), resumed.stderr
    assert len(delivered(config)) == 3


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    config = make_site(tmp_path, ITEMS)
    result = subprocess.run(
        digest_command(
            "--log-format", "json", "run", "--config", str(config.path), "--as-of", AS_OF.isoformat()
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=cli_env(),
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["message"] == "sending issue 2025-W19" for r in records)
    assert any(r["message"] == "issue 2025-W19: built by this run" for r in records)
    assert not any("--issue" in r["message"] for r in records)  # no --issue was given
    finished = [r for r in records if r["message"].startswith("run finished")]
    assert [(r["outcome"], r["issue_id"], r["slot"]) for r in finished] == [("sent", "2025-W19", None)]


def test_bad_as_of_is_a_usage_error(tmp_path: Path) -> None:
    config = make_site(tmp_path, ITEMS)
    result = run_cli(config, "run", "--as-of", "next friday")
    assert result.returncode == 2
    assert "--as-of 'next friday' is not an ISO 8601 date-time" in result.stderr
    both = run_cli(config, "run", "--as-of", AS_OF.isoformat(), "--scheduled")
    assert both.returncode == 2


def test_a_runs_finished_at_is_when_it_finished_not_when_it_started(tmp_path: Path) -> None:
    """The clock is read when the run ends: sent, nothing new, and failed runs alike."""
    config = make_site(tmp_path / "site", ITEMS)
    ends = (
        NOW + timedelta(minutes=7),
        NOW + timedelta(hours=1, minutes=8),
        NOW + timedelta(hours=2, minutes=9),
    )
    ticks = iter(ends)
    sent = run_once(config, now=NOW, as_of=AS_OF, clock=lambda: next(ticks))
    assert sent.outcome == "sent"
    quiet = run_once(config, now=NOW + timedelta(hours=1), as_of=AS_OF, clock=lambda: next(ticks))
    assert quiet.outcome == "skipped: nothing new"
    (config.root / "news.xml").write_text("not a feed", encoding="utf-8")
    with pytest.raises(DigestError):
        run_once(
            config,
            now=NOW + timedelta(hours=2),
            as_of=AS_OF + timedelta(days=7),
            clock=lambda: next(ticks),
        )
    runs = _runs(config.state_path)
    assert [(r.started_at, r.finished_at) for r in runs] == [
        (NOW, ends[0]),
        (NOW + timedelta(hours=1), ends[1]),
        (NOW + timedelta(hours=2), ends[2]),
    ]
    assert runs[2].outcome is not None and runs[2].outcome.startswith("failed:")
