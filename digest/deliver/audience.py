"""Managing subscribers: addresses checked with email-validator (no DNS), CSV import with line numbers.

An import never re-subscribes someone who unsubscribed or bounced: it only updates their name. Adding
one address by hand (`add`) does re-activate it, as that is an explicit request.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from email_validator import EmailNotValidError, validate_email

from digest.deliver.headers import clean_text
from digest.errors import UsageError
from digest.state.store import Store


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


# Internal-network domains a staff list may use with `[subscribers] allow_special_domains`.
STAFF_DOMAINS = ("local", "internal")
_STAND_IN = "staff-domain-stand-in"  # an ordinary top-level label checked in place of one of those


def normalise_address(raw: str, *, allow_special_domains: bool = False) -> str:
    """The canonical ASCII form of an address (IDN domains as punycode), without any DNS lookup.

    `allow_special_domains` accepts addresses in `.local` and `.internal` domains (staff lists on an
    internal mail system), which email-validator refuses as special-use names; every other check holds.

    Raises:
        ValueError: the address is not valid; the message says why.
    """
    value = raw.strip()
    if not value:
        raise ValueError("the address is empty")
    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as e:
        staff = _staff_address(value) if allow_special_domains else None
        if staff is None:
            hint = ""
            if _staff_suffix(value) is not None and "special-use" in str(e):
                hint = " ([subscribers] allow_special_domains = true accepts .local and .internal addresses)"
            raise ValueError(f"{e}{hint}") from e
        return staff
    if not checked.ascii_email:
        raise ValueError("the address needs SMTPUTF8 (non-ASCII before the @), which digest does not use")
    return checked.ascii_email


def _staff_suffix(value: str) -> str | None:
    domain = value.rpartition("@")[2].rstrip(".").lower()
    return next((s for s in STAFF_DOMAINS if domain == s or domain.endswith("." + s)), None)


def _staff_address(value: str) -> str | None:
    """`value` checked with its staff top-level label swapped for an ordinary one; None if not such."""
    suffix = _staff_suffix(value)
    domain = value.rpartition("@")[2].rstrip(".").lower()
    if suffix is None or domain == suffix:  # a bare "local" has no period: still not an address
        return None
    stand_in = value.rpartition("@")[0] + "@" + domain[: -len(suffix)] + _STAND_IN
    try:
        checked = validate_email(stand_in, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as e:
        raise ValueError(str(e)) from e
    if not checked.ascii_email or not checked.ascii_email.endswith(_STAND_IN):
        return None
    return checked.ascii_email[: -len(_STAND_IN)] + suffix


def clean_name(raw: str | None) -> str | None:
    """A display name without control characters or runs of spaces; None when empty."""
    name = clean_text(raw or "")
    return name or None


def add_subscriber(
    db: Store,
    email: str,
    *,
    name: str | None,
    at: datetime,
    allow_special_domains: bool = False,
) -> tuple[str, Literal["added", "updated", "unchanged"]]:
    """Add or re-activate one address; returns its canonical form and what happened.

    Raises:
        UsageError: the address is not valid.
    """
    try:
        address = normalise_address(email, allow_special_domains=allow_special_domains)
    except ValueError as e:
        raise UsageError(
            f"{email!r} is not a valid email address: {e}",
            hint="write one address like name@example.org (a name goes in --name)",
        ) from e
    with db.transaction():
        outcome = db.subscribers.upsert_subscriber(address, name=clean_name(name), at=at, reactivate=True)
    return address, outcome


TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def check_tag(raw: str) -> str:
    """A tag as stored (lower case), checked: 1-40 letters, digits, '_' or '-'.

    Raises:
        ValueError: the tag has other characters or is too long.
    """
    tag = raw.strip().casefold()
    if not TAG.match(tag):
        raise ValueError(f"{raw.strip()!r} is not a tag (1-40 letters, digits, '_' or '-')")
    return tag


def split_tags(cell: str) -> tuple[str, ...]:
    """The tags of an import cell, separated by `;` (empty parts ignored).

    Raises:
        ValueError: one of them is not a tag.
    """
    return tuple(dict.fromkeys(check_tag(part) for part in cell.split(";") if part.strip()))


def _known_address(db: Store, email: str, *, allow_special_domains: bool) -> str:
    """The canonical form of a subscriber's address.

    Raises:
        UsageError: the address is not on the list.
    """
    try:
        address = normalise_address(email, allow_special_domains=allow_special_domains)
    except ValueError:
        address = email.strip()
    known = db.subscribers.get_subscriber(address)
    if known is None:
        raise UsageError(
            f"{email.strip()} is not a subscriber",
            hint="add it first with digest subscribers add EMAIL (digest subscribers list shows the list)",
        )
    return known.email


def _checked_tags(tags: Iterable[str]) -> tuple[str, ...]:
    try:
        return tuple(dict.fromkeys(check_tag(t) for t in tags))
    except ValueError as e:
        raise UsageError(f"tag {e}", hint="tags name audiences, e.g. staff, residents, gp_practices") from e


def tag_subscriber(
    db: Store, email: str, tags: Iterable[str], *, allow_special_domains: bool = False
) -> tuple[str, tuple[str, ...]]:
    """Give a subscriber tags; returns its address and all its tags now.

    Raises:
        UsageError: the address is not a subscriber, or a tag is not valid.
    """
    wanted = _checked_tags(tags)
    address = _known_address(db, email, allow_special_domains=allow_special_domains)
    db.tags.add_tags(address, wanted)
    return address, db.tags.tags_of(address)


def untag_subscriber(
    db: Store, email: str, tags: Iterable[str], *, allow_special_domains: bool = False
) -> tuple[str, tuple[str, ...]]:
    """Take tags from a subscriber; returns its address and the tags it still holds.

    Raises:
        UsageError: the address is not a subscriber, or a tag is not valid.
    """
    wanted = _checked_tags(tags)
    address = _known_address(db, email, allow_special_domains=allow_special_domains)
    db.tags.remove_tags(address, wanted)
    return address, db.tags.tags_of(address)


def check_topics(names: Iterable[str], configured: Iterable[str]) -> tuple[str, ...]:
    """Priority names as configured (matched case-insensitively), without repeats.

    Raises:
        ValueError: a name is not a configured priority (the message lists them).
    """
    known = {name.casefold(): name for name in configured}
    out = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name.casefold() not in known:
            listed = ", ".join(known.values()) or "none: the config has no [[priorities]]"
            raise ValueError(f"{name!r} is not a priority (priorities: {listed})")
        out.append(known[name.casefold()])
    return tuple(dict.fromkeys(out))


def set_topics(
    db: Store,
    email: str,
    names: Iterable[str],
    *,
    configured: Iterable[str],
    allow_special_domains: bool = False,
) -> tuple[str, tuple[str, ...]]:
    """Set the priorities a subscriber chose (none: back to the whole issue); returns address and choice.

    Raises:
        UsageError: the address is not a subscriber, or a name is not a configured priority.
    """
    try:
        chosen = check_topics(names, configured)
    except ValueError as e:
        raise UsageError(f"topics: {e}", hint="name priorities as in [[priorities]] name, or --all") from e
    address = _known_address(db, email, allow_special_domains=allow_special_domains)
    db.topics.set_topics(address, chosen)
    return address, db.topics.topics_of(address)


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
    index = {name: columns.index(name) for name in ("email", "name", "tags", "topics") if name in columns}
    line = reader.line_num
    for row in reader:
        start, line = line + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        yield start, {key: row[i] if i < len(row) else "" for key, i in index.items()}


def import_csv(
    db: Store,
    path: Path,
    *,
    at: datetime,
    allow_special_domains: bool = False,
    priorities: tuple[str, ...] = (),
) -> ImportReport:
    """Add or update every valid row of a CSV (columns `email`, optional `name` and `tags`) in one
    transaction. `tags` holds tags separated by `;` (e.g. `staff;partners`): they are added to the
    subscriber's tags (an import never takes a tag away; `digest subscribers untag` does). `topics`
    holds the priorities the reader chose, separated by `;` (names of `priorities`); a row with a
    `topics` cell sets the choice, an empty cell leaves it as it was.

    Bad rows are skipped and reported with their line number; people who unsubscribed or bounced stay so.

    Raises:
        UsageError: the file is missing, not UTF-8, or has no `email` column.
    """
    rows = list(_rows(path))
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    kept = 0
    rejected: list[Rejected] = []
    seen: dict[str, int] = {}
    with db.transaction():
        for line, row in rows:
            raw = row.get("email", "")
            try:
                address = normalise_address(raw, allow_special_domains=allow_special_domains)
            except ValueError as e:
                rejected.append(Rejected(line, raw, str(e)))
                continue
            key = address.lower()
            if key in seen:
                rejected.append(Rejected(line, raw, f"the same address as line {seen[key]}"))
                continue
            seen[key] = line
            name = clean_name(row.get("name")) if "name" in row else None
            try:
                tags = split_tags(row.get("tags", ""))
                topics = check_topics(row.get("topics", "").split(";"), priorities)
            except ValueError as e:
                cell = "topics" if "priority" in str(e) else "tags"
                rejected.append(Rejected(line, row.get(cell, ""), f"{cell}: {e}"))
                continue
            outcome = db.subscribers.upsert_subscriber(address, name=name, at=at, reactivate=False)
            if tags and db.tags.add_tags(address, tags) and outcome == "unchanged":
                outcome = "updated"
            if topics and set(db.topics.topics_of(address)) != set(topics):
                db.topics.set_topics(address, topics)
                outcome = "updated" if outcome == "unchanged" else outcome
            counts[outcome] += 1
            existing = db.subscribers.get_subscriber(address)
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
