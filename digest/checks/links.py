"""Checking every link of an email: HTTP status of each URL, fetched concurrently and cached.

A HEAD request first (cheap), then a GET when the server refuses HEAD (405, 501, and the many servers that
answer HEAD with 403 or 404 while serving the page). Redirects are followed and the final address kept.
Results are cached per URL (`now` is handed in) in memory and, optionally, in a JSON file, so re-rendering
a draft re-checks only new links; a failure is re-checked sooner than a success.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

RETRY_WITH_GET = frozenset({400, 403, 404, 405, 406, 501})


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """The outcome of checking one URL: the final HTTP status (after redirects), or the error."""

    url: str
    checked_at: datetime
    status: int | None = None
    final_url: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 400

    @property
    def redirected(self) -> bool:
        return self.final_url is not None and self.final_url != self.url

    def describe(self) -> str:
        if self.error:
            return self.error
        text = f"HTTP {self.status}"
        return f"{text} after a redirect to {self.final_url}" if self.redirected else text


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("a", "area"):
            href = dict(attrs).get("href")
            if href:
                self.links.append(href.strip())


def extract_links(html: str) -> tuple[str, ...]:
    """The distinct http(s) link targets of an HTML document, in document order."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    seen: dict[str, None] = {}
    for link in parser.links:
        if link.lower().startswith(("http://", "https://")):
            seen.setdefault(link, None)
    return tuple(seen)


def links_by_copy(copies: Iterable[tuple[str, Iterable[str]]]) -> dict[str, tuple[str, ...]]:
    """Each distinct URL of several copies of one email, in first-seen order, with the keys of the copies
    that hold it (`copies`: (key, links) pairs, e.g. the whole issue "" and each topic variant).

    The copies usually share most of their links: checking the keys of the result checks each URL once,
    however many copies hold it.
    """
    found: dict[str, dict[str, None]] = {}
    for key, links in copies:
        for url in links:
            found.setdefault(url, {}).setdefault(key, None)
    return {url: tuple(keys) for url, keys in found.items()}


class LinkChecker:
    """Checks URLs concurrently (at most `concurrency` at once) and caches each result.

    `ttl` is how long a successful result is reused, `failure_ttl` a failed one. With `cache_path`, the
    cache survives restarts (a JSON file written atomically). Thread-safe use: one `check` at a time per
    instance (the preview serialises its checks).
    """

    def __init__(
        self,
        *,
        user_agent: str,
        timeout: float = 10.0,
        concurrency: int = 8,
        ttl: timedelta = timedelta(hours=6),
        failure_ttl: timedelta = timedelta(minutes=10),
        cache_path: Path | None = None,
    ) -> None:
        self.user_agent = user_agent
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self.cache_path = cache_path
        self._cache: dict[str, LinkStatus] = self._load()

    def cached(self, url: str, *, now: datetime) -> LinkStatus | None:
        """The cached result for `url` if it is still fresh at `now`."""
        hit = self._cache.get(url)
        if hit is None:
            return None
        age = now - hit.checked_at
        return hit if age < (self.ttl if hit.ok else self.failure_ttl) else None

    async def check(self, urls: Iterable[str], *, now: datetime) -> tuple[LinkStatus, ...]:
        """The status of each URL (in the order given, duplicates once), fetching only stale ones."""
        wanted = tuple(dict.fromkeys(urls))
        stale = [u for u in wanted if self.cached(u, now=now) is None]
        if stale:
            limits = httpx.Limits(
                max_connections=self.concurrency, max_keepalive_connections=self.concurrency
            )
            semaphore = asyncio.Semaphore(self.concurrency)
            async with httpx.AsyncClient(
                follow_redirects=True,
                max_redirects=10,
                timeout=self.timeout,
                limits=limits,
                headers={"user-agent": self.user_agent, "accept": "text/html,*/*;q=0.8"},
            ) as client:

                async def one(url: str) -> LinkStatus:
                    async with semaphore:
                        return await _check_one(client, url, now)

                for result in await asyncio.gather(*(one(u) for u in stale)):
                    self._cache[result.url] = result
            self._save()
        return tuple(self._cache[u] for u in wanted)

    def _load(self) -> dict[str, LinkStatus]:
        if self.cache_path is None:
            return {}
        try:
            items = json.loads(self.cache_path.read_text(encoding="utf-8"))
            return {
                item["url"]: LinkStatus(
                    url=item["url"],
                    checked_at=datetime.fromisoformat(item["checked_at"]),
                    status=item["status"],
                    final_url=item["final_url"],
                    error=item["error"],
                )
                for item in items
            }
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("%s: ignoring the unreadable link-check cache (%s)", self.cache_path, e)
            return {}

    def _save(self) -> None:
        if self.cache_path is None:
            return
        items = [{**asdict(s), "checked_at": s.checked_at.isoformat()} for s in self._cache.values()]
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.cache_path.parent, prefix=".linkcheck.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(items, handle)
            Path(tmp).replace(self.cache_path)
        except OSError as e:
            log.warning("%s: cannot save the link-check cache (%s)", self.cache_path, e)


async def _check_one(client: httpx.AsyncClient, url: str, now: datetime) -> LinkStatus:
    try:
        response = await client.head(url)
        if response.status_code in RETRY_WITH_GET:
            async with client.stream("GET", url) as streamed:
                response = streamed
        return LinkStatus(url=url, checked_at=now, status=response.status_code, final_url=str(response.url))
    except httpx.TooManyRedirects:
        return LinkStatus(url=url, checked_at=now, error="too many redirects")
    except httpx.TimeoutException:
        return LinkStatus(url=url, checked_at=now, error="timed out")
    except httpx.InvalidURL as e:
        return LinkStatus(url=url, checked_at=now, error=f"not a valid URL: {e}")
    except httpx.HTTPError as e:
        return LinkStatus(
            url=url, checked_at=now, error=f"cannot connect: {type(e).__name__}: {e}".rstrip(": ")
        )


def summarise(results: Sequence[LinkStatus]) -> tuple[int, int]:
    """(working, broken) counts of a set of results."""
    broken = sum(1 for r in results if not r.ok)
    return len(results) - broken, broken
