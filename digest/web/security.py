"""Safety parts of the web apps: security headers, error pages, loopback binding, CSRF, access token."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from http import HTTPStatus
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest.errors import UsageError

log = logging.getLogger(__name__)

ACCESS_COOKIE = "digest_preview_access"
SESSION_COOKIE = "digest_preview_session"
SESSION_BYTES = 32
_SESSION = re.compile(r"[A-Za-z0-9_-]{43}")
MIN_ACCESS_TOKEN = 16


class SecurityHeaders:
    """ASGI middleware adding fixed headers (CSP, nosniff, ...) to every response that does not set them."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = dict(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


ErrorPage = Callable[[Request, int, str, str | None], str]


def error_handlers(page: ErrorPage) -> dict[type[Exception] | int, Callable[..., Response]]:
    """Starlette exception handlers that answer with a page (never a traceback) and log the detail."""

    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
        status = exc.status_code
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        message = {
            404: "There is no page at this address. Check the address, or start from the home page.",
            405: "This page cannot be used that way.",
            413: "What was sent is too large.",
        }.get(status, exc.detail if isinstance(exc.detail, str) else phrase)
        headers = dict(exc.headers or {})
        return HTMLResponse(page(request, status, phrase, message), status_code=status, headers=headers)

    def server_error(request: Request, exc: Exception) -> Response:
        log.error("error answering %s %s", request.method, request.url.path, exc_info=exc)
        message = "Something went wrong on our side. The problem has been logged; please try again later."
        return HTMLResponse(page(request, 500, "Server error", message), status_code=500)

    return {HTTPException: http_error, Exception: server_error}


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_access_token(host: str, token: str | None, *, env_name: str) -> str | None:
    """The access token the preview must demand, checking that binding `host` is allowed.

    Loopback addresses need no token (one set in the environment is still enforced). Any other address
    needs a token of at least 16 characters in the environment variable `env_name`.

    Raises:
        UsageError: a non-loopback host without a (long enough) token.
    """
    if token is not None and token != "" and len(token) < MIN_ACCESS_TOKEN:
        raise UsageError(
            f"${env_name} is shorter than {MIN_ACCESS_TOKEN} characters",
            hint='use a long random token, e.g. `python -c "import secrets; print(secrets.token_urlsafe())"`',
        )
    if token:
        return token
    if is_loopback(host):
        return None
    raise UsageError(
        f"binding the preview to {host} exposes unsent drafts and test sends beyond this machine",
        hint=f"set an access token in ${env_name} ([preview] access_token_env), or bind 127.0.0.1",
    )


class AccessGate:
    """The preview's access token: checks a login, a cookie or a bearer header against it.

    The cookie holds an HMAC of the token, never the token itself. Without a token everything is allowed.
    """

    def __init__(self, token: str | None) -> None:
        self.token = token or None
        self.cookie_value = (
            hmac.new(self.token.encode(), b"preview-access", hashlib.sha256).hexdigest() if self.token else ""
        )

    def allows(self, request: Request) -> bool:
        return self.has_cookie(request) or self.has_bearer(request)

    def has_cookie(self, request: Request) -> bool:
        if self.token is None:
            return True
        cookie = request.cookies.get(ACCESS_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self.cookie_value.encode())

    @staticmethod
    def bearer_of(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        return header[7:] if header.startswith("Bearer ") else None

    def has_bearer(self, request: Request) -> bool:
        bearer = self.bearer_of(request)
        return bearer is not None and self.check_token(bearer)

    def check_token(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())


class AccessMiddleware:
    """ASGI middleware: with an access token, every request but the login page and its style sheet needs it.

    A page request without it is sent to the login page; anything else gets 401. A wrong bearer token
    counts as a failed login (`throttle`), and while its address is throttled a bearer gets 429.
    """

    def __init__(
        self, app: ASGIApp, gate: AccessGate, *, open_paths: tuple[str, ...], throttle: LoginThrottle
    ) -> None:
        self.app = app
        self.gate = gate
        self.open_paths = open_paths
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.gate.token is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if request.url.path in self.open_paths or self.gate.has_cookie(request):
            await self.app(scope, receive, send)
            return
        response: Response
        bearer = self.gate.bearer_of(request)
        if bearer is not None:
            client = self.throttle.client_of(request)
            wait = self.throttle.retry_after(client)
            if wait is not None:
                await self.throttle.refusal(wait)(scope, receive, send)
                return
            if self.gate.check_token(bearer):
                await self.app(scope, receive, send)
                return
            self.throttle.failed(client)
            log.warning("preview: refused a wrong bearer token from %s", client)
        if request.method in ("GET", "HEAD") and request.url.path == "/":
            response = RedirectResponse(self.open_paths[0], status_code=303)
        else:
            response = Response("access token required", status_code=401, media_type="text/plain")
        await response(scope, receive, send)


class Csrf:
    """Synchronizer tokens bound to a browser session, checked on every POST.

    Each browser gets a random session id in an HttpOnly, SameSite=Strict cookie; its token is an HMAC of
    that id with a secret (this process's, or for `digest serve` one derived from the state's, so every
    process and host serving it accepts the forms of the others). Two visitors get different tokens, a
    token works only with its own session's cookie, and a cookie planted by another program on this
    machine (cookies ignore ports) is useless without the token only the server can compute. A cross-site
    page cannot read the token (same-origin policy), so it cannot forge a POST. The Origin header, when
    the browser sends one, must also be this site.
    """

    field = "csrf_token"

    def __init__(self, secret: bytes | Callable[[], bytes] | None = None) -> None:
        # A callable is read at the first token: the public app's secret comes from state, shared by every
        # process and host serving it (a form served by one is accepted by another); else this process's.
        self._secret = secret or secrets.token_bytes(32)

    @property
    def secret(self) -> bytes:
        if callable(self._secret):
            self._secret = self._secret()
        return self._secret

    @staticmethod
    def session_of(request: Request) -> str | None:
        """The request's session id, when its cookie holds a well-formed one."""
        value = request.cookies.get(SESSION_COOKIE, "")
        return value if _SESSION.fullmatch(value) else None

    @staticmethod
    def new_session() -> str:
        return secrets.token_urlsafe(SESSION_BYTES)

    def token_for(self, session: str) -> str:
        return hmac.new(self.secret, b"csrf:" + session.encode(), hashlib.sha256).hexdigest()

    def page_token(self, request: Request) -> tuple[str, str | None]:
        """(token for the page's forms, new session id to set as a cookie, or None when it has one)."""
        session = self.session_of(request)
        if session is not None:
            return self.token_for(session), None
        session = self.new_session()
        return self.token_for(session), session

    @staticmethod
    def set_session(response: Response, session: str | None) -> None:
        if session is not None:
            response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict", path="/")

    @staticmethod
    def check_origin(request: Request) -> None:
        """Raises HTTPException 403 when the browser says the request comes from another site."""
        origin = request.headers.get("origin")
        if origin and origin != "null":
            parts = urlsplit(origin)
            if parts.netloc != request.headers.get("host", ""):
                log.warning("refused a cross-site POST to %s from %s", request.url.path, origin)
                raise HTTPException(403, "This form was sent from another site and was refused.")
        if request.headers.get("sec-fetch-site") == "cross-site":
            raise HTTPException(403, "This form was sent from another site and was refused.")

    def check(self, request: Request, submitted: object) -> None:
        """Raises HTTPException 403 when the token is missing, wrong, another session's, or cross-site."""
        self.check_origin(request)
        session = self.session_of(request)
        expected = self.token_for(session) if session is not None else ""
        given = submitted.encode("utf-8", "replace") if isinstance(submitted, str) else b""
        if not expected or not hmac.compare_digest(given, expected.encode()):
            log.warning("refused a POST to %s without a valid CSRF token", request.url.path)
            raise HTTPException(
                403, "This form has expired (the preview was restarted). Reload the page and try again."
            )


class LoginThrottle:
    """Failed logins per client: after `limit` failures within `per` seconds, attempts get 429.

    The client is the connecting address (behind a reverse proxy every visitor shares the proxy's). The
    clock is injected (monotonic seconds); at most `max_clients` addresses are remembered.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        limit: int = 5,
        per: float = 60.0,
        max_clients: int = 10_000,
    ) -> None:
        self.clock = clock
        self.limit = limit
        self.per = per
        self.max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.get(client, deque())
        while failures and failures[0] <= now - self.per:
            failures.popleft()
        return failures

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None when it may try now."""
        with self._lock:
            now = self.clock()
            failures = self._recent(client, now)
            if len(failures) < self.limit:
                return None
            return max(1, math.ceil(failures[0] + self.per - now))

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            failures = self._recent(client, now)
            failures.append(now)
            self._failures[client] = failures
            while len(self._failures) > self.max_clients:
                self._failures.pop(next(iter(self._failures)))

    @staticmethod
    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    @staticmethod
    def refusal(retry_after: int) -> Response:
        return Response(
            f"Too many wrong access tokens from this address: try again in {retry_after} s.\n",
            status_code=429,
            media_type="text/plain",
            headers={"retry-after": str(retry_after), "cache-control": "no-store"},
        )
