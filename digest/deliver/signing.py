"""Optional DKIM signing (dkimpy), covering the list headers so one-click unsubscribe is authenticated."""

from __future__ import annotations

from pathlib import Path

import dkim as dkimpy

from digest.errors import DeliveryError

SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"mime-version",
    b"content-type",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)


class DkimSigner:
    """Signs finished messages with one key, selector and domain (relaxed/simple canonicalisation).

    Raises (constructor):
        DeliveryError: the key file cannot be read or is not a private key dkimpy can use.
    """

    def __init__(self, key_path: Path, selector: str, domain: str) -> None:
        try:
            self._key = key_path.read_bytes()
        except OSError as e:
            raise DeliveryError(
                f"{key_path}: cannot read the DKIM key: {e.strerror}",
                hint="check [delivery] dkim_key",
            ) from e
        self._selector = selector.encode("ascii")
        self._domain = domain.encode("ascii")
        self.sign(b"From: a@b.example\r\nSubject: probe\r\n\r\nprobe\r\n")

    def sign(self, message: bytes) -> bytes:
        """The message with a DKIM-Signature header prepended."""
        try:
            signature = dkimpy.sign(
                message,
                self._selector,
                self._domain,
                self._key,
                include_headers=list(SIGNED_HEADERS),
            )
        except dkimpy.DKIMException as e:
            raise DeliveryError(
                f"DKIM signing failed: {e}",
                hint="check that [delivery] dkim_key is an unencrypted PEM RSA or Ed25519 private key",
            ) from e
        return bytes(signature) + message
