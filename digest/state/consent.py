"""Consent wording (stored once, named by its sha256) and the suppression list of erased addresses."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from digest.state import from_iso, to_iso
from digest.state.backend import Database
from digest.state.settings import Settings

_HASH_KEY = "address_hash_secret"  # the setting holding the key of erased addresses' hashes


def wording_sha256(text: str) -> str:
    """The name a consent wording is stored under: the sha256 of its UTF-8 text, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Consent:
    """Consent wordings shown or relied on, and the keyed hashes of addresses that were forgotten."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._key: bytes | None = None

    def address_hash(self, email: str) -> str:
        """HMAC-SHA256 of the address (without case) under a key generated once and kept in state."""
        if self._key is None:
            self._key = Settings(self._db).generated_secret(_HASH_KEY).encode("ascii")
        return hmac.new(self._key, email.strip().lower().encode("utf-8"), hashlib.sha256).hexdigest()

    def keep_wording(self, text: str, *, at: datetime) -> str:
        """Store a consent wording once; returns its sha256."""
        sha = wording_sha256(text)
        self._db.execute(
            "INSERT INTO consent_texts (sha256, text, first_used_at) VALUES (?, ?, ?)"
            " ON CONFLICT (sha256) DO NOTHING",
            (sha, text, to_iso(at)),
        )
        return sha

    def wording(self, sha256: str) -> str | None:
        row = self._db.fetch_one("SELECT text FROM consent_texts WHERE sha256 = ?", (sha256,))
        return str(row["text"]) if row else None

    def suppress_address(self, email: str, *, at: datetime) -> None:
        """Put an erased address on the suppression list as a keyed hash only, so imports still refuse it."""
        self._db.execute(
            "INSERT INTO forgotten (address_hash, forgotten_at) VALUES (?, ?)"
            " ON CONFLICT (address_hash) DO NOTHING",
            (self.address_hash(email), to_iso(at)),
        )

    def forgotten_at(self, email: str) -> datetime | None:
        """When this address was erased, if it was (matched by its keyed hash)."""
        row = self._db.fetch_one(
            "SELECT forgotten_at FROM forgotten WHERE address_hash = ?", (self.address_hash(email),)
        )
        return from_iso(row["forgotten_at"]) if row else None

    def forgotten_hashes(self) -> dict[str, datetime]:
        """Every erased address's keyed hash and when it was erased (a short list, read once by imports)."""
        rows = self._db.fetch_all("SELECT address_hash, forgotten_at FROM forgotten")
        return {str(r[0]): from_iso(r[1]) for r in rows}

    def unforget(self, email: str) -> None:
        """Take an address off the erased list (it joins again, with a new consent record)."""
        self._db.execute("DELETE FROM forgotten WHERE address_hash = ?", (self.address_hash(email),))
