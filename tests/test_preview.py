"""The preview over HTTP: draft edits rebuild the real email; auto-reload, CSRF, access, errors, report."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from web_support import csrf_of, preview_served, sample_project, wait_for

from digest.cli import main
from digest.compose.draft import load_draft
from digest.errors import UsageError
from digest.state.store import open_store
from digest.web.security import require_access_token
from digest.web.workspace import Workspace

HIGHLIGHTS = "Our priorities in the news"


def highlights_of(email_html: str) -> str:
    """The text of the email's highlights block (from its heading to the next section heading)."""
    start = email_html.index(HIGHLIGHTS)
    end = email_html.find('<h2 class="h2"', start + 1)
    return re.sub(r"<[^>]+>", " ", email_html[start : end if end > 0 else None])


def post(client: httpx.Client, path: str, data: dict[str, object]) -> httpx.Response:
    token = csrf_of(client.get("/").text)
    return client.post(path, data={"csrf_token": token, **data})


def entries(workspace: Workspace) -> list[tuple[str, str]]:
    issue = workspace.snapshot.issue
    assert issue is not None
    return [(i.entry.id, i.entry.title) for i in issue.entries]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return sample_project(tmp_path)


@pytest.fixture
def preview(project: Path) -> Iterator[tuple[httpx.Client, Workspace]]:
    with preview_served(project) as (base, workspace), httpx.Client(base_url=base) as client:
        assert isinstance(workspace, Workspace)
        yield client, workspace


def test_the_page_shows_the_real_email_text_and_entries(preview: tuple[httpx.Client, Workspace]) -> None:
    client, workspace = preview
    snapshot = workspace.snapshot
    assert snapshot.issue is not None
    assert snapshot.folder is not None
    page = client.get("/")
    assert page.status_code == 200
    assert 'width="600"' in page.text
    assert 'width="375"' in page.text
    email = client.get("/email.html")
    on_disk = (snapshot.folder / "email.html").read_text()
    sample = on_disk.replace("%%DIGEST_NAME%%", "Sam Sample").replace(
        "%%DIGEST_UNSUBSCRIBE_URL%%", "http://127.0.0.1:8080/unsubscribe?token=preview-sample"
    )
    assert email.text.replace('<base target="_blank">', "") == sample
    assert "sandbox" in email.headers["content-security-policy"]
    text = client.get("/email.txt").text
    assert "Sam Sample" in text
    assert "%%DIGEST" not in text
    for item in snapshot.issue.entries:
        assert item.entry.title.replace("'", "&#39;").replace("&", "&amp;")[:30] in page.text
    for highlight in snapshot.issue.highlights:
        assert highlight.reason.replace("'", "&#39;") in page.text


def test_pin_puts_an_entry_in_the_highlights_of_the_rebuilt_email(
    preview: tuple[httpx.Client, Workspace],
) -> None:
    client, workspace = preview
    issue = workspace.snapshot.issue
    assert issue is not None
    highlighted = {h.item.entry.id for h in issue.highlights}
    entry_id, title = next((i, t) for i, t in entries(workspace) if i not in highlighted)
    before = workspace.snapshot.version
    response = post(client, "/draft/pin", {"entry": entry_id})
    assert response.status_code == 303
    assert workspace.snapshot.version > before
    assert workspace.snapshot.draft_file is not None
    assert load_draft(workspace.snapshot.draft_file).pinned == (entry_id,)
    email = client.get("/email.html").text
    assert title[:40] in highlights_of(email)
    page = client.get(response.headers["location"])
    assert "Pinned" in page.text


def test_drop_removes_an_entry_and_restore_brings_it_back(preview: tuple[httpx.Client, Workspace]) -> None:
    client, workspace = preview
    entry_id, title = entries(workspace)[0]
    post(client, "/draft/drop", {"entry": entry_id})
    assert entry_id not in [i for i, _ in entries(workspace)]
    assert title[:40] not in client.get("/email.html").text
    page = client.get("/").text
    assert "Dropped" in page
    post(client, "/draft/restore", {"entry": entry_id})
    assert entry_id in [i for i, _ in entries(workspace)]


def test_retag_and_intro_are_saved_to_the_draft(preview: tuple[httpx.Client, Workspace]) -> None:
    client, workspace = preview
    entry_id, _ = entries(workspace)[-1]
    post(client, "/draft/retag", {"entry": entry_id, "priority": ["Growth", "Not a priority"]})
    assert workspace.snapshot.draft.retag == ((entry_id, ("Growth",)),)
    issue = workspace.snapshot.issue
    assert issue is not None
    [item] = [i for i in issue.entries if i.entry.id == entry_id]
    assert item.priorities == ("Growth",)
    post(client, "/draft/retag", {"entry": entry_id, "mode": "auto"})
    assert workspace.snapshot.draft.retag == ()

    post(client, "/draft/intro", {"intro": "Welcome to **this week's** news.\r\n\r\n<script>x()</script>"})
    assert workspace.snapshot.draft.intro.startswith("Welcome to **this week's** news.\n")
    email = client.get("/email.html").text
    assert "<strong>this week" in email
    assert "<script>x()" not in email


def test_reorder_moves_an_entry_up_within_its_list(preview: tuple[httpx.Client, Workspace]) -> None:
    client, workspace = preview
    issue = workspace.snapshot.issue
    assert issue is not None
    group = next(g for s in issue.sections for g in s.groups if len(g.entries) >= 2)
    shown = [i.entry.id for i in group.entries]
    post(client, "/draft/move", {"entry": shown[1], "direction": "up", "shown": shown})
    issue = workspace.snapshot.issue
    assert issue is not None
    regrouped = next(g for s in issue.sections for g in s.groups if g.label == group.label)
    assert [i.entry.id for i in regrouped.entries][:2] == [shown[1], shown[0]]


def test_reorder_within_the_highlights(preview: tuple[httpx.Client, Workspace]) -> None:
    client, workspace = preview
    issue = workspace.snapshot.issue
    assert issue is not None
    shown = [h.item.entry.id for h in issue.highlights]
    last = shown[-1]
    assert not issue.highlights[-1].item.entry.pinned
    assert not issue.highlights[-2].item.entry.pinned
    days = [[i.entry.id for i in g.entries] for s in issue.sections for g in s.groups]
    post(client, "/draft/move", {"entry": last, "direction": "up", "shown": shown, "list": "highlights"})
    issue = workspace.snapshot.issue
    assert issue is not None
    assert [h.item.entry.id for h in issue.highlights] == [*shown[:-2], last, shown[-2]]
    # The highlights have their own order in the draft; every day keeps its order.
    draft = workspace.snapshot.draft
    assert draft.highlight_order[-2:] == (last, shown[-2])
    assert draft.order == ()
    assert [[i.entry.id for i in g.entries] for s in issue.sections for g in s.groups] == days
    email = client.get("/email.html").text
    titles = [h.item.entry.title[:30] for h in issue.highlights[-2:]]
    assert highlights_of(email).index(titles[0]) < highlights_of(email).index(titles[1])


def test_every_post_needs_the_csrf_token(preview: tuple[httpx.Client, Workspace]) -> None:
    client, workspace = preview
    entry_id, _ = entries(workspace)[0]
    for data in ({"entry": entry_id}, {"entry": entry_id, "csrf_token": "forged"}):
        for path in ("/draft/drop", "/draft/pin", "/approve", "/test-send", "/refresh", "/draft/intro"):
            response = client.post(path, data=data)
            assert response.status_code == 403, path
            assert "Traceback" not in response.text
    token = csrf_of(client.get("/").text)
    cross_site = client.post(
        "/draft/drop",
        data={"entry": entry_id, "csrf_token": token},
        headers={"origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    assert workspace.snapshot.draft.dropped == ()


def test_the_page_rebuilds_when_a_feed_template_or_the_draft_changes(
    project: Path, preview: tuple[httpx.Client, Workspace]
) -> None:
    client, workspace = preview
    version = workspace.snapshot.version
    item = project.parent / "feeds" / "items" / "new-clinic.md"
    item.write_text(
        "---\ntitle: New diabetes clinic opens in Luton\ndate: 2025-05-08\ncategory: Campaigns and events\n"
        "summary: A walk-in clinic for people with diabetes.\n---\nBody.\n",
        encoding="utf-8",
    )
    wait_for(lambda: workspace.snapshot.version > version, what="a rebuild after a feed change")
    wait_for(lambda: "New diabetes clinic" in client.get("/email.html").text, what="the new entry")
    status = client.get("/api/status").json()
    assert status["version"] == workspace.snapshot.version

    version = workspace.snapshot.version
    draft_file = workspace.snapshot.draft_file
    assert draft_file is not None
    draft_file.write_text('intro = "Edited by hand in the draft file."\n', encoding="utf-8")
    wait_for(
        lambda: workspace.snapshot.draft.intro == "Edited by hand in the draft file.", what="draft reload"
    )
    assert workspace.snapshot.version > version

    override = project.parent / "my-templates"
    override.mkdir()
    config_text = project.read_text().replace('# templates = "my-templates"', 'templates = "my-templates"')
    version = workspace.snapshot.version
    project.write_text(config_text)
    wait_for(lambda: workspace.snapshot.version > version and not workspace.building, what="config reload")
    assert any("my-templates" in k for k, _, _ in workspace.fingerprint())
    version = workspace.snapshot.version
    builtin = Path(__file__).resolve().parent.parent / "digest" / "templates" / "email.txt"
    (override / "email.txt").write_text(builtin.read_text() + "\nA theme footer line.\n")
    wait_for(lambda: "A theme footer line." in client.get("/email.txt").text, what="a template change")
    # The build writes its files before it publishes the new snapshot: wait for both.
    wait_for(lambda: workspace.snapshot.version > version, what="the snapshot of the template change")


def test_a_build_error_is_shown_on_the_page_and_recovers(
    project: Path, preview: tuple[httpx.Client, Workspace]
) -> None:
    client, workspace = preview
    good = project.read_text()
    project.write_text(good.replace("lookback_days = 7", 'lookback_days = "seven"'))
    wait_for(lambda: workspace.snapshot.error is not None, what="the config error")
    page = client.get("/")
    assert page.status_code == 200
    assert "lookback_days" in page.text
    assert "Traceback" not in page.text
    project.write_text(good)
    wait_for(lambda: workspace.snapshot.error is None, what="recovery")


def test_an_unexpected_failure_shows_a_page_not_a_traceback(
    preview: tuple[httpx.Client, Workspace], caplog: pytest.LogCaptureFixture
) -> None:
    client, workspace = preview
    workspace.config.state_path.unlink()
    workspace.config.state_path.mkdir()  # the state "file" is now a folder: opening it fails
    page = client.get("/")
    assert page.status_code == 500
    assert "Something went wrong" in page.text
    assert "Traceback" not in page.text
    assert "sqlite" not in page.text.lower()
    assert "error answering GET /" in caplog.text  # the detail is logged, not shown


def test_approval_is_recorded_and_voided_by_an_edit(preview: tuple[httpx.Client, Workspace]) -> None:
    client, workspace = preview
    snapshot = workspace.snapshot
    response = post(
        client,
        "/approve",
        {"name": "Priya Shah", "html_sha256": snapshot.html_sha256, "text_sha256": snapshot.text_sha256},
    )
    assert response.status_code == 303
    page = client.get(response.headers["location"]).text
    assert "Approved</strong> by Priya Shah" in page
    post(client, "/draft/intro", {"intro": "A late change."})
    assert "Approval voided" in client.get("/").text


def test_approving_a_stale_page_is_refused(preview: tuple[httpx.Client, Workspace]) -> None:
    client, workspace = preview
    stale = workspace.snapshot
    post(client, "/draft/intro", {"intro": "Changed after the approver loaded the page."})
    response = post(
        client,
        "/approve",
        {"name": "Priya", "html_sha256": stale.html_sha256, "text_sha256": stale.text_sha256},
    )
    page = client.get(response.headers["location"]).text
    assert "changed after you loaded it" in page
    assert "Not approved yet" in page


def test_feed_content_is_escaped_on_the_page(tmp_path: Path) -> None:
    config = sample_project(tmp_path)
    (tmp_path / "feeds" / "items" / "hostile.md").write_text(
        '---\ntitle: <img src=x onerror="alert(1)"> Midwives <script>alert(2)</script>\n'
        "date: 2025-05-08\ncategory: Campaigns and events\n"
        'summary: <b onmouseover="alert(3)">bold</b>\n---\nBody.\n',
        encoding="utf-8",
    )
    with preview_served(config) as (base, _):
        page = httpx.get(f"{base}/").text
    assert "<script>alert(2)" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page  # shown as the text it is


def test_binding_beyond_loopback_needs_an_access_token(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert require_access_token("127.0.0.1", None, env_name="T") is None
    assert require_access_token("localhost", None, env_name="T") is None
    assert require_access_token("::1", None, env_name="T") is None
    for host in ("0.0.0.0", "192.168.1.20", "::", "example.org"):
        with pytest.raises(UsageError, match="exposes unsent drafts"):
            require_access_token(host, None, env_name="T")
    with pytest.raises(UsageError, match="shorter than 16"):
        require_access_token("0.0.0.0", "short", env_name="T")
    assert require_access_token("0.0.0.0", "a-long-enough-token-1234", env_name="T")

    monkeypatch.delenv("DIGEST_PREVIEW_TOKEN", raising=False)
    code = main(["preview", "--config", str(project), "--host", "0.0.0.0", "--port", "0"])
    assert code == 2
    err = capsys.readouterr().err
    assert "exposes unsent drafts" in err
    assert "DIGEST_PREVIEW_TOKEN" in err


def test_with_an_access_token_every_request_needs_it(project: Path) -> None:
    token = "preview-token-0123456789"
    with preview_served(project, access_token=token) as (base, _), httpx.Client(base_url=base) as client:
        assert client.get("/").status_code == 303
        assert client.get("/email.html").status_code == 401
        assert client.get("/api/status").status_code == 401
        login = client.get("/login")
        assert login.status_code == 200
        assert "csrf_token" not in login.text  # the login page is shown to anyone: no CSRF token on it
        wrong = client.post("/login", data={"token": "nope"})
        assert wrong.status_code == 401
        right = client.post("/login", data={"token": token})
        assert right.status_code == 303
        assert token not in right.headers["set-cookie"]
        assert client.get("/").status_code == 200
        bearer = httpx.get(f"{base}/email.html", headers={"authorization": f"Bearer {token}"})
        assert bearer.status_code == 200


class _LinkSite:
    """A local web server for the link check: /ok answers 200, anything else 404."""

    def __enter__(self) -> str:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self.send_response(200 if self.path == "/ok" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD  # noqa: N815 - the name http.server dispatches to

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_pre_send_report(tmp_path: Path) -> None:
    with _LinkSite() as site:
        (tmp_path / "items").mkdir()
        for name, path in (("working", "/ok"), ("broken", "/gone")):
            (tmp_path / "items" / f"{name}.md").write_text(
                f"---\ntitle: A {name} link about midwives\ndate: 2025-05-08\n"
                f"link: {site}{path}\nsummary: Checked by the pre-send report.\n---\nBody.\n",
                encoding="utf-8",
            )
        config = tmp_path / "config.toml"
        config.write_text(
            f"""
[[sources]]
name = "Curated"
url = "items/*.md"
category = "Campaigns and events"

[[priorities]]
name = "Start Well"
summary = "Every child has a strong, healthy start to life."
link = "{site}/ok"
keywords = ["midwives"]
""",
            encoding="utf-8",
        )
        with preview_served(config, check_links=True) as (base, workspace):
            assert isinstance(workspace, Workspace)
            page = httpx.get(f"{base}/").text
            fragment = httpx.get(f"{base}/report/links").text
    assert "of the 102.0 KB at which Gmail clips" in page
    assert "Every check of <code>digest check --email</code> passes." in page
    assert f"{site}/ok</a></td><td>HTTP 200" in fragment
    assert f"{site}/gone</a></td><td>HTTP 404" in fragment
    assert "<strong>1 broken</strong>" in fragment
    assert "127.0.0.1:8080" not in fragment  # this digest's own site is checked once published
    assert "Curated" in page
    assert "No issue has been sent yet: this will be the first." in page


def test_the_report_compares_with_the_last_sent_issue(project: Path) -> None:
    from datetime import datetime

    from digest.config import load_config
    from digest.pipeline.build import build_issue
    from digest.pipeline.send import send_issue

    config = load_config(project)
    db = open_store(config)
    sent_at = datetime.fromisoformat("2025-05-02T17:30:00+01:00")
    db.subscribers.upsert_subscriber("reader@example.org", name=None, at=sent_at)
    last = build_issue(config, db, now=sent_at, as_of=datetime.fromisoformat("2025-05-02T17:00:00+01:00"))
    assert last.built is not None
    assert send_issue(config, db, now=sent_at).completed
    db.close()
    with preview_served(project) as (base, workspace):
        assert isinstance(workspace, Workspace)
        assert workspace.snapshot.issue is not None
        assert workspace.snapshot.issue.id != last.built.issue.id
        page = httpx.get(f"{base}/").text
    assert f"Last sent issue: {last.built.issue.id}, sent Friday 2 May 2025." in page
    assert re.search(r"Entries: \d+ now, \d+ in the last sent issue\.", page)
    assert re.search(r"Email size: [\d.]+ KB, [+-][\d.]+ KB on the last sent issue", page)


def in_page_links_resolve(page: str) -> list[str]:
    """The page's `#fragment` links whose target id is not on the page."""
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    return [f for f in re.findall(r'href="#([^"]*)"', page) if f not in ids]


def test_with_nothing_new_the_page_says_why_and_suggests_an_as_of(project: Path) -> None:
    from datetime import datetime

    late = datetime.fromisoformat("2026-01-09T17:00:00+00:00")  # weeks after the newest sample entry
    with preview_served(project, as_of=late) as (base, workspace):
        assert isinstance(workspace, Workspace)
        assert workspace.snapshot.issue is None
        page = httpx.get(f"{base}/").text
    assert in_page_links_resolve(page) == []
    assert 'href="#approval"' not in page
    assert "No draft to preview: nothing new since Friday 2 January 2026" in page
    found = re.search(r"<code>digest preview --as-of ([^<]+)</code>", page)
    assert found, "no --as-of suggestion on the page"
    # The suggestion works: a preview with that window end has an issue to show.
    suggested = datetime.fromisoformat(found.group(1))
    with preview_served(project, as_of=suggested) as (base, workspace):
        assert isinstance(workspace, Workspace)
        assert workspace.snapshot.issue is not None
        page = httpx.get(f"{base}/").text
    assert 'href="#approval"' in page
    assert in_page_links_resolve(page) == []


def test_with_nothing_new_since_the_last_sent_issue_the_page_names_it(
    preview: tuple[httpx.Client, Workspace],
) -> None:
    from datetime import datetime

    client, workspace = preview
    issue = workspace.snapshot.issue
    assert issue is not None
    db = open_store(workspace.config.state_path)
    sent_at = datetime.fromisoformat("2025-05-09T17:10:00+01:00")
    db.issues.mark_send_started(issue.id, sent_at)
    db.issues.mark_issue_sent(issue.id, sent_at)
    db.close()
    version = workspace.snapshot.version
    post(client, "/refresh", {})
    wait_for(lambda: workspace.snapshot.version > version, what="the rebuild after the send")
    assert workspace.snapshot.issue is None
    page = client.get("/").text
    assert in_page_links_resolve(page) == []
    assert "No draft to preview: nothing new since Friday 9 May 2025" in page
    assert f"The last issue (issue {issue.id}, sent Friday 9 May 2025) covered everything up to" in page
    assert "--as-of" not in page


def test_when_a_part_sent_issue_holds_the_window_the_page_names_it_not_an_as_of(
    preview: tuple[httpx.Client, Workspace],
) -> None:
    from datetime import datetime

    client, workspace = preview
    issue = workspace.snapshot.issue
    assert issue is not None
    db = open_store(workspace.config.state_path)
    db.issues.mark_send_started(issue.id, datetime.fromisoformat("2025-05-09T17:10:00+01:00"))
    db.close()
    version = workspace.snapshot.version
    post(client, "/refresh", {})
    wait_for(lambda: workspace.snapshot.version > version, what="the rebuild after the send started")
    assert workspace.snapshot.issue is None
    page = client.get("/").text
    assert in_page_links_resolve(page) == []
    count = len(issue.entries)
    assert f"No draft to preview: this window's entries are in issue {issue.id}" in page
    assert f"The {count} entries of the window" in page
    assert f"in issue {issue.id}, which is part-sent: finish it with <code>digest send</code>" in page
    assert "No entry was published" not in page
    assert "--as-of" not in page

    db = open_store(workspace.config.state_path)
    db.issues.mark_issue_sent(issue.id, datetime.fromisoformat("2025-05-09T17:20:00+01:00"))
    db.close()
    # Asked about that window again, the page's reasoning names the issue and when it went out.
    from digest.web.pages import PageFormat
    from digest.web.view import _held_by

    fmt = PageFormat(locale=workspace.config.digest.locale, timezone=workspace.config.digest.timezone)
    db = open_store(workspace.config.state_path)
    try:
        empty = _held_by(db, issue.window.start, issue.window.end, fmt)
    finally:
        db.close()
    assert empty is not None
    assert (empty.held_by, empty.held_sent_on, empty.held_count) == (issue.id, "Friday 9 May 2025", count)


def test_the_commands_refuse_a_busy_port_and_a_bad_as_of(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = str(busy.getsockname()[1])
        assert main(["serve", "--config", str(project), "--port", port]) == 2
        assert "cannot listen on 127.0.0.1:" in capsys.readouterr().err
        assert main(["preview", "--config", str(project), "--port", port]) == 2
        assert "Address already in use" in capsys.readouterr().err
    assert main(["preview", "--config", str(project), "--as-of", "next friday"]) == 2
    assert "--as-of 'next friday' is not an ISO 8601 date-time" in capsys.readouterr().err
