"""The issue draft file: round trip, atomic save, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.compose.draft import Draft, draft_path, dump_draft, load_draft, save_draft
from digest.errors import RenderError
from digest.safe_text import scrub_text

# A draft round-trips unchanged once the characters `load_draft` removes (control characters, lone
# surrogates) are out: see test_control_characters_in_a_draft_are_removed_on_load for those.
ids = st.text(min_size=1, max_size=20).map(scrub_text).filter(bool)
drafts = st.builds(
    Draft,
    intro=st.text(max_size=200).map(lambda s: scrub_text(s).strip("\n")),
    pinned=st.lists(ids, max_size=4, unique=True).map(tuple),
    dropped=st.lists(ids, max_size=4, unique=True).map(tuple),
    order=st.lists(ids, max_size=4, unique=True).map(tuple),
    highlight_order=st.lists(ids, max_size=4, unique=True).map(tuple),
    retag=st.dictionaries(ids, st.lists(ids, max_size=3, unique=True).map(tuple), max_size=3).map(
        lambda d: tuple(sorted(d.items()))
    ),
)


@settings(max_examples=60, deadline=None)
@given(draft=drafts)
def test_save_then_load_gives_the_same_draft(draft: Draft, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("d") / "2025-W19.draft.toml"
    save_draft(path, draft)
    assert load_draft(path) == draft


def test_control_characters_in_a_draft_are_removed_on_load(tmp_path: Path) -> None:
    path = tmp_path / "2025-W19.draft.toml"
    path.write_text(
        'intro = "Hello\\u0000 wor\\u0008ld\\u000B\\u000C\\u001F\\u007F\\uFFFE\\uFFFF!"\n'
        'pinned = ["abc\\u0001"]\n',
        encoding="utf-8",
    )
    draft = load_draft(path)
    assert draft.intro == "Hello world!"
    assert draft.pinned == ("abc",)


def test_a_missing_draft_is_empty(tmp_path: Path) -> None:
    assert load_draft(tmp_path / "absent.draft.toml").is_empty


def test_the_draft_lives_next_to_the_output_folder(tmp_path: Path) -> None:
    assert draft_path(tmp_path, "2025-W19") == tmp_path / "2025-W19.draft.toml"


def test_save_replaces_atomically_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "x.draft.toml"
    save_draft(path, Draft(intro="one"))
    save_draft(path, Draft(intro="two", pinned=("a",)))
    assert load_draft(path) == Draft(intro="two", pinned=("a",))
    assert [p.name for p in tmp_path.iterdir()] == ["x.draft.toml"]
    assert dump_draft(Draft()).startswith("# Edits to this issue")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('pinned = "a"', "pinned must be a list of entry ids"),
        ("dropped = [1]", "dropped must be a list of entry ids"),
        ('order = [""]', "order must be a list of entry ids"),
        ("highlight_order = 1", "highlight_order must be a list of entry ids"),
        ("intro = 3", "intro must be a string of Markdown"),
        ('retag = "x"', "retag must be a table"),
        ('[retag]\n"id" = "Start Well"', "retag.'id' must be a list of priority names"),
        ("pined = []", "unknown key 'pined'"),
        ("pinned = [", "the draft is not valid TOML"),
        ('intro = "unclosed\npinned = []', "(at line 1, column"),
    ],
)
def test_a_bad_draft_is_a_render_error_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "2025-W19.draft.toml"
    path.write_text(text)
    with pytest.raises(RenderError) as caught:
        load_draft(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert caught.value.exit_code == 4


def test_a_draft_with_several_bad_keys_reports_them_all(tmp_path: Path) -> None:
    path = tmp_path / "2025-W19.draft.toml"
    path.write_text('pined = []\ndropped = [1]\nintro = 3\n[retag]\n"id" = "Start Well"\n')
    with pytest.raises(RenderError) as caught:
        load_draft(path)
    for message in ("unknown key 'pined'", "dropped must be", "intro must be", "retag.'id' must be"):
        assert message in str(caught.value)


def test_an_unclosed_string_points_at_the_toml_line_not_at_a_key(tmp_path: Path) -> None:
    path = tmp_path / "2025-W19.draft.toml"
    path.write_text('pinned = []\nintro = "unclosed\norder = []\n')
    with pytest.raises(RenderError) as caught:
        load_draft(path)
    assert "line 2, column" in str(caught.value)
    assert "line and column" in (caught.value.hint or "")
    assert "key" not in (caught.value.hint or "")


def test_a_draft_from_before_highlight_order_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "2025-W19.draft.toml"
    path.write_text('intro = "Hi"\npinned = ["p"]\ndropped = []\norder = ["a", "b"]\n\n[retag]\n')
    assert load_draft(path) == Draft(intro="Hi", pinned=("p",), order=("a", "b"))
    save_draft(path, load_draft(path))
    assert "highlight_order = []" in path.read_text()


def test_save_into_an_unwritable_place_is_a_render_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RenderError, match="cannot write the draft"):
        save_draft(blocker / "sub" / "x.draft.toml", Draft())
