"""`[preview]`: the preview's addresses, sign-in (password users or a trusted proxy's header) and sessions."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path

from digest.config.bounces import ADDRESS
from digest.config.schema import NotifySettings, PreviewSettings, Source
from digest.config.table import Table, allowed_hosts, http_url, local_path

AUTH_MODES = ("password", "header")
ROLES = ("editor", "approver", "admin")
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")


def read_preview(p: Table, root: Path, sources: Sequence[Source | None]) -> PreviewSettings:
    """Read `[preview]` and its `[preview.roles]` table (header sign-in: user -> role)."""
    pd = PreviewSettings()
    header = p.text("user_header", pd.user_header)
    if isinstance(header, str) and not _HEADER_NAME.fullmatch(header):
        p.problem("user_header", f"{header!r} is not an HTTP header name (such as 'X-Forwarded-Email')")
        header = pd.user_header
    preview = PreviewSettings(
        access_token_env=p.text("access_token_env", pd.access_token_env),
        allowed_hosts=allowed_hosts(p, "allowed_hosts"),
        auth=p.choice("auth", AUTH_MODES, pd.auth),
        session_hours=p.number("session_hours", pd.session_hours, maximum=24.0 * 90),
        user_header=header if isinstance(header, str) else pd.user_header,
        trusted_proxies=_networks(p, "trusted_proxies"),
        roles=_roles(p.table("roles")),
        items_folder=_items_folder(p, root, sources),
    )
    if preview.auth == "header" and not preview.trusted_proxies:
        p.problem(
            "trusted_proxies",
            'auth = "header" needs the address of the proxy that sets the header (such as ["127.0.0.1"])',
        )
    if preview.auth == "header" and not preview.roles:
        p.problem("roles", 'auth = "header" needs [preview.roles] mapping users (or "*") to a role')
    p.finish()
    return preview


def _networks(table: Table, key: str) -> tuple[str, ...]:
    out = []
    for i, value in enumerate(table.strings(key)):
        try:
            out.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            table.problems.append(
                f"{table.where(key)}[{i}]: {value!r} is not an IP address or network (such as '10.0.0.0/24')"
            )
    return tuple(out)


def _roles(t: Table) -> tuple[tuple[str, str], ...]:
    out = []
    for name in sorted(t.data):
        role = t.choice(name, ROLES, "editor")
        if isinstance(t.data[name], str) and t.data[name] in ROLES:
            out.append((name.strip().lower(), role))
    t.finish()
    return tuple(out)


def _items_folder(p: Table, root: Path, sources: Sequence[Source | None]) -> Path | None:
    """`[preview] items_folder`: inside the config folder, and read by an enabled `*.md` glob source."""
    value = p.text("items_folder", None)
    if not isinstance(value, str) or not value.strip():
        return None
    folder = local_path(p, "items_folder", value.strip(), root, must_exist=True)
    if folder is None:
        return None
    if not folder.is_dir():
        p.problem("items_folder", f"{value!r} is not a folder")
        return None
    readers = [
        s
        for s in sources
        if s is not None
        and s.enabled
        and s.kind == "glob"
        and Path(s.location).parent.resolve() == folder
        and Path(s.location).name in ("*.md", "*.markdown")
    ]
    if not readers:
        p.problem(
            "items_folder",
            f"no enabled [[sources]] reads {value}/*.md, so items added there would never reach an issue"
            f' (add a source with url = "{value}/*.md")',
        )
        return None
    return folder


def read_notify(t: Table) -> NotifySettings:
    """`[notify]`: `to` (the team's addresses), `preview_url` (linked in the messages), `remind_hours`."""
    nd = NotifySettings()
    to = []
    for i, value in enumerate(t.strings("to")):
        address = value.strip()
        if not address.isascii() or not ADDRESS.fullmatch(address):
            t.problems.append(
                f"{t.where('to')}[{i}]: {value!r} is not an email address such as 'comms@example.org'"
            )
        else:
            to.append(address)
    url = t.text("preview_url", nd.preview_url)
    notify = NotifySettings(
        to=tuple(dict.fromkeys(to)),
        preview_url=url if http_url(t, "preview_url", url) else nd.preview_url,
        remind_hours=t.number("remind_hours", nd.remind_hours, maximum=24.0 * 30),
    )
    t.finish()
    return notify
