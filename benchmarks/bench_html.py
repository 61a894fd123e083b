"""HTML listings and enrichment: a 100-item listing page (lxml + cssselect) beside feedparser reading the
same items as RSS, and enriching 50 articles against enriching one, every reply held 100 ms."""

from __future__ import annotations

import asyncio
import html
import math
import multiprocessing
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from digest.config import USER_AGENT, Selectors, Source
from digest.ingest import fetch
from digest.ingest.enrich import Enricher
from digest.ingest.parse import Listing, ParseContext, parse_document
from digest.ingest.parse.article import read_article
from digest.models import Entry
from digest.state.store import open_store

ITEMS = 100
ARTICLES = 50
LATENCY = 0.100
ROUNDS = 5
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


class _Counters:
    """What the server saw, shared with the benchmark process: robots.txt and page requests, connections."""

    def __init__(self, context: BaseContext) -> None:
        self.robots = context.Value("i", 0)
        self.pages = context.Value("i", 0)
        self.connections = context.Value("i", 0)

    def read(self) -> tuple[int, int, int]:
        return self.robots.value, self.pages.value, self.connections.value


class _SlowHandler(BaseHTTPRequestHandler):
    """Holds every reply LATENCY seconds (robots.txt too), then answers with the whole reply at once."""

    protocol_version = "HTTP/1.1"  # keep-alive, as real sites
    disable_nagle_algorithm = True  # headers and body leave together: no 40 ms delayed-ACK stall per reply
    counters: _Counters
    real_pages: list[bytes]

    def do_GET(self) -> None:
        time.sleep(LATENCY)
        kind, _, number = self.path.rpartition("/")
        if self.path == "/robots.txt":
            counter, body = self.counters.robots, b"User-agent: *\nAllow: /\n"
        elif kind == "/real":
            counter, body = self.counters.pages, self.real_pages[int(number)]
        else:
            counter, body = self.counters.pages, article(int(number))
        with counter.get_lock():
            counter.value += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server API
        return


class _SlowServer(ThreadingHTTPServer):
    request_queue_size = 128  # the default backlog of 5 would drop concurrent connections
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, Any]:
        accepted = super().get_request()
        with _SlowHandler.counters.connections.get_lock():
            _SlowHandler.counters.connections.value += 1
        return accepted


def _serve(ready: Connection, counters: _Counters, pages: list[str]) -> None:
    _SlowHandler.counters = counters
    _SlowHandler.real_pages = [Path(p).read_bytes() for p in pages]
    server = _SlowServer(("127.0.0.1", 0), _SlowHandler)
    ready.send(server.server_address[1])
    server.serve_forever()


@contextmanager
def slow_server(pages: list[Path]) -> Iterator[tuple[str, _Counters]]:
    """The stand-in for the sites: its own process (its CPU is not digest's), serving /robots.txt, the
    synthetic article /a/N and the real page /real/N (N-th of `pages`)."""
    context = multiprocessing.get_context("spawn")
    counters = _Counters(context)
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve, args=(theirs, counters, [str(p) for p in pages]), daemon=True)
    process.start()
    try:
        if not ours.poll(60):
            raise RuntimeError("the benchmark's HTTP server did not start")
        yield f"http://127.0.0.1:{ours.recv()}", counters
    finally:
        process.terminate()
        process.join()


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    cpu: float  # CPU time of this process (event loop and reading threads) during the run
    robots: int  # robots.txt requests the server saw during the run
    pages: int
    connections: int


def enrich_run(base: str, counters: _Counters, count: int, concurrency: int, path: str = "a") -> Run:
    """One run's enrichment of `count` new entries, timed from Enricher.enrich's call to its return (a fresh
    client and state, as a run has: the robots.txt fetch and every connection are inside the time)."""
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
            link=f"{base}/{path}/{i}",
            published=NOW,
            date_estimated=True,
        )
        for i in range(count)
    )

    async def run(db_path: Path) -> tuple[float, float]:
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
            start, cpu = time.perf_counter(), time.process_time()
            done = await enricher.enrich(db, source, entries, known=frozenset(), now=NOW)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        if path == "a":
            assert all(e.enriched == ("date", "title", "image") for e in done), done[0].enriched
        db.close()
        return seconds, cpu

    before = counters.read()
    with tempfile.TemporaryDirectory() as folder:
        seconds, cpu = asyncio.run(run(Path(folder) / "state.db"))
    robots, pages, connections = (b - a for a, b in zip(before, counters.read(), strict=True))
    return Run(seconds, cpu, robots, pages, connections)


def plain_gets(base: str, count: int) -> tuple[float, float]:
    """httpx alone: `count` concurrent GETs through a fresh client (no robots.txt, parsing or state); the
    seconds and the CPU seconds they took."""

    async def run() -> tuple[float, float]:
        async with fetch.new_client(concurrency=count) as client:
            start, cpu = time.perf_counter(), time.process_time()
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
            return time.perf_counter() - start, time.process_time() - cpu

    return asyncio.run(run())


def floor_seconds(count: int, concurrency: int) -> float:
    """Latency alone: robots.txt, then the pages in waves of `concurrency`."""
    return LATENCY * (1 + math.ceil(count / min(count, concurrency)))


def best_pair(base: str, counters: _Counters, concurrency: int) -> tuple[Run, Run]:
    """The best of ROUNDS runs of 1 and of ARTICLES articles, run in turn (a busy moment of a shared machine
    hits both alike); each run is checked: robots.txt once, every page once, connections within the pool."""
    ones: list[Run] = []
    manys: list[Run] = []
    for _ in range(ROUNDS):
        ones.append(enrich_run(base, counters, 1, concurrency))
        manys.append(enrich_run(base, counters, ARTICLES, concurrency))
    for run, count in [(r, 1) for r in ones] + [(r, ARTICLES) for r in manys]:
        assert (run.robots, run.pages) == (1, count), run
        assert run.connections <= min(count, concurrency) + 1, run  # +1: robots.txt's, kept or not
    return min(ones, key=lambda r: r.seconds), min(manys, key=lambda r: r.seconds)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def read_cpu(pages: list[Path]) -> float:
    """Reading the pages' metadata (lxml + extruct), one after another, without any network."""
    bodies = [p.read_bytes() for p in pages]
    start = time.perf_counter()
    for i, body in enumerate(bodies):
        read_article(body, f"http://127.0.0.1/real/{i}", timezone="Europe/London")
    return time.perf_counter() - start


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
    pages = sorted((Path(__file__).resolve().parents[2] / "shared" / "pages").glob("*.html"))[:ARTICLES]
    print(
        f"enrichment: the server (its own process) holds every reply {ms(LATENCY)}, robots.txt included; "
        f"a run = Enricher.enrich with a fresh client and state; best of {ROUNDS}, 1 and {ARTICLES} in turn"
    )
    with slow_server(pages) as (base, counters):
        one_get = min(plain_gets(base, 1) for _ in range(ROUNDS))
        many_gets = min(plain_gets(base, ARTICLES) for _ in range(ROUNDS))
        print(
            f"  httpx alone: {ARTICLES} GETs at once {ms(many_gets[0])} vs 1 GET {ms(one_get[0])} = "
            f"{many_gets[0] / one_get[0]:.2f}x (CPU {ms(many_gets[1])} vs {ms(one_get[1])}: the client's own "
            "cost per request)"
        )
        for concurrency in (ARTICLES, 8):
            one, many = best_pair(base, counters, concurrency)
            ratio = many.seconds / one.seconds
            floor_many, floor_one = floor_seconds(ARTICLES, concurrency), floor_seconds(1, concurrency)
            default = ", the default" if concurrency == 8 else ""
            print(
                f"  [fetch] concurrency = {concurrency}{default}: {ARTICLES} articles {ms(many.seconds)} vs "
                f"1 article {ms(one.seconds)} = {ratio:.2f}x "
                f"({'within' if ratio <= 1.5 else 'over'} the 1.5x target; latency alone: "
                f"{ms(floor_many)} vs {ms(floor_one)} = {floor_many / floor_one:.1f}x)"
            )
            print(
                f"    per {ARTICLES}-article run: the server saw {many.robots} robots.txt, "
                f"{many.pages} pages, {many.connections} connections; "
                f"digest's CPU {ms(many.cpu)} (1 article: {ms(one.cpu)})"
            )
        if len(pages) == ARTICLES:
            real = min(
                (enrich_run(base, counters, ARTICLES, ARTICLES, path="real") for _ in range(ROUNDS)),
                key=lambda r: r.seconds,
            )
            cpu = min(read_cpu(pages) for _ in range(ROUNDS))
            size = sum(p.stat().st_size for p in pages) / len(pages) / 1024
            print(
                f"  {ARTICLES} real pages of ../shared/pages (mean {size:.0f} KB) at concurrency {ARTICLES}: "
                f"{ms(real.seconds)} (digest's CPU {ms(real.cpu)}); reading them alone (lxml + extruct, "
                f"no network): {ms(cpu)} of CPU"
            )
