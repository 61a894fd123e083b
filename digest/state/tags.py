"""Subscriber tags in state: the audiences of `[[editions]]` (an edition goes to holders of any of its tags).

Tags live in their own table (`subscriber_tags`), keyed by address (case-insensitive) and tag. Tags are
kept in lower case; a subscriber's row going away takes its tags with it (`forget`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from digest.state.backend import Database, count_of
from digest.state.subscribers import Subscriber, SubscriberStatus, address_order, subscriber_from_row

_PAGE = 1000


def clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags as stored: stripped, lower case, without repeats, in the order given."""
    return tuple(dict.fromkeys(t.strip().casefold() for t in tags if t.strip()))


class SubscriberTags:
    """Tag subscribers, untag them, and page through those holding a tag."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_tags(self, email: str, tags: Iterable[str]) -> int:
        """Give a subscriber these tags; returns how many were new to them."""
        added = 0
        with self._db.transaction():
            for tag in clean_tags(tags):
                added += self._db.execute(
                    "INSERT INTO subscriber_tags (email, tag) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (email, tag),
                )
        return added

    def remove_tags(self, email: str, tags: Iterable[str]) -> int:
        """Take these tags from a subscriber; returns how many they had."""
        removed = 0
        with self._db.transaction():
            for tag in clean_tags(tags):
                removed += self._db.execute(
                    "DELETE FROM subscriber_tags WHERE email = ? AND tag = ?", (email, tag)
                )
        return removed

    def move_address(self, old: str, new: str) -> None:
        """Move a reader's tags to their new address (a confirmed change of address; any left over under
        the new address, from before it was on the list, are dropped)."""
        self._db.execute("DELETE FROM subscriber_tags WHERE email = ?", (new,))
        self._db.execute("UPDATE subscriber_tags SET email = ? WHERE email = ?", (new, old))

    def forget(self, email: str) -> None:
        """Drop every tag of an address (its subscriber row was removed)."""
        self._db.execute("DELETE FROM subscriber_tags WHERE email = ?", (email,))

    def tags_of(self, email: str) -> tuple[str, ...]:
        rows = self._db.fetch_all("SELECT tag FROM subscriber_tags WHERE email = ? ORDER BY tag", (email,))
        return tuple(r[0] for r in rows)

    def count_tagged(self, tags: Iterable[str], status: SubscriberStatus | None = None) -> int:
        """Subscribers (with `status`, if given) holding any of `tags`."""
        wanted = clean_tags(tags)
        if not wanted:
            return 0
        marks = ", ".join("?" for _ in wanted)
        query = (
            "SELECT count(*) FROM subscribers s WHERE EXISTS (SELECT 1 FROM subscriber_tags t"
            f" WHERE t.email = s.email AND t.tag IN ({marks}))"
        )
        params: tuple[str, ...] = wanted
        if status is not None:
            query += " AND s.status = ?"
            params = (*wanted, status)
        return count_of(self._db.fetch_one(query, params))

    def iter_tagged(
        self, tags: Iterable[str], status: SubscriberStatus | None = None
    ) -> Iterator[Subscriber]:
        """Subscribers holding any of `tags` (with `status`, if given), in address order, a page at a time."""
        wanted = clean_tags(tags)
        if not wanted:
            return
        marks = ", ".join("?" for _ in wanted)
        key = address_order(self._db, "s.email")
        query = (
            f"SELECT s.*, {key} AS sort_key FROM subscribers s WHERE EXISTS (SELECT 1 FROM subscriber_tags t"
            f" WHERE t.email = s.email AND t.tag IN ({marks}))"
        )
        params: tuple[str, ...] = wanted
        if status is not None:
            query += " AND s.status = ?"
            params = (*wanted, status)
        query += f" AND {key} > ? ORDER BY {key} LIMIT ?"
        after = ""
        while True:
            rows = self._db.fetch_all(query, (*params, after, _PAGE))
            for row in rows:
                yield subscriber_from_row(row)
            if len(rows) < _PAGE:
                return
            after = rows[-1]["sort_key"]
