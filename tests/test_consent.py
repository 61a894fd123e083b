"""Issue 14: suppression that sticks, consent records, data rights (export/forget), imports people have."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from email_validator import validate_email
from hypothesis import given, settings
from hypothesis import strategies as st
from send_support import write_config
from state_support import sql

from digest.cli import main
from digest.deliver.audience import _plain_address, add_subscriber, import_csv, normalise_address
from digest.errors import UsageError
from digest.state.consent import wording_sha256
from digest.state.store import Store, open_store

MAY = datetime(2025, 5, 12, 9, 30, tzinfo=UTC)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    write_config(tmp_path)
    return tmp_path / "config.toml"


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"DNS lookup attempted: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def store_of(config_path: Path) -> Store:
    return open_store(config_path.parent / ".digest" / "state.db")


def status_of(config_path: Path, email: str) -> str | None:
    with store_of(config_path) as db:
        found = db.subscribers.get_subscriber(email)
        return found.status if found else None


def test_add_remove_import_never_quietly_resubscribes(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reproduction from the issue: add, remove, import printed "added 1"."""
    c = ["--config", str(config_path)]
    assert main(["subscribers", "add", "b@example.org", *c]) == 0
    assert main(["subscribers", "remove", "b@example.org", *c]) == 0
    with store_of(config_path) as db:
        found = db.subscribers.get_subscriber("b@example.org")
        assert found is not None and found.status == "unsubscribed" and found.reason == "removed by operator"
        sql(db).execute(
            "UPDATE subscribers SET status_at = ? WHERE email = 'b@example.org'", (MAY.isoformat(),)
        )
    re_csv = tmp_path / "re.csv"
    re_csv.write_text("email\nb@example.org\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["subscribers", "import", str(re_csv), "--consent", "event list", *c]) == 0
    out = capsys.readouterr()
    assert "added 0" in out.out and "suppressed 1" in out.out
    assert f"{re_csv}:2: b@example.org: suppressed: unsubscribed on 12 May 2025" in out.err
    assert status_of(config_path, "b@example.org") == "unsubscribed"
    assert main(["subscribers", "add", "b@example.org", *c]) == 2
    assert "suppressed: unsubscribed on 12 May 2025" in capsys.readouterr().err
    assert status_of(config_path, "b@example.org") == "unsubscribed"


@pytest.mark.parametrize("status", ["unsubscribed", "bounced", "complained"])
def test_every_suppressing_status_sticks_until_resubscribe(tmp_path: Path, status: str) -> None:
    db = open_store(tmp_path / "state.db")
    add_subscriber(db, "p@example.org", name=None, at=MAY)
    db.subscribers.set_status("p@example.org", status, at=MAY + timedelta(days=1), reason="test")
    people = tmp_path / "p.csv"
    people.write_text("email\np@example.org\n", encoding="utf-8")
    report = import_csv(db, people, at=MAY + timedelta(days=2), consent="list")
    assert [s.why for s in report.suppressed] == [f"{status} on 13 May 2025"]
    with pytest.raises(UsageError, match=f"suppressed: {status} on 13 May 2025"):
        add_subscriber(db, "p@example.org", name=None, at=MAY + timedelta(days=2))
    found = db.subscribers.get_subscriber("p@example.org")
    assert found is not None and found.status == status
    report = import_csv(db, people, at=MAY + timedelta(days=3), consent="asked again", resubscribe=True)
    assert report.resubscribed == 1
    found = db.subscribers.get_subscriber("p@example.org")
    assert found is not None and found.status == "active" and found.consent is not None
    assert found.consent.method == "resubscribe"
    assert found.consent.wording_sha256 == wording_sha256("asked again")
    # Every transition is in the history: active (cli), the status, active again (resubscribe).
    assert [(h.status, h.reason) for h in db.subscribers.history("p@example.org")] == [
        ("active", "cli"),
        (status, "test"),
        ("active", "resubscribe"),
    ]
    db.close()


def test_status_transitions_and_status_at(tmp_path: Path) -> None:
    db = open_store(tmp_path / "state.db")
    add_subscriber(db, "q@example.org", name="Q", at=MAY)
    steps = ["unsubscribed", "active", "bounced", "active", "complained", "active"]
    for day, status in enumerate(steps, start=1):
        assert db.subscribers.set_status("q@example.org", status, at=MAY + timedelta(days=day))  # type: ignore[arg-type]
        found = db.subscribers.get_subscriber("q@example.org")
        assert found is not None and found.status == status and found.status_at == MAY + timedelta(days=day)
    # A name change is not a status change: status_at stays.
    db.subscribers.upsert_subscriber(
        "q@example.org", name="Quinn", at=MAY + timedelta(days=30), reactivate=False
    )
    found = db.subscribers.get_subscriber("q@example.org")
    assert found is not None and found.status_at == MAY + timedelta(days=6)
    assert [h.status for h in db.subscribers.history("q@example.org")] == ["active", *steps]
    db.close()


def test_import_needs_consent_and_records_it(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = ["--config", str(config_path)]
    people = tmp_path / "stand.csv"
    people.write_text("email,name\nann@example.org,Ann\n", encoding="utf-8")
    assert main(["subscribers", "import", str(people), *c]) == 2
    err = capsys.readouterr().err
    assert "an import needs --consent" in err and "hint:" in err
    wording = "Signed up at our stand, Leeds, March 2025"
    assert main(["subscribers", "import", str(people), "--consent", wording, *c]) == 0
    with store_of(config_path) as db:
        found = db.subscribers.get_subscriber("ann@example.org")
        assert found is not None and found.consent is not None
        assert found.consent.method == "import" and found.consent.source == "stand.csv"
        assert db.consent.wording(found.consent.wording_sha256 or "") == wording
        # The wording is stored once however many people rely on it.
        rows = sql(db).execute("SELECT count(*) FROM consent_texts").fetchone()
        assert rows[0] == 1
    capsys.readouterr()
    assert main(["subscribers", "show", "ann@example.org", *c]) == 0
    out = capsys.readouterr().out
    assert "consent: import at 20" in out and wording in out and wording_sha256(wording) in out
    assert "source:  stand.csv" in out and "status history: 1" in out


def test_add_records_cli_consent(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["--config", str(config_path)]
    assert main(["subscribers", "add", "tom@example.org", "--consent", "Asked by phone", *c]) == 0
    with store_of(config_path) as db:
        found = db.subscribers.get_subscriber("tom@example.org")
        assert found is not None and found.consent is not None and found.consent.method == "cli"
        assert db.consent.wording(found.consent.wording_sha256 or "") == "Asked by phone"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Email Address;First Name;Last Name\nann@example.org;Ann;Lee\n", "Ann Lee"),
        ("E-mail\tName\nann@example.org\tAnn Lee\n", "Ann Lee"),
        ("email_address,First Name\nann@example.org,Ann\n", "Ann"),
        ("Name,Email Address\nAnn Lee,ann@example.org\n", "Ann Lee"),
    ],
)
def test_csv_dialects_and_header_aliases(tmp_path: Path, text: str, expected: str) -> None:
    people = tmp_path / "export.csv"
    people.write_text(text, encoding="utf-8")
    db = open_store(tmp_path / "state.db")
    report = import_csv(db, people, at=MAY, consent="export")
    assert report.added == 1, report
    found = db.subscribers.get_subscriber("ann@example.org")
    assert found is not None and found.name == expected
    db.close()


def test_list_streams_json_and_csv(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["--config", str(config_path)]
    for who in ("a@example.org", "b@example.org"):
        assert main(["subscribers", "add", who, "--name", 'A, "quoted"', *c]) == 0
    capsys.readouterr()
    assert main(["subscribers", "list", "--json", *c]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["email"] for r in lines] == ["a@example.org", "b@example.org"]
    assert lines[0]["name"] == 'A, "quoted"' and lines[0]["status"] == "active"
    assert main(["subscribers", "list", "--csv", *c]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "email,name,status,reason,since" and out[1].startswith('a@example.org,"A, ""quoted"""')


def test_export_holds_everything(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = ["--config", str(config_path)]
    assert main(["subscribers", "add", "ann@example.org", "--name", "Ann", "--consent", "By phone", *c]) == 0
    with store_of(config_path) as db:
        db.ledger.record_sent("2025-W19", "ann@example.org", message_id="<m1@x>", at=MAY)
    out_file = tmp_path / "ann.json"
    assert main(["subscribers", "export", "ann@example.org", "-o", str(out_file), *c]) == 0
    data = json.loads(out_file.read_text(encoding="utf-8"))
    assert data["profile"]["email"] == "ann@example.org" and data["profile"]["name"] == "Ann"
    assert data["consent"]["consent_method"] == "cli" and data["consent"]["consent_wording"] == "By phone"
    assert data["status_history"][0]["status"] == "active"
    assert data["issues_sent"] == [{"issue": "2025-W19", "status": "sent", "at": MAY.isoformat()}]
    assert main(["subscribers", "export", "nobody@example.org", *c]) == 2


def test_export_and_show_hold_tags_and_the_export_is_private(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tags (the audiences of [[editions]]) are held about the person, so a subject access export and
    `show` include them; the export file, like `send --recipients`, is readable by its owner only."""
    c = ["--config", str(config_path)]
    assert main(["subscribers", "add", "ann@example.org", "--name", "Ann", "--consent", "By phone", *c]) == 0
    assert main(["subscribers", "tag", "ann@example.org", "staff", "partners", *c]) == 0
    out_file = tmp_path / "ann.json"
    out_file.write_text("old", encoding="utf-8")
    out_file.chmod(0o644)
    assert main(["subscribers", "export", "ann@example.org", "-o", str(out_file), *c]) == 0
    assert json.loads(out_file.read_text(encoding="utf-8"))["profile"]["tags"] == ["partners", "staff"]
    assert out_file.stat().st_mode & 0o777 == 0o600
    capsys.readouterr()
    assert main(["subscribers", "show", "ann@example.org", *c]) == 0
    assert "tags:    partners, staff" in capsys.readouterr().out
    missing = tmp_path / "no-such-folder" / "ann.json"
    assert main(["subscribers", "export", "ann@example.org", "-o", str(missing), *c]) == 2
    assert f"{missing}: cannot write" in capsys.readouterr().err


def test_forget_leaves_no_trace_in_the_file_or_wal(
    config_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    c = ["--config", str(config_path)]
    address = "zed.forgettable@example.org"
    assert (
        main(["subscribers", "add", address, "--name", "Zebedee Uniquename", "--consent", "Zed consent", *c])
        == 0
    )
    state_file = config_path.parent / ".digest" / "state.db"
    with store_of(config_path) as db:
        db.ledger.record_failed(
            "2025-W19", address, detail=f"550 <{address}> no such user", permanent=True, at=MAY
        )
        db.subscribers.set_status(address, "bounced", at=MAY, reason=f"550 <{address}>")
        db.bounces.record_event(
            at=MAY,
            source="maildir:x",
            kind="hard",
            email=address,
            issue_id="2025-W19",
            status="5.1.1",
            diagnostic=f"no mailbox {address}",
            changed_to="bounced",
        )
        db.tags.add_tags(address, ["gp-practices"])
        db.signups.start(  # a change of address the person started and never confirmed
            "zed.newaddress@example.org",
            name="Zebedee Uniquename",
            method="change",
            at=MAY,
            min_gap=timedelta(minutes=10),
            old_email=address,
        )
        db.signups.start(
            "zed.forgettable.pending@example.org", name=None, method="form", at=MAY, min_gap=timedelta(0)
        )
        db.audit.record(
            at=MAY,
            issue_id="2025-W19",
            actor="comms",
            action="test-send",
            detail=f"sent a test to {address.upper()}, staff@example.org (2 sent)",
            content=False,
        )
    assert address.encode() in state_file.read_bytes() + _wal(state_file)  # the test can fail
    with caplog.at_level(logging.INFO):
        assert main(["subscribers", "forget", address.upper(), *c]) == 0
    assert address not in caplog.text.lower() and "zed.forgettable" not in caplog.text.lower()
    data = state_file.read_bytes() + _wal(state_file)
    for trace in (b"zed.forgettable@", b"ZED.FORGETTABLE@", b"zed.newaddress", b"Zebedee Uniquename"):
        assert trace not in data
    with store_of(config_path) as db:
        assert db.subscribers.get_subscriber(address) is None
        assert db.tags.tags_of(address) == ()
        assert db.signups.get("zed.newaddress@example.org") is None
        assert db.signups.get("zed.forgettable.pending@example.org") is not None  # another address
        (event,) = db.audit.events(issue_id="2025-W19")
        assert "staff@example.org (2 sent)" in event.detail and "forgotten:" in event.detail
        assert db.ledger.status_counts("2025-W19")["refused"] == 1  # the counts stay right
    # Only a keyed hash is kept: a later import or add still refuses the address.
    capsys.readouterr()
    assert main(["subscribers", "add", address, *c]) == 2
    assert "suppressed: erased on request on" in capsys.readouterr().err
    assert main(["subscribers", "add", "--resubscribe", address, *c]) == 0
    assert status_of(config_path, address) == "active"


def test_forget_erases_an_address_that_only_signed_up(store: Store) -> None:
    from digest.pipeline.subscribers import forget_subscriber

    store.signups.start("pat@example.org", name="Pat", method="form", at=MAY, min_gap=timedelta(0))
    assert forget_subscriber(store, "PAT@example.org", now=MAY) == 0
    assert store.signups.get("pat@example.org") is None
    with pytest.raises(UsageError):
        forget_subscriber(store, "pat@example.org", now=MAY)


def _wal(state_file: Path) -> bytes:
    wal = state_file.with_name(state_file.name + "-wal")
    return wal.read_bytes() if wal.exists() else b""


@settings(max_examples=300, deadline=None)
@given(
    local=st.from_regex(r"[A-Za-z0-9_%+.-]{1,70}", fullmatch=True),
    domain=st.from_regex(
        r"[A-Za-z0-9.-]{1,30}\.(org|COM|example|test|local|xn--p1ai|a|museum)", fullmatch=True
    ),
)
def test_the_fast_address_check_agrees_with_email_validator(local: str, domain: str) -> None:
    """The shortcut for common addresses accepts only what email-validator accepts, in the same form."""
    value = f"{local}@{domain}"
    fast = _plain_address(value)
    if fast is None:
        return
    assert fast == validate_email(value, check_deliverability=False, allow_smtputf8=False).ascii_email


@pytest.mark.parametrize(
    "value", ["Jane.Doe+news@Example.ORG", "a@b.co", "x_y%z@mail-1.sub.example.org", "a@a.museum"]
)
def test_common_addresses_take_the_fast_check(value: str) -> None:
    assert _plain_address(value) == validate_email(value, check_deliverability=False).ascii_email


@pytest.mark.parametrize("value", ["WWW@0.org", "PostMaster@Example.org", "Abuse@example.org"])
def test_role_mailboxes_take_the_full_check_which_lowercases_them(value: str) -> None:
    assert _plain_address(value) is None
    assert normalise_address(value) == validate_email(value, check_deliverability=False).ascii_email


@pytest.mark.parametrize(
    "value", ["a..b@example.org", ".a@example.org", "a@example.local", "a@xn--p1ai.org", "a@-x.org", "a@x"]
)
def test_unusual_addresses_take_the_full_check(value: str) -> None:
    assert _plain_address(value) is None


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    from digest.state.backend import open_database

    if request.param == "sqlite":
        database = open_database(path=tmp_path / "state.db")
    else:
        database = open_database(path=tmp_path / "unused.db", url=request.getfixturevalue("postgres_db"))
    with Store(database) as opened:
        yield opened


def test_suppression_consent_signups_and_forget_on_both_backends(store: Store, tmp_path: Path) -> None:
    """The same operations, the same results, on SQLite and PostgreSQL (there forget deletes the rows;
    what VACUUM does with the space is in the README)."""
    from digest.pipeline.subscribers import export_subscriber, forget_subscriber

    people = tmp_path / "p.csv"
    people.write_text("E-mail\tName\nAnn@Example.org\tAnn\nbob@example.org\tBob\n", encoding="utf-8")
    assert import_csv(store, people, at=MAY, consent="fair").added == 2
    store.subscribers.set_status("bob@example.org", "complained", at=MAY, reason="abuse report")
    again = import_csv(store, people, at=MAY + timedelta(days=1), consent="fair")
    assert [s.why for s in again.suppressed] == ["complained on 12 May 2025"]
    store.ledger.record_sent("2025-W19", "ann@example.org", message_id="<m@x>", at=MAY)
    data = export_subscriber(store, "ANN@example.org")
    assert data["consent"]["consent_wording"] == "fair" and data["issues_sent"][0]["issue"] == "2025-W19"
    signup = store.signups.start(
        "new@example.org", name=None, method="form", at=MAY, min_gap=timedelta(minutes=10)
    )
    assert signup is not None and store.signups.by_token(signup.token_id) == signup
    assert (
        store.signups.start(
            "NEW@example.org", name=None, method="form", at=MAY, min_gap=timedelta(minutes=10)
        )
        is None
    )
    assert forget_subscriber(store, "ann@example.org", now=MAY) == 1
    assert store.subscribers.get_subscriber("ann@example.org") is None
    assert store.ledger.sends_to("ann@example.org") == []
    assert store.ledger.sent_count("2025-W19") == 1
    with pytest.raises(UsageError, match="erased on request on 12 May 2025"):
        add_subscriber(store, "ann@example.org", name=None, at=MAY)


def test_forget_redacts_only_the_whole_address_in_the_audit_trail(store: Store) -> None:
    """Forgetting an@example.org must not rewrite joan@example.org (nor an@example.org.uk) in an audit
    line; `_` and `%` in an address are not wildcards; a sentence's full stop still ends the address."""
    from digest.pipeline.subscribers import forget_subscriber

    def note(detail: str) -> int:
        return store.audit.record(
            at=MAY, issue_id="2025-W19", actor="ed", action="test-send", detail=detail, content=False
        )

    both = note("test copy to joan@example.org, An@Example.org")
    others = note("test copy to joan@example.org and an@example.org.uk and dan@example.org")
    stop = note("test copy to AN@example.org.")
    wild = note("test copy to axn@example.org, a%b@example.org-x.net, ann+an@example.org")
    add_subscriber(store, "an@example.org", name=None, at=MAY)
    forget_subscriber(store, "an@example.org", now=MAY)
    detail = {e.id: e.detail for e in store.audit.events(limit=10)}
    hashed = "forgotten:" + store.consent.address_hash("an@example.org")[:32]
    assert detail[both] == f"test copy to joan@example.org, {hashed}"
    assert detail[others] == "test copy to joan@example.org and an@example.org.uk and dan@example.org"
    assert detail[stop] == f"test copy to {hashed}."
    # LIKE wildcards and regex characters in the erased address match only themselves.
    assert store.audit.redact_address("a_n@example.org", "gone") == 0
    assert store.audit.redact_address("a%b@example.org", "gone") == 0
    assert store.audit.redact_address("a.n@example.org", "gone") == 0
    assert store.audit.redact_address("a%b@example.org-x.net", "gone") == 1
    after = {e.id: e.detail for e in store.audit.events(limit=10)}
    assert after[wild] == "test copy to axn@example.org, gone, ann+an@example.org"


def test_import_reports_progress(tmp_path: Path) -> None:
    people = tmp_path / "many.csv"
    people.write_text("email\n" + "".join(f"p{i}@example.org\n" for i in range(12_000)), encoding="utf-8")
    seen: list[tuple[int, int]] = []
    with open_store(tmp_path / "state.db") as db:
        report = import_csv(db, people, at=MAY, consent="list", progress=lambda d, t: seen.append((d, t)))
    assert report.added == 12_000
    assert seen == [(5000, 12_000), (10_000, 12_000), (12_000, 12_000)]
