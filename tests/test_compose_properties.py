"""Properties of compose over arbitrary entries: inside the window, no duplicates, sections partition the
selection, and the order the entries arrive in changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.compose import ComposeSettings, compose_issue, issue_window
from digest.compose.draft import Draft
from digest.config import Priority
from digest.models import Entry

BASE = datetime(2025, 5, 1, tzinfo=UTC)
PRIORITIES = (
    Priority("Start Well", "", None, ("midwives", "young people")),
    Priority("Growth", "", None, ("net zero", "jobs"), categories=("News",)),
)
WORDS = st.sampled_from(["midwives", "young", "people", "net", "zero", "jobs", "news", "the", "Luton", "é"])
TEXT = st.lists(WORDS, max_size=6).map(" ".join)

entries_strategy = st.lists(
    st.builds(
        Entry,
        id=st.sampled_from([f"e{i}" for i in range(25)]),
        source=st.sampled_from(["News feed", "Blog feed", "Items"]),
        category=st.sampled_from(["News", "Blog", "Events", "Zebra"]),
        title=TEXT,
        link=st.none() | st.just("https://example.org/x"),
        published=st.integers(min_value=-3 * 86400, max_value=20 * 86400).map(
            lambda s: BASE + timedelta(seconds=s)
        ),
        updated=st.none(),
        date_estimated=st.booleans(),
        summary_text=TEXT,
        tags=st.lists(WORDS, max_size=2).map(tuple),
        pinned=st.booleans(),
    ),
    max_size=30,
)
compose_settings = st.builds(
    ComposeSettings,
    group_by=st.sampled_from(["day", "week", "none"]),
    categories=st.sampled_from([(), ("Blog", "News"), ("Events",)]),
    section_cap=st.integers(min_value=1, max_value=10),
    highlights_max=st.integers(min_value=0, max_value=6),
    priorities=st.just(PRIORITIES),
    timezone=st.sampled_from(["Europe/London", "UTC", "Pacific/Auckland"]),
)
as_of_strategy = st.integers(min_value=0, max_value=14 * 86400).map(lambda s: BASE + timedelta(seconds=s))


def _compose(entries: list[Entry], s: ComposeSettings, as_of: datetime, sent: frozenset[str], draft: Draft):  # type: ignore[no-untyped-def]
    window = issue_window(as_of=as_of, last_sent_end=None, lookback_days=7)
    issue = compose_issue(
        entries, window=window, issue_id="x", edition=1, settings=s, draft=draft, exclude_ids=sent
    )
    return window, issue


drafts = st.builds(
    Draft,
    pinned=st.lists(st.sampled_from([f"e{i}" for i in range(25)]), max_size=3, unique=True).map(tuple),
    dropped=st.lists(st.sampled_from([f"e{i}" for i in range(25)]), max_size=3, unique=True).map(tuple),
    order=st.lists(st.sampled_from([f"e{i}" for i in range(25)]), max_size=3, unique=True).map(tuple),
)


@settings(max_examples=150, deadline=None)
@given(
    entries=entries_strategy,
    s=compose_settings,
    as_of=as_of_strategy,
    sent=st.frozensets(st.sampled_from([f"e{i}" for i in range(25)]), max_size=5),
    draft=drafts,
)
def test_selection_is_inside_the_window_unique_unsent_and_partitioned(
    entries: list[Entry], s: ComposeSettings, as_of: datetime, sent: frozenset[str], draft: Draft
) -> None:
    window, issue = _compose(entries, s, as_of, sent, draft)
    placed = [i.entry for i in issue.entries]
    ids = [e.id for e in placed]
    assert len(ids) == len(set(ids)), "an entry appears twice"
    assert all(window.start <= e.published < window.end for e in placed)
    assert not set(ids) & sent
    assert not set(ids) & set(draft.dropped)
    expected = {e.id for e in entries if window.start <= e.published < window.end} - sent - set(draft.dropped)
    assert set(ids) == expected, "sections must hold exactly the selection"
    for section in issue.sections:
        assert section.groups
        assert all(i.entry.category == section.category for g in section.groups for i in g.entries)
        total = sum(len(g.entries) for g in section.groups)
        assert section.more == max(0, total - s.section_cap)
    assert len({sec.category for sec in issue.sections}) == len(issue.sections)
    highlight_ids = [h.item.entry.id for h in issue.highlights]
    assert len(highlight_ids) == len(set(highlight_ids))
    assert set(highlight_ids) <= set(ids)
    pinned = {e.id for e in placed if e.pinned} | (set(draft.pinned) & set(ids))
    assert len(highlight_ids) <= max(s.highlights_max, len(pinned))
    assert issue.empty == (not ids)


@settings(max_examples=100, deadline=None)
@given(
    entries=entries_strategy,
    s=compose_settings,
    as_of=as_of_strategy,
    draft=drafts,
    seed=st.randoms(use_true_random=False),
)
def test_input_order_does_not_matter(
    entries: list[Entry], s: ComposeSettings, as_of: datetime, draft: Draft, seed: object
) -> None:
    shuffled = list(entries)
    seed.shuffle(shuffled)  # type: ignore[attr-defined]
    assert (
        _compose(entries, s, as_of, frozenset(), draft)[1]
        == _compose(shuffled, s, as_of, frozenset(), draft)[1]
    )
