"""`digest subscribers import|add|remove|list`: validation without DNS, line numbers, statuses kept."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from send_support import write_config

from digest.cli import main
from digest.state.store import open_store


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    write_config(tmp_path)
    return tmp_path / "config.toml"


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any DNS lookup during validation fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"DNS lookup attempted: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "gethostbyname", refuse)


def state(config_path: Path) -> dict[str, tuple[str | None, str]]:
    db = open_store(config_path.parent / ".digest" / "state.db")
    try:
        return {s.email: (s.name, s.status) for s in db.subscribers.iter_subscribers()}
    finally:
        db.close()


def test_import_reports_bad_rows_with_line_numbers_and_counts(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "\ufeffEmail,Name\n"
        "jane@example.org,Jane Smith\n"
        "not-an-address,Nobody\n"
        "\n"
        '"tom@example.org","Tom\nJerry"\n'
        "JANE@example.org,Jane again\n"
        "bad@@example.org,\n"
        "zoe@bücher.example,Zoë\n"
        "josé@example.org,José\n"
        ",\n",
        encoding="utf-8",
    )
    assert (
        main(
            ["subscribers", "import", str(csv_file), "--consent", "staff list", "--config", str(config_path)]
        )
        == 0
    )
    out = capsys.readouterr()
    assert f"{csv_file}: added 3, updated 0, unchanged 0, rejected 4" in out.out
    assert f"{csv_file}:3: rejected 'not-an-address'" in out.err
    assert f"{csv_file}:7: rejected 'JANE@example.org': the same address as line 2" in out.err
    assert f"{csv_file}:8: rejected 'bad@@example.org'" in out.err
    assert f"{csv_file}:10: rejected 'josé@example.org'" in out.err
    people = state(config_path)
    assert people["jane@example.org"] == ("Jane Smith", "active")
    assert people["tom@example.org"] == ("Tom Jerry", "active")  # the line break in the name is gone
    assert people["zoe@xn--bcher-kva.example"] == ("Zoë", "active")


def test_reimport_updates_names_and_never_resubscribes(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email,name\na@example.org,A\nb@example.org,B\n", encoding="utf-8")
    assert (
        main(
            ["subscribers", "import", str(csv_file), "--consent", "staff list", "--config", str(config_path)]
        )
        == 0
    )
    db = open_store(config_path.parent / ".digest" / "state.db")
    db.subscribers.set_status("b@example.org", "unsubscribed", at=datetime.now(UTC))
    db.close()
    csv_file.write_text("email,name\na@example.org,Alice\nb@example.org,B\nc@example.org\n", encoding="utf-8")
    capsys.readouterr()
    assert (
        main(
            ["subscribers", "import", str(csv_file), "--consent", "staff list", "--config", str(config_path)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "added 1, updated 1, unchanged 0, rejected 0, suppressed 1" in out
    assert "1 of them unsubscribed, bounced, complained or were erased earlier and stay so" in out
    people = state(config_path)
    assert people["a@example.org"] == ("Alice", "active")
    assert people["b@example.org"] == ("B", "unsubscribed")
    assert people["c@example.org"] == (None, "active")


def test_import_without_an_email_column_is_a_usage_error(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("address,name\na@example.org,A\n", encoding="utf-8")
    assert (
        main(
            ["subscribers", "import", str(csv_file), "--consent", "staff list", "--config", str(config_path)]
        )
        == 2
    )
    assert "'email' column" in capsys.readouterr().err
    assert (
        main(
            [
                "subscribers",
                "import",
                str(tmp_path / "missing.csv"),
                "--consent",
                "staff list",
                "--config",
                str(config_path),
            ]
        )
        == 2
    )
    assert "file not found" in capsys.readouterr().err
    (tmp_path / "latin1.csv").write_bytes("email,name\nz@example.org,Zo\xeb\n".encode("latin-1"))
    assert (
        main(
            [
                "subscribers",
                "import",
                str(tmp_path / "latin1.csv"),
                "--consent",
                "staff list",
                "--config",
                str(config_path),
            ]
        )
        == 2
    )
    assert "not UTF-8" in capsys.readouterr().err
    assert state(config_path) == {}


@pytest.mark.parametrize(
    "case",
    [
        (("import", "missing.csv"), "missing.csv: file not found", "check the path"),
        (("import", "latin1.csv"), "not UTF-8", "save the CSV as UTF-8"),
        (("import", "noemail.csv"), "'email' column", "for example: email,name"),
        (("add", "not an address"), "is not a valid email address", "name@example.org"),
        (("remove", "nobody@example.org"), "is not a subscriber", "digest subscribers list"),
    ],
)
def test_every_subscriber_error_says_what_to_do(
    config_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: tuple[tuple[str, ...], str, str],
) -> None:
    args, message, hint = case
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latin1.csv").write_bytes("email,name\nz@example.org,Zo\xeb\n".encode("latin-1"))
    (tmp_path / "noemail.csv").write_text("address,name\na@example.org,A\n", encoding="utf-8")
    assert main(["subscribers", *args, "--config", str(config_path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    hints = [line for line in err.splitlines() if line.startswith("hint: ")]
    assert len(hints) == 1 and hint in hints[0], err


def test_add_remove_list_and_status_filter(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["--config", str(config_path)]
    assert main(["subscribers", "add", "Jane@Example.org", "--name", "Jane", *c]) == 0
    assert "Jane@example.org: added" in capsys.readouterr().out
    assert main(["subscribers", "add", "tom@example.org", *c]) == 0
    assert main(["subscribers", "add", "not an address", *c]) == 2
    assert "not a valid email address" in capsys.readouterr().err
    db = open_store(config_path.parent / ".digest" / "state.db")
    db.subscribers.set_status(
        "tom@example.org", "bounced", at=datetime.now(UTC), reason="550 5.1.1 no such user"
    )
    db.close()
    assert main(["subscribers", "list", *c]) == 0
    out = capsys.readouterr().out
    assert "Jane@example.org" in out and "tom@example.org" in out and "550 5.1.1" in out
    assert "2 subscriber(s)" in out
    assert main(["subscribers", "list", "--status", "bounced", *c]) == 0
    out = capsys.readouterr().out
    assert "tom@example.org" in out and "Jane@example.org" not in out and "1 subscriber(s) bounced" in out
    assert main(["subscribers", "list", "--status", "gone", *c]) == 2
    # add re-activates an address only with --resubscribe
    assert main(["subscribers", "add", "tom@example.org", *c]) == 2
    assert "tom@example.org: suppressed: bounced on" in capsys.readouterr().err
    assert main(["subscribers", "add", "--resubscribe", "tom@example.org", *c]) == 0
    assert state(config_path)["tom@example.org"] == (None, "active")
    assert main(["subscribers", "remove", "JANE@example.org", *c]) == 0
    assert main(["subscribers", "remove", "nobody@example.org", *c]) == 2
    assert "is not a subscriber" in capsys.readouterr().err
    assert state(config_path) == {
        "Jane@example.org": ("Jane", "unsubscribed"),
        "tom@example.org": (None, "active"),
    }


def test_list_shows_names_literally(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["--config", str(config_path)]
    assert main(["subscribers", "add", "a@example.org", "--name", "[bold]Ann[/bold]", *c]) == 0
    capsys.readouterr()
    assert main(["subscribers", "list", *c]) == 0
    assert "[bold]Ann[/bold]" in capsys.readouterr().out


def test_list_never_cuts_an_address_short_on_a_narrow_terminal(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = ["--config", str(config_path)]
    assert main(["subscribers", "add", "ann@bücher.example.org", "--name", "Ann Example-Longname", *c]) == 0
    assert "ann@xn--bcher-kva.example.org: added" in capsys.readouterr().out  # stored as SMTP sends it
    long_one = "communications.and.engagement.team@bedfordshire-luton-milton-keynes.nhs.example"
    assert main(["subscribers", "add", long_one, *c]) == 0
    db = open_store(config_path.parent / ".digest" / "state.db")
    db.subscribers.set_status(long_one, "bounced", at=datetime.now(UTC), reason="550 5.1.1 no such user")
    db.close()
    for width in ("60", "120"):
        result = subprocess.run(
            [sys.executable, "-m", "digest", "subscribers", "list", *c],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "COLUMNS": width},
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert "…" not in result.stdout
        assert any("ann@xn--bcher-kva.example.org" in line for line in lines), result.stdout
        # Streamed a line each: an address is always whole on its line, however narrow the terminal.
        assert any(line.startswith(long_one + "  ") for line in lines), result.stdout


def test_remove_accepts_an_address_as_typed_with_a_unicode_domain(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = ["--config", str(config_path)]
    assert main(["subscribers", "add", "ann@bücher.example.org", *c]) == 0
    assert main(["subscribers", "remove", " Ann@Bücher.example.org ", *c]) == 0
    assert "unsubscribed (removed by operator)" in capsys.readouterr().out
    db = open_store(config_path.parent / ".digest" / "state.db")
    assert db.subscribers.count_subscribers("active") == 0
