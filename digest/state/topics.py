"""Topics in state: the priorities each reader chose, and each issue's topic variants.

A reader without a row in `subscriber_topics` gets the whole issue. `issue_variants` records each
variant built for an issue: its key (the chosen names joined by "; "), the folder of its files and
their hashes, and how many entries it holds (0: not sent that week).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from digest.state.backend import Database


@dataclass(frozen=True, slots=True)
class VariantRecord:
    issue_id: str
    key: str
    folder: Path
    html_sha256: str
    text_sha256: str
    entry_count: int


def variants_fingerprint(db: Database, issue_id: str) -> str:
    """One hash of every topic variant recorded for an issue (keys, file hashes, entry counts); "" when the
    issue has none. An approval keeps it: any variant added, dropped or changed voids the approval."""
    rows = db.fetch_all(
        "SELECT variant, html_sha256, text_sha256, entry_count FROM issue_variants WHERE issue_id = ?"
        " ORDER BY variant",
        (issue_id,),
    )
    if not rows:
        return ""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(f"{row[0]}\0{row[1]}\0{row[2]}\0{row[3]}\n".encode())
    return digest.hexdigest()


class Topics:
    """Readers' topic choices and the variants built for them."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def set_topics(self, email: str, priorities: Iterable[str]) -> None:
        """Replace a reader's choice (an empty one: back to the whole issue)."""
        names = tuple(dict.fromkeys(p.strip() for p in priorities if p.strip()))
        with self._db.transaction():
            self._db.execute("DELETE FROM subscriber_topics WHERE email = ?", (email,))
            self._db.execute_many(
                "INSERT INTO subscriber_topics (email, priority) VALUES (?, ?)", [(email, n) for n in names]
            )

    def move_address(self, old: str, new: str) -> None:
        """Move a reader's choice to their new address (a confirmed change of address; any left over
        under the new address, from before it was on the list, is dropped)."""
        self._db.execute("DELETE FROM subscriber_topics WHERE email = ?", (new,))
        self._db.execute("UPDATE subscriber_topics SET email = ? WHERE email = ?", (new, old))

    def topics_of(self, email: str) -> tuple[str, ...]:
        rows = self._db.fetch_all(
            "SELECT priority FROM subscriber_topics WHERE email = ? ORDER BY priority", (email,)
        )
        return tuple(r[0] for r in rows)

    def choices(self) -> dict[str, tuple[str, ...]]:
        """Every reader with a choice: address (lower case) -> chosen names (active or not; callers match
        them against the recipients they send to)."""
        out: dict[str, list[str]] = {}
        for row in self._db.fetch_all(
            "SELECT email, priority FROM subscriber_topics ORDER BY email, priority"
        ):
            out.setdefault(str(row[0]).lower(), []).append(str(row[1]))
        return {email: tuple(names) for email, names in out.items()}

    def active_choices(self, audience: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
        """`choices` of active subscribers only (in `audience`, when given: holders of any of its tags)."""
        query = (
            "SELECT t.email, t.priority FROM subscriber_topics t JOIN subscribers s ON s.email = t.email"
            " WHERE s.status = 'active'"
        )
        if audience:
            marks = ", ".join("?" for _ in audience)
            query += (
                " AND EXISTS (SELECT 1 FROM subscriber_tags g WHERE g.email = s.email"
                f" AND g.tag IN ({marks}))"
            )
        out: dict[str, list[str]] = {}
        for row in self._db.fetch_all(query + " ORDER BY t.email, t.priority", audience):
            out.setdefault(str(row[0]).lower(), []).append(str(row[1]))
        return {email: tuple(names) for email, names in out.items()}

    def record_variants(self, issue_id: str, variants: Iterable[VariantRecord]) -> None:
        """Replace the variants recorded for an issue (a rebuild makes them anew)."""
        with self._db.transaction():
            self._db.execute("DELETE FROM issue_variants WHERE issue_id = ?", (issue_id,))
            self._db.execute_many(
                "INSERT INTO issue_variants"
                " (issue_id, variant, folder, html_sha256, text_sha256, entry_count)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (issue_id, v.key, str(v.folder), v.html_sha256, v.text_sha256, v.entry_count)
                    for v in variants
                ],
            )

    def fingerprint(self, issue_id: str) -> str:
        """`variants_fingerprint` of an issue: what an approval of it records of its variants."""
        return variants_fingerprint(self._db, issue_id)

    def variants_of(self, issue_id: str) -> dict[str, VariantRecord]:
        rows = self._db.fetch_all(
            "SELECT * FROM issue_variants WHERE issue_id = ? ORDER BY variant", (issue_id,)
        )
        return {
            r["variant"]: VariantRecord(
                r["issue_id"],
                r["variant"],
                Path(r["folder"]),
                r["html_sha256"],
                r["text_sha256"],
                r["entry_count"],
            )
            for r in rows
        }
