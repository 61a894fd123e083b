"""Article pages read for enrichment: one row per address with its validators and what the page said.

An article is fetched once; a later sighting of the same address sends the stored validators (a 304 keeps
the stored metadata). Articles no current entry links to go with `prune_articles`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from digest.ingest.parse.article import ArticleMeta
from digest.models import Image
from digest.state import from_iso, to_iso
from digest.state.backend import Database


@dataclass(frozen=True, slots=True)
class ArticleRecord:
    """A stored article: `status` is "ok", "failed" or "disallowed" (robots.txt); `meta` when ok."""

    url: str
    etag: str | None
    last_modified: str | None
    fetched_at: datetime
    status: str
    meta: ArticleMeta | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ArticleOutcome:
    """What fetching one article found, to be stored: `status` as in ArticleRecord, or "unchanged" (a 304:
    the stored page stands; `meta` then carries the stored metadata and only the time is written)."""

    url: str
    status: str
    meta: ArticleMeta | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None


def _meta_to_json(meta: ArticleMeta) -> str:
    data: dict[str, Any] = {
        "title": meta.title,
        "published": to_iso(meta.published) if meta.published else None,
        "image": (
            {
                "url": meta.image.url,
                "alt": meta.image.alt,
                "width": meta.image.width,
                "height": meta.image.height,
            }
            if meta.image
            else None
        ),
        "summary": meta.summary,
        "url": meta.url,
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _meta_from_json(text: str) -> ArticleMeta:
    data = json.loads(text)
    image = data.get("image")
    return ArticleMeta(
        title=data.get("title"),
        published=from_iso(data["published"]) if data.get("published") else None,
        image=Image(image["url"], image.get("alt", ""), image.get("width"), image.get("height"))
        if image
        else None,
        summary=data.get("summary"),
        url=data.get("url"),
    )


class Articles:
    """Cache the article pages read for enrichment."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get_articles(self, urls: list[str]) -> dict[str, ArticleRecord]:
        """The stored articles among `urls`, by address."""
        found: dict[str, ArticleRecord] = {}
        for start in range(0, len(urls), 500):
            chunk = urls[start : start + 500]
            rows = self._db.fetch_all(
                f"SELECT * FROM articles WHERE url IN ({', '.join('?' * len(chunk))})", chunk
            )
            for row in rows:
                found[row["url"]] = ArticleRecord(
                    url=row["url"],
                    etag=row["etag"],
                    last_modified=row["last_modified"],
                    fetched_at=from_iso(row["fetched_at"]),
                    status=row["status"],
                    meta=_meta_from_json(row["meta"]) if row["meta"] else None,
                    error=row["error"],
                )
        return found

    def record_article(
        self,
        url: str,
        *,
        at: datetime,
        status: str,
        meta: ArticleMeta | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        error: str | None = None,
    ) -> None:
        """Store the outcome of fetching one article (replacing what was stored for the address)."""
        self.record_articles([ArticleOutcome(url, status, meta, etag, last_modified, error)], at=at)

    def record_articles(self, outcomes: Sequence[ArticleOutcome], *, at: datetime) -> None:
        """Store what one run's article fetches found, in one transaction: an "unchanged" outcome (a 304)
        only notes the time, the others replace what was stored for their address."""
        stamp = to_iso(at)
        replaced = [
            (
                o.url,
                o.etag,
                o.last_modified,
                stamp,
                o.status,
                _meta_to_json(o.meta) if o.meta else None,
                o.error,
            )
            for o in outcomes
            if o.status != "unchanged"
        ]
        touched = [(stamp, o.url) for o in outcomes if o.status == "unchanged"]
        if not outcomes:
            return  # no write lock taken for a run with nothing to store
        with self._db.transaction():
            if replaced:
                self._db.execute_many(
                    """INSERT INTO articles (url, etag, last_modified, fetched_at, status, meta, error)
                       VALUES (?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (url) DO UPDATE SET etag = excluded.etag,
                           last_modified = excluded.last_modified, fetched_at = excluded.fetched_at,
                           status = excluded.status, meta = excluded.meta, error = excluded.error""",
                    replaced,
                )
            if touched:
                self._db.execute_many("UPDATE articles SET fetched_at = ? WHERE url = ?", touched)

    def touch_article(self, url: str, *, at: datetime) -> None:
        """Note that a conditional GET found the stored article unchanged."""
        self.record_articles([ArticleOutcome(url, "unchanged")], at=at)
