"""Reader of `[state] url` and `[state] password_env`: the state in PostgreSQL instead of SQLite."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from digest.config.table import Table

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a `[state] url` (None when it can): a postgresql:// URL with a host and
    a database name, and no password in it."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        return f"{url!r} is not a postgresql:// URL (such as 'postgresql://digest@db.example:5432/digest')"
    if parts.password is not None or "password" in parse_qs(parts.query):
        return (
            "must not contain a password; name an environment variable holding it in"
            " [state] password_env instead"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f"{parts.netloc!r}: the port is not a number"
    if not parts.hostname:
        return f"{url!r} has no host (such as 'postgresql://digest@db.example:5432/digest')"
    if not parts.path.strip("/"):
        return f"{url!r} names no database (add it after the host: '.../digest')"
    return None


def read_state_url(state: Table) -> tuple[str | None, str | None]:
    """`[state] url` and `[state] password_env`, checked; problems are recorded on `state`."""
    url = state.text("url", None)
    password_env = state.text("password_env", None)
    if isinstance(url, str):
        message = url_problem(url)
        if message:
            state.problem("url", message)
            url = None
        if "path" in state.data:
            state.problems.append(
                f"{state.where('path')}, {state.where('url')}: set one, not both"
                " (path keeps the state in a SQLite file, url in PostgreSQL)"
            )
    if isinstance(password_env, str):
        if not ENV_NAME.fullmatch(password_env):
            state.problem("password_env", f"{password_env!r} is not an environment variable name")
            password_env = None
        elif "url" not in state.data:
            state.problem("password_env", "is only used with [state] url (the PostgreSQL state)")
    return (url if isinstance(url, str) else None, password_env if isinstance(password_env, str) else None)
