"""Ingest: 50 feeds x 100 entries from a local server adding 100 ms per response; parse vs feedparser."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import feedparser

from digest.config import load_config
from digest.ingest.parse import ParseContext, parse_document
from digest.pipeline.ingest import ingest_sources, parse_workers
from digest.state import open_state

FEEDS = 50
ENTRIES = 100
LATENCY = 0.100
NOW = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)


def make_feed(n: int) -> bytes:
    """A WordPress-like RSS 2.0 feed: a teaser description and the full article as content:encoded (about
    2.5 KB of HTML with links, a list and pictures), categories and an author per item."""
    items = []
    for i in range(ENTRIES):
        when = format_datetime(datetime(2025, 5, 1 + i % 9, i % 24, i % 60, tzinfo=UTC))
        teaser = (
            f"Story {i} of feed {n}: the local NHS and its partners announced new services for patients "
            "across the area, with more to follow this summer. Residents are invited to find out "
            "more [&#8230;]"
        )
        paragraph = (
            "<p>The <strong>local NHS</strong> and its partners announced new "
            f'<a href="/services/{i}?utm_source=rss">services for patients</a> across Bedfordshire, Luton '
            "and Milton Keynes, with <em>more</em> to follow this summer. &ldquo;We want every resident to "
            "know what is available,&rdquo; said the chief "
            "executive, &amp; thanked staff for their work.</p>"
        )
        article = (
            f'<figure><img src="/img/{n}-{i}.jpg" alt="Staff at the new clinic {i}" width="640" height="360">'
            "<figcaption>The new clinic</figcaption></figure>"
            + paragraph * 4
            + "<ul><li>Drop-in sessions on weekdays</li><li>Online events</li><li>Advice by phone</li></ul>"
            + f'<p>Read the <a href="https://feed{n}.example.org/report-{i}.pdf">full report</a>.</p>'
            + '<img src="https://stats.example.org/pixel.gif" width="1" height="1" alt="">'
        )
        items.append(
            f"<item><title>Feed {n} story {i}: services &amp; support expand</title>"
            f"<link>https://feed{n}.example.org/news/{i}</link>"
            f'<guid isPermaLink="false">https://feed{n}.example.org/?p={1000 + i}</guid>'
            f"<pubDate>{when}</pubDate><category>News</category><category>Health</category>"
            "<dc:creator>Press Office</dc:creator>"
            f"<description><![CDATA[{teaser}]]></description>"
            f"<content:encoded><![CDATA[{article}]]></content:encoded></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>Feed {n}</title><link>https://feed{n}.example.org/</link><description>Bench</description>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


@contextmanager
def slow_server(bodies: dict[str, bytes]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            time.sleep(LATENCY)
            body = bodies[self.path]
            etag = f'"{hash(body)}"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server API
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def write_config(folder: Path, base: str, concurrency: int) -> Path:
    lines = ["[fetch]", f"concurrency = {concurrency}", "retries = 0", ""]
    for n in range(FEEDS):
        lines += ["[[sources]]", f'name = "Feed {n}"', f'url = "{base}/feed{n}.xml"', ""]
    path = folder / "config.toml"
    path.write_text("\n".join(lines))
    return path


def timed_ingest(
    folder: Path, base: str, concurrency: int, parse_processes: int | None = None
) -> tuple[float, float, int]:
    """Wall time of a first fetch+parse of every feed, then of a second run (all 304), and the entry count.

    `parse_processes` as in `ingest_sources` (None: worker processes, one per core; 0: in the event loop).
    """
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = load_config(write_config(folder, base, concurrency))
    db = open_state(config.state_path)
    start = time.perf_counter()
    result = ingest_sources(config, db, now=NOW, parse_processes=parse_processes)
    first = time.perf_counter() - start
    assert all(r.status.value == "ok" for r in result.reports), result.reports
    start = time.perf_counter()
    again = ingest_sources(config, db, now=NOW, parse_processes=parse_processes)
    second = time.perf_counter() - start
    assert all(r.status.value == "not_modified" for r in again.reports)
    db.close()
    return first, second, len(result.entries)


def best_of(runs: int, work: object) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    bodies = {f"/feed{n}.xml": make_feed(n) for n in range(FEEDS)}
    total_entries = FEEDS * ENTRIES
    with tempfile.TemporaryDirectory() as tmp, slow_server(bodies) as base:
        concurrent, concurrent_304, count = timed_ingest(Path(tmp) / "concurrent", base, concurrency=8)
        serial, serial_304, _ = timed_ingest(Path(tmp) / "serial", base, concurrency=1)
        inline, _, _ = timed_ingest(Path(tmp) / "inline", base, concurrency=8, parse_processes=0)
        serial_inline, _, _ = timed_ingest(
            Path(tmp) / "serial-inline", base, concurrency=1, parse_processes=0
        )
    assert count == total_entries, count
    workers = parse_workers(None, sources=FEEDS, cores=os.cpu_count() or 1)
    print(f"{FEEDS} feeds x {ENTRIES} entries, {LATENCY * 1000:.0f} ms added per response, retries off")
    print(f"parsing in {workers} worker processes (the default for {FEEDS} sources on this machine):")
    print(
        f"  concurrent fetch+parse (concurrency 8): {concurrent:6.2f} s  (again, 304: {concurrent_304:.2f} s)"
    )
    print(f"  serial fetch+parse     (concurrency 1): {serial:6.2f} s  (again, 304: {serial_304:.2f} s)")
    print(f"  serial / concurrent: {serial / concurrent:.1f}x faster concurrently")
    print("parsing in the event loop (parse_processes=0), for comparison:")
    print(f"  concurrent fetch+parse (concurrency 8): {inline:6.2f} s")
    print(f"  serial fetch+parse     (concurrency 1): {serial_inline:6.2f} s")
    print(
        f"  serial in-loop / concurrent with workers: {serial_inline / concurrent:.1f}x;"
        f" worker processes vs in-loop, both concurrent: {inline / concurrent:.2f}x"
    )

    documents = list(bodies.values())
    ctx = ParseContext(source="Bench", category="News", url="https://feed.example.org/", seen_at=NOW)

    def ours() -> None:
        for body in documents:
            parse_document(body, ctx)

    def plain() -> None:
        for body in documents:
            feedparser.parse(body)

    ours()  # warm up imports and caches
    ours_time = best_of(2, ours)
    plain_time = best_of(2, plain)
    print(f"parse throughput on the same {len(documents)} documents ({total_entries} entries), best of 2:")
    print(
        f"  digest parse (feedparser, its sanitiser and URI resolution off; nh3 + urljoin once): "
        f"{total_entries / ours_time:8.0f} entries/s"
    )
    print(
        f"  plain feedparser.parse with its defaults (no clean Entry values):               "
        f"{total_entries / plain_time:8.0f} entries/s"
    )
    print(f"  ratio: {plain_time / ours_time:.2f}x")


if __name__ == "__main__":
    main()
