"""Ingest: fetch every enabled source concurrently, parse what changed, keep entries in state, de-duplicate.

`ingest_sources` is what every later stage calls. A source that fails keeps its last good entries (from state)
and reports why; it never stops the others. An unchanged feed (HTTP 304, a body byte-identical to the last
one parsed, or a local file with the same content) and an offline run read the entries kept in state and
never parse again.

Parsing (feedparser is pure Python, so CPU-bound under the GIL) runs in a pool of worker processes, one per
core, when a run has several sources; then the event loop keeps fetching while feeds are parsed, and feeds
parse on every core. A small run parses in this process and never pays for starting workers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx

from digest.config import Config, Source
from digest.errors import DigestError, ParseError, StateError
from digest.ingest import fetch
from digest.ingest.dedupe import dedupe
from digest.ingest.enrich import Enricher
from digest.ingest.parse import Listing, ParseContext, parse_document
from digest.models import Entry, SourceReport, SourceStatus
from digest.state.store import Store

log = logging.getLogger(__name__)

ProgressCallback = Callable[[SourceReport, int, int], None]
"""Called once per source as it finishes: (its report, sources done so far, sources in total)."""

T = TypeVar("T")

PARALLEL_PARSE_MIN_SOURCES = 4
"""A run with fewer enabled sources parses in-process (starting worker processes would cost more)."""

PARSE_WORKER_PRELOAD = (__name__, "digest.ingest.parse", "digest.ingest.parse.feeds")
"""Modules the fork server imports once, before it forks parse workers: all that a worker unpickles
(`parse_documents` in this module, whose `fetch.Document` brings httpx) and runs. A module left out is
imported again by every worker before its first parse (this one took 0.2 s each)."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The current, de-duplicated entries of all enabled sources, and one report per enabled source.

    `pruned` counts the old entries removed from state at the end of the run (`[state] keep_days`).
    """

    entries: tuple[Entry, ...]
    reports: tuple[SourceReport, ...]
    pruned: int = 0

    @property
    def failed(self) -> tuple[SourceReport, ...]:
        return tuple(r for r in self.reports if r.status in (SourceStatus.FAILED, SourceStatus.GONE))


def ingest_sources(
    config: Config,
    db: Store,
    *,
    now: datetime,
    offline: bool = False,
    on_progress: ProgressCallback | None = None,
    backoff: float = fetch.BACKOFF_SECONDS,
    parse_processes: int | None = None,
) -> IngestResult:
    """Fetch (unless `offline`), parse and store every enabled source; return entries and reports.

    `parse_processes`: worker processes for parsing; None picks one per core when there are at least
    PARALLEL_PARSE_MIN_SOURCES sources (else none), 0 parses in this process.

    A run that fetched then prunes state: entries that left their feed more than `[state] keep_days` ago
    (by date and first sighting) go, unless an unsent built issue holds them. An offline run changes nothing.

    Raises:
        StateError: the state database cannot be written. Source problems never raise: they are reported.
    """
    sources = config.enabled_sources
    if offline:
        reports = []
        for done, source in enumerate(sources, start=1):
            report = _report_from_state(db, source)
            reports.append(report)
            if on_progress:
                on_progress(report, done, len(sources))
    else:
        workers = parse_workers(parse_processes, sources=len(sources), cores=_cores())
        reports = _run(
            _fetch_all(config, db, now=now, on_progress=on_progress, backoff=backoff, workers=workers)
        )
    entries = [e for source in sources for e in db.entries.current_entries(source.name)]
    pruned = 0
    if not offline:
        before = now - timedelta(days=config.keep_days)
        pruned = db.entries.prune_entries(before=before, sources=(s.name for s in config.sources))
        if pruned:
            log.info("removed %d entries older than %d days that left their feeds", pruned, config.keep_days)
    return IngestResult(
        entries=dedupe(entries, sent_ids=db.issues.sent_entry_ids()), reports=tuple(reports), pruned=pruned
    )


def source_reports(config: Config, db: Store) -> tuple[SourceReport, ...]:
    """The last recorded health of each configured source (enabled or not), without fetching."""
    return tuple(_report_from_state(db, s) for s in config.sources)


def parse_workers(requested: int | None, *, sources: int, cores: int) -> int:
    """How many parse worker processes a run uses (0: parse in this process)."""
    if requested is not None:
        return max(0, requested)
    if cores < 2 or sources < PARALLEL_PARSE_MIN_SOURCES:  # one core: nothing to gain
        return 0
    return min(cores, sources)


def _cores() -> int:
    """The cores this process may run on (the affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextmanager
def _parse_pool(workers: int) -> Iterator[concurrent.futures.ProcessPoolExecutor | None]:
    """A process pool for parsing (None for 0 workers). Processes start on the first parse, not before."""
    if workers == 0:
        yield None
        return
    # Not "fork": the parent runs threads (an event loop maybe in a worker thread, SQLite, the HTTP client).
    context: multiprocessing.context.BaseContext
    if "forkserver" in multiprocessing.get_all_start_methods():
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload(list(PARSE_WORKER_PRELOAD))
        context = forkserver
    else:
        context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield pool


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also when called from a thread that already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _fetch_all(
    config: Config,
    db: Store,
    *,
    now: datetime,
    on_progress: ProgressCallback | None,
    backoff: float,
    workers: int,
) -> list[SourceReport]:
    sources = config.enabled_sources
    limit = asyncio.Semaphore(config.fetch.concurrency)
    done = 0

    async def one(source: Source) -> SourceReport:
        nonlocal done
        async with limit:
            report = await _ingest_one(
                config, db, source, client, pool, now=now, backoff=backoff, enricher=enricher
            )
        done += 1
        if on_progress:
            on_progress(report, done, len(sources))
        return report

    with _parse_pool(workers) as pool:
        async with fetch.new_client(concurrency=config.fetch.concurrency) as client:
            enricher = (
                Enricher(
                    client=client,
                    root=config.root,
                    max_pages=config.fetch.enrich_max,
                    concurrency=config.fetch.concurrency,
                    max_bytes=config.fetch.max_bytes,
                    timezone=config.digest.timezone,
                    excerpt_chars=config.digest.excerpt_chars,
                )
                if any(s.enrich for s in sources)
                else None
            )
            if enricher is not None:
                enricher.warm_up()
            return list(await asyncio.gather(*(one(s) for s in sources)))


def _configured_url(source: Source) -> str:
    return source.location if source.kind == "http" else source.url


async def _ingest_one(
    config: Config,
    db: Store,
    source: Source,
    client: httpx.AsyncClient,
    pool: concurrent.futures.ProcessPoolExecutor | None,
    *,
    now: datetime,
    backoff: float,
    enricher: Enricher | None = None,
) -> SourceReport:
    url = _configured_url(source)
    record = db.feeds.get_feed(source.name, url)
    if record is not None and record.gone:
        return _report_from_state(db, source)
    settings = _parse_settings(config, source)
    if record is not None and record.parse_settings != settings:
        # Parsing depends on settings that changed (category, excerpt length, ...): fetch and parse anew.
        record = replace(record, etag=None, last_modified=None, body_sha256=None)
    validators = fetch.Validators(record.etag, record.last_modified) if record else fetch.Validators()
    try:
        fetched = await fetch.fetch_source(
            source,
            root=config.root,
            client=client,
            validators=validators,
            url=record.permanent_url if record else None,
            max_bytes=config.fetch.max_bytes,
            retries=config.fetch.retries,
            backoff=backoff,
        )
        return await _store(
            config,
            db,
            source,
            url,
            fetched,
            pool=pool,
            now=now,
            last_body_sha256=record.body_sha256 if record else None,
            parse_settings=settings,
            enricher=enricher if source.enrich else None,
        )
    except StateError:  # the state store itself failed: no other source can be recorded either
        raise
    except DigestError as e:
        log.warning("%s: %s", source.name, e)
        status = e.status if isinstance(e, fetch.HTTPStatusFetchError) else None
        message = f"{e.message} (hint: {e.hint})" if e.hint else e.message
        return _failed(db, source, url, message, status, now=now)
    except Exception as e:  # a bug with one odd feed must not stop the other sources
        log.exception("%s: unexpected error while ingesting", source.name)
        return _failed(
            db, source, url, f"unexpected {type(e).__name__}: {e} (a bug: run with -v)", None, now=now
        )


def _failed(
    db: Store, source: Source, url: str, error: str, status: int | None, *, now: datetime
) -> SourceReport:
    db.feeds.record_fetch(
        source=source.name, url=url, status=SourceStatus.FAILED, at=now, http_status=status, error=error
    )
    return _report_from_state(db, source)


def _parse_settings(config: Config, source: Source) -> str:
    """A fingerprint of every setting the stored entries of `source` were parsed with."""
    settings = [
        source.category,
        source.max_entries,
        config.digest.excerpt_chars,
        config.digest.timezone,
        sorted(p.name for p in config.priorities),
        config.digest.min_image_width,
    ]
    if source.select is not None or source.enrich:  # listings and enrichment: only then, so feeds keep theirs
        settings += [repr(source.select), source.date_format, config.digest.locale, source.enrich]
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()


def _body_sha256(documents: tuple[fetch.Document, ...]) -> str:
    """One hash of every fetched document's location and bytes (what parsing depends on, besides config)."""
    digest = hashlib.sha256()
    for document in documents:
        digest.update(document.location.encode() + b"\0" + hashlib.sha256(document.body).digest())
    return digest.hexdigest()


def parse_documents(documents: tuple[fetch.Document, ...], ctx: ParseContext, kind: str) -> tuple[Entry, ...]:
    """Parse every document of one source (`kind` as in Source.kind); runs in a worker process or inline.

    Raises:
        ParseError: a document is not a feed digest can read (for a glob, the message names the file).
    """
    parsed: list[Entry] = []
    for document in documents:
        label = document.location if kind != "http" else None
        doc_ctx = ctx if kind == "http" else replace(ctx, url=document.location)
        try:
            result = parse_document(document.body, doc_ctx, content_type=document.content_type, label=label)
        except ParseError as e:
            prefix = f"{ctx.source}: "
            if kind == "glob" and label and label not in e.message and e.message.startswith(prefix):
                raise ParseError(f"{prefix}{label}: {e.message.removeprefix(prefix)}", hint=e.hint) from e
            raise
        parsed.extend(result.entries)
    return tuple(parsed)


async def _parse(
    pool: concurrent.futures.ProcessPoolExecutor | None,
    documents: tuple[fetch.Document, ...],
    ctx: ParseContext,
    kind: str,
) -> tuple[Entry, ...]:
    if pool is None:
        return parse_documents(documents, ctx, kind)
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, parse_documents, documents, ctx, kind)
    except BrokenProcessPool:
        log.warning("%s: the parse worker processes stopped; parsing in this process", ctx.source)
        return parse_documents(documents, ctx, kind)


async def _store(
    config: Config,
    db: Store,
    source: Source,
    url: str,
    fetched: fetch.Fetched,
    *,
    pool: concurrent.futures.ProcessPoolExecutor | None,
    now: datetime,
    last_body_sha256: str | None,
    parse_settings: str,
    enricher: Enricher | None = None,
) -> SourceReport:
    status = SourceStatus(fetched.status)
    permanent_url = fetched.redirected_to if fetched.permanent else None
    common: dict[str, Any] = {
        "source": source.name,
        "url": url,
        "at": now,
        "http_status": fetched.http_status,
        "redirected_to": fetched.redirected_to,
        "permanent_url": permanent_url,
    }
    if status is not SourceStatus.OK:  # not modified or gone: the stored entries (and their counts) stand
        db.feeds.record_fetch(status=status, **common)
        return _report_from_state(db, source)
    body_sha256 = _body_sha256(fetched.documents)
    if body_sha256 == last_body_sha256:  # a server without validators sent the same bytes: like a 304
        db.feeds.record_fetch(
            status=SourceStatus.NOT_MODIFIED,
            **common,
            etag=fetched.validators.etag,
            last_modified=fetched.validators.last_modified,
            body_sha256=body_sha256,
            parse_settings=parse_settings,
        )
        return _report_from_state(db, source)
    ctx = ParseContext(
        source=source.name,
        category=source.category,
        url=fetched.url,
        seen_at=now,
        excerpt_chars=config.digest.excerpt_chars,
        timezone=config.digest.timezone,
        priorities=tuple(p.name for p in config.priorities),
        listing=Listing(source.select, source.date_format, config.digest.locale) if source.select else None,
        min_image_width=config.digest.min_image_width,
    )
    parsed = await _parse(pool, fetched.documents, ctx, source.kind)
    if source.max_entries is not None:
        parsed = parsed[: source.max_entries]
    if enricher is not None:
        known = db.entries.entry_ids(source.name)
        parsed = await enricher.enrich(db, source, parsed, known=known, now=now)
    stored = db.entries.store_entries(source.name, parsed, now=now)
    db.feeds.record_fetch(
        status=status,
        **common,
        etag=fetched.validators.etag,
        last_modified=fetched.validators.last_modified,
        body_sha256=body_sha256,
        parse_settings=parse_settings,
        entry_count=len(stored),
        newest_entry_at=_newest(stored),
    )
    return _report_from_state(db, source)


def _newest(entries: tuple[Entry, ...]) -> datetime | None:
    """The newest real date (first-seen stand-ins would make a stale feed look fresh)."""
    return max((e.published for e in entries if not e.date_estimated), default=None)


def _report_from_state(db: Store, source: Source) -> SourceReport:
    record = db.feeds.get_feed(source.name, _configured_url(source))
    if record is None or record.status is None:
        return SourceReport(
            name=source.name,
            url=source.url,
            category=source.category,
            status=SourceStatus.FAILED,
            # Not fetched at this url: entries kept from an earlier url of the source are still used
            entries=len(db.entries.current_entries(source.name)),
            error="never fetched (run digest fetch)",
        )
    return SourceReport(
        name=source.name,
        url=source.url,
        category=source.category,
        status=SourceStatus.GONE if record.gone else record.status,
        entries=record.entry_count,
        http_status=record.http_status,
        error=record.error,
        redirected_to=record.redirected_to or record.permanent_url,
        permanent_redirect=record.permanent_url is not None,
        newest_entry=record.newest_entry_at,
        consecutive_failures=record.consecutive_failures,
        fetched_at=record.last_attempt_at,
    )
