"""A real HTTP server on 127.0.0.1 (port 0) for fetch tests: scripted replies per path, requests recorded."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False  # wait until the server is released (a response slower than any test timeout)
    length: bool = True  # send Content-Length (False: body ends when the connection closes)


@dataclass
class Request:
    path: str
    headers: dict[str, str]


Route = Callable[[Request], Reply]

# Connections waiting to be accepted. The socketserver default of 5 drops SYNs (1-20 s client stalls, as
# the client retransmits) as soon as more than a handful of fetches connect at once, as 50 sources do.
LISTEN_BACKLOG = 256


class BackloggedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server whose listen backlog holds a burst of concurrent connections."""

    request_queue_size = LISTEN_BACKLOG


class FeedServer:
    """Serves `routes` (path -> function of the request giving a Reply); records every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                request = Request(self.path, {k.lower(): v for k, v in self.headers.items()})
                with server.lock:
                    server.requests.append(request)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    route = server.routes.get(self.path.split("?")[0])
                    reply = route(request) if route else Reply(404, b"not found")
                    if reply.hold:
                        server.release.wait(5)
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    if reply.length:
                        self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server API
                return

        self.httpd = BackloggedHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path.split("?")[0] == path]


@contextmanager
def running_server() -> Iterator[FeedServer]:
    server = FeedServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.httpd.shutdown()
        server.httpd.server_close()


def feed(
    body: bytes,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    content_type: str = "application/rss+xml",
) -> Route:
    """A feed that honours If-None-Match / If-Modified-Since with a 304."""

    def route(request: Request) -> Reply:
        headers = {"Content-Type": content_type}
        if etag:
            headers["ETag"] = etag
        if last_modified:
            headers["Last-Modified"] = last_modified
        if etag and request.headers.get("if-none-match") == etag:
            return Reply(304, b"", headers)
        if not etag and last_modified and request.headers.get("if-modified-since") == last_modified:
            return Reply(304, b"", headers)
        return Reply(200, body, headers)

    return route


def sequence(*replies: Reply) -> Route:
    """Each request gets the next reply; the last one repeats."""
    remaining = list(replies)

    def route(request: Request) -> Reply:
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return route


def redirect(location: str, status: int = 302) -> Route:
    return lambda request: Reply(status, b"", {"Location": location})


def gzipped(body: bytes, content_type: str = "application/rss+xml") -> Route:
    packed = gzip.compress(body)
    return lambda request: Reply(200, packed, {"Content-Type": content_type, "Content-Encoding": "gzip"})


def rss(*titles: str, link_base: str = "https://example.org/news/") -> bytes:
    """A small RSS 2.0 feed with one dated item per title."""
    items = "".join(
        f"<item><title>{t}</title><link>{link_base}{i}</link><guid>{link_base}{i}</guid>"
        f"<pubDate>Fri, 09 May 2025 0{i % 10}:00:00 +0100</pubDate>"
        f"<description>About {t}.</description></item>"
        for i, t in enumerate(titles)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Test feed</title>'
        f"<link>https://example.org/</link>{items}</channel></rss>"
    ).encode()


def write_config(folder: Path, sources: list[dict[str, object]], **fetch: object) -> Path:
    """A minimal config.toml in `folder` with the given [[sources]] and [fetch] settings."""

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        return json.dumps(v)

    lines = ["[fetch]", *(f"{k} = {value(v)}" for k, v in fetch.items()), ""]
    for source in sources:
        lines += ["[[sources]]", *(f"{k} = {value(v)}" for k, v in source.items()), ""]
    lines += ["[[priorities]]", 'name = "Start Well"', 'keywords = ["midwives"]', ""]
    path = folder / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
