"""`digest build` end to end on the shipped sample: files, issue.json, state, windows, determinism, drafts."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import re
import shutil
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from state_support import sql

from digest.checks.email import check_email
from digest.cli import main
from digest.cli.build import parse_as_of
from digest.cli.ingest import report_json
from digest.compose.draft import Draft, save_draft
from digest.config import load_config
from digest.errors import UsageError
from digest.models import NAME_PLACEHOLDER, UNSUBSCRIBE_URL_PLACEHOLDER
from digest.pipeline.build import build_issue
from digest.state.store import open_store

REPO = Path(__file__).resolve().parent.parent
AS_OF = "2025-05-09T17:00:00+01:00"
SAMPLE_TITLES = (
    "Celebrating midwifery opportunities: Inspiring the next generation of midwives",
    "Local NHS bodies commit to sustainable methods in drive to improve health",
    "The apple tree and conversations on dying",
    "Fighting for Life and improved care at the end of life",
    "International Day of the Midwife, Monday 5 May",
)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A copy of the shipped config and sample feeds, so state and output stay in the test's folder."""
    folder = tmp_path / "site"
    folder.mkdir()
    shutil.copy(REPO / "config.toml", folder / "config.toml")
    shutil.copytree(REPO / "feeds", folder / "feeds")
    return folder


def build(site: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["build", "--config", str(site / "config.toml"), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_digest_build_writes_every_file_and_prints_the_email_path(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = build(site, capsys, "--as-of", AS_OF)
    assert code == 0, err
    folder = site / "out" / "2025-W19"
    assert out.strip() == str(folder / "email.html")
    assert "built issue 2025-W19 (edition 1): 6 entries" in err
    for name in ("email.html", "email.txt", "email.eml", "web.html", "issue.json"):
        assert (folder / name).stat().st_size > 0, name
    html = (folder / "email.html").read_text()
    text = (folder / "email.txt").read_text()
    for title in SAMPLE_TITLES:
        assert title in text.replace("\n  ", " ").replace("\n", " ")
        assert title.replace("\u2019", "&#8217;") in html or title in html
    assert check_email(html, lang="en-GB") == ()
    assert html.count(NAME_PLACEHOLDER) == 1 and html.count(UNSUBSCRIBE_URL_PLACEHOLDER) == 1
    assert f'href="{UNSUBSCRIBE_URL_PLACEHOLDER}"' in html
    assert 'href="http://127.0.0.1:8080/issues/2025-W19/"' in html  # view in browser
    assert f"Hello {NAME_PLACEHOLDER}," in text
    web = (folder / "web.html").read_text()
    assert NAME_PLACEHOLDER not in web and UNSUBSCRIBE_URL_PLACEHOLDER not in web


def test_issue_json_holds_the_composed_issue_and_source_health(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build(site, capsys, "--as-of", AS_OF)[0] == 0
    doc = json.loads((site / "out" / "2025-W19" / "issue.json").read_text())
    assert doc["id"] == "2025-W19"
    assert doc["edition"] == 1
    assert doc["window"] == {
        "start": "2025-05-02T16:00:00+00:00",
        "end": "2025-05-09T16:00:00+00:00",
        "timezone": "Europe/London",
    }
    assert doc["subject"] == "BLMK Health and Care Partnership weekly news: 9 May 2025"
    assert doc["preheader"].startswith("6 updates this time: International Day of the Midwife")
    assert [s["category"] for s in doc["sections"]] == ["News", "Blog", "Campaigns and events"]
    assert doc["sections"][0]["groups"][0]["label"] == "Friday 9 May 2025"
    assert doc["sections"][0]["groups"][0]["date"] == "2025-05-09"
    highlight = doc["highlights"][0]
    assert set(highlight) == {"priority", "reason", "entry"}
    assert highlight["priority"] == "Start Well"
    entry = doc["sections"][0]["groups"][0]["entries"][0]
    for key in ("id", "title", "link", "published", "source", "category", "priorities", "summary"):
        assert key in entry
    midwives = next(
        e
        for s in doc["sections"]
        for g in s["groups"]
        for e in g["entries"]
        if e["title"].startswith("Celebrating")
    )
    assert midwives["priorities"] == ["Start Well"]
    assert midwives["matches"][0]["reason"] == "matched 'midwives', 'midwifery', 'midwife'"
    # Source health: the same objects `digest fetch --json` prints.
    config = load_config(site / "config.toml")
    db = open_store(config)
    try:
        from digest.pipeline.ingest import source_reports

        expected = [report_json(r) for r in source_reports(config, db)]
    finally:
        db.close()
    assert doc["sources"] == expected
    assert [s["status"] for s in doc["sources"]] == ["ok", "ok", "ok", "ok"]


def test_the_build_is_recorded_in_state_with_the_file_hashes(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build(site, capsys, "--as-of", AS_OF)[0] == 0
    config = load_config(site / "config.toml")
    folder = site / "out" / "2025-W19"
    db = open_store(config)
    try:
        record = db.issues.get_issue("2025-W19")
        assert record is not None
        assert record.html_sha256 == hashlib.sha256((folder / "email.html").read_bytes()).hexdigest()
        assert record.text_sha256 == hashlib.sha256((folder / "email.txt").read_bytes()).hexdigest()
        assert record.entry_count == 6
        assert record.out_dir == folder
        assert record.sent_at is None
        doc = json.loads((folder / "issue.json").read_text())
        ids = {e["id"] for s in doc["sections"] for g in s["groups"] for e in g["entries"]}
        assert db.issues.issue_entry_ids("2025-W19") == ids
    finally:
        db.close()


def test_email_eml_is_a_complete_multipart_alternative_message(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build(site, capsys, "--as-of", AS_OF)[0] == 0
    raw = (site / "out" / "2025-W19" / "email.eml").read_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "BLMK Health and Care Partnership weekly news: 9 May 2025"
    assert message["From"] == "BLMK Health and Care Partnership <news@blmk.example>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None and rich is not None
    text = plain.get_content()
    html = rich.get_content()
    assert "Hello Sam Sample," in text and "Hello Sam Sample," in html
    for part in (text, html):
        assert "%%DIGEST_" not in part
    assert "http://127.0.0.1:8080/unsubscribe?token=" in text
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_same_inputs_and_as_of_give_identical_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        shutil.copy(REPO / "config.toml", folder / "config.toml")
        shutil.copytree(REPO / "feeds", folder / "feeds")
        assert main(["build", "--config", str(folder / "config.toml"), "--as-of", AS_OF]) == 0
        outputs.append(folder / "out" / "2025-W19")
    capsys.readouterr()
    one, two = outputs
    for name in ("email.html", "email.txt", "web.html"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    first, second = (json.loads((p / "issue.json").read_text()) for p in outputs)
    first.pop("sources"), second.pop("sources")
    assert first == second


def test_a_rebuild_of_an_unsent_issue_replaces_it_with_the_same_id(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build(site, capsys, "--as-of", AS_OF)[0] == 0
    html = (site / "out" / "2025-W19" / "email.html").read_bytes()
    code, out, _ = build(site, capsys, "--as-of", AS_OF, "--offline")
    assert code == 0
    assert out.strip().endswith("2025-W19/email.html")
    assert (site / "out" / "2025-W19" / "email.html").read_bytes() == html
    assert sorted(p.name for p in (site / "out").iterdir()) == ["2025-W19"]


def test_a_rebuild_that_finds_nothing_removes_the_stale_unsent_issue_so_it_cannot_be_sent(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build(site, capsys, "--as-of", AS_OF)[0] == 0
    config = load_config(site / "config.toml")
    db = open_store(config)
    record = db.issues.get_issue("2025-W19")
    assert record is not None
    db.approvals.record_approval(
        issue_id="2025-W19",
        approved_by="comms",
        approved_at=datetime(2025, 5, 9, 15, tzinfo=UTC),
        html_sha256=record.html_sha256,
        text_sha256=record.text_sha256,
    )
    db.close()
    ids = tuple(state_issues_ids(site))
    save_draft(site / "out" / "2025-W19.draft.toml", Draft(intro="Kept.", dropped=ids))
    code, out, err = build(site, capsys, "--as-of", AS_OF, "--offline")
    assert (code, out) == (0, "")
    assert "nothing new since" in err
    assert "issue 2025-W19 now holds nothing: the earlier unsent build and its folder" in err.replace(
        "\n", ""
    )
    assert sorted(p.name for p in (site / "out").iterdir()) == ["2025-W19.draft.toml"]  # the draft is kept
    db = open_store(config)
    assert db.issues.get_issue("2025-W19") is None
    assert db.issues.latest_issue() is None
    assert db.approvals.get_approval("2025-W19") is None
    assert sql(db).execute("SELECT count(*) FROM issue_entries").fetchone()[0] == 0
    db.close()
    code = main(["send", "--config", str(site / "config.toml"), "--dry-run"])
    assert code == 2
    assert "no issue has been built yet" in capsys.readouterr().err
    # Undropping the entries builds the issue again.
    save_draft(site / "out" / "2025-W19.draft.toml", Draft())
    assert build(site, capsys, "--as-of", AS_OF, "--offline")[0] == 0
    assert (site / "out" / "2025-W19" / "email.html").is_file()


def state_issues_ids(site: Path) -> list[str]:
    doc = json.loads((site / "out" / "2025-W19" / "issue.json").read_text())
    return [e["id"] for s in doc["sections"] for g in s["groups"] for e in g["entries"]]


def test_after_a_send_the_next_build_starts_at_its_end_and_leaves_out_sent_entries(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build(site, capsys, "--as-of", AS_OF)[0] == 0
    config = load_config(site / "config.toml")
    db = open_store(config)
    db.issues.mark_issue_sent("2025-W19", datetime(2025, 5, 9, 16, 5, tzinfo=UTC))
    db.close()
    # Nothing new: same as-of, then a week later with no new dated entries.
    code, out, err = build(site, capsys, "--as-of", AS_OF)
    assert (code, out) == (0, "")
    assert "nothing new since Friday 9 May 2025, 17:00 BST" in err
    assert build(site, capsys, "--as-of", "2025-05-16T17:00:00+01:00")[1] == ""
    # A new curated item after the window: the next issue holds only it.
    (site / "feeds" / "items" / "new.md").write_text(
        "---\ntitle: New community clinic opens\ndate: 2025-05-12\ncategory: News\n---\nA new clinic.\n"
    )
    code, out, err = build(site, capsys, "--as-of", "2025-05-16T17:00:00+01:00")
    assert code == 0, err
    doc = json.loads((site / "out" / "2025-W20" / "issue.json").read_text())
    assert doc["edition"] == 2
    assert doc["window"]["start"] == "2025-05-09T16:00:00+00:00"
    assert [e["title"] for s in doc["sections"] for g in s["groups"] for e in g["entries"]] == [
        "New community clinic opens"
    ]


def test_an_issue_being_sent_is_never_rebuilt(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build(site, capsys, "--as-of", AS_OF)[0] == 0
    config = load_config(site / "config.toml")
    db = open_store(config)
    db.issues.mark_send_started("2025-W19", datetime(2025, 5, 9, 16, 5, tzinfo=UTC))
    before = db.issues.get_issue("2025-W19")
    db.close()
    code, out, err = build(site, capsys, "--as-of", AS_OF)
    assert (code, out) == (0, "")  # its entries belong to the issue being sent: nothing new
    assert "nothing new" in err
    assert "issue 2025-W19 holds this period's entries and its send is not finished" in err
    assert "run digest send to finish it" in err
    db = open_store(config)
    assert db.issues.get_issue("2025-W19") == before
    db.close()


def test_send_when_empty_builds_a_short_no_news_issue(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (site / "config.toml").read_text().replace("send_when_empty = false", "send_when_empty = true")
    (site / "config.toml").write_text(text)
    code, out, err = build(site, capsys, "--as-of", "2024-01-05T17:00:00+00:00")
    assert code == 0, err
    folder = Path(out.strip()).parent
    assert folder.name == "2024-W01"
    doc = json.loads((folder / "issue.json").read_text())
    assert doc["empty"] is True and doc["sections"] == [] and doc["highlights"] == []
    assert "There is no news since Friday 29 December 2023." in (folder / "email.txt").read_text()
    assert check_email((folder / "email.html").read_text(), lang="en-GB") == ()


def test_the_draft_next_to_the_output_is_applied_and_unknown_ids_are_noted(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build(site, capsys, "--as-of", AS_OF)[0] == 0
    doc = json.loads((site / "out" / "2025-W19" / "issue.json").read_text())
    by_title = {e["title"]: e["id"] for s in doc["sections"] for g in s["groups"] for e in g["entries"]}
    blog = by_title["Fighting for Life and improved care at the end of life"]
    dropped = by_title["Local NHS bodies commit to sustainable methods in drive to improve health…"]
    save_draft(
        site / "out" / "2025-W19.draft.toml",
        Draft(intro="A word from the editor.", pinned=(blog, "nope"), dropped=(dropped,)),
    )
    code, _, err = build(site, capsys, "--as-of", AS_OF, "--offline")
    assert code == 0, err
    assert "note: draft: entry 'nope' names no known entry; its edits were not applied" in err
    doc = json.loads((site / "out" / "2025-W19" / "issue.json").read_text())
    assert doc["intro"] == "A word from the editor."
    assert doc["highlights"][0]["entry"]["id"] == blog
    assert dropped not in {e["id"] for s in doc["sections"] for g in s["groups"] for e in g["entries"]}
    assert "A word from the editor." in (site / "out" / "2025-W19" / "email.txt").read_text()


def test_a_bad_draft_fails_with_exit_4_naming_the_key(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (site / "out").mkdir()
    (site / "out" / "2025-W19.draft.toml").write_text('pinned = "not a list"\n')
    code, _, err = build(site, capsys, "--as-of", AS_OF)
    assert code == 4
    assert "2025-W19.draft.toml: pinned must be a list of entry ids" in err


def test_a_draft_retagging_with_an_unknown_priority_fails_naming_the_file(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = site / "out" / "2025-W19.draft.toml"
    draft.parent.mkdir()
    draft.write_text('[retag]\n"abc" = ["Start Well", "No Such Priority"]\n')
    code, out, err = build(site, capsys, "--as-of", AS_OF)
    assert (code, out) == (4, "")
    assert f"{draft}: retag.'abc' names the priority 'No Such Priority'" in " ".join(err.split())
    assert "use one of: Start Well, Live Well" in err


def test_a_missing_theme_template_fails_with_exit_4_listing_the_paths(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    theme = site / "theme"
    theme.mkdir()
    (theme / "email.mjml").write_text('{% include "_missing_part.mjml" %}')
    text = (site / "config.toml").read_text().replace('# templates = "my-templates"', 'templates = "theme"')
    (site / "config.toml").write_text(text)
    code, _, err = build(site, capsys, "--as-of", AS_OF)
    assert code == 4
    assert f"searched: {theme / '_missing_part.mjml'}, " in err.replace("\n", "")
    assert "fix [theme] templates in the config" in " ".join(err.split())  # not eaten as rich markup


def test_out_folder_option_and_bad_as_of(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = build(site, capsys, "--as-of", AS_OF, "--out", str(tmp_path / "elsewhere"))
    assert code == 0
    assert out.strip() == str(tmp_path / "elsewhere" / "2025-W19" / "email.html")
    code, _, err = build(site, capsys, "--as-of", "next friday")
    assert code == 2
    assert "--as-of 'next friday' is not an ISO 8601 date-time" in err


def test_as_of_without_an_offset_is_read_in_the_edition_time_zone() -> None:
    assert parse_as_of("2025-05-09T17:00", "Europe/London") == datetime(2025, 5, 9, 16, tzinfo=UTC)
    assert parse_as_of(None, "Europe/London") is None
    with pytest.raises(UsageError):
        parse_as_of("2025-13-01", "Europe/London")


def test_build_issue_reports_progress_and_failed_sources(site: Path) -> None:
    config = load_config(site / "config.toml")
    (site / "feeds" / "blog.atom").write_text("this is not a feed")
    db = open_store(config)
    messages: list[str] = []
    try:
        outcome = build_issue(
            config,
            db,
            now=datetime(2025, 5, 9, 16, tzinfo=UTC),
            out_dir=site / "out",
            on_progress=messages.append,
        )
    finally:
        db.close()
    assert outcome.built is not None
    assert any(m.startswith("fetched BLMK blog (") for m in messages)
    assert any(m.startswith("rendering issue 2025-W19") for m in messages)
    (note,) = (n for n in outcome.notes if n.startswith("source 'BLMK blog' failed"))
    assert note.startswith("source 'BLMK blog' failed (not an RSS, Atom or JSON feed")
    # Never fetched before: nothing was kept, and the note says so rather than "last good entries".
    assert note.endswith("; no entries from it yet: it has never been fetched successfully")
    assert all(item.entry.source != "BLMK blog" for item in outcome.built.issue.entries)


def test_a_source_failing_after_a_good_fetch_says_its_kept_entries_were_used(site: Path) -> None:
    config = load_config(site / "config.toml")
    db = open_store(config)
    now = datetime(2025, 5, 9, 16, tzinfo=UTC)
    try:
        first = build_issue(config, db, now=now, out_dir=site / "out")
        assert not any("failed" in n for n in first.notes)
        (site / "feeds" / "blog.atom").write_text("this is not a feed")
        outcome = build_issue(config, db, now=now, out_dir=site / "out")
    finally:
        db.close()
    (note,) = (n for n in outcome.notes if n.startswith("source 'BLMK blog' failed"))
    assert re.search(r"; its last good entries were used \(\d+ kept from earlier fetches\)$", note)
    assert outcome.built is not None
    assert "Blog" in [s.category for s in outcome.built.issue.sections]
