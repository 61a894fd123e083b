"""What a relay's operator expects of `digest send`: one failed login per run, a permanent refusal is
final for that issue, certificates and keys kept where the system keeps them, staff domains."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from send_support import ISSUE_ID, NOW, Recorder, make_built_issue, smtp_server, write_config

from digest.cli import main
from digest.config import Config, load_config
from digest.errors import ConfigError
from digest.state.store import open_store

pytestmark = pytest.mark.smtp


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", "relay-test-secret")
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "wrong")


def setup(root: Path, port: int, *, count: int, smtp: str = "", retries: int = 2) -> tuple[Config, list[str]]:
    config = write_config(
        root,
        transport="smtp",
        smtp=f'host = "127.0.0.1"\nport = {port}\nsecurity = "none"\npool_size = 4\n'
        f"rate_per_second = 1000\ntimeout = 10\nretries = {retries}\nretry_delay = 0.02\n{smtp}",
    )
    make_built_issue(config)
    db = open_store(config)
    emails = [f"reader{i:02d}@example.org" for i in range(count)]
    for address in emails:
        db.subscribers.upsert_subscriber(address, name=None, at=NOW)
    db.close()
    return config, emails


def send(config: Config, *args: str) -> int:
    return main(["send", "--config", str(config.path), *args])


class RefusingAuthenticator:
    """Refuses every login and counts the attempts the server saw."""

    def __init__(self) -> None:
        self.attempts = 0
        self.mechanisms: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        with self._lock:
            self.attempts += 1
            self.mechanisms.append(mechanism)
        return AuthResult(success=False, handled=False)


def test_a_refused_login_stops_the_send_after_the_first_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()
    auth = RefusingAuthenticator()
    with smtp_server(recorder, authenticator=auth, auth_require_tls=False) as server:
        config, _ = setup(
            tmp_path,
            server.port,
            count=8,
            smtp='username = "digest"\npassword_env = "DIGEST_SMTP_PASSWORD"',
        )
        assert send(config) == 5
    captured = capsys.readouterr()
    assert auth.attempts == 1, auth.mechanisms  # not 4 connections x (PLAIN, LOGIN)
    assert "refused the login of 'digest'" in captured.err
    assert recorder.messages == [] and recorder.mail_attempts == 0
    db = open_store(config)
    assert list(db.ledger.iter_ledger(ISSUE_ID)) == []  # nobody marked failed
    db.close()


def test_a_permanent_refusal_is_final_for_the_issue_unless_retry_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = "reader01@example.org"
    recorder = Recorder(rcpt_replies={refused: ["550 5.7.1 Message rejected by policy"]})
    with smtp_server(recorder) as server:
        config, emails = setup(tmp_path, server.port, count=4)
        assert send(config) == 5
        out = capsys.readouterr().out
        assert f"failed {refused}: 550 5.7.1 Message rejected by policy (permanent)" in out
        assert "The issue is marked sent." in out
        assert recorder.rcpt_attempts[refused] == 1

        # A later send does not try that recipient again: nothing to do, exit 0.
        assert send(config) == 0
        out = capsys.readouterr().out
        assert "sent 0, already sent 3, failed 0" in out
        assert "1 recipient(s) refused permanently by an earlier send were not tried again" in out
        assert recorder.rcpt_attempts[refused] == 1
        assert send(config, "--dry-run") == 0
        out = capsys.readouterr().out
        assert "would go to 0 recipient(s)" in out and "--retry-failed includes them" in out

        # Unless asked: --retry-failed tries it again (still refused here).
        assert send(config, "--retry-failed") == 5
        assert recorder.rcpt_attempts[refused] == 2
        capsys.readouterr()
    assert sorted(recorder.recipients()) == [e for e in emails if e != refused]
    db = open_store(config)
    row = db.ledger.ledger_entry(ISSUE_ID, refused)
    assert row is not None and row.status == "refused" and "5.7.1" in (row.detail or "")
    subscriber = db.subscribers.get_subscriber(refused)
    assert subscriber is not None and subscriber.status == "active"  # 5.7.x is not a hard bounce
    record = db.issues.get_issue(ISSUE_ID)
    assert record is not None and record.sent_at is not None
    db.close()


def test_a_temporary_failure_is_still_retried_by_the_next_send(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    busy = "reader02@example.org"
    recorder = Recorder(rcpt_replies={busy: ["450 4.2.0 Mailbox busy", "450 4.2.0 Mailbox busy", "250"]})
    with smtp_server(recorder) as server:
        config, emails = setup(tmp_path, server.port, count=3, retries=1)
        assert send(config) == 5
        assert send(config) == 0
    capsys.readouterr()
    assert sorted(recorder.recipients()) == emails


def _config_with(root: Path, smtp: str = "", delivery: str = "") -> Config:
    site = root / "site"
    site.mkdir()
    return write_config(site, delivery, transport="smtp", smtp=smtp)


def test_ca_file_and_dkim_key_may_be_absolute_paths_outside_the_config_folder(tmp_path: Path) -> None:
    elsewhere = tmp_path / "etc" / "ssl"
    elsewhere.mkdir(parents=True)
    (elsewhere / "ca.pem").write_text("not parsed by the config check\n")
    (elsewhere / "dkim.key").write_text("not parsed by the config check\n")
    config = _config_with(
        tmp_path,
        smtp=f'ca_file = "{elsewhere / "ca.pem"}"',
        delivery=f'dkim_key = "{elsewhere / "dkim.key"}"\ndkim_selector = "s1"',
    )
    assert config.smtp.ca_file == elsewhere / "ca.pem"
    assert config.delivery.dkim_key == elsewhere / "dkim.key"


def test_a_relative_path_still_stays_inside_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x\n")
    with pytest.raises(ConfigError) as raised:
        _config_with(tmp_path, smtp='ca_file = "../ca.pem"')
    assert any("smtp.ca_file" in p and "outside the config folder" in p for p in raised.value.problems)


def test_an_absolute_path_that_does_not_exist_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        _config_with(tmp_path, smtp=f'ca_file = "{tmp_path / "nowhere" / "ca.pem"}"')
    assert any("smtp.ca_file" in p and "does not exist" in p for p in raised.value.problems)


def test_staff_domains_need_allow_special_domains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    c = ["--config", str(config.path)]
    assert main(["subscribers", "add", "ann@staff.local", *c]) != 0
    assert "allow_special_domains" in capsys.readouterr().err
    (tmp_path / "staff.csv").write_text("email\nbob@hr.local\ncat@it.internal\n")
    assert main(["subscribers", "import", str(tmp_path / "staff.csv"), "--consent", "staff list", *c]) == 0
    assert "rejected 'bob@hr.local'" in capsys.readouterr().err

    text = config.path.read_text() + "\n[subscribers]\nallow_special_domains = true\n"
    config.path.write_text(text)
    assert load_config(config.path).subscribers.allow_special_domains
    assert main(["subscribers", "add", "Ann@Staff.LOCAL", *c]) == 0
    assert "Ann@staff.local: added" in capsys.readouterr().out
    assert main(["subscribers", "import", str(tmp_path / "staff.csv"), "--consent", "staff list", *c]) == 0
    assert "added 1, updated 0, unchanged 1, rejected 0" in capsys.readouterr().out
    assert main(["subscribers", "add", "dan@host.test", *c]) != 0  # other special names stay refused
    assert main(["subscribers", "remove", "ann@staff.local", *c]) == 0
    db = open_store(config)
    assert db.subscribers.get_subscriber("bob@hr.local") is not None
    db.close()
