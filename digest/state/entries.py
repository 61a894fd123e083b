"""Entries in state, stored as JSON so an unchanged (304) feed or an offline run never parses again.

Each source's latest successful fetch marks its entries current; entries that dropped out of the feed stay
(not current) so their first-seen time survives if they come back, until `prune_entries` removes old ones.
An entry without a date is dated by the time it was first seen here, which never changes afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from digest.models import Entry, image_from_dict, image_to_dict
from digest.state import from_iso, to_iso
from digest.state.backend import Database


def entry_to_json(entry: Entry) -> str:
    """An Entry as a JSON object (datetimes as ISO UTC strings)."""
    data: dict[str, Any] = {
        "id": entry.id,
        "source": entry.source,
        "category": entry.category,
        "title": entry.title,
        "link": entry.link,
        "published": to_iso(entry.published),
        "updated": to_iso(entry.updated) if entry.updated else None,
        "date_estimated": entry.date_estimated,
        "summary_html": entry.summary_html,
        "summary_text": entry.summary_text,
        "author": entry.author,
        "tags": list(entry.tags),
        "image": image_to_dict(entry.image) if entry.image else None,
        "priority": entry.priority,
        "pinned": entry.pinned,
        "language": entry.language,
    }
    if entry.enriched:
        data["enriched"] = list(entry.enriched)
    if entry.article:
        data["article"] = entry.article
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def entry_from_json(text: str) -> Entry:
    """Read back an Entry written by `entry_to_json` (`also_from` is not stored: dedupe recomputes it)."""
    data = json.loads(text)
    image = data.get("image")
    return Entry(
        id=data["id"],
        source=data["source"],
        category=data["category"],
        title=data["title"],
        link=data.get("link"),
        published=from_iso(data["published"]),
        updated=from_iso(data["updated"]) if data.get("updated") else None,
        date_estimated=bool(data.get("date_estimated")),
        summary_html=data.get("summary_html", ""),
        summary_text=data.get("summary_text", ""),
        author=data.get("author"),
        tags=tuple(data.get("tags") or ()),
        image=image_from_dict(image) if image else None,
        priority=data.get("priority"),
        pinned=bool(data.get("pinned")),
        language=data.get("language"),
        enriched=tuple(data.get("enriched") or ()),
        article=data.get("article"),
    )


class Entries:
    """Store and read entries (as JSON) per source."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def store_entries(self, source: str, entries: Iterable[Entry], *, now: datetime) -> tuple[Entry, ...]:
        """Make `entries` the current entries of `source` and return them with first-seen dates filled in.

        An entry with `date_estimated` gets `published` = the time it was first seen (now, the first time).
        Entries of the source not in `entries` are kept but no longer current. Duplicate ids keep the first.
        """
        unique: dict[str, Entry] = {}
        for entry in entries:
            unique.setdefault(entry.id, entry)
        stored: list[Entry] = []
        with self._db.transaction():
            seen = {
                row["id"]: from_iso(row["first_seen_at"])
                for row in self._db.fetch_all(
                    "SELECT id, first_seen_at FROM entries WHERE source = ?", (source,)
                )
            }
            rows = []
            for position, given in enumerate(unique.values()):
                first_seen = seen.get(given.id, now)
                entry = replace(given, published=first_seen) if given.date_estimated else given
                rows.append(
                    (
                        source,
                        entry.id,
                        to_iso(first_seen),
                        to_iso(entry.published),
                        entry_to_json(entry),
                        position,
                    )
                )
                stored.append(entry)
            self._db.execute("UPDATE entries SET current = 0 WHERE source = ?", (source,))
            # One prepared statement for every row (not one round trip each): a feed has 100s of entries.
            self._db.execute_many(
                """INSERT INTO entries (source, id, first_seen_at, published_at, current, data, position)
                   VALUES (?, ?, ?, ?, 1, ?, ?)
                   ON CONFLICT (source, id) DO UPDATE SET first_seen_at = excluded.first_seen_at,
                       published_at = excluded.published_at, current = 1, data = excluded.data,
                       position = excluded.position""",
                rows,
            )
        return tuple(stored)

    def find_entry(self, entry_id: str) -> Entry | None:
        """The entry with this id, from whichever source state has it (None when it is gone)."""
        row = self._db.fetch_one("SELECT data FROM entries WHERE id = ? LIMIT 1", (entry_id,))
        return entry_from_json(row["data"]) if row else None

    def newest_before(self, moment: datetime) -> datetime | None:
        """When the newest entry published before `moment` was published (None when there is none)."""
        row = self._db.fetch_one(
            "SELECT MAX(published_at) FROM entries WHERE published_at < ?", (to_iso(moment),)
        )
        return from_iso(row[0]) if row and row[0] else None

    def current_entries(self, source: str) -> tuple[Entry, ...]:
        """The entries of `source`'s latest successful fetch, in the order they were stored."""
        rows = self._db.fetch_all(
            "SELECT data FROM entries WHERE source = ? AND current = 1 ORDER BY position", (source,)
        )
        return tuple(entry_from_json(r["data"]) for r in rows)

    def entry_ids(self, source: str) -> frozenset[str]:
        """The ids of every entry of `source` that state holds (current or not)."""
        return frozenset(
            r["id"] for r in self._db.fetch_all("SELECT id FROM entries WHERE source = ?", (source,))
        )

    def first_seen(self, source: str, entry_id: str) -> datetime | None:
        row = self._db.fetch_one(
            "SELECT first_seen_at FROM entries WHERE source = ? AND id = ?", (source, entry_id)
        )
        return from_iso(row["first_seen_at"]) if row else None

    def prune_entries(self, *, before: datetime, sources: Iterable[str]) -> int:
        """Delete entries that left their feed and are older than `before`; return how many were deleted.

        An entry goes when it is not current (not in its source's latest successful fetch, or its source is no
        longer one of `sources`, the configured names), and both its date and its first sighting are before
        `before`. Entries of a built issue that has not been sent yet always stay (send and preview still need
        them); `sent_entries`, which keeps a sent entry from being sent again, is never touched.
        """
        names = sorted(set(sources))
        # An empty `IN ()` is SQLite-only: with no configured source every entry counts as left.
        left = f"current = 0 OR source NOT IN ({', '.join('?' * len(names))})" if names else "1 = 1"
        cutoff = to_iso(before)
        with self._db.transaction():
            return self._db.execute(
                f"""DELETE FROM entries
                    WHERE ({left})
                      AND published_at < ? AND first_seen_at < ?
                      AND id NOT IN (SELECT issue_entries.entry_id FROM issue_entries
                                     JOIN issues ON issues.id = issue_entries.issue_id
                                     WHERE issues.sent_at IS NULL)""",
                (*names, cutoff, cutoff),
            )
