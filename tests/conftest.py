"""Shared test fixtures. In CI (CI=true) a browser or SMTP test that would skip fails instead."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from mail_servers import dovecot_server, postfix_server  # noqa: F401 - fixtures: private Postfix, Dovecot
from pg_server import postgres_db, postgres_url  # noqa: F401 - fixtures: a throwaway PostgreSQL

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
AXE_JS = REPO / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"


def require(condition: object, reason: str) -> None:
    """Skip the test when `condition` is false, except in CI, where the missing part is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI but missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless Debian Chromium driven by playwright (no browser download).

    Module-scoped: playwright's sync API keeps an asyncio loop running in the main thread while it is
    open, and a later test calling asyncio.run() (the fetch tests) would then fail.
    """
    require(CHROMIUM, "chromium is not installed (apt-get install -y chromium)")
    require(AXE_JS.exists(), "axe-core is not installed (make test runs npm ci in tests/js)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield OfflineBrowser(instance)
        finally:
            instance.close()


LOCAL_HOSTS = frozenset(("127.0.0.1", "localhost", "[::1]", "::1"))


def block_network(target: Any, blocked: list[str]) -> None:
    """Abort every request of `target` (a browser context or page) that leaves this machine.

    One route for every URL (`**/*`): a request to 127.0.0.1/localhost goes on (to any later route, then
    the network); any other http(s) or ws(s) request is aborted and its URL appended to `blocked`.
    """

    def route(r: Any) -> None:
        parts = urlsplit(r.request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and (parts.hostname or "") not in LOCAL_HOSTS:
            blocked.append(r.request.url)
            r.abort("internetdisconnected")
        else:
            r.fallback()

    target.route("**/*", route)


class OfflineBrowser:
    """The playwright Browser, with every context and page it makes cut off from the internet.

    `blocked` lists the URLs aborted so far (a test can assert its page tried none, or that one was caught).
    """

    def __init__(self, browser: Any) -> None:
        self._browser = browser
        self.blocked: list[str] = []

    def new_context(self, **options: Any) -> Any:
        context = self._browser.new_context(**options)
        block_network(context, self.blocked)
        return context

    def new_page(self, **options: Any) -> Any:
        page = self._browser.new_page(**options)  # in a context of its own, closed with the page
        block_network(page, self.blocked)
        return page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI, a skipped test marked browser or smtp is reported as a failure, never a skip."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    marked = item.get_closest_marker("browser") or item.get_closest_marker("smtp")
    if IN_CI and marked and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"browser/SMTP test skipped in CI: {report.longrepr}"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """("sqlite", the state file's path) or ("postgresql", the URL of a fresh database): what to open."""
    if request.param == "sqlite":
        yield "sqlite", tmp_path / "state.db"
    else:
        yield "postgresql", request.getfixturevalue("postgres_db")


@pytest.fixture
def store(backend: tuple[str, Any], tmp_path: Path) -> Iterator[Any]:
    """A migrated Store on each backend in turn (SQLite file, then a fresh real PostgreSQL database)."""
    from digest.state.backend import open_database
    from digest.state.store import Store

    kind, where = backend
    if kind == "sqlite":
        database = open_database(path=where)
    else:
        database = open_database(path=tmp_path / "unused.db", url=where)
    opened = Store(database)
    try:
        yield opened
    finally:
        opened.close()
