"""The issue draft: the comms team's edits to one issue (pin, drop, reorder, re-tag, intro), kept as TOML.

The draft of issue `2025-W19` is the file `<out>/2025-W19.draft.toml`, next to the issue's output folder.
It is read and written only through this module: `load_draft` (a missing file is an empty draft) and
`save_draft` (an atomic write). `digest build` applies the draft; entries are named by their ids, as
listed in the issue's `issue.json`.

```toml
intro = '''
A **short** editor's note, in Markdown.
'''
pinned = ["entry-id", ...]     # always in the highlights, first, in this order
dropped = ["entry-id", ...]    # left out of the issue
order = ["entry-id", ...]      # shown first within their day (or week), in this order
highlight_order = ["entry-id", ...]  # highlights after the pinned ones, ahead of the ranking, in this order

subject = "..."                # this issue's subject line, replacing [digest]'s ("" = the configured one)
preheader = "..."              # this issue's preheader, replacing the generated one

[retag]                        # these priorities replace the entry's keyword matches ([] = none)
"entry-id" = ["Start Well"]

[titles]                       # the title readers see instead of the source's (the source's own is
"entry-id" = "A full title"    # kept as the entry's `original` and shown beside it in the preview)

[teasers]                      # the teaser (summary) readers see instead of the source's
"entry-id" = "One or two sentences."
```
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from digest.errors import RenderError
from digest.models import Draft
from digest.safe_text import scrub_tree

__all__ = ["Draft", "draft_path", "dump_draft", "load_draft", "save_draft"]

_KEYS = (
    "intro",
    "pinned",
    "dropped",
    "order",
    "highlight_order",
    "subject",
    "preheader",
    "retag",
    "titles",
    "teasers",
)
MAX_SUBJECT = 200
MAX_TITLE = 300
MAX_TEASER = 2000
_HINT = "fix the keys named above, or delete the draft file to build the issue without edits"


def draft_path(out_dir: Path, issue_id: str) -> Path:
    """Where the draft of an issue lives: next to its output folder."""
    return out_dir / f"{issue_id}.draft.toml"


def _ids(data: dict[str, Any], key: str, problems: list[str]) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append(f"{key} must be a list of entry ids (strings)")
        return ()
    seen: dict[str, None] = dict.fromkeys(value)
    return tuple(seen)


def line_problem(value: str, limit: int) -> str | None:
    """Why `value` cannot be a one-line text of at most `limit` characters (a subject goes in a header)."""
    if len(value) > limit:
        return f"is longer than {limit} characters"
    if any(c in value for c in "\r\n\u2028\u2029\x85"):
        return "must be one line"
    return None


def _line(data: dict[str, Any], key: str, limit: int, problems: list[str]) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        problems.append(f"{key} must be a string")
        return ""
    problem = line_problem(value, limit)
    if problem:
        problems.append(f"{key} {problem}")
        return ""
    return value.strip()


def _texts(
    data: dict[str, Any], key: str, limit: int, problems: list[str], *, one_line: bool
) -> tuple[tuple[str, str], ...]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        problems.append(f"{key} must be a table of entry id = text")
        return ()
    out = []
    for entry_id, text in sorted(table.items()):
        if not isinstance(text, str):
            problems.append(f"{key}.{entry_id!r} must be a string")
            continue
        problem = (
            line_problem(text, limit)
            if one_line
            else (f"is longer than {limit} characters" if len(text) > limit else None)
        )
        if problem:
            problems.append(f"{key}.{entry_id!r} {problem}")
        elif text.strip():
            out.append((entry_id, text.strip()))
    return tuple(out)


def parse_draft(path: Path, data: dict[str, Any]) -> Draft:
    """Validate an already-parsed draft document, reporting every bad key at once.

    Raises:
        RenderError: a key is unknown or has the wrong type (the message names each such key).
    """
    data = scrub_tree(data)  # control characters ("\u0001" is valid TOML): out of every value, once
    problems = [
        f"unknown key {key!r} (a draft has {', '.join(_KEYS)})" for key in sorted(set(data) - set(_KEYS))
    ]
    intro = data.get("intro", "")
    if not isinstance(intro, str):
        problems.append("intro must be a string of Markdown")
        intro = ""
    retag_table = data.get("retag", {})
    if not isinstance(retag_table, dict):
        problems.append("retag must be a table of entry id = [priority names]")
        retag_table = {}
    retag = []
    for entry_id, names in sorted(retag_table.items()):
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            problems.append(f"retag.{entry_id!r} must be a list of priority names (strings)")
            continue
        retag.append((entry_id, tuple(dict.fromkeys(names))))
    subject = _line(data, "subject", MAX_SUBJECT, problems)
    preheader = _line(data, "preheader", MAX_SUBJECT, problems)
    titles = _texts(data, "titles", MAX_TITLE, problems, one_line=True)
    teasers = _texts(data, "teasers", MAX_TEASER, problems, one_line=False)
    draft = Draft(
        subject=subject,
        preheader=preheader,
        titles=titles,
        teasers=teasers,
        intro=intro.strip("\n"),
        pinned=_ids(data, "pinned", problems),
        dropped=_ids(data, "dropped", problems),
        order=_ids(data, "order", problems),
        retag=tuple(retag),
        highlight_order=_ids(data, "highlight_order", problems),
    )
    if problems:
        raise RenderError(f"{path}: {'; '.join(problems)}", hint=_HINT)
    return draft


def load_draft(path: Path) -> Draft:
    """Read a draft file; a missing file is an empty draft.

    Raises:
        RenderError: the file is unreadable, not TOML, or has a bad key (named in the message).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Draft()
    except OSError as e:
        raise RenderError(f"{path}: cannot read the draft: {e.strerror}") from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise RenderError(f"{path}: the draft is not UTF-8 text", hint="save the file as UTF-8") from e
    except tomllib.TOMLDecodeError as e:
        raise RenderError(
            f"{path}: the draft is not valid TOML: {e}",
            hint="fix the TOML at the line and column given, or delete the draft file to build without edits",
        ) from e
    return parse_draft(path, data)


def _toml_string(value: str) -> str:
    """A TOML basic string holding `value` exactly (control characters escaped)."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_list(values: tuple[str, ...]) -> str:
    if not values:
        return "[]"
    return "[\n" + "".join(f"    {_toml_string(v)},\n" for v in values) + "]"


def dump_draft(draft: Draft) -> str:
    """The TOML text of a draft (what `save_draft` writes); `load_draft` reads it back unchanged."""
    lines = [
        "# Edits to this issue, applied by `digest build`. Entries are named by their id (see issue.json).",
        "# pinned: always highlighted, first; dropped: left out; order: shown first in their day;",
        "# highlight_order: highlights after the pinned ones, ahead of the ranking, in this order;",
        "# [retag]: entry id = [priority names] replacing the entry's keyword matches; intro: Markdown;",
        "# subject, preheader: this issue's, replacing the configured ones; [titles], [teasers]: entry id =",
        "# the words readers see instead of the source's.",
        f"intro = {_toml_string(draft.intro)}",
        f"pinned = {_toml_list(draft.pinned)}",
        f"dropped = {_toml_list(draft.dropped)}",
        f"order = {_toml_list(draft.order)}",
        f"highlight_order = {_toml_list(draft.highlight_order)}",
        f"subject = {_toml_string(draft.subject)}",
        f"preheader = {_toml_string(draft.preheader)}",
        "",
        "[retag]",
    ]
    lines += [f"{_toml_string(entry_id)} = {_toml_list(names)}" for entry_id, names in draft.retag]
    lines += ["", "[titles]"]
    lines += [f"{_toml_string(entry_id)} = {_toml_string(text)}" for entry_id, text in draft.titles]
    lines += ["", "[teasers]"]
    lines += [f"{_toml_string(entry_id)} = {_toml_string(text)}" for entry_id, text in draft.teasers]
    return "\n".join(lines) + "\n"


def save_draft(path: Path, draft: Draft) -> None:
    """Write a draft atomically (a reader sees the old file or the new one, never half of one).

    Raises:
        RenderError: the folder cannot be written.
    """
    text = dump_draft(draft)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise RenderError(f"{path}: cannot write the draft: {e.strerror}") from e
