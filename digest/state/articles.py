"""Article pages read for enrichment: one row per address with its validators and what the page said.

An article is fetched once; a later sighting of the same address sends the stored validators (a 304 keeps
the stored metadata). Articles no current entry links to go with `prune_articles`.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from digest.ingest.parse.article import ArticleMeta
from digest.models import Image
from digest.state import from_iso, to_iso, transaction


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


def get_articles(db: sqlite3.Connection, urls: list[str]) -> dict[str, ArticleRecord]:
    """The stored articles among `urls`, by address."""
    found: dict[str, ArticleRecord] = {}
    for start in range(0, len(urls), 500):
        chunk = urls[start : start + 500]
        rows = db.execute(
            f"SELECT * FROM articles WHERE url IN ({', '.join('?' * len(chunk))})", chunk
        ).fetchall()
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
    db: sqlite3.Connection,
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
    with transaction(db):
        db.execute(
            """INSERT OR REPLACE INTO articles (url, etag, last_modified, fetched_at, status, meta, error)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (url, etag, last_modified, to_iso(at), status, _meta_to_json(meta) if meta else None, error),
        )


def touch_article(db: sqlite3.Connection, url: str, *, at: datetime) -> None:
    """Note that a conditional GET found the stored article unchanged."""
    with transaction(db):
        db.execute("UPDATE articles SET fetched_at = ? WHERE url = ?", (to_iso(at), url))


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
