"""Real mail: `digest send` through a private Postfix, which bounces the dead addresses asynchronously;
`digest bounces process` then marks exactly those subscribers. IMAP against a private Dovecot."""

from __future__ import annotations

import email
import imaplib
import json
import shutil
import time
from pathlib import Path

import pytest
from mail_servers import DovecotServer, PostfixServer
from send_support import ISSUE_ID, NOW, make_built_issue, write_config

from digest.cli import main
from digest.config import Config, load_config
from digest.deliver.bounces.verp import verp_id, verp_id_of
from digest.deliver.tokens import unsubscribe_secret
from digest.state.store import open_store

pytestmark = pytest.mark.smtp
SAMPLES = Path(__file__).resolve().parent / "data" / "bounces"
DSN_WAIT = 120.0  # seconds: the bound on waiting for Postfix's DSNs (they usually come within a second)
LIVE = ("ann@readers.test", "bob@readers.test")
DEAD = ("ghost1@readers.test", "ghost2@readers.test")


def wait_for_files(folder: Path, count: int) -> list[Path]:
    """Poll `folder` until it holds `count` files; the bound only decides how long a failure takes."""
    deadline = time.monotonic() + DSN_WAIT
    while time.monotonic() < deadline:
        files = sorted(folder.iterdir()) if folder.exists() else []
        if len(files) >= count:
            return files
        time.sleep(0.1)
    raise AssertionError(f"{folder}: {count} message(s) expected within {DSN_WAIT:.0f} s")


def run_json(config: Config, capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["bounces", "process", "--config", str(config.path), "--json", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_postfix_bounces_mark_exactly_the_dead_addresses(
    tmp_path: Path, postfix_server: PostfixServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path,
        'bounce_address = "bounces@bounce.test"\nverp = true',
        transport="smtp",
        smtp=f'host = "127.0.0.1"\nport = {postfix_server.port}\nsecurity = "none"\nrate_per_second = 500\n',
    )
    with config.path.open("a", encoding="utf-8") as handle:
        handle.write("\n[bounces]\nsoft_limit = 3\n")
    config = load_config(config.path)
    make_built_issue(config)
    db = open_store(config)
    for address in (*LIVE, *DEAD):
        db.subscribers.upsert_subscriber(address, name=None, at=NOW)
    secret = unsubscribe_secret(config, db)
    db.close()

    assert main(["send", "--config", str(config.path)]) == 0
    bounce_box = postfix_server.maildir("bounces@bounce.test")
    dsns = wait_for_files(bounce_box / "new", len(DEAD))

    # The envelope sender is the VERP address: it names the recipient without being its address.
    for address in LIVE:
        [delivered] = wait_for_files(postfix_server.maildir(address) / "new", 1)
        message = email.message_from_bytes(delivered.read_bytes())
        return_path = str(message["Return-Path"]).strip("<>")
        assert verp_id_of(return_path, "bounces@bounce.test") == verp_id(secret, address)
        assert address.split("@")[0] not in return_path
        assert message["From"].endswith("<news@blmk.example>")
    for dsn in dsns:
        assert b"message/delivery-status" in dsn.read_bytes()

    dry = run_json(config, capsys, "--maildir", str(bounce_box), "--dry-run")
    assert sorted(o["subscriber"] for o in dry) == list(DEAD)
    assert len(list((bounce_box / "new").iterdir())) == len(DEAD)

    out = run_json(config, capsys, "--maildir", str(bounce_box))
    assert sorted((o["subscriber"], o["kind"], o["status"], o["issue"]) for o in out) == [
        (address, "hard", "5.1.1", ISSUE_ID) for address in DEAD
    ]
    assert all(o["recipients"] == [o["subscriber"]] for o in out)
    db = open_store(config)
    statuses = {s.email: s.status for s in db.subscribers.iter_subscribers()}
    assert db.bounces.issue_bounces(ISSUE_ID).hard == len(DEAD)
    db.close()
    assert statuses == {**dict.fromkeys(LIVE, "active"), **dict.fromkeys(DEAD, "bounced")}
    assert run_json(config, capsys, "--maildir", str(bounce_box)) == []
    assert all(p.name.endswith(":2,S") for p in (bounce_box / "cur").iterdir())


def _imap_config(
    tmp_path: Path,
    server: DovecotServer,
    monkeypatch: pytest.MonkeyPatch,
    *,
    tls: str = "none",
    extra: str = "",
) -> Config:
    monkeypatch.setenv("DIGEST_TEST_IMAP_PASSWORD", server.password)
    config = write_config(tmp_path)
    port = server.tls_port if tls == "tls" else server.port
    with config.path.open("a", encoding="utf-8") as handle:
        handle.write(
            f'\n[bounces]\nimap_host = "127.0.0.1"\nimap_port = {port}\nimap_user = "{server.user}"\n'
            f'password_env = "DIGEST_TEST_IMAP_PASSWORD"\ntls = "{tls}"\nfolder = "INBOX"\n'
            f'move_to = "Processed"\n{extra}'
        )
    return load_config(config.path)


def test_imap_mailbox_against_a_real_dovecot(
    tmp_path: Path,
    dovecot_server: DovecotServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _imap_config(tmp_path, dovecot_server, monkeypatch)
    db = open_store(config)
    for address in ("kijitora@example.co.jp", "user@example.com", "someone@example.org"):
        db.subscribers.upsert_subscriber(address, name=None, at=NOW)
    db.close()
    imap = imaplib.IMAP4("127.0.0.1", dovecot_server.port)
    imap.login(dovecot_server.user, dovecot_server.password)
    imap.create("Processed")
    for sample in ("sisimai/lhost-postfix-04.eml", "sisimai/arf-12.eml", "sisimai/rfc3834-01.eml"):
        raw = (SAMPLES / sample).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        assert imap.append("INBOX", None, None, raw)[0] == "OK"

    dry = run_json(config, capsys, "--imap", "--dry-run")
    assert [o["kind"] for o in dry] == ["hard", "complaint", "auto_reply"]
    imap.select("INBOX", readonly=True)
    assert len(imap.search(None, "UNSEEN")[1][0].split()) == 3

    out = run_json(config, capsys, "--imap")
    assert [(o["source"], o["kind"], o["subscriber"]) for o in out] == [
        ("UID 1", "hard", "kijitora@example.co.jp"),
        ("UID 2", "complaint", "user@example.com"),
        ("UID 3", "auto_reply", None),
    ]
    db = open_store(config)
    statuses = {s.email: s.status for s in db.subscribers.iter_subscribers()}
    db.close()
    assert statuses == {
        "kijitora@example.co.jp": "bounced",
        "user@example.com": "complained",
        "someone@example.org": "active",
    }
    imap.select("INBOX", readonly=True)
    assert imap.search(None, "ALL")[1][0].split() == []
    imap.select("Processed", readonly=True)
    assert len(imap.search(None, "SEEN")[1][0].split()) == 3
    imap.logout()
    assert run_json(config, capsys, "--imap") == []


def test_a_wrong_imap_password_is_one_line_with_a_hint(
    tmp_path: Path,
    dovecot_server: DovecotServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _imap_config(tmp_path, dovecot_server, monkeypatch)
    monkeypatch.setenv("DIGEST_TEST_IMAP_PASSWORD", "wrong")
    capsys.readouterr()
    assert main(["bounces", "process", "--config", str(config.path), "--imap"]) == 5
    err = capsys.readouterr().err
    assert f"imap 127.0.0.1:{dovecot_server.port}" in err and "password_env" in err


@pytest.mark.parametrize("tls", ["tls", "starttls"])
def test_imap_over_tls_checks_the_server_certificate(
    tmp_path: Path,
    dovecot_server: DovecotServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tls: str,
) -> None:
    assert dovecot_server.tls is not None
    shutil.copy(dovecot_server.tls[0], tmp_path / "imap-ca.pem")
    untrusted = _imap_config(tmp_path, dovecot_server, monkeypatch, tls=tls)
    capsys.readouterr()
    assert main(["bounces", "process", "--config", str(untrusted.path), "--imap", "--dry-run"]) == 5
    assert "cannot connect" in capsys.readouterr().err  # a self-signed certificate is not trusted by default
    trusted = _imap_config(tmp_path, dovecot_server, monkeypatch, tls=tls, extra='ca_file = "imap-ca.pem"\n')
    assert main(["bounces", "process", "--config", str(trusted.path), "--imap", "--dry-run"]) == 0
