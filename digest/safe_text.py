"""Characters that never belong in an issue, removed once where text enters digest (stdlib only).

XML 1.0 (and so MJML, the compiled email and the web pages) forbids the C0 controls other than tab, LF and
CR, the surrogates and U+FFFE/U+FFFF; a lone surrogate cannot even be encoded as UTF-8. One such
character in one feed item used to stop the whole issue. `scrub_text` is applied at every boundary where
outside text comes in: the parsers (RSS/Atom, JSON Feed, Markdown items), the draft file and the
configuration. Header-bound configuration strings are refused instead (`header_problem`), since silently
changing a subject or sender name is worse than saying so.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["header_problem", "scrub_text", "scrub_tree"]

# Removed: C0 controls except tab/LF/CR (U+000B and U+000C included), DEL and the C1 controls, the
# noncharacters U+FDD0-U+FDEF and U+xFFFE/U+xFFFF of every plane. Replaced by U+FFFD: lone surrogates
# (they stand for a character that was lost, so the reader sees where).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef"
    + "".join(f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17))
    + "]"
)
# Finding out that a string has none of them (nearly always) is the cost: the class above, with its 32
# astral code points, is matched about ten times slower than the BMP part of it alone and a plain range of
# astral characters, so those two are searched first and the whole class only when a string has both.
_UNSAFE_BMP = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_REPLACEMENT = "\ufffd"
# Line and paragraph separators and NEL end a header line in some readers; any control character is
# refused in a header value.
_HEADER_BREAKING = frozenset("\u2028\u2029\x85")


def _replace(match: re.Match[str]) -> str:
    return _REPLACEMENT if "\ud800" <= match.group() <= "\udfff" else ""


def _is_safe(value: str) -> bool:
    if _UNSAFE_BMP.search(value) is not None:
        return False
    return _ASTRAL.search(value) is None or _UNSAFE.search(value) is None


def scrub_text(value: str) -> str:
    """`value` without the characters XML and UTF-8 cannot carry (lone surrogates become U+FFFD)."""
    if _is_safe(value):
        return value
    return _UNSAFE.sub(_replace, value)


def scrub_tree(value: Any) -> Any:
    """`scrub_text` applied to every string inside nested dicts, lists and tuples (dicts changed in place).

    Dict subclasses (feedparser's result) are walked and set through `dict` itself, so key aliases are
    not followed. Other values are returned as they are.
    """
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        for key, item in list(dict.items(value)):
            # Strings (most of a parsed feed) are checked here, not in a call each; unchanged ones stay.
            if type(item) is str:
                if not _is_safe(item):
                    dict.__setitem__(value, key, _UNSAFE.sub(_replace, item))
            else:
                dict.__setitem__(value, key, scrub_tree(item))
        return value
    if isinstance(value, list):
        value[:] = [scrub_tree(item) for item in value]
        return value
    if isinstance(value, tuple) and not hasattr(value, "_fields") and type(value) is tuple:
        return tuple(scrub_tree(item) for item in value)
    return value


def header_problem(value: str) -> str | None:
    """Why `value` cannot go into a mail or HTTP header (a control character or line separator), or None."""
    for ch in value:
        if ch in _HEADER_BREAKING or ord(ch) < 0x20 or ord(ch) == 0x7F or _UNSAFE.match(ch):
            return (
                f"contains the control character U+{ord(ch):04X}; header values must be one line of"
                " printable text"
            )
    return None
