"""Cleaning untrusted feed text: sanitised HTML (nh3), plain-text excerpts, titles and canonical links.

Every piece of HTML that reaches an email or a page goes through `sanitise_html` first. The allowlist keeps
structure and emphasis; it never keeps script, style, iframe, forms, event handlers or URLs with schemes other
than http, https and mailto. Relative URLs are resolved against the entry's base with `urljoin` here, once,
instead of by feedparser.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import nh3

ALLOWED_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "dd",
        "del",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "figcaption",
        "figure",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "ins",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "time",
        "tr",
        "u",
        "ul",
    }
)
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title", "hreflang"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "q": {"cite"},
    "blockquote": {"cite"},
    "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"},
    "time": {"datetime"},
    "td": {"colspan", "rowspan", "headers"},
    "th": {"colspan", "rowspan", "headers", "scope"},
    "ol": {"start", "reversed"},
    "*": {"lang", "dir"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
_URL_ATTRIBUTES = frozenset({"href", "src", "cite"})
# Removed with everything inside them, not just unwrapped.
_DROP_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math"}
)
_DROP_WITH_CONTENT_SET = set(_DROP_WITH_CONTENT)

# Query parameters that only track where a click came from; they are removed from canonical links.
_TRACKING_PREFIXES = ("utm_", "mtm_", "pk_", "hsa_", "_hs")
_TRACKING_NAMES = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "wickedid",
        "rb_clickid",
        "s_cid",
        "ncid",
        "cmpid",
        "ocid",
        "sr_share",
    }
)
_SPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")
# An absolute http(s) URL with a plain host and only characters that need no normalising.
_PLAIN_ABSOLUTE = re.compile(r"^https?://[A-Za-z0-9.-]+\.[A-Za-z]{2,}(:\d{1,5})?([/?#][!#-;=?-~]*)?$")
# A tag with quoted attribute values (which may hold ">"), as serialised by nh3/html5ever.
_ANY_TAG = re.compile(r"<(?:[^>\"']|\"[^\"]*\"|'[^']*')*>")
_BLOCK_TAG = re.compile(
    r"<(?:br|hr|/?(?:p|div|li|ul|ol|h[1-6]|blockquote|pre|tr|td|th|table|figure|figcaption|dd|dt|dl))\b"
    r"(?:[^>\"']|\"[^\"]*\"|'[^']*')*>",
    re.IGNORECASE,
)
_IMG_TAG = re.compile(r"<img\b(?:[^>\"']|\"[^\"]*\"|'[^']*')*>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"([A-Za-z_:][-\w:.]*)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+))")
_ELLIPSES = ("…", "...")
# No character below U+0300 is a combining mark: only the rest are looked up (titles are mostly Latin).
_MAYBE_COMBINING = re.compile("[\u0300-\U0010ffff]")
_PUNCTUATION = re.compile(r"[^\w\s]")


def absolute_url(value: str | None, base: str | None = None) -> str | None:
    """`value` resolved against `base`, or None unless the result is an http(s) URL with a host."""
    if not value:
        return None
    value = value.strip()
    if not value:
        return None
    if _PLAIN_ABSOLUTE.match(value):
        return value  # the common case, without urljoin's parsing
    try:
        joined = urljoin(base or "", value) if base else value
        parts = urlsplit(joined)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return joined


def canonical_link(value: str | None, base: str | None = None) -> str | None:
    """An absolute http(s) link with tracking parameters removed, scheme and host lower-cased.

    The result is what identifies a story across feeds; None when `value` is not an http(s) URL.
    """
    url = absolute_url(value, base)
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if port is not None and not (scheme == "http" and port == 80) and not (scheme == "https" and port == 443):
        host = f"{host}:{port}"
    if parts.username or parts.password:
        userinfo = parts.username or ""
        if parts.password:
            userinfo += f":{parts.password}"
        host = f"{userinfo}@{host}"
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith(_TRACKING_PREFIXES) and k.lower() not in _TRACKING_NAMES
    ]
    path = parts.path or "/"
    return urlunsplit((scheme, host, path, urlencode(query, doseq=True), parts.fragment))


def _filter_attribute(base: str | None) -> Callable[[str, str, str], str | None]:
    def check(tag: str, attribute: str, value: str) -> str | None:
        if attribute not in _URL_ATTRIBUTES:
            return value
        value = value.strip()
        if value.lower().startswith("mailto:") and tag == "a":
            return value
        return absolute_url(value, base)

    return check


def sanitise_html(fragment: str, base: str | None = None) -> str:
    """Untrusted HTML -> HTML safe to embed: allowlisted tags/attributes, http(s)/mailto absolute URLs.

    Relative `href`/`src` values are resolved against `base`; those that cannot be made absolute are dropped.
    """
    if not fragment or not fragment.strip():
        return ""
    cleaned = nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=_DROP_WITH_CONTENT_SET,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_filter_attribute(base),
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    return cleaned.strip()


def text_to_html(text: str) -> str:
    """Plain text -> escaped HTML paragraphs (blank lines separate paragraphs)."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "".join(f"<p>{html.escape(_SPACE.sub(' ', p))}</p>" for p in paragraphs)


class _TextExtractor(HTMLParser):
    _BLOCK = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "ul",
            "ol",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "blockquote",
            "pre",
            "tr",
            "td",
            "th",
            "table",
            "hr",
            "figure",
            "figcaption",
            "dd",
            "dt",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_WITH_CONTENT:
            self.skip += 1
        elif tag in self._BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_WITH_CONTENT:
            self.skip = max(0, self.skip - 1)
        elif tag in self._BLOCK:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def html_to_text(fragment: str) -> str:
    """The readable text of an HTML fragment, whitespace collapsed (script/style content left out)."""
    if not fragment:
        return ""
    parser = _TextExtractor()
    try:
        parser.feed(fragment)
        parser.close()
    except (AssertionError, ValueError):  # html.parser gives up on some malformed declarations
        return collapse(html.unescape(_TAG.sub(" ", fragment)))
    return collapse("".join(parser.parts))


def sanitised_text(safe_html: str) -> str:
    """The text of HTML that `sanitise_html` produced (well-formed, no script/style), quickly, by regex."""
    if "<" not in safe_html and "&" not in safe_html:
        return collapse(safe_html)
    return collapse(html.unescape(_ANY_TAG.sub("", _BLOCK_TAG.sub(" ", safe_html))))


_FIGCAPTION = re.compile(r"<figcaption\b.*?</figcaption\s*>", re.IGNORECASE | re.DOTALL)
# A photo credit or caption line: "Photo by ...", "Image: ...", "Illustration by X / The Verge",
# "Photograph: X/Getty Images", "(Credit: ...)".
_CREDIT = re.compile(
    r"^[(\[]?\s*(?:(?:photo|photograph|picture|image|illustration|graphic|video|main image|top image|"
    r"header image|lead image|credit|photo credit|image credit|photos|images)s?\s*(?::|by\b|courtesy\b|©)"
    r"|©|copyright\b|courtesy of\b)",
    re.IGNORECASE,
)
_CREDIT_MAX_CHARS = 160


def is_credit(text: str) -> bool:
    """True when a short block of text reads as a photo credit or caption rather than prose."""
    text = text.strip()
    return bool(text) and len(text) <= _CREDIT_MAX_CHARS and bool(_CREDIT.match(text))


def prose_text(safe_html: str) -> str:
    """The text of sanitised HTML as prose for an excerpt: block elements become sentences (a full stop
    is added where a block ends without punctuation), figure captions and photo credits are left out."""
    if "<" not in safe_html:
        return collapse(html.unescape(safe_html))
    without_captions = _FIGCAPTION.sub(" ", safe_html)
    blocks = [
        collapse(html.unescape(_ANY_TAG.sub("", block))) for block in _BLOCK_TAG.split(without_captions)
    ]
    out = ""
    for block in blocks:
        if not block or is_credit(block):
            continue
        if not out:
            out = block
        elif out[-1].isalnum() and _starts_sentence(block):
            out = f"{out}. {block}"  # "...would help them" + "Last week, ..." reads as two sentences
        else:
            out = f"{out} {block}"
    return out


def _starts_sentence(block: str) -> bool:
    first = block.lstrip("\"'\u2018\u201c\u00ab(")[:1]
    return first.isupper() or first.isdigit()


def rest_after_title(text: str, title: str) -> str:
    """The text an excerpt should show when `title` was made from the start of `text`: what follows the
    title (an ellipsis first when the title was cut mid-text), or "" when the title is all of it."""
    stem = title[:-1].rstrip() if title.endswith("…") else title
    if not stem or not text.startswith(stem):
        return text
    rest = text[len(stem) :].lstrip(" ,;:.-\u2013\u2014")
    if not rest:
        return ""
    return rest if title == stem else f"…{rest}"


def images(fragment: str) -> Iterator[dict[str, str]]:
    """The attributes of each <img> tag of an HTML fragment in order (names lower-cased, values unescaped),
    read as they are asked for (the first picture is often the one wanted)."""
    for tag in _IMG_TAG.finditer(fragment):
        attributes: dict[str, str] = {}
        for match in _ATTRIBUTE.finditer(tag.group(0), 4):
            value = match.group(2) if match.group(2) is not None else match.group(3) or match.group(4) or ""
            attributes.setdefault(match.group(1).lower(), html.unescape(value))
        yield attributes


def collapse(text: str) -> str:
    """Whitespace runs (including non-breaking spaces and line breaks) -> one space, trimmed."""
    return _SPACE.sub(" ", text.replace("\u00a0", " ")).strip()


def clean_title(raw: str | None, *, markup: bool = True) -> str:
    """A title as plain text: tags removed (when `markup`), entities decoded (twice-encoded too),
    control characters dropped and whitespace collapsed."""
    if not raw:
        return ""
    text = html_to_text(raw) if markup and "<" in raw else raw
    text = html.unescape(text)
    if "&" in text and re.search(r"&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);", text):
        text = html.unescape(text)
    # Control and format characters go (soft hyphens, bidi overrides), except the joiners emoji need.
    # Both are non-printable, so a printable title (nearly all of them) is not walked character by character.
    if not text.isprintable():
        text = "".join(
            ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf") or ch in "\t\n\u200c\u200d"
        )
    return collapse(text)


def excerpt(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a word boundary, ending with an ellipsis when cut."""
    text = collapse(text)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    cut = cut.rstrip(" ,;:.-\u2013\u2014([{'\"\u2018\u201c")
    return f"{cut}…"


def title_from_link(link: str | None) -> str:
    """A readable title from a link's last path segment ("get-up-to-date" -> "Get up to date"), or ""."""
    if not link:
        return ""
    path = urlsplit(link).path.rstrip("/")
    slug = path.rsplit("/", 1)[-1]
    slug = re.sub(r"\.(html?|php|aspx?)$", "", slug, flags=re.IGNORECASE)
    words = [w for w in re.split(r"[-_+\s]+", slug) if w]
    if len(words) < 2 or not any(re.search(r"[A-Za-z]{2,}", w) for w in words):
        return ""
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def derived_title(summary_text: str, link: str | None, fallback: str) -> str:
    """A title for an entry that has none: its link's slug when that reads as words
    ("get-up-to-date-on-jabs"), else the start of its text, else `fallback`."""
    from_link = title_from_link(link)
    if len(from_link.split()) >= 3:
        return from_link
    if summary_text:
        return excerpt(summary_text, 80)
    return from_link or fallback


def _without_combining(match: re.Match[str]) -> str:
    return "" if unicodedata.combining(match[0]) else match[0]


def normalised_title(title: str) -> str:
    """A title reduced for comparison: case-folded, accents and punctuation removed, a trailing ellipsis kept
    as a marker ("…") so a title cut short by a listing can match the full one."""
    text = unicodedata.normalize("NFKD", title)
    truncated = text.rstrip().endswith(_ELLIPSES)
    text = _MAYBE_COMBINING.sub(_without_combining, text).casefold()
    text = _PUNCTUATION.sub(" ", text)
    text = collapse(text)
    return f"{text}…" if truncated and text else text
