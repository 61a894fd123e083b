"""Issue 13, item 5: subject, preheader, an entry's title and teaser, and one-off items, from the preview."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest
from web_support import csrf_of, preview_served, sample_project

from digest.cli import main
from digest.compose.draft import Draft, dump_draft, load_draft, parse_draft
from digest.config import load_config
from digest.errors import ConfigError, InvalidValueError, RenderError, UsageError
from digest.pipeline.items import OneOffItem, item_text
from digest.state.store import open_store
from digest.web import edits
from digest.web.workspace import Workspace

ITEMS = {'# items_folder = "feeds/items"': 'items_folder = "feeds/items"'}


def test_the_words_round_trip_through_the_draft_file(tmp_path: Path) -> None:
    draft = edits.set_words(Draft(), "  Big   news\tthis week ", "Read on")
    draft = edits.reword(draft, "e1", 'A "full" title \\ back', "Line one\r\nline two")
    draft = edits.reword(draft, "e2", "Only the title", "")
    assert draft.subject == "Big news this week"
    assert draft.titles == (("e1", 'A "full" title \\ back'), ("e2", "Only the title"))
    assert draft.teasers == (("e1", "Line one\nline two"),)
    path = tmp_path / "d.toml"
    path.write_text(dump_draft(draft), encoding="utf-8")
    assert load_draft(path) == draft
    assert edits.reword(draft, "e1", "", "").titles == (("e2", "Only the title"),)
    with pytest.raises(InvalidValueError, match="one line"):
        edits.set_words(Draft(), "Subject\nBcc: x@example.org", "")
    with pytest.raises(InvalidValueError, match="longer than 200"):
        edits.set_words(Draft(), "x" * 201, "")
    with pytest.raises(RenderError, match="subject must be one line"):
        parse_draft(path, {"subject": "a\nb"})


def test_a_one_off_item_is_a_curated_item(tmp_path: Path) -> None:
    config = load_config(sample_project(tmp_path, replace=ITEMS))
    from datetime import date

    text = item_text(
        config,
        OneOffItem(
            title='Flu jabs: "walk-in" clinic',
            link="https://example.org/flu",
            summary="Free *flu* jabs [today].",
            priority="Live Well",
            image="https://example.org/flu.jpg",
            image_alt="A nurse with a vaccine",
        ),
        today=date(2025, 5, 8),
    )
    assert 'title: "Flu jabs: \\"walk-in\\" clinic"' in text
    assert 'date: "2025-05-08"' in text
    with pytest.raises(UsageError, match="alt text"):
        item_text(config, OneOffItem(title="t", image="https://example.org/p.jpg"), today=date(2025, 5, 8))
    with pytest.raises(UsageError, match="not a priority"):
        item_text(config, OneOffItem(title="t", priority="Nope"), today=date(2025, 5, 8))
    with pytest.raises(UsageError, match="not an http"):
        item_text(config, OneOffItem(title="t", link="javascript:alert(1)"), today=date(2025, 5, 8))


def test_items_folder_must_be_read_by_a_markdown_source(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    config = sample_project(
        tmp_path, replace={'# items_folder = "feeds/items"': 'items_folder = "elsewhere"'}
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert any(
        "preview.items_folder: no enabled [[sources]] reads elsewhere/*.md" in p
        for p in caught.value.problems
    )


def outbox_messages(root: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((root / ".digest" / "outbox").rglob("*")) if p.is_file()]


def test_the_words_and_a_one_off_item_reach_the_email(tmp_path: Path) -> None:
    config = sample_project(tmp_path, replace=ITEMS)
    with preview_served(config) as (base, workspace):
        assert isinstance(workspace, Workspace)
        issue = workspace.snapshot.issue
        assert issue is not None
        entry = issue.sections[0].groups[0].entries[0].entry
        with httpx.Client(base_url=base) as client:
            token = csrf_of(client.get("/").text)
            approve = {
                "csrf_token": token,
                "name": "Priya",
                "html_sha256": workspace.snapshot.html_sha256,
                "text_sha256": workspace.snapshot.text_sha256,
            }
            assert client.post("/approve", data=approve).status_code == 303
            said = client.post(
                "/draft/words",
                data={
                    "csrf_token": token,
                    "subject": "Strike news and a flu clinic",
                    "preheader": "Read first",
                },
            )
            assert said.status_code == 303
            reworded = client.post(
                "/draft/reword",
                data={
                    "csrf_token": token,
                    "entry": entry.id,
                    "title": "The whole story, not cut short",
                    "teaser": "What the team wants readers to know.",
                },
            )
            assert reworded.status_code == 303
            added = client.post(
                "/items/add",
                data={
                    "csrf_token": token,
                    "title": "Walk-in flu clinic on Saturday",
                    "link": "https://example.org/flu",
                    "summary": "Free flu jabs for everyone over 65.",
                    "date": "2025-05-08",
                    "priority": "Live Well",
                    "image": "https://example.org/flu.jpg",
                    "image_alt": "A nurse giving a flu jab",
                    "pinned": "yes",
                },
            )
            assert added.status_code == 303
            notice = client.get(added.headers["location"]).text
            assert (
                "Added “Walk-in flu clinic on Saturday” as 2025-05-08-walk-in-flu-clinic-on-saturday.md"
                in notice
            )
            page = client.get("/").text
            sent = client.post("/test-send", data={"csrf_token": token, "to": "comms@example.org"})
            assert sent.status_code == 303
        built = workspace.snapshot.issue
        assert built is not None
        assert built.subject == "Strike news and a flu clinic"
        assert built.preheader == "Read first"
        assert "Walk-in flu clinic on Saturday" in [h.item.entry.title for h in built.highlights]
        assert (tmp_path / "feeds" / "items" / "2025-05-08-walk-in-flu-clinic-on-saturday.md").is_file()
    # The source's original is kept and shown beside the override.
    assert f'Source\'s title: <q class="original-title">{entry.title}</q>' in page.replace("&#34;", '"')
    assert 'value="Strike news and a flu clinic"' in page
    [raw] = outbox_messages(tmp_path)
    message = message_from_bytes(raw, policy=policy.default)
    assert str(message["Subject"]) == "[TEST] Strike news and a flu clinic"
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "The whole story, not cut short" in html
    assert "What the team wants readers to know." in html
    assert entry.title not in html
    assert "Walk-in flu clinic on Saturday" in html
    assert "Read first" in html
    with open_store(load_config(config)) as db:
        events = [(e.action, e.detail) for e in reversed(db.audit.events())]
        approval = db.approvals.get_approval(built.id)
    assert approval is not None  # kept, but voided by the first change
    actions = [a for a, _ in events]
    assert actions[:3] == ["approve", "edit", "void"]
    details = " | ".join(d for _, d in events)
    assert "set the subject “Strike news and a flu clinic” and preheader" in details
    assert f"reworded “{entry.title}”: “The whole story, not cut short”" in details
    assert "added the one-off item “Walk-in flu clinic on Saturday”" in details
    assert main(["status", "--audit", "--json", "--config", str(config)]) == 0
