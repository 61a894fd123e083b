"""The pre-send link check: every link's HTTP status, fetched concurrently, cached."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import Counter
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from digest.checks.links import LinkChecker, extract_links, summarise

NOW = datetime(2025, 5, 9, 9, 0, tzinfo=UTC)
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run in a fresh thread: the session's playwright keeps an event loop in the main thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class Site:
    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.barrier = threading.Barrier(3, timeout=5)


@pytest.fixture
def site() -> Iterator[tuple[str, Site]]:
    state = Site()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def answer(self, status: int, location: str | None = None) -> None:
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", "2")
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(b"ok")

        def route(self) -> None:
            state.hits[f"{self.command} {self.path}"] += 1
            if self.path == "/ok":
                self.answer(200)
            elif self.path == "/missing":
                self.answer(404)
            elif self.path == "/moved":
                self.answer(301, "/ok")
            elif self.path == "/loop":
                self.answer(302, "/loop")
            elif self.path == "/no-head":
                self.answer(405 if self.command == "HEAD" else 200)
            elif self.path.startswith("/together/"):
                # Answers 200 only when three requests are in flight at once: proves the checks overlap.
                try:
                    state.barrier.wait()
                except threading.BrokenBarrierError:
                    self.answer(500)
                    return
                self.answer(200)
            else:
                self.answer(404)

        do_GET = route  # noqa: N815 - the name http.server dispatches to
        do_HEAD = route  # noqa: N815 - the name http.server dispatches to

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def test_extract_links_keeps_http_links_once_in_order() -> None:
    html = """<a href="https://b.example/">b</a><a href="mailto:x@y">m</a><a href="https://a.example/">a</a>
    <a href="https://b.example/">again</a><a href="%%DIGEST_UNSUBSCRIBE_URL%%">u</a><a>no href</a>
    <area href="http://c.example/x?a=1&amp;b=2">"""
    assert extract_links(html) == ("https://b.example/", "https://a.example/", "http://c.example/x?a=1&b=2")


def test_statuses_redirects_and_errors(site: tuple[str, Site]) -> None:
    base, _ = site
    checker = LinkChecker(user_agent="digest-test", timeout=5)
    urls = [
        f"{base}/ok",
        f"{base}/missing",
        f"{base}/moved",
        f"{base}/loop",
        f"{base}/no-head",
        "http://127.0.0.1:9/closed",
    ]
    ok, missing, moved, loop, no_head, closed = run(checker.check(urls, now=NOW))
    assert (ok.status, ok.ok) == (200, True)
    assert (missing.status, missing.ok) == (404, False)
    assert moved.status == 200
    assert moved.final_url == f"{base}/ok"
    assert "redirect" in moved.describe()
    assert loop.error == "too many redirects"
    assert no_head.status == 200
    assert closed.error is not None
    assert closed.error.startswith("cannot connect")
    assert summarise((ok, missing, moved, loop, no_head, closed)) == (3, 3)


def test_links_are_checked_concurrently(site: tuple[str, Site]) -> None:
    base, state = site
    checker = LinkChecker(user_agent="digest-test", timeout=10, concurrency=4)
    results = run(checker.check([f"{base}/together/{i}" for i in range(3)], now=NOW))
    assert [r.status for r in results] == [200, 200, 200]
    assert not state.barrier.broken


def test_results_are_cached_and_failures_rechecked_sooner(site: tuple[str, Site], tmp_path: Path) -> None:
    base, state = site
    cache = tmp_path / "linkcheck.json"
    checker = LinkChecker(
        user_agent="t", ttl=timedelta(hours=6), failure_ttl=timedelta(minutes=10), cache_path=cache
    )
    urls = [f"{base}/ok", f"{base}/missing"]
    run(checker.check(urls, now=NOW))
    run(checker.check(urls, now=NOW + timedelta(minutes=5)))
    assert state.hits["HEAD /ok"] == 1
    assert state.hits["HEAD /missing"] == 1
    run(checker.check(urls, now=NOW + timedelta(minutes=30)))
    assert state.hits["HEAD /ok"] == 1
    assert state.hits["HEAD /missing"] == 2

    reopened = LinkChecker(user_agent="t", cache_path=cache)
    hit = reopened.cached(f"{base}/ok", now=NOW + timedelta(hours=1))
    assert hit is not None
    assert hit.status == 200
    assert reopened.cached(f"{base}/ok", now=NOW + timedelta(hours=7)) is None


def test_an_unreadable_cache_file_is_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "linkcheck.json"
    cache.write_text("{broken")
    assert LinkChecker(user_agent="t", cache_path=cache).cached("https://x.example/", now=NOW) is None
