"""`digest send` against a real aiosmtpd on 127.0.0.1: what arrives, TLS and login, failures, exactly once."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from send_support import (
    ISSUE_ID,
    NOW,
    SUBJECT,
    Recorder,
    free_port,
    make_built_issue,
    make_certificate,
    parse,
    parts,
    smtp_server,
    write_config,
)

from digest.cli import main
from digest.config import Config
from digest.deliver import tokens
from digest.pipeline.send import send_issue
from digest.state.store import open_store

pytestmark = pytest.mark.smtp
REPO = Path(__file__).resolve().parent.parent


def setup(
    root: Path, port: int, *, count: int = 6, smtp: str = "", names: bool = True, timeout: float = 5
) -> tuple[Config, list[str]]:
    config = write_config(
        root,
        transport="smtp",
        smtp=f'host = "127.0.0.1"\nport = {port}\nsecurity = "none"\npool_size = 2\n'
        f"rate_per_second = 500\ntimeout = {timeout}\nretries = 2\nretry_delay = 0.02\n{smtp}",
    )
    make_built_issue(config)
    db = open_store(config)
    emails = [f"reader{i:02d}@example.org" for i in range(count)]
    for i, address in enumerate(emails):
        db.subscribers.upsert_subscriber(address, name=f"Reader {i}" if names else None, at=NOW)
    db.close()
    return config, emails


def send(config: Config, *args: str) -> int:
    return main(["send", "--config", str(config.path), *args])


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", "smtp-test-secret")


def test_what_the_server_receives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        config, emails = setup(tmp_path, server.port, count=10)
        assert send(config) == 0
    assert "sent 10, already sent 0, failed 0" in capsys.readouterr().out
    assert sorted(recorder.recipients()) == emails
    assert len({m.peer for m in recorder.messages}) <= 2  # a pool of two connections, reused
    for received in recorder.messages:
        assert received.envelope_from == "news@blmk.example"
        (address,) = received.rcpt
        message = parse(received.data)
        number = int(address[6:8])
        assert message["From"] == "BLMK Health and Care Partnership <news@blmk.example>"
        assert message["To"] == f"Reader {number} <{address}>"
        assert message["Subject"] == SUBJECT
        assert message["Date"] and message["Message-ID"].endswith("@blmk.example>")
        assert message["List-Id"] == "BLMK weekly news <weekly.news.blmk.example>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Reply-To"] == "comms@blmk.example"
        text, html = parts(message)
        url = text.split("Unsubscribe: ", 1)[1].split("\n", 1)[0]
        db = open_store(config)
        subscriber = db.subscribers.get_subscriber(address)
        db.close()
        assert subscriber is not None
        token_id = tokens.read_unsubscribe_token("smtp-test-secret", url.split("token=", 1)[1])
        assert token_id == subscriber.token_id
        assert (
            message["List-Unsubscribe"] == f"<{url}>, <mailto:unsubscribe@blmk.example?subject=unsubscribe>"
        )
        assert text.startswith(f"Hello Reader {number},\n")
        assert f"<p>Hello Reader {number},</p>" in html and f'href="{url}"' in html
    assert len({parse(m.data)["Message-ID"] for m in recorder.messages}) == 10
    db = open_store(config)
    record = db.issues.get_issue(ISSUE_ID)
    assert record is not None and record.sent_at is not None
    db.close()


def _tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    good = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"digest",
        b"s3cret",
    )
    return AuthResult(success=good, handled=False)


def test_starttls_and_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import require

    require(shutil.which("openssl"), "the openssl CLI makes the test certificate")
    cert, key = make_certificate(tmp_path)
    recorder = Recorder()
    with smtp_server(
        recorder,
        tls_context=_tls_context(cert, key),
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=_authenticator,
    ) as server:
        smtp = f'username = "digest"\npassword_env = "DIGEST_SMTP_PASSWORD"\nca_file = "{cert.name}"\n'
        config, emails = setup(tmp_path, server.port, count=3, smtp=smtp)
        text = config.path.read_text().replace('security = "none"', 'security = "starttls"')
        config.path.write_text(text)
        # No password in the environment: a configuration error naming the variable.
        monkeypatch.delenv("DIGEST_SMTP_PASSWORD", raising=False)
        assert send(config) == 2
        assert "DIGEST_SMTP_PASSWORD is not set" in capsys.readouterr().err
        db = open_store(config)
        record = db.issues.get_issue(ISSUE_ID)
        assert record is not None and record.send_started_at is None  # nothing claimed or frozen
        assert db.ledger.get_claim(ISSUE_ID) is None
        db.close()
        # A wrong password: the login is refused, nothing is sent, exit 5.
        monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "wrong")
        assert send(config) == 5
        assert "refused the login of 'digest'" in capsys.readouterr().err
        assert recorder.messages == []
        # Without the CA the self-signed certificate is not trusted.
        config.path.write_text(text.replace(f'ca_file = "{cert.name}"', ""))
        monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "s3cret")
        assert send(config) == 5
        assert "certificate is not trusted" in capsys.readouterr().err
        config.path.write_text(text)
        assert send(config) == 0
    assert sorted(recorder.recipients()) == emails
    assert all(m.tls and m.authenticated for m in recorder.messages)


def test_implicit_tls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import require

    require(shutil.which("openssl"), "the openssl CLI makes the test certificate")
    cert, key = make_certificate(tmp_path)
    recorder = Recorder()
    with smtp_server(recorder, ssl_context=_tls_context(cert, key)) as server:
        config, emails = setup(tmp_path, server.port, count=2, smtp=f'ca_file = "{cert.name}"\n')
        config.path.write_text(config.path.read_text().replace('security = "none"', 'security = "tls"'))
        assert send(config) == 0
    assert sorted(recorder.recipients()) == emails


def test_4xx_replies_are_retried_until_they_succeed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()
    recorder.rcpt_replies["reader01@example.org"] = ["451 4.3.0 try again later", "421 4.7.0 busy", "250 OK"]
    recorder.rcpt_replies["reader02@example.org"] = ["450 4.2.1 mailbox busy"]  # never clears
    with smtp_server(recorder) as server:
        config, emails = setup(tmp_path, server.port, count=4)
        assert send(config) == 5
        captured = capsys.readouterr()
        out = captured.out
        assert "sent 3, already sent 0, failed 1" in out, captured.err
        assert (
            "failed reader02@example.org: 450 4.2.1 mailbox busy (still refused after 2 retries) (temporary)"
            in out
        )
        assert sorted(recorder.recipients()) == [e for e in emails if e != "reader02@example.org"]
        db = open_store(config)
        record = db.issues.get_issue(ISSUE_ID)
        assert record is not None and record.sent_at is None  # not everyone has it yet
        db.close()
        # The mailbox clears; the next run sends only to the one still without it.
        recorder.rcpt_replies.clear()
        assert send(config) == 0
        assert "sent 1, already sent 3, failed 0" in capsys.readouterr().out
    assert Counter(recorder.recipients()) == dict.fromkeys(emails, 1)


def test_5xx_replies_are_recorded_and_hard_bounces_mark_the_subscriber(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()
    recorder.rcpt_replies["reader01@example.org"] = ["550 5.1.1 <reader01@example.org>: no such user"]
    recorder.rcpt_replies["reader02@example.org"] = ["552 5.2.2 mailbox full"]
    with smtp_server(recorder) as server:
        config, emails = setup(tmp_path, server.port, count=4)
        assert send(config) == 5
    assert sorted(recorder.recipients()) == [emails[0], emails[3]]
    out = capsys.readouterr().out
    assert "sent 2, already sent 0, failed 2" in out
    assert (
        "failed reader01@example.org: 550 5.1.1 <reader01@example.org>: no such user (bounced, marked so)"
        in out
    )
    assert "failed reader02@example.org: 552 5.2.2 mailbox full (permanent)" in out
    db = open_store(config)
    bounced = db.subscribers.get_subscriber("reader01@example.org")
    assert bounced is not None and bounced.status == "bounced" and "no such user" in (bounced.reason or "")
    full = db.subscribers.get_subscriber("reader02@example.org")
    assert full is not None and full.status == "active"
    rows = {r.email: r for r in db.ledger.iter_ledger(ISSUE_ID)}
    assert rows["reader01@example.org"].status == "refused" and "550 5.1.1" in (
        rows["reader01@example.org"].detail or ""
    )
    assert rows["reader02@example.org"].status == "refused" and "552" in (
        rows["reader02@example.org"].detail or ""
    )
    # Everyone else has it and the rest were refused permanently: the issue counts as sent.
    record = db.issues.get_issue(ISSUE_ID)
    assert record is not None and record.sent_at is not None
    db.close()


def test_an_unreachable_server_is_exit_5_and_nothing_is_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = setup(tmp_path, free_port(), count=3)
    assert send(config) == 5
    captured = capsys.readouterr()
    assert "cannot be reached" in captured.err and "resumes where it stopped" in captured.err
    assert "sent 0, already sent 0, failed 0, in doubt 0, not attempted 3" in captured.out
    db = open_store(config)
    assert list(db.ledger.iter_ledger(ISSUE_ID)) == []
    assert db.ledger.get_claim(ISSUE_ID) is None
    record = db.issues.get_issue(ISSUE_ID)
    assert record is not None and record.sent_at is None
    db.close()


def test_a_refused_sender_stops_the_send_at_once_with_one_error_and_nobody_marked_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder(mail_reply="553 5.7.1 <news@blmk.example>: sender address rejected")
    with smtp_server(recorder) as server:
        config, _ = setup(tmp_path, server.port, count=20)
        assert send(config) == 5
    # pool_size 2: at most one refused MAIL FROM per connection, not one per subscriber
    assert 1 <= recorder.mail_attempts <= 2
    assert recorder.messages == []
    captured = capsys.readouterr()
    assert captured.err.count("error:") == 1
    assert "refused the sender address 'news@blmk.example': 553 5.7.1" in captured.err
    assert "[delivery] from_address" in captured.err
    assert "failed 0" in captured.out and "not attempted 20" in captured.out
    db = open_store(config)
    assert list(db.ledger.iter_ledger(ISSUE_ID)) == []
    assert all(s.status == "active" for s in db.subscribers.iter_subscribers(None))
    assert db.ledger.get_claim(ISSUE_ID) is None
    db.close()


def test_server_stopped_mid_send_then_restarted_everyone_gets_exactly_one_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = Recorder(stall_after=7)
    port = free_port()
    with smtp_server(first, port=port) as server:
        config, emails = setup(tmp_path, port, count=20)

        def stop_when_stalled() -> None:
            assert first.stalled.wait(20)
            server.stop()

        stopper = threading.Thread(target=stop_when_stalled)
        stopper.start()
        db = open_store(config)
        report = send_issue(config, db, now=NOW)
        stopper.join()
        assert report.error is not None and "cannot be reached" in report.error
        assert not report.ok and not report.completed
        assert db.ledger.sent_count(ISSUE_ID) == report.sent == len(first.messages) == 7
        db.close()
    second = Recorder()
    with smtp_server(second, port=port):
        assert send(config) == 0
        assert "sent 13, already sent 7, failed 0" in capsys.readouterr().out
    delivered = Counter(first.recipients() + second.recipients())
    assert delivered == dict.fromkeys(emails, 1)


def test_a_second_concurrent_sender_sends_nothing_twice(tmp_path: Path) -> None:
    # The server holds its replies after the first message until the second sender has had its go.
    release = threading.Event()
    recorder = Recorder(hold=release)
    with smtp_server(recorder) as server:
        config, emails = setup(tmp_path, server.port, count=30, timeout=60)
        env = {**os.environ, "DIGEST_SECRET": "smtp-test-secret"}
        command = [sys.executable, "-m", "digest", "send", "--config", str(config.path)]
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(2000):  # bounded: until the first sender is mid-send
                if recorder.recipients() or first.poll() is not None:
                    break
                threading.Event().wait(0.01)
            assert recorder.recipients(), "the first sender never got going"
            second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
            release.set()
            _, err = first.communicate(timeout=60)
        finally:
            release.set()
            if first.poll() is None:
                first.kill()
    assert first.returncode == 0, err
    assert second.returncode == 7, second.stderr + second.stdout
    assert "is being sent by another digest process" in second.stderr
    assert Counter(recorder.recipients()) == dict.fromkeys(emails, 1)
    # Both racing from the start: still one copy each (whoever loses exits 7 or finds it all sent).
    recorder2 = Recorder(delay=0.01)
    with smtp_server(recorder2) as server:
        (tmp_path / "race").mkdir()
        config, emails = setup(tmp_path / "race", server.port, count=20)
        command = [sys.executable, "-m", "digest", "send", "--config", str(config.path)]
        procs = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        codes = sorted(p.wait(timeout=60) for p in procs)
        for p in procs:
            p.communicate()
    assert codes in ([0, 0], [0, 7])
    assert Counter(recorder2.recipients()) == dict.fromkeys(emails, 1)


def test_ctrl_c_mid_send_finishes_and_records_the_messages_in_flight_then_the_rest_resumes(
    tmp_path: Path,
) -> None:
    # The server holds its replies after two messages until the sender has handled the signal.
    release = threading.Event()
    recorder = Recorder(hold=release, hold_after=2)
    with smtp_server(recorder) as server:
        config, emails = setup(tmp_path, server.port, count=12, timeout=60)
        env = {**os.environ, "DIGEST_SECRET": "smtp-test-secret"}
        command = [sys.executable, "-m", "digest", "send", "--config", str(config.path)]
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(2000):  # bounded: until two messages are in and the rest are held
                if len(recorder.recipients()) >= 2 or child.poll() is not None:
                    break
                threading.Event().wait(0.01)
            assert len(recorder.recipients()) == 2, "the sender never got going"
            child.send_signal(signal.SIGINT)
            assert child.stderr is not None
            before = []
            for line in child.stderr:  # up to the line that says the signal was handled
                before.append(line)
                if "SIGINT received" in line:
                    break
            release.set()
            out, err = child.communicate(timeout=60)
            err = "".join(before) + err
        finally:
            release.set()
            if child.poll() is None:
                child.kill()
        assert child.returncode == 130, out + err
        assert "Stopped on request" in out and "Run digest send again" in out
        first = recorder.recipients()
        assert 2 <= len(first) < len(emails)  # at most the pool's queue more than the two in
        db = open_store(config)
        assert sorted(r.email for r in db.ledger.iter_ledger(ISSUE_ID, "sent")) == sorted(first)
        assert db.ledger.get_claim(ISSUE_ID) is None
        db.close()
        assert send(config) == 0
    assert Counter(recorder.recipients()) == dict.fromkeys(emails, 1)


def test_a_dropped_connection_is_reconnected_and_retried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hang-up before the message is handed over is retried (after it, the message is in doubt:
    see test_send_doubt.py)."""
    recorder = Recorder(drop_rcpt_at=3)
    with smtp_server(recorder) as server:
        config, emails = setup(tmp_path, server.port, count=8)
        assert send(config) == 0
    captured = capsys.readouterr()
    assert "sent 8, already sent 0, failed 0" in captured.out
    assert "after: connection lost" in captured.err
    assert recorder.dropped
    assert Counter(recorder.recipients()) == dict.fromkeys(emails, 1)
    assert len({m.peer for m in recorder.messages}) >= 2  # a new connection after the drop


def test_the_issue_digest_build_makes_is_sent_personalised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The contract with render: the real built sample issue (not a test fixture) goes out personalised."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(REPO / "config.toml", site / "config.toml")
    shutil.copytree(REPO / "feeds", site / "feeds")
    recorder = Recorder()
    with smtp_server(recorder) as server:
        text = (site / "config.toml").read_text()
        text = text.replace('transport = "outbox"', 'transport = "smtp"')
        text = text.replace('host = "localhost"\nport = 587\n', f'host = "127.0.0.1"\nport = {server.port}\n')
        text = text.replace('security = "starttls"', 'security = "none"')
        (site / "config.toml").write_text(text)
        c = ["--config", str(site / "config.toml")]
        assert main(["build", *c, "--as-of", "2025-05-09T17:00:00+01:00"]) == 0
        assert main(["subscribers", "add", "jane@example.org", "--name", "Jane <Smith> & Co", *c]) == 0
        assert main(["subscribers", "add", "tom@example.org", *c]) == 0
        capsys.readouterr()
        # the shipped base_url is http://127.0.0.1:8080: a real send refuses it without the flag
        assert main(["send", *c]) == 2
        assert not recorder.messages
        assert main(["send", *c, "--allow-insecure-links"]) == 0
    assert "sent 2, already sent 0, failed 0" in capsys.readouterr().out
    by_address = {m.rcpt[0]: parse(m.data) for m in recorder.messages}
    assert sorted(by_address) == ["jane@example.org", "tom@example.org"]
    jane_text, jane_html = parts(by_address["jane@example.org"])
    tom_text, tom_html = parts(by_address["tom@example.org"])
    assert "Jane <Smith> & Co" in jane_text and "Jane &lt;Smith&gt; &amp; Co" in jane_html
    assert "<Smith>" not in jane_html
    assert "Hello there," in tom_text and "Hello there," in tom_html
    for address, message in by_address.items():
        text_part, html_part = parts(message)
        assert "%%DIGEST" not in text_part + html_part
        url = message["List-Unsubscribe"].split(">", 1)[0].lstrip("<")
        assert url.startswith("http://127.0.0.1:8080/unsubscribe?token=")
        assert url in text_part and url in html_part  # html.escape leaves this URL unchanged
        assert message["Subject"] == "BLMK Health and Care Partnership weekly news: 9 May 2025"
        assert message["To"].addresses[0].addr_spec == address
    db = open_store(site / ".digest" / "state.db")
    record = db.issues.get_issue("2025-W19")
    assert record is not None and record.sent_at is not None
    assert db.issues.sent_entry_ids()  # the issue's entries now count as sent
    db.close()


def _wait_for_line(stream: Any, text: str) -> list[str]:
    """The lines of `stream` up to and including the first one containing `text` (all of them at EOF)."""
    lines = []
    for line in stream:
        lines.append(line)
        if text in line:
            break
    return lines


def test_sigterm_while_waiting_to_retry_an_unreachable_server_stops_at_once_with_exit_130(
    tmp_path: Path,
) -> None:
    # Nothing listens on the port; the backoff would wait 60 s and more before giving up with exit 5.
    config = write_config(
        tmp_path,
        transport="smtp",
        smtp=f'host = "127.0.0.1"\nport = {free_port()}\nsecurity = "none"\npool_size = 1\n'
        "timeout = 5\nretries = 3\nretry_delay = 60\n",
    )
    make_built_issue(config)
    db = open_store(config)
    db.subscribers.upsert_subscriber("a@example.org", name="Ann", at=NOW)
    db.close()
    env = {**os.environ, "DIGEST_SECRET": "smtp-test-secret"}
    command = [sys.executable, "-m", "digest", "send", "--config", str(config.path)]
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stderr is not None
        before = _wait_for_line(child.stderr, "retrying a@example.org in 60.00 s")
        assert "retrying" in before[-1], "".join(before)
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=30)  # without waking on the signal: 60 s, then 120 s
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    err = "".join(before) + err
    assert child.returncode == 130, out + err
    assert "Stopped on request: 1 recipient(s) left" in out
    assert "cannot be reached" not in err
    assert "retrying a@example.org in 120.00 s" not in err
    db = open_store(config)
    assert list(db.ledger.iter_ledger(ISSUE_ID)) == []  # not recorded as failed: it was never tried out
    assert db.ledger.get_claim(ISSUE_ID) is None
    record = db.issues.get_issue(ISSUE_ID)
    assert record is not None and record.sent_at is None
    subscriber = db.subscribers.get_subscriber("a@example.org")
    assert subscriber is not None and subscriber.status == "active"
    db.close()
