"""Article enrichment: what a listing or feed leaves out (a date, a picture, a summary, a title cut short
with "...") filled in from each new entry's article page, for sources with `enrich = true`.

Each article address is fetched once per run at most, with the source's User-Agent, within `robots.txt`,
with a conditional GET when state already holds the page, at most `[fetch] enrich_max` pages a run and at
most `[fetch] concurrency` at once, over the run's one pooled client (keep-alive; `robots.txt` read once
per site). Pages are read in a thread, so the replies still coming in are served meanwhile. What a page
said is kept in state (`state.articles`, one transaction for a source's pages), so a re-parse of the
listing enriches again without fetching. A failed article fetch is logged and leaves the entry as it was:
it never fails the source.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import re
import sys
import urllib.robotparser
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import httpx

from digest.config import Source
from digest.errors import DigestError
from digest.ingest import clean, fetch
from digest.ingest.parse.article import ArticleMeta, read_article
from digest.models import Entry
from digest.state import articles as article_state
from digest.state.store import Store

log = logging.getLogger(__name__)

_CUT = re.compile(r"(\.\.\.|…)\s*$")
_QUOTES = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}
)


class Enricher:
    """One run's enrichment: the shared HTTP client, the page budget, robots.txt rules per site."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        root: Path,
        max_pages: int,
        concurrency: int,
        max_bytes: int,
        timezone: str,
        excerpt_chars: int,
    ) -> None:
        self.client = client
        self.root = root.resolve()
        self.remaining = max_pages
        self.limit = asyncio.Semaphore(max(1, concurrency))
        self.max_bytes = max_bytes
        self.timezone = timezone
        self.excerpt_chars = excerpt_chars
        self._robots: dict[tuple[str, str], asyncio.Task[urllib.robotparser.RobotFileParser | None]] = {}
        self._warming: asyncio.Task[ModuleType] | None = None

    def warm_up(self) -> None:
        """Import extruct in a thread now (a third of a second, once a process: it brings bs4 and rdflib's
        parsers even when unused) so that it overlaps the listings' fetches instead of delaying the first
        article. Call from the event loop; a read that comes first waits for it (the import lock)."""
        if self._warming is None and "extruct" not in sys.modules:
            self._warming = asyncio.ensure_future(asyncio.to_thread(importlib.import_module, "extruct"))

    async def enrich(
        self,
        db: Store,
        source: Source,
        entries: tuple[Entry, ...],
        *,
        known: frozenset[str],
        now: datetime,
    ) -> tuple[Entry, ...]:
        """`entries` with what their article pages say filled in (`known`: ids state already holds)."""
        located = {e.id: where for e in entries if (where := article_location(e))}
        stored = db.articles.get_articles(sorted(set(located.values())))
        wanted: dict[str, article_state.ArticleRecord | None] = {}
        for entry in entries:
            where = located.get(entry.id)
            if where is None or where in wanted:
                continue
            record = stored.get(where)
            if record is None or (entry.id not in known and record.status != "disallowed"):
                wanted[where] = record
        chosen = list(wanted.items())[: max(0, self.remaining)]
        self.remaining -= len(chosen)
        if len(chosen) < len(wanted):
            log.info(
                "%s: %d article pages left for a later run ([fetch] enrich_max reached)",
                source.name,
                len(wanted) - len(chosen),
            )
        outcomes = await asyncio.gather(*(self._one(source, w, r) for w, r in chosen))
        db.articles.record_articles(outcomes, at=now)  # one transaction for the run's pages, not one each
        metas = {w: r.meta for w, r in stored.items() if r.status == "ok" and r.meta is not None}
        metas.update({o.url: o.meta for o in outcomes if o.meta is not None})
        return tuple(
            apply_article(e, metas[located[e.id]], excerpt_chars=self.excerpt_chars)
            if e.id in located and located[e.id] in metas
            else e
            for e in entries
        )

    async def _one(
        self, source: Source, where: str, record: article_state.ArticleRecord | None
    ) -> article_state.ArticleOutcome:
        """Fetch and read one article; never raises (a failure is an outcome to store)."""
        try:
            return await self._read(source, where, record)
        except DigestError as e:
            log.warning("%s: could not read the article %s: %s", source.name, where, e.message)
            return article_state.ArticleOutcome(where, "failed", error=e.message)
        except Exception as e:  # a bug with one odd page must not fail the source
            log.exception("%s: unexpected error reading the article %s", source.name, where)
            return article_state.ArticleOutcome(where, "failed", error=f"{type(e).__name__}: {e}")

    async def _read(
        self, source: Source, where: str, record: article_state.ArticleRecord | None
    ) -> article_state.ArticleOutcome:
        async with self.limit:
            if not where.startswith(("http://", "https://")):
                meta = await asyncio.to_thread(self._read_file, where)
                return article_state.ArticleOutcome(where, "ok", meta)
            if not await self._allowed(source, where):
                log.info("%s: robots.txt disallows %s; not enriching from it", source.name, where)
                return article_state.ArticleOutcome(where, "disallowed")
            validators = (
                fetch.Validators(record.etag, record.last_modified)
                if record and record.status == "ok"
                else fetch.Validators()
            )
            fetched = await fetch.fetch_http(
                self.client,
                where,
                name=f"{source.name}: article",
                timeout=source.timeout,
                user_agent=source.user_agent,
                validators=validators,
                max_bytes=self.max_bytes,
                retries=0,
            )
        # The page is read outside the limit (the next fetch starts) and off the event loop (the
        # connections still waiting for their replies are served while lxml and extruct work).
        if fetched.status == "not_modified" and record is not None and record.meta is not None:
            return article_state.ArticleOutcome(where, "unchanged", record.meta)
        if fetched.status != "ok" or not fetched.documents:
            return article_state.ArticleOutcome(where, "failed", error=f"HTTP {fetched.http_status}")
        document = fetched.documents[0]
        meta = await asyncio.to_thread(read_article, document.body, document.location, timezone=self.timezone)
        return article_state.ArticleOutcome(
            where,
            "ok",
            meta,
            etag=fetched.validators.etag,
            last_modified=fetched.validators.last_modified,
        )

    def _read_file(self, where: str) -> ArticleMeta:
        path = (self.root / where).resolve()
        try:
            path.relative_to(self.root)
        except ValueError:
            raise DigestError(f"{where} is outside the config folder") from None
        try:
            body = path.read_bytes()
        except OSError as e:
            raise DigestError(f"cannot read {where}: {e.strerror}") from e
        return read_article(body[: self.max_bytes], where, timezone=self.timezone)

    async def _allowed(self, source: Source, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        key = (origin, source.user_agent)
        task = self._robots.get(key)
        if task is None:
            task = asyncio.ensure_future(self._robots_txt(origin, source))
            self._robots[key] = task
        rules = await task
        return rules is not None and rules.can_fetch(source.user_agent, url)

    async def _robots_txt(self, origin: str, source: Source) -> urllib.robotparser.RobotFileParser | None:
        """The site's rules; everything allowed when it has no robots.txt (4xx), None (nothing allowed this
        run) when it cannot be read (RFC 9309)."""
        rules = urllib.robotparser.RobotFileParser(f"{origin}/robots.txt")
        try:
            fetched = await fetch.fetch_http(
                self.client,
                f"{origin}/robots.txt",
                name=f"{source.name}: robots.txt",
                timeout=source.timeout,
                user_agent=source.user_agent,
                validators=fetch.Validators(),
                max_bytes=512_000,
                retries=0,
            )
        except fetch.HTTPStatusFetchError as e:
            if e.status is not None and 400 <= e.status < 500:
                rules.parse([])
                return rules
            log.warning("%s: %s; no articles read from %s this run", source.name, e.message, origin)
            return None
        except DigestError as e:
            log.warning("%s: %s; no articles read from %s this run", source.name, e.message, origin)
            return None
        body = fetched.documents[0].body if fetched.documents else b""
        rules.parse(body.decode("utf-8", "replace").splitlines())
        return rules


def article_location(entry: Entry) -> str | None:
    """Where an entry's article page is: its local stand-in file, else its http(s) link."""
    return entry.article or entry.link


def is_cut(title: str) -> bool:
    """Whether a title ends in "..." or "…" (cut short by the site)."""
    return bool(_CUT.search(title))


def completes(cut: str, full: str) -> bool:
    """Whether `full` is the whole of the title `cut` was cut from (same words up to the cut)."""
    stem = _normal(_CUT.sub("", cut))
    whole = _normal(full)
    return len(stem) >= 8 and len(whole) > len(stem) and whole.startswith(stem)


def _normal(text: str) -> str:
    return " ".join(text.translate(_QUOTES).casefold().split())


def apply_article(entry: Entry, meta: ArticleMeta, *, excerpt_chars: int) -> Entry:
    """`entry` with what it lacks taken from its article's metadata; `enriched` names what was taken."""
    changes: dict[str, Any] = {}
    filled: list[str] = []
    if entry.date_estimated and meta.published is not None:
        changes.update(published=meta.published, date_estimated=False)
        filled.append("date")
    if meta.title and is_cut(entry.title) and completes(entry.title, meta.title):
        changes["title"] = meta.title
        filled.append("title")
    if entry.image is None and meta.image is not None:
        changes["image"] = meta.image
        filled.append("image")
    if not entry.summary_text.strip() and meta.summary:
        changes["summary_html"] = clean.sanitise_html(
            clean.text_to_html(meta.summary), meta.url or entry.link
        )
        changes["summary_text"] = clean.excerpt(meta.summary, excerpt_chars)
        filled.append("summary")
    if entry.link is None and meta.url:
        changes["link"] = meta.url
        filled.append("link")
    if not filled:
        return entry
    return replace(
        entry, enriched=(*entry.enriched, *(f for f in filled if f not in entry.enriched)), **changes
    )
