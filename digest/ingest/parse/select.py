"""CSS selectors over parsed HTML (lxml + cssselect), with `selector@attribute` to take an attribute.

lxml with cssselect, not selectolax: premailer already brings both (no new dependency), libxml2's HTML parser
recovers from the broken markup real sites serve, and one parse serves selectors, feed-link discovery and
the article metadata extruct reads (extruct is built on lxml too). Its speed is measured by `make bench`
(bench_html: entries/s for a 100-item listing page beside feedparser reading the same items as RSS).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import lxml.html
from cssselect import GenericTranslator, SelectorError
from lxml import etree

from digest.errors import InvalidValueError, ParseError

_ATTRIBUTE = re.compile(r"^(?P<css>.*?)@(?P<attr>[A-Za-z_:][-A-Za-z0-9_:.]*)$", re.DOTALL)
_SPACE = re.compile(r"\s+")

Matcher = Callable[[Any], list[Any]]


def split_selector(value: str) -> tuple[str, str | None]:
    """("css", attribute or None) from "css@attribute" or "css"; an empty css means the element itself.

    Raises:
        InvalidValueError: the value is empty, or its CSS part is not a selector cssselect can read
            (the message says why; callers name the key or option it came from).
    """
    text = value.strip()
    if not text:
        raise InvalidValueError("is empty: give a CSS selector such as '.news-card' or 'a@href'")
    match = _ATTRIBUTE.match(text)
    css, attribute = (match["css"].strip(), match["attr"]) if match else (text, None)
    if css:
        _xpath(css)
    return css, attribute


@lru_cache(maxsize=256)
def _xpath(css: str) -> etree.XPath:
    try:
        expression = GenericTranslator().css_to_xpath(css, prefix="descendant-or-self::")
    except SelectorError as e:
        raise InvalidValueError(f"{css!r} is not a CSS selector digest can read ({e})") from e
    return etree.XPath(expression)


def parse_html(body: bytes | str, *, what: str) -> Any:
    """Parse a web page with lxml's forgiving HTML parser.

    Raises:
        ParseError: nothing that looks like HTML could be read (`what` names the source or file).
    """
    try:
        if isinstance(body, bytes):
            parser = lxml.html.HTMLParser(encoding=_declared_encoding(body), remove_comments=True)
            root = lxml.html.document_fromstring(body, parser=parser)
        else:
            root = lxml.html.document_fromstring(body)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError, LookupError, TypeError) as e:
        raise ParseError(f"{what}: not a web page lxml can read ({e or type(e).__name__})") from e
    if root is None:
        raise ParseError(f"{what}: not a web page lxml can read (empty document)")
    return root


_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def _declared_encoding(body: bytes) -> str | None:
    """The page's own charset (BOM, then <meta charset>), else UTF-8 when the bytes decode as UTF-8."""
    if body.startswith(b"\xef\xbb\xbf"):
        return "utf-8"
    match = _META_CHARSET.search(body[:4096])
    if match:
        name = match.group(1).decode("ascii").lower()
        try:
            "".encode(name)
        except LookupError:
            name = ""
        if name:
            return "cp1252" if name in ("iso-8859-1", "latin-1", "latin1", "us-ascii") else name
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def select_all(element: Any, css: str) -> list[Any]:
    """Every element matching `css` at or under `element` (document order); `element` itself for ""."""
    if not css:
        return [element]
    return [e for e in _xpath(css)(element) if isinstance(e, etree._Element)]


def select_value(element: Any, selector: str) -> tuple[str | None, Any | None]:
    """The first non-empty value of `selector` ("css" gives text, "css@attr" an attribute) under `element`,
    and the element it came from."""
    css, attribute = split_selector(selector)
    for found in select_all(element, css):
        value = found.get(attribute) if attribute else text_of(found)
        if value and value.strip():
            return value.strip(), found
    return None, None


def text_of(element: Any) -> str:
    """An element's visible text, whitespace collapsed (script and style left out)."""
    parts = [
        t
        for t in element.xpath(".//text()[not(ancestor::script) and not(ancestor::style)]")
        if isinstance(t, str)
    ]
    if element.tag in ("script", "style"):
        parts = []
    return _SPACE.sub(" ", "".join(parts)).strip()


def inner_html(element: Any) -> str:
    """An element's content as HTML (its own tag left out)."""
    text = element.text or ""
    return text + "".join(etree.tostring(child, encoding="unicode", method="html") for child in element)


def describe(element: Any) -> str:
    """A CSS selector for elements like `element`: its tag and classes ("article.news-card")."""
    classes = [
        c for c in (element.get("class") or "").split() if re.fullmatch(r"-?[_a-zA-Z][-_a-zA-Z0-9]*", c)
    ]
    return str(element.tag) + "".join(f".{c}" for c in classes[:3])
