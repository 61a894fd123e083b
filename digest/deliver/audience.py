"""Managing subscribers: addresses checked with email-validator (no DNS), CSV import with line numbers.

An import never re-subscribes someone who unsubscribed or bounced: it only updates their name. Adding
one address by hand (`add`) does re-activate it, as that is an explicit request.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from email_validator import EmailNotValidError, validate_email

from digest.deliver.headers import clean_text
from digest.errors import UsageError
from digest.state import subscribers, transaction


@dataclass(frozen=True, slots=True)
class Rejected:
    """A CSV row that was skipped: its line number in the file, the value, and why."""

    line: int
    value: str
    reason: str


@dataclass(frozen=True, slots=True)
class ImportReport:
    path: Path
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_inactive: int = 0
    rejected: tuple[Rejected, ...] = ()


def normalise_address(raw: str) -> str:
    """The canonical ASCII form of an address (IDN domains as punycode), without any DNS lookup.

    Raises:
        ValueError: the address is not valid; the message says why.
    """
    value = raw.strip()
    if not value:
        raise ValueError("the address is empty")
    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as e:
        raise ValueError(str(e)) from e
    if not checked.ascii_email:
        raise ValueError("the address needs SMTPUTF8 (non-ASCII before the @), which digest does not use")
    return checked.ascii_email


def clean_name(raw: str | None) -> str | None:
    """A display name without control characters or runs of spaces; None when empty."""
    name = clean_text(raw or "")
    return name or None


def add_subscriber(
    db: sqlite3.Connection, email: str, *, name: str | None, at: datetime
) -> tuple[str, Literal["added", "updated", "unchanged"]]:
    """Add or re-activate one address; returns its canonical form and what happened.

    Raises:
        UsageError: the address is not valid.
    """
    try:
        address = normalise_address(email)
    except ValueError as e:
        raise UsageError(
            f"{email!r} is not a valid email address: {e}",
            hint="write one address like name@example.org (a name goes in --name)",
        ) from e
    with transaction(db):
        outcome = subscribers.upsert_subscriber(db, address, name=clean_name(name), at=at, reactivate=True)
    return address, outcome


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(
            f"{path}: file not found",
            hint="check the path (relative to the current folder, not to the config file);"
            " the file is a CSV with an 'email' column and optionally 'name'",
        ) from None
    except UnicodeDecodeError as e:
        raise UsageError(
            f"{path}: not UTF-8 text (byte {e.start})", hint="save the CSV as UTF-8 (Excel: CSV UTF-8)"
        ) from e
    except OSError as e:
        raise UsageError(
            f"{path}: cannot read: {e.strerror}",
            hint="give the path of a CSV file that the user running digest can read",
        ) from e
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    columns = [c.strip().lower() for c in header or []]
    if "email" not in columns:
        raise UsageError(
            f"{path}: the first line must name the columns, with an 'email' column (and optionally 'name')",
            hint="for example: email,name",
        )
    index = {name: columns.index(name) for name in ("email", "name") if name in columns}
    line = reader.line_num
    for row in reader:
        start, line = line + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        yield start, {key: row[i] if i < len(row) else "" for key, i in index.items()}


def import_csv(db: sqlite3.Connection, path: Path, *, at: datetime) -> ImportReport:
    """Add or update every valid row of a CSV (columns `email`, optional `name`) in one transaction.

    Bad rows are skipped and reported with their line number; people who unsubscribed or bounced stay so.

    Raises:
        UsageError: the file is missing, not UTF-8, or has no `email` column.
    """
    rows = list(_rows(path))
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    kept = 0
    rejected: list[Rejected] = []
    seen: dict[str, int] = {}
    with transaction(db):
        for line, row in rows:
            raw = row.get("email", "")
            try:
                address = normalise_address(raw)
            except ValueError as e:
                rejected.append(Rejected(line, raw, str(e)))
                continue
            key = address.lower()
            if key in seen:
                rejected.append(Rejected(line, raw, f"the same address as line {seen[key]}"))
                continue
            seen[key] = line
            name = clean_name(row.get("name")) if "name" in row else None
            outcome = subscribers.upsert_subscriber(db, address, name=name, at=at, reactivate=False)
            counts[outcome] += 1
            existing = subscribers.get_subscriber(db, address)
            if existing is not None and existing.status != "active":
                kept += 1
    return ImportReport(
        path=path,
        added=counts["added"],
        updated=counts["updated"],
        unchanged=counts["unchanged"],
        kept_inactive=kept,
        rejected=tuple(rejected),
    )
