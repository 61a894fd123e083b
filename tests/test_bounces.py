"""Bounce processing on real DSN and ARF samples: classification, matching, what it does to subscribers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from send_support import make_built_issue, write_config
from state_support import sql

from digest.cli import main
from digest.config import Config, load_config
from digest.deliver.bounces import classify_message
from digest.deliver.bounces.verp import VerpIndex, verp_address, verp_id, verp_id_of
from digest.deliver.tokens import unsubscribe_secret
from digest.errors import ConfigError
from digest.pipeline.bounces import process_bounces
from digest.state.store import open_store

SAMPLES = Path(__file__).resolve().parent / "data" / "bounces"
MANIFEST = json.loads((SAMPLES / "manifest.json").read_text(encoding="utf-8"))
NOW = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)
HARD = "sisimai/lhost-postfix-04.eml"  # Postfix, 5.1.1, kijitora@example.co.jp
SOFT = "flufl/qmail_06.txt"  # qmail, disk quota exceeded, ntl@xxx.com
COMPLAINT = "sisimai/arf-12.eml"  # ARF opt-out report, Removal-Recipient user@example.com
AUTO_REPLY = "sisimai/rfc3834-01.eml"  # an out-of-office reply
JSON_KEYS = {"source", "kind", "recipients", "status", "diagnostic", "subscriber", "issue"}


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_each_sample_is_classified_as_the_manifest_says(entry: dict[str, object]) -> None:
    got = classify_message((SAMPLES / str(entry["file"])).read_bytes())
    right = got.kind == entry["kind"] and {r.lower() for r in got.recipients} == {
        str(r).lower()
        for r in entry["recipients"]  # type: ignore[attr-defined]
    }
    if "differs" in entry:  # a known, explained disagreement with the label: it must still be one
        assert not right, f"now agrees with the label: drop 'differs' from {entry['file']} in the manifest"
    else:
        assert right, (entry, got)


def test_the_samples_come_from_many_mtas_and_at_least_95_percent_are_right() -> None:
    assert len(MANIFEST) >= 200
    kinds = {e["kind"] for e in MANIFEST}
    assert kinds == {"hard", "soft", "complaint", "auto_reply", "not_bounce"}
    right = sum("differs" not in e for e in MANIFEST)
    assert right / len(MANIFEST) >= 0.95
    assert (SAMPLES / "flufl" / "LICENSE").exists() and (SAMPLES / "sisimai" / "LICENSE").exists()


def test_status_and_diagnostic_come_from_the_delivery_status_part() -> None:
    got = classify_message((SAMPLES / HARD).read_bytes())
    assert (got.kind, got.status, got.detector) == ("hard", "5.1.1", "dsn")
    assert got.diagnostic and "550" in got.diagnostic
    assert got.original_message_id == "<A8F82EDD-E518-4F5C-8C70-BC4EFF24AB9F@example.ne.jp>"


def test_complaints_auto_replies_and_warnings_are_not_hard_bounces() -> None:
    assert classify_message((SAMPLES / COMPLAINT).read_bytes()).kind == "complaint"
    assert classify_message((SAMPLES / AUTO_REPLY).read_bytes()).kind == "auto_reply"
    warning = classify_message((SAMPLES / "flufl" / "dsn_05.txt").read_bytes())  # Action: delayed
    assert (warning.kind, warning.recipients) == ("not_bounce", ("userx@example.cz",))
    dmarc = classify_message((SAMPLES / "sisimai" / "arf-18.eml").read_bytes())  # Feedback-Type: auth-failure
    assert dmarc.kind == "not_bounce"
    jmrp = classify_message((SAMPLES / "sisimai" / "arf-22.eml").read_bytes())  # Microsoft JMRP, not ARF
    assert (jmrp.kind, jmrp.recipients) == ("complaint", ("kijitora@example.com",))


def test_malformed_input_never_raises() -> None:
    for raw in (b"", b"\x00\xff" * 100, b"Content-Type: multipart/report\r\n\r\n--", b"From: x\r\n\r\n"):
        assert classify_message(raw).kind == "not_bounce"


def test_verp_ids_are_short_signed_and_not_the_address() -> None:
    one = verp_id("secret", "Ann@Example.org")
    assert one == verp_id("secret", "ann@example.org") and len(one) == 16
    assert "ann" not in one and one != verp_id("other secret", "ann@example.org")
    address = verp_address("bounces@news.example", "secret", "ann@example.org")
    assert address == f"bounces+{one}@news.example"
    assert verp_id_of(address.upper(), "bounces@news.example") == one
    assert verp_id_of("bounces@news.example", "bounces@news.example") is None
    assert verp_id_of(f"other+{one}@news.example", "bounces@news.example") is None
    index = VerpIndex("secret", ["ann@example.org", "bob@example.org"])
    assert index.address(one) == "ann@example.org"
    assert index.address(verp_id("forged", "bob@example.org")) is None


# --- digest bounces process on a Maildir ---------------------------------------------------------------


def setup(tmp_path: Path, extra: str = "", bounces: str = "") -> tuple[Config, Path]:
    config = write_config(tmp_path, extra)
    maildir = tmp_path / "bounces"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    with config.path.open("a", encoding="utf-8") as handle:
        handle.write(f'\n[bounces]\nmaildir = "bounces"\n{bounces}\n')
    config = load_config(config.path)
    make_built_issue(config)
    return config, maildir


def deliver(maildir: Path, sample: str, name: str, *, to: str | None = None) -> None:
    raw = (SAMPLES / sample).read_bytes()
    if to is not None:  # as delivered to a VERP envelope sender: the MTA adds Delivered-To
        raw = f"Delivered-To: {to}\r\n".encode() + raw
    (maildir / "new" / name).write_bytes(raw)


def add(config: Config, *emails: str) -> None:
    db = open_store(config)
    for email in emails:
        db.subscribers.upsert_subscriber(email, name=None, at=NOW)
    db.close()


def status_of(config: Config, email: str) -> str:
    db = open_store(config)
    found = db.subscribers.get_subscriber(email)
    db.close()
    assert found is not None
    return found.status


def run_json(config: Config, capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["bounces", "process", "--config", str(config.path), "--json", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_a_hard_bounce_marks_the_subscriber_and_a_second_run_does_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, maildir = setup(tmp_path)
    add(config, "kijitora@example.co.jp", "someone@example.org")
    deliver(maildir, HARD, "1700000000.hard.host")
    deliver(maildir, AUTO_REPLY, "1700000001.away.host")

    dry = run_json(config, capsys, "--dry-run")
    assert [o["kind"] for o in dry] == ["hard", "auto_reply"]
    assert status_of(config, "kijitora@example.co.jp") == "active"
    assert sorted(p.name for p in (maildir / "new").iterdir()) == [
        "1700000000.hard.host",
        "1700000001.away.host",
    ]

    out = run_json(config, capsys)
    assert all(set(o) == JSON_KEYS for o in out)
    assert out[0] == {
        "source": "1700000000.hard.host",
        "kind": "hard",
        "recipients": ["kijitora@example.co.jp"],
        "status": "5.1.1",
        "diagnostic": out[0]["diagnostic"],
        "subscriber": "kijitora@example.co.jp",
        "issue": None,  # never sent an issue: nothing in the ledger
    }
    assert out[1]["kind"] == "auto_reply" and out[1]["subscriber"] is None
    assert status_of(config, "kijitora@example.co.jp") == "bounced"
    assert status_of(config, "someone@example.org") == "active"
    assert not list((maildir / "new").iterdir())
    assert sorted(p.name for p in (maildir / "cur").iterdir()) == [
        "1700000000.hard.host:2,S",
        "1700000001.away.host:2,S",
    ]
    assert run_json(config, capsys) == []

    capsys.readouterr()
    assert main(["subscribers", "show", "--config", str(config.path), "kijitora@example.co.jp"]) == 0
    shown = capsys.readouterr().out
    assert "status:  bounced" in shown and "5.1.1" in shown and "maildir:1700000000.hard.host" in shown


def test_a_complaint_makes_the_subscriber_complained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, maildir = setup(tmp_path)
    add(config, "user@example.com")
    deliver(maildir, COMPLAINT, "1700000000.arf.host")
    assert [o["kind"] for o in run_json(config, capsys)] == ["complaint"]
    assert status_of(config, "user@example.com") == "complained"
    db = open_store(config)
    events = list(db.bounces.events_for("user@example.com"))
    db.close()
    assert [(e.kind, e.changed_to) for e in events] == [("complaint", "complained")]
    capsys.readouterr()
    assert main(["subscribers", "list", "--config", str(config.path), "--status", "complained"]) == 0
    assert "user@example.com" in capsys.readouterr().out


def _sent(config: Config, issue_id: str, email: str, at: datetime) -> None:
    db = open_store(config)
    db.ledger.record_sent(issue_id, email, message_id=f"<{issue_id}.x@blmk.example>", at=at)
    db.close()


def test_soft_bounces_in_a_row_across_soft_limit_issues_mark_the_subscriber(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, maildir = setup(tmp_path, bounces="soft_limit = 2")
    add(config, "ntl@xxx.com")
    _sent(config, "2025-W17", "ntl@xxx.com", NOW - timedelta(days=14))
    deliver(maildir, SOFT, "1.soft.host")
    out = run_json(config, capsys)
    assert [(o["kind"], o["issue"]) for o in out] == [("soft", "2025-W17")]
    assert status_of(config, "ntl@xxx.com") == "active"
    deliver(maildir, SOFT, "2.soft.host")  # the same issue again: still one issue in the row
    run_json(config, capsys)
    assert status_of(config, "ntl@xxx.com") == "active"
    _sent(config, "2025-W18", "ntl@xxx.com", NOW - timedelta(days=7))
    deliver(maildir, SOFT, "3.soft.host")
    assert [o["issue"] for o in run_json(config, capsys)] == ["2025-W18"]
    assert status_of(config, "ntl@xxx.com") == "bounced"


def test_an_issue_without_a_soft_bounce_breaks_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, maildir = setup(tmp_path, bounces="soft_limit = 2")
    add(config, "ntl@xxx.com")
    _sent(config, "2025-W17", "ntl@xxx.com", NOW - timedelta(days=14))
    deliver(maildir, SOFT, "1.soft.host")
    run_json(config, capsys)
    _sent(config, "2025-W18", "ntl@xxx.com", NOW - timedelta(days=7))  # delivered: no bounce
    _sent(config, "2025-W19", "ntl@xxx.com", NOW)
    deliver(maildir, SOFT, "2.soft.host")
    run_json(config, capsys)
    assert status_of(config, "ntl@xxx.com") == "active"


def test_a_bounce_is_matched_by_verp_before_the_failed_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, maildir = setup(tmp_path, 'bounce_address = "bounces@blmk.example"\nverp = true')
    add(config, "kijitora@example.co.jp", "ann@example.org")
    db = open_store(config)
    secret = unsubscribe_secret(config, db)
    db.close()
    # The DSN names kijitora, but it came back to Ann's VERP address: Ann's message bounced.
    deliver(maildir, HARD, "1.verp.host", to=verp_address("bounces@blmk.example", secret, "ann@example.org"))
    forged = "bounces+" + verp_id("not the secret", "someone@example.org") + "@blmk.example"
    deliver(maildir, SOFT, "2.forged.host", to=forged)
    out = run_json(config, capsys)
    assert [(o["kind"], o["subscriber"]) for o in out] == [("hard", "ann@example.org"), ("soft", None)]
    assert status_of(config, "ann@example.org") == "bounced"
    assert status_of(config, "kijitora@example.co.jp") == "active"


def test_a_bounce_is_matched_by_the_message_id_in_the_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, maildir = setup(tmp_path)
    add(config, "ann@example.org")
    db = open_store(config)
    db.ledger.record_sent(
        "2025-W19",
        "ann@example.org",
        message_id="<A8F82EDD-E518-4F5C-8C70-BC4EFF24AB9F@example.ne.jp>",
        at=NOW,
    )
    db.close()
    deliver(maildir, HARD, "1.mid.host")
    out = run_json(config, capsys)
    assert [(o["subscriber"], o["issue"]) for o in out] == [("ann@example.org", "2025-W19")]
    assert status_of(config, "ann@example.org") == "bounced"


def test_maildir_and_flags_problems_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = setup(tmp_path)
    capsys.readouterr()
    assert (
        main(["bounces", "process", "--config", str(config.path), "--maildir", str(tmp_path / "nope")]) == 5
    )
    assert "not a Maildir folder" in capsys.readouterr().err
    assert main(["bounces", "process", "--config", str(config.path), "--maildir", "x", "--imap"]) == 2
    assert "--maildir and --imap" in capsys.readouterr().err


def test_no_mailbox_configured_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--imap` without [bounces] imap_host is a configuration problem (exit 2), not a delivery failure."""
    config, _ = setup(tmp_path)
    capsys.readouterr()
    assert main(["bounces", "process", "--config", str(config.path), "--imap"]) == 2
    assert "[bounces] imap_host is not set" in capsys.readouterr().err


def test_a_detector_tripping_prints_no_traceback(tmp_path: Path) -> None:
    """A message without a From header trips one of flufl.bounce's detectors, which logs its traceback:
    the command's output stays one line per message (the traceback is a debug line, shown with -v)."""
    config, maildir = setup(tmp_path)
    (maildir / "new" / "m1").write_bytes(b"Subject: no sender\r\n\r\nhello\r\n")
    command = [sys.executable, "-m", "digest", "bounces", "process", "--config", str(config.path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "m1: not_bounce" in done.stdout
    assert "Traceback" not in done.stderr and "Exception in detector" not in done.stderr
    (maildir / "new" / "m2").write_bytes(b"Subject: no sender\r\n\r\nhello\r\n")
    verbose = [sys.executable, "-m", "digest", "-v", *command[3:]]
    done = subprocess.run(verbose, capture_output=True, text=True, check=False, timeout=120)
    assert "flufl.bounce: Exception in detector" in done.stderr


def test_process_bounces_is_a_library_call(tmp_path: Path) -> None:
    config, maildir = setup(tmp_path)
    add(config, "kijitora@example.co.jp")
    shutil.copy(SAMPLES / HARD, maildir / "new" / "1.x.host")
    db = open_store(config)
    report = process_bounces(config, db, source="maildir", now=lambda: NOW)
    db.close()
    assert [o.changed_to for o in report.outcomes] == ["bounced"]


def test_bounces_config_is_validated_with_dotted_keys(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    text = config.path.read_text(encoding="utf-8").replace(
        "[delivery]\n", '[delivery]\nbounce_address = "not an address"\nverp = "yes"\n'
    )
    config.path.write_text(
        text + '\n[bounces]\nimap_host = "imap.example.org"\nsoft_limit = 0\ntls = "ssl"\n'
        'sns_cert_hosts = ["*"]\npassword_env = "1BAD"\nimap_port = 70000\ncolour = 1\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config.path)
    problems = "\n".join(caught.value.problems)
    for expected in (
        "delivery.bounce_address: 'not an address' is not an email address",
        "delivery.verp: must be true or false",
        "bounces.soft_limit: must be at least 1",
        "bounces.tls: must be one of 'none', 'starttls', 'tls'",
        "bounces.sns_cert_hosts[0]: '*' is not a host name pattern",
        "bounces.password_env: '1BAD' is not an environment variable name",
        "bounces.imap_user: imap_host is set",
        "bounces.imap_port: must be at most 65535, not 70000",
        "bounces.colour: unknown key",
    ):
        assert expected in problems, problems


def test_verp_needs_a_bounce_address(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        write_config(tmp_path, "verp = true")
    assert any(p.startswith("delivery.verp: needs [delivery] bounce_address") for p in caught.value.problems)


def test_the_new_status_migrates_an_existing_state(tmp_path: Path) -> None:
    import sqlite3

    from digest.state.schema import MIGRATIONS

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    for script in MIGRATIONS[:3]:
        for statement in script.split(";\n"):
            if statement.strip():
                old.execute(statement)
    old.execute("PRAGMA user_version = 3")
    old.execute(
        "INSERT INTO subscribers (email, name, status, reason, created_at, updated_at)"
        " VALUES ('Ann@Example.org', 'Ann', 'bounced', 'why', 'a', 'b')"
    )
    old.commit()
    old.close()
    db = open_store(path)
    row = sql(db).execute("SELECT * FROM subscribers WHERE email = 'ann@example.org'").fetchone()
    assert tuple(row)[:6] == ("Ann@Example.org", "Ann", "bounced", "why", "a", "b")
    assert row["token_id"]  # the rebuilt table keeps the subscription's token id
    db.subscribers.set_status("ann@example.org", "complained", at=NOW)
    with pytest.raises(sqlite3.IntegrityError):
        sql(db).execute("UPDATE subscribers SET status = 'gone'")
    db.close()


def test_run_processes_the_bounce_mailbox_first_and_status_flags_the_rates(tmp_path: Path) -> None:
    from run_site import make_site, run_cli

    from digest.pipeline.run import run_once

    as_of = datetime(2025, 5, 9, 7, tzinfo=UTC)
    config = make_site(
        tmp_path,
        [("Midwives celebrated", datetime(2025, 5, 5, 9, tzinfo=UTC))],
        extra='[bounces]\nmaildir = "bounces"\n',
        subscribers=("kijitora@example.co.jp", "ann@example.org", "bob@example.org"),
    )
    maildir = tmp_path / "bounces"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    assert run_once(config, now=as_of, as_of=as_of).outcome == "sent"
    before = json.loads(run_cli(config, "status", "--json").stdout)["issues"][0]
    assert (before["recipients"], before["hard_bounces"], before["flagged"], before["hint"]) == (
        3,
        0,
        False,
        None,
    )

    deliver(maildir, HARD, "1700000000.hard.host")  # arrives after the issue went out
    later = as_of + timedelta(days=7)
    run_once(config, now=later, as_of=later)
    assert status_of(config, "kijitora@example.co.jp") == "bounced"
    assert [p.name for p in (maildir / "cur").iterdir()] == ["1700000000.hard.host:2,S"]

    issue = json.loads(run_cli(config, "status", "--json").stdout)["issues"][-1]
    assert issue["id"] == "2025-W19"
    assert (issue["hard_bounces"], issue["soft_bounces"], issue["complaints"]) == (1, 0, 0)
    assert issue["bounce_rate"] == pytest.approx(1 / 3, abs=1e-3) and issue["flagged"] is True
    assert "digest bounces process" in issue["hint"]
    text = run_cli(config, "status").stdout
    assert "attention: issue 2025-W19: 33.3% of recipients bounced" in text


@pytest.mark.parametrize("verp", [False, True])
def test_the_envelope_sender_is_the_bounce_address_not_from(tmp_path: Path, verp: bool) -> None:
    import email as email_lib

    config = write_config(tmp_path, f'bounce_address = "bounces@blmk.example"\nverp = {str(verp).lower()}')
    make_built_issue(config)
    add(config, "ann@example.org", "bob@example.org")
    assert main(["send", "--config", str(config.path)]) == 0
    db = open_store(config)
    secret = unsubscribe_secret(config, db)
    db.close()
    seen = {}
    for path in (config.delivery.outbox / "new").iterdir():
        message = email_lib.message_from_bytes(path.read_bytes())
        seen[message["To"].strip("<>")] = (message["Return-Path"], message["From"])
    for address in ("ann@example.org", "bob@example.org"):
        return_path, sender = seen[address]
        expected = verp_address("bounces@blmk.example", secret, address) if verp else "bounces@blmk.example"
        assert return_path == f"<{expected}>"
        assert sender.endswith("<news@blmk.example>")
