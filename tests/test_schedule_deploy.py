"""The files under deploy/: systemd units pass `systemd-analyze verify`, the timer and the cron line are
valid and fire often enough to start every Friday 08:00 London slot on time, and their commands exist."""

from __future__ import annotations

import configparser
import itertools
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from croniter import croniter
from run_site import settle_slots_around_now

from digest.config import ScheduleSettings, load_config
from digest.schedule import next_slot

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
DIGEST = Path(sys.executable).parent / "digest"
UNITS = ("digest-schedule.service", "digest-run.service", "digest-run.timer")


def _need_systemd_analyze() -> None:
    """The issue asks for `systemd-analyze verify` where it is present (Debian: apt-get install systemd)."""
    if not SYSTEMD_ANALYZE:
        pytest.skip("systemd-analyze is not installed here (apt-get install systemd)")


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / name)
    return parser


def _installed_copy(tmp_path: Path) -> Path:
    """The units with /opt/digest replaced by this checkout, as an installer would adjust them."""
    folder = tmp_path / "units"
    folder.mkdir()
    for name in UNITS:
        text = (DEPLOY / name).read_text()
        text = text.replace("/opt/digest/.venv/bin/digest", str(DIGEST)).replace("/opt/digest", str(tmp_path))
        (folder / name).write_text(text)
    return folder


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    _need_systemd_analyze()
    assert SYSTEMD_ANALYZE is not None
    folder = _installed_copy(tmp_path)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", *(str(folder / n) for n in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warnings for systemd: any output is a failure here.
    assert result.stderr.strip() == "", result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    _need_systemd_analyze()
    assert SYSTEMD_ANALYZE is not None
    folder = _installed_copy(tmp_path)
    unit = folder / "digest-schedule.service"
    unit.write_text(unit.read_text().replace("KillMode=mixed", "KillMode=mixd"))
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert "kill mode" in result.stderr


def test_the_units_run_the_right_commands_and_stop_gracefully() -> None:
    service = _unit("digest-schedule.service")["Service"]
    assert service["ExecStart"].endswith("digest --log-format json schedule")
    assert service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure"
    assert set(service["RestartPreventExitStatus"].split()) == {"2", "7"}
    oneshot = _unit("digest-run.service")["Service"]
    assert oneshot["Type"] == "oneshot"
    assert oneshot["ExecStart"].endswith("digest --log-format json run --scheduled")
    assert set(oneshot["SuccessExitStatus"].split()) == {"7", "130"}  # busy, or stopped by systemctl stop
    timer = _unit("digest-run.timer")["Timer"]
    assert timer["Unit"] == "digest-run.service"


def test_the_timer_calendar_is_valid_and_ticks_every_quarter_hour() -> None:
    _need_systemd_analyze()
    assert SYSTEMD_ANALYZE is not None
    calendar = _unit("digest-run.timer")["Timer"]["OnCalendar"]
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "calendar", "--iterations=5", calendar],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    )
    assert result.returncode == 0, result.stderr
    times = re.findall(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})", result.stdout)
    moments = [datetime.fromisoformat(t) for t in times]
    assert len(moments) == 5
    assert all(m.minute % 15 == 0 and m.second == 0 for m in moments)
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(moments))


def _cron_line() -> tuple[str, str, str]:
    lines = [
        line
        for line in (DEPLOY / "digest.cron").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(lines) == 1
    fields = lines[0].split(None, 6)
    return " ".join(fields[:5]), fields[5], fields[6]


@pytest.mark.parametrize("host_zone_offset", [0, 1])
def test_the_cron_line_starts_every_friday_0800_london_slot_on_time(host_zone_offset: int) -> None:
    expression, user, command = _cron_line()
    assert croniter.is_valid(expression)
    assert user == "digest"
    assert "run --scheduled" in command
    settings = ScheduleSettings()
    start = datetime(2025, 3, 1, tzinfo=UTC)
    slot = next_slot(settings, start)
    for _ in range(40):  # through both clock changes of 2025
        # cron reads the host's local time; a host on UTC or on UTC+1 fires on the same quarter hours.
        base = (slot - timedelta(minutes=1)).replace(tzinfo=None) + timedelta(hours=host_zone_offset)
        fire = croniter(expression, base).get_next(datetime) - timedelta(hours=host_zone_offset)
        assert fire.replace(tzinfo=UTC) == slot
        slot = next_slot(settings, slot)


def test_the_deployed_command_lines_run(tmp_path: Path) -> None:
    """The oneshot's command, pointed at a config in an empty folder, exits 0: nothing due."""
    config = tmp_path / "config.toml"
    (tmp_path / "feed.xml").write_text("<rss version='2.0'><channel><title>t</title></channel></rss>")
    config.write_text('[[sources]]\nname = "a"\nurl = "feed.xml"\n')
    settle_slots_around_now(load_config(config))  # nothing due, whatever the wall clock says
    command = _unit("digest-run.service")["Service"]["ExecStart"].split()
    result = subprocess.run(
        [str(DIGEST), *command[1:], "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("nothing due: the run of "), result.stdout
    assert "is done: sent; next run " in result.stdout


def _run_cron_command(
    tmp_path: Path, environment: str | None
) -> tuple[subprocess.CompletedProcess[str], str]:
    """The cron line's command run by /bin/sh as cron would, with /opt/digest and /etc/digest/environment
    moved under tmp_path and digest replaced by a script that writes out the environment it got."""
    _, _, command = _cron_line()
    (tmp_path / ".digest").mkdir()
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    seen = tmp_path / "seen.txt"
    fake = tmp_path / ".venv" / "bin" / "digest"
    fake.write_text(
        "#!/bin/sh\n"
        f'printf "%s|%s|%s|%s\\n" "$DIGEST_SMTP_PASSWORD" "$DIGEST_SECRET" "$DIGEST_CONFIG" "$*" > {seen}\n'
    )
    fake.chmod(0o755)
    env_file = tmp_path / "etc-digest-environment"
    if environment is not None:
        env_file.write_text(environment)
    command = command.replace("/etc/digest/environment", str(env_file)).replace("/opt/digest", str(tmp_path))
    result = subprocess.run(
        ["/bin/sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},  # cron's sparse environment
    )
    return result, seen.read_text() if seen.exists() else ""


def test_the_cron_line_loads_the_secrets_file_the_systemd_units_read(tmp_path: Path) -> None:
    for name in ("digest-run.service", "digest-schedule.service"):
        assert _unit(name)["Service"]["EnvironmentFile"] == "-/etc/digest/environment"
    result, seen = _run_cron_command(
        tmp_path, "DIGEST_SMTP_PASSWORD='pass word#1'\nDIGEST_SECRET=unsubscribe-secret\n"
    )
    assert result.returncode == 0, result.stderr
    assert (
        seen == f"pass word#1|unsubscribe-secret|{tmp_path}/config.toml|--log-format json run --scheduled\n"
    )


def test_the_cron_line_runs_without_a_secrets_file_and_stops_on_a_broken_one(tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()
    result, seen = _run_cron_command(tmp_path / "none", None)
    assert result.returncode == 0, result.stderr
    assert seen == f"||{tmp_path}/none/config.toml|--log-format json run --scheduled\n"
    # A file the shell cannot load (unreadable, or broken) stops the job with the error in run.log
    # rather than running it without its secrets.
    (tmp_path / "bad").mkdir()
    result, seen = _run_cron_command(tmp_path / "bad", "DIGEST_SECRET='no closing quote\n")
    assert result.returncode != 0
    assert seen == ""
    assert "etc-digest-environment" in (tmp_path / "bad" / ".digest" / "run.log").read_text()
