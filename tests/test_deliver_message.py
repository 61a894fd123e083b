"""Messages built from pre-encoded pieces: headers, both parts, personalisation, no header injection."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from send_support import parse, parts, sample_html, sample_text

from digest.deliver import MessageTemplate, Recipient, Sender
from digest.deliver.headers import HeaderValueError
from digest.deliver.signing import DkimSigner
from digest.models import NAME_PLACEHOLDER, UNSUBSCRIBE_URL_PLACEHOLDER

SENDER = Sender(
    from_address="news@blmk.example",
    from_name="BLMK Health and Care Partnership",
    reply_to="comms@blmk.example",
    list_id="weekly.news.blmk.example",
    list_name="BLMK weekly news",
    unsubscribe_mailto="unsubscribe@blmk.example",
)
URL = "https://news.blmk.example/unsubscribe?token=eyJlbWFpbCI6ImphbmVAZXhhbXBsZS5vcmcifQ.abc-DEF_123"
DATE = datetime(2025, 5, 9, 7, 0, tzinfo=UTC)


def template(
    subject: str = "BLMK weekly news: 9 May", *, html_body: str = "", text_body: str = ""
) -> MessageTemplate:
    return MessageTemplate(
        html_body=html_body or sample_html(),
        text_body=text_body or sample_text(),
        subject=subject,
        sender=SENDER,
        issue_id="2025-W19",
    )


def build(t: MessageTemplate, recipient: Recipient, url: str = URL) -> bytes:
    return t.message(recipient, unsubscribe_url=url, message_id=t.new_message_id(), date=DATE)


def test_message_has_every_header_and_both_parts_in_order() -> None:
    t = template()
    data = build(t, Recipient("jane@example.org", "Jane Smith"))
    message = parse(data)
    assert message["From"] == "BLMK Health and Care Partnership <news@blmk.example>"
    assert message["To"] == "Jane Smith <jane@example.org>"
    assert message["Subject"] == "BLMK weekly news: 9 May"
    assert message["Date"] == "Fri, 09 May 2025 07:00:00 +0000"
    assert re.fullmatch(r"<2025-W19\.[0-9a-f]{20}@blmk\.example>", message["Message-ID"])
    assert message["MIME-Version"] == "1.0"
    assert message["Reply-To"] == "comms@blmk.example"
    assert message["List-Id"] == "BLMK weekly news <weekly.news.blmk.example>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # The raw header, unfolded: both URIs, https first, never an encoded word (RFC 8058 needs it plain).
    raw = re.search(rb"^List-Unsubscribe: (.*?)\r\n(?![ \t])", data, re.M | re.S)
    assert raw is not None
    value = re.sub(rb"\r\n[ \t]", b" ", raw.group(1)).decode()
    assert value == f"<{URL}>, <mailto:unsubscribe@blmk.example?subject=unsubscribe>"
    assert b"=?" not in raw.group(1)
    text, body = parts(message)
    assert text.startswith("Hello Jane Smith,\n")
    assert f"Unsubscribe: {URL}\n" in text
    assert ".starts with a dot\nFrom the start of a line\n" in text
    assert "<p>Hello Jane Smith,</p>" in body
    assert f'<a href="{html.escape(URL)}" style="color:#005EB8">Unsubscribe</a>' in body
    assert NAME_PLACEHOLDER not in data.decode("ascii") and UNSUBSCRIBE_URL_PLACEHOLDER not in text + body
    assert body == sample_html().replace(NAME_PLACEHOLDER, "Jane Smith").replace(
        UNSUBSCRIBE_URL_PLACEHOLDER, html.escape(URL)
    )
    assert text == sample_text().replace(NAME_PLACEHOLDER, "Jane Smith").replace(
        UNSUBSCRIBE_URL_PLACEHOLDER, URL
    )


def test_every_line_is_crlf_ascii_and_short() -> None:
    data = build(template(), Recipient("jane@example.org", "Zoë O\u2019Brien"))
    assert data.isascii()
    assert b"\n" not in data.replace(b"\r\n", b"")
    head, body = data.split(b"\r\n\r\n", 1)
    assert max(len(line) for line in head.split(b"\r\n")) <= 998  # a long List-Unsubscribe URL is one token
    assert max(len(line) for line in body.split(b"\r\n")) <= 76  # quoted-printable lines


def test_names_are_html_escaped_in_html_and_plain_in_text() -> None:
    data = build(template(), Recipient("tom@example.org", 'Tom <b>"&" Jerry</b>'))
    text, body = parts(parse(data))
    assert 'Hello Tom <b>"&" Jerry</b>,' in text
    assert "<p>Hello Tom &lt;b&gt;&quot;&amp;&quot; Jerry&lt;/b&gt;,</p>" in body
    assert "<b>" not in body.split("<p>Hello", 1)[1].split("</p>", 1)[0]


def test_missing_name_uses_the_fallback() -> None:
    text, body = parts(parse(build(template(), Recipient("x@example.org"))))
    assert text.startswith("Hello there,")
    assert "<p>Hello there,</p>" in body
    assert parse(build(template(), Recipient("x@example.org")))["To"] == "x@example.org"


def test_non_ascii_subject_and_name_are_rfc2047_encoded() -> None:
    subject = "Maternity \u2013 \u201cStart Well\u201d news from Luton & Dunstable, café edition " * 2
    data = build(template(subject), Recipient("zoe@example.org", "Zoë Łukasz"))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in head
    message = parse(data)
    assert message["Subject"] == subject.strip()
    assert str(message["To"]) == "Zoë Łukasz <zoe@example.org>"
    assert message["To"].addresses[0].addr_spec == "zoe@example.org"


@pytest.mark.parametrize(
    "name",
    [
        "Eve\r\nBcc: victim@example.org",
        "Eve\nX-Injected: yes",
        "Eve\rX-Injected: yes",
        "Eve\x00\x0bX-Injected: yes",
        "Eve\u2028X-Injected: yes",
        "Eve\x85X-Injected: yes",
    ],
)
def test_control_characters_in_a_name_never_create_a_header(name: str) -> None:
    data = build(template(), Recipient("eve@example.org", name))
    message = parse(data)
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert len(message.get_all("To") or []) == 1
    assert message["To"].addresses[0].addr_spec == "eve@example.org"
    text, _ = parts(message)
    assert "\nX-Injected" not in text and "\nBcc" not in text


def test_control_characters_in_the_subject_never_create_a_header() -> None:
    data = build(template("News\r\nBcc: all@example.org\r\n\r\nbody"), Recipient("a@example.org"))
    message = parse(data)
    assert message["Bcc"] is None
    assert message["Subject"] == "News Bcc: all@example.org body"


@pytest.mark.parametrize(
    "address",
    ["eve@example.org\r\nBcc: x@example.org", "eve@example.org>, <x@example.org", "eve example@x.org"],
)
def test_a_bad_recipient_address_is_refused(address: str) -> None:
    with pytest.raises(HeaderValueError, match="To"):
        build(template(), Recipient(address))


def test_bad_configured_addresses_are_refused_naming_the_setting() -> None:
    from dataclasses import replace

    with pytest.raises(HeaderValueError, match=r"delivery\.from_address"):
        MessageTemplate(
            html_body="x",
            text_body="y",
            subject="s",
            sender=replace(SENDER, from_address="a@b\r\nBcc: c@d"),
            issue_id="i",
        )
    with pytest.raises(HeaderValueError, match="list_id"):
        MessageTemplate(
            html_body="x",
            text_body="y",
            subject="s",
            sender=replace(SENDER, list_id="bad id\r\nX: y"),
            issue_id="i",
        )


def test_a_bad_unsubscribe_url_is_refused() -> None:
    with pytest.raises(HeaderValueError):
        build(template(), Recipient("a@example.org"), url="https://x.example/u?t=a\r\nBcc: b@example.org")


def test_message_ids_are_unique() -> None:
    t = template()
    ids = {t.new_message_id() for _ in range(10_000)}
    assert len(ids) == 10_000


def test_boundary_never_occurs_in_the_bodies() -> None:
    t = template()
    data = build(t, Recipient("a@example.org", "--=_digest_"))
    boundary = parse(data).get_boundary()
    assert boundary is not None and boundary.startswith("=_digest_")
    assert data.count(f"--{boundary}".encode()) == 3


def test_has_unsubscribe_link_needs_the_placeholder_in_both_parts() -> None:
    assert template().has_unsubscribe_link
    assert not template(html_body="<p>no link</p>").has_unsubscribe_link


def test_dkim_signature_covers_the_list_headers_and_verifies(tmp_path: Path) -> None:
    import base64
    import shutil
    import subprocess

    import dkim

    openssl = shutil.which("openssl")
    assert openssl
    key = tmp_path / "dkim.pem"
    subprocess.run([openssl, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        [openssl, "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    signer = DkimSigner(key, "digest2026", "blmk.example")
    signed = signer.sign(build(template(), Recipient("jane@example.org", "Jane")))
    assert signed.startswith(b"DKIM-Signature:")
    head = signed.split(b"\r\n\r\n", 1)[0].decode().lower()
    signed_list = re.sub(r"\s+", "", head.split(" h=", 1)[1].split(";", 1)[0])
    for name in ("list-unsubscribe", "list-unsubscribe-post", "from", "subject", "to"):
        assert name in signed_list.split(":")

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"digest2026._domainkey.blmk.example."
        return record

    assert dkim.verify(signed, dnsfunc=dns)
    tampered = signed.replace(
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: x"
    )
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_a_bad_dkim_key_is_a_clear_error(tmp_path: Path) -> None:
    from digest.errors import DeliveryError

    key = tmp_path / "bad.pem"
    key.write_text("not a key")
    with pytest.raises(DeliveryError, match="DKIM"):
        DkimSigner(key, "s", "blmk.example")
    with pytest.raises(DeliveryError, match="cannot read"):
        DkimSigner(tmp_path / "missing.pem", "s", "blmk.example")


_body_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300).map(
    lambda s: s.replace("\r", "")
)


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(_body_text, min_size=1, max_size=5),
    slots=st.lists(st.sampled_from([NAME_PLACEHOLDER, UNSUBSCRIBE_URL_PLACEHOLDER]), min_size=5, max_size=5),
    name=st.text(max_size=80),
)
def test_substitution_equals_naive_replacement(chunks: list[str], slots: list[str], name: str) -> None:
    """Whatever the bodies and the name, the decoded parts equal a plain string replacement."""
    body = chunks[0]
    for chunk, slot in zip(chunks[1:], slots, strict=False):
        body += slot + chunk
    body += UNSUBSCRIBE_URL_PLACEHOLDER
    t = template(html_body=body, text_body=body)
    data = build(t, Recipient("a@example.org", name))
    assert data.isascii()
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    text, html_part = parts(parse(data))
    from digest.deliver.headers import clean_text

    shown = clean_text(name) or "there"
    expected = body.replace(NAME_PLACEHOLDER, "\0N").replace(UNSUBSCRIBE_URL_PLACEHOLDER, "\0U")
    assert text == expected.replace("\0N", shown).replace("\0U", URL)
    assert html_part == expected.replace("\0N", html.escape(shown)).replace("\0U", html.escape(URL))


@pytest.mark.parametrize(
    ("code", "message", "bounce"),
    [
        (550, "5.1.1 <a@example.org>: Recipient address rejected: User unknown", True),
        (550, "Mailbox unavailable", True),
        (553, "mailbox name not allowed", True),
        (551, "User not local", True),
        (550, "5.7.1 Message rejected as spam", False),
        (552, "5.2.2 Mailbox full", False),
        (554, "Transaction failed", False),
        (450, "4.1.1 try later", False),
    ],
)
def test_hard_bounces_are_refusals_of_the_address(code: int, message: str, bounce: bool) -> None:
    from digest.deliver.transport import is_hard_bounce

    assert is_hard_bounce(code, message.encode()) is bounce


def test_the_rate_limiter_spaces_messages_evenly() -> None:
    from digest.deliver.smtp import RateLimiter

    now = [100.0]
    waits: list[float] = []

    class Stop:
        def wait(self, seconds: float) -> bool:
            waits.append(round(seconds, 6))
            return False

    limiter = RateLimiter(4.0, monotonic=lambda: now[0])
    for _ in range(5):
        limiter.wait(Stop())  # type: ignore[arg-type]
    assert waits == [0.25, 0.5, 0.75, 1.0]  # the first goes at once
    now[0] += 10.0  # after a quiet spell there is no burst of catch-up, the next goes at once
    limiter.wait(Stop())  # type: ignore[arg-type]
    assert waits == [0.25, 0.5, 0.75, 1.0]
