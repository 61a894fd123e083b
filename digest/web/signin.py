"""Who is using the preview: signed-in users (password sessions), a trusted proxy's header, or nobody.

Three modes, chosen per request from the config and state:
- `[preview] auth = "header"`: the user is the value of `[preview] user_header`, believed only when the
  connection comes from an address in `[preview] trusted_proxies`; the role comes from `[preview.roles]`.
- users exist (`digest users add`): a session cookie from the sign-in form (HttpOnly, SameSite=Strict,
  Secure over HTTPS, `[preview] session_hours` long); the role is read from state on every request, so
  removing a user ends their sessions.
- otherwise the preview is open as before (loopback only, or behind the access token); approvals record
  the name typed in the form.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

USER_COOKIE = "digest_preview_user"
MAX_SESSIONS = 10_000


@dataclass(frozen=True, slots=True)
class Identity:
    """The person behind a request. `via`: "password", "header" or "open" (no sign-in configured)."""

    name: str
    role: str | None
    via: str

    @property
    def signed_in(self) -> bool:
        return self.via != "open"


OPEN = Identity("", "admin", "open")


class Sessions:
    """Sign-in sessions kept in this process: a random token -> (user, stamp, expiry). A restart signs
    out all. The stamp is a fingerprint of the user's password hash at sign-in: once the password is
    changed (`digest users passwd`, from any process) the stamps differ and the session is over."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._items: dict[str, tuple[str, str, float]] = {}
        self._lock = threading.Lock()

    def start(self, name: str, hours: float, stamp: str = "") -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._items[token] = (name, stamp, self.clock() + hours * 3600)
            while len(self._items) > MAX_SESSIONS:
                self._items.pop(next(iter(self._items)))
        return token

    def session_of(self, token: str | None) -> tuple[str, str] | None:
        """(user, stamp) of a live session, else None (an expired one is forgotten)."""
        if not token:
            return None
        with self._lock:
            found = self._items.get(token)
            if found is None:
                return None
            if found[2] <= self.clock():
                del self._items[token]
                return None
            return found[0], found[1]

    def user_of(self, token: str | None) -> str | None:
        found = self.session_of(token)
        return found[0] if found else None

    def end(self, token: str | None) -> None:
        with self._lock:
            self._items.pop(token or "", None)

    def end_user(self, name: str) -> None:
        with self._lock:
            for token in [t for t, (n, _, _) in self._items.items() if n == name]:
                del self._items[token]


def from_trusted_proxy(request: Request, proxies: tuple[str, ...]) -> bool:
    """Whether the connection comes from one of `proxies` (addresses or networks)."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(p, strict=False) for p in proxies)


Resolve = Callable[[Request], Awaitable["Identity | Response"]]


class SignInMiddleware:
    """ASGI middleware: puts the request's `Identity` in `scope["state"]["identity"]`, or answers for it.

    `resolve` returns the identity, or the response to give (a redirect to the sign-in page, a 403).
    Paths in `open_paths` (the sign-in page, its style sheet) pass without one.
    """

    def __init__(self, app: ASGIApp, resolve: Resolve, *, open_paths: tuple[str, ...]) -> None:
        self.app = app
        self.resolve = resolve
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        found = await self.resolve(request)
        if isinstance(found, Response):
            if request.url.path not in self.open_paths:
                await found(scope, receive, send)
                return
            found = Identity("", None, "none")
        scope.setdefault("state", {})["identity"] = found
        await self.app(scope, receive, send)


def identity_of(request: Request) -> Identity:
    found = request.scope.get("state", {}).get("identity")
    return found if isinstance(found, Identity) else Identity("", None, "none")


def to_sign_in(request: Request) -> Response:
    if request.method in ("GET", "HEAD") and request.url.path == "/":
        return RedirectResponse("/signin", status_code=303)
    return Response("sign-in required", status_code=401, media_type="text/plain")


def stamp_of(password_hash: str) -> str:
    """A short fingerprint of a password hash (the session keeps this, not the hash)."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]
