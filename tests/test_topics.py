"""Topics (issue 15 items 4 and 6): readers who chose priorities get the variant of the issue holding only
those priorities' entries (plus pinned ones), rendered once per choice; an empty variant is not sent; the
ledger records each recipient's variant; a stopped send resumed across variants sends nobody twice."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from run_site import make_site
from send_support import Recorder, parse, parts, smtp_server
from topics_support import ITEMS, PRIORITIES

from digest.cli import main
from digest.compose.variants import choice_key, topic_variant
from digest.models import Entry, Group, Highlight, Issue, IssueEntry, PriorityMatch, Section, Window
from digest.pipeline.run import run_once
from digest.state.store import open_store

AS_OF = datetime(2025, 5, 9, 7, tzinfo=UTC)
CHOICES: tuple[tuple[str, ...], ...] = (("Start Well",), ("age well", "Start Well"), (), ("Work Well",))
PEOPLE = tuple(f"reader{i:02d}@example.org" for i in range(24))


def _entry(entry_id: str, *, pinned: bool = False) -> Entry:
    return Entry(entry_id, "s", "News", entry_id, None, AS_OF, pinned=pinned)


def test_a_variant_keeps_only_its_priorities_entries_and_pinned_ones() -> None:
    start = IssueEntry(_entry("start"), (PriorityMatch("Start Well", "matched 'midwives'", 1.0),))
    age = IssueEntry(_entry("age"), (PriorityMatch("Age Well", "matched 'care home'", 1.0),))
    pinned = IssueEntry(_entry("pinned", pinned=True))
    plain = IssueEntry(_entry("plain"))
    issue = Issue(
        "2025-W19",
        1,
        "T",
        Window(AS_OF, AS_OF),
        "S",
        "P",
        "",
        (Highlight("Start Well", "r", start), Highlight("Age Well", "r", age)),
        (Section("News", (Group("Mon", None, (start, plain)), Group("Tue", None, (age, pinned)))),),
    )
    configured = ["Start Well", "Age Well", "Work Well"]
    key = choice_key(["start well"], configured)
    assert key == "Start Well"
    variant = topic_variant(issue, key)
    assert [e.entry.id for e in variant.entries] == ["start", "pinned"]
    assert [h.item.entry.id for h in variant.highlights] == ["start"]
    assert not variant.empty
    assert topic_variant(issue, "") is issue
    nothing = topic_variant(replace_pinned(issue), choice_key(["Work Well"], configured))
    assert nothing.empty and nothing.sections == () and nothing.highlights == ()
    assert choice_key(["Age Well", "start well", "Unknown"], configured) == "Start Well; Age Well"


def test_a_variant_shows_no_more_entries_per_section_than_the_whole_issue() -> None:
    """A section capped at 2 (5 entries, 3 left out) stays capped at 2 in a variant keeping 4 of them;
    a variant keeping 1 shows it all; an uncapped section stays uncapped."""
    start = (PriorityMatch("Start Well", "matched 'midwives'", 1.0),)
    kept = [IssueEntry(_entry(f"start{i}"), start) for i in range(4)]
    other = IssueEntry(_entry("other"), (PriorityMatch("Age Well", "matched 'care home'", 1.0),))
    issue = Issue(
        "2025-W19",
        1,
        "T",
        Window(AS_OF, AS_OF),
        "S",
        "P",
        "",
        (),
        (
            Section("News", (Group("Mon", None, (other, *kept[:2])), Group("Tue", None, tuple(kept[2:]))), 3),
            Section("Blog", (Group("Wed", None, (other, kept[0])),), 0),
        ),
    )
    variant = topic_variant(issue, "Start Well")
    assert [s.more for s in variant.sections] == [2, 0]
    only_other = topic_variant(issue, "Age Well")
    assert [s.more for s in only_other.sections] == [0, 0]


def replace_pinned(issue: Issue) -> Issue:
    """The issue without its pinned entry (a pinned entry is in every variant)."""
    sections = tuple(
        Section(
            s.category,
            tuple(
                Group(g.label, g.date, tuple(e for e in g.entries if not e.entry.pinned)) for g in s.groups
            ),
        )
        for s in issue.sections
    )
    return Issue(**{**{f: getattr(issue, f) for f in Issue.__dataclass_fields__}, "sections": sections})


@pytest.mark.smtp
def test_each_reader_gets_their_variant_once_across_a_stop_and_a_resume_at_a_real_smtp_server(
    tmp_path: Path,
) -> None:
    handler = Recorder(delay=0.02)
    with smtp_server(handler) as server:
        config = make_site(
            tmp_path,
            ITEMS,
            transport="smtp",
            smtp=f'host = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\npool_size = 2\n'
            "rate_per_second = 1000\n",
            subscribers=PEOPLE,
            extra=PRIORITIES,
        )
        chosen = {address: CHOICES[i % len(CHOICES)] for i, address in enumerate(PEOPLE)}
        for address, names in chosen.items():
            if names:
                assert main(["subscribers", "topics", address, *names, "--config", str(config.path)]) == 0
        sent_so_far: list[int] = []
        stopped = run_once(
            config,
            now=AS_OF,
            as_of=AS_OF,
            stop=lambda: len([d for d in sent_so_far if d]) >= 5,
            on_progress=lambda done, _total: sent_so_far.append(done),
        )
        assert stopped.outcome == "stopped: will resume"
        first = len(handler.recipients())
        assert 5 <= first < 18
        resumed = run_once(config, now=AS_OF, as_of=AS_OF)
        assert (resumed.outcome, resumed.issue_id) == ("sent", "2025-W19")
        assert resumed.already_sent == first

    counts = Counter(r.lower() for r in handler.recipients())
    assert set(counts.values()) == {1}  # nobody twice, across variants and the resume
    work_well = {a for a, names in chosen.items() if names == ("Work Well",)}
    assert set(counts) == set(PEOPLE) - work_well  # an empty variant is not sent
    for message in handler.messages:
        (address,) = message.rcpt
        text, html = parts(parse(message.data))
        names = {n.casefold() for n in chosen[address.lower()]}
        assert ("Midwives celebrated" in text) is (not names or "start well" in names)
        assert ("care home opens" in text.lower()) is (not names or "age well" in names)
        assert ("Roadworks" in text) is (not names)
        assert ("Roadworks" in html) is (not names)

    with open_store(config) as db:
        by_variant = db.ledger.sent_variants("2025-W19")
        variants = db.topics.variants_of("2025-W19")
        issue = db.issues.get_issue("2025-W19")
    assert by_variant == {"": 6, "Start Well": 6, "Start Well; Age Well": 6}
    assert {k: v.entry_count for k, v in variants.items()} == {
        "Start Well": 1,
        "Start Well; Age Well": 2,
        "Work Well": 0,
    }
    assert issue is not None and issue.sent_at is not None  # complete although 6 readers got nothing


def test_topics_from_the_command_line_and_the_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_site(tmp_path, ITEMS, extra=PRIORITIES)
    args = ["--config", str(config.path)]
    assert main(["subscribers", "topics", "ann@example.org", "start WELL", "Age Well", *args]) == 0
    assert "ann@example.org: topics Age Well; Start Well" in capsys.readouterr().out
    assert main(["subscribers", "topics", "ann@example.org", "Nope", *args]) == 2
    assert "'Nope' is not a priority (priorities: Start Well, Age Well, Work Well)" in capsys.readouterr().err
    assert main(["subscribers", "topics", "ann@example.org", *args]) == 2
    assert main(["subscribers", "topics", "ann@example.org", "--all", *args]) == 0
    assert "topics all (the whole issue)" in capsys.readouterr().out
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("email,topics\nbob@example.org,Start Well; work well\ncat@example.org,Bad\n")
    assert main(["subscribers", "import", str(csv_file), "--consent", "Reader list", *args]) == 0
    assert "list.csv:3: rejected 'Bad': topics: 'Bad' is not a priority" in capsys.readouterr().err
    with open_store(config) as db:
        assert db.topics.topics_of("bob@example.org") == ("Start Well", "Work Well")
        assert db.topics.topics_of("ann@example.org") == ()


def test_one_approval_covers_every_variant_and_a_change_to_any_voids_it(tmp_path: Path) -> None:
    config = make_site(tmp_path, ITEMS, extra=PRIORITIES, approval=True)
    args = ["--config", str(config.path), "--as-of", "2025-05-09T08:00:00+01:00"]
    with open_store(config) as db:
        db.topics.set_topics("ann@example.org", ["Start Well"])
    assert main(["build", *args]) == 0
    with open_store(config) as db:
        record = db.issues.get_issue("2025-W19")
        assert record is not None
        db.approvals.record_approval(
            issue_id=record.id,
            approved_by="Comms",
            approved_at=AS_OF,
            html_sha256=record.html_sha256,
            text_sha256=record.text_sha256,
        )
        assert db.approvals.is_approved(record.id, record.html_sha256, record.text_sha256)
        db.topics.set_topics("bob@example.org", ["Age Well"])  # a new choice: a new variant
    assert main(["build", *args]) == 0
    with open_store(config) as db:
        rebuilt = db.issues.get_issue("2025-W19")
        assert (
            rebuilt is not None and rebuilt.html_sha256 == record.html_sha256
        )  # the whole issue is as approved
        assert set(db.topics.variants_of("2025-W19")) == {"Start Well", "Age Well"}
        assert not db.approvals.is_approved(rebuilt.id, rebuilt.html_sha256, rebuilt.text_sha256)
    waiting = run_once(config, now=AS_OF, as_of=AS_OF)
    assert waiting.outcome == "waiting for approval"
    with open_store(config) as db:
        db.approvals.record_approval(
            issue_id=rebuilt.id,
            approved_by="Comms",
            approved_at=AS_OF,
            html_sha256=rebuilt.html_sha256,
            text_sha256=rebuilt.text_sha256,
        )
    sent = run_once(config, now=AS_OF, as_of=AS_OF)
    assert (sent.outcome, sent.sent) == ("sent", 3)
    with open_store(config) as db:
        assert db.ledger.sent_variants("2025-W19") == {"": 1, "Start Well": 1, "Age Well": 1}


_NAMES = ("Start Well", "Age Well", "Work Well")


@st.composite
def _issues(draw: st.DrawFn) -> Issue:
    items = []
    for n in range(draw(st.integers(0, 12))):
        chosen = draw(st.lists(st.sampled_from(_NAMES), unique=True, max_size=3))
        matches = tuple(PriorityMatch(name, "r", 1.0) for name in chosen)
        items.append(IssueEntry(_entry(f"e{n}", pinned=draw(st.booleans())), matches))
    cut = draw(st.integers(0, len(items)))
    groups = tuple(
        g for g in (Group("a", None, tuple(items[:cut])), Group("b", None, tuple(items[cut:]))) if g.entries
    )
    highlights = tuple(Highlight(i.priorities[0], "r", i) for i in items if i.priorities)[:3]
    sections = (Section("News", groups),) if groups else ()
    return Issue("2025-W19", 1, "T", Window(AS_OF, AS_OF), "S", "P", "", highlights, sections)


@given(issue=_issues(), chosen=st.lists(st.sampled_from(_NAMES), max_size=3))
def test_a_variant_is_the_issue_filtered_in_order_to_its_priorities_and_pinned_entries(
    issue: Issue, chosen: list[str]
) -> None:
    key = choice_key(chosen, _NAMES)
    variant = topic_variant(issue, key)
    if not key:
        assert variant is issue
        return
    wanted = {n.casefold() for n in chosen}
    expected = [
        e.entry.id
        for e in issue.entries
        if e.entry.pinned or any(p.casefold() in wanted for p in e.priorities)
    ]
    assert [e.entry.id for e in variant.entries] == expected
    assert variant.empty is (not expected)
    assert all(g.entries for s in variant.sections for g in s.groups)
    assert {h.item.entry.id for h in variant.highlights} <= set(expected)
