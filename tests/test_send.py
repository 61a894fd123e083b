"""`digest send` through the outbox: exactly once, resume, claims, test sends, dry runs, feedback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from send_support import ISSUE_ID, NOW, SUBJECT, make_built_issue, parse, parts, write_config
from state_support import sql

from digest.cli import main
from digest.config import Config, load_config
from digest.deliver import tokens
from digest.errors import BusyError, DeliveryError, UsageError
from digest.pipeline.send import send_issue
from digest.state import to_iso
from digest.state.store import open_store


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("DIGEST_SECRET", "test-secret")
    config = write_config(tmp_path)
    make_built_issue(config)
    db = open_store(config)
    for i in range(5):
        db.subscribers.upsert_subscriber(f"reader{i}@example.org", name=f"Reader {i}", at=NOW)
    db.subscribers.upsert_subscriber("gone@example.org", name=None, at=NOW)
    db.subscribers.set_status("gone@example.org", "unsubscribed", at=NOW)
    db.subscribers.upsert_subscriber("bounced@example.org", name=None, at=NOW)
    db.subscribers.set_status("bounced@example.org", "bounced", at=NOW)
    db.close()
    return config


def outbox_messages(config: Config) -> list[bytes]:
    folder = config.delivery.outbox / "new"
    return [p.read_bytes() for p in sorted(folder.glob("*.eml"))] if folder.exists() else []


def recipients_of(config: Config) -> list[str]:
    return sorted(str(parse(m)["To"].addresses[0].addr_spec) for m in outbox_messages(config))


def run_send(config: Config, *args: str) -> int:
    return main(["send", "--config", str(config.path), *args])


def test_send_reaches_every_active_subscriber_once_and_marks_the_issue_sent(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_send(config) == 0
    out = capsys.readouterr().out
    assert f"Issue {ISSUE_ID} (the latest built issue): sent 5, already sent 0, failed 0" in out
    assert "The issue is marked sent." in out
    assert recipients_of(config) == [f"reader{i}@example.org" for i in range(5)]
    assert not list((config.delivery.outbox / "tmp").iterdir())
    db = open_store(config)
    record = db.issues.get_issue(ISSUE_ID)
    assert record is not None and record.sent_at is not None
    assert db.issues.sent_entry_ids() == {"entry-1", "entry-2"}
    assert db.ledger.sent_count(ISSUE_ID) == 5
    assert db.ledger.get_claim(ISSUE_ID) is None
    message_ids = {row.message_id for row in db.ledger.iter_ledger(ISSUE_ID)}
    db.close()
    assert message_ids == {str(parse(m)["Message-ID"]) for m in outbox_messages(config)}
    # A second run sends nobody a second copy.
    assert run_send(config) == 0
    assert "sent 0, already sent 5, failed 0" in capsys.readouterr().out
    assert len(outbox_messages(config)) == 5


def test_each_message_is_personalised_with_a_signed_unsubscribe_url(config: Config) -> None:
    assert run_send(config) == 0
    for data in outbox_messages(config):
        message = parse(data)
        address = message["To"].addresses[0].addr_spec
        text, html = parts(message)
        number = address.removeprefix("reader").split("@")[0]
        assert text.startswith(f"Hello Reader {number},")
        assert f"<p>Hello Reader {number},</p>" in html
        url = text.split("Unsubscribe: ", 1)[1].split("\n", 1)[0]
        assert url.startswith("https://news.blmk.example/unsubscribe?token=")
        assert message["List-Unsubscribe"].startswith(f"<{url}>")
        token = url.split("token=", 1)[1]
        db = open_store(config)
        subscriber = db.subscribers.get_subscriber(address)
        db.close()
        assert subscriber is not None
        assert tokens.read_unsubscribe_token("test-secret", token) == subscriber.token_id
        assert address.split("@")[0] not in token.lower()
        assert message["Subject"] == SUBJECT


def test_a_resumed_send_skips_everyone_in_the_ledger(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    db = open_store(config)
    db.ledger.record_sent(ISSUE_ID, "reader1@example.org", message_id="<x@y>", at=NOW)
    db.ledger.record_sent(ISSUE_ID, "READER3@example.org", message_id="<z@y>", at=NOW)
    db.ledger.record_failed(ISSUE_ID, "reader4@example.org", detail="451 try later", at=NOW)
    db.close()
    assert run_send(config) == 0
    assert "sent 3, already sent 2, failed 0" in capsys.readouterr().out
    assert recipients_of(config) == ["reader0@example.org", "reader2@example.org", "reader4@example.org"]


def test_send_resumes_an_interrupted_issue_before_a_newer_one_and_says_which_and_why(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    db = open_store(config)  # the send of ISSUE_ID stopped after one recipient
    db.ledger.record_sent(ISSUE_ID, "reader0@example.org", message_id="<x@y>", at=NOW)
    db.issues.mark_send_started(ISSUE_ID, NOW)
    db.close()
    make_built_issue(config, issue_id="2025-W20", subject="Week 20", built_at=NOW + timedelta(days=7))

    assert run_send(config, "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"issue {ISSUE_ID} ({SUBJECT!r}; its send was interrupted and is resumed first;" in out
    assert "issue 2025-W20 is sent after it)" in out
    assert run_send(config) == 0
    out = capsys.readouterr().out
    assert f"Issue {ISSUE_ID} (its send was interrupted and is resumed first;" in out
    assert "sent 4, already sent 1, failed 0" in out
    assert run_send(config) == 0
    assert "Issue 2025-W20 (the latest built issue): sent 5, already sent 0" in capsys.readouterr().out
    assert run_send(config) == 0
    assert "2025-W20 (the latest built issue; it was sent already, so only new subscribers get it)" in (
        capsys.readouterr().out
    )
    assert len(outbox_messages(config)) == 4 + 5


def test_a_test_send_does_not_claim_to_resume_anything(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    db = open_store(config)  # the send of ISSUE_ID stopped after one recipient
    db.ledger.record_sent(ISSUE_ID, "reader0@example.org", message_id="<x@y>", at=NOW)
    db.issues.mark_send_started(ISSUE_ID, NOW)
    db.close()
    assert run_send(config, "--to", "editor@example.org") == 0
    out = capsys.readouterr().out
    assert "is resumed first" not in out
    assert f"Issue {ISSUE_ID} (the issue digest send sends next; its interrupted send is not resumed" in out
    assert "sent 1, failed 0" in out
    db = open_store(config)
    assert db.ledger.sent_count(ISSUE_ID) == 1  # still only the one from before
    db.close()
    assert run_send(config) == 0
    capsys.readouterr()
    assert run_send(config, "--to", "editor@example.org") == 0
    out = capsys.readouterr().out
    assert f"Issue {ISSUE_ID} (the latest built issue, sent already): sent 1, failed 0" in out
    assert "only new subscribers" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--to", "bad@@x"), "--to: 'bad@@x' is not a valid address"),
        (("--issue", "2099-W01"), "no built issue '2099-W01'"),
    ],
)
def test_an_error_found_before_sending_shows_no_progress_bar(
    config: Config, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    assert run_send(config, *args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "sending" not in err and "0/?" not in err
    assert run_send(config, "--to", "editor@example.org") == 0
    assert "sending" in capsys.readouterr().err  # the bar is there once something is sent


def test_test_send_goes_only_to_the_given_addresses_and_records_nothing(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run_send(config, "--to", "reader0@example.org, editor@example.org", "--to", "boss@example.org") == 0
    )
    assert "sent 3, failed 0" in capsys.readouterr().out
    assert recipients_of(config) == ["boss@example.org", "editor@example.org", "reader0@example.org"]
    for data in outbox_messages(config):
        assert parse(data)["Subject"] == f"[TEST] {SUBJECT}"
    known = next(m for m in outbox_messages(config) if b"reader0@" in m)
    assert parts(parse(known))[0].startswith("Hello Reader 0,")
    db = open_store(config)
    record = db.issues.get_issue(ISSUE_ID)
    assert record is not None and record.sent_at is None and record.send_started_at is None
    assert list(db.ledger.iter_ledger(ISSUE_ID)) == []
    assert db.issues.sent_entry_ids() == frozenset()
    # the audit trail keeps it, as it keeps a test send from the preview (README: Audit trail)
    (event,) = db.audit.events(issue_id=ISSUE_ID)
    assert (event.action, event.actor) == ("test-send", "digest send --to")
    assert "reader0@example.org, editor@example.org, boss@example.org" in event.detail
    db.close()
    assert run_send(config, "--to", "not-an-address") == 2
    assert run_send(config, "--dry-run", "--to", "x@example.org") == 0
    with open_store(config) as db:
        assert len(db.audit.events(issue_id=ISSUE_ID)) == 1  # a dry run sends nothing and records nothing


def test_dry_run_lists_who_would_get_it_and_sends_nothing(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_send(config, "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"Dry run: the send of issue {ISSUE_ID}" in out
    assert "would go to 5 recipient(s) through the outbox" in out
    assert "reader0@example.org" not in out  # a summary: the list only on request
    assert run_send(config, "--dry-run", "--verbose") == 0
    out = capsys.readouterr().out
    for i in range(5):
        assert f"  reader{i}@example.org" in out
    assert "gone@example.org" not in out and "bounced@example.org" not in out
    listed = config.root / "recipients.txt"
    assert run_send(config, "--dry-run", "--recipients", str(listed)) == 0
    assert listed.read_text(encoding="utf-8").split() == [f"reader{i}@example.org" for i in range(5)]
    assert listed.stat().st_mode & 0o777 == 0o600  # addresses: personal data, for the owner only
    assert outbox_messages(config) == []
    db = open_store(config)
    record = db.issues.get_issue(ISSUE_ID)
    assert record is not None and record.send_started_at is None
    db.close()
    assert run_send(config, "--dry-run", "--to", "x@example.org") == 0
    assert "the test send of issue" in capsys.readouterr().out


def test_a_live_claim_makes_a_second_sender_exit_busy(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        db = open_store(config)
        holder = f"{socket.gethostname()}:{sleeper.pid}:abcd"
        db.ledger.claim_send(ISSUE_ID, holder, at=NOW)
        sql(db).execute("UPDATE send_claims SET heartbeat_at = ?", (to_iso(datetime.now(UTC)),))
        db.close()
        assert run_send(config) == 7
        assert "is being sent by another digest process" in capsys.readouterr().err
        assert outbox_messages(config) == []
    finally:
        sleeper.kill()
        sleeper.wait()
    # Its process is gone now: the claim is taken over at once and the send completes.
    assert run_send(config) == 0
    out = capsys.readouterr().out
    assert "sent 5" in out and "Resumed a send left by a stopped process" in out


def test_a_stale_claim_from_another_host_is_taken_over(config: Config) -> None:
    db = open_store(config)
    db.ledger.claim_send(ISSUE_ID, "other-host:4242:beef", at=NOW - timedelta(hours=1))
    with pytest.raises(BusyError):  # fresh enough at that time
        db.ledger.claim_send(ISSUE_ID, "me:1:cafe", at=NOW - timedelta(hours=1) + timedelta(seconds=30))
    taken = db.ledger.claim_send(ISSUE_ID, "me:1:cafe", at=NOW)
    assert taken is not None and taken.holder == "other-host:4242:beef"
    assert not db.ledger.refresh_claim(ISSUE_ID, "other-host:4242:beef", at=NOW)
    assert db.ledger.refresh_claim(ISSUE_ID, "me:1:cafe", at=NOW)
    db.close()


def test_a_changed_email_file_is_refused(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    path = config.root / "out" / ISSUE_ID / "email.html"
    path.write_text(path.read_text() + "<!-- edited -->")
    assert run_send(config) == 5
    assert "has changed since issue" in capsys.readouterr().err
    assert outbox_messages(config) == []


def test_no_issue_unknown_issue_and_no_subscribers_are_clear_errors(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    db = open_store(config)
    with pytest.raises(UsageError, match="no issue has been built"):
        send_issue(config, db, now=NOW)
    make_built_issue(config)
    with pytest.raises(UsageError, match="no built issue 'nope'"):
        send_issue(config, db, now=NOW, issue_id="nope")
    with pytest.raises(DeliveryError, match="no active subscribers"):
        send_issue(config, db, now=NOW)
    assert db.ledger.get_claim(ISSUE_ID) is None
    db.close()


def test_an_issue_without_an_unsubscribe_link_is_never_sent(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    make_built_issue(config, html="<p>Hello %%DIGEST_NAME%%</p>")
    db = open_store(config)
    db.subscribers.upsert_subscriber("a@example.org", name=None, at=NOW)
    with pytest.raises(DeliveryError, match="no unsubscribe link"):
        send_issue(config, db, now=NOW)
    db.close()


def test_publish_issue_is_called_after_a_completed_send(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, bool]] = []
    fake = types.ModuleType("digest.pipeline.web")

    def publish_issue(cfg: Config, db: object, issue_id: str) -> None:
        check = open_store(cfg.state_path)
        record = check.issues.get_issue(issue_id)
        check.close()
        calls.append((issue_id, record is not None and record.sent_at is not None))

    fake.publish_issue = publish_issue  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "digest.pipeline.web", fake)
    db = open_store(config)
    report = send_issue(config, db, now=NOW, to=("x@example.org",))
    assert calls == []  # a test send publishes nothing
    report = send_issue(config, db, now=NOW)
    db.close()
    assert report.completed and report.ok
    assert calls == [(ISSUE_ID, True)]
    assert f"published issue {ISSUE_ID} to the web archive" in report.notes


def test_progress_is_reported_for_every_message(config: Config) -> None:
    seen: list[tuple[int, int]] = []
    db = open_store(config)
    report = send_issue(config, db, now=NOW, on_progress=lambda done, total: seen.append((done, total)))
    db.close()
    assert seen == [(i, 5) for i in range(6)]
    seen.clear()
    db = open_store(config)
    send_issue(config, db, now=NOW, on_progress=lambda done, total: seen.append((done, total)))
    db.close()
    assert seen == [(0, 0)]  # nothing left to send
    assert report.sent == 5 and report.planned == 5


def test_outbox_write_failure_stops_with_exit_5_and_resumes(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() == 0:
        # root ignores folder permissions: make "new" a file so the rename fails instead
        (config.delivery.outbox / "tmp").mkdir(parents=True)
        (config.delivery.outbox / "cur").mkdir()
        (config.delivery.outbox / "new").write_text("not a folder")
    else:
        (config.delivery.outbox / "new").mkdir(parents=True)
        (config.delivery.outbox / "new").chmod(0o500)
    assert run_send(config) == 5
    err = capsys.readouterr().err
    assert "outbox" in err and "error:" in err
    db = open_store(config)
    assert db.ledger.sent_count(ISSUE_ID) == 0
    db.close()
    new = config.delivery.outbox / "new"
    if new.is_file():
        new.unlink()
    else:
        new.chmod(0o700)
    for leftover in (config.delivery.outbox / "tmp").glob("*"):
        leftover.unlink()
    assert run_send(config) == 0
    assert len(outbox_messages(config)) == 5


def test_dkim_signs_every_message_when_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import shutil

    import dkim
    from conftest import require

    openssl = shutil.which("openssl")
    require(openssl, "the openssl CLI makes the test key")
    assert openssl
    monkeypatch.setenv("DIGEST_SECRET", "test-secret")
    (tmp_path / "keys").mkdir()
    key = tmp_path / "keys" / "dkim.pem"
    subprocess.run([openssl, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        [openssl, "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    config = write_config(
        tmp_path, 'dkim_key = "keys/dkim.pem"\ndkim_selector = "digest2026"\ndkim_domain = "blmk.example"'
    )
    make_built_issue(config)
    db = open_store(config)
    db.subscribers.upsert_subscriber("a@example.org", name="A", at=NOW)
    report = send_issue(config, db, now=NOW)
    db.close()
    assert report.ok
    (data,) = outbox_messages(config)
    assert data.startswith(b"DKIM-Signature:")

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"digest2026._domainkey.blmk.example."
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    assert dkim.verify(data, dnsfunc=dns)


def test_approval_required_blocks_an_unapproved_send_but_not_a_test_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:

    monkeypatch.setenv("DIGEST_SECRET", "test-secret")
    config = write_config(tmp_path)
    config.path.write_text(config.path.read_text() + "\n[approval]\nrequired = true\n")
    config = load_config(config.path)
    make_built_issue(config)
    db = open_store(config)
    db.subscribers.upsert_subscriber("a@example.org", name="A", at=NOW)
    db.close()
    assert run_send(config) == 8
    assert "has not been approved" in capsys.readouterr().err
    assert run_send(config, "--to", "editor@example.org") == 0
    db = open_store(config)
    record = db.issues.get_issue(ISSUE_ID)
    assert record is not None
    db.approvals.record_approval(
        issue_id=ISSUE_ID,
        approved_by="editor",
        approved_at=NOW,
        html_sha256=record.html_sha256,
        text_sha256=record.text_sha256,
    )
    db.close()
    assert run_send(config) == 0
    assert recipients_of(config) == ["a@example.org", "editor@example.org"]


def test_the_heartbeat_keeps_the_claim_fresh_and_notices_a_take_over(config: Config) -> None:
    import threading

    from digest.deliver.issue import Heartbeat

    db = open_store(config)
    clock = [NOW]
    db.ledger.claim_send(ISSUE_ID, "me:1:a", at=NOW)
    with Heartbeat(db, ISSUE_ID, "me:1:a", lambda: clock[0], every=timedelta(seconds=0.01)) as beat:
        clock[0] = NOW + timedelta(minutes=1)
        for _ in range(500):  # bounded: until the heartbeat has moved on
            claim = db.ledger.get_claim(ISSUE_ID)
            if claim is not None and claim.heartbeat_at == clock[0]:
                break
            threading.Event().wait(0.01)
        assert claim is not None and claim.heartbeat_at == clock[0]
        assert not beat.lost
        # Another process takes the claim over (as if ours had gone stale): the heartbeat notices.
        db.ledger.claim_send(ISSUE_ID, "other:2:b", at=NOW + timedelta(hours=1))
        for _ in range(500):
            if beat.lost:
                break
            threading.Event().wait(0.01)
        assert beat.lost
    db.close()


def test_a_sender_whose_claim_is_taken_over_stops_before_its_next_message(config: Config) -> None:
    """The claim is checked before every hand-over, not only at the next heartbeat."""
    other = open_store(config)

    def take_over_after_two(done: int, planned: int) -> None:
        if done == 2:  # another process decides our claim is stale and takes the issue over
            other.ledger.claim_send(ISSUE_ID, "other-host:1:x", at=NOW + timedelta(hours=1))

    db = open_store(config)
    report = send_issue(config, db, now=NOW, on_progress=take_over_after_two)
    assert report.sent == 2
    assert report.error is not None
    assert "another process took over" in report.error
    assert len(recipients_of(config)) == 2
    assert db.ledger.get_claim(ISSUE_ID) is not None  # the new holder's claim is left alone


def test_a_recipient_served_by_another_sender_meanwhile_is_skipped(config: Config) -> None:
    other = open_store(config)

    def serve_reader4_elsewhere(done: int, planned: int) -> None:
        if done == 1:  # after our page of pending recipients was read
            other.ledger.record_sent(ISSUE_ID, "reader4@example.org", message_id="<elsewhere@x>", at=NOW)

    db = open_store(config)
    report = send_issue(config, db, now=NOW, on_progress=serve_reader4_elsewhere)
    assert report.error is None
    assert recipients_of(config) == [f"reader{i}@example.org" for i in range(4)]
    assert db.ledger.ledger_entry(ISSUE_ID, "reader4@example.org").message_id == "<elsewhere@x>"
