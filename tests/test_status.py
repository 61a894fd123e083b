"""`digest status`: recent issues with delivery counts, runs, the next run, and source health with a
source failing `[status] failing_after` runs in a row flagged, as a table and as JSON."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from run_site import make_site, run_cli

from digest.pipeline.run import run_once
from digest.state.store import open_store

AS_OF = datetime(2025, 5, 9, 7, tzinfo=UTC)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_shows_issues_runs_next_run_and_flags_a_failing_source(tmp_path: Path) -> None:
    broken = f"""
[[sources]]
name = "Partner feed"
url = "http://127.0.0.1:{_closed_port()}/feed.xml"
category = "News"
timeout = 1
"""
    config = make_site(
        tmp_path,
        [("Midwives celebrated", datetime(2025, 5, 5, 9, tzinfo=UTC))],
        extra_sources=broken,
        extra="[status]\nfailing_after = 3\n",
    )
    first = run_once(config, now=AS_OF, as_of=AS_OF)
    assert first.outcome == "sent"
    db = open_store(config)
    db.ledger.record_failed("2025-W19", "gone@example.org", detail="550 no such user", at=AS_OF)
    db.close()
    after_one = json.loads(run_cli(config, "status", "--json").stdout)
    partner = next(s for s in after_one["sources"] if s["name"] == "Partner feed")
    assert (partner["consecutive_failures"], partner["flagged"]) == (1, False)

    for week in (1, 2):
        later = AS_OF + timedelta(days=7 * week)
        assert run_once(config, now=later, as_of=later).outcome == "skipped: nothing new"

    status = json.loads(run_cli(config, "status", "--json").stdout)
    partner = next(s for s in status["sources"] if s["name"] == "Partner feed")
    local = next(s for s in status["sources"] if s["name"] == "Local news")
    assert (partner["status"], partner["consecutive_failures"], partner["flagged"]) == ("failed", 3, True)
    assert partner["error"]
    assert (local["consecutive_failures"], local["flagged"]) == (0, False)
    assert local["status"] == "not_modified"  # JSON keeps the machine value
    issue = status["issues"][0]
    assert (issue["id"], issue["recipients"], issue["failures"]) == ("2025-W19", 3, 1)
    assert issue["failed"] == [{"email": "gone@example.org", "detail": "550 no such user"}]
    assert issue["built_at"] == AS_OF.isoformat()
    assert issue["sent_at"] is not None
    assert [r["outcome"] for r in status["runs"]] == ["skipped: nothing new", "skipped: nothing new", "sent"]
    assert datetime.fromisoformat(status["next_run"]).astimezone(UTC).weekday() == 4
    assert status["scheduler"] is None
    assert status["failing_after"] == 3

    table = run_cli(config, "status", COLUMNS="250")
    assert table.returncode == 0, table.stderr
    out = table.stdout
    # Times people read are in [digest] timezone and locale, as digest build shows them; JSON keeps ISO.
    assert "Friday 9 May 2025, 08:00 BST" in out  # built at
    assert "nothing new since Friday 9 May 2025, 08:00 BST" in out  # a run's detail
    assert "+00:00" not in out and "2025-05-09T" not in out
    assert "next scheduled run: Friday" in out
    assert "2025-W19" in out
    assert "gone@example.org failed: 550 no such user" in out
    assert "skipped: nothing new" in out
    assert "attention: source 'Partner feed' has failed 3 runs in a row" in out
    assert "Local news" in out
    # The table uses digest fetch's words for a source's status.
    local_row = next(line for line in out.splitlines() if "Local news" in line)
    assert "not modified" in local_row and "not_modified" not in out


def test_status_of_a_fresh_installation(tmp_path: Path) -> None:
    config = make_site(tmp_path, [])
    result = run_cli(config, "status")
    assert result.returncode == 0, result.stderr
    assert "none built yet" in result.stdout
    assert "scheduler: not running" in result.stdout
    runs_table = result.stdout.split("Recent runs", 1)[1].split("Sources", 1)[0]
    assert "none yet" in runs_table
    data = json.loads(run_cli(config, "status", "--json").stdout)
    assert data["issues"] == []
    assert data["runs"] == []


def test_every_status_json_key_is_documented(tmp_path: Path) -> None:
    config = make_site(tmp_path, [("Midwives celebrated", datetime(2025, 5, 5, 9, tzinfo=UTC))])
    run_once(config, now=AS_OF, as_of=AS_OF)
    data = json.loads(run_cli(config, "status", "--json").stdout)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Run and schedule", 1)[1].split("\n### ", 1)[0]
    keys = set(data) | set(data["issues"][0]) | set(data["runs"][0]) | set(data["sources"][0])
    assert {k for k in keys if f"`{k}`" not in section} == set()


def test_run_schedule_and_status_have_help_and_are_documented() -> None:
    from click.testing import CliRunner

    from digest.cli import cli

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Run and schedule", 1)[1].split("\n### ", 1)[0]
    for command, flags in (
        ("run", ("--as-of", "--scheduled", "--config")),
        ("schedule", ("--config",)),
        ("status", ("--json", "--config")),
    ):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0
        assert cli.commands[command].help
        assert f"digest {command}" in section
        for flag in flags:
            assert flag in result.output
            assert flag in section
    deployment = readme.split("## Deployment", 1)[1].split("\n## ", 1)[0]
    for name in ("digest-schedule.service", "digest-run.timer", "digest-run.service", "digest.cron"):
        assert f"deploy/{name}" in deployment
