"""VERP envelope senders: `bounces+<id>@domain` per recipient, the id a short HMAC of the address.

The id is not the address and cannot be made for another address without the secret (HMAC-SHA256,
truncated to 80 bits, base32: 16 characters). A bounce sent to it names its recipient even when the
DSN itself cannot be read: `VerpIndex` maps ids back to the addresses of the list.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

_CONTEXT = b"digest.verp.v1:"


def verp_id(secret: str, email: str) -> str:
    """The opaque id of one recipient's address."""
    mac = hmac.new(secret.encode("utf-8"), _CONTEXT + email.strip().lower().encode("utf-8"), hashlib.sha256)
    return base64.b32encode(mac.digest()[:10]).decode("ascii").lower()


def verp_address(bounce_address: str, secret: str, email: str) -> str:
    """`local+<id>@domain` for the configured bounce address `local@domain`."""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{verp_id(secret, email)}@{domain}"


def verp_id_of(address: str, bounce_address: str) -> str | None:
    """The id in `address` when it is a VERP form of `bounce_address`, else None."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    base_local, _, base_domain = bounce_address.rpartition("@")
    if domain.lower() != base_domain.lower() or "+" not in local:
        return None
    head, _, tail = local.partition("+")
    return tail.lower() if head.lower() == base_local.lower() and tail else None


class VerpIndex:
    """Ids of a list's addresses, built once per run: id -> address."""

    def __init__(self, secret: str, addresses: Iterable[str]) -> None:
        self._by_id = {verp_id(secret, a): a for a in addresses}

    def address(self, verp: str) -> str | None:
        return self._by_id.get(verp)
