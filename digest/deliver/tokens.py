"""Signed unsubscribe tokens (itsdangerous HMAC): they name one subscriber and cannot be forged."""

from __future__ import annotations

import os
import sqlite3
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeSerializer

from digest.config import Config
from digest.state.settings import generated_secret, get_setting

_SALT = "digest.unsubscribe.v1"
_SECRET_KEY = "unsubscribe_secret"  # noqa: S105 - the name of a state setting, not a secret


class BadTokenError(ValueError):
    """The token was not signed with this digest's secret, or was altered."""


def unsubscribe_secret(config: Config, db: sqlite3.Connection) -> str:
    """The secret unsubscribe tokens are signed with: `$<[web] secret_env>`, else one generated in state."""
    return os.environ.get(config.web.secret_env) or generated_secret(db, _SECRET_KEY)


def existing_unsubscribe_secret(config: Config, db: sqlite3.Connection) -> str | None:
    """The secret if there is one yet, without creating it (for read-only callers)."""
    return os.environ.get(config.web.secret_env) or get_setting(db, _SECRET_KEY)


def unsubscribe_token(secret: str, email: str) -> str:
    """A URL-safe token naming `email`, signed with `secret`."""
    return str(URLSafeSerializer(secret, salt=_SALT).dumps({"email": email.lower()}))


def read_unsubscribe_token(secret: str, token: str) -> str:
    """The address a token names.

    Raises:
        BadTokenError: the token is malformed, altered, or signed with another secret.
    """
    try:
        data = URLSafeSerializer(secret, salt=_SALT).loads(token)
    except BadSignature as e:
        raise BadTokenError("this unsubscribe link is not valid") from e
    email = data.get("email") if isinstance(data, dict) else None
    if not isinstance(email, str) or "@" not in email:
        raise BadTokenError("this unsubscribe link is not valid")
    return email


def unsubscribe_url(base_url: str, token: str) -> str:
    """The page (GET: confirmation form, POST: unsubscribe) a token is used at."""
    return f"{base_url.rstrip('/')}/unsubscribe?token={quote(token, safe='')}"


def issue_url(base_url: str, issue_id: str) -> str:
    """The web-archive page of one issue: the email's "view in browser" link."""
    return f"{base_url.rstrip('/')}/issues/{quote(issue_id, safe='')}/"
