"""`digest preview`, `digest serve` and `digest publish`: the web area's commands."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import click
import uvicorn
from starlette.types import ASGIApp

from digest.cli.common import config_option, read_config, stdout
from digest.errors import UsageError
from digest.pipeline import web
from digest.preview.public import create_public_app
from digest.state import open_state
from digest.state.issues import get_issue, recent_issues


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


def _run_server(app: ASGIApp, host: str, port: int) -> int:
    sock = _listen(host, port)
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
    stdout.print(
        f"serving {config.web.archive_dir} ({len(published)} issue{'s' if len(published) != 1 else ''}) "
        f"and /unsubscribe on http://{host}:{port}/ (public address: {config.web.base_url})",
        markup=False,
    )
    return _run_server(app, host, port)


@click.command()
@config_option
@click.option("--issue", "issue_id", help="Publish this sent issue (default: every sent issue).")
def publish(config_path: Path, issue_id: str | None) -> int:
    """Publish sent issues to the web archive again and regenerate its index and feed.

    `digest send` publishes each issue as it completes; use this after changing `[web]` settings or
    losing the archive folder.
    """
    config = read_config(config_path)
    db = open_state(config.state_path)
    try:
        if issue_id is not None:
            if get_issue(db, issue_id) is None:
                raise UsageError(f"issue {issue_id}: not found in state")
            ids = [issue_id]
        else:
            ids = [r.id for r in reversed(recent_issues(db, limit=10_000)) if r.sent_at is not None]
        for one in ids:
            page = web.publish_issue(config, db, one)
            stdout.print(f"published {one}: {page}", markup=False)
        published = web.rebuild_archive(config)
    finally:
        db.close()
    count = f"{len(published)} issue{'s' if len(published) != 1 else ''}"
    stdout.print(f"{config.web.archive_dir}: {count} in the archive", markup=False)
    return 0


def register(group: click.Group) -> None:
    """Add this module's commands to the `digest` group."""
    group.add_command(serve)
    group.add_command(publish)
