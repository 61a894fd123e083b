"""Managing subscribers: addresses checked with email-validator (no DNS), CSV import with line numbers.

Suppression sticks: neither an import nor `add` re-subscribes someone who unsubscribed, bounced or
complained, or whose address was erased (`forget`: only a keyed hash of it is kept). Each is reported
("suppressed: unsubscribed on 12 May 2025"); `resubscribe=True` (`--resubscribe`) re-activates them and
records consent_method = resubscribe. Every address added keeps a consent record (how, when, the wording
relied on, stored once by its sha256, and where it came from).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

from digest.deliver.headers import clean_text
from digest.errors import InvalidValueError, UsageError
from digest.state.store import Store
from digest.state.subscribers import ConsentRecord


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
    resubscribed: int = 0
    suppressed: tuple[Suppressed, ...] = ()
    rejected: tuple[Rejected, ...] = ()


@dataclass(frozen=True, slots=True)
class Suppressed:
    """An address that was not (re)subscribed because it is suppressed: its line and why."""

    line: int
    email: str
    why: str  # "unsubscribed on 12 May 2025", "erased on request on 3 June 2025"


SUPPRESSING = ("unsubscribed", "bounced", "complained")


def _day(at: datetime) -> str:
    return f"{at.day} {at:%B %Y}"


def suppression(db: Store, address: str) -> str | None:
    """Why an address may not be subscribed again without `--resubscribe`, or None when it may."""
    found = db.subscribers.get_subscriber(address)
    if found is not None and found.status in SUPPRESSING:
        return f"{found.status} on {_day(found.status_at or found.updated_at)}"
    if found is None:
        erased = db.consent.forgotten_at(address)
        if erased is not None:
            return f"erased on request on {_day(erased)}"
    return None


# Internal-network domains a staff list may use with `[subscribers] allow_special_domains`.
STAFF_DOMAINS = ("local", "internal")
_STAND_IN = "staff-domain-stand-in"  # an ordinary top-level label checked in place of one of those


# The common shape of an address, checked without email-validator (an import of 500,000 rows spends most
# of its time there otherwise): ASCII letters, digits and ._%+- before the @, dot-separated labels of
# letters, digits and inner hyphens (no "--", so no punycode to check) and a letters-only top-level label
# after it. Anything else, special-use domains and the role mailboxes email-validator lowercases
# (postmaster, abuse, www...) take the full check. The result is what
# email-validator gives for the same input (a test compares them).
_PLAIN = re.compile(
    r"(?P<local>[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*)@"
    r"(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
)
_SPECIAL = ("arpa", "invalid", "local", "localhost", "onion", "test", "internal")


def _plain_address(value: str) -> str | None:
    found = _PLAIN.fullmatch(value)
    if found is None or len(value) > 254 or len(found["local"]) > 64 or "--" in found["domain"]:
        return None
    if found["local"].lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
        return None
    domain = found["domain"].lower()
    if len(domain) > 253 or domain.rpartition(".")[2] in _SPECIAL:
        return None
    return f"{found['local']}@{domain}"


def normalise_address(raw: str, *, allow_special_domains: bool = False) -> str:
    """The canonical ASCII form of an address (IDN domains as punycode), without any DNS lookup.

    `allow_special_domains` accepts addresses in `.local` and `.internal` domains (staff lists on an
    internal mail system), which email-validator refuses as special-use names; every other check holds.

    Raises:
        InvalidValueError: the address is not valid; the message says why.
    """
    value = raw.strip()
    if not value:
        raise InvalidValueError("the address is empty")
    plain = _plain_address(value)
    if plain is not None:
        return plain
    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as e:
        staff = _staff_address(value) if allow_special_domains else None
        if staff is None:
            hint = ""
            if _staff_suffix(value) is not None and "special-use" in str(e):
                hint = " ([subscribers] allow_special_domains = true accepts .local and .internal addresses)"
            raise InvalidValueError(f"{e}{hint}") from e
        return staff
    if not checked.ascii_email:
        raise InvalidValueError(
            "the address needs SMTPUTF8 (non-ASCII before the @), which digest does not use"
        )
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
        raise InvalidValueError(str(e)) from e
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
    consent: str | None = None,
    resubscribe: bool = False,
) -> tuple[str, Literal["added", "updated", "unchanged"]]:
    """Add one address (consent_method cli), or with `resubscribe` re-activate a suppressed one.

    Raises:
        UsageError: the address is not valid, or it is suppressed (unsubscribed, bounced, complained or
            erased) and `resubscribe` is not given.
    """
    try:
        address = normalise_address(email, allow_special_domains=allow_special_domains)
    except InvalidValueError as e:
        raise InvalidValueError(
            f"{email!r} is not a valid email address: {e}",
            hint="write one address like name@example.org (a name goes in --name)",
        ) from e
    with db.transaction():
        why = suppression(db, address)
        if why is not None and not resubscribe:
            raise UsageError(
                f"{address}: suppressed: {why}",
                hint="only if they asked to join again: digest subscribers add --resubscribe EMAIL",
            )
        record = _consent(
            db, "resubscribe" if why else "cli", consent, source="digest subscribers add", at=at
        )
        if why is not None:
            db.consent.unforget(address)
        outcome = db.subscribers.upsert_subscriber(
            address, name=clean_name(name), at=at, reactivate=True, consent=record
        )
    return address, outcome


TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def check_tag(raw: str) -> str:
    """A tag as stored (lower case), checked: 1-40 letters, digits, '_' or '-'.

    Raises:
        InvalidValueError: the tag has other characters or is too long.
    """
    tag = raw.strip().casefold()
    if not TAG.match(tag):
        raise InvalidValueError(f"{raw.strip()!r} is not a tag (1-40 letters, digits, '_' or '-')")
    return tag


def split_tags(cell: str) -> tuple[str, ...]:
    """The tags of an import cell, separated by `;` (empty parts ignored).

    Raises:
        InvalidValueError: one of them is not a tag.
    """
    return tuple(dict.fromkeys(check_tag(part) for part in cell.split(";") if part.strip()))


def _known_address(db: Store, email: str, *, allow_special_domains: bool) -> str:
    """The canonical form of a subscriber's address.

    Raises:
        UsageError: the address is not on the list.
    """
    try:
        address = normalise_address(email, allow_special_domains=allow_special_domains)
    except InvalidValueError:
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
    except InvalidValueError as e:
        raise InvalidValueError(
            f"tag {e}", hint="tags name audiences, e.g. staff, residents, gp_practices"
        ) from e


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
        InvalidValueError: a name is not a configured priority (the message lists them).
    """
    known = {name.casefold(): name for name in configured}
    out = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name.casefold() not in known:
            listed = ", ".join(known.values()) or "none: the config has no [[priorities]]"
            raise InvalidValueError(f"{name!r} is not a priority (priorities: {listed})")
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
    except InvalidValueError as e:
        raise InvalidValueError(
            f"topics: {e}", hint="name priorities as in [[priorities]] name, or --all"
        ) from e
    address = _known_address(db, email, allow_special_domains=allow_special_domains)
    db.topics.set_topics(address, chosen)
    return address, db.topics.topics_of(address)


def _consent(
    db: Store,
    method: Literal["cli", "import", "resubscribe"],
    wording: str | None,
    *,
    source: str,
    at: datetime,
) -> ConsentRecord:
    sha = db.consent.keep_wording(wording, at=at) if wording else None
    return ConsentRecord(consented_at=at, method=method, wording_sha256=sha, source=source, ip=None)


# Header names used by common exports (Mailchimp, Google Contacts, Outlook, listmonk), compared without
# case, spaces, dashes or underscores.
EMAIL_HEADERS = ("email", "emailaddress", "mail")
NAME_HEADERS = ("name", "fullname", "displayname")
FIRST_HEADERS = ("firstname", "givenname")
LAST_HEADERS = ("lastname", "surname", "familyname")


def _key(header: str) -> str:
    return "".join(c for c in header.lower() if c.isalnum())


def _columns(header: list[str]) -> dict[str, int]:
    keys = [_key(h) for h in header]
    found: dict[str, int] = {}
    for role, names in (
        ("email", EMAIL_HEADERS),
        ("name", NAME_HEADERS),
        ("first", FIRST_HEADERS),
        ("last", LAST_HEADERS),
        ("tags", ("tags",)),  # audiences of [[editions]], separated by ';'
        ("topics", ("topics",)),  # the priorities a reader chose, separated by ';'
    ):
        for i, key in enumerate(keys):
            if key in names:
                found[role] = i
                break
    return found


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    """Comma, semicolon or tab, sniffed from the first lines (comma when it cannot tell)."""
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        return csv.excel


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
    reader = csv.reader(io.StringIO(text, newline=""), _dialect(text))
    header = next(reader, None)
    index = _columns([c.strip() for c in header or []])
    if "email" not in index:
        raise UsageError(
            f"{path}: the first line must name the columns, with an 'email' column (or 'Email Address',"
            " 'E-mail', 'email_address'), and optionally 'name' or 'First Name' and 'Last Name'",
            hint="for example: email,name (comma, semicolon or tab between columns)",
        )
    line = reader.line_num
    for row in reader:
        start, line = line + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        cells = {key: row[i] if i < len(row) else "" for key, i in index.items()}
        if "name" not in cells and ("first" in cells or "last" in cells):
            cells["name"] = f"{cells.pop('first', '')} {cells.pop('last', '')}".strip()
        yield start, cells


def import_csv(  # noqa: PLR0912, PLR0915 - one pass over the rows, a branch per import rule
    db: Store,
    path: Path,
    *,
    at: datetime,
    consent: str,
    allow_special_domains: bool = False,
    priorities: tuple[str, ...] = (),
    resubscribe: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Add or update every valid row of a CSV (an email column, optional name columns) in one transaction.

    A `tags` column holds tags separated by `;` (e.g. `staff;partners`): they are added to the
    subscriber's tags (an import never takes a tag away; `digest subscribers untag` does). A `topics`
    column holds the priorities the reader chose, separated by `;` (names of `priorities`); a row with a
    `topics` cell sets the choice, an empty cell leaves it as it was.

    `consent` is the basis the organisation holds for these people (stored once, by sha256, on each new
    subscriber's consent record, with consent_method import and the file's name). Bad rows are skipped and
    reported with their line number; suppressed people stay so unless `resubscribe`. `progress` is called
    with (rows done, rows in all) every few thousand rows.

    Raises:
        UsageError: the file is missing, not UTF-8, has no email column, or `consent` is empty.
    """
    rows = list(_rows(path))
    if not consent.strip():
        raise UsageError(
            f"{path}: an import needs --consent: the basis you hold for mailing these people",
            hint='for example: --consent "Signed up at our stand, Leeds, March 2025"',
        )
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    resubscribed = 0
    rejected: list[Rejected] = []
    suppressed: list[Suppressed] = []
    seen: dict[str, int] = {}
    new: list[tuple[str, str | None]] = []
    with db.transaction():
        wording = db.consent.keep_wording(consent.strip(), at=at)
        record = ConsentRecord(at, "import", wording, path.name, None)
        again = ConsentRecord(at, "resubscribe", wording, path.name, None)
        erased = db.consent.forgotten_hashes()
        valid: list[tuple[int, str, str | None, tuple[str, ...], tuple[str, ...]]] = []
        for done, (line, row) in enumerate(rows, start=1):
            if progress is not None and (done % 5000 == 0 or done == len(rows)):
                progress(done, len(rows))
            raw = row.get("email", "")
            try:
                address = normalise_address(raw, allow_special_domains=allow_special_domains)
            except InvalidValueError as e:
                rejected.append(Rejected(line, raw, str(e)))
                continue
            key = address.lower()
            if key in seen:
                rejected.append(Rejected(line, raw, f"the same address as line {seen[key]}"))
                continue
            seen[key] = line
            cell = "tags"
            try:
                tags = split_tags(row.get("tags", ""))
                cell = "topics"
                topics = check_topics(row.get("topics", "").split(";"), priorities)
            except InvalidValueError as e:
                rejected.append(Rejected(line, row.get(cell, ""), f"{cell}: {e}"))
                continue
            valid.append(
                (line, address, clean_name(row.get("name")) if "name" in row else None, tags, topics)
            )
        known_rows = db.subscribers.brief_many([address for _, address, *_ in valid])
        labels: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []  # tags and topics of new rows
        for line, address, name, tags, topics in valid:
            known = known_rows.get(address.lower())
            why = None
            if known is not None and known[1] in SUPPRESSING:
                why = f"{known[1]} on {_day(known[3])}"
            elif known is None and erased and db.consent.address_hash(address) in erased:
                why = f"erased on request on {_day(erased[db.consent.address_hash(address)])}"
            if why is not None and not resubscribe:
                suppressed.append(Suppressed(line, address, why))
                continue
            if known is None and why is None:
                new.append((address, name))  # inserted together below: one statement for them all
                labels.append((address, tags, topics))
                continue
            if why is not None:
                db.consent.unforget(address)
                resubscribed += 1
            outcome = db.subscribers.upsert_subscriber(
                address, name=name, at=at, reactivate=why is not None, consent=again if why else record
            )
            if tags and db.tags.add_tags(address, tags) and outcome == "unchanged":
                outcome = "updated"
            if topics and set(db.topics.topics_of(address)) != set(topics):
                db.topics.set_topics(address, topics)
                outcome = "updated" if outcome == "unchanged" else outcome
            counts[outcome] += 1
        counts["added"] += db.subscribers.add_many(new, at=at, consent=record)
        for address, tags, topics in labels:
            if tags:
                db.tags.add_tags(address, tags)
            if topics:
                db.topics.set_topics(address, topics)
    return ImportReport(
        path=path,
        added=counts["added"],
        updated=counts["updated"],
        unchanged=counts["unchanged"],
        resubscribed=resubscribed,
        suppressed=tuple(suppressed),
        rejected=tuple(rejected),
    )
