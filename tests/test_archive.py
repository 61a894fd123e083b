"""The web archive: each sent issue as a static page, an index page, and an Atom feed feedparser accepts."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import httpx
import pytest
from state_support import sql
from web_support import record_sent, served, write_built_issue

from digest.cli import main
from digest.config import Config, load_config
from digest.errors import StateError, UsageError
from digest.models import issue_url
from digest.pipeline.web import publish_issue, rebuild_archive
from digest.publish.archive import check_issue_id, load_manifest
from digest.state.store import open_store
from digest.web.public import create_public_app

REPO = Path(__file__).resolve().parent.parent
SENT = datetime(2025, 5, 9, 7, 0, tzinfo=UTC)


def make_config(root: Path, extra: str = "") -> Config:
    (root / "feeds").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "feeds" / "news.xml", root / "feeds" / "news.xml")
    (root / "config.toml").write_text(
        f"""
[[sources]]
name = "News"
url = "feeds/news.xml"
category = "News"

[digest]
title = "BLMK weekly & news"

[theme]
organisation = "NHS BLMK ICB"

[web]
base_url = "https://news.example.org/digest"
archive_dir = "site"
{extra}
""",
        encoding="utf-8",
    )
    return load_config(root / "config.toml")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


def test_a_sent_issue_is_published_with_an_index_and_a_valid_atom_feed(
    config: Config, tmp_path: Path
) -> None:
    db = open_store(config)
    folder = write_built_issue(tmp_path / "out", "2025-W19", subject="Weekly news: <9 May> & more")
    record_sent(db, folder, "2025-W19", sent_at=SENT)

    page = publish_issue(config, db, "2025-W19")

    site = config.web.archive_dir
    assert page == site / "issues" / "2025-W19" / "index.html"
    assert page.read_bytes() == (folder / "web.html").read_bytes()
    index = (site / "index.html").read_text()
    assert 'href="issues/2025-W19/"' in index
    assert "Weekly news: &lt;9 May&gt; &amp; more" in index
    assert "<9 May>" not in index
    assert "Start Well: Midwives celebrated" in index
    assert (site / "assets" / "site.css").is_file()

    feed = feedparser.parse((site / "feed.atom").read_bytes())
    assert feed.bozo is False, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "BLMK weekly & news"
    assert feed.feed.link == "https://news.example.org/digest/"
    [entry] = feed.entries
    assert entry.title == "Weekly news: <9 May> & more"
    assert entry.link == issue_url(config.web.base_url, "2025-W19")
    assert entry.link == "https://news.example.org/digest/issues/2025-W19/"
    assert entry.published_parsed[:5] == (2025, 5, 9, 7, 0)
    assert "Midwives celebrated" in entry.content[0].value


def test_publishing_again_replaces_the_issue_and_keeps_newest_first(config: Config, tmp_path: Path) -> None:
    db = open_store(config)
    first = write_built_issue(
        tmp_path / "out",
        "2025-W18",
        subject="Week 18",
        edition=1,
        window=("2025-04-25T16:00:00+00:00", "2025-05-02T16:00:00+00:00"),
    )
    record_sent(db, first, "2025-W18", sent_at=datetime(2025, 5, 2, 7, tzinfo=UTC), edition=1)
    second = write_built_issue(tmp_path / "out", "2025-W19", subject="Week 19", edition=2)
    record_sent(db, second, "2025-W19", sent_at=SENT, edition=2)

    publish_issue(config, db, "2025-W18")
    publish_issue(config, db, "2025-W19")
    publish_issue(config, db, "2025-W18")

    assert [i.id for i in load_manifest(config.web.archive_dir)] == ["2025-W19", "2025-W18"]
    feed = feedparser.parse((config.web.archive_dir / "feed.atom").read_bytes())
    assert not feed.bozo
    assert [e.title for e in feed.entries] == ["Week 19", "Week 18"]
    index = (config.web.archive_dir / "index.html").read_text()
    assert index.index("Week 19") < index.index("Week 18")


def test_an_unsent_issue_is_not_published(config: Config, tmp_path: Path) -> None:
    db = open_store(config)
    folder = write_built_issue(tmp_path / "out", "2025-W19")
    record_sent(db, folder, "2025-W19", sent_at=SENT)
    sql(db).execute("UPDATE issues SET sent_at = NULL")
    with pytest.raises(UsageError, match="not sent yet"):
        publish_issue(config, db, "2025-W19")
    with pytest.raises(UsageError, match="not found"):
        publish_issue(config, db, "2099-W01")
    assert not (config.web.archive_dir / "issues").exists()


def test_a_missing_build_folder_is_a_clear_error(config: Config, tmp_path: Path) -> None:
    db = open_store(config)
    folder = write_built_issue(tmp_path / "out", "2025-W19")
    record_sent(db, folder, "2025-W19", sent_at=SENT)
    shutil.rmtree(folder)
    with pytest.raises(UsageError, match=r"build folder .* is gone"):
        publish_issue(config, db, "2025-W19")


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", ".hidden", "x" * 200, "a..b"])
def test_issue_ids_that_could_escape_the_archive_are_refused(bad: str) -> None:
    with pytest.raises(UsageError):
        check_issue_id(bad)


def test_a_corrupt_manifest_is_a_state_error(config: Config) -> None:
    config.web.archive_dir.mkdir(parents=True)
    (config.web.archive_dir / "archive.json").write_text("{not json")
    with pytest.raises(StateError, match=r"archive\.json"):
        rebuild_archive(config)


def test_an_empty_archive_has_an_index_and_a_valid_empty_feed(config: Config) -> None:
    assert rebuild_archive(config) == ()
    assert "No issue has been sent yet" in (config.web.archive_dir / "index.html").read_text()
    feed = feedparser.parse((config.web.archive_dir / "feed.atom").read_bytes())
    assert not feed.bozo
    assert feed.entries == []


def test_digest_serve_serves_the_view_in_browser_link(config: Config, tmp_path: Path) -> None:
    db = open_store(config)
    folder = write_built_issue(tmp_path / "out", "2025-W19", subject="Week 19")
    record_sent(db, folder, "2025-W19", sent_at=SENT)
    publish_issue(config, db, "2025-W19")
    app = create_public_app(config, clock=lambda: SENT)
    path = httpx.URL(issue_url(config.web.base_url, "2025-W19")).path.removeprefix("/digest")
    with served(app) as base, httpx.Client(base_url=base) as client:
        page = client.get(path)
        assert page.status_code == 200
        assert "Web version of issue 2025-W19" in page.text
        assert client.get("/issues/2025-W19").status_code in (301, 307, 308)
        index = client.get("/")
        assert index.status_code == 200
        assert "Week 19" in index.text
        feed = client.get("/feed.atom")
        assert feed.status_code == 200
        assert not feedparser.parse(feed.content).bozo
        assert client.get("/assets/site.css").headers["content-type"].startswith("text/css")
        missing = client.get("/issues/nope/")
        assert missing.status_code == 404
        assert "There is no page at this address" in missing.text
        assert "Traceback" not in missing.text
        assert "script-src" not in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"


def test_digest_publish_republishes_every_sent_issue(
    config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = open_store(config)
    folder = write_built_issue(tmp_path / "out", "2025-W19")
    record_sent(db, folder, "2025-W19", sent_at=SENT)
    db.close()
    assert main(["publish", "--config", str(config.path)]) == 0
    assert "published 2025-W19" in capsys.readouterr().out
    assert (config.web.archive_dir / "issues" / "2025-W19" / "index.html").is_file()
    assert main(["publish", "--config", str(config.path), "--issue", "nope"]) == 2


def test_end_to_end_build_send_publish_and_unsubscribe_from_the_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real pipeline: build the sample, send it (outbox), then follow the message's own links."""
    import email
    import email.policy
    import re
    from urllib.parse import urlsplit

    from web_support import AS_OF, PREVIEW_NOW, sample_project

    from digest.pipeline.build import build_issue
    from digest.pipeline.send import send_issue

    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    config = load_config(sample_project(tmp_path))
    db = open_store(config)
    db.subscribers.upsert_subscriber("reader@example.org", name="Reader", at=PREVIEW_NOW)
    built = build_issue(config, db, now=PREVIEW_NOW, as_of=AS_OF, offline=False).built
    assert built is not None
    report = send_issue(config, db, now=PREVIEW_NOW)
    assert report.ok
    assert report.completed
    assert f"published issue {built.issue.id} to the web archive" in report.notes

    html = built.email_html.read_text(encoding="utf-8")
    match = re.search(r'href="([^"]+)"[^>]*>View this email in your browser', html)
    assert match
    assert match.group(1) == issue_url(config.web.base_url, built.issue.id)
    [eml] = (config.delivery.outbox / "new").iterdir()
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    one_click = next(u.strip("<> ") for u in str(message["List-Unsubscribe"]).split(",") if "http" in u)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    with served(create_public_app(config, clock=lambda: PREVIEW_NOW)) as base, httpx.Client() as client:
        page = client.get(base + urlsplit(match.group(1)).path)
        assert page.status_code == 200
        assert page.text == built.web_html.read_text(encoding="utf-8")
        index = client.get(f"{base}/")
        assert built.issue.subject.replace("'", "&#39;") in index.text
        feed = feedparser.parse(client.get(f"{base}/feed.atom").content)
        assert not feed.bozo
        assert feed.entries[0].link == match.group(1)

        parts = urlsplit(one_click)
        target = f"{base}{parts.path}?{parts.query}"
        confirm = client.get(target)
        assert confirm.status_code == 200
        assert db.subscribers.get_subscriber("reader@example.org").status == "active"  # type: ignore[union-attr]
        answer = client.post(
            target,
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 200
    assert db.subscribers.get_subscriber("reader@example.org").status == "unsubscribed"  # type: ignore[union-attr]
