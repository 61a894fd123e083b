"""Signed unsubscribe tokens (itsdangerous HMAC): they carry an opaque subscription id, never the address.

A token is `<token id>.<signature>`: the id is the random one stored on the subscriber row
(`subscribers.token_id`), which changes every time the address is (re)subscribed, so a link from an
email sent before that no longer unsubscribes anyone. Proxy and link-scanner logs see no address.
"""

from __future__ import annotations

import hashlib
import os
import re

from itsdangerous import BadSignature, Signer, URLSafeSerializer

from digest.config import Config
from digest.errors import UsageError
from digest.state.store import Store

_SALT = "digest.unsubscribe.v2"
# Tokens of digest before token ids: base64 JSON naming the address. Still read (they are in emails
# already sent) for subscribers who have not re-subscribed since; never issued any more.
_ADDRESS_SALT = "digest.unsubscribe.v1"
_TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
# The id in links that belong to no subscription: the build's sample email, a test send to an address
# that is not subscribed. Never a generated id (those are hex), so such a link unsubscribes no one.
NO_SUBSCRIPTION = "not-a-subscription"
_SECRET_KEY = "unsubscribe_secret"  # noqa: S105 - the name of a state setting, not a secret


class BadTokenError(UsageError):
    """The token of a link (unsubscribe, confirmation, preferences) was not signed with this digest's
    secret, or was altered: bad input from whoever opened it, in the one DigestError tree (not a
    ValueError, so that no `except ValueError` takes it for a bad address or topic)."""


class StaleTokenError(BadTokenError):
    """The token is genuine but names no current subscription (re-subscribed or removed since)."""


def unsubscribe_secret(config: Config, db: Store) -> str:
    """The secret unsubscribe tokens are signed with: `$<[web] secret_env>`, else one generated in state."""
    return os.environ.get(config.web.secret_env) or db.settings.generated_secret(_SECRET_KEY)


def existing_unsubscribe_secret(config: Config, db: Store) -> str | None:
    """The secret if there is one yet, without creating it (for read-only callers)."""
    return os.environ.get(config.web.secret_env) or db.settings.get_setting(_SECRET_KEY)


def _signer(secret: str) -> Signer:
    return Signer(secret, salt=_SALT, digest_method=hashlib.sha256)


def unsubscribe_token(secret: str, token_id: str) -> str:
    """A URL-safe token for the subscription whose `token_id` is given, signed with `secret`.

    Raises:
        ValueError: `token_id` is not an opaque id (letters, digits, `-`, `_`; 16 to 64 of them), which
            keeps an address from being put in a token by mistake.
    """
    if not _TOKEN_ID.fullmatch(token_id):
        raise ValueError("an unsubscribe token carries a subscription's token id, not an address")
    return _signer(secret).sign(token_id).decode("ascii")


def read_unsubscribe_token(secret: str, token: str) -> str:
    """The subscription token id a token carries.

    Raises:
        BadTokenError: the token is malformed, altered, or signed with another secret.
    """
    try:
        token_id = _signer(secret).unsign(token).decode("ascii")
    except (BadSignature, UnicodeError) as e:
        raise BadTokenError("this unsubscribe link is not valid") from e
    if not _TOKEN_ID.fullmatch(token_id):
        raise BadTokenError("this unsubscribe link is not valid")
    return token_id


def read_address_token(secret: str, token: str) -> str:
    """The address an old-style token (issued before token ids) names.

    Raises:
        BadTokenError: the token is not a genuine old-style token.
    """
    try:
        data = URLSafeSerializer(secret, salt=_ADDRESS_SALT).loads(token)
    except BadSignature as e:
        raise BadTokenError("this unsubscribe link is not valid") from e
    email = data.get("email") if isinstance(data, dict) else None
    if not isinstance(email, str) or "@" not in email:
        raise BadTokenError("this unsubscribe link is not valid")
    return email
