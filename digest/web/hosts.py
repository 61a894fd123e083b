"""The Host header and redirects: what the web apps answer, and what they never reflect.

The preview answers only requests addressed to the names it is bound to (`HostGuard`): a web page whose
name an attacker points at 127.0.0.1 (DNS rebinding) gets 400 before any handler runs. The public app
never copies the request's Host into a redirect (`RelativeRedirects`).
"""

from __future__ import annotations

import ipaddress
import logging
import posixpath
from collections.abc import Callable, Iterable
from urllib.parse import quote, unquote, urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest.config.table import split_host

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
HTTP_PORT = 80


def host_name(host: str) -> str:
    """A bind address as it appears in a Host header: IPv6 in brackets, lower case."""
    host = host.strip().lower()
    try:
        if ipaddress.ip_address(host.strip("[]")).version == 6:
            return f"[{host.strip('[]')}]"
    except ValueError:
        pass
    return host


def bound_names(bind_host: str) -> tuple[str, ...]:
    """The names the preview answers with its own port: the loopback names, and a specific bind address.

    A wildcard bind (0.0.0.0, ::) adds nothing: which of the machine's names is meant cannot be known,
    so those go in `[preview] allowed_hosts`.
    """
    name = host_name(bind_host)
    try:
        wildcard = ipaddress.ip_address(name.strip("[]")).is_unspecified
    except ValueError:
        wildcard = False
    extra = () if wildcard or not name or name in LOOPBACK_NAMES else (name,)
    return (*LOOPBACK_NAMES, *extra)


class AllowedHosts:
    """The Host header values one app answers.

    `bound`: names that must carry the port the request arrived on (the server's own port).
    `configured`: `name` (any port) or `name:port` entries, read on every request (the config may reload).
    """

    def __init__(self, bound: Iterable[str], configured: Callable[[], Iterable[str]] = tuple) -> None:
        self.bound = frozenset(host_name(b) for b in bound)
        self.configured = configured

    def allows(self, host_header: str, server_port: int | None) -> bool:
        host, port = split_host(host_header.strip().lower())
        if not host or (port is not None and not (port.isascii() and port.isdigit())):
            return False
        number = int(port) if port is not None else HTTP_PORT
        if host in self.bound and server_port is not None and number == server_port:
            return True
        for entry in self.configured():
            name, wanted = split_host(entry)
            if name == host and (wanted is None or int(wanted) == number):
                return True
        return False


class HostGuard:
    """ASGI middleware: a request whose Host header is not allowed gets 400 and reaches no handler."""

    def __init__(self, app: ASGIApp, hosts: AllowedHosts) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "")
        server = scope.get("server")
        port = server[1] if server and len(server) > 1 and isinstance(server[1], int) else None
        if self.hosts.allows(host, port):
            await self.app(scope, receive, send)
            return
        log.warning("refused a request addressed to Host %r (not an allowed host)", host[:100])
        shown = host[:100] if host.isprintable() else "(unreadable)"
        response = PlainTextResponse(
            f"This server does not answer requests addressed to {shown or '(no Host header)'}.\n"
            "Open it at http://127.0.0.1:<port>/ or http://localhost:<port>/, or add the name to\n"
            "[preview] allowed_hosts in config.toml.\n",
            status_code=400,
            headers={"cache-control": "no-store"},
        )
        await response(scope, receive, send)


def relative_location(request_path: str, location: str) -> str:
    """`location` as a reference relative to `request_path`: no scheme, no host, no leading slash.

    Relative references stay right behind a reverse proxy that serves the app under a path prefix, and
    never name a host taken from the request. `/issues/2025-W19` redirected to `/issues/2025-W19/` gives
    `./2025-W19/`.
    """
    parts = urlsplit(location)
    target = unquote(parts.path) or "/"
    if not target.startswith("/"):  # already relative to the request's folder
        target = posixpath.join(request_path.rsplit("/", 1)[0] or "/", target)
    folder = request_path.rsplit("/", 1)[0] or "/"
    directory, _, name = target.rpartition("/")
    up = posixpath.relpath(directory or "/", folder)
    relative = name if up == "." else f"{up}/{name}"
    if not relative.startswith("../"):
        relative = "./" + relative
    relative = quote(relative, safe="/:@!$&'()*+,;=-._~")
    return (
        relative
        + (f"?{parts.query}" if parts.query else "")
        + (f"#{parts.fragment}" if parts.fragment else "")
    )


class RelativeRedirects:
    """ASGI middleware: every `Location` a response sends is relative (see `relative_location`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def relative(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                location = headers.get("location")
                if location is not None:
                    headers["location"] = relative_location(scope["path"], location)
            await send(message)

        await self.app(scope, receive, relative)
