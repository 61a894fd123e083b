"""What keeps ingestion fast without changing its results: parse workers start with everything they run
already imported; the shortcuts in cleaning and feedparser's URI resolution give what the long way gave."""

from __future__ import annotations

import copy
import html
import pickle
import re
import subprocess
import sys
import unicodedata
from datetime import UTC, datetime

import feedparser.mixin
import feedparser.urls
import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.ingest import fetch
from digest.ingest.clean import clean_title, collapse, normalised_title
from digest.ingest.parse import ParseContext
from digest.ingest.parse.feeds import parse_xml_feed
from digest.pipeline.ingest import PARSE_WORKER_PRELOAD, parse_documents
from digest.safe_text import _UNSAFE, _replace, scrub_text, scrub_tree

NOW = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)
FEED = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><link>https://example.org/</link>'
    b"<item><title>One</title><link>https://example.org/1</link><description>Hello</description></item>"
    b"</channel></rss>"
)
# Run in a fresh interpreter, as a fork server does: import the preload, then unpickle and run one parse
# job the way a worker does; print every module that the job imported besides.
WORKER = """
import importlib, pickle, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
before = set(sys.modules)
function, args = pickle.loads(sys.stdin.buffer.read())
entries = function(*args)
assert [e.title for e in entries] == ["One"], entries
print("\\n".join(sorted(set(sys.modules) - before)))
"""


def test_a_parse_worker_imports_nothing_beyond_the_fork_server_preload() -> None:
    """Each worker used to import digest.pipeline.ingest (and httpx) itself before its first parse."""
    ctx = ParseContext(source="Feed", category="News", url="https://example.org/feed.xml", seen_at=NOW)
    document = fetch.Document(location="https://example.org/feed.xml", body=FEED, content_type=None)
    job = pickle.dumps((parse_documents, ((document,), ctx, "http")))
    done = subprocess.run(
        [sys.executable, "-c", WORKER, *PARSE_WORKER_PRELOAD],
        input=job,
        capture_output=True,
        check=True,
        timeout=120,
    )
    imported = [m for m in done.stdout.decode().split() if m.startswith(("digest", "httpx", "feedparser"))]
    assert imported == []


def _clean_title_long_way(raw: str) -> str:
    """clean_title without markup, as it was: every character's category looked up."""
    text = html.unescape(raw)
    if "&" in text and re.search(r"&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);", text):
        text = html.unescape(text)
    text = "".join(
        ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf") or ch in "\t\n\u200c\u200d"
    )
    return collapse(text)


def _normalised_title_long_way(title: str) -> str:
    text = unicodedata.normalize("NFKD", title)
    truncated = text.rstrip().endswith(("…", "..."))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = collapse(re.sub(r"[^\w\s]", " ", text))
    return f"{text}…" if truncated and text else text


TITLES = st.text(
    st.characters(codec="utf-8")
    | st.sampled_from(
        "\u0301\u0327\u00ad\u200b\u200e\u202e\u2028\x00\x1f\x7f\x85\xa0\t\n\r\u2019…é\ufdd0\uffff\ud800\U0001f600\U0001fffe\U0010ffff"
    )
)


@given(TITLES)
def test_normalised_title_matches_the_character_by_character_way(title: str) -> None:
    assert normalised_title(title) == _normalised_title_long_way(title)


@given(TITLES)
def test_clean_title_drops_control_and_format_characters_as_before(title: str) -> None:
    assert clean_title(title, markup=False) == _clean_title_long_way(title)


@given(TITLES)
def test_scrub_text_finds_what_the_whole_class_finds(text: str) -> None:
    """The BMP and astral searches that go first decide nothing the full character class would not."""
    assert scrub_text(text) == _UNSAFE.sub(_replace, text)


@given(st.recursive(TITLES, lambda kids: st.lists(kids) | st.dictionaries(st.text(max_size=3), kids)))
def test_scrub_tree_scrubs_every_string_as_scrub_text_does(tree: object) -> None:
    def long_way(value: object) -> object:
        if isinstance(value, str):
            return scrub_text(value)
        if isinstance(value, dict):
            return {k: long_way(v) for k, v in value.items()}
        if isinstance(value, list):
            return [long_way(v) for v in value]
        return value

    expected = long_way(copy.deepcopy(tree))
    assert scrub_tree(tree) == expected


URIS = st.sampled_from(
    [
        "",
        "https://example.org/a/b/",
        "http://example.org/a/../c?x=1#f",
        "/root",
        "rel/path",
        "../up",
        "javascript:alert(1)",
        "http://[::1",
        "https://example.org:99999/",
        "feed://example.org/x",
        "mailto:a@example.org",
        "//example.org/scheme-relative",
    ]
)


@given(URIS, URIS)
def test_feedparsers_uri_resolution_is_remembered_not_changed(base: str, uri: str) -> None:
    remembered = feedparser.mixin.make_safe_absolute_uri
    assert hasattr(remembered, "cache_info"), "digest.ingest.parse.feeds no longer remembers resolutions"
    assert remembered(base, uri) == feedparser.urls.make_safe_absolute_uri(base, uri)
    assert remembered(base, uri) == feedparser.urls.make_safe_absolute_uri(base, uri)


@pytest.mark.parametrize("run", [1, 2])
def test_xml_base_still_resolves_per_element_when_resolutions_are_remembered(run: int) -> None:
    """The same feed parsed twice (the second time from remembered resolutions) gives the same links."""
    body = (
        b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://example.org/a/">'
        b"<title>T</title><id>urn:t</id><updated>2025-05-01T00:00:00Z</updated>"
        b'<entry xml:base="b/"><title>One</title><id>urn:1</id><link href="one.html"/>'
        b"<updated>2025-05-01T00:00:00Z</updated></entry>"
        b'<entry xml:base="/c/"><title>Two</title><id>urn:2</id><link href="two.html"/>'
        b"<updated>2025-05-01T00:00:00Z</updated></entry></feed>"
    )
    ctx = ParseContext(source="Feed", category="News", url="https://example.org/feed.xml", seen_at=NOW)
    links = [e.link for e in parse_xml_feed(body, ctx).entries]
    assert links == ["https://example.org/a/b/one.html", "https://example.org/c/two.html"], run
