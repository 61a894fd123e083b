"""The shipped sample from build to unsubscribe, through the CLI and the web apps, with its state in SQLite
and in a real PostgreSQL (`[state] url`): every step has the same outcome on both.

build (the sample's feeds are local files, nothing leaves the machine; the Makefile's --as-of) ->
subscribers add -> the preview's approval -> send to the outbox -> status --json -> `digest serve`'s
one-click unsubscribe -> digest run.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from run_site import cli_env
from web_support import AS_OF, csrf_of, preview_served, sample_project

from digest.config import load_config
from digest.pipeline.web import SharedState
from digest.state.store import open_store

SAMPLE_AS_OF = "2025-05-09T17:00:00+01:00"  # as in the Makefile
ISSUE = "2025-W19"


def cli(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "digest", *args, "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=cli_env(),
        cwd=config_path.parent,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def project(tmp_path: Path, backend: tuple[str, Any]) -> Path:
    kind, where = backend
    replace = {"required = false": "required = true"}
    if kind == "postgresql":
        replace['path = ".digest/state.db"'] = f'url = "{where}"'
    return sample_project(tmp_path / "project", replace=replace)


def one_click(base: str, unsubscribe_url: str) -> httpx.Response:
    """The RFC 8058 POST a mail provider sends to the List-Unsubscribe URL (on the served site)."""
    parts = urlsplit(unsubscribe_url)
    return httpx.post(
        f"{base.rstrip('/')}{parts.path}?{parts.query}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=30,
    )


def test_the_sample_end_to_end(tmp_path: Path, backend: tuple[str, Any]) -> None:
    config_path = project(tmp_path, backend)
    config = load_config(config_path)
    kind = backend[0]
    assert (config.state_url is not None) == (kind == "postgresql")

    built = ok(cli(config_path, "build", "--as-of", SAMPLE_AS_OF))
    assert ISSUE in built
    ok(cli(config_path, "subscribers", "add", "Ann.Reader@Example.org", "--name", "Ann"))
    ok(cli(config_path, "subscribers", "add", "bob@example.org"))
    again = cli(config_path, "subscribers", "add", "ann.reader@example.ORG")  # the same address
    assert again.returncode == 0
    listed = ok(cli(config_path, "subscribers", "list"))
    assert listed.lower().count("ann.reader@example.org") == 1

    # Approval is required: send refuses until the preview records one.
    refused = cli(config_path, "send")
    assert refused.returncode != 0 and "approv" in (refused.stdout + refused.stderr).lower()
    with preview_served(config_path, offline=True, as_of=AS_OF) as (base, workspace):
        snapshot = workspace.snapshot  # type: ignore[attr-defined]
        assert snapshot.issue is not None and snapshot.issue.id == ISSUE, snapshot.error
        with httpx.Client(base_url=base, timeout=60) as client:
            form = {"csrf_token": csrf_of(client.get("/").text), "name": "Priya Shah"}
            form |= {"html_sha256": snapshot.html_sha256, "text_sha256": snapshot.text_sha256}
            assert client.post("/approve", data=form).status_code == 303
            assert "Approved</strong> by Priya Shah" in client.get("/").text

    sent = ok(cli(config_path, "send"))
    assert ISSUE in sent
    messages = [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for p in sorted((config.delivery.outbox / "new").iterdir())
    ]
    assert sorted(str(m["To"]).split("<")[-1].rstrip(">").lower() for m in messages) == [
        "ann.reader@example.org",
        "bob@example.org",
    ]

    status = json.loads(ok(cli(config_path, "status", "--json")))
    issue = next(i for i in status["issues"] if i["id"] == ISSUE)
    assert (issue["recipients"], issue["failures"], issue["approved_by"]) == (2, 0, "Priya Shah")
    assert issue["sent_at"]

    # `digest serve` as a real process: the one-click POST of Bob's List-Unsubscribe link.
    bob = next(m for m in messages if "bob@" in str(m["To"]))
    link = re.search(r"<(https?://[^>]+)>", str(bob["List-Unsubscribe"]))
    assert link, bob["List-Unsubscribe"]
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "digest", "serve", "--port", "0", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(PYTHONUNBUFFERED="1"),
        cwd=config_path.parent,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # "serving ... on http://127.0.0.1:PORT/ ..."; the socket listens
        address = re.search(r"on (http://[\d.]+:\d+/)", line)
        assert address, f"{line}{server.stderr.read() if server.poll() is not None else ''}"  # type: ignore[union-attr]
        response = one_click(address.group(1), link.group(1))
        assert response.status_code == 200, response.text
        assert one_click(address.group(1), link.group(1)).status_code == 200  # again: nothing changes
    finally:
        server.terminate()
        server.communicate(timeout=60)
    db = open_store(config)
    try:
        assert db.dialect == kind
        gone = db.subscribers.get_subscriber("BOB@example.org")
        assert gone is not None and (gone.status, gone.reason) == ("unsubscribed", "unsubscribed (one-click)")
        assert db.subscribers.count_subscribers("active") == 1
    finally:
        db.close()

    # digest run for the same window: the issue went out, nothing new is sent.
    run = cli(config_path, "run", "--as-of", SAMPLE_AS_OF)
    assert run.returncode == 0, run.stderr
    status = json.loads(ok(cli(config_path, "status", "--json")))
    assert status["runs"][0]["outcome"] == "skipped: nothing new", status["runs"]
    assert len(list((config.delivery.outbox / "new").iterdir())) == 2


@pytest.mark.parametrize("command", [("status", "--json"), ("subscribers", "list")])
def test_reading_commands_open_the_configured_backend(
    tmp_path: Path, backend: tuple[str, Any], command: tuple[str, ...]
) -> None:
    """Nothing opens the SQLite file when the state is in PostgreSQL (no stray state.db appears)."""
    config_path = project(tmp_path, backend)
    ok(cli(config_path, "subscribers", "add", "ann@example.org"))
    ok(cli(config_path, *command))
    state_file = config_path.parent / ".digest" / "state.db"
    assert state_file.exists() == (backend[0] == "sqlite")


def test_a_web_app_keeps_one_postgresql_pool_for_its_life(tmp_path: Path, backend: tuple[str, Any]) -> None:
    """`digest serve` and the preview do not connect anew on every request when the state is PostgreSQL."""
    config = load_config(project(tmp_path, backend))
    shared = SharedState()
    try:
        seen = set()
        for i in range(5):
            with shared.use(config) as db:
                db.settings.set_setting("visit", str(i))
                if backend[0] == "postgresql":
                    row = db._database.fetch_one("SELECT pg_backend_pid()")
                    assert row is not None
                    seen.add(row[0])
        with shared.use(config) as db:
            assert db.settings.get_setting("visit") == "4"
        if backend[0] == "postgresql":
            assert len(seen) == 1, seen  # one pooled connection served every use
    finally:
        shared.close()
