"""Markup of the built email that no browser here can judge: the preheader and its spacer, Outlook
desktop's table-cell separators and pill padding, the Apple/format-detection meta tags, and the sample
message's quoted-printable lines (issue 11, items 4, 6 and 11)."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest
from golden_cases import CASES, GOLDEN, build_case, load_case


def _html(case: str) -> str:
    return (GOLDEN / case / "expected" / "email.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES)
def test_the_preheader_is_hidden_everywhere_and_followed_by_a_spacer(case: str) -> None:
    html = _html(case)
    match = re.search(r'<div class="preheader"([^>]*)>(.*?)</div>', html, re.DOTALL)
    assert match, "no preheader"
    attributes, content = match.groups()
    assert 'aria-hidden="true"' in attributes
    assert "mso-hide:all" in attributes.replace(" ", "")
    assert "display:none" in attributes.replace(" ", "")
    assert content.count("&zwnj;&nbsp;") >= 60 or content.count("\u200c\u00a0") >= 60
    # The preheader comes before anything visible, such as "View this email in your browser".
    assert html.index('class="preheader"') < html.index("View this email in your browser")


@pytest.mark.parametrize("case", ["sample", "corpus-news"])
def test_separators_and_padding_are_on_table_cells_not_divs(case: str) -> None:
    html = _html(case)
    assert '<div class="item' not in html
    cells = re.findall(r'<td class="item( first)?"[^>]*style="([^"]*)"', html)
    assert cells
    for first, style in cells:
        assert "padding" in style
        assert ("border-top:1px solid" in style.replace(": ", ":")) != bool(first)
    for style in re.findall(r'<td class="pill"[^>]*style="([^"]*)"', html):
        assert "padding:2px 8px" in style
    assert not re.search(r"<div[^>]*style=\"[^\"]*(padding|border-top)", html.split("<body", 1)[1])


@pytest.mark.parametrize("case", CASES)
def test_apple_reformatting_and_format_detection_are_off(case: str) -> None:
    html = _html(case)
    head = html.split("</head>", 1)[0]
    assert '<meta name="x-apple-disable-message-reformatting"' in head
    assert re.search(r'<meta name="format-detection" content="telephone=no[^"]*"', head)


@pytest.mark.parametrize("case", ["sample", "corpus-news", "hostile"])
def test_the_sample_message_keeps_quoted_printable_lines_within_76(case: str, tmp_path: Path) -> None:
    _, outcome = build_case(load_case(case), tmp_path)
    assert outcome.built is not None
    raw = (outcome.built.folder / "email.eml").read_bytes()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"\r\n" in head and b"\n" not in head.replace(b"\r\n", b""), (
        "CRLF line ends, as digest send writes"
    )
    longest = max(len(line) for line in body.split(b"\r\n"))
    assert longest <= 76, f"a body line of {longest} characters"
    message = email.message_from_bytes(raw, policy=email.policy.default)
    parts = {p.get_content_type(): p for p in message.walk() if not p.is_multipart()}
    assert parts["text/plain"]["Content-Transfer-Encoding"] == "quoted-printable"
    html = parts["text/html"].get_content().replace("\r\n", "\n")
    built = (outcome.built.folder / "email.html").read_text(encoding="utf-8")
    assert html == built.replace("%%DIGEST_NAME%%", "Sam Sample").replace(
        "%%DIGEST_UNSUBSCRIBE_URL%%", _unsubscribe(html)
    )


def _unsubscribe(html: str) -> str:
    match = re.search(r'href="([^"]*/unsubscribe\?token=[^"]*)"', html)
    assert match
    return match.group(1).replace("&amp;", "&")
