"""Rate limits shared by every process and host on this state: hits counted per key in time windows.

A client is never stored as itself: its key is an HMAC-SHA256 of it under a secret generated once and
kept in state settings (as the hashes of erased addresses are), so the table holds no IP address.

Counting is a sliding window over hit times truncated to buckets of a sixtieth of the window (a minute
for an hour): a hit is allowed when fewer than `limit` allowed hits of the key lie in buckets that start
within the last window. So a hit ages out of the count up to one bucket early, never late, and a burst
at the end of one hour is not followed by a second at the start of the next (a fixed window's flaw). The
buckets before the current one are final when summed; the current one is raised with one `INSERT ... ON
CONFLICT DO UPDATE ... WHERE hits < cap RETURNING hits` (cap: the limit less that sum), atomic on SQLite
and PostgreSQL alike, so concurrent requests from several processes and hosts never allow more than the
limit. Refused hits are not counted (as before: a client over the limit is let in again as its allowed
hits age out), so a key holds at most `limit` rows. Rows whose bucket left the window are deleted at each
hit, so the table holds one window of keys at most.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import datetime, timedelta

from digest.state.backend import Database
from digest.state.settings import Settings

_KEY_SETTING = "throttle_key_secret"  # the setting holding the key of clients' hashes
BUCKETS = 60  # a window is counted in this many buckets


class Throttle:
    """Allowed hits per (scope, keyed hash of a client) in time buckets, read as a sliding window."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._key: bytes | None = None

    def client_hash(self, client: str) -> str:
        """HMAC-SHA256 of the client (an IP address) under a key generated once and kept in state."""
        if self._key is None:
            self._key = Settings(self._db).generated_secret(_KEY_SETTING).encode("ascii")
        return hmac.new(self._key, client.strip().lower().encode("utf-8"), hashlib.sha256).hexdigest()

    def hit(self, scope: str, client: str, *, at: datetime, window: timedelta, limit: int) -> bool:
        """Count one hit of `client` in `scope`; False (and nothing counted) when it already had `limit`
        allowed hits in the last `window` (buckets as above)."""
        length = int(window.total_seconds())
        if length <= 0 or limit <= 0:
            raise ValueError(f"a throttle needs a positive window and limit, not {window} and {limit}")
        bucket = max(1, length // BUCKETS)
        now = math.floor(at.timestamp())
        start = now - now % bucket
        since = now - length  # buckets starting after this are in the window
        key = self.client_hash(client)
        self._db.execute("DELETE FROM throttle_hits WHERE scope = ? AND bucket_start <= ?", (scope, since))
        # Buckets after the current one count too (up to a window ahead): another host whose clock is
        # ahead, or this clock set back, wrote them, and leaving them out let a client in again.
        row = self._db.fetch_one(
            "SELECT COALESCE(SUM(hits), 0) FROM throttle_hits WHERE scope = ? AND key_hash = ?"
            " AND bucket_start > ? AND bucket_start < ? AND bucket_start <> ?",
            (scope, key, since, now + length, start),
        )
        cap = limit - (int(row[0]) if row else 0)  # hits the current bucket may hold before this one
        if cap <= 0:
            return False
        allowed = self._db.fetch_one(
            "INSERT INTO throttle_hits (scope, key_hash, bucket_start, hits) VALUES (?, ?, ?, 1)"
            " ON CONFLICT (scope, key_hash, bucket_start)"
            " DO UPDATE SET hits = throttle_hits.hits + 1 WHERE throttle_hits.hits < ?"
            " RETURNING hits",
            (scope, key, start, cap),
        )
        return allowed is not None

    def rows(self) -> int:
        """How many (scope, client, bucket) counts are kept (for tests)."""
        row = self._db.fetch_one("SELECT COUNT(*) FROM throttle_hits")
        return int(row[0]) if row else 0
