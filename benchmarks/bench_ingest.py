"""Ingest: 50 feeds x 100 entries from a local server adding 100 ms per response; parse vs feedparser.

Each figure beside a baseline measured in the same run: fetch+parse of the 50 sources beside ONE source
of the same size at the same latency, and beside the floor for this machine: the latency rounds at the
configured concurrency (ceil(50 / concurrency) x 100 ms) and the CPU of parsing the 50 documents divided
by the cores, whichever is larger (they overlap at best). Runs alternate; medians are shown.
DIGEST_BENCH_FULL=1 adds a serial run (concurrency 1) and one parsing in the event loop.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
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

from digest.config import FetchSettings, load_config
from digest.ingest.parse import ParseContext, parse_document
from digest.pipeline.ingest import ingest_sources, parse_workers
from digest.state.store import open_store

FEEDS = 50
ENTRIES = 100
LATENCY = 0.100
NOW = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)
ROUNDS = 3
# Connections waiting to be accepted: the socketserver default of 5 drops SYNs when 50 fetches connect at
# once, and each dropped one stalls its fetch 1-20 s (the client retransmits): the figure is then noise.
LISTEN_BACKLOG = 256
FULL = os.environ.get("DIGEST_BENCH_FULL") == "1"  # also serial fetching and parsing in the event loop


class BackloggedHTTPServer(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG


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

    httpd = BackloggedHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def write_config(folder: Path, base: str, concurrency: int | None, feeds: int = FEEDS) -> Path:
    """Sources feed0..feed{feeds-1}; `concurrency` None leaves the configured default."""
    lines = ["[fetch]", *([f"concurrency = {concurrency}"] if concurrency else []), "retries = 0", ""]
    for n in range(feeds):
        lines += ["[[sources]]", f'name = "Feed {n}"', f'url = "{base}/feed{n}.xml"', ""]
    path = folder / "config.toml"
    path.write_text("\n".join(lines))
    return path


def timed_ingest(
    folder: Path, base: str, concurrency: int | None, parse_processes: int | None = None, feeds: int = FEEDS
) -> tuple[float, float, int]:
    """Wall time of a first fetch+parse of every feed, then of a second run (all 304), and the entry count.

    `parse_processes` as in `ingest_sources` (None: worker processes, one per core; 0: in the event loop).
    """
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = load_config(write_config(folder, base, concurrency, feeds))
    db = open_store(config)
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


def parse_cpu(documents: list[bytes]) -> float:
    """CPU seconds to parse `documents` in this process (digest's parse, best of 2)."""
    ctx = ParseContext(source="Bench", category="News", url="https://feed.example.org/", seen_at=NOW)
    times = []
    for _ in range(2):
        start = time.process_time()
        for body in documents:
            parse_document(body, ctx)
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    bodies = {f"/feed{n}.xml": make_feed(n) for n in range(FEEDS)}
    total_entries = FEEDS * ENTRIES
    concurrency = FetchSettings().concurrency
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    runs: dict[str, list[float]] = {"many": [], "many304": [], "one": [], "one304": []}
    with tempfile.TemporaryDirectory() as tmp, slow_server(bodies) as base:
        timed_ingest(Path(tmp) / "warm", base, None, feeds=2)  # imports, worker start-up paths
        for n in range(ROUNDS):  # alternate, so a busy machine slows both alike
            many, many_304, count = timed_ingest(Path(tmp) / f"many-{n}", base, None)
            assert count == total_entries, count
            one, one_304, _ = timed_ingest(Path(tmp) / f"one-{n}", base, None, feeds=1)
            for key, value in (("many", many), ("many304", many_304), ("one", one), ("one304", one_304)):
                runs[key].append(value)
        if FULL:  # two more runs, off by default: they take longer than the rest together
            serial, _, _ = timed_ingest(Path(tmp) / "serial", base, concurrency=1)
            inline, _, _ = timed_ingest(Path(tmp) / "inline", base, None, parse_processes=0)
    many, one = statistics.median(runs["many"]), statistics.median(runs["one"])
    many_304, one_304 = statistics.median(runs["many304"]), statistics.median(runs["one304"])
    cpu = parse_cpu(list(bodies.values()))
    rounds = math.ceil(FEEDS / concurrency) * LATENCY
    floor = max(rounds, cpu / cores)
    workers = parse_workers(None, sources=FEEDS, cores=cores)
    print(
        f"{FEEDS} feeds x {ENTRIES} entries ({sum(map(len, bodies.values())) / FEEDS / 1000:.0f} KB each),"
        f" {LATENCY * 1000:.0f} ms added per response, retries off, configured concurrency {concurrency},"
        f" {workers} parse worker processes ({cores} cores); median of {ROUNDS} alternating runs"
    )
    print(f"  fetch+parse of {FEEDS} sources:                      {many:6.2f} s")
    print(f"  baseline: ONE source, same size and latency:        {one:6.2f} s   ratio {many / one:5.1f}x")
    print(
        f"  floor for this machine: {math.ceil(FEEDS / concurrency)} latency rounds = {rounds:.2f} s;"
        f" parse CPU {cpu:.2f} s / {cores} cores = {cpu / cores:.2f} s"
    )
    print(
        f"  baseline: the floor, the larger of the two:         {floor:6.2f} s   ratio {many / floor:5.1f}x"
    )
    print(
        f"  again, all 304: {many_304:.2f} s beside ONE source {one_304:.2f} s"
        f" (ratio {many_304 / one_304:.1f}x)"
    )
    if FULL:
        print(f"  concurrency 1 (serial): {serial:.2f} s, {serial / many:.1f}x the concurrent run")
        print(
            f"  parsing in the event loop (parse_processes=0): {inline:.2f} s,"
            f" {inline / many:.2f}x the run with workers"
        )

    documents = list(bodies.values())
    ctx = ParseContext(source="Bench", category="News", url="https://feed.example.org/", seen_at=NOW)

    def ours() -> None:
        for body in documents:
            parse_document(body, ctx)

    def plain() -> None:
        for body in documents:
            feedparser.parse(body)

    ours_time = best_of(2, ours)
    plain_time = best_of(2, plain)
    print(f"parse throughput on the same {len(documents)} documents ({total_entries} entries), best of 2:")
    print(
        f"  digest parse (feedparser, its sanitiser and URI resolution off; nh3 + urljoin once): "
        f"{total_entries / ours_time:8.0f} entries/s"
    )
    print(
        f"  baseline: plain feedparser.parse with its defaults (no clean Entry values):     "
        f"{total_entries / plain_time:8.0f} entries/s"
    )
    print(f"  ratio: {plain_time / ours_time:.2f}x")


if __name__ == "__main__":
    main()
