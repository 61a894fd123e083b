"""deploy/digest-serve.service and the reverse-proxy examples: the unit passes `systemd-analyze verify`,
its command line serves the public pages, and the proxies point at the address it listens on."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from web_support import sample_project

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
DIGEST = Path(sys.executable).parent / "digest"
UNIT = "digest-serve.service"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / name)
    return parser


def test_the_serve_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    if not SYSTEMD_ANALYZE:  # as tests/test_schedule_deploy.py: verified where systemd is installed
        pytest.skip("systemd-analyze is not installed here (apt-get install systemd)")
    text = (DEPLOY / UNIT).read_text()
    text = text.replace("/opt/digest/.venv/bin/digest", str(DIGEST)).replace("/opt/digest", str(tmp_path))
    (tmp_path / UNIT).write_text(text)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(tmp_path / UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # warnings (unknown keys, bad values) count too
    assert result.stdout.strip() == "", result.stdout


def test_the_serve_unit_shares_the_senders_config_secrets_and_state() -> None:
    serve = _unit(UNIT)["Service"]
    sender = _unit("digest-schedule.service")["Service"]
    for key in ("User", "WorkingDirectory", "Environment", "EnvironmentFile", "ReadWritePaths"):
        assert serve[key] == sender[key], key
    assert serve["EnvironmentFile"] == "-/etc/digest/environment"
    assert serve["ExecStart"].endswith("digest --log-format json serve --host 127.0.0.1 --port 8080")
    assert _unit(UNIT)["Install"]["WantedBy"] == "multi-user.target"


def test_the_proxies_terminate_https_in_front_of_the_units_address() -> None:
    listen = re.search(r"--host (\S+) --port (\d+)", _unit(UNIT)["Service"]["ExecStart"])
    assert listen is not None
    upstream = f"{listen[1]}:{listen[2]}"
    caddy = (DEPLOY / "Caddyfile").read_text()
    assert f"reverse_proxy {upstream}" in caddy
    assert re.search(r"^news\.example\.org \{", caddy, re.MULTILINE)  # a site name: automatic HTTPS
    nginx = (DEPLOY / "nginx-digest.conf").read_text()
    assert f"proxy_pass http://{upstream};" in nginx
    assert "listen 443 ssl;" in nginx and "return 301 https://$host$request_uri;" in nginx
    assert "client_max_body_size 64k;" in nginx


def test_the_units_command_line_serves_the_unsubscribe_page(tmp_path: Path) -> None:
    config = sample_project(tmp_path)
    command = _unit(UNIT)["Service"]["ExecStart"].split()
    command = [str(DIGEST), *command[1:-1], "0", "--config", str(config)]  # port 0: any free port
    assert command[-4:-2] == ["--port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DIGEST_SECRET": "deploy-test-secret"}
    with subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as server:
        try:
            assert server.stdout is not None
            line = server.stdout.readline()  # "serving ... on http://127.0.0.1:PORT/ (public address: ...)"
            found = re.search(r" on (http://127\.0\.0\.1:\d+/) ", line)
            assert found, line + (server.stderr.read() if server.poll() is not None and server.stderr else "")
            page = httpx.get(found[1] + "unsubscribe?token=forged.token", timeout=30)
            assert page.status_code == 400
            assert "This unsubscribe link is not valid" in page.text
        finally:
            server.terminate()
            server.wait(timeout=60)
