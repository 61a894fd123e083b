"""Quality checks on a built HTML email: size, language, layout tables, alt text, headings, link text,
contrast (light and dark), colour-scheme support, and nothing a mail client would block or strip.

Used by `digest build` (size), `digest check --email PATH` and the tests of every golden case. Pure
functions over the HTML text: parsing is the standard library's `html.parser`, so the checks read the
document the way a mail client does, after inlining, ignoring Outlook conditional comments.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

from digest.checks.colour import RGB, contrast_ratio, parse_colour

# Gmail clips an HTML part above about 102 KB (hiding the footer and its unsubscribe link).
SIZE_LIMIT = 102 * 1024
# Aim below this, so a personalised copy of the largest expected issue stays under the clip.
SIZE_TARGET = 87 * 1024
MIN_CONTRAST = 4.5
VAGUE_LINK_TEXT = frozenset(
    {"click here", "click", "here", "this", "this link", "link", "read more", "more", "learn more", "go"}
)
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)


@dataclass(frozen=True, slots=True)
class EmailProblem:
    """One failed check: which check, and what is wrong (with an example where there is one)."""

    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.check}: {self.message}"


def _hex(rgb: RGB) -> str:
    return "#" + "".join(f"{round(c):02X}" for c in rgb)


# ---------------------------------------------------------------------------------------------- tree


@dataclass(eq=False)
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node | str] = field(default_factory=list)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def text(self) -> str:
        parts = []
        for child in self.children:
            if isinstance(child, Node):
                parts.append(child.attrs.get("alt", "") if child.tag == "img" else child.text())
            else:
                parts.append(child)
        return " ".join(" ".join(parts).split())


def _check_doctype(doctype: str | None) -> list[EmailProblem]:
    """The page needs an upper-case `<!DOCTYPE html>` (EMAIL-NOTES: premailer drops a lower-case one)."""
    words = (doctype or "").split()
    if [w.lower() for w in words] != ["doctype", "html"]:
        return [EmailProblem("doctype", "no <!DOCTYPE html> first: browsers render in quirks mode")]
    if words[0] != "DOCTYPE":
        return [
            EmailProblem(
                "doctype",
                f"<!{doctype}> is not upper-case: premailer drops it and browsers then render in quirks mode;"
                " write <!DOCTYPE html>",
            )
        ]
    return []


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.current = self.root
        self.doctype: str | None = None
        self.styles: list[str] = []

    def handle_decl(self, decl: str) -> None:
        if self.doctype is None:
            self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k.lower(): v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in _VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, {k.lower(): v or "" for k, v in attrs}, self.current))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        if self.current.tag == "style":
            self.styles.append(data)
        self.current.children.append(data)


def parse_html(html: str) -> _TreeBuilder:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder


def _style(node: Node) -> dict[str, str]:
    out = {}
    for declaration in node.attrs.get("style", "").split(";"):
        name, sep, value = declaration.partition(":")
        if sep:
            out[name.strip().lower()] = value.replace("!important", "").strip()
    return out


def _hidden(node: Node, style: dict[str, str]) -> bool:
    return (
        style.get("display") == "none"
        or style.get("mso-hide") == "all"
        or style.get("visibility") == "hidden"
        or "hidden" in node.attrs
        or node.attrs.get("aria-hidden") == "true"
        or node.tag in ("head", "style", "script", "title")
    )


# ---------------------------------------------------------------------------------------------- checks


def _check_contrast(root: Node) -> Iterator[EmailProblem]:
    failures: dict[tuple[str, str], str] = {}

    def visit(node: Node, colour: RGB, background: RGB) -> None:
        style = _style(node)
        if _hidden(node, style):
            return
        bg_value = style.get("background-color") or _first_colour(style.get("background", ""))
        bg_value = bg_value or node.attrs.get("bgcolor")
        if bg_value and bg_value != "transparent":
            background = parse_colour(bg_value, background) or background
        fg_value = style.get("color") or (node.attrs.get("color") if node.tag == "font" else None)
        if fg_value:
            colour = parse_colour(fg_value, background) or colour
        for child in node.children:
            if isinstance(child, Node):
                visit(child, colour, background)
            elif child.strip() and contrast_ratio(colour, background) < MIN_CONTRAST:
                failures.setdefault((_hex(colour), _hex(background)), " ".join(child.split())[:60])

    visit(root, (0, 0, 0), (255, 255, 255))
    for (fg, bg), sample in sorted(failures.items()):
        ratio = contrast_ratio(fg, bg)
        yield EmailProblem(
            "contrast", f"text {fg} on {bg} is {ratio:.2f}:1, below {MIN_CONTRAST}:1 (e.g. {sample!r})"
        )


def _first_colour(background: str) -> str | None:
    for token in re.split(r"\s+(?![^(]*\))", background.strip()):
        if parse_colour(token) is not None:
            return token
    return None


def _media_blocks(css: str, feature: str) -> Iterator[str]:
    """The bodies of `@media` blocks whose query mentions `feature`."""
    for match in re.finditer(r"@media([^{]*)\{", css):
        if feature not in match.group(1).replace(" ", "").lower():
            continue
        depth, start = 1, match.end()
        i = start
        while i < len(css) and depth:
            depth += {"{": 1, "}": -1}.get(css[i], 0)
            i += 1
        yield css[start : i - 1]


def _rules(css: str) -> Iterator[tuple[str, dict[str, str]]]:
    for match in re.finditer(r"([^{}]+)\{([^{}]*)\}", css):
        decls = {}
        for declaration in match.group(2).split(";"):
            name, sep, value = declaration.partition(":")
            if sep:
                decls[name.strip().lower()] = value.replace("!important", "").strip()
        yield match.group(1).strip(), decls


def _check_dark_mode(styles: list[str]) -> Iterator[EmailProblem]:
    """In the dark-mode styles, each text colour must read on each dark background it can sit on.

    A rule setting both colour and background is checked as a pair; a colour set alone is checked
    against every background the dark styles set alone (the page and card grounds).
    """
    css = "\n".join(styles)
    grounds: dict[str, str] = {}
    colours: dict[str, str] = {}
    for block in _media_blocks(css, "prefers-color-scheme:dark"):
        for selector, decls in _rules(block):
            fg = decls.get("color")
            bg = decls.get("background-color") or _first_colour(decls.get("background", ""))
            if fg and bg and parse_colour(fg) and parse_colour(bg):
                ratio = contrast_ratio(fg, bg)
                if ratio < MIN_CONTRAST:
                    yield EmailProblem(
                        "dark-mode", f"{selector}: {fg} on {bg} is {ratio:.2f}:1, below {MIN_CONTRAST}:1"
                    )
            elif fg and parse_colour(fg):
                colours.setdefault(fg, selector)
            elif bg and parse_colour(bg):
                grounds.setdefault(bg, selector)
    for fg, selector in colours.items():
        for bg, ground in grounds.items():
            ratio = contrast_ratio(fg, bg)
            if ratio < MIN_CONTRAST:
                yield EmailProblem(
                    "dark-mode",
                    f"{selector} ({fg}) on {ground} ({bg}) is {ratio:.2f}:1, below {MIN_CONTRAST}:1",
                )


def _check_headings(root: Node) -> Iterator[EmailProblem]:
    previous = 0
    for node in root.walk():
        if re.fullmatch(r"h[1-6]", node.tag):
            level = int(node.tag[1])
            if level > previous + 1:
                expected = f"h{previous + 1}" if previous else "h1"
                yield EmailProblem(
                    "headings",
                    f"<{node.tag}> {node.text()[:50]!r} follows h{previous or '-'}: expected {expected}",
                )
            previous = level


def _check_links(root: Node) -> Iterator[EmailProblem]:
    for node in root.walk():
        if node.tag != "a" or "href" not in node.attrs:
            continue
        href = node.attrs["href"].strip()
        text = node.attrs.get("aria-label") or node.text()
        plain = re.sub(r"[^\w\s]", "", text).strip().casefold()
        if href.lower().startswith("javascript:"):
            yield EmailProblem("script", f"a link runs javascript: {href[:60]!r}")
        if not plain:
            yield EmailProblem("link-text", f"a link to {href[:80]!r} has no text")
        elif plain in VAGUE_LINK_TEXT:
            yield EmailProblem(
                "link-text", f"link text {text!r} says nothing about where it goes ({href[:80]})"
            )


def _check_document(nodes: list[Node], lang: str | None) -> Iterator[EmailProblem]:
    html_node = next((n for n in nodes if n.tag == "html"), None)
    found_lang = html_node.attrs.get("lang", "") if html_node else ""
    if not found_lang or found_lang == "und":
        yield EmailProblem("lang", "<html> has no lang attribute (screen readers guess the language)")
    elif lang and found_lang.lower() != lang.lower():
        yield EmailProblem("lang", f'<html lang="{found_lang}">, expected "{lang}"')
    title = next((n for n in nodes if n.tag == "title"), None)
    if title is None or not title.text():
        yield EmailProblem("title", "<title> is missing or empty")
    metas = {n.attrs.get("name", "").lower(): n.attrs.get("content", "") for n in nodes if n.tag == "meta"}
    if "light" not in metas.get("color-scheme", ""):
        yield EmailProblem("color-scheme", 'no <meta name="color-scheme" content="light dark">')


def _check_elements(nodes: list[Node]) -> Iterator[EmailProblem]:
    tables = sum(1 for n in nodes if n.tag == "table" and n.attrs.get("role") != "presentation")
    if tables:
        yield EmailProblem("tables", f'{tables} layout <table> element(s) lack role="presentation"')
    for node in nodes:
        if node.tag == "img" and "alt" not in node.attrs:
            yield EmailProblem("alt", f"<img src={node.attrs.get('src', '')[:80]!r}> has no alt")
        elif node.tag == "script":
            yield EmailProblem("script", "<script> in an email (every client strips or blocks it)")
        elif node.tag == "link" and "stylesheet" in node.attrs.get("rel", "").lower():
            yield EmailProblem("stylesheet", f"external stylesheet {node.attrs.get('href', '')!r}")
        handlers = sorted(a for a in node.attrs if a.startswith("on"))
        if handlers:
            yield EmailProblem("script", f"<{node.tag}> has event handler {handlers[0]}")


def check_email(html: str, *, lang: str | None = None) -> tuple[EmailProblem, ...]:
    """Every problem found in a final HTML email; an empty tuple means it passes.

    `lang` is the expected `<html lang>` (from the config's locale); None only requires one.
    """
    problems: list[EmailProblem] = []
    size = len(html.encode("utf-8"))
    if size > SIZE_LIMIT:
        problems.append(
            EmailProblem("size", f"{size / 1024:.1f} KB is over the {SIZE_LIMIT // 1024} KB Gmail clips at")
        )
    if "<mj-" in html:
        problems.append(EmailProblem("mjml", "unconverted MJML tag in the output (a misspelt mj- element?)"))
    doc = parse_html(html)
    problems += _check_doctype(doc.doctype)
    nodes = list(doc.root.walk())
    problems += _check_document(nodes, lang)
    problems += _check_elements(nodes)
    if any("@import" in css for css in doc.styles):
        problems.append(EmailProblem("stylesheet", "@import of an external stylesheet in a <style>"))
    problems += _check_headings(doc.root)
    problems += _check_links(doc.root)
    problems += _check_contrast(doc.root)
    problems += _check_dark_mode(doc.styles)
    return tuple(problems)
