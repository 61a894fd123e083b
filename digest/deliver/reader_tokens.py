"""Signed values of the reader pages: confirmation links, preference links, and the form's timestamp.

Like the unsubscribe tokens (`digest.deliver.tokens`) they carry an opaque random id, never an address.
Every check is handed `now` (no clock is read here), so expiry is tested without waiting.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from datetime import datetime, timedelta
from urllib.parse import quote

from itsdangerous import BadSignature, Signer

from digest.deliver.tokens import BadTokenError

_CONFIRM_SALT = "digest.confirm.v1"
_PREFERENCES_SALT = "digest.preferences.v1"
_FORM_SALT = "digest.signup-form.v1"
_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


class ExpiredTokenError(BadTokenError):
    """The link is genuine but older than it may be used."""


def _signer(secret: str, salt: str) -> Signer:
    return Signer(secret, salt=salt, digest_method=hashlib.sha256)


def _unsign(secret: str, salt: str, token: str) -> str:
    try:
        return _signer(secret, salt).unsign(token).decode("ascii")
    except (BadSignature, UnicodeError) as e:
        raise BadTokenError("this link is not valid") from e


def confirm_token(secret: str, token_id: str, *, at: datetime) -> str:
    """The token of a confirmation link: the sign-up's id and when it was issued, signed."""
    if not _ID.fullmatch(token_id):
        raise ValueError("a confirmation token carries a sign-up's token id, not an address")
    return _signer(secret, _CONFIRM_SALT).sign(f"{token_id}.{int(at.timestamp())}").decode("ascii")


def read_confirm_token(secret: str, token: str, *, now: datetime, within: timedelta) -> str:
    """The sign-up id a confirmation token carries.

    Raises:
        BadTokenError: altered, malformed or signed with another secret.
        ExpiredTokenError: issued more than `within` before `now`.
    """
    value = _unsign(secret, _CONFIRM_SALT, token)
    token_id, _, issued = value.rpartition(".")
    if not _ID.fullmatch(token_id) or not issued.isdigit():
        raise BadTokenError("this link is not valid")
    if now.timestamp() - int(issued) > within.total_seconds():
        raise ExpiredTokenError("this confirmation link has expired")
    return token_id


def confirm_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/confirm?token={quote(token, safe='')}"


def preferences_token(secret: str, token_id: str) -> str:
    """The token of a subscriber's preference page: their subscription's token id, signed."""
    if not _ID.fullmatch(token_id):
        raise ValueError("a preferences token carries a subscription's token id, not an address")
    return _signer(secret, _PREFERENCES_SALT).sign(token_id).decode("ascii")


def read_preferences_token(secret: str, token: str) -> str:
    """The subscription id a preference token carries. Raises BadTokenError when not genuine."""
    token_id = _unsign(secret, _PREFERENCES_SALT, token)
    if not _ID.fullmatch(token_id):
        raise BadTokenError("this link is not valid")
    return token_id


def preferences_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/preferences?token={quote(token, safe='')}"


def form_stamp(secret: str, *, at: datetime) -> str:
    """A signed timestamp for the sign-up form: when the page was served."""
    return _signer(secret, _FORM_SALT).sign(str(int(at.timestamp()))).decode("ascii")


def form_age(secret: str, stamp: str, *, now: datetime) -> float | None:
    """Seconds since the form was served, or None when the stamp is missing, altered or not ours."""
    try:
        value = _unsign(secret, _FORM_SALT, stamp)
    except BadTokenError:
        return None
    return now.timestamp() - int(value) if value.isdigit() else None


def truncated_ip(address: str) -> str | None:
    """A client address with its last octet (IPv4) or last 80 bits (IPv6) zeroed; None if not an address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)
