"""Issue 13: sign-in, roles, four-eyes approval and the audit trail of the comms team's desk."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from web_support import csrf_of, preview_served, sample_project

from digest.cli import cli, main
from digest.config import load_config
from digest.errors import ConfigError
from digest.state.store import open_store
from digest.web.signin import Sessions
from digest.web.workspace import Workspace

EDITOR, APPROVER, BOSS = "erin", "priya", "sam@blmk.example"
PASSWORD = "correct horse battery"


def add_user(config: Path, name: str, role: str, password: str = PASSWORD) -> int:
    result = CliRunner().invoke(
        cli,
        ["users", "add", name, "--role", role, "--config", str(config), "--password-stdin"],
        input=password + "\n",
    )
    return result.exit_code


def sign_in(client: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/signin", data={"username": name, "password": password})


@pytest.fixture
def team(tmp_path: Path) -> Path:
    config = sample_project(tmp_path, replace={"four_eyes = false": "four_eyes = true"})
    assert add_user(config, EDITOR, "editor") == 0
    assert add_user(config, APPROVER, "approver") == 0
    assert add_user(config, BOSS, "admin") == 0
    return config


@pytest.fixture
def desk(team: Path) -> Iterator[tuple[str, Workspace]]:
    with preview_served(team, status_code=401) as (base, workspace):
        assert isinstance(workspace, Workspace)
        yield base, workspace


# --- digest users ------------------------------------------------------------------------------------


def test_users_are_added_listed_changed_and_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = sample_project(tmp_path)
    runner = CliRunner()
    # Prompted twice, hidden: a mismatch asks again, then the matching pair is taken.
    typed = runner.invoke(
        cli,
        ["users", "add", "asha", "--role", "approver", "--config", str(config)],
        input=f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert typed.exit_code == 0, typed.output
    assert PASSWORD not in typed.output
    assert "do not match" in typed.output
    with open_store(load_config(config)) as db:
        user = db.users.get_user("asha")
        assert user is not None
        assert user.role == "approver"
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        first_hash = user.password_hash
    assert add_user(config, "asha", "editor") != 0  # taken
    assert add_user(config, "bob", "editor", "short") != 0  # too short
    assert add_user(config, "bad name", "editor") != 0
    assert main(["users", "list", "--json", "--config", str(config)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(u["name"], u["role"]) for u in listed] == [("asha", "approver")]
    changed = runner.invoke(
        cli,
        ["users", "passwd", "asha", "--config", str(config), "--password-stdin"],
        input="a new long passphrase\n",
    )
    assert changed.exit_code == 0, changed.output
    with open_store(load_config(config)) as db:
        user = db.users.get_user("asha")
        assert user is not None and user.password_hash != first_hash
    assert main(["users", "passwd", "nobody", "--config", str(config), "--password-stdin"]) == 2
    assert "there is no user 'nobody'" in capsys.readouterr().err
    assert main(["users", "remove", "asha", "--config", str(config)]) == 0
    assert main(["users", "remove", "asha", "--config", str(config)]) == 2
    with open_store(load_config(config)) as db:
        assert db.users.list_users() == []


# --- sign-in -----------------------------------------------------------------------------------------


def test_with_users_the_preview_asks_for_a_sign_in(desk: tuple[str, Workspace]) -> None:
    base, _workspace = desk
    with httpx.Client(base_url=base) as client:
        first = client.get("/")
        assert first.status_code == 303
        assert first.headers["location"] == "/signin"
        assert client.get("/email.html").status_code == 401
        assert client.post("/draft/intro", data={"intro": "x"}).status_code == 401
        page = client.get("/signin")
        assert page.status_code == 200
        assert 'autocomplete="current-password"' in page.text
        assert sign_in(client, EDITOR, "wrong password!").status_code == 401
        assert sign_in(client, "nobody", PASSWORD).status_code == 401
        done = sign_in(client, EDITOR)
        assert done.status_code == 303
        cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("digest_preview_user="))
        assert "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
        assert "Max-Age=43200" in cookie  # [preview] session_hours = 12
        assert "Secure" not in cookie  # plain HTTP on loopback; HTTPS adds Secure
        home = client.get("/")
        assert home.status_code == 200
        assert f"Signed in as <strong>{EDITOR}</strong> (editor)" in home.text
        assert 'id="cannot-approve"' in home.text
        client.post("/signout", data={"csrf_token": csrf_of(home.text)})
        assert client.get("/").status_code == 303


def test_the_session_cookie_is_secure_over_https(desk: tuple[str, Workspace]) -> None:
    base, _ = desk
    # A TLS-terminating proxy on this machine (uvicorn believes X-Forwarded-Proto from 127.0.0.1).
    with httpx.Client(base_url=base, headers={"x-forwarded-proto": "https"}) as client:
        done = sign_in(client, EDITOR)
        assert done.status_code == 303
        cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("digest_preview_user="))
        assert "Secure" in cookie


def test_sessions_expire_and_end_with_their_user() -> None:
    now = [1000.0]
    sessions = Sessions(clock=lambda: now[0])
    token = sessions.start("erin", 2)
    assert sessions.user_of(token) == "erin"
    now[0] += 2 * 3600 - 1
    assert sessions.user_of(token) == "erin"
    now[0] += 1
    assert sessions.user_of(token) is None
    other = sessions.start("erin", 1)
    sessions.end_user("erin")
    assert sessions.user_of(other) is None
    assert sessions.user_of("forged") is None


def test_a_removed_user_or_a_new_password_signs_out(desk: tuple[str, Workspace], team: Path) -> None:
    base, _ = desk
    with httpx.Client(base_url=base) as client:
        sign_in(client, EDITOR)
        assert client.get("/").status_code == 200
        assert main(["users", "remove", EDITOR, "--config", str(team)]) == 0
        assert client.get("/").status_code == 303
        sign_in(client, APPROVER)
        assert client.get("/").status_code == 200
        changed = CliRunner().invoke(
            cli,
            ["users", "passwd", APPROVER, "--config", str(team), "--password-stdin"],
            input="another long passphrase\n",
        )
        assert changed.exit_code == 0
        assert client.get("/").status_code == 303  # a new password ends the sessions of the old one
        assert sign_in(client, APPROVER, "another long passphrase").status_code == 303


# --- roles, four eyes, audit ---------------------------------------------------------------------------


def test_roles_four_eyes_and_the_audit_trail(
    desk: tuple[str, Workspace], team: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, workspace = desk
    issue = workspace.snapshot.issue
    assert issue is not None
    entry = issue.entries[0].entry
    with httpx.Client(base_url=base) as editor, httpx.Client(base_url=base) as approver:
        sign_in(editor, EDITOR)
        sign_in(approver, APPROVER)
        page = editor.get("/").text
        # An editor cannot approve: 403, nothing recorded.
        refused = editor.post(
            "/approve",
            data={
                "csrf_token": csrf_of(page),
                "name": APPROVER,
                "html_sha256": workspace.snapshot.html_sha256,
                "text_sha256": workspace.snapshot.text_sha256,
            },
        )
        assert refused.status_code == 403
        with open_store(workspace.config) as db:
            assert db.approvals.get_approval(issue.id) is None
        # The approver edits the draft: under four eyes they cannot approve their own change.
        page = approver.get("/").text
        assert (
            approver.post("/draft/drop", data={"csrf_token": csrf_of(page), "entry": entry.id}).status_code
            == 303
        )
        page = approver.get("/").text
        assert f"{APPROVER} made the last change to this issue, so cannot approve it" in page
        assert f"Who can: {BOSS}." in page
        own = approver.post(
            "/approve",
            data={
                "csrf_token": csrf_of(page),
                "html_sha256": workspace.snapshot.html_sha256,
                "text_sha256": workspace.snapshot.text_sha256,
            },
        )
        assert own.status_code == 303
        assert "cannot approve it (four eyes)" in approver.get(own.headers["location"]).text
        with open_store(workspace.config) as db:
            assert db.approvals.get_approval(issue.id) is None
        # The editor restores the entry; now the approver may approve, as themselves.
        page = editor.get("/").text
        assert (
            editor.post("/draft/restore", data={"csrf_token": csrf_of(page), "entry": entry.id}).status_code
            == 303
        )
        page = approver.get("/").text
        assert 'id="approver"' not in page  # no name to type: the signed-in user approves
        done = approver.post(
            "/approve",
            data={
                "csrf_token": csrf_of(page),
                "name": "Someone Else",
                "html_sha256": workspace.snapshot.html_sha256,
                "text_sha256": workspace.snapshot.text_sha256,
            },
        )
        assert done.status_code == 303
        with open_store(workspace.config) as db:
            approval = db.approvals.get_approval(issue.id)
            assert approval is not None and approval.approved_by == APPROVER
        # A test send by the editor, then an edit that voids the approval.
        page = editor.get("/").text
        assert (
            editor.post(
                "/test-send", data={"csrf_token": csrf_of(page), "to": "erin@blmk.example"}
            ).status_code
            == 303
        )
        assert (
            editor.post(
                "/draft/intro", data={"csrf_token": csrf_of(page), "intro": "Hello from the team."}
            ).status_code
            == 303
        )
        assert editor.post("/refresh", data={"csrf_token": csrf_of(page)}).status_code == 303
        trail = editor.get("/").text
    assert f"dropped “{entry.title}” from the issue" in trail
    assert main(["status", "--audit", "--json", "--config", str(team)]) == 0
    events = json.loads(capsys.readouterr().out)["audit"]
    steps = [(e["actor"], e["action"]) for e in reversed(events)]
    assert steps == [
        (APPROVER, "edit"),
        (EDITOR, "edit"),
        (APPROVER, "approve"),
        (EDITOR, "test-send"),
        (EDITOR, "edit"),
        (EDITOR, "void"),
        (EDITOR, "rebuild"),
    ]
    dropped = next(e for e in reversed(events) if e["action"] == "edit")
    assert dropped["detail"] == f"dropped “{entry.title}” from the issue"
    assert dropped["issue_id"] == issue.id
    assert next(e for e in events if e["action"] == "void")["detail"].startswith(
        f"voided the approval by {APPROVER}"
    )
    assert main(["status", "--audit", "--config", str(team)]) == 0
    assert f"{APPROVER}: approved issue {issue.id}" in capsys.readouterr().out


def test_without_users_the_preview_stays_open_on_loopback(tmp_path: Path) -> None:
    config = sample_project(tmp_path)
    with preview_served(config) as (base, _workspace):
        page = httpx.get(f"{base}/")
        assert page.status_code == 200
        assert 'id="approver"' in page.text  # the typed name, as before
        assert "Signed in as" not in page.text


# --- header sign-in through a trusted proxy -------------------------------------------------------------


def header_project(tmp_path: Path, proxy: str) -> Path:
    return sample_project(
        tmp_path,
        replace={
            'auth = "password"': 'auth = "header"',
            '# trusted_proxies = ["127.0.0.1"]': f'trusted_proxies = ["{proxy}"]',
            '# [preview.roles]\n# "asha@blmk.example" = "admin"\n# "*" = "editor"': (
                '[preview.roles]\n"asha@blmk.example" = "approver"\n"*" = "editor"'
            ),
        },
    )


def test_header_sign_in_is_believed_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    config = header_project(tmp_path, "127.0.0.2")
    headers = {"X-Forwarded-Email": "asha@blmk.example"}
    with preview_served(config, status_code=403) as (base, _workspace):
        # From 127.0.0.1 (not the proxy): refused, whatever the header says.
        direct = httpx.get(f"{base}/", headers=headers)
        assert direct.status_code == 403
        assert "not trusted" in direct.text
        proxy = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=base, transport=proxy, headers=headers) as client:
            page = client.get("/")
            assert page.status_code == 200
            assert "Signed in as <strong>asha@blmk.example</strong> (approver)" in page.text
            assert "Sign out" not in page.text
        other = {"X-Forwarded-Email": "kim@blmk.example"}
        with httpx.Client(base_url=base, transport=httpx.HTTPTransport(local_address="127.0.0.2")) as client:
            page = client.get("/", headers=other)
            assert "Signed in as <strong>kim@blmk.example</strong> (editor)" in page.text
            assert client.get("/").status_code == 403  # no header: nobody
            assert client.get("/signin", headers=other).status_code == 404  # the proxy signs people in


def test_header_auth_needs_proxies_and_roles(tmp_path: Path) -> None:
    config = sample_project(tmp_path, replace={'auth = "password"': 'auth = "header"'})
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    text = "\n".join(caught.value.problems)
    assert "preview.trusted_proxies" in text
    assert "preview.roles" in text
    bad = sample_project(
        tmp_path / "bad",
        replace={
            '# trusted_proxies = ["127.0.0.1"]': 'trusted_proxies = ["proxy.example"]',
            "session_hours = 12": "session_hours = 0",
            '# [preview.roles]\n# "asha@blmk.example" = "admin"': '[preview.roles]\n"asha" = "boss"',
        },
    )
    with pytest.raises(ConfigError) as caught:
        load_config(bad)
    text = "\n".join(caught.value.problems)
    assert "preview.trusted_proxies[0]: 'proxy.example' is not an IP address" in text
    assert "preview.session_hours" in text
    assert "preview.roles.asha: must be one of" in text


def test_only_admins_manage_users_in_the_preview(desk: tuple[str, Workspace], team: Path) -> None:
    base, _ = desk
    with httpx.Client(base_url=base) as admin, httpx.Client(base_url=base) as approver:
        sign_in(admin, BOSS)
        sign_in(approver, APPROVER)
        page = approver.get("/").text
        assert 'id="users"' not in page
        new = {"csrf_token": csrf_of(page), "username": "kim", "role": "editor", "password": PASSWORD}
        assert approver.post("/users/add", data=new).status_code == 403
        page = admin.get("/").text
        assert 'id="users"' in page
        added = admin.post("/users/add", data={**new, "csrf_token": csrf_of(page)})
        assert added.status_code == 303
        assert "Added user kim (editor)." in admin.get(added.headers["location"]).text
        token = csrf_of(page)
        assert admin.post("/users/remove", data={"csrf_token": token, "username": BOSS}).status_code == 303
        with open_store(load_config(team)) as db:
            assert sorted(u.name for u in db.users.list_users()) == sorted([EDITOR, APPROVER, BOSS, "kim"])
        assert (
            approver.post(
                "/users/remove", data={"csrf_token": csrf_of(approver.get("/").text), "username": "kim"}
            ).status_code
            == 403
        )
        assert admin.post("/users/remove", data={"csrf_token": token, "username": "kim"}).status_code == 303
        with open_store(load_config(team)) as db:
            assert "kim" not in [u.name for u in db.users.list_users()]
            assert [e.detail for e in db.audit.events() if e.action == "users"] == [
                "removed user kim",
                "added user kim (editor)",
            ]


def test_builds_outside_the_preview_are_in_the_audit_trail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = sample_project(tmp_path)
    as_of = ["--as-of", "2025-05-09T17:00:00+01:00"]
    assert main(["build", *as_of, "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["status", "--audit", "--json", "--config", str(config)]) == 0
    events = json.loads(capsys.readouterr().out)["audit"]
    built = [e for e in events if e["action"] == "rebuild"]
    assert [(e["actor"], e["issue_id"]) for e in built] == [("digest build", "2025-W19")]
    assert built[0]["detail"].startswith("digest build built the issue: ")
