"""The preview's controls as pure draft changes: pin, drop, restore, move, re-tag, intro."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.compose.draft import Draft
from digest.errors import InvalidValueError
from digest.web import edits


def test_pin_and_drop_exclude_each_other() -> None:
    draft = edits.drop(Draft(order=("a", "b"), highlight_order=("b", "a")), "a")
    assert draft.dropped == ("a",)
    assert (draft.order, draft.highlight_order) == (("b",), ("b",))
    draft = edits.pin(draft, "a")
    assert (draft.pinned, draft.dropped) == (("a",), ())
    draft = edits.pin(edits.pin(draft, "b"), "a")
    assert draft.pinned == ("a", "b")
    draft = edits.drop(draft, "b")
    assert (draft.pinned, draft.dropped) == (("a",), ("b",))
    assert edits.restore(draft, "b").dropped == ()
    assert edits.unpin(draft, "a").pinned == ()


def test_moving_within_a_day_writes_the_list_order_first() -> None:
    draft = Draft(pinned=("a",), order=("x", "c"), highlight_order=("c", "b"))
    moved = edits.move(draft, ["a", "b", "c"], "c", -1)
    assert moved.order == ("a", "c", "b", "x")
    assert (moved.pinned, moved.highlight_order) == (("a",), ("c", "b"))
    assert edits.move(moved, ["a", "c", "b"], "a", -1) == moved  # already first


def test_moving_pinned_highlights_reorders_the_pins() -> None:
    draft = Draft(pinned=("p", "q", "elsewhere"))
    shown = ["p", "q", "a"]
    ranks = edits.highlight_ranks(draft, [], shown)
    moved = edits.move(draft, shown, "q", -1, ranks=ranks)
    assert moved.pinned == ("q", "p", "elsewhere")
    assert (moved.order, moved.highlight_order) == ((), ())


def test_highlights_of_different_classes_cannot_swap() -> None:
    draft = Draft(pinned=("p",))
    shown = ["p", "s", "a", "b"]
    ranks = edits.highlight_ranks(draft, ["s"], shown)
    assert ranks == {"p": 0, "s": 1, "a": 2, "b": 2}
    assert not edits.can_move(draft, shown, "s", -1, ranks=ranks)
    assert not edits.can_move(draft, shown, "a", -1, ranks=ranks)
    assert edits.move(draft, shown, "a", -1, ranks=ranks) == draft
    moved = edits.move(draft, shown, "b", -1, ranks=ranks)
    assert (moved.highlight_order, moved.order) == (("s", "b", "a"), ())
    assert not edits.can_move(draft, shown, "missing", 1)
    assert not edits.can_move(draft, shown, "a", 2)


def test_retag_replaces_and_resets() -> None:
    draft = edits.retag(Draft(), "b", ["Growth", "Growth", "Live Well"])
    draft = edits.retag(draft, "a", [])
    assert draft.retag == (("a", ()), ("b", ("Growth", "Live Well")))
    assert edits.retag(draft, "b", None).retag == (("a", ()),)


def test_intro_is_normalised_and_bounded() -> None:
    assert edits.set_intro(Draft(), "\r\nHello\r\n\r\nworld\r\n").intro == "Hello\n\nworld"
    with pytest.raises(InvalidValueError, match="longer than"):
        edits.set_intro(Draft(), "x" * 20_001)


ids = st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=8, unique=True)
some = st.lists(st.sampled_from("abcdefgh"), max_size=4, unique=True)


@given(shown=ids, pinned=some, by_source=some, highlights=st.booleans(), data=st.data())
def test_a_move_swaps_exactly_two_neighbours(
    shown: list[str], pinned: list[str], by_source: list[str], highlights: bool, data: st.DataObject
) -> None:
    draft = Draft(pinned=tuple(pinned), order=("z",), highlight_order=("y",))
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
        assert (moved.order, moved.highlight_order) == (draft.order, draft.highlight_order)
    elif ranks is not None:
        assert list(moved.highlight_order) == [e for e in expected if e not in draft.pinned]
        assert moved.order == draft.order
    else:
        assert list(moved.order) == [*expected, "z"]
        assert moved.highlight_order == draft.highlight_order


def test_two_entries_in_the_highlights_and_one_day_swap_in_that_list_only() -> None:
    draft = Draft()
    ranks = dict.fromkeys(["h1", "h2"], 2)
    in_day = edits.move(draft, ["h1", "h2"], "h2", -1)
    assert (in_day.order, in_day.highlight_order) == (("h2", "h1"), ())
    in_highlights = edits.move(in_day, ["h1", "h2"], "h2", -1, ranks=ranks)
    assert (in_highlights.order, in_highlights.highlight_order) == (("h2", "h1"), ("h2", "h1"))
    back = edits.move(in_highlights, ["h2", "h1"], "h2", 1, ranks=ranks)
    assert (back.order, back.highlight_order) == (("h2", "h1"), ("h1", "h2"))
