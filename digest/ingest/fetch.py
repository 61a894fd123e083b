"""Bytes in: http(s) with conditional GET, retries and a size cap; local files rooted in the config folder.

One call fetches one source and returns a `Fetched` value (ok, not modified or gone) or raises FetchError;
the pipeline runs many calls concurrently and turns each outcome into a SourceReport. Nothing here parses.
Local sources get a content hash as their ETag, so an unchanged file or folder is "not modified" too.
"""

from __future__ import annotations

import asyncio
import email.utils
import glob
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from digest.config import Source
from digest.errors import FetchError

log = logging.getLogger(__name__)

ACCEPT = (
    "application/feed+json, application/json;q=0.9, application/atom+xml, application/rss+xml, "
    "application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
MAX_REDIRECTS = 10
_PERMANENT = (301, 308)
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_REASONS = {
    401: "the server wants a login; digest fetches public feeds only",
    403: "the server refuses access; it may block unknown clients (check user_agent) or the feed moved",
    404: "check the source's url: the feed is not at that address",
}

FetchStatus = Literal["ok", "not_modified", "gone"]


class HTTPStatusFetchError(FetchError):
    """An HTTP reply with an error status (after any retries); `status` is the code."""

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


@dataclass(frozen=True, slots=True)
class Document:
    """One fetched document: its URL or path relative to the config folder, bytes and content type."""

    location: str
    body: bytes
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class Validators:
    """What the next conditional request sends back: ETag and Last-Modified as the server gave them."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    """The outcome of fetching one source.

    `documents` is empty unless `status` is "ok". `redirected_to` is the final URL when redirects were
    followed; `permanent` is true when every hop was a 301/308 (so the feed has moved for good).
    """

    status: FetchStatus
    documents: tuple[Document, ...]
    url: str
    http_status: int | None = None
    validators: Validators = Validators()
    redirected_to: str | None = None
    permanent: bool = False
    attempts: int = 1


def new_client(*, concurrency: int) -> httpx.AsyncClient:
    """An HTTP client shared by one run: pooled connections, gzip/deflate, redirects followed."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        limits=limits,
        timeout=None,  # noqa: S113 - each request is bounded by its source's total timeout (asyncio.timeout)
        headers={"Accept": ACCEPT},
    )


async def fetch_source(
    source: Source,
    *,
    root: Path,
    client: httpx.AsyncClient,
    validators: Validators = Validators(),
    url: str | None = None,
    max_bytes: int,
    retries: int,
    backoff: float = BACKOFF_SECONDS,
) -> Fetched:
    """Fetch one source: `url` overrides the configured URL (a recorded permanent redirect).

    Raises:
        FetchError: the source cannot be read (network, HTTP error status after retries, size cap, a local
            path outside the config folder, a missing file).
    """
    if source.kind == "http":
        return await fetch_http(
            client,
            url or source.location,
            name=source.name,
            timeout=source.timeout,
            user_agent=source.user_agent,
            validators=validators,
            max_bytes=max_bytes,
            retries=retries,
            backoff=backoff,
        )
    return read_local(source, root=root, validators=validators, max_bytes=max_bytes)


async def fetch_http(
    client: httpx.AsyncClient,
    url: str,
    *,
    name: str,
    timeout: float,
    user_agent: str,
    validators: Validators,
    max_bytes: int,
    retries: int,
    backoff: float = BACKOFF_SECONDS,
) -> Fetched:
    """GET `url` with conditional headers, retrying timeouts, dropped connections, 429 and 5xx with backoff.

    Raises:
        FetchError: as for `fetch_source`; HTTPStatusFetchError carries the HTTP status.
    """
    headers = {"User-Agent": user_agent}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    attempt = 0
    while True:
        attempt += 1
        try:
            async with asyncio.timeout(timeout):
                return await _get_once(
                    client, url, name=name, headers=headers, max_bytes=max_bytes, attempt=attempt
                )
        except _Retryable as e:
            if attempt > retries:
                raise e.error from e.__cause__
            delay = min(MAX_BACKOFF_SECONDS, max(backoff * 2 ** (attempt - 1), e.retry_after or 0.0))
            log.info(
                "%s: %s; retrying in %.1f s (attempt %d of %d)",
                name,
                e.error,
                delay,
                attempt + 1,
                retries + 1,
            )
        except TimeoutError as e:
            error = FetchError(
                f"{name}: timed out after {timeout:g} s ({url})",
                hint="the server is slow or unreachable; raise the source's timeout if it is always slow",
            )
            if attempt > retries:
                raise error from e
            delay = min(MAX_BACKOFF_SECONDS, backoff * 2 ** (attempt - 1))
            log.info(
                "%s: timed out; retrying in %.1f s (attempt %d of %d)", name, delay, attempt + 1, retries + 1
            )
        await asyncio.sleep(delay)


class _Retryable(Exception):  # noqa: N818 - an internal signal, not an error the user sees
    def __init__(self, error: FetchError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def _retry_after(value: str | None, server_date: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: seconds, or an HTTP date less the reply's Date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
        sent = email.utils.parsedate_to_datetime(server_date or "")
        return max(0.0, (when - sent).total_seconds())
    except (TypeError, ValueError):  # unparseable, or one date without a zone
        return None


async def _get_once(
    client: httpx.AsyncClient, url: str, *, name: str, headers: dict[str, str], max_bytes: int, attempt: int
) -> Fetched:
    try:
        async with client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            history = response.history
            final = str(response.url)
            redirected_to = final if history else None
            permanent = bool(history) and all(r.status_code in _PERMANENT for r in history)
            common = {
                "url": final,
                "http_status": status,
                "redirected_to": redirected_to,
                "permanent": permanent,
                "attempts": attempt,
            }
            if status == 304:
                return Fetched(status="not_modified", documents=(), **common)  # type: ignore[arg-type]
            if status == 410:
                return Fetched(status="gone", documents=(), **common)  # type: ignore[arg-type]
            if status in _RETRY_STATUS:
                error = HTTPStatusFetchError(
                    f"{name}: HTTP {status} {response.reason_phrase} ({final})",
                    hint="the server is failing; digest retries and will try again next run",
                    status=status,
                )
                raise _Retryable(
                    error, _retry_after(response.headers.get("retry-after"), response.headers.get("date"))
                )
            if status >= 400 or status < 200:
                raise HTTPStatusFetchError(
                    f"{name}: HTTP {status} {response.reason_phrase} ({final})",
                    hint=_REASONS.get(status, "check the source's url in the config"),
                    status=status,
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise HTTPStatusFetchError(
                    f"{name}: the feed is {int(declared):,} bytes, over the {max_bytes:,}-byte limit "
                    f"({final})",
                    hint="raise [fetch] max_bytes if this feed is really that large",
                    status=status,
                )
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > max_bytes:
                    raise HTTPStatusFetchError(
                        f"{name}: the feed is over the {max_bytes:,}-byte limit ({final})",
                        hint="raise [fetch] max_bytes if this feed is really that large",
                        status=status,
                    )
            return Fetched(
                status="ok",
                documents=(Document(final, bytes(body), response.headers.get("content-type")),),
                validators=Validators(response.headers.get("etag"), response.headers.get("last-modified")),
                **common,  # type: ignore[arg-type]
            )
    except httpx.TooManyRedirects as e:
        raise FetchError(
            f"{name}: more than {MAX_REDIRECTS} redirects from {url}",
            hint="the server redirects in a loop; check the source's url in a browser",
        ) from e
    except httpx.InvalidURL as e:
        raise FetchError(f"{name}: invalid URL {url}: {e}") from e
    except httpx.DecodingError as e:
        raise FetchError(f"{name}: the compressed response is corrupt ({e})") from e
    except httpx.TimeoutException as e:
        raise TimeoutError(str(e)) from e
    except httpx.TransportError as e:
        reason = str(e) or type(e).__name__
        raise _Retryable(
            FetchError(
                f"{name}: cannot connect to {url} ({reason})",
                hint="check the address and the network; digest will try again next run",
            )
        ) from e


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def _read_file(path: Path, root: Path, *, name: str, max_bytes: int) -> Document:
    label = path.relative_to(root).as_posix() if _inside(root, path) else str(path)
    if not _inside(root, path):
        raise FetchError(
            f"{name}: {path} is outside the config folder {root}",
            hint="local sources must stay inside the folder of the config file (symlinks included)",
        )
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise FetchError(
                f"{name}: {label} is {size:,} bytes, over the {max_bytes:,}-byte limit",
                hint="raise [fetch] max_bytes if the file is really that large",
            )
        body = path.read_bytes()
    except FileNotFoundError as e:
        raise FetchError(
            f"{name}: file {label} does not exist", hint="check the source's url in the config"
        ) from e
    except IsADirectoryError as e:
        raise FetchError(
            f"{name}: {label} is a folder", hint="use a glob such as items/*.md for a folder"
        ) from e
    except OSError as e:
        raise FetchError(f"{name}: cannot read {label}: {e.strerror}") from e
    return Document(label, body, None)


def read_local(source: Source, *, root: Path, validators: Validators, max_bytes: int) -> Fetched:
    """Read a local file or glob of files inside `root`; "not_modified" when the content hash is unchanged.

    Raises:
        FetchError: a path outside `root`, a missing or unreadable file, a file over the size cap.
    """
    root = root.resolve()
    if source.kind == "glob":
        # glob.glob, not Path.glob: the configured pattern may be absolute (inside the config folder).
        matches = glob.glob(source.location, recursive=True)  # noqa: PTH207 - see above
        paths = sorted(Path(p) for p in matches if not Path(p).is_dir())
    else:
        paths = [Path(source.location)]
    documents = tuple(_read_file(p, root, name=source.name, max_bytes=max_bytes) for p in paths)
    digest = hashlib.sha256()
    for document in documents:
        digest.update(document.location.encode() + b"\0" + hashlib.sha256(document.body).digest())
    etag = f'"sha256:{digest.hexdigest()}"'
    location = source.location
    if validators.etag == etag:
        return Fetched(status="not_modified", documents=(), url=location, validators=Validators(etag))
    return Fetched(status="ok", documents=documents, url=location, validators=Validators(etag))
