"""The ingest pipeline and `digest fetch`: shipped sample, state across runs, curated items, exit codes."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import REPO, SHARED
from feed_server import Reply, feed, rss, running_server, write_config
from state_support import sql

from digest.cli import main
from digest.config import load_config
from digest.models import SourceStatus
from digest.pipeline.ingest import ingest_sources, parse_workers, source_reports
from digest.state.store import Store, open_store

NOW = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A copy of the shipped config.toml and feeds/ (state goes into the copy)."""
    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    shutil.copytree(REPO / "feeds", tmp_path / "feeds")
    return tmp_path / "config.toml"


def test_digest_fetch_on_the_shipped_sample(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fetch", "--config", str(sample), "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in reports] == [
        "BLMK news",
        "BLMK blog",
        "BLMK Health and Care Partnership",
        "BLMK latest news (web page)",
    ]
    for report in reports:
        assert {"name", "status", "entries", "http_status", "error", "redirected_to"} <= set(report)
        assert report["status"] == "ok"
        assert report["error"] is None
    assert [r["entries"] for r in reports] == [30, 3, 3, 6]
    assert reports[1]["newest_entry"] == "2025-05-07T23:00:00+00:00"

    assert main(["fetch", "--config", str(sample)]) == 0
    out = capsys.readouterr().out
    for words in (
        "BLMK news",
        "BLMK blog",
        "Partnership",
        "not modified",
        "Failures",
        "entries after",
    ):
        assert words in out


def test_sample_entries_are_clean(sample: Path) -> None:
    config = load_config(sample)
    db = open_store(config)
    result = ingest_sources(config, db, now=NOW)
    by_title = {e.title: e for e in result.entries}
    blog = by_title["\u201cYou Can\u2019t Catch Death\u201d: Reflections from the Chaplaincy of Sarah Crane"]
    assert blog.published == datetime(2025, 5, 7, 23, 0, tzinfo=UTC)
    assert blog.category == "Blog" and not blog.date_estimated
    # The article whose stored copy lost its title gets one from its link.
    untitled = next(e for e in result.entries if e.link and "get-up-to-date-on-childrens-jabs" in e.link)
    assert untitled.title == "Get up to date on childrens jabs call as summer holidays arrive"
    # Articles without a date are dated by first sight and flagged; none is invented.
    undated = [e for e in result.entries if e.date_estimated]
    assert len(undated) > 10 and all(e.published == NOW for e in undated)
    midwife = by_title["International Day of the Midwife, Monday 5 May"]
    assert (midwife.priority, midwife.pinned, midwife.category) == (
        "Start Well",
        True,
        "Campaigns and events",
    )
    assert midwife.published == datetime(2025, 5, 4, 23, 0, tzinfo=UTC)  # midnight in Europe/London
    assert "<strong>Monday 5 May</strong>" in midwife.summary_html
    assert midwife.summary_text.startswith("International Day of the Midwife was marked")
    assert all(len(e.summary_text) <= config.digest.excerpt_chars for e in result.entries)


def test_first_seen_dates_survive_later_runs_and_changes(sample: Path) -> None:
    config = load_config(sample)
    db = open_store(config)
    first = {e.id: e for e in ingest_sources(config, db, now=NOW).entries}
    news = sample.parent / "feeds" / "news.xml"
    news.write_text(news.read_text().replace("Local NHS waiting lists fall", "Local NHS waiting lists drop"))
    later = NOW + timedelta(days=3)
    second = {e.id: e for e in ingest_sources(config, db, now=later).entries}
    undated = [i for i, e in first.items() if e.date_estimated and i in second]
    assert len(undated) > 10
    assert all(second[i].published == NOW for i in undated)
    assert any(e.title.startswith("Local NHS waiting lists drop") for e in second.values())


def test_offline_reads_state_only(sample: Path) -> None:
    config = load_config(sample)
    db = open_store(config)
    online = ingest_sources(config, db, now=NOW)
    shutil.rmtree(sample.parent / "feeds")
    offline = ingest_sources(config, db, now=NOW + timedelta(hours=1), offline=True)
    assert offline.entries == online.entries
    assert [r.status for r in offline.reports] == [SourceStatus.OK] * 4
    assert source_reports(config, db) == offline.reports


def test_offline_before_any_fetch_says_so(sample: Path) -> None:
    config = load_config(sample)
    db = open_store(config)
    result = ingest_sources(config, db, now=NOW, offline=True)
    assert result.entries == ()
    assert all(r.error and "never fetched" in r.error for r in result.reports)


def test_progress_is_reported_per_source(sample: Path) -> None:
    config = load_config(sample)
    db = open_store(config)
    seen: list[tuple[str, int, int]] = []
    ingest_sources(config, db, now=NOW, on_progress=lambda r, done, total: seen.append((r.name, done, total)))
    assert sorted(s[0] for s in seen) == [
        "BLMK Health and Care Partnership",
        "BLMK blog",
        "BLMK latest news (web page)",
        "BLMK news",
    ]
    assert [s[1] for s in seen] == [1, 2, 3, 4] and {s[2] for s in seen} == {4}


def test_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "good.xml").write_bytes(rss("Fine"))
    (tmp_path / "bad.xml").write_text("not a feed at all")
    both = write_config(tmp_path, [{"name": "Good", "url": "good.xml"}, {"name": "Bad", "url": "bad.xml"}])
    assert main(["fetch", "--config", str(both)]) == 0
    assert main(["fetch", "--config", str(both), "--strict"]) == 3
    table = capsys.readouterr().out
    assert "│ Bad    │ failed: not an" in table  # the name is in its own column, not repeated in the reason
    only_bad = write_config(tmp_path, [{"name": "Bad", "url": "bad.xml"}])
    assert main(["fetch", "--config", str(only_bad), "--json"]) == 3
    (report,) = json.loads(capsys.readouterr().out)
    assert report["status"] == "failed"
    assert report["error"].startswith("Bad: not an RSS, Atom or JSON feed")
    assert report["consecutive_failures"] == 3  # the two earlier runs failed for it too


def test_local_files_stay_inside_the_config_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.xml").write_bytes(rss("Secret"))
    root = tmp_path / "site"
    root.mkdir()
    (root / "link.xml").write_bytes(rss("Harmless"))
    config = load_config(write_config(root, [{"name": "Sneaky", "url": "link.xml"}]))
    # The config check refuses such a link; one swapped in after the config was read is refused too.
    (root / "link.xml").unlink()
    (root / "link.xml").symlink_to(outside / "secret.xml")
    db = open_store(root / "state.db")
    result = ingest_sources(config, db, now=NOW)
    assert result.entries == ()
    assert "outside the config folder" in (result.reports[0].error or "")


def _item(folder: Path, name: str, text: str) -> None:
    (folder / "items").mkdir(exist_ok=True)
    (folder / "items" / name).write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("---\ntitel: Typo\n---\n", "items/x.md: line 2: unknown key 'titel'"),
        ("---\ndate: 2025-05-05\n---\n", "items/x.md: title is required"),
        ("title: no front matter\n", "items/x.md: no front matter"),
        ("---\ntitle: A\ndate: 5 May\n---\n", "items/x.md: date: '5 May' is not a date"),
        ("---\ntitle: A\npriority: Start Wel\n---\n", "priority: 'Start Wel' is not a configured priority"),
        ("---\ntitle: A\npinned: maybe\n---\n", "pinned: 'maybe' must be true or false"),
        (
            "---\ntitle: A\nlink: javascript:alert(1)\n---\n",
            "link: 'javascript:alert(1)' is not an http(s) URL",
        ),
        ('---\ntitle: "unterminated\n---\n', "title: unterminated or invalid double-quoted string"),
        ("---\ntitle: A\n", "the front matter is not closed"),
    ],
)
def test_curated_item_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    _item(tmp_path, "x.md", text)
    _item(tmp_path, "ok.md", "---\ntitle: Fine\n---\nBody\n")
    config = load_config(write_config(tmp_path, [{"name": "Items", "url": "items/*.md"}]))
    db = open_store(tmp_path / "state.db")
    (report,) = ingest_sources(config, db, now=NOW).reports
    assert report.status is SourceStatus.FAILED
    assert message in (report.error or ""), report.error


def test_curated_item_fields(tmp_path: Path) -> None:
    _item(
        tmp_path,
        "event.md",
        "---\n"
        'title: "Health fair: \\"come along\\""\n'
        "date: 2025-05-10T09:30:00+01:00\n"
        "link: https://example.org/fair?utm_source=newsletter\n"
        "category: Events\n"
        "summary: 'A day of free checks, it''s open to all.'\n"
        "image: https://example.org/fair.jpg\n"
        "image_alt: People at last year's fair\n"
        "priority: Start Well\n"
        "pinned: yes\n"
        "tags: [health, community]\n"
        "---\n"
        "Come to the **fair**. <script>alert(1)</script> [Map](https://example.org/map)\n",
    )
    config = load_config(
        write_config(tmp_path, [{"name": "Items", "url": "items/*.md", "category": "Campaigns"}])
    )
    db = open_store(tmp_path / "state.db")
    (entry,) = ingest_sources(config, db, now=NOW).entries
    assert entry.title == 'Health fair: "come along"'
    assert entry.published == datetime(2025, 5, 10, 8, 30, tzinfo=UTC)
    assert entry.link == "https://example.org/fair"
    assert entry.category == "Events"
    assert entry.summary_text == "A day of free checks, it's open to all."
    assert entry.image is not None and (entry.image.url, entry.image.alt) == (
        "https://example.org/fair.jpg",
        "People at last year's fair",
    )
    assert (entry.priority, entry.pinned, entry.tags) == ("Start Well", True, ("health", "community"))
    assert "<strong>fair</strong>" in entry.summary_html
    assert "<script" not in entry.summary_html
    assert 'href="https://example.org/map"' in entry.summary_html


def test_max_entries_keeps_the_first_entries_of_the_feed(tmp_path: Path) -> None:
    (tmp_path / "f.xml").write_bytes(rss("One", "Two", "Three"))
    config = load_config(write_config(tmp_path, [{"name": "F", "url": "f.xml", "max_entries": 2}]))
    db = open_store(tmp_path / "state.db")
    assert [e.title for e in ingest_sources(config, db, now=NOW).entries] == ["One", "Two"]


def test_duplicates_across_feeds_are_reported_with_also_from(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_bytes(rss("Shared story", "Only in A"))
    (tmp_path / "b.xml").write_bytes(rss("Shared story"))
    config = load_config(
        write_config(tmp_path, [{"name": "A", "url": "a.xml"}, {"name": "B", "url": "b.xml"}])
    )
    db = open_store(tmp_path / "state.db")
    entries = ingest_sources(config, db, now=NOW).entries
    assert [(e.title, e.source, e.also_from) for e in entries] == [
        ("Shared story", "A", ("B",)),
        ("Only in A", "A", ()),
    ]


def test_an_entry_sent_earlier_is_the_one_kept(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_bytes(rss("Shared story"))
    config = load_config(write_config(tmp_path, [{"name": "A", "url": "a.xml"}]))
    db = open_store(tmp_path / "state.db")
    (sent,) = ingest_sources(config, db, now=NOW).entries
    db.issues.record_built_issue(
        issue_id="2025-W19",
        edition=1,
        window_start=NOW - timedelta(days=7),
        window_end=NOW,
        subject="s",
        built_at=NOW,
        out_dir=tmp_path,
        html_sha256="h",
        text_sha256="t",
        entry_ids=[sent.id],
        empty=False,
    )
    db.issues.mark_issue_sent("2025-W19", NOW)
    (tmp_path / "b.xml").write_bytes(rss("Shared story").replace(b"<guid>", b"<guid isPermaLink='false'>b-"))
    config = load_config(
        write_config(tmp_path, [{"name": "B", "url": "b.xml"}, {"name": "A", "url": "a.xml"}])
    )
    (kept,) = ingest_sources(config, db, now=NOW + timedelta(days=7)).entries
    assert kept.id == sent.id and kept.also_from == ("B",)


def test_ingest_works_when_called_from_a_running_event_loop(tmp_path: Path) -> None:
    with running_server() as server:
        server.routes["/f"] = feed(rss("Async"))
        server.routes["/x"] = lambda request: Reply(404)
        config = load_config(write_config(tmp_path, [{"name": "F", "url": server.url + "/f"}]))
        db = open_store(tmp_path / "state.db")

        async def inside() -> list[str]:
            return [e.title for e in ingest_sources(config, db, now=NOW).entries]

        assert asyncio.run(inside()) == ["Async"]


def test_fetch_command_is_documented() -> None:
    readme = (REPO / "README.md").read_text()
    assert "digest fetch" in readme
    for flag in ("--json", "--strict", "--offline"):
        assert flag in readme


def test_the_readme_curated_item_example_parses(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    example = readme.split("```markdown\n", 1)[1].split("```", 1)[0]
    _item(tmp_path, "example.md", example)
    config = load_config(write_config(tmp_path, [{"name": "Items", "url": "items/*.md"}]))
    db = open_store(tmp_path / "state.db")
    (entry,) = ingest_sources(config, db, now=NOW).entries
    assert (entry.title, entry.priority, entry.pinned) == (
        "International Day of the Midwife",
        "Start Well",
        True,
    )
    assert entry.summary_text == "One or two sentences."


def test_sample_dates_are_the_sites_own_and_none_is_invented(sample: Path) -> None:
    blmk = SHARED / "blmk"
    known: dict[str, str | None] = {}
    for record in json.loads((blmk / "articles.json").read_text()):
        known[record["url"]] = record["date_iso"]
        if record["title"]:
            known[record["title"]] = record["date_iso"]
    for record in json.loads((blmk / "listing-items.json").read_text()):
        known[record["title"]] = record["date_iso"]
    config = load_config(sample)
    db = open_store(config)
    checked = 0
    for entry in ingest_sources(config, db, now=NOW).entries:
        if entry.source == "BLMK Health and Care Partnership":
            continue
        key = entry.title if entry.title in known else entry.link
        assert key in known, f"{entry.title!r} is not in ../shared/blmk"
        date = known[key]
        if date is None:
            assert entry.date_estimated, entry.title
        else:
            assert not entry.date_estimated
            assert entry.published.astimezone(ZoneInfo("Europe/London")).date().isoformat() == date
        checked += 1
    assert checked == 33


def test_a_bad_file_in_a_glob_is_named(tmp_path: Path) -> None:
    _item(tmp_path, "ok.md", "---\ntitle: Fine\n---\n")
    _item(tmp_path, "notes.txt", "just some notes")
    config = load_config(write_config(tmp_path, [{"name": "Items", "url": "items/*"}]))
    db = open_store(tmp_path / "state.db")
    (report,) = ingest_sources(config, db, now=NOW).reports
    assert report.status is SourceStatus.FAILED
    assert (report.error or "").startswith(
        "Items: items/notes.txt: not an RSS, Atom or JSON feed (line 2 column 0"
    )


def _issue(db: Store, issue_id: str, entry_ids: list[str], *, sent: bool) -> None:
    db.issues.record_built_issue(
        issue_id=issue_id,
        edition=1,
        window_start=NOW - timedelta(days=7),
        window_end=NOW,
        subject="s",
        built_at=NOW,
        out_dir=Path("out"),
        html_sha256="h",
        text_sha256="t",
        entry_ids=entry_ids,
        empty=False,
    )
    if sent:
        db.issues.mark_issue_sent(issue_id, NOW)


def _stored_titles(db: Store) -> set[str]:
    return {json.loads(r["data"])["title"] for r in sql(db).execute("SELECT data FROM entries")}


def test_old_entries_that_left_their_feed_are_pruned_but_unsent_issues_and_sent_records_stay(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.xml").write_bytes(rss("Held", "Sent", "Dropped", "Current"))
    (tmp_path / "gone.xml").write_bytes(rss("From a removed source", link_base="https://example.org/x/"))
    both = [{"name": "A", "url": "a.xml"}, {"name": "Old", "url": "gone.xml"}]
    (tmp_path / "keep.toml").write_text(
        write_config(tmp_path, both).read_text().replace("[fetch]", "[state]\nkeep_days = 30\n\n[fetch]")
    )
    config = load_config(tmp_path / "keep.toml")
    db = open_store(config)
    ids = {e.title: e.id for e in ingest_sources(config, db, now=NOW).entries}
    _issue(db, "2025-W19", [ids["Held"]], sent=False)  # built, waiting to be sent
    _issue(db, "2025-W18", [ids["Sent"]], sent=True)
    # Only "Current" stays in the feed, and the source "Old" leaves the config.
    (tmp_path / "a.xml").write_bytes(rss("Current").replace(b"/0<", b"/3<"))
    config = replace(config, sources=config.sources[:1])

    soon = ingest_sources(config, db, now=NOW + timedelta(days=29))  # inside keep_days: nothing goes
    assert soon.pruned == 0 and len(_stored_titles(db)) == 5
    later = ingest_sources(config, db, now=NOW + timedelta(days=31))
    assert later.pruned == 3
    assert _stored_titles(db) == {"Held", "Current"}
    assert [e.title for e in later.entries] == ["Current"]
    assert (
        ids["Sent"] in db.issues.sent_entry_ids()
    )  # what was sent is still known, so it is never sent again
    offline = ingest_sources(config, db, now=NOW + timedelta(days=400), offline=True)
    assert offline.pruned == 0 and _stored_titles(db) == {"Held", "Current"}


def test_an_entry_still_in_its_feed_is_never_pruned_however_old(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_bytes(rss("Evergreen"))
    config = load_config(write_config(tmp_path, [{"name": "A", "url": "a.xml"}]))
    db = open_store(config)
    ingest_sources(config, db, now=NOW)
    result = ingest_sources(config, db, now=NOW + timedelta(days=1000))
    assert result.pruned == 0 and [e.title for e in result.entries] == ["Evergreen"]


@pytest.mark.parametrize(
    ("requested", "sources", "cores", "workers"),
    [
        (None, 3, 2, 0),  # the shipped sample: parsed in-process, no worker start-up
        (None, 50, 2, 2),
        (None, 50, 16, 16),
        (None, 5, 16, 5),
        (None, 50, 1, 0),  # one core: nothing to gain
        (0, 50, 8, 0),
        (2, 3, 1, 2),
    ],
)
def test_parse_worker_processes_only_for_several_sources_on_several_cores(
    requested: int | None, sources: int, cores: int, workers: int
) -> None:
    assert parse_workers(requested, sources=sources, cores=cores) == workers


def test_parsing_in_worker_processes_gives_the_same_entries_and_per_source_errors(tmp_path: Path) -> None:
    sources: list[dict[str, object]] = []
    for n in range(4):
        (tmp_path / f"f{n}.xml").write_bytes(
            rss(f"Story {n}", "Shared story", link_base=f"https://example.org/{n}/")
        )
        sources.append({"name": f"F{n}", "url": f"f{n}.xml"})
    (tmp_path / "page.xml").write_bytes(b"<!DOCTYPE html><html><body>Not a feed</body></html>")
    _item(tmp_path, "bad.md", "---\ntitle: Bad\ndate: someday\n---\n")
    sources += [{"name": "Page", "url": "page.xml"}, {"name": "Items", "url": "items/*.md"}]
    config = load_config(write_config(tmp_path, sources))
    results = {}
    for workers in (0, 2):
        db = open_store(tmp_path / f"state-{workers}.db")
        results[workers] = ingest_sources(config, db, now=NOW, parse_processes=workers)
    inline, pooled = results[0], results[2]
    assert pooled.entries == inline.entries and len(pooled.entries) == 5
    assert pooled.reports == inline.reports
    failed = {r.name: r.error or "" for r in pooled.failed}
    assert set(failed) == {"Page", "Items"}
    assert "web page" in failed["Page"]
    assert "items/bad.md" in failed["Items"] and "date" in failed["Items"]


def test_a_failed_report_counts_the_entries_kept_and_used(tmp_path: Path) -> None:
    # What a caller needs to say whether a failed source's last good entries were used: `entries`.
    (tmp_path / "a.xml").write_bytes(rss("Kept one", "Kept two"))
    (tmp_path / "b.xml").write_bytes(b"<!DOCTYPE html><html><body>Not a feed</body></html>")
    db = open_store(tmp_path / "state.db")
    never = ingest_sources(load_config(write_config(tmp_path, [{"name": "A", "url": "b.xml"}])), db, now=NOW)
    assert never.reports[0].status is SourceStatus.FAILED and never.reports[0].entries == 0
    assert never.entries == ()
    ingest_sources(load_config(write_config(tmp_path, [{"name": "A", "url": "a.xml"}])), db, now=NOW)
    # The url changes: before the new one is fetched, the old entries are still the source's (and used).
    moved = load_config(write_config(tmp_path, [{"name": "A", "url": "b.xml"}]))
    offline = ingest_sources(moved, db, now=NOW, offline=True)
    assert (offline.reports[0].status, offline.reports[0].entries) == (SourceStatus.FAILED, 2)
    assert len(offline.entries) == 2
    failed = ingest_sources(moved, db, now=NOW)  # b.xml is a web page
    assert (failed.reports[0].status, failed.reports[0].entries) == (SourceStatus.FAILED, 2)
    assert len(failed.entries) == 2


def test_a_changed_parse_setting_parses_an_unchanged_feed_again(sample: Path) -> None:
    """Stored entries carry the settings they were parsed with; changing one re-reads the feed."""
    config = load_config(sample)
    db = open_store(config)
    ingest_sources(config, db, now=NOW)
    again = ingest_sources(config, db, now=NOW + timedelta(hours=1))
    assert [r.status for r in again.reports] == [SourceStatus.NOT_MODIFIED] * 4
    text = sample.read_text().replace('category = "Blog"', 'category = "Staff blog"')
    text = text.replace("excerpt_chars = 240", "excerpt_chars = 80")
    sample.write_text(text)
    changed = load_config(sample)
    result = ingest_sources(changed, db, now=NOW + timedelta(hours=2))
    assert [r.status for r in result.reports] == [SourceStatus.OK] * 4
    blog = [e for e in result.entries if e.source == "BLMK blog"]
    assert blog and all(e.category == "Staff blog" for e in blog)
    assert all(len(e.summary_text) <= 80 for e in result.entries)
    settled = ingest_sources(changed, db, now=NOW + timedelta(hours=3))
    assert [r.status for r in settled.reports] == [SourceStatus.NOT_MODIFIED] * 4
