"""Header values made safe and encoded: no CR/LF or control character from feeds, config or subscribers
ever reaches a header line, non-ASCII text becomes RFC 2047 encoded words, and lines stay under 998.
"""

from __future__ import annotations

import re
import unicodedata
from email.header import Header
from email.utils import formataddr

# Characters that must never reach a header: C0/C1 controls, DEL, and Unicode line/paragraph separators.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
# An addr-spec we are willing to put in From/To/Reply-To: printable ASCII, no spaces or brackets.
_ADDRESS = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_URL_SAFE = re.compile(r"^[\x21-\x7e]+$")
MAX_TEXT = 200


class HeaderValueError(ValueError):
    """A value cannot be used in a header (it names the field)."""


def clean_text(value: str, *, limit: int = MAX_TEXT) -> str:
    """Free text for a header (a subject, a display name): controls become spaces, runs of space one."""
    value = unicodedata.normalize("NFC", value)
    value = _SPACES.sub(" ", _UNSAFE.sub(" ", value)).strip()
    if len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    return value


def check_address(value: str, field: str) -> str:
    """An ASCII addr-spec for `field`, unchanged. Raises HeaderValueError naming the field."""
    if not _ADDRESS.fullmatch(value) or ".." in value:
        raise HeaderValueError(f"{field}: {value!r} is not a plain ASCII email address")
    return value


def check_url(value: str, field: str) -> str:
    """A URL for List-Unsubscribe: printable ASCII without spaces or angle brackets."""
    if not _URL_SAFE.fullmatch(value) or "<" in value or ">" in value or "," in value:
        raise HeaderValueError(f"{field}: {value!r} cannot go in a header (spaces, controls or <>,)")
    return value


def check_list_id(value: str) -> str:
    if not _DOT_ATOM.fullmatch(value) or "." not in value:
        raise HeaderValueError(f"delivery.list_id: {value!r} must be a dot-atom such as 'news.example.org'")
    return value


def _phrase(name: str, field: str) -> str:
    """A display name as a header phrase: quoted when needed, RFC 2047 encoded when not ASCII."""
    if name.isascii():
        quoted = formataddr((name, "x@x"))
        return quoted[: -len(" <x@x>")]
    return Header(name, "utf-8", header_name=field).encode(linesep="\r\n", maxlinelen=76)


def mailbox(name: str | None, address: str, field: str) -> str:
    """`Name <address>` (or the bare address) for From/To/Reply-To; name cleaned, address checked."""
    check_address(address, field)
    shown = clean_text(name or "")
    if not shown:
        return address
    return f"{_phrase(shown, field)} <{address}>"


def list_id(title: str, identifier: str) -> str:
    """The List-Id value: `"Title" <list.id>` (RFC 2919)."""
    check_list_id(identifier)
    shown = clean_text(title)
    return f"{_phrase(shown, 'List-Id')} <{identifier}>" if shown else f"<{identifier}>"


def subject(value: str) -> str:
    """A folded Subject value, RFC 2047 encoded when it is not ASCII."""
    shown = clean_text(value, limit=400)
    charset = "us-ascii" if shown.isascii() else "utf-8"
    return Header(shown, charset, header_name="Subject").encode(linesep="\r\n", maxlinelen=78)


def line(name: str, value: str) -> bytes:
    """One header field as bytes ending in CRLF; the value must already be safe and encoded."""
    data = f"{name}: {value}\r\n".encode("ascii")
    if b"\n" in data[:-2].replace(b"\r\n ", b"").replace(b"\r\n\t", b""):
        raise HeaderValueError(f"{name}: a line break that is not folding")
    return data
