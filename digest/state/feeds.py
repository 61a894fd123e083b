"""The feed cache in state: conditional-GET validators, permanent redirects, gone flags and source health.

One row per source name. When the configured URL of a source changes, everything learned about the old URL
(validators, redirect target, gone flag) is forgotten, so the new URL is fetched afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.models import SourceStatus
from digest.state import from_iso, to_iso
from digest.state.backend import Database, Row


@dataclass(frozen=True, slots=True)
class FeedRecord:
    """What state knows about one source."""

    source: str
    url: str
    etag: str | None
    last_modified: str | None
    body_sha256: str | None
    parse_settings: str | None
    permanent_url: str | None
    gone: bool
    status: SourceStatus | None
    http_status: int | None
    error: str | None
    redirected_to: str | None
    consecutive_failures: int
    entry_count: int
    newest_entry_at: datetime | None
    last_attempt_at: datetime | None
    last_success_at: datetime | None


def _record(row: Row) -> FeedRecord:
    return FeedRecord(
        source=row["source"],
        url=row["url"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        body_sha256=row["body_sha256"],
        parse_settings=row["parse_settings"],
        permanent_url=row["permanent_url"],
        gone=bool(row["gone"]),
        status=SourceStatus(row["status"]) if row["status"] else None,
        http_status=row["http_status"],
        error=row["error"],
        redirected_to=row["redirected_to"],
        consecutive_failures=row["consecutive_failures"],
        entry_count=row["entry_count"],
        newest_entry_at=from_iso(row["newest_entry_at"]) if row["newest_entry_at"] else None,
        last_attempt_at=from_iso(row["last_attempt_at"]) if row["last_attempt_at"] else None,
        last_success_at=from_iso(row["last_success_at"]) if row["last_success_at"] else None,
    )


class Feeds:
    """The feed cache: validators, redirects, gone flags and source health."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get_feed(self, source: str, url: str | None = None) -> FeedRecord | None:
        """The record of `source`; None when there is none, or when it was for another configured `url`."""
        row = self._db.fetch_one("SELECT * FROM feeds WHERE source = ?", (source,))
        if row is None or (url is not None and row["url"] != url):
            return None
        return _record(row)

    def all_feeds(self) -> dict[str, FeedRecord]:
        return {r["source"]: _record(r) for r in self._db.fetch_all("SELECT * FROM feeds")}

    def _ensure(self, source: str, url: str) -> None:
        """Create the row, or reset what was learned about a different URL."""
        self._db.execute(
            """INSERT INTO feeds (source, url) VALUES (?, ?)
               ON CONFLICT (source) DO UPDATE SET
                   etag = CASE WHEN feeds.url = excluded.url THEN feeds.etag END,
                   last_modified = CASE WHEN feeds.url = excluded.url THEN feeds.last_modified END,
                   body_sha256 = CASE WHEN feeds.url = excluded.url THEN feeds.body_sha256 END,
                   parse_settings = CASE WHEN feeds.url = excluded.url THEN feeds.parse_settings END,
                   permanent_url = CASE WHEN feeds.url = excluded.url THEN feeds.permanent_url END,
                   gone = CASE WHEN feeds.url = excluded.url THEN feeds.gone ELSE 0 END,
                   consecutive_failures = CASE WHEN feeds.url = excluded.url
                                               THEN feeds.consecutive_failures ELSE 0 END,
                   url = excluded.url""",
            (source, url),
        )

    def record_fetch(
        self,
        *,
        source: str,
        url: str,
        status: SourceStatus,
        at: datetime,
        http_status: int | None = None,
        error: str | None = None,
        redirected_to: str | None = None,
        permanent_url: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        body_sha256: str | None = None,
        parse_settings: str | None = None,
        entry_count: int | None = None,
        newest_entry_at: datetime | None = None,
    ) -> FeedRecord:
        """Record the outcome of one fetch of `source` and return the updated record.

        A failure counts one more consecutive failure and keeps the validators; a success resets the count.
        When a body was received ("ok", or "not_modified" with `body_sha256` given: the same bytes as the last
        parsed body), the new validators, the body's sha256 and the parse settings' fingerprint are stored.
        "gone" is sticky until the configured URL changes.
        """
        with self._db.transaction():
            self._ensure(source, url)
            common = (to_iso(at), http_status, error, redirected_to, status.value, source)
            if status is SourceStatus.FAILED:
                self._db.execute(
                    """UPDATE feeds SET last_attempt_at = ?, http_status = ?, error = ?, redirected_to = ?,
                           status = ?, consecutive_failures = consecutive_failures + 1 WHERE source = ?""",
                    common,
                )
            else:
                self._db.execute(
                    """UPDATE feeds SET last_attempt_at = ?, http_status = ?, error = ?, redirected_to = ?,
                           status = ?, consecutive_failures = 0, last_success_at = ?,
                           gone = ?, permanent_url = coalesce(?, permanent_url) WHERE source = ?""",
                    (*common[:5], to_iso(at), int(status is SourceStatus.GONE), permanent_url, source),
                )
            if status is SourceStatus.OK or body_sha256 is not None:
                self._db.execute(
                    "UPDATE feeds SET etag = ?, last_modified = ?, body_sha256 = ?, parse_settings = ?"
                    " WHERE source = ?",
                    (etag, last_modified, body_sha256, parse_settings, source),
                )
            if entry_count is not None:
                self._db.execute(
                    "UPDATE feeds SET entry_count = ?, newest_entry_at = ? WHERE source = ?",
                    (entry_count, to_iso(newest_entry_at) if newest_entry_at else None, source),
                )
        record = self.get_feed(source)
        assert record is not None  # noqa: S101 - the row was written in the transaction above
        return record
