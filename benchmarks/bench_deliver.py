"""Deliver: 100,000 personalised messages vs one EmailMessage each; SMTP pool vs one vs new connections.

Part 1 builds every message of the sample issue the way `digest send` does (pre-encoded pieces joined
around the personal parts, with a signed unsubscribe token each), streaming: nothing is kept. The
baseline, measured in the same run, builds one `email.message.EmailMessage` per recipient and
serialises it. Targets: at least 5,000 messages/s, at least 50 times the baseline, peak RSS under 300 MB.

Part 2 sends 2,000 messages of about 60 KB to a local aiosmtpd (a separate process that discards
them) through the transport's pool, through one reused connection, and with a new connection per
message.

Part 1 measures the sample issue `digest build` makes from the shipped config (`make run`), and an
issue of the same shape grown to about 190 KB of HTML (the size quoted in issue 4).
"""

from __future__ import annotations

import email.policy
import html
import resource
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Any

from digest.config import SmtpSettings
from digest.deliver import Job, MessageTemplate, Recipient, Sender, SmtpTransport, tokens
from digest.models import NAME_PLACEHOLDER, UNSUBSCRIBE_URL_PLACEHOLDER
from digest.state.store import open_store

REPO = Path(__file__).resolve().parent.parent
MESSAGES = 100_000
NAIVE_MESSAGES = 300
SMTP_MESSAGES = 2_000
SERVER_LATENCY = 0.01
SECRET = "benchmark-secret"  # noqa: S105 - a fixed signing key for the benchmark only
BASE_URL = "https://news.blmk.example"
NOW = datetime(2025, 5, 9, 7, 0, tzinfo=UTC)
SENDER = Sender(
    from_address="news@blmk.example",
    from_name="BLMK Health and Care Partnership",
    reply_to="comms@blmk.example",
    list_id="weekly.news.blmk.example",
    list_name="BLMK Health and Care Partnership weekly news",
    unsubscribe_mailto="unsubscribe@blmk.example",
)
_STORY = (
    '<tr><td class="card" style="padding:16px 24px;background:#FFFFFF;font-family:Arial,Helvetica,sans-serif;'
    'color:#212B32;font-size:16px;line-height:24px"><p style="margin:0 0 4px;color:#4C6272;font-size:14px">'
    'News \u00b7 {day} May 2025</p><h3 style="margin:0 0 8px;font-size:20px;line-height:28px">'
    '<a href="https://www.blmkhealthandcarepartnership.org/news/story-{i}/" style="color:#005EB8;'
    'text-decoration:underline">{title}</a></h3><p style="margin:0 0 12px">{summary}</p>'
    '<p style="margin:0"><a href="https://www.blmkhealthandcarepartnership.org/news/story-{i}/" '
    'style="color:#005EB8">Read more<span style="position:absolute;left:-9999px"> about {title}</span>'
    "</a></p></td></tr>\n"
)


def _feed_texts() -> list[tuple[str, str]]:
    """(title, summary) pairs from the shipped sample feed, so the synthetic issue carries real text."""
    import re

    data = (REPO / "feeds" / "news.xml").read_text(encoding="utf-8", errors="replace")
    titles = re.findall(r"<title>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</title>", data, re.S)[1:]
    summaries = re.findall(r"<description>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</description>", data, re.S)[1:]
    strip = re.compile(r"<[^>]+>|\s+")
    pairs = [
        (html.escape(strip.sub(" ", t).strip()), html.escape(strip.sub(" ", s).strip()[:240]))
        for t, s in zip(titles, summaries, strict=False)
    ]
    return pairs or [("Maternity services expand in Luton", "Midwives welcome families \u2013 \u00a32.5m.")]


def synthetic_issue(target_bytes: int) -> tuple[str, str, str]:
    """(html, text, subject) of an issue shaped like render's output, grown to about `target_bytes`."""
    pairs = _feed_texts()
    head = (
        '<!DOCTYPE html><html lang="en-GB" xmlns="http://www.w3.org/1999/xhtml"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1"><title>BLMK weekly news</title>'
        "<style>@media only screen and (max-width:480px){.card{padding:12px!important}}</style></head>"
        '<body style="margin:0;padding:0;background:#F0F4F5"><div style="display:none;max-height:0;'
        'overflow:hidden">Start Well, Live Well and more from across BLMK this week</div>'
        '<table role="presentation" width="600" align="center" style="width:600px">'
        f'<tr><td style="padding:24px"><p>Hello {NAME_PLACEHOLDER},</p></td></tr>\n'
    )
    foot = (
        '<tr><td style="padding:24px;font-size:14px;color:#4C6272">You receive this email because you signed'
        " up for news from the BLMK Health and Care Partnership. "
        f'<a href="{UNSUBSCRIBE_URL_PLACEHOLDER}" style="color:#005EB8">Unsubscribe</a></td></tr>'
        "</table></body></html>\n"
    )
    stories: list[str] = []
    text_lines = [f"Hello {NAME_PLACEHOLDER},", ""]
    i = 0
    while len(head) + sum(map(len, stories)) + len(foot) < target_bytes:
        title, summary = pairs[i % len(pairs)]
        stories.append(_STORY.format(i=i, day=1 + i % 28, title=title, summary=summary))
        text_lines += [html.unescape(title), html.unescape(summary), f"https://example.org/news/{i}", ""]
        i += 1
    text_lines.append(f"Unsubscribe: {UNSUBSCRIBE_URL_PLACEHOLDER}")
    subject = "BLMK Health and Care Partnership weekly news \u2013 9 May 2025"
    return head + "".join(stories) + foot, "\n".join(text_lines) + "\n", subject


def sample_issues() -> list[tuple[str, str, str, str]]:
    """(html, text, subject, label) of each issue to measure: the built sample, and a 190 KB issue."""
    issues = []
    try:
        from digest.pipeline import build
    except ImportError:
        print("  (the build stage is not installed: only the synthetic issue is measured)")
    else:
        try:
            issues.append(_built_sample(build))
        except Exception as e:  # noqa: BLE001 - measure the synthetic issue anyway, and say so
            print(f"  (building the sample issue failed: {e}; only the synthetic issue is measured)")
    html_body, text, subject = synthetic_issue(190_000)
    issues.append((html_body, text, subject, "a 190 KB issue of the same shape (the size in issue 4)"))
    return issues


def _built_sample(build: Any) -> tuple[str, str, str, str]:
    from digest.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "feeds", root / "feeds")
        shutil.copy(REPO / "config.toml", root / "config.toml")
        if (REPO / "templates").is_dir():
            shutil.copytree(REPO / "templates", root / "templates")
        config = load_config(root / "config.toml")
        db = open_store(config)
        as_of = datetime.fromisoformat("2025-05-09T17:00:00+01:00")
        outcome = build.build_issue(config, db, now=datetime.now(UTC), as_of=as_of)
        built = outcome.built
        folder = built.folder
        html_body = (folder / "email.html").read_text(encoding="utf-8")
        text = (folder / "email.txt").read_text(encoding="utf-8")
        return html_body, text, built.issue.subject, f"the sample issue {folder.name} built by digest build"


def _recipient(i: int) -> Recipient:
    return Recipient(f"reader{i:06d}@example.org", f"Reader {i}", f"{i:032x}")


def fast_rate(template: MessageTemplate, count: int) -> tuple[float, int]:
    """Messages/s building `count` complete messages, each with its own signed token; total bytes."""
    total = 0
    date = format_datetime(NOW)
    start = time.perf_counter()
    for i in range(count):
        recipient = _recipient(i)
        url = tokens.unsubscribe_url(BASE_URL, tokens.unsubscribe_token(SECRET, str(recipient.token_id)))
        total += len(
            template.message(recipient, unsubscribe_url=url, message_id=template.new_message_id(), date=date)
        )
    return count / (time.perf_counter() - start), total


def naive_rate(html_body: str, text: str, subject: str, count: int) -> float:
    """Messages/s building one EmailMessage per recipient and serialising it (the baseline)."""
    policy = email.policy.SMTP.clone(max_line_length=998)
    start = time.perf_counter()
    for i in range(count):
        recipient = _recipient(i)
        url = tokens.unsubscribe_url(BASE_URL, tokens.unsubscribe_token(SECRET, str(recipient.token_id)))
        message = EmailMessage(policy=policy)
        message["From"] = formataddr((SENDER.from_name, SENDER.from_address))
        message["To"] = formataddr((recipient.name, recipient.email))
        message["Subject"] = subject
        message["Date"] = format_datetime(NOW)
        message["Message-ID"] = make_msgid(domain="blmk.example")
        message["List-Id"] = f"<{SENDER.list_id}>"
        message["List-Unsubscribe"] = f"<{url}>, <mailto:{SENDER.unsubscribe_mailto}?subject=unsubscribe>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        name = recipient.name or ""
        message.set_content(text.replace(NAME_PLACEHOLDER, name).replace(UNSUBSCRIBE_URL_PLACEHOLDER, url))
        personal = html_body.replace(NAME_PLACEHOLDER, html.escape(name))
        message.add_alternative(
            personal.replace(UNSUBSCRIBE_URL_PLACEHOLDER, html.escape(url)), subtype="html"
        )
        message.as_bytes()
    return count / (time.perf_counter() - start)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SINK = """
import asyncio, sys, threading
from aiosmtpd.controller import Controller

class Sink:
    async def handle_DATA(self, server, session, envelope):
        if {latency}:
            await asyncio.sleep({latency})
        return "250 OK"

Controller(Sink(), hostname="127.0.0.1", port={port}).start()
threading.Event().wait()
"""


def _start_sink(latency: float) -> tuple[subprocess.Popen[bytes], int]:
    """aiosmtpd in its own process, discarding what it receives after `latency` seconds per message."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", _SINK.format(latency=latency, port=port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):  # bounded wait for the port to open
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server, port
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("aiosmtpd did not start")


def _jobs(template: MessageTemplate, count: int) -> list[Job]:
    jobs = []
    for i in range(count):
        recipient = _recipient(i)
        url = tokens.unsubscribe_url(BASE_URL, tokens.unsubscribe_token(SECRET, str(recipient.token_id)))
        message_id = template.new_message_id()
        data = template.message(recipient, unsubscribe_url=url, message_id=message_id, date=NOW)
        jobs.append(Job(recipient, message_id, data))
    return jobs


def smtp_rates(port: int, jobs: list[Job]) -> dict[str, float]:
    settings = SmtpSettings(
        host="127.0.0.1", port=port, security="none", pool_size=4, rate_per_second=1_000_000.0, retries=0
    )
    rates: dict[str, float] = {}
    for label, pool in (("pool of 4 connections", 4), ("one reused connection", 1)):
        transport = SmtpTransport(replace(settings, pool_size=pool), envelope_from=SENDER.from_address)
        start = time.perf_counter()
        accepted = sum(1 for d in transport.send(jobs) if d.accepted)
        rates[label] = len(jobs) / (time.perf_counter() - start)
        assert accepted == len(jobs), f"{label}: only {accepted} accepted"
    start = time.perf_counter()
    for job in jobs:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as conn:
            conn.sendmail(SENDER.from_address, [job.recipient.email], job.message)
    rates["new connection per message"] = len(jobs) / (time.perf_counter() - start)
    return rates


def measure_issue(html_body: str, text: str, subject: str, label: str) -> None:
    template = MessageTemplate(
        html_body=html_body, text_body=text, subject=subject, sender=SENDER, issue_id="2025-W19"
    )
    size = len(template.message(_recipient(0), unsubscribe_url=BASE_URL, message_id="<x@y>", date=NOW))
    print(f"  {label}: HTML {len(html_body.encode()) / 1000:.0f} KB, message {size / 1000:.0f} KB")
    fast, total = fast_rate(template, MESSAGES)
    naive = naive_rate(html_body, text, subject, NAIVE_MESSAGES)
    gigabytes = total / 1e9
    print(
        f"    pre-encoded pieces: {MESSAGES:,} messages ({gigabytes:.2f} GB serialised) at {fast:,.0f} msg/s"
    )
    print(f"    naive EmailMessage per recipient ({NAIVE_MESSAGES} messages): {naive:,.1f} msg/s")
    print(
        f"    ratio {fast / naive:,.0f}x (target >= 50x: {'met' if fast / naive >= 50 else 'NOT MET'});"
        f" rate target >= 5,000 msg/s: {'met' if fast >= 5000 else 'NOT MET'}"
    )


def main() -> None:
    for html_body, text, subject, label in sample_issues():
        measure_issue(html_body, text, subject, label)
    rss = peak_rss_mb()
    verdict = "met" if rss < 300 else "NOT MET"
    print(f"  peak RSS of the whole run so far: {rss:.0f} MB (target < 300 MB: {verdict})")

    small_html, small_text, small_subject = synthetic_issue(40_000)
    small = MessageTemplate(
        html_body=small_html, text_body=small_text, subject=small_subject, sender=SENDER, issue_id="2025-W19"
    )
    jobs = _jobs(small, SMTP_MESSAGES)
    size = sum(len(j.message) for j in jobs) / len(jobs)
    for latency, what in (
        (0.0, "replying at once"),
        (SERVER_LATENCY, "taking 10 ms per message, like an MTA"),
    ):
        server, port = _start_sink(latency)
        try:
            rates = smtp_rates(port, jobs)
        finally:
            server.terminate()
            server.wait(timeout=10)
        print(f"  SMTP: {SMTP_MESSAGES:,} messages of {size / 1000:.0f} KB to a local aiosmtpd {what}:")
        baseline = rates["new connection per message"]
        for label, rate in rates.items():
            print(
                f"    {label:28s} {rate:8,.0f} msg/s  ({rate / baseline:.2f}x a new connection per message)"
            )
        pooled = rates["pool of 4 connections"] / rates["one reused connection"]
        print(f"    pool vs one reused connection: {pooled:.2f}x")


if __name__ == "__main__":
    main()
