"""The preview's controls as pure draft changes: pin, drop, restore, move, re-tag, intro."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.draft import Draft
from digest.preview import edits


def test_pin_and_drop_exclude_each_other() -> None:
    draft = edits.drop(Draft(order=("a", "b")), "a")
    assert draft.dropped == ("a",)
    assert draft.order == ("b",)
    draft = edits.pin(draft, "a")
    assert (draft.pinned, draft.dropped) == (("a",), ())
    draft = edits.pin(edits.pin(draft, "b"), "a")
    assert draft.pinned == ("a", "b")
    draft = edits.drop(draft, "b")
    assert (draft.pinned, draft.dropped) == (("a",), ("b",))
    assert edits.restore(draft, "b").dropped == ()
    assert edits.unpin(draft, "a").pinned == ()


def test_moving_within_a_day_writes_the_list_order_first() -> None:
    draft = Draft(pinned=("a",), order=("x", "c"))
    moved = edits.move(draft, ["a", "b", "c"], "c", -1)
    assert moved.order == ("a", "c", "b", "x")
    assert moved.pinned == ("a",)
    assert edits.move(moved, ["a", "c", "b"], "a", -1) == moved  # already first


def test_moving_pinned_highlights_reorders_the_pins() -> None:
    draft = Draft(pinned=("p", "q", "elsewhere"))
    shown = ["p", "q", "a"]
    ranks = edits.highlight_ranks(draft, [], shown)
    moved = edits.move(draft, shown, "q", -1, ranks=ranks)
    assert moved.pinned == ("q", "p", "elsewhere")
    assert moved.order == ()


def test_highlights_of_different_classes_cannot_swap() -> None:
    draft = Draft(pinned=("p",))
    shown = ["p", "s", "a", "b"]
    ranks = edits.highlight_ranks(draft, ["s"], shown)
    assert ranks == {"p": 0, "s": 1, "a": 2, "b": 2}
    assert not edits.can_move(draft, shown, "s", -1, ranks=ranks)
    assert not edits.can_move(draft, shown, "a", -1, ranks=ranks)
    assert edits.move(draft, shown, "a", -1, ranks=ranks) == draft
    assert edits.move(draft, shown, "b", -1, ranks=ranks).order == ("s", "b", "a")
    assert not edits.can_move(draft, shown, "missing", 1)
    assert not edits.can_move(draft, shown, "a", 2)


def test_retag_replaces_and_resets() -> None:
    draft = edits.retag(Draft(), "b", ["Growth", "Growth", "Live Well"])
    draft = edits.retag(draft, "a", [])
    assert draft.retag == (("a", ()), ("b", ("Growth", "Live Well")))
    assert edits.retag(draft, "b", None).retag == (("a", ()),)


def test_intro_is_normalised_and_bounded() -> None:
    assert edits.set_intro(Draft(), "\r\nHello\r\n\r\nworld\r\n").intro == "Hello\n\nworld"
    with pytest.raises(ValueError, match="longer than"):
        edits.set_intro(Draft(), "x" * 20_001)


ids = st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=8, unique=True)
some = st.lists(st.sampled_from("abcdefgh"), max_size=4, unique=True)


@given(shown=ids, pinned=some, by_source=some, highlights=st.booleans(), data=st.data())
def test_a_move_swaps_exactly_two_neighbours(
    shown: list[str], pinned: list[str], by_source: list[str], highlights: bool, data: st.DataObject
) -> None:
    draft = Draft(pinned=tuple(pinned), order=("z",))
    ranks = edits.highlight_ranks(draft, by_source, shown) if highlights else None
    entry = data.draw(st.sampled_from(shown))
    step = data.draw(st.sampled_from([-1, 1]))
    moved = edits.move(draft, shown, entry, step, ranks=ranks)
    assert sorted(moved.pinned) == sorted(draft.pinned)
    assert moved.dropped == draft.dropped
    if not edits.can_move(draft, shown, entry, step, ranks=ranks):
        assert moved == draft
        return
    i = shown.index(entry)
    expected = list(shown)
    expected[i], expected[i + step] = expected[i + step], expected[i]
    if ranks is not None and entry in draft.pinned:
        assert [p for p in moved.pinned if p in shown] == [e for e in expected if e in draft.pinned]
    else:
        listed = [e for e in expected if ranks is None or e not in draft.pinned]
        assert list(moved.order) == [*listed, "z"]


def shown_as(order: tuple[str, ...], listed: list[str]) -> list[str]:
    """A list as compose shows it when `order` names every entry in it."""
    return sorted(listed, key=order.index)


def test_moving_within_a_day_leaves_the_highlights_and_other_days_alone() -> None:
    # The quirk: the moved day went to the front of the one `order`, so its entries jumped ahead of
    # the highlights (and a matched entry below the cut could climb into them).
    highlights = ["h1", "h2", "h3"]
    days = [["a", "h1"], ["h2", "b", "h3"], ["c", "d", "e"]]
    moved = edits.move(Draft(), days[2], "e", -1, highlights=highlights, days=days)
    order = moved.order
    assert shown_as(order, ["c", "d", "e"]) == ["c", "e", "d"]
    assert shown_as(order, highlights) == highlights
    assert shown_as(order, days[0]) == days[0]
    assert shown_as(order, days[1]) == days[1]
    # Entries outside the highlights come after them wherever their day allows ("a" leads its day,
    # "b" sits above h3 in its day), so the moved day cannot climb into the highlights.
    assert all(order.index(x) > order.index("h3") for x in ("c", "d", "e"))


def test_moving_in_the_highlights_leaves_every_day_alone() -> None:
    highlights = ["h1", "h2", "h3"]
    days = [["h3", "x"], ["h2", "y", "h1"]]
    moved = edits.move(Draft(), highlights, "h3", -1, ranks=dict.fromkeys(highlights, 2), days=days)
    assert shown_as(moved.order, highlights) == ["h1", "h3", "h2"]
    assert shown_as(moved.order, days[0]) == days[0]
    assert shown_as(moved.order, ["h2", "y"]) == ["h2", "y"]


def test_two_entries_in_one_day_and_the_highlights_swap_in_both() -> None:
    highlights = ["h1", "h2"]
    days = [["h1", "h2"]]
    moved = edits.move(Draft(), days[0], "h2", -1, highlights=highlights, days=days)
    assert shown_as(moved.order, highlights) == ["h2", "h1"]  # one order for both lists
