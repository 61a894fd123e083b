"""Personalised messages from an issue rendered once: pre-encoded pieces joined around the personal parts.

`MessageTemplate` encodes the issue's HTML and text (quoted-printable) and its fixed headers once. Each
placeholder (`models.NAME_PLACEHOLDER`, `models.UNSUBSCRIBE_URL_PLACEHOLDER`) is cut out with a soft line
break on either side, so a recipient's value is encoded on its own line and joined between the fixed
pieces: a message costs a few small encodings and one `bytes.join`, never a render or a MIME re-encoding.

The message is multipart/alternative (text, then HTML) with From, To, Subject, Date, Message-ID,
MIME-Version, List-Id, List-Unsubscribe (https and mailto), List-Unsubscribe-Post and Reply-To when set.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import html
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from digest.deliver import headers
from digest.models import NAME_PLACEHOLDER, PREFERENCES_URL_PLACEHOLDER, UNSUBSCRIBE_URL_PLACEHOLDER

_PLACEHOLDER = re.compile(
    f"({re.escape(NAME_PLACEHOLDER)}|{re.escape(UNSUBSCRIBE_URL_PLACEHOLDER)}|{re.escape(PREFERENCES_URL_PLACEHOLDER)})"
)
_SOFT_BREAK = b"=\r\n"
_NAME, _URL, _PREFERENCES = 0, 1, 2
_SLOTS = {
    NAME_PLACEHOLDER: _NAME,
    UNSUBSCRIBE_URL_PLACEHOLDER: _URL,
    PREFERENCES_URL_PLACEHOLDER: _PREFERENCES,
}


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who one message goes to: an address and, when known, a name."""

    email: str
    name: str | None = None
    # The subscription's token id, which its unsubscribe link carries; None for a test send to an
    # address that is not subscribed (its link then names no subscription).
    token_id: str | None = None


@dataclass(frozen=True, slots=True)
class Sender:
    """The fixed identity of every message of a list (from `[delivery]` and `[digest] title`)."""

    from_address: str
    from_name: str = ""
    reply_to: str | None = None
    list_id: str = "digest.localhost"
    list_name: str = ""
    unsubscribe_mailto: str | None = None
    fallback_name: str = "there"

    @property
    def domain(self) -> str:
        return self.from_address.rpartition("@")[2]


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends; the input's line ends may be LF or CRLF."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data).replace(b"\n", b"\r\n")


def _qp_value(value: str) -> bytes:
    """A personal value on a line of its own, closed by a soft break (it contains no line breaks)."""
    return binascii.b2a_qp(value.encode("utf-8")).replace(b"=\n", _SOFT_BREAK) + _SOFT_BREAK


def _split(body: str) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
    """The body's fixed pieces (encoded) and which placeholder comes between each pair."""
    parts = _PLACEHOLDER.split(body)
    pieces: list[bytes] = []
    slots: list[int] = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            encoded = _qp(part)
            # A fixed piece followed by a personal value ends with a soft break, so the value starts a line.
            pieces.append(encoded + _SOFT_BREAK if i < len(parts) - 1 else encoded)
        else:
            slots.append(_SLOTS[part])
    return tuple(pieces), tuple(slots)


class MessageTemplate:
    """One issue's email, encoded once; `message()` personalises and serialises it for one recipient.

    Raises (constructor):
        headers.HeaderValueError: a configured address, list id or the mailto address cannot be used.
    """

    def __init__(
        self,
        *,
        html_body: str,
        text_body: str,
        subject: str,
        sender: Sender,
        issue_id: str,
        boundary: str | None = None,
    ) -> None:
        self.sender = sender
        self.issue_id = issue_id
        self._id_prefix = re.sub(r"[^A-Za-z0-9.-]", "-", issue_id) or "issue"
        self._domain = sender.domain
        boundary = boundary or f"=_digest_{secrets.token_hex(12)}"
        fixed = [
            headers.line(
                "From", headers.mailbox(sender.from_name, sender.from_address, "delivery.from_address")
            ),
            headers.line("Subject", headers.subject(subject)),
            headers.line("MIME-Version", "1.0"),
            headers.line("List-Id", headers.list_id(sender.list_name, sender.list_id)),
        ]
        if sender.reply_to:
            fixed.append(
                headers.line("Reply-To", headers.mailbox(None, sender.reply_to, "delivery.reply_to"))
            )
        self._mailto = b""
        if sender.unsubscribe_mailto:
            address = headers.check_address(sender.unsubscribe_mailto, "delivery.unsubscribe_mailto")
            self._mailto = f",\r\n <mailto:{address}?subject=unsubscribe>".encode("ascii")
        self._fixed_headers = b"".join(fixed)
        self._list_post = headers.line("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
        self._content_type = headers.line("Content-Type", f'multipart/alternative; boundary="{boundary}"')
        delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
        part = b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        self._text_head = (
            b"\r\nThis is a multi-part message in MIME format.\r\n"
            + delimiter[2:]
            + b'Content-Type: text/plain; charset="utf-8"\r\n'
            + part
        )
        self._html_head = delimiter + b'Content-Type: text/html; charset="utf-8"\r\n' + part
        self._tail = f"\r\n--{boundary}--\r\n".encode("ascii")
        self._text, self._text_slots = _split(text_body)
        self._html, self._html_slots = _split(html_body)
        self.has_unsubscribe_link = _URL in self._html_slots and _URL in self._text_slots

    def new_message_id(self) -> str:
        """A globally unique Message-ID for one message of this issue (test sends)."""
        return f"<{self._id_prefix}.{secrets.token_hex(10)}@{self._domain}>"

    def message_id_for(self, key: bytes, email: str) -> str:
        """The Message-ID of `email`'s copy of this issue: the same every time (a copy re-sent after a
        crash is then one message to the reader's client), and naming no one (a keyed hash of the
        issue id and the address, domain from the From address)."""
        digest = hmac.new(key, f"{self.issue_id}\n{email.lower()}".encode(), hashlib.sha256)
        return f"<{self._id_prefix}.{digest.hexdigest()[:32]}@{self._domain}>"

    def message(
        self,
        recipient: Recipient,
        *,
        unsubscribe_url: str,
        message_id: str,
        date: datetime | str,
        preferences_url: str | None = None,
    ) -> bytes:
        """The complete RFC 5322 message for one recipient, CRLF line ends. `preferences_url` fills the
        preference-page placeholder (the unsubscribe URL when not given: a link that still works).

        Raises:
            headers.HeaderValueError: the recipient's address or the unsubscribe URL cannot be used.
        """
        to = headers.mailbox(recipient.name, recipient.email, "To")
        headers.check_url(unsubscribe_url, "unsubscribe URL")
        name = headers.clean_text(recipient.name or "") or self.sender.fallback_name
        date_text = date if isinstance(date, str) else format_datetime(date)
        preferences = preferences_url or unsubscribe_url
        headers.check_url(preferences, "preferences URL")
        text_values = (_qp_value(name), _qp_value(unsubscribe_url), _qp_value(preferences))
        html_values = (
            _qp_value(html.escape(name)),
            _qp_value(html.escape(unsubscribe_url)),
            _qp_value(html.escape(preferences)),
        )
        out = [
            self._fixed_headers,
            b"To: ",
            to.encode("ascii"),
            b"\r\nDate: ",
            date_text.encode("ascii"),
            b"\r\nMessage-ID: ",
            message_id.encode("ascii"),
            b"\r\nList-Unsubscribe: <",
            unsubscribe_url.encode("ascii"),
            b">",
            self._mailto,
            b"\r\n",
            self._list_post,
            self._content_type,
            self._text_head,
        ]
        _interleave(out, self._text, self._text_slots, text_values)
        out.append(self._html_head)
        _interleave(out, self._html, self._html_slots, html_values)
        out.append(self._tail)
        return b"".join(out)


def _interleave(
    out: list[bytes], pieces: tuple[bytes, ...], slots: tuple[int, ...], values: tuple[bytes, bytes, bytes]
) -> None:
    out.append(pieces[0])
    for slot, piece in zip(slots, pieces[1:], strict=True):
        out.append(values[slot])
        out.append(piece)
