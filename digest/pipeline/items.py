"""One-off items added from the preview, written as curated Markdown items (`[preview] items_folder`).

The file is an ordinary curated item (see `digest.ingest.parse.items`), read by the `*.md` source that
covers the folder, so the item flows through the normal pipeline: fetch, dedupe, compose, render.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from digest.config import Config
from digest.errors import StateError, UsageError

MAX_TITLE = 300
MAX_SUMMARY = 2000
MAX_URL = 2000


@dataclass(frozen=True, slots=True)
class OneOffItem:
    """What the preview's "Add an item" form holds (text as typed; `write_item` checks it)."""

    title: str
    link: str = ""
    summary: str = ""
    day: str = ""  # YYYY-MM-DD; "" is `today`
    priority: str = ""
    image: str = ""
    image_alt: str = ""
    pinned: bool = False


def _one_line(what: str, value: str, limit: int) -> str:
    value = " ".join(value.split())
    if len(value) > limit:
        raise UsageError(f"the item's {what} is longer than {limit} characters")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise UsageError(f"the item's {what} holds control characters")
    return value


def _url(what: str, value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(value) > MAX_URL or " " in value:
        raise UsageError(f"the item's {what} {value[:80]!r} is not an http(s) address")
    return value


def _slug(title: str) -> str:
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:60] or "item"


def item_text(config: Config, item: OneOffItem, *, today: date) -> str:
    """The Markdown file of a one-off item (front matter as JSON strings: valid YAML 1.2).

    Raises:
        UsageError: no title, a bad address or date, an unknown priority, or a picture without alt text.
    """
    title = _one_line("title", item.title, MAX_TITLE)
    if not title:
        raise UsageError("type a title for the item")
    summary = item.summary.replace("\r\n", "\n").strip()
    if len(summary) > MAX_SUMMARY:
        raise UsageError(f"the item's summary is longer than {MAX_SUMMARY:,} characters")
    try:
        day = date.fromisoformat(item.day.strip()) if item.day.strip() else today
    except ValueError as e:
        raise UsageError(f"the item's date {item.day!r} is not a date as YYYY-MM-DD") from e
    names = [p.name for p in config.priorities]
    priority = item.priority.strip()
    if priority and priority not in names:
        raise UsageError(f"{priority!r} is not a priority", hint=f"choose one of {', '.join(names)}")
    image, alt = _url("picture", item.image), _one_line("picture's alt text", item.image_alt, 500)
    if image and not alt:
        raise UsageError("describe the picture (alt text) for readers who cannot see it")
    fields: list[tuple[str, str]] = [("title", title), ("date", day.isoformat())]
    fields += [("link", _url("link", item.link))]
    fields += [("summary", " ".join(summary.split())), ("image", image), ("image_alt", alt if image else "")]
    fields += [("priority", priority)]
    lines = ["---", *(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in fields if v)]
    if item.pinned:
        lines.append("pinned: true")
    lines.append("---")
    # The body repeats the summary, escaped so it reads as text (the summary field is what is shown).
    body = re.sub(r"([\\`*_{}\[\]()#+!<>|~-])", r"\\\1", summary)
    return "\n".join(lines) + "\n\n" + body + "\n"


def write_item(config: Config, item: OneOffItem, *, today: date) -> Path:
    """Write a one-off item into `[preview] items_folder`; returns its path (never overwrites a file).

    Raises:
        UsageError: no items folder is configured, or the item is not usable (see `item_text`).
        StateError: the folder cannot be written.
    """
    folder = config.preview.items_folder
    if folder is None:
        raise UsageError(
            "the preview cannot add items: [preview] items_folder is not set",
            hint='set it to a folder a *.md source reads, such as items_folder = "feeds/items"',
        )
    text = item_text(config, item, today=today)
    day = re.search(r'^date: "(\d{4}-\d{2}-\d{2})"', text, re.MULTILINE)
    stem = f"{day[1] if day else today.isoformat()}-{_slug(item.title)}"
    try:
        fd, tmp = tempfile.mkstemp(prefix=".item.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise StateError(f"{folder}: cannot write the item: {e.strerror}") from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        for n in range(1, 1000):
            path = folder / (f"{stem}.md" if n == 1 else f"{stem}-{n}.md")
            try:
                os.link(tmp, path)  # fails when the name is taken: never overwrites
            except FileExistsError:
                continue
            return path
    except OSError as e:
        raise StateError(f"{folder}: cannot write the item: {e.strerror}") from e
    finally:
        Path(tmp).unlink(missing_ok=True)
    raise UsageError(f"{folder}: too many items named {stem}")
