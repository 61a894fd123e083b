"""De-duplication (pure): same id or link, or same title within a few days across sources; also_from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.ingest.clean import normalised_title
from digest.ingest.dedupe import dedupe
from digest.models import Entry

T0 = datetime(2025, 5, 9, 9, 0, tzinfo=UTC)


def entry(  # noqa: PLR0917 - a test factory reads best with positional arguments
    entry_id: str,
    source: str = "News",
    title: str = "A story",
    link: str | None = None,
    published: datetime = T0,
    estimated: bool = False,
    **kwargs: object,
) -> Entry:
    return Entry(
        id=entry_id,
        source=source,
        category="News",
        title=title,
        link=link,
        published=published,
        date_estimated=estimated,
        **kwargs,  # type: ignore[arg-type]
    )


def test_same_id_within_a_feed_keeps_the_first() -> None:
    kept = dedupe([entry("1", title="First"), entry("1", title="Second"), entry("2", title="Other")])
    assert [e.title for e in kept] == ["First", "Other"]
    assert kept[0].also_from == ()


def test_same_link_across_feeds_keeps_one_and_records_the_others() -> None:
    link = "https://example.org/story"
    kept = dedupe(
        [
            entry("a", "News", "Story", link),
            entry("b", "Blog", "Story, reposted", link),
            entry("c", "Partner", "Story again", link),
        ]
    )
    assert len(kept) == 1
    assert kept[0].source == "News"
    assert kept[0].also_from == ("Blog", "Partner")


def test_same_title_across_feeds_within_a_few_days_is_one_story() -> None:
    kept = dedupe(
        [
            entry("a", "News", "NHS urges people to plan ahead", "https://a.example/1"),
            entry(
                "b", "Blog", "NHS urges people to plan ahead!", "https://b.example/2", T0 + timedelta(days=2)
            ),
        ]
    )
    assert len(kept) == 1 and kept[0].also_from == ("Blog",)


def test_same_title_far_apart_is_two_stories() -> None:
    # BLMK used "Local NHS waiting lists fall, new figures show" for two different stories months apart.
    title = "Local NHS waiting lists fall, new figures show"
    kept = dedupe(
        [
            entry("a", "News", title, "https://a.example/1", datetime(2025, 3, 3, tzinfo=UTC)),
            entry("b", "Partner", title, "https://b.example/2", datetime(2025, 6, 27, tzinfo=UTC)),
        ]
    )
    assert len(kept) == 2


def test_the_title_window_is_three_days_inclusive() -> None:
    # Exactly three days apart is still one story (the window is closed); a second more is two.
    title = "Bedford Hospital opens a new maternity wing"

    def pair(gap: timedelta) -> tuple[Entry, ...]:
        return dedupe(
            [
                entry("a", "News", title, "https://a.example/1"),
                entry("b", "Partner", title, "https://b.example/2", T0 + gap),
            ]
        )

    assert len(pair(timedelta(days=3))) == 1
    assert len(pair(-timedelta(days=3))) == 1
    assert len(pair(timedelta(days=3, seconds=1))) == 2
    assert (
        len(
            dedupe(
                [entry("a", "News", title), entry("b", "P", title, published=T0 + timedelta(days=1))],
                title_window=timedelta(days=1),
            )
        )
        == 1
    )


def test_undated_entries_are_never_matched_by_title_alone() -> None:
    title = "Local NHS waiting lists fall, new figures show"
    kept = dedupe([entry("a", "News", title, estimated=True), entry("b", "Partner", title, estimated=True)])
    assert len(kept) == 2


def test_same_title_in_one_feed_is_not_a_duplicate() -> None:
    kept = dedupe(
        [
            entry("a", "Tumblr", "Photo", "https://t.example/1"),
            entry("b", "Tumblr", "Photo", "https://t.example/2"),
        ]
    )
    assert len(kept) == 2


def test_a_title_cut_short_by_a_listing_matches_the_full_title() -> None:
    kept = dedupe(
        [
            entry(
                "a",
                "Listing",
                "Local NHS bodies commit to sustainable methods in drive to improve health\u2026",
            ),
            entry(
                "b",
                "Articles",
                "Local NHS bodies commit to sustainable methods in drive to improve health and care",
            ),
        ]
    )
    assert len(kept) == 1
    # Too short a prefix is not enough.
    assert len(dedupe([entry("a", "L", "Local NHS\u2026"), entry("b", "A", "Local NHS news today")])) == 2


def test_preference_sent_then_curated_then_dated() -> None:
    link = "https://example.org/s"
    feed = entry("feed", "News", "S", link)
    curated = entry("item", "Curated", "S", link, pinned=True, priority="Start Well")
    assert dedupe([feed, curated])[0].id == "item"
    assert dedupe([feed, curated], sent_ids=frozenset({"feed"}))[0].id == "feed"
    undated = entry("u", "Blog", "S", link, estimated=True)
    assert dedupe([undated, feed])[0].id == "feed"


def test_groups_join_transitively_by_id_and_link() -> None:
    kept = dedupe(
        [
            entry("a", "A", "Title one", "https://x.example/1"),
            entry("b", "B", "Title one", "https://x.example/2"),
            entry("c", "C", "Another title", "https://x.example/2"),
        ]
    )
    assert len(kept) == 1 and set(kept[0].also_from) == {"B", "C"}


_entries = st.lists(
    st.builds(
        entry,
        entry_id=st.sampled_from("abcdefgh"),
        source=st.sampled_from(["News", "Blog", "Curated"]),
        title=st.sampled_from(
            ["Alpha story", "Beta story", "Gamma story here now\u2026", "Gamma story here now and more"]
        ),
        link=st.one_of(st.none(), st.sampled_from(["https://e.org/1", "https://e.org/2", "https://e.org/3"])),
        published=st.integers(0, 10).map(lambda d: T0 + timedelta(days=d)),
        estimated=st.booleans(),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(_entries, st.randoms(use_true_random=False))
def test_properties(entries: list[Entry], random: object) -> None:
    kept = dedupe(entries)
    ids = [e.id for e in kept]
    links = [e.link for e in kept if e.link]
    assert len(ids) == len(set(ids))
    assert len(links) == len(set(links))
    assert {e.id for e in kept} <= {e.id for e in entries}
    assert all(e.source not in e.also_from for e in kept)
    shuffled = list(entries)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    assert len(dedupe(shuffled)) == len(kept)  # input order does not change how many stories there are
    # Idempotent, except that a title a source repeats (a bulletin name) never matches across sources,
    # and once its copies are merged by link the source no longer repeats it.
    titles = [(e.source, normalised_title(e.title)) for e in entries]
    if len(titles) == len(set(titles)):
        assert len(dedupe(kept)) == len(kept)
    else:
        assert len(dedupe(kept)) <= len(kept)


def _at(source: str, entry_id: str, title: str, day: float) -> Entry:
    return entry(entry_id, source, title, None, published=T0 + timedelta(days=day))


def test_matching_by_title_does_not_chain_beyond_the_window() -> None:
    kept = dedupe(
        [
            _at("A", "a", "Clinic opens", 0),
            _at("B", "b", "Clinic opens", 2),
            _at("C", "c", "Clinic opens", 4),  # within 3 days of b, but 4 days after the story began
        ]
    )
    assert [e.id for e in kept] == ["a", "c"]
    assert kept[0].also_from == ("B",)


def test_a_title_a_source_repeats_never_matches_across_sources() -> None:
    kept = dedupe(
        [
            _at("Trust", "t1", "Weekly bulletin", 0),
            _at("Trust", "t2", "Weekly bulletin", 7),
            _at("Council", "c1", "Weekly bulletin", 0.5),
            _at("Council", "c2", "Clinic opens", 1),
            _at("Trust", "t3", "Clinic opens", 1.5),
        ]
    )
    assert [e.id for e in kept] == ["t1", "t2", "c1", "c2"]  # the bulletins stay apart; the story is one


def test_eight_thousand_generic_titles_from_fifty_sources_stay_apart() -> None:
    entries = [
        _at(f"Source {s}", f"s{s}-{n}", "Weekly bulletin", n * 0.05) for s in range(50) for n in range(160)
    ]
    assert len(entries) == 8000
    kept = dedupe(entries)
    assert len(kept) == 8000
    assert all(e.also_from == () for e in kept)


def test_eight_thousand_shared_headlines_group_by_window_not_into_one() -> None:
    # 8,000 sources each carry one "Weekly bulletin", a few hours apart: stories of at most 3 days each.
    entries = [_at(f"Source {n}", f"e{n}", "Weekly bulletin", n * 0.01) for n in range(8000)]
    kept = dedupe(entries)
    assert len(kept) > 20  # 80 days of entries: one story per 3-day window, not one for everything
    for story in kept:
        assert len(story.also_from) <= 301
