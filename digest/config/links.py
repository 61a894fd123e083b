"""Whether the links a real send puts in every message work for its readers (Gmail/Yahoo bulk-sender rules).

Since February 2024 Gmail and Yahoo ask bulk senders for one-click unsubscribe (RFC 8058), which needs an
`https://` URL the mail provider can reach, and for DKIM-signed mail. With `transport = "smtp"`:

- `[web] base_url` not `https://`, or naming a loopback or private address, is a problem: `digest check`
  fails and `digest send` refuses (unless `--allow-insecure-links`);
- a reserved name (`.example`, `.test`, `.invalid`, `example.com`...) and a missing DKIM key are warnings.

The outbox transport writes files for a person to look at, so nothing is checked for it. No DNS look-up
is made: only what the URL itself says.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from digest.config.schema import Config
from digest.errors import ConfigError

# Names that never resolve on the public internet (RFC 2606, RFC 6761, RFC 8375, ICANN's .internal).
_PRIVATE_SUFFIXES = (".local", ".internal", ".home.arpa", ".lan", ".intranet", ".corp")
_LOOPBACK_NAMES = ("localhost",)
_RESERVED_SUFFIXES = (".example", ".test", ".invalid")
_RESERVED_NAMES = ("example.com", "example.net", "example.org")


@dataclass(frozen=True, slots=True)
class LinkReview:
    """What `check` reports about the links of a real send: `problems` fail it, `warnings` do not."""

    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def _host_problem(host: str) -> str | None:
    """Why readers cannot reach `host` (loopback, private, link-local, unspecified), or None."""
    name = host.strip("[]").rstrip(".").lower()
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
            return f"names the loopback host {name}"
        if name.endswith(_PRIVATE_SUFFIXES) or "." not in name:
            return f"names {name}, a private name that readers' mail providers cannot reach"
        return None
    if address.is_loopback:
        return f"names the loopback address {name}"
    if address.is_private or address.is_link_local or address.is_unspecified or address.is_reserved:
        return f"names the private address {name}, which readers' mail providers cannot reach"
    return None


def review_links(config: Config) -> LinkReview:
    """Problems and warnings about `[web] base_url` and DKIM for a real send (none for the outbox)."""
    if config.delivery.transport != "smtp":
        return LinkReview()
    problems: list[str] = []
    warnings: list[str] = []
    url = config.web.base_url
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    why = "every message's unsubscribe link and List-Unsubscribe header use it"
    if parts.scheme != "https":
        problems.append(
            f"web.base_url: {url!r} is not https://; Gmail and Yahoo need HTTPS for one-click unsubscribe"
            f" (RFC 8058) and {why}"
        )
    where = _host_problem(host)
    if where:
        problems.append(f"web.base_url: {url!r} {where}; {why}")
    elif (
        host.endswith(_RESERVED_SUFFIXES)
        or host in _RESERVED_NAMES
        or host.endswith(tuple(f".{n}" for n in _RESERVED_NAMES))
    ):
        warnings.append(
            f"web.base_url: {url!r} uses the reserved name {host}, which never resolves: set the public"
            " address `digest serve` is published at"
        )
    if config.delivery.dkim_key is None:
        warnings.append(
            "delivery.dkim_key: DKIM signing is not configured; Gmail and Yahoo require bulk senders to sign"
            " (February 2024): set dkim_key and dkim_selector, unless your mail relay signs for you"
        )
    return LinkReview(problems=tuple(problems), warnings=tuple(warnings))


def insecure_links_error(config: Config, review: LinkReview) -> ConfigError:
    """The error `check` and `send` give for the problems of `review` (which has some)."""
    count = len(review.problems)
    return ConfigError(
        f'{config.path}: {count} problem{"s" if count > 1 else ""} for sending with transport = "smtp"',
        hint="serve the archive over HTTPS at a public name (README: Deploying the public side) and set"
        " [web] base_url to it; `digest send --allow-insecure-links` sends anyway (the links will not work"
        " for readers)",
        problems=review.problems,
    )
