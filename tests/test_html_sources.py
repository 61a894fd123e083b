"""HTML listing sources (`kind = "html"`): selectors, dates, loud layout changes, and the seeds' case built
end to end with article enrichment, all against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from feed_server import Reply, feed, running_server
from listing_pages import SELECT, article_page, blmk_stories, listing_page
from state_support import sql

from digest.cli import main
from digest.config import load_config
from digest.errors import ConfigError, ParseError
from digest.ingest.parse import Listing, ParseContext, parse_document
from digest.ingest.parse.dates import parse_date
from digest.models import SourceStatus
from digest.pipeline.ingest import ingest_sources
from digest.state.store import open_store

NOW = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)
AS_OF = "2025-05-09T17:00:00+01:00"


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def write_site(
    folder: Path, sources: list[dict[str, object]], *, fetch: dict[str, object] | None = None
) -> Path:
    lines = ["[fetch]", *(f"{k} = {toml_value(v)}" for k, v in (fetch or {}).items()), ""]
    for source in sources:
        lines += ["[[sources]]", *(f"{k} = {toml_value(v)}" for k, v in source.items()), ""]
    lines += [
        "[digest]",
        'categories = ["News", "Blog"]',
        'timezone = "Europe/London"',
        "",
        "[[priorities]]",
        'name = "Start Well"',
        'keywords = ["midwives"]',
        "",
    ]
    path = folder / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def html_source(url: str, **extra: object) -> dict[str, object]:
    return {
        "name": "BLMK page",
        "url": url,
        "category": "News",
        "kind": "html",
        "select": dict(SELECT),
        **extra,
    }


def ctx(listing: Listing, url: str = "https://blmk.example/our-priorities/") -> ParseContext:
    return ParseContext(
        source="BLMK page", category="News", url=url, seen_at=NOW, timezone="Europe/London", listing=listing
    )


# 1. Listing sources: selectors, sel@attr, defaults, dates, relative links


def test_a_blmk_shaped_listing_gives_one_clean_entry_per_card() -> None:
    stories = blmk_stories()
    body = listing_page(stories, image=True)
    from digest.config import Selectors

    parsed = parse_document(body, ctx(Listing(Selectors(**SELECT), "d MMMM y", "en_GB")))
    assert parsed.format == "html"
    assert len(parsed.entries) == len(stories) == 6
    first = parsed.entries[0]
    assert first.title == stories[0].cut_title
    assert first.link == "https://blmk.example/articles/story-0"  # relative link resolved against the page
    assert first.published == datetime(2025, 5, 8, 23, 0, tzinfo=UTC)  # 9 May 2025, midnight in London
    assert not first.date_estimated
    assert first.category == "News"
    assert [e.category for e in parsed.entries].count("Blog") == 3
    assert first.summary_text.startswith("Bedfordshire, Luton and Milton Keynes Integrated Care Board")
    assert first.image is not None and first.image.url == "https://blmk.example/img/story-0-thumb.jpg"
    assert len({e.id for e in parsed.entries}) == 6


def test_default_link_and_image_are_the_first_a_href_and_img_src() -> None:
    body = b"""<html><body><ul>
      <li class="n"><a href="/a/1">First</a>
          <img src="data:image/gif;base64,R0l" data-src="/i/1.png" alt="One">
          <time datetime="2025-05-09">Friday</time></li>
      <li class="n"><a href="https://other.example/2">Second</a>
          <time datetime="2025-05-08T10:00:00Z">x</time></li>
    </ul></body></html>"""
    from digest.config import Selectors

    listing = Listing(Selectors(item="li.n", title="a", date="time@datetime"), "auto", "en_GB")
    entries = parse_document(body, ctx(listing, "https://site.example/news/")).entries
    assert [e.link for e in entries] == ["https://site.example/a/1", "https://other.example/2"]
    assert entries[0].image is not None and entries[0].image.url == "https://site.example/i/1.png"
    assert entries[0].image.alt == "One"
    assert entries[1].image is None
    assert entries[1].published == datetime(2025, 5, 8, 10, 0, tzinfo=UTC)


def test_date_format_is_a_cldr_pattern_read_in_the_locale() -> None:
    assert parse_date("9. Mai 2025", pattern="d. MMMM y", locale="de_DE", timezone="UTC") == datetime(
        2025, 5, 9, tzinfo=UTC
    )
    assert parse_date(
        "vendredi 9 mai 2025", pattern="EEEE d MMMM y", locale="fr_FR", timezone="UTC"
    ) == datetime(2025, 5, 9, tzinfo=UTC)
    assert parse_date("09/05/2025", pattern="dd/MM/y", timezone="UTC") == datetime(2025, 5, 9, tzinfo=UTC)
    assert parse_date("9 May 2025", pattern="dd/MM/y", timezone="UTC") is None
    for text in (
        "9 May 2025",
        "9th May 2025",
        "Friday 9 May 2025",
        "May 9, 2025",
        "2025-05-09",
        "Fri, 09 May 2025 00:00:00 +0000",
    ):
        assert parse_date(text, timezone="UTC") == datetime(2025, 5, 9, tzinfo=UTC), text
    assert parse_date("yesterday", timezone="UTC") is None


def test_config_reads_html_sources_and_reports_bad_selectors(tmp_path: Path) -> None:
    good = write_site(
        tmp_path,
        [html_source("https://blmk.example/", date_format="d MMMM y", enrich=True)],
        fetch={"enrich_max": 7},
    )
    config = load_config(good)
    source = config.sources[0]
    assert source.select is not None and source.select.item == ".news-card"
    assert source.select.link == "a.news-card__link@href" and source.select.image == "img@src"
    assert source.date_format == "d MMMM y" and source.enrich
    assert config.fetch.enrich_max == 7
    bad = write_site(
        tmp_path,
        [
            {"name": "a", "url": "https://a.example/", "kind": "html", "select": {"title": "h3"}},
            {
                "name": "b",
                "url": "https://b.example/",
                "kind": "html",
                "select": {"item": "..x", "title": "h3"},
            },
            {"name": "c", "url": "https://c.example/", "select": {"item": "li", "title": "h3"}},
            {"name": "d", "url": "https://d.example/", "kind": "page"},
            {**html_source("https://e.example/"), "name": "e", "date_format": "MMMM y"},
        ],
    )
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    problems = "\n".join(info.value.problems)
    assert "sources[0].select.item: is required" in problems
    assert "sources[1].select.item: '..x' is not a CSS selector" in problems
    assert 'sources[2].select: is only read when kind = "html"' in problems
    assert "sources[3].kind: must be one of 'feed', 'html'" in problems
    assert "sources[4].date_format: 'MMMM y' needs a day" in problems


# 2. Layout changes are loud, and the last good entries stay


def test_a_layout_change_fails_the_source_naming_the_selector_and_keeps_its_entries(tmp_path: Path) -> None:
    stories = blmk_stories()
    with running_server() as server:
        server.routes["/our-priorities/"] = feed(listing_page(stories), content_type="text/html")
        config = load_config(
            write_site(tmp_path, [html_source(f"{server.url}/our-priorities/", date_format="d MMMM y")])
        )
        db = open_store(config)
        first = ingest_sources(config, db, now=NOW, parse_processes=0)
        assert first.reports[0].status is SourceStatus.OK
        assert first.reports[0].entries == 6

        server.routes["/our-priorities/"] = feed(
            listing_page(stories, card_class="card-v2"), content_type="text/html"
        )
        second = ingest_sources(config, db, now=NOW, parse_processes=0)
        report = second.reports[0]
        assert report.status is SourceStatus.FAILED
        assert report.error is not None
        assert "item selector '.news-card' matched nothing: has the page's layout changed?" in report.error
        assert len(second.entries) == 6  # the last good entries are kept
        assert len(db.entries.current_entries("BLMK page")) == 6


def test_items_that_lose_their_title_or_date_fail_naming_that_selector() -> None:
    from digest.config import Selectors

    stories = blmk_stories()
    body = listing_page(stories)
    lost_title = Listing(Selectors(item=".news-card", title=".card-title"), "auto", "en_GB")
    with pytest.raises(ParseError, match=r"title selector '\.card-title' found no title in 6 of 6 items"):
        parse_document(body, ctx(lost_title))
    lost_date = Listing(
        Selectors(item=".news-card", title="h3", date=".news-card__teaser"), "d MMMM y", "en_GB"
    )
    with pytest.raises(ParseError, match=r"date selector '\.news-card__teaser' gave no date in 6 of 6 items"):
        parse_document(body, ctx(lost_date))
    wrong_format = Listing(
        Selectors(item=".news-card", title="h3", date=".news-card__date"), "dd/MM/y", "en_GB"
    )
    with pytest.raises(ParseError, match=r"it found '9 May 2025', which date_format 'dd/MM/y' does not read"):
        parse_document(body, ctx(wrong_format))


# 5. The seeds' case: listing + article pages -> `digest build` with full titles, links, dates, pictures


def test_digest_build_on_a_blmk_listing_with_enrichment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stories = blmk_stories()
    with running_server() as server:
        server.routes["/our-priorities/"] = feed(listing_page(stories), content_type="text/html")
        for story in stories:
            server.routes[f"/articles/{story.slug}"] = feed(
                article_page(story, base=server.url), etag=f'"{story.slug}"', content_type="text/html"
            )
        config_path = write_site(tmp_path, [html_source(f"{server.url}/our-priorities/", enrich=True)])
        assert main(["build", "--config", str(config_path), "--as-of", AS_OF]) == 0
        out = capsys.readouterr().out
        issue_json = next((tmp_path / "out").glob("*/issue.json")) if (tmp_path / "out").exists() else None
        if issue_json is None:
            issue_json = next(tmp_path.rglob("issue.json"))
        issue = json.loads(issue_json.read_text(encoding="utf-8"))
        assert out
        entries = [e for s in issue["sections"] for g in s["groups"] for e in g["entries"]]
        in_window = [s for s in stories if s.date_iso >= "2025-05-03"]  # the 7 days up to 9 May
        assert len(entries) == len(in_window) == 5
        by_link = {e["link"]: e for e in entries}
        for story in in_window:
            entry = by_link[f"{server.url}/articles/{story.slug}"]
            assert entry["title"] == story.full_title
            assert "…" not in entry["title"] and "..." not in entry["title"]
            published = datetime.fromisoformat(entry["published"]).astimezone(ZoneInfo("Europe/London"))
            assert published.date().isoformat() == story.date_iso
            assert entry["image"] == {
                "url": f"{server.url}/img/{story.slug}.jpg",
                "alt": f"Picture for {story.full_title}",
                "width": 1200,
                "height": 630,
            }
            cut = story.cut_title != story.full_title
            assert entry["enriched"] == (["title", "image"] if cut else ["image"])
        # each article was fetched once, with the same User-Agent as the listing, after robots.txt
        listing_agent = server.hits("/our-priorities/")[0].headers["user-agent"]
        for story in stories:
            hits = server.hits(f"/articles/{story.slug}")
            assert len(hits) == 1
            assert hits[0].headers["user-agent"] == listing_agent
        assert len(server.hits("/robots.txt")) == 1

        # A rebuild with a changed listing re-parses; the articles come from state, not the network.
        server.routes["/our-priorities/"] = feed(
            listing_page(stories) + b"<!-- changed -->", content_type="text/html"
        )
        assert main(["build", "--config", str(config_path), "--as-of", AS_OF]) == 0
        for story in stories:
            assert len(server.hits(f"/articles/{story.slug}")) == 1


# 4. Enrichment: fills a missing date (and marks it), never fails the source, honours robots.txt and the cap


def _serve_articles(server: object, stories: list, *, og: bool = True) -> None:  # type: ignore[type-arg]
    for story in stories:
        server.routes[f"/articles/{story.slug}"] = feed(  # type: ignore[attr-defined]
            article_page(story, base=server.url, og=og),  # type: ignore[attr-defined]
            etag=f'"{story.slug}"',
            content_type="text/html",
        )


def undated_source(url: str) -> dict[str, object]:
    select = {k: v for k, v in SELECT.items() if k != "date"}
    return {**html_source(url, enrich=True), "select": select}


def test_enrichment_fills_a_missing_date_and_marks_what_came_from_the_article(tmp_path: Path) -> None:
    stories = blmk_stories()
    with running_server() as server:
        server.routes["/p/"] = feed(listing_page(stories), content_type="text/html")
        _serve_articles(server, stories)
        config = load_config(write_site(tmp_path, [undated_source(f"{server.url}/p/")]))
        db = open_store(config)
        result = ingest_sources(config, db, now=NOW, parse_processes=0)
        assert result.reports[0].status is SourceStatus.OK
        for story, entry in zip(stories, db.entries.current_entries("BLMK page"), strict=True):
            assert not entry.date_estimated
            assert entry.published.astimezone(ZoneInfo("Europe/London")).date().isoformat() == story.date_iso
            assert "date" in entry.enriched and "image" in entry.enriched


def test_a_page_without_metadata_or_a_failed_fetch_leaves_entries_as_they_were(tmp_path: Path) -> None:
    stories = blmk_stories()
    with running_server() as server:
        server.routes["/p/"] = feed(listing_page(stories), content_type="text/html")
        _serve_articles(server, stories[:3], og=False)
        server.routes[f"/articles/{stories[3].slug}"] = lambda request: Reply(500, b"oops")
        # stories[4:] are not served at all: 404
        config = load_config(write_site(tmp_path, [undated_source(f"{server.url}/p/")], fetch={"retries": 0}))
        db = open_store(config)
        result = ingest_sources(config, db, now=NOW, parse_processes=0, backoff=0)
        assert result.reports[0].status is SourceStatus.OK
        entries = db.entries.current_entries("BLMK page")
        assert len(entries) == 6
        for story, entry in zip(stories, entries, strict=True):
            assert entry.enriched == ()
            assert entry.title == story.cut_title
            assert entry.date_estimated and entry.published == NOW
            assert entry.image is None


def test_robots_txt_and_enrich_max_bound_the_article_fetches(tmp_path: Path) -> None:
    stories = blmk_stories()
    with running_server() as server:
        server.routes["/p/"] = feed(listing_page(stories), content_type="text/html")
        _serve_articles(server, stories)
        server.routes["/robots.txt"] = feed(
            f"User-agent: *\nDisallow: /articles/{stories[0].slug}\n".encode(), content_type="text/plain"
        )
        config = load_config(
            write_site(
                tmp_path, [undated_source(f"{server.url}/p/")], fetch={"enrich_max": 3, "concurrency": 2}
            )
        )
        db = open_store(config)
        ingest_sources(config, db, now=NOW, parse_processes=0)
        fetched = [s for s in stories if server.hits(f"/articles/{s.slug}")]
        assert not server.hits(f"/articles/{stories[0].slug}")  # disallowed
        assert len(fetched) == 2  # the disallowed one counted against the 3 pages of enrich_max
        assert server.max_in_flight <= 3  # listing done; at most `concurrency` articles at once (+ robots)
        # The next run (the listing changed) reads the rest, and never the disallowed one.
        server.routes["/p/"] = feed(listing_page(stories) + b" ", content_type="text/html")
        ingest_sources(config, db, now=NOW, parse_processes=0)
        assert len([s for s in stories if server.hits(f"/articles/{s.slug}")]) == 5
        assert not server.hits(f"/articles/{stories[0].slug}")
        assert all(len(server.hits(f"/articles/{s.slug}")) <= 1 for s in stories)


def test_a_runs_article_pages_are_stored_in_one_transaction(tmp_path: Path) -> None:
    stories = blmk_stories()
    with running_server() as server:
        server.routes["/p/"] = feed(listing_page(stories), content_type="text/html")
        _serve_articles(server, stories[:4])
        server.routes[f"/articles/{stories[4].slug}"] = lambda request: Reply(
            500, b"oops"
        )  # failed: stored too
        config = load_config(write_site(tmp_path, [undated_source(f"{server.url}/p/")], fetch={"retries": 0}))
        db = open_store(config)
        statements: list[str] = []
        sql(db).set_trace_callback(statements.append)
        ingest_sources(config, db, now=NOW, parse_processes=0, backoff=0)
        sql(db).set_trace_callback(None)
    writes = [i for i, s in enumerate(statements) if s.lstrip().upper().startswith("INSERT INTO ARTICLES")]
    assert len(writes) == len(stories)  # 4 read, 1 failed (HTTP 500), 1 failed (404)
    between = statements[writes[0] : writes[-1]]
    assert not [s for s in between if s.strip().upper() in ("COMMIT", "END")]  # one commit for them all
    stored = db.articles.get_articles([f"{server.url}/articles/{s.slug}" for s in stories])
    assert sorted(r.status for r in stored.values()) == ["failed", "failed", "ok", "ok", "ok", "ok"]


def test_an_article_seen_again_as_a_new_entry_is_fetched_with_a_conditional_get(tmp_path: Path) -> None:
    stories = blmk_stories()[:2]
    with running_server() as server:
        server.routes["/p/"] = feed(listing_page(stories), content_type="text/html")
        _serve_articles(server, stories)
        config = load_config(write_site(tmp_path, [undated_source(f"{server.url}/p/")]))
        db = open_store(config)
        ingest_sources(config, db, now=NOW, parse_processes=0)
        first = server.hits(f"/articles/{stories[0].slug}")
        assert len(first) == 1 and "if-none-match" not in first[0].headers
        # The story leaves state (as after pruning) and comes back: a new entry, so the page is asked again,
        # with the stored ETag; the 304 keeps what state holds.
        sql(db).execute("DELETE FROM entries")
        server.routes["/p/"] = feed(listing_page(stories) + b" ", content_type="text/html")
        ingest_sources(config, db, now=NOW, parse_processes=0)
        again = server.hits(f"/articles/{stories[0].slug}")
        assert len(again) == 2 and again[1].headers["if-none-match"] == f'"{stories[0].slug}"'
        entry = db.entries.current_entries("BLMK page")[0]
        assert entry.enriched == ("date", "title", "image")
        assert entry.image is not None and entry.image.width == 1200


# 3. Trying selectors: `digest sources try`


def test_sources_try_prints_what_the_selectors_extract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stories = blmk_stories()
    with running_server() as server:
        server.routes["/p/"] = feed(listing_page(stories, image=True), content_type="text/html")
        args = ["sources", "try", f"{server.url}/p/", "--select-item", ".news-card", "--select-title", "h3"]
        args += ["--select-date", ".news-card__date", "--select-category", ".news-card__label"]
        assert main([*args, "--date-format", "d MMMM y", "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
        assert len(document["items"]) == 6
        first = document["items"][0]
        assert first["title"] == stories[0].cut_title
        assert first["link"] == f"{server.url}/articles/story-0"
        assert first["date_text"] == "9 May 2025" and first["published"] == "2025-05-09T00:00:00+00:00"
        assert first["category"] == "News"
        assert first["image"] == f"{server.url}/img/story-0-thumb.jpg"
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "6 items match '.news-card'" in out and "1. Local NHS bodies commit" in out
        assert "date: '9 May 2025' -> 2025-05-09" in out
        # as the source will read it with [digest] timezone = "Europe/London": midnight BST
        assert main([*args, "--date-format", "d MMMM y", "--timezone", "Europe/London", "--json"]) == 0
        first = json.loads(capsys.readouterr().out)["items"][0]
        assert first["published"] == "2025-05-08T23:00:00+00:00"
        assert main([*args, "--timezone", "Mars/Olympus"]) == 2
        assert "--timezone: unknown time zone 'Mars/Olympus'" in capsys.readouterr().err


def test_sources_try_without_selectors_lists_feed_links_or_suggests_items(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with_feed = tmp_path / "with-feed.html"
    with_feed.write_text(
        '<html><head><link rel="alternate" type="application/rss+xml" title="News" href="/feed.xml">'
        '<link rel="stylesheet" href="/s.css"></head><body></body></html>'
    )
    assert main(["sources", "try", str(with_feed), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["feeds"] == [
        {"url": "/feed.xml", "type": "application/rss+xml", "title": "News"}
    ]
    page = tmp_path / "listing.html"
    # The cards hold a link and a date; the nav repeats links without dates; the aside repeats dates only.
    page.write_bytes(
        listing_page(blmk_stories()).replace(
            b"<nav>", b"<nav><ul class='menu'>" + b"<li class='m'><a href='/x'>x</a></li>" * 8 + b"</ul>"
        )
        + b"<aside>"
        + b"<p class='d'>9 May 2025</p>" * 5
        + b"</aside>"
    )
    assert main(["sources", "try", str(page), "--json"]) == 0
    candidates = json.loads(capsys.readouterr().out)["candidates"]
    assert candidates[0]["item"] == "div.news-card"
    assert candidates[0]["with_link_and_date"] == 6 and candidates[0]["matches"] == 6
    assert candidates[0]["title"] == "h3.news-card__title" and candidates[0]["date"] == "span.news-card__date"
    assert all(c["item"] not in ("li.m", "p.d") for c in candidates)
    assert main(["sources", "try", str(page)]) == 0
    assert "--select-item 'div.news-card'" in capsys.readouterr().out
    assert main(["sources", "try", str(page), "--select-title", "h3"]) == 2


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--locale", "xx_YY", "--locale: unknown locale 'xx_YY'"),  # was "a bug in digest" with a pattern
        ("--date-format", "qqq", "--date-format: 'qqq': digest cannot read the pattern letters q"),
        ("--timezone", "Mars/Base", "--timezone: unknown time zone 'Mars/Base'"),
    ],
)
def test_sources_try_refuses_what_the_config_check_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    page = tmp_path / "news.html"
    page.write_bytes(listing_page(blmk_stories()))
    args = ["sources", "try", str(page), "--select-item", ".news-card", "--date-format", "d MMMM y"]
    assert main([*args, option, value]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (
            b'<?xml version="1.0"?>\n<!-- c -->\n<rss version="2.0"><channel></channel></rss>',
            "application/rss+xml",
        ),
        (b'\xef\xbb\xbf<feed xmlns="http://www.w3.org/2005/Atom"></feed>', "application/atom+xml"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": []}', "application/feed+json"),
    ],
)
def test_sources_try_on_a_feed_says_it_is_one(
    tmp_path: Path, body: bytes, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A feed given to `sources try` is the source's url as it is, not a page with no feed links."""
    path = tmp_path / "news"
    path.write_bytes(body)
    assert main(["sources", "try", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["feeds"] == [
        {"url": str(path), "type": kind, "title": "this address is a feed"}
    ]
    assert main(["sources", "try", str(path)]) == 0
    assert f"{path} is a feed ({kind}): use it as the source's url" in capsys.readouterr().out


# 5. The shipped sample: the listing source and its local stand-in articles, offline


def test_the_shipped_sample_reads_its_listing_page_and_local_articles(tmp_path: Path) -> None:
    import shutil

    from conftest import REPO

    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    shutil.copytree(REPO / "feeds", tmp_path / "feeds")
    config = load_config(tmp_path / "config.toml")
    db = open_store(config)
    result = ingest_sources(config, db, now=NOW, parse_processes=0)
    report = next(r for r in result.reports if r.name == "BLMK latest news (web page)")
    assert report.status is SourceStatus.OK and report.entries == 6
    entries = db.entries.current_entries("BLMK latest news (web page)")
    assert [e.category for e in entries] == ["News", "News", "Blog", "Blog", "Blog", "News"]
    assert all(e.article and e.article.startswith("feeds/pages/articles/") for e in entries)
    chaplaincy = entries[2]
    # its stand-in names the real article's address, which the listing's stored copy does not show
    assert chaplaincy.link == (
        "https://blmkhealthandcarepartnership.org/you-cant-catch-death-reflections-from-the-chaplaincy-of-sarah-crane"
    )
    assert chaplaincy.enriched == ("link",)
    assert all(e.link is None for e in entries if e is not chaplaincy)  # no made-up addresses
