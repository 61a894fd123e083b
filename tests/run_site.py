"""A small digest installation in a temporary folder for run/schedule/status tests: a local RSS feed
whose items the test chooses, subscribers, the outbox transport, and helpers to read what was sent.
`state_url` puts its state in PostgreSQL (`[state] url`) instead of the SQLite file."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from digest.config import Config, load_config
from digest.schedule import next_slot, previous_slot
from digest.state.store import open_store

SUBSCRIBERS = ("ann@example.org", "bob@example.org", "cat@example.org")


def rss(items: list[tuple[str, datetime]]) -> str:
    body = "".join(
        f"<item><title>{escape(title)}</title><link>https://example.org/news/{i}</link>"
        f"<guid>https://example.org/news/{i}</guid><pubDate>{format_datetime(when)}</pubDate>"
        f"<description>{escape(title)}: what happened and why it matters locally.</description></item>"
        for i, (title, when) in enumerate(items)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Local news</title>'
        f"<link>https://example.org/</link><description>News</description>{body}</channel></rss>"
    )


def make_site(
    root: Path,
    items: list[tuple[str, datetime]],
    *,
    approval: bool = False,
    send_when_empty: bool = False,
    catch_up_hours: float = 12,
    extra_sources: str = "",
    extra: str = "",
    transport: str = "outbox",
    smtp: str = "",
    subscribers: tuple[str, ...] = SUBSCRIBERS,
    state_url: str | None = None,
) -> Config:
    root.mkdir(parents=True, exist_ok=True)
    (root / "news.xml").write_text(rss(items), encoding="utf-8")
    (root / "config.toml").write_text(
        f"""
[state]
{f'url = "{state_url}"' if state_url else 'path = ".digest/state.db"'}
lock = ".digest/run.lock"

[fetch]
retries = 0
timeout = 2

[[sources]]
name = "Local news"
url = "news.xml"
category = "News"
{extra_sources}
[digest]
title = "Test weekly"
send_when_empty = {str(send_when_empty).lower()}

[delivery]
transport = "{transport}"
from_address = "news@example.org"
list_id = "weekly.example.org"

[schedule]
day = "friday"
time = "08:00"
timezone = "Europe/London"
catch_up_hours = {catch_up_hours}

[approval]
required = {str(approval).lower()}

[smtp]
{smtp}
{extra}
""",
        encoding="utf-8",
    )
    config = load_config(root / "config.toml")
    db = open_store(config)
    for address in subscribers:
        db.subscribers.upsert_subscriber(
            address, name=address.split("@")[0].title(), at=datetime(2025, 1, 1, tzinfo=UTC)
        )
    db.close()
    return config


def delivered(config: Config) -> list[email.message.EmailMessage]:
    """Every message in the outbox, parsed."""
    folder = config.delivery.outbox / "new"
    if not folder.exists():
        return []
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in sorted(folder.iterdir())
    ]


def copies(config: Config) -> Counter[tuple[str, str]]:
    """How many copies of each (recipient, subject) the outbox holds."""
    return Counter((str(m["To"]).split("<")[-1].rstrip(">"), str(m["Subject"])) for m in delivered(config))


def settle_slots_around_now(config: Config, outcome: str = "sent") -> tuple[datetime, datetime]:
    """Record the wall clock's latest and next slots as already run, and return them.

    A test that runs `digest schedule` or `digest run --scheduled` as a real process reads the real
    clock; with both slots done, nothing is due whatever today is, even when the test starts right at a
    slot or one passes while it runs.
    """
    now = datetime.now(UTC)
    slots = previous_slot(config.schedule, now), next_slot(config.schedule, now)
    db = open_store(config)
    try:
        for slot in slots:
            db.runs.record_run(slot=slot, at=now, outcome=outcome)
    finally:
        db.close()
    return slots


def digest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "digest", *args]


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def run_cli(config: Config, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        digest_command(*args, "--config", str(config.path)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=cli_env(**env),
        cwd=config.root,
    )
