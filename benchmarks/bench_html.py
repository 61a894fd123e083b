"""HTML listings and enrichment: a 100-item listing page (lxml + cssselect) beside feedparser reading the
same items as RSS, and enriching 50 articles from a server adding 100 ms per response against one."""

from __future__ import annotations

import asyncio
import html
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from digest.config import USER_AGENT, Selectors, Source
from digest.ingest import fetch
from digest.ingest.enrich import Enricher
from digest.ingest.parse import Listing, ParseContext, parse_document
from digest.models import Entry
from digest.state.store import open_store

ITEMS = 100
ARTICLES = 50
LATENCY = 0.100
NOW = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)
SELECT = Selectors(
    item=".news-card",
    title=".news-card__title",
    link="a@href",
    date=".news-card__date",
    summary=".news-card__teaser",
    category=".news-card__label",
)


def stories() -> list[tuple[str, str, datetime, str]]:
    return [
        (
            f"Local NHS story {i}: new services for patients across Bedfordshire, Luton and Milton Keynes",
            f"https://blmk.example/news/story-{i}",
            datetime(2025, 5, 1 + i % 9, tzinfo=UTC),
            f"Story {i}: the local NHS and its partners announced new services for patients across the area, "
            "with more to follow this summer. Residents are invited to find out more…",
        )
        for i in range(ITEMS)
    ]


def listing_page() -> bytes:
    cards = "".join(
        f'<div class="news-card"><span class="news-card__label">News</span>'
        f'<span class="news-card__date">{when.day} May 2025</span>'
        f'<h3 class="news-card__title">{html.escape(title)}</h3>'
        f'<p class="news-card__teaser">{html.escape(teaser)}</p>'
        f'<img src="/img/{i}.jpg" alt=""><a href="{link}">Read more</a></div>'
        for i, (title, link, when, teaser) in enumerate(stories())
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>News</title></head><body>'
        f"<nav><a href='/'>Home</a></nav><main>{cards}</main><footer>BLMK</footer></body></html>"
    ).encode()


def rss_feed() -> bytes:
    items = "".join(
        f"<item><title>{html.escape(title)}</title><link>{link}</link><category>News</category>"
        f"<pubDate>{format_datetime(when)}</pubDate><description>{html.escape(teaser)}</description>"
        f'<enclosure url="https://blmk.example/img/{i}.jpg" type="image/jpeg" length="1"/></item>'
        for i, (title, link, when, teaser) in enumerate(stories())
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>News</title>'
        f"<link>https://blmk.example/</link>{items}</channel></rss>"
    ).encode()


def rate(body: bytes, ctx: ParseContext, rounds: int) -> float:
    assert len(parse_document(body, ctx).entries) == ITEMS
    start = time.perf_counter()
    for _ in range(rounds):
        parse_document(body, ctx)
    return ITEMS * rounds / (time.perf_counter() - start)


def article(i: int) -> bytes:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Story {i}</title>'
        f'<meta property="og:title" content="Local NHS story {i}: the full title of the article">'
        f'<meta property="og:image" content="https://blmk.example/img/{i}.jpg">'
        '<meta property="og:image:width" content="1200"><meta property="og:image:height" content="630">'
        '<meta property="article:published_time" content="2025-05-09T09:30:00+01:00">'
        f"</head><body><article><h1>Story {i}</h1><p>{'Text of the article. ' * 200}</p></article>"
        "</body></html>"
    ).encode()


@contextmanager
def slow_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            time.sleep(LATENCY)
            if self.path == "/robots.txt":
                body = b"User-agent: *\nAllow: /\n"
            else:
                body = article(int(self.path.rsplit("/", 1)[-1]))
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the default backlog of 5 would drop concurrent connections

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def enrich_seconds(base: str, count: int, concurrency: int) -> float:
    source = Source(
        name="bench",
        url=f"{base}/list",
        kind="http",
        location=f"{base}/list",
        category="News",
        timeout=20.0,
        max_entries=None,
        user_agent=USER_AGENT,
        enabled=True,
        enrich=True,
    )
    entries = tuple(
        Entry(
            id=f"e{i}",
            source="bench",
            category="News",
            title=f"Local NHS story {i}: the full…",
            link=f"{base}/a/{i}",
            published=NOW,
            date_estimated=True,
        )
        for i in range(count)
    )

    async def run(db_path: Path) -> float:
        db = open_store(db_path)
        async with fetch.new_client(concurrency=concurrency) as client:
            enricher = Enricher(
                client=client,
                root=db_path.parent,
                max_pages=count,
                concurrency=concurrency,
                max_bytes=10_000_000,
                timezone="Europe/London",
                excerpt_chars=240,
            )
            start = time.perf_counter()
            done = await enricher.enrich(db, source, entries, known=frozenset(), now=NOW)
            seconds = time.perf_counter() - start
        assert all(e.enriched == ("date", "title", "image") for e in done), done[0].enriched
        db.close()
        return seconds

    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(run(Path(folder) / "state.db"))


def plain_get_seconds(base: str, count: int) -> float:
    """The floor: `count` concurrent GETs through the same client (no robots.txt, parsing or state)."""

    async def run() -> float:
        async with fetch.new_client(concurrency=count) as client:
            start = time.perf_counter()
            await asyncio.gather(
                *(
                    fetch.fetch_http(
                        client,
                        f"{base}/a/{i}",
                        name="bench",
                        timeout=20.0,
                        user_agent=USER_AGENT,
                        validators=fetch.Validators(),
                        max_bytes=10_000_000,
                        retries=0,
                    )
                    for i in range(count)
                )
            )
            return time.perf_counter() - start

    return asyncio.run(run())


def main() -> None:
    ctx = ParseContext(source="bench", category="News", url="https://blmk.example/news/", seen_at=NOW)
    listing_ctx = ParseContext(
        source="bench",
        category="News",
        url="https://blmk.example/news/",
        seen_at=NOW,
        listing=Listing(SELECT, "d MMMM y", "en_GB"),
    )
    page, feed = listing_page(), rss_feed()
    html_rate = rate(page, listing_ctx, 20)
    rss_rate = rate(feed, ctx, 20)
    print(
        f"listing page, {ITEMS} items ({len(page) / 1024:.0f} KB): "
        f"{html_rate:,.0f} entries/s (lxml + cssselect)"
    )
    print(f"same items as RSS ({len(feed) / 1024:.0f} KB):          {rss_rate:,.0f} entries/s (feedparser)")
    print(f"  listing / feedparser: {html_rate / rss_rate:.2f}x")
    with slow_server() as base:
        one = min(plain_get_seconds(base, 1) for _ in range(3))
        many = min(plain_get_seconds(base, ARTICLES) for _ in range(3))
        print(
            f"floor: plain GETs at {LATENCY * 1000:.0f} ms latency: 1 in {one * 1000:.0f} ms, "
            f"{ARTICLES} at once "
            f"in {many * 1000:.0f} ms = {many / one:.2f}x (the client's CPU per request on this machine)"
        )
        for concurrency in (50, 8):
            one = min(enrich_seconds(base, 1, concurrency) for _ in range(3))
            many = min(enrich_seconds(base, ARTICLES, concurrency) for _ in range(3))
            verdict = "ok" if many <= 1.5 * one else "over the 1.5x target"
            print(
                f"enrich at {LATENCY * 1000:.0f} ms latency, [fetch] concurrency = {concurrency}: 1 article "
                f"{one * 1000:.0f} ms, {ARTICLES} articles {many * 1000:.0f} ms = {many / one:.2f}x "
                f"({verdict})"
            )
