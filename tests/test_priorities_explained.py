"""Priorities people understand: labels link to the priority, "Our priorities" explains them, enablers
are a quieter second tier that never highlights, and a highlight need not be repeated (issue 11, item 7)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from golden_cases import GOLDEN

from digest.compose import ComposeSettings, compose_issue
from digest.config import Priority, load_config
from digest.config.load import parse_config
from digest.errors import ConfigError
from digest.models import Entry, Window
from digest.render import RenderOptions, RenderSettings, render_issue

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2025, 5, 9, 16, tzinfo=UTC)
WINDOW = Window(NOW - timedelta(days=7), NOW)
GROWTH = Priority("Growth", "Build the economy.", "https://example.org/growth", ("jobs",))
FINANCE = Priority("Finance", "Money that enables.", "https://example.org/finance", ("budget",))


def _entry(entry_id: str, title: str) -> Entry:
    return Entry(
        id=entry_id,
        source="BLMK",
        category="News",
        title=title,
        link=f"https://example.org/{entry_id}",
        published=NOW - timedelta(hours=1),
    )


def _issue(repeat: bool = True):  # type: ignore[no-untyped-def]
    settings = ComposeSettings(priorities=(GROWTH,), enablers=(FINANCE,), repeat_highlights=repeat)
    entries = [_entry("a", "New jobs at the hospital"), _entry("b", "The budget for next year")]
    return compose_issue(entries, window=WINDOW, issue_id="2025-W19", edition=1, settings=settings)


def test_enablers_tag_entries_but_never_highlight() -> None:
    issue = _issue()
    assert [h.item.entry.id for h in issue.highlights] == ["a"]
    budget = next(i for i in issue.entries if i.entry.id == "b")
    assert budget.matches == ()
    assert [m.priority for m in budget.enablers] == ["Finance"]


def test_repeat_in_sections_false_lists_a_highlight_once() -> None:
    repeated = _issue(repeat=True)
    once = _issue(repeat=False)
    in_sections = [i.entry.id for s in once.sections for g in s.groups for i in g.entries]
    assert in_sections == ["b"]
    assert {i.entry.id for i in once.entries} == {"a", "b"} == {i.entry.id for i in repeated.entries}


def _settings(explain: bool) -> RenderSettings:
    config = load_config(REPO / "config.toml")
    config = replace(
        config,
        priorities=(GROWTH,),
        enablers=(FINANCE,),
        highlights=replace(config.highlights, explain=explain),
    )
    return RenderSettings.from_config(config)


def test_labels_link_to_the_priority_and_explain_closes_the_highlights() -> None:
    parts = render_issue(_issue(), _settings(explain=True), RenderOptions())
    pill = re.search(r'<td class="pill"[^>]*>(.*?)</td>', parts.mjml)
    assert pill and 'href="https://example.org/growth"' in pill.group(1) and "Growth" in pill.group(1)
    assert "Our priorities</h3>" in parts.mjml
    assert "Build the economy." in parts.mjml
    assert parts.mjml.index("Our priorities</h3>") < parts.mjml.index('id="section-news"')
    assert "Growth: Build the economy." in parts.text
    assert "Our priorities</h3>" in parts.web_html
    # The enabler is a quieter label on its entry, not a pill.
    assert '<span class="enb">Finance</span>' in parts.mjml
    assert "Finance" not in (pill.group(1))
    without = render_issue(_issue(), _settings(explain=False), RenderOptions())
    assert "Our priorities</h3>" not in without.mjml


def test_enablers_are_configured_like_priorities(tmp_path: Path) -> None:
    base = {"sources": [{"name": "a", "url": "https://example.org/feed"}]}
    config = parse_config(
        {
            **base,
            "highlights": {"explain": True, "repeat_in_sections": False},
            "enablers": [{"name": "Finance", "keywords": ["budget"], "link": "https://example.org/f"}],
        },
        tmp_path / "config.toml",
    )
    assert [e.name for e in config.enablers] == ["Finance"]
    assert config.highlights.explain and not config.highlights.repeat_in_sections
    with pytest.raises(ConfigError) as e:
        parse_config(
            {
                **base,
                "priorities": [{"name": "Finance", "keywords": ["x"]}],
                "enablers": [{"name": "Finance", "keywords": ["y"], "link": "ftp://x"}],
            },
            tmp_path / "config.toml",
        )
    assert any("used more than once" in p for p in e.value.problems)
    assert any("enablers[0].link" in p for p in e.value.problems)


def test_the_shipped_config_has_blmks_real_enablers() -> None:
    config = load_config(REPO / "config.toml")
    assert [e.name for e in config.enablers] == ["Finance", "Operational and Clinical Excellence"]
    assert config.highlights.explain and config.highlights.repeat_in_sections
    sample = (GOLDEN / "sample" / "expected" / "email.txt").read_text(encoding="utf-8")
    assert "Our priorities\n--------------" in sample
    once = (GOLDEN / "highlights-once" / "expected" / "email.txt").read_text(encoding="utf-8")
    assert "(in the highlights above)" in sample and "(in the highlights above)" not in once
