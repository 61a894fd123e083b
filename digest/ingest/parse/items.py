"""Curated items: one Markdown file per item, with YAML front matter, for news that is on no feed.

    ---
    title: "International Day of the Midwife"     (required)
    date: 2025-05-05                               (a date, or an ISO 8601 date-time; optional)
    link: https://example.org/page                 (http(s); optional)
    category: Campaigns and events                 (default: the source's category)
    summary: "One or two sentences."               (default: the start of the body)
    image: https://example.org/picture.jpg         (http(s); optional, with image_alt)
    priority: Start Well                           (one of the [[priorities]] names; optional)
    pinned: true                                   (true/false; default false)
    tags: [maternity, workforce]                   (optional)
    author: Communications team                    (optional)
    ---
    The body, in Markdown (raw HTML is not allowed; the result is sanitised like any feed).

The front matter is YAML 1.2, read with ruamel.yaml's safe loader: block lists (`tags:` then `  - a`),
folded scalars (`summary: >`), quoted values with commas; `no` stays the string "no". A bare value with
": " in it (`title: Update: new clinic`) is taken as text, as people write it. A date without a time is
midnight in the digest's time zone.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from markdown_it import MarkdownIt
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from digest.errors import ParseError
from digest.ingest import clean
from digest.ingest.parse.common import ParseContext, ParsedFeed, build_entry, entry_id
from digest.models import Image
from digest.safe_text import scrub_text, scrub_tree

FIELDS = (
    "title",
    "date",
    "link",
    "category",
    "summary",
    "image",
    "image_alt",
    "priority",
    "pinned",
    "tags",
    "author",
)
_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)\s*:\s*(.*)$")
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)\s*:(?:\s|$)")
_TRUE = ("true", "yes", "on")
_FALSE = ("false", "no", "off")
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def is_markdown_name(name: str) -> bool:
    return name.lower().endswith((".md", ".markdown"))


def _fail(ctx: ParseContext, label: str, message: str, hint: str | None = None) -> ParseError:
    return ParseError(
        f"{ctx.source}: {label}: {message}",
        hint=hint or "fix the front matter between the two '---' lines at the top of the file",
    )


def _quote_plain_colons(line: str) -> str:
    """`title: Update: new clinic` as YAML reads it: a top-level plain value holding ": " is quoted (YAML
    would refuse it as a nested mapping), as digest's own front-matter reader always accepted it."""
    match = _LINE.match(line)
    if not match or line[:1].isspace():
        return line
    value = match[2].strip()
    if not value or value[0] in "\"'[{|>&*!%@`#" or ": " not in value:
        return line
    value = re.sub(r"\s+#.*$", "", value)  # a comment after the value stays a comment
    return f"{match[1]}: '{value.replace(chr(39), chr(39) * 2)}'"


def _key_lines(block: list[str], ctx: ParseContext, label: str) -> None:
    """Every top-level key is known and given once; errors name the line (YAML only says which key)."""
    seen: set[str] = set()
    for number, line in enumerate(block, start=2):
        match = _KEY.match(line)
        if not match:
            continue
        key = match[1].lower()
        if key not in FIELDS:
            raise _fail(ctx, label, f"line {number}: unknown key {key!r} (known: {', '.join(FIELDS)})")
        if key in seen:
            raise _fail(ctx, label, f"line {number}: {key} is given twice")
        seen.add(key)


def _yaml_problem(error: YAMLError, block: list[str], ctx: ParseContext, label: str) -> ParseError:
    mark = getattr(error, "context_mark", None) or getattr(error, "problem_mark", None)
    line = getattr(mark, "line", None)
    problem = str(getattr(error, "problem", None) or "not valid YAML")
    if isinstance(line, int) and 0 <= line < len(block):
        match = _LINE.match(block[line])
        value = match[2].lstrip() if match else ""
        if match and value.startswith('"'):
            return _fail(ctx, label, f"{match[1].lower()}: unterminated or invalid double-quoted string")
        if match and value.startswith("'"):
            return _fail(ctx, label, f"{match[1].lower()}: unterminated single-quoted string")
        return _fail(ctx, label, f"line {line + 2}: {problem} in {block[line].strip()[:60]!r}")
    return _fail(ctx, label, problem)


def _text(value: object, ctx: ParseContext, label: str, key: str) -> str:
    """A front-matter value as the text the fields are checked as (dates ISO 8601, booleans true/false)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str | int | float):
        return str(value)
    raise _fail(ctx, label, f"{key}: expected a single value, not {type(value).__name__}")


def split_front_matter(text: str, ctx: ParseContext, label: str) -> tuple[dict[str, str], str]:
    """The front matter (YAML 1.2, read safely: `no` stays the string "no") as text per key, tags joined
    by commas in a list's own order, and the Markdown body after it.

    Raises:
        ParseError: no or unclosed front matter, an unknown or repeated key, YAML that cannot be read.
    """
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        raise _fail(
            ctx,
            label,
            "no front matter",
            hint="start the file with a line '---', then 'title: ...', then '---'",
        )
    try:
        end = next(i for i, line in enumerate(lines[1:], start=1) if line.strip() in ("---", "..."))
    except StopIteration:
        raise _fail(ctx, label, "the front matter is not closed by a '---' line") from None
    block = lines[1:end]
    _key_lines(block, ctx, label)
    try:
        # scrubbed again after loading: a YAML escape such as "\ud800" decodes to a lone surrogate
        data = scrub_tree(_yaml().load("\n".join(_quote_plain_colons(line) for line in block)))
    except YAMLError as e:
        raise _yaml_problem(e, block, ctx, label) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _fail(ctx, label, "expected 'key: value' lines")
    fields: dict[str, str] = {}
    for key, value in data.items():
        name = str(key).lower()
        if name == "tags" and isinstance(value, list):
            fields[name] = json.dumps([_text(v, ctx, label, name) for v in value], ensure_ascii=False)
        else:
            fields[name] = _text(value, ctx, label, name)
    return fields, "\n".join(lines[end + 1 :])


def _yaml() -> YAML:
    # pure=True: the C loader reads YAML 1.1 (where `no` is false); the pure one reads YAML 1.2.
    return YAML(typ="safe", pure=True)


def _date(value: str, ctx: ParseContext, label: str) -> datetime:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return datetime.combine(date.fromisoformat(value), time(0, 0), ZoneInfo(ctx.timezone))
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(
            ctx, label, f"date: {value!r} is not a date (use YYYY-MM-DD or 2025-05-05T09:30:00+01:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(ctx.timezone))


def _url(value: str | None, ctx: ParseContext, label: str, key: str) -> str | None:
    if not value:
        return None
    url = clean.absolute_url(value)
    if url is None:
        raise _fail(ctx, label, f"{key}: {value!r} is not an http(s) URL")
    return url


def _tags(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    if value.startswith('["') or value == "[]":  # a YAML list, kept as JSON by split_front_matter
        return tuple(t.strip() for t in json.loads(value) if t.strip())
    inner = value.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    return tuple(t.strip().strip("\"'").strip() for t in inner.split(",") if t.strip().strip("\"'").strip())


def parse_item(body: bytes, ctx: ParseContext, *, label: str) -> ParsedFeed:
    """Parse one curated Markdown item; `label` names the file (relative to the config folder) in errors.

    Raises:
        ParseError: not UTF-8, no or broken front matter, an unknown key, a missing title, a bad value.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _fail(ctx, label, f"not UTF-8 text (byte {e.start})", hint="save the file as UTF-8") from e
    # control characters out of every field, here, once (before lines are split: U+000B/U+000C/U+001C-
    # U+001E would end a line); escapes such as "\ud800" in quoted values are scrubbed after YAML loading
    fields, markdown = split_front_matter(scrub_text(text), ctx, label)
    title = fields.get("title", "").strip()
    if not title:
        raise _fail(ctx, label, "title is required")
    published = _date(fields["date"], ctx, label) if fields.get("date") else None
    link = _url(fields.get("link"), ctx, label, "link")
    image_url = _url(fields.get("image"), ctx, label, "image")
    priority = fields.get("priority") or None
    if priority and ctx.priorities and priority not in ctx.priorities:
        choices = ", ".join(repr(p) for p in ctx.priorities)
        raise _fail(ctx, label, f"priority: {priority!r} is not a configured priority (one of {choices})")
    pinned_raw = fields.get("pinned", "false").lower()
    if pinned_raw not in _TRUE + _FALSE:
        raise _fail(ctx, label, f"pinned: {fields['pinned']!r} must be true or false")
    body_html = _markdown.render(markdown) if markdown.strip() else ""
    summary = fields.get("summary", "").strip()
    entry = build_entry(
        ctx,
        guid=None,
        link=link,
        base=link,
        title=title,
        title_is_html=False,
        published=published,
        updated=None,
        summary_html=body_html or clean.text_to_html(summary),
        summary_text=summary or None,
        author=fields.get("author") or None,
        tags=_tags(fields.get("tags")),
        image=Image(image_url, fields.get("image_alt", "")) if image_url else None,
        category=fields.get("category") or None,
        priority=priority,
        pinned=pinned_raw in _TRUE,
    )
    # A curated item is identified by its file, not its link: two items may point at the same page.
    from dataclasses import replace  # noqa: PLC0415 - only needed here

    entry = replace(entry, id=entry_id(ctx.source, f"item:{label}", None, ""))
    return ParsedFeed(title="", link=None, format="markdown", entries=(entry,))
