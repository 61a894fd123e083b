"""`digest preview`, `digest serve` and `digest publish`: the web area's commands."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path

import click
import uvicorn
from starlette.types import ASGIApp

from digest.cli.build import parse_as_of
from digest.cli.common import config_option, edition_option, read_config, require_edition, stdout
from digest.config import Config
from digest.errors import UsageError
from digest.pipeline import web
from digest.state.store import open_store
from digest.web.app import create_preview_app
from digest.web.hosts import bound_names
from digest.web.public import create_public_app
from digest.web.security import require_access_token
from digest.web.workspace import Workspace


def _now() -> datetime:
    return datetime.now(UTC)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, so a busy port or an unknown address is a clear error before serving.

    Raises:
        UsageError: the address cannot be bound.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        raise UsageError(
            f"cannot listen on {host}:{port}: {e.strerror or e}",
            hint="choose another --port, or stop the program using it",
        ) from e
    sock.set_inheritable(True)
    return sock


def _run_server(app: ASGIApp, sock: socket.socket) -> int:
    server = uvicorn.Server(
        uvicorn.Config(app, server_header=False, timeout_graceful_shutdown=3, log_level="info")
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


@click.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port.")
def serve(config_path: Path, host: str, port: int) -> int:
    """Serve the web archive ([web] archive_dir) and the unsubscribe pages.

    This is the public site `[web] base_url` points at: the email's "view in browser" and unsubscribe
    links lead here. Put it behind an HTTPS reverse proxy to expose it.
    """
    config = read_config(config_path)
    published = web.rebuild_archive(config)
    app = create_public_app(config, clock=_now)
    sock = _listen(host, port)
    stdout.print(
        f"serving {config.web.archive_dir} ({len(published)} issue{'s' if len(published) != 1 else ''}) "
        f"and /unsubscribe on {_address(sock)} (public address: {config.web.base_url})",
        markup=False,
    )
    return _run_server(app, sock)


def _address(sock: socket.socket) -> str:
    """The URL to open on this machine (a wildcard bind, 0.0.0.0 or ::, is reached at loopback)."""
    host, port = sock.getsockname()[:2]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - compared, not bound
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


@click.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option(
    "--as-of",
    "as_of",
    metavar="DATETIME",
    help="End the next issue's window at this ISO 8601 time instead of now (as `digest build`).",
)
@click.option("--offline", is_flag=True, help="Never fetch the feeds: build from the entries state holds.")
@click.option("--no-link-check", "no_link_check", is_flag=True, help="Do not check the email's links.")
@edition_option
def preview(  # click passes every option by keyword
    *,
    config_path: Path,
    host: str,
    port: int,
    as_of: str | None,
    offline: bool,
    no_link_check: bool,
    edition: str | None,
) -> int:
    """Serve the comms team's preview of the next issue, with its controls and pre-send report.

    Shows the real email.html at 600 px and 375 px, the plain text and the entries; pin, drop, reorder,
    re-tag and the intro save the issue draft and rebuild; the page reloads itself when the config,
    feeds, templates or draft change. Test sends and the Approve button are on the same page.
    Binding any address but 127.0.0.1/localhost needs an access token in the environment variable
    named by [preview] access_token_env.
    """
    config = read_config(config_path, edition)
    require_edition(config, "preview")
    env_name = config.preview.access_token_env
    token = require_access_token(host, os.environ.get(env_name), env_name=env_name)
    workspace = Workspace(
        config_path,
        clock=_now,
        as_of=parse_as_of(as_of, config.digest.timezone),
        offline=offline,
        check_links=not no_link_check,
        edition=edition,
    )
    app = create_preview_app(workspace, access_token=token, host=host)
    sock = _listen(host, port)
    protected = f" (access token from ${env_name} required)" if token else ""
    stdout.print(f"preview of the next issue on {_address(sock)}{protected}; Ctrl-C to stop", markup=False)
    names = ", ".join(f"{n}:{sock.getsockname()[1]}" for n in bound_names(host))
    extra = ", ".join(config.preview.allowed_hosts)
    stdout.print(
        f"answering requests addressed to {names}{' and ' + extra if extra else ''} only"
        " (add other names to [preview] allowed_hosts)",
        markup=False,
    )
    return _run_server(app, sock)


@click.command()
@config_option
@click.option("--issue", "issue_id", help="Publish this sent issue (default: every sent issue).")
def publish(config_path: Path, issue_id: str | None) -> int:
    """Publish sent issues to the web archive again and regenerate its index and feed.

    `digest send` publishes each issue as it completes; use this after changing `[web]` settings or
    losing the archive folder.
    """
    base = read_config(config_path)
    if not base.editions:
        _publish_edition(base, issue_id)
        return 0
    # [[editions]]: each edition's sent issues go to its own part of the archive.
    with open_store(base) as db:
        wanted = db.issues.issue_edition(issue_id) if issue_id is not None else None
    if issue_id is not None and not wanted:
        raise UsageError(f"issue {issue_id}: not found in state, or built for no edition")
    for edition in base.editions:
        if wanted is None or edition.id == wanted:
            _publish_edition(read_config(config_path, edition.id), issue_id)
    return 0


def _publish_edition(config: Config, issue_id: str | None) -> None:
    """Publish one edition's sent issues (or the one named) and regenerate its index and feed."""
    db = open_store(config)
    try:
        if issue_id is not None:
            if db.issues.get_issue(issue_id) is None:
                raise UsageError(f"issue {issue_id}: not found in state")
            ids = [issue_id]
        else:
            ids = [r.id for r in reversed(db.issues.recent_issues(limit=10_000)) if r.sent_at is not None]
        for one in ids:
            page = web.publish_issue(config, db, one)
            stdout.print(f"published {one}: {page}", markup=False)
        published = web.rebuild_archive(config)
    finally:
        db.close()
    count = f"{len(published)} issue{'s' if len(published) != 1 else ''}"
    stdout.print(f"{config.web.archive_dir}: {count} in the archive", markup=False)


def register(group: click.Group) -> None:
    """Add this module's commands to the `digest` group."""
    group.add_command(preview)
    group.add_command(serve)
    group.add_command(publish)
