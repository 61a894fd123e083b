"""Unsubscribe links that work in Gmail and Yahoo: with transport = "smtp", `digest check` fails on a
[web] base_url that is not https:// or names a loopback or private address, warns on a reserved name and a
missing DKIM key, and `digest send`, `digest run` and `digest schedule` refuse what check fails unless
--allow-insecure-links."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from run_site import cli_env, digest_command, make_site
from send_support import NOW, Recorder, make_built_issue, smtp_server, write_config

from digest.cli import main
from digest.config import load_config
from digest.config.links import review_links
from digest.state.store import open_store

REPO = Path(__file__).resolve().parent.parent


def _site(tmp_path: Path, base_url: str, *, transport: str = "smtp", dkim: bool = False) -> Path:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    shutil.copytree(REPO / "feeds", site / "feeds", dirs_exist_ok=True)
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    text = text.replace('base_url = "http://127.0.0.1:8080"', f'base_url = "{base_url}"')
    text = text.replace('transport = "outbox"', f'transport = "{transport}"')
    if dkim:
        (site / "keys").mkdir(exist_ok=True)
        (site / "keys" / "dkim.pem").write_text("not read by check\n")
        text = text.replace(
            '# dkim_key = "keys/dkim.pem"\n# dkim_selector', 'dkim_key = "keys/dkim.pem"\ndkim_selector'
        )
    (site / "config.toml").write_text(text, encoding="utf-8")
    return site / "config.toml"


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check", "--config", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("base_url", "why"),
    [
        ("http://127.0.0.1:8080", "is not https://"),  # the shipped value
        ("http://news.blmk.nhs.uk", "is not https://"),
        ("https://127.0.0.1:8443", "loopback address 127.0.0.1"),
        ("https://[::1]:8443", "loopback address ::1"),
        ("https://localhost", "loopback host localhost"),
        ("https://10.1.2.3", "private address 10.1.2.3"),
        ("https://192.168.0.10/news", "private address 192.168.0.10"),
        ("https://169.254.1.1", "private address 169.254.1.1"),
        ("https://digest.internal", "private name"),
        ("https://intranet", "private name"),
    ],
)
def test_check_fails_for_smtp_when_base_url_is_not_public_https(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], base_url: str, why: str
) -> None:
    code, out, err = check(_site(tmp_path, base_url), capsys)
    assert code == 2, err
    assert "ok" not in out
    assert "web.base_url:" in err and why in err
    assert "--allow-insecure-links" in err


def test_check_passes_the_same_base_url_with_the_outbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = check(_site(tmp_path, "http://127.0.0.1:8080", transport="outbox"), capsys)
    assert code == 0 and ": ok" in out
    assert "warning" not in err


def test_check_warns_for_a_reserved_name_and_no_dkim_without_failing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for host in ("news.blmk.example", "news.test", "x.invalid", "example.org"):
        code, out, err = check(_site(tmp_path, f"https://{host}"), capsys)
        assert code == 0 and ": ok" in out, err
        assert f"warning: web.base_url: 'https://{host}' uses the reserved name {host}" in err
        assert "warning: delivery.dkim_key: DKIM signing is not configured" in err


def test_check_is_quiet_for_a_public_https_url_with_dkim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = check(
        _site(tmp_path, "https://news.blmkhealthandcarepartnership.org", dkim=True), capsys
    )
    assert code == 0 and ": ok" in out
    assert err == ""
    review = review_links(load_config(tmp_path / "site" / "config.toml"))
    assert review.problems == () and review.warnings == ()


@pytest.mark.smtp
def test_send_refuses_insecure_links_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        config = write_config(
            tmp_path, transport="smtp", smtp=f'host = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n'
        )
        text = config.path.read_text().replace("https://news.blmk.example", "http://127.0.0.1:8080")
        config.path.write_text(text)
        config = load_config(config.path)
        make_built_issue(config)
        db = open_store(config)
        db.subscribers.upsert_subscriber("reader@example.org", name=None, at=NOW)
        db.close()
        c = ["send", "--config", str(config.path)]
        assert main(c) == 2
        err = capsys.readouterr().err
        assert "web.base_url: 'http://127.0.0.1:8080' is not https://" in err
        assert not recorder.messages
        assert main([*c, "--to", "editor@example.org"]) == 2  # a test send goes to real inboxes too
        assert main([*c, "--dry-run"]) == 0
        assert "warning: a real send would be refused: web.base_url" in capsys.readouterr().err
        assert not recorder.messages
        assert main([*c, "--allow-insecure-links"]) == 0
        captured = capsys.readouterr()
        assert "sent 1" in captured.out
        assert "warning: sending anyway (--allow-insecure-links)" in captured.err
    assert [tuple(m.rcpt) for m in recorder.messages] == [("reader@example.org",)]


@pytest.mark.smtp
def test_run_refuses_insecure_links_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        config = make_site(  # [web] base_url is left at its default, http://127.0.0.1:8080
            tmp_path,
            [("Midwives celebrated", datetime(2025, 5, 5, 9, tzinfo=UTC))],
            transport="smtp",
            smtp=f'host = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n',
            subscribers=("reader@example.org",),
        )
        c = ["run", "--config", str(config.path), "--as-of", "2025-05-09T07:00:00+00:00"]
        assert main(c) == 2
        err = capsys.readouterr().err
        assert "web.base_url: 'http://127.0.0.1:8080' is not https://" in err
        assert "--allow-insecure-links" in err
        assert main([*c[:3], "--scheduled"]) == 2
        capsys.readouterr()
        assert not recorder.messages
        db = open_store(config)
        assert db.issues.get_issue("2025-W19") is None  # refused before anything was built
        db.close()
        assert main([*c, "--allow-insecure-links"]) == 0
        captured = capsys.readouterr()
        assert captured.out.startswith("sent (issue 2025-W19)"), captured.out
        assert "warning: sending anyway (--allow-insecure-links)" in captured.err
    assert [tuple(m.rcpt) for m in recorder.messages] == [("reader@example.org",)]


def test_schedule_refuses_insecure_links_before_it_starts(tmp_path: Path) -> None:
    config = make_site(tmp_path, [], transport="smtp", smtp='host = "127.0.0.1"\nport = 9\n')
    # The old code started the loop and never returned: the timeout fails the test then.
    done = subprocess.run(
        digest_command("schedule", "--config", str(config.path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=cli_env(),
        cwd=config.root,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "web.base_url: 'http://127.0.0.1:8080' is not https://" in done.stderr
    assert "hint:" in done.stderr and "--allow-insecure-links" in done.stderr
