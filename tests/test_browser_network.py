"""The browser tests are offline: a page's requests off this machine are aborted and counted.

(The earlier block, `page.route("https://**")`, matched no request at all with playwright 1.65: none of
the four below reached its handler. This test shows the one in conftest.py catches each kind of outside
request a page can make, from a page or a context, and lets local ones through.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytestmark = pytest.mark.browser

OUTSIDE = (
    "https://images.example.com/picture.png",
    "http://cdn.example.org/script.js",
    "https://fonts.example.net/style.css",
    "https://api.example.com/data.json",
)


@contextmanager
def local_page_server() -> Iterator[tuple[str, list[str]]]:
    """A page on 127.0.0.1 that asks for OUTSIDE (img, script, stylesheet, fetch) and one local image."""
    seen: list[str] = []
    page = (
        "<!DOCTYPE html><html lang='en'><head><title>t</title>"
        f"<link rel='stylesheet' href='{OUTSIDE[2]}'><script src='{OUTSIDE[1]}'></script></head>"
        f"<body><img src='{OUTSIDE[0]}' alt=''><img src='/local.png' alt=''>"
        f"<script>fetch('{OUTSIDE[3]}').catch(() => {{ document.title = 'fetch failed'; }});</script>"
        "</body></html>"
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body, kind = (page, "text/html") if self.path == "/" else (b"", "image/png")
            self.send_response(200)
            self.send_header("Content-Type", kind)
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
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_requests_off_this_machine_are_blocked_and_counted(browser: Any) -> None:
    before = len(browser.blocked)
    with local_page_server() as (base, seen):
        for make in ("page", "context"):
            page = browser.new_page() if make == "page" else browser.new_context().new_page()
            try:
                page.goto(base + "/", wait_until="load")
                page.wait_for_function("document.title === 'fetch failed'")
            finally:
                page.context.close()
    blocked = browser.blocked[before:]
    assert sorted(blocked) == sorted(OUTSIDE * 2), blocked
    assert seen.count("/") == 2 and seen.count("/local.png") == 2
