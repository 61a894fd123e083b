"""The pre-send link check covers every topic variant (issue 15 item 5): each distinct URL checked once,
each broken link reported against the copies of the issue that hold it."""

from __future__ import annotations

import html
import re
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from web_support import AS_OF, PREVIEW_NOW, axe_serious, preview_served, served, wait_for

from digest.checks.links import links_by_copy
from digest.compose.variants import variant_folder_name
from digest.config import load_config
from digest.state.store import open_store
from digest.web.app import create_preview_app
from digest.web.report import link_report
from digest.web.workspace import Workspace

AT = datetime(2025, 1, 1, tzinfo=UTC)


class Site:
    """A real http.server on 127.0.0.1, port 0, that counts the requests for each path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.base = ""


@pytest.fixture
def site() -> Iterator[Site]:
    state = Site()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def route(self) -> None:
            with state.lock:
                state.hits[f"{self.command} {self.path}"] += 1
            status = 404 if self.path == "/start-only" else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(b"ok")

        do_GET = route  # noqa: N815 - the name http.server dispatches to
        do_HEAD = route  # noqa: N815 - the name http.server dispatches to

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _project(root: Path, site: str) -> Path:
    """Four items in one section capped at two entries: the whole issue shows the newest two (one of no
    priority, one shared by both priorities); each variant shows its priority's two (the shared one and
    its own, which the whole issue's cap left out), so /start-only is in the Start Well variant alone and
    /age-only in the Age Well variant alone: a variant keeps the whole issue's cap, not more."""
    items = root / "items"
    items.mkdir()
    for name, day, title, path in (
        ("a-plain", "2025-05-08", "Roadworks on the A6 this summer", "/plain"),
        ("a-shared", "2025-05-07", "Midwives and dementia nurses team up", "/shared"),
        ("b-start", "2025-05-06", "Midwives open a new birth centre", "/start-only"),
        ("c-age", "2025-05-06", "A dementia cafe opens in Bedford", "/age-only"),
    ):
        (items / f"{name}.md").write_text(
            f"---\ntitle: {title}\ndate: {day}\nlink: {site}{path}\nsummary: News for the link check.\n---\n"
            "Body.\n",
            encoding="utf-8",
        )
    config = root / "config.toml"
    config.write_text(
        """
[digest]
section_cap = 2

[highlights]
max = 0

[[sources]]
name = "Curated"
url = "items/*.md"
category = "Campaigns and events"

[[priorities]]
name = "Start Well"
summary = "Every child has a strong, healthy start to life."
keywords = ["midwives"]

[[priorities]]
name = "Age Well"
summary = "Older people live well and independently."
keywords = ["dementia"]
""",
        encoding="utf-8",
    )
    with open_store(load_config(config)) as db:
        db.subscribers.upsert_subscriber("whole@example.org", name=None, at=AT)
        for i in range(3):
            db.subscribers.upsert_subscriber(f"start{i}@example.org", name=None, at=AT)
            db.topics.set_topics(f"start{i}@example.org", ["Start Well"])
        for i in range(2):
            db.subscribers.upsert_subscriber(f"age{i}@example.org", name=None, at=AT)
            db.topics.set_topics(f"age{i}@example.org", ["Age Well"])
    return config


def test_a_broken_link_only_in_a_variant_is_reported_against_it_and_each_url_is_checked_once(
    tmp_path: Path, site: Site
) -> None:
    config_path = _project(tmp_path, site.base)
    workspace = Workspace(config_path, clock=lambda: PREVIEW_NOW, as_of=AS_OF, offline=False)
    app = create_preview_app(workspace, watch_interval=3600)
    with served(app) as base, httpx.Client(base_url=base) as client:
        wait_for(lambda: workspace.snapshot.version >= 1, what="the first preview build", attempts=600)
        wait_for(lambda: workspace.links_version >= 1, what="the first link check", attempts=600)
        snapshot = workspace.snapshot
        assert snapshot.folder is not None
        whole = (snapshot.folder / "email.html").read_text(encoding="utf-8")
        start = (snapshot.folder / "variants" / variant_folder_name("Start Well") / "email.html").read_text()
        # The case this is about: the broken link is in the Start Well variant, not in the whole issue.
        assert f"{site.base}/shared" in whole
        assert f"{site.base}/start-only" not in whole
        assert f"{site.base}/start-only" in start
        fragment = html.unescape(client.get("/report/links").text)
        page = html.unescape(client.get("/").text)

    problem = f"variant 'Start Well' (3 readers): broken link {site.base}/start-only (HTTP 404)"
    for report in (fragment, page):
        assert problem in " ".join(re.sub(r"<[^>]+>", "", report).split())
        assert "<strong>1 broken</strong>" in report
        assert "each checked once" in report
        assert f"{site.base}/age-only</a></td><td>HTTP 200</td><td>variant 'Age Well'</td>" in report
        assert (
            f"{site.base}/shared</a></td><td>HTTP 200</td>"
            "<td>whole issue, variant 'Age Well', variant 'Start Well'</td>" in report
        )
        assert "whole issue (1 reader)" not in report  # the whole issue's one link works
    # Each distinct URL once, however many copies hold it (a 404 is asked again with GET, once).
    assert site.hits == Counter(
        {
            "HEAD /plain": 1,
            "HEAD /shared": 1,
            "HEAD /start-only": 1,
            "GET /start-only": 1,
            "HEAD /age-only": 1,
        }
    )


def test_an_approved_issue_held_by_the_preview_still_checks_its_variants_links(
    tmp_path: Path, site: Site
) -> None:
    config_path = _project(tmp_path, site.base)
    first = Workspace(config_path, clock=lambda: PREVIEW_NOW, as_of=AS_OF, check_links=False)
    built = first.rebuild(fetch=True)
    with open_store(load_config(config_path)) as db:
        assert built.issue is not None
        variants_sha256 = db.topics.fingerprint(built.issue.id)
    first.approve(
        "Priya",
        seen_html_sha256=built.html_sha256,
        seen_text_sha256=built.text_sha256,
        seen_variants_sha256=variants_sha256,
    )
    again = Workspace(config_path, clock=lambda: PREVIEW_NOW, as_of=AS_OF, offline=True, check_links=False)
    held = again.rebuild()
    assert held.held
    assert held.link_copies[f"{site.base}/start-only"] == ("Start Well",)
    assert held.link_copies[f"{site.base}/shared"] == ("", "Age Well", "Start Well")


def test_links_by_copy_keeps_each_url_once_with_every_copy_holding_it() -> None:
    copies = links_by_copy(
        (
            ("", ("https://a.example/", "https://b.example/")),
            ("X", ("https://b.example/", "https://c.example/")),
        )
    )
    assert copies == {
        "https://a.example/": ("",),
        "https://b.example/": ("", "X"),
        "https://c.example/": ("X",),
    }


def test_link_report_names_every_copy_a_broken_link_is_in() -> None:
    from digest.checks.links import LinkStatus

    broken = LinkStatus("https://b.example/", AT, status=500)
    fine = LinkStatus("https://a.example/", AT, status=200)
    rows, problems = link_report(
        [
            ("https://a.example/", fine, ("",)),
            ("https://b.example/", broken, ("", "Start Well; Age Well")),
            ("https://c.example/", None, ("Age Well",)),
        ],
        {"": 1, "Start Well; Age Well": 120, "Age Well": 2},
    )
    assert [r.broken for r in rows] == [False, True, False]
    assert rows[1].copies == ("whole issue", "variant 'Start Well; Age Well'")
    assert [str(p) for p in problems] == [
        "whole issue (1 reader): broken link https://b.example/ (HTTP 500)",
        "variant 'Start Well; Age Well' (120 readers): broken link https://b.example/ (HTTP 500)",
    ]


@pytest.mark.browser
def test_the_report_with_a_variants_broken_link_has_no_serious_accessibility_violations(
    browser: Any, tmp_path: Path, site: Site
) -> None:
    config_path = _project(tmp_path, site.base)
    with preview_served(config_path, check_links=True) as (base, _workspace):
        context = browser.new_context(bypass_csp=True, viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        try:
            page.goto(base)
            problems = page.locator("#link-problems li")
            assert problems.count() == 1
            assert problems.inner_text().startswith("variant 'Start Well' (3 readers): broken link")
            assert axe_serious(page) == []
            assert axe_serious(page, scheme="dark") == []
        finally:
            context.close()
