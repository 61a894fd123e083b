"""Render and compile: template search path, escaping, strict names, plain text, MJML and premailer output."""

from __future__ import annotations

import re
import socket
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest import render
from digest.compose import ComposeSettings, compose_issue
from digest.config import load_config
from digest.errors import RenderError, TemplateNotFoundError
from digest.models import NAME_PLACEHOLDER, UNSUBSCRIBE_URL_PLACEHOLDER, Entry, Image, Issue, Window
from digest.render import (
    BUILTIN_TEMPLATES,
    TEMPLATES_ENV,
    RenderOptions,
    RenderSettings,
    TemplateSet,
    builtin_template_dirs,
    excerpt,
    html_lang,
    intro_html,
    priority_style,
    render_issue,
    template_search_path,
    wrap_text,
)
from digest.render.compile import compile_email, inline_css, mjml_to_html

REPO = Path(__file__).resolve().parent.parent
CONFIG = load_config(REPO / "config.toml")
WINDOW = Window(datetime(2025, 5, 2, 16, tzinfo=UTC), datetime(2025, 5, 9, 16, tzinfo=UTC))


def _issue(*entries: Entry, intro: str = "") -> Issue:
    from digest.compose.draft import Draft

    return compose_issue(
        entries,
        window=WINDOW,
        issue_id="2025-W19",
        edition=3,
        settings=ComposeSettings.from_config(CONFIG),
        draft=Draft(intro=intro),
    )


def _entry(entry_id: str = "a", **fields: object) -> Entry:
    values: dict[str, object] = {
        "source": "BLMK news",
        "category": "News",
        "title": "Midwives celebrated",
        "link": "https://example.org/a",
        "published": datetime(2025, 5, 8, 9, tzinfo=UTC),
        "summary_text": "A summary.",
    }
    values.update(fields)
    return Entry(id=entry_id, **values)  # type: ignore[arg-type]


SETTINGS = RenderSettings.from_config(CONFIG)


# ---------------------------------------------------------------------------------------------- templates


def test_the_theme_folder_is_searched_before_the_built_in_templates(tmp_path: Path) -> None:
    (tmp_path / "email.txt").write_text("theme text for {{ issue.id }}\n")
    settings = replace(SETTINGS, template_dirs=template_search_path(tmp_path))
    parts = render_issue(_issue(_entry()), settings, RenderOptions())
    assert parts.text == "theme text for 2025-W19\n"
    assert "<mjml" in parts.mjml  # the other templates still come from templates/


def test_the_built_in_templates_are_found_by_env_then_beside_the_package(tmp_path: Path) -> None:
    assert builtin_template_dirs({}) == (BUILTIN_TEMPLATES,)  # this checkout
    (tmp_path / "email.mjml").write_text("<mjml></mjml>")
    assert builtin_template_dirs({TEMPLATES_ENV: str(tmp_path)}) == (tmp_path,)
    # An explicit DIGEST_TEMPLATES is used as given: a wrong folder fails naming it, never passed over.
    assert builtin_template_dirs({TEMPLATES_ENV: str(tmp_path / "nowhere")}) == (tmp_path / "nowhere",)
    assert template_search_path(tmp_path / "theme", {}) == (tmp_path / "theme", BUILTIN_TEMPLATES)


def test_without_built_in_templates_the_error_names_the_folder_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        render.settings, "BUILTIN_TEMPLATES", tmp_path / "site-packages" / "digest" / "templates"
    )
    dirs = builtin_template_dirs({})
    assert dirs == (tmp_path / "site-packages" / "digest" / "templates",)
    with pytest.raises(TemplateNotFoundError) as caught:
        TemplateSet(dirs).render("email.mjml", {})
    assert str(dirs[0] / "email.mjml") in str(caught.value)
    assert "reinstall digest" in (caught.value.hint or "")


def test_the_built_in_templates_are_package_data() -> None:
    assert Path(render.__file__).resolve().parent.parent / "templates" == BUILTIN_TEMPLATES
    assert (BUILTIN_TEMPLATES / "email.mjml").is_file()


def test_a_missing_template_names_every_path_searched(tmp_path: Path) -> None:
    templates = TemplateSet((tmp_path, BUILTIN_TEMPLATES))
    with pytest.raises(TemplateNotFoundError) as caught:
        templates.render("nope.mjml", {})
    message = str(caught.value)
    assert str(tmp_path / "nope.mjml") in message
    assert str(BUILTIN_TEMPLATES / "nope.mjml") in message
    assert caught.value.exit_code == 4


def test_a_missing_included_template_is_named_too(tmp_path: Path) -> None:
    (tmp_path / "email.txt").write_text('{% include "_gone.txt" %}')
    templates = TemplateSet((tmp_path, BUILTIN_TEMPLATES))
    with pytest.raises(
        TemplateNotFoundError, match=r"'_gone\.txt' not found; searched: .*_gone\.txt, .*_gone\.txt"
    ):
        templates.render("email.txt", {})


def test_an_undefined_name_and_a_syntax_error_are_render_errors(tmp_path: Path) -> None:
    (tmp_path / "email.txt").write_text("{{ issue.no_such_field }}")
    (tmp_path / "web.html").write_text("{% if %}")
    settings = replace(SETTINGS, template_dirs=(tmp_path, BUILTIN_TEMPLATES))
    with pytest.raises(RenderError, match="no_such_field"):
        render_issue(_issue(_entry()), settings, RenderOptions())
    with pytest.raises(RenderError, match=r"web.html:1: template syntax error"):
        TemplateSet(settings.template_dirs).render("web.html", {})


def test_feed_text_is_escaped_in_html_and_kept_as_is_in_plain_text() -> None:
    hostile = _entry(title="<b>Bold</b> & {{ 7*7 }}", summary_text="<script>alert(1)</script>")
    parts = render_issue(_issue(hostile), SETTINGS, RenderOptions())
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; {{ 7*7 }}" in parts.mjml
    assert "<script>" not in parts.mjml
    assert "&lt;script&gt;" in parts.web_html
    assert "<b>Bold</b> & {{ 7*7 }}" in parts.text
    assert "49" not in parts.text


def test_web_version_keeps_sanitised_summary_html_only() -> None:
    rich = _entry(
        summary_html='<p>Hi <a href="https://x.org" onclick="x()">x</a><script>y()</script><img src=x></p>'
    )
    web = render_issue(_issue(rich), SETTINGS, RenderOptions()).web_html
    assert '<a rel="noopener noreferrer" href="https://x.org">x</a>' in web
    assert "onclick" not in web
    assert "<script>y" not in web


def test_personalisation_markers_in_feed_text_are_made_inert() -> None:
    sneaky = _entry(title=f"Win {UNSUBSCRIBE_URL_PLACEHOLDER}", link=f"https://e.org/{NAME_PLACEHOLDER}")
    parts = render_issue(_issue(sneaky), SETTINGS, RenderOptions())
    html = compile_email(parts.mjml)
    for text in (html, parts.text):
        assert text.count(UNSUBSCRIBE_URL_PLACEHOLDER) == 1
        assert text.count(NAME_PLACEHOLDER) == 1
    assert "https://e.org/%25%25DIGEST_NAME%%" in html


# ---------------------------------------------------------------------------------------------- pieces


def test_excerpts_are_cut_at_a_word_with_an_ellipsis() -> None:
    long = _entry(summary_text="word " * 100)
    assert excerpt(long, 42) == "word word word word word word word word\u2026"
    assert excerpt(_entry(summary_text="", summary_html="<p>From <b>HTML</b> &amp; more</p>"), 99) == (
        "From HTML & more"
    )


def test_intro_markdown_headings_start_at_h2_and_raw_html_is_text() -> None:
    html = str(
        intro_html("#### Deep\n\nText <script>x()</script> [link](javascript:alert(1))\n\n###### Deeper")
    )
    assert "<h2>Deep</h2>" in html
    assert "<h3>Deeper</h3>" in html
    assert "<script>" not in html
    assert 'href="javascript' not in html  # markdown-it refuses the link; its text stays as text


def test_html_lang_and_priority_label_colours() -> None:
    assert html_lang("en_GB") == "en-GB"
    assert html_lang("cy") == "cy"
    assert priority_style("x", "#005EB8", "#212B32").text_colour == "#FFFFFF"
    assert priority_style("x", "#FFB81C", "#212B32").text_colour == "#212B32"  # NHS warm yellow


def test_plain_text_wraps_at_78_columns_except_urls() -> None:
    entries = [_entry(str(i), title="Midwives " * 15, summary_text="long " * 80) for i in range(3)]
    text = render_issue(_issue(*entries, intro="Para " * 40), SETTINGS, RenderOptions()).text
    for line in text.splitlines():
        assert len(line) <= 78 or re.fullmatch(r"\s*\S+", line), line
    assert wrap_text("a " * 50, first="* ", indent="  ").splitlines()[1].startswith("  a")


def test_plain_text_has_title_intro_highlights_sections_dates_excerpts_and_urls() -> None:
    entries = [
        _entry("m", title="Midwives celebrated", summary_text="Midwife summary."),
        _entry(
            "b", category="Blog", title="A blog post", summary_text="Blog summary.", link="https://e.org/b"
        ),
    ]
    text = render_issue(_issue(*entries, intro="Welcome **all**."), SETTINGS, RenderOptions()).text
    expected_in_order = [
        "BLMK Health and Care Partnership weekly news",
        "Issue 3, Friday 9 May 2025",
        "Welcome all.",
        "Our priorities in the news\n==========================",
        "* [Start Well] Midwives celebrated",
        "  Midwife summary.",
        "  https://example.org/a",
        "Our priorities\n--------------",  # [highlights] explain = true in the shipped config
        "News\n====",
        "Thursday 8 May 2025\n-------------------",
        "Blog\n====",
        "* A blog post",
        "  Blog summary.",
        "  https://e.org/b",
        f"Unsubscribe from these emails:\n{UNSUBSCRIBE_URL_PLACEHOLDER}",
    ]
    position = 0
    for piece in expected_in_order:
        found = text.find(piece, position)
        assert found >= 0, f"{piece!r} missing or out of order"
        position = found
    assert "<" not in text


def test_headlines_only_drops_excerpts_and_pictures() -> None:
    pictured = _entry(
        category="Blog", image=Image("https://e.org/p.jpg", "A picture"), summary_text="Excerpt"
    )
    full = render_issue(_issue(pictured), SETTINGS, RenderOptions())
    assert "https://e.org/p.jpg" in full.mjml
    assert 'alt="A picture"' in full.mjml
    short = render_issue(_issue(pictured), SETTINGS, RenderOptions(headlines_only=True, images=False))
    assert "https://e.org/p.jpg" not in short.mjml
    assert "Excerpt" not in short.mjml


# ---------------------------------------------------------------------------------------------- compile


def test_unknown_mj_tags_and_invalid_mjml_are_render_errors() -> None:
    with pytest.raises(RenderError, match="<mj-secton>"):
        mjml_to_html("<mjml><mj-body><mj-secton></mj-secton></mj-body></mjml>")
    with pytest.raises(RenderError, match="MJML could not be compiled"):
        mjml_to_html("<mjml><mj-body>")


def test_premailer_keeps_doctype_media_queries_important_outlook_comments_and_pixel_widths() -> None:
    html = compile_email(render_issue(_issue(_entry()), SETTINGS, RenderOptions()).mjml)
    assert html.startswith("<!DOCTYPE html>")
    assert "prefers-color-scheme: dark" in html
    assert "!important" in html
    assert "<!--[if mso | IE]>" in html
    assert "@media only screen and (min-width:480px)" in html
    assert 'lang="en-GB"' in html
    head = html[: html.index("<body")]
    assert "<link" not in head and "@import" not in head  # fonts={}: no web fonts
    # Inlined: the heading style from <mj-style> is on the element itself.
    assert re.search(r'<h2 class="h2" [^>]*style="[^"]*font-size:24px', html)


def test_inlining_keeps_image_width_attributes_in_pixels() -> None:
    html = inline_css(
        "<!doctype html><html><head><style>img{border:0}</style></head>"
        '<body><img src="x" width="550" alt=""></body></html>'
    )
    assert 'width="550"' in html
    assert html.startswith("<!DOCTYPE html>")


def test_premailer_does_no_network_access(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inlining a document that names external stylesheets and images must not resolve or connect."""
    calls: list[object] = []

    def refuse(*args: object, **kwargs: object) -> object:
        calls.append(args)
        raise AssertionError(f"network access during inlining: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    document = (
        "<!doctype html><html><head>"
        '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Ubuntu">'
        "<style>@import url(https://example.org/x.css); p { color: #212B32 }</style></head>"
        '<body><p style="background:url(https://example.org/bg.png)">x</p>'
        '<img src="https://example.org/i.png" alt=""></body></html>'
    )
    inlined = inline_css(document)
    assert "@import" not in inlined
    assert "p { color: #212B32 }" in inlined
    compile_email(render_issue(_issue(_entry()), SETTINGS, RenderOptions()).mjml)
    assert calls == []


def test_a_long_running_process_sees_new_edited_and_removed_override_templates(tmp_path: Path) -> None:
    import os

    theme, builtin = tmp_path / "theme", tmp_path / "builtin"
    theme.mkdir()
    builtin.mkdir()
    (builtin / "part.txt").write_text("built-in")
    path = (theme, builtin)
    assert render.templates_for(path).render("part.txt", {}) == "built-in"
    override = theme / "part.txt"
    override.write_text("override")
    assert render.templates_for(path).render("part.txt", {}) == "override"
    override.write_text("edited override")
    later = override.stat().st_mtime + 5
    os.utime(override, (later, later))
    assert render.templates_for(path).render("part.txt", {}) == "edited override"
    override.unlink()
    assert render.templates_for(path).render("part.txt", {}) == "built-in"


def test_render_is_the_only_importer_of_jinja2() -> None:
    package = Path(render.__file__).parent.parent
    importers = sorted(
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if re.search(r"^\s*(import jinja2|from jinja2 import)", p.read_text(encoding="utf-8"), re.MULTILINE)
    )
    assert importers == ["render/__init__.py"]


def test_page_templates_escape_feed_content_whatever_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "page.txt").write_text("{{ title }}")
    pages = render.PageSet(tmp_path)
    assert pages.render("page.txt", title="<script>x</script>") == "&lt;script&gt;x&lt;/script&gt;"
    with pytest.raises(RenderError, match="undefined"):
        pages.render("page.txt")


def test_readers_see_the_priority_label_but_never_the_tagging_reason() -> None:
    issue = _issue(_entry(title="Dying matters: support after a death", summary_text="Grief support."))
    reasons = [h.reason for h in issue.highlights] + [m.reason for e in issue.entries for m in e.matches]
    assert reasons and all(reasons)
    parts = render_issue(issue, SETTINGS, RenderOptions())
    for page in (parts.web_html, parts.text, parts.mjml):
        assert "Age Well" in page
        for reason in reasons:
            assert reason not in page
        assert "matched" not in page


def test_plain_text_shows_the_intro_markdown_as_readable_text() -> None:
    intro = (
        "Welcome to **this week's** news, with _thanks_ to [our midwives](https://example.org/midwives).\n\n"
        "## Coming up\n\n"
        "- Dying Matters week: see https://example.org/dm\n"
        "- A *long* item " + "that goes on " * 8 + "to wrap\n"
        "  - a nested item\n\n"
        "1. first\n2. second\n"
    )
    text = render_issue(_issue(_entry(), intro=intro), SETTINGS, RenderOptions()).text
    expected = (
        "Welcome to this week's news, with thanks to our midwives\n"
        "(https://example.org/midwives).\n\n"
        "Coming up\n---------\n\n"
        "* Dying Matters week: see https://example.org/dm\n"
        "* A long item that goes on that goes on that goes on that goes on that goes on\n"
        "  that goes on that goes on that goes on to wrap\n"
        "  * a nested item\n\n"
        "1. first\n2. second\n"
    )
    assert expected in text
    assert "**" not in text
    assert "](" not in text
