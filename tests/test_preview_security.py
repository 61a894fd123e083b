"""Issue 9, item 1: the preview is not reachable through DNS rebinding, its CSRF tokens are per session,
wrong access tokens are throttled, and `digest serve` never copies the request's Host into a redirect."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from web_support import (
    AS_OF,
    PREVIEW_NOW,
    csrf_of,
    preview_served,
    record_sent,
    sample_project,
    served,
    wait_for,
    write_built_issue,
)

from digest.cli import main
from digest.config import load_config
from digest.errors import ConfigError
from digest.pipeline.web import publish_issue
from digest.state.store import open_store
from digest.web.app import create_preview_app
from digest.web.hosts import AllowedHosts, bound_names, relative_location
from digest.web.public import create_public_app
from digest.web.security import LoginThrottle
from digest.web.workspace import Workspace

EVIL = "evil.example"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return sample_project(tmp_path)


@pytest.fixture
def preview(project: Path) -> Iterator[tuple[str, Workspace]]:
    with preview_served(project) as (base, workspace):
        assert isinstance(workspace, Workspace)
        yield base, workspace


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


# --- the Host header --------------------------------------------------------------------------------


def test_a_forged_host_gets_400_before_any_handler(preview: tuple[str, Workspace]) -> None:
    base, workspace = preview
    port = port_of(base)
    for host in (
        f"{EVIL}:{port}",
        EVIL,
        f"{EVIL}:8812",
        f"127.0.0.1.{EVIL}:{port}",
        f"localhost:{port + 1}",
        "",
    ):
        for path in ("/", "/api/status", "/email.html", "/login", "/static/site.css", "/nope"):
            response = httpx.get(f"{base}{path}", headers={"host": host})
            assert response.status_code == 400, (host, path)
            assert "csrf_token" not in response.text
            assert "Traceback" not in response.text
    # A rebinding page's POST (its Origin matches the forged Host) never reaches the draft.
    with httpx.Client(base_url=base) as client:
        token = csrf_of(client.get("/").text)
        entry_id = workspace.snapshot.issue.entries[0].entry.id  # type: ignore[union-attr]
        forged = client.post(
            "/draft/drop",
            data={"entry": entry_id, "csrf_token": token},
            headers={"host": f"{EVIL}:{port}", "origin": f"http://{EVIL}:{port}"},
        )
    assert forged.status_code == 400
    assert workspace.snapshot.draft.dropped == ()


def test_the_bound_names_with_the_port_are_answered(preview: tuple[str, Workspace]) -> None:
    base, _ = preview
    port = port_of(base)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        assert httpx.get(f"{base}/api/status", headers={"host": host}).status_code == 200, host


def test_allowed_hosts_from_the_config_are_answered(tmp_path: Path) -> None:
    config = sample_project(
        tmp_path,
        replace={
            'access_token_env = "DIGEST_PREVIEW_TOKEN"': 'access_token_env = "DIGEST_PREVIEW_TOKEN"\n'
            'allowed_hosts = ["Preview.Intranet.example", "digest-box:8443"]'
        },
    )
    with preview_served(config) as (base, _):
        port = port_of(base)
        ok = ("preview.intranet.example", f"preview.intranet.example:{port}", "digest-box:8443")
        for host in ok:
            assert httpx.get(f"{base}/api/status", headers={"host": host}).status_code == 200, host
        for host in ("digest-box", f"digest-box:{port}", "intranet.example", f"{EVIL}:8443"):
            assert httpx.get(f"{base}/api/status", headers={"host": host}).status_code == 400, host


def test_allowed_hosts_is_validated(tmp_path: Path) -> None:
    bad = '["ok.example", "*.example.org", "https://x.example/", "x.example:99999", "", 3, "[zz]:80", "a b"]'
    config = sample_project(
        tmp_path,
        replace={'access_token_env = "DIGEST_PREVIEW_TOKEN"': f"allowed_hosts = {bad}"},
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    problems = {p.split(": ", 1)[0]: p for p in caught.value.problems}
    expected = (
        "wildcards",
        "a URL?",
        "port must be",
        "must not be empty",
        "must be a string",
        "IPv6",
        "not a host",
    )
    for i, what in enumerate(expected, start=1):
        assert what in problems[f"preview.allowed_hosts[{i}]"], (i, problems)
    assert "preview.allowed_hosts[0]" not in problems
    sample_project(tmp_path / "other")
    assert load_config(tmp_path / "other" / "config.toml").preview.allowed_hosts == ()


def test_which_names_a_bind_address_answers() -> None:
    assert bound_names("127.0.0.1") == ("127.0.0.1", "localhost", "[::1]")
    assert bound_names("0.0.0.0") == ("127.0.0.1", "localhost", "[::1]")
    assert bound_names("::") == ("127.0.0.1", "localhost", "[::1]")
    assert bound_names("192.0.2.10") == ("127.0.0.1", "localhost", "[::1]", "192.0.2.10")
    assert bound_names("2001:db8::1") == ("127.0.0.1", "localhost", "[::1]", "[2001:db8::1]")
    hosts = AllowedHosts(bound_names("192.0.2.10"), lambda: ("proxy.example",))
    assert hosts.allows("192.0.2.10:8000", 8000)
    assert not hosts.allows("192.0.2.10:8001", 8000)
    assert hosts.allows("localhost", 80)  # no port in the Host header means 80
    assert not hosts.allows("localhost", 8000)
    assert hosts.allows("proxy.example:443", 8000)
    assert not hosts.allows("localhost:80x", 80)


# --- CSRF per session -----------------------------------------------------------------------------


def test_each_session_gets_its_own_csrf_token_and_only_its_own_works(preview: tuple[str, Workspace]) -> None:
    base, workspace = preview
    entry_id = workspace.snapshot.issue.entries[0].entry.id  # type: ignore[union-attr]
    with httpx.Client(base_url=base) as alice, httpx.Client(base_url=base) as bob:
        alice_token = csrf_of(alice.get("/").text)
        bob_token = csrf_of(bob.get("/").text)
        assert alice_token != bob_token
        assert csrf_of(alice.get("/").text) == alice_token  # stable within a session
        session = alice.cookies.get("digest_preview_session")
        assert session and session not in alice.get("/").text  # the cookie is not in the page
        # Bob's token with Alice's session (and the reverse) is refused; nothing changes.
        assert alice.post("/draft/drop", data={"entry": entry_id, "csrf_token": bob_token}).status_code == 403
        assert bob.post("/draft/drop", data={"entry": entry_id, "csrf_token": alice_token}).status_code == 403
        assert workspace.snapshot.draft.dropped == ()
        # A token that is not ASCII is refused like any wrong one (no 500).
        odd = alice.post("/draft/drop", data={"entry": entry_id, "csrf_token": "é" * 64})
        assert odd.status_code == 403
        # Without any session cookie, even a real token is refused.
        bare = httpx.post(f"{base}/draft/drop", data={"entry": entry_id, "csrf_token": alice_token})
        assert bare.status_code == 403
        # A session id planted by someone else gets a token they cannot compute.
        planted = "A" * 43
        with httpx.Client(base_url=base, cookies={"digest_preview_session": planted}) as victim:
            victim_token = csrf_of(victim.get("/").text)
        assert victim_token not in (alice_token, bob_token)
        assert (
            alice.post("/draft/drop", data={"entry": entry_id, "csrf_token": alice_token}).status_code == 303
        )
        assert workspace.snapshot.draft.dropped == (entry_id,)


def test_the_session_cookie_is_httponly_and_same_site_strict(preview: tuple[str, Workspace]) -> None:
    base, _ = preview
    cookie = httpx.get(f"{base}/").headers["set-cookie"]
    assert cookie.startswith("digest_preview_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie


# --- login throttle -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


TOKEN = "preview-token-0123456789"


@pytest.fixture
def locked(project: Path) -> Iterator[tuple[str, Clock]]:
    clock = Clock()
    workspace = Workspace(project, clock=lambda: PREVIEW_NOW, as_of=AS_OF, check_links=False)
    app = create_preview_app(
        workspace, access_token=TOKEN, watch_interval=0.1, login_throttle=LoginThrottle(clock=clock)
    )
    with served(app) as base:
        wait_for(lambda: workspace.snapshot.version >= 1, what="the first preview build", attempts=600)
        yield base, clock


def test_the_sixth_wrong_token_in_a_minute_gets_429(locked: tuple[str, Clock]) -> None:
    base, clock = locked
    with httpx.Client(base_url=base) as client:
        login = client.get("/login")
        assert login.status_code == 200
        assert "csrf_token" not in login.text
        for _ in range(5):
            assert client.post("/login", data={"token": "wrong"}).status_code == 401
            clock.now += 10
        throttled = client.post("/login", data={"token": "wrong"})
        assert throttled.status_code == 429
        assert 1 <= int(throttled.headers["retry-after"]) <= 60
        # While throttled even the right token waits (else guessing would go on), and bearers too.
        assert client.post("/login", data={"token": TOKEN}).status_code == 429
        assert (
            httpx.get(f"{base}/api/status", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 429
        )
        # Another address is not throttled.
        other = httpx.Client(base_url=base, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        with other:
            assert other.post("/login", data={"token": TOKEN}).status_code == 303
        # The first failure ages out after a minute: one more try is allowed.
        clock.now += 11
        assert client.post("/login", data={"token": TOKEN}).status_code == 303
        assert client.get("/").status_code == 200


def test_wrong_bearer_tokens_count_as_failed_logins(locked: tuple[str, Clock]) -> None:
    base, clock = locked
    for _ in range(5):
        assert httpx.get(f"{base}/api/status", headers={"authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(f"{base}/api/status", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 429
    assert httpx.post(f"{base}/login", data={"token": TOKEN}).status_code == 429
    clock.now += 61
    assert httpx.get(f"{base}/api/status", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_throttle_counts_per_client_within_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, limit=5, per=60.0, max_clients=3)
    for _ in range(5):
        assert throttle.retry_after("a") is None
        throttle.failed("a")
    assert throttle.retry_after("a") == 60
    assert throttle.retry_after("b") is None
    clock.now += 59.5
    assert throttle.retry_after("a") == 1
    clock.now += 0.5
    assert throttle.retry_after("a") is None
    for name in ("b", "c", "d", "e"):
        throttle.failed(name)
    assert len(throttle._failures) <= 3  # bounded memory


# --- digest serve -----------------------------------------------------------------------------------


SENT = datetime(2025, 5, 9, 7, 0, tzinfo=UTC)


def test_serve_never_copies_the_host_into_a_redirect(tmp_path: Path) -> None:
    config_path = sample_project(tmp_path)
    config = load_config(config_path)
    db = open_store(config)
    folder = write_built_issue(tmp_path / "out", "2025-W19", subject="Week 19")
    record_sent(db, folder, "2025-W19", sent_at=SENT)
    publish_issue(config, db, "2025-W19")
    db.close()
    app = create_public_app(config, clock=lambda: SENT)
    with served(app) as base, httpx.Client(base_url=base) as client:
        for host in (f"{EVIL}", f"{EVIL}:8812", "127.0.0.1"):
            for path in ("/issues/2025-W19", "/issues/2025-W19?x=1", "/issues", "/unsubscribe/"):
                response = client.get(path, headers={"host": host})
                assert EVIL not in response.headers.get("location", ""), (host, path)
                assert EVIL not in response.text
        moved = client.get("/issues/2025-W19", headers={"host": f"{EVIL}:8812"})
        assert moved.status_code in (301, 307, 308)
        assert moved.headers["location"] == "./2025-W19/"
        # Followed from the public address, with or without a path prefix, it lands on the issue.
        assert str(httpx.URL("https://news.example.org/digest/issues/2025-W19").join("./2025-W19/")) == (
            "https://news.example.org/digest/issues/2025-W19/"
        )
        followed = client.get("/issues/2025-W19", follow_redirects=True)
        assert followed.status_code == 200
        assert "Web version of issue 2025-W19" in followed.text


@pytest.mark.parametrize(
    ("path", "location", "expected"),
    [
        ("/issues/2025-W19", "http://evil.example/issues/2025-W19/", "./2025-W19/"),
        ("/issues/2025-W19", "http://evil.example/issues/2025-W19/?a=1", "./2025-W19/?a=1"),
        ("/issues", "https://evil.example:8812/issues/", "./issues/"),
        ("/unsubscribe/", "http://evil.example/unsubscribe", "../unsubscribe"),
        ("/", "//evil.example/", "./"),
        ("/a/b", "/a/c", "./c"),
        ("/a/b", "/a/c:d", "./c:d"),
    ],
)
def test_relative_locations(path: str, location: str, expected: str) -> None:
    assert relative_location(path, location) == expected


def test_the_preview_command_says_which_names_it_answers(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import digest.cli.web as cli_web

    monkeypatch.setattr(cli_web, "_run_server", lambda app, sock: sock.close() or 0)
    assert main(["preview", "--config", str(project), "--port", "0", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "answering requests addressed to 127.0.0.1:" in out
    assert "[preview] allowed_hosts" in out
