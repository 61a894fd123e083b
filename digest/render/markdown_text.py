"""Markdown as readable plain text, for the email's text part: the editor's intro without its markup.

Emphasis markers go, links read "text (url)", images their alt text and URL, lists keep their bullets or
numbers with a hanging indent, headings are underlined, quotes keep "> ", code keeps its lines. Paragraphs are
wrapped at `width` columns; URLs and long words are never broken. Raw HTML is not interpreted (it stays text).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

_markdown = MarkdownIt("commonmark", {"html": False, "typographer": False})


def markdown_to_text(markdown: str, width: int = 78) -> str:
    """The Markdown `markdown` as plain text wrapped at `width` columns (no trailing newline)."""
    if not markdown.strip():
        return ""
    blocks = _Blocks(width)
    blocks.walk(_markdown.parse(markdown))
    return "\n\n".join(blocks.out).rstrip()


def inline_text(children: Sequence[Token]) -> str:
    """An inline token run as text: markers dropped, links as "text (url)", hard breaks as newlines."""
    parts: list[str] = []
    link_start: list[tuple[int, str]] = []
    for token in children:
        if token.type in ("text", "code_inline"):
            parts.append(token.content)
        elif token.type == "softbreak":
            parts.append(" ")
        elif token.type == "hardbreak":
            parts.append("\n")
        elif token.type == "link_open":
            link_start.append((len(parts), str(token.attrGet("href") or "")))
        elif token.type == "link_close" and link_start:
            start, href = link_start.pop()
            label = "".join(parts[start:]).strip()
            if href and href not in (label, f"mailto:{label}"):
                parts.append(f" ({href})" if label else href)
        elif token.type == "image":
            alt = "".join(inline_text(token.children or ()))
            src = str(token.attrGet("src") or "")
            parts.append(f"{alt} ({src})" if alt else src)
    return "".join(parts)


def _fill(text: str, width: int, first: str, indent: str) -> str:
    lines = []
    for i, line in enumerate(text.split("\n")):
        lines.append(
            textwrap.fill(
                " ".join(line.split()),
                width=width,
                initial_indent=first if i == 0 else indent,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
            or (first if i == 0 else indent).rstrip()
        )
    return "\n".join(lines)


class _Blocks:
    """Walks block tokens, keeping the prefix (list bullets, quote markers) each paragraph starts with."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.out: list[str] = []
        self.indents: list[str] = []  # the hanging indent each open container adds
        self.pending = ""  # a list marker waiting for the item's first line
        self.numbers: list[int | None] = []  # per open list: the next number, or None for bullets
        self.join = False  # the next block continues the previous one (items of a tight list)

    def _add(self, block: str) -> None:
        if self.join and self.out:
            self.out[-1] += "\n" + block
        else:
            self.out.append(block)
        self.join = bool(self.numbers) and self.tight

    def _text(self, text: str) -> None:
        indent = "".join(self.indents)
        first = indent[: len(indent) - len(self.pending)] + self.pending
        self.pending = ""
        self._add(_fill(text, self.width, first, indent))

    def walk(self, tokens: Sequence[Token]) -> None:
        self.tight = False
        for token in tokens:
            kind = token.type
            if kind == "inline":
                self._text(inline_text(token.children or ()))
            elif kind == "heading_close":
                title = self.out[-1]
                rule = ("=" if token.tag == "h1" else "-") * min(len(title.strip()), self.width)
                self.out[-1] = f"{title}\n{rule}"
            elif kind in ("bullet_list_open", "ordered_list_open"):
                if not self.numbers:
                    self.tight = not _loose(tokens, token)
                    self.join = False
                ordered = kind == "ordered_list_open"
                self.numbers.append(int(token.attrGet("start") or 1) if ordered else None)
            elif kind in ("bullet_list_close", "ordered_list_close"):
                self.numbers.pop()
                self.join = bool(self.numbers) and self.tight
            elif kind == "list_item_open":
                number = self.numbers[-1]
                self.pending = "* " if number is None else f"{number}. "
                if number is not None:
                    self.numbers[-1] = number + 1
                self.indents.append(" " * len(self.pending))
            elif kind in ("list_item_close", "blockquote_close"):
                self.indents.pop()
            elif kind == "blockquote_open":
                self.indents.append("> ")
            elif kind in ("code_block", "fence"):
                indent = "".join(self.indents) + "    "
                self._add(
                    "\n".join(f"{indent}{line}".rstrip() for line in token.content.rstrip("\n").split("\n"))
                )
            elif kind == "hr":
                self._add("".join(self.indents) + "-" * 20)


def _loose(tokens: Sequence[Token], list_open: Token) -> bool:
    """Whether a list (with its nested lists) is loose: markdown-it hides the paragraphs of a tight one."""
    start = list(tokens).index(list_open)
    depth = 0
    for token in tokens[start:]:
        if token.type.endswith("_list_open"):
            depth += 1
        elif token.type.endswith("_list_close"):
            depth -= 1
            if depth == 0:
                return False
        elif token.type == "paragraph_open" and not token.hidden:
            return True
    return False
