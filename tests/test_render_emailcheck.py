"""The email checks: each passes a good email and catches the problem it is for; `digest check --email`."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.checks.email import SIZE_LIMIT, check_email, contrast_ratio
from digest.cli import main

REPO = Path(__file__).resolve().parent.parent
GOOD_HEAD = (
    '<!DOCTYPE html><html lang="en-GB"><head><title>News</title>'
    '<meta name="color-scheme" content="light dark"><style>{css}</style></head>'
)


def page(body: str, css: str = "", head: str = GOOD_HEAD) -> str:
    return head.format(css=css) + f'<body style="background-color:#F0F4F5;color:#212B32">{body}</body></html>'


GOOD_BODY = (
    '<table role="presentation"><tr><td style="background-color:#FFFFFF">'
    "<h1>News</h1><h2>Section</h2><h3>Day</h3>"
    '<p><a href="https://e.org" style="color:#005EB8">Midwives win</a></p>'
    '<img src="https://e.org/i.png" alt="">'
    "</td></tr></table>"
)


def checks(html: str, lang: str | None = "en-GB") -> set[str]:
    return {p.check for p in check_email(html, lang=lang)}


def test_a_good_email_passes() -> None:
    assert check_email(page(GOOD_BODY), lang="en-GB") == ()


def test_contrast_ratio_matches_wcag() -> None:
    assert contrast_ratio("#FFFFFF", "#000000") == pytest.approx(21.0)
    assert contrast_ratio("#005EB8", "#FFFFFF") == pytest.approx(6.38, abs=0.01)
    assert contrast_ratio("#FFF", "#fff") == 1.0
    with pytest.raises(ValueError, match="not a colour"):
        contrast_ratio("bluish", "#fff")


@pytest.mark.parametrize(
    ("html", "check"),
    [
        (page(GOOD_BODY) + "<!--" + "x" * SIZE_LIMIT + "-->", "size"),
        (page(GOOD_BODY.replace(' role="presentation"', "")), "tables"),
        (page(GOOD_BODY.replace(' alt=""', "")), "alt"),
        (page(GOOD_BODY.replace("<h3>Day</h3>", "<h4>Day</h4>")), "headings"),
        (page(GOOD_BODY.replace("<h1>News</h1>", "")), "headings"),
        (page(GOOD_BODY.replace("Midwives win", "Click here")), "link-text"),
        (page(GOOD_BODY.replace("Midwives win", "<img src='x' alt=''>")), "link-text"),
        (page(GOOD_BODY.replace("#005EB8", "#9AB8D6")), "contrast"),
        (page(GOOD_BODY.replace('style="background-color:#FFFFFF"', 'bgcolor="#4C6272"')), "contrast"),
        (page(GOOD_BODY + "<script>x()</script>"), "script"),
        (page(GOOD_BODY.replace("<h1>", '<h1 onclick="x()">')), "script"),
        (page(GOOD_BODY.replace("https://e.org", "javascript:x()")), "script"),
        (
            page(GOOD_BODY, head=GOOD_HEAD + '<link rel="stylesheet" href="https://e.org/x.css">'),
            "stylesheet",
        ),
        (page(GOOD_BODY, css="@import url(https://e.org/x.css);"), "stylesheet"),
        (
            page(GOOD_BODY, head=GOOD_HEAD.replace('<meta name="color-scheme" content="light dark">', "")),
            "color-scheme",
        ),
        (page(GOOD_BODY, head=GOOD_HEAD.replace("<!DOCTYPE html>", "")), "doctype"),
        (page(GOOD_BODY, head=GOOD_HEAD.replace("<!DOCTYPE html>", "<!doctype html>")), "doctype"),
        (page(GOOD_BODY, head=GOOD_HEAD.replace('lang="en-GB"', 'lang="und"')), "lang"),
        (page(GOOD_BODY, head=GOOD_HEAD.replace("<title>News</title>", "<title></title>")), "title"),
        (page(GOOD_BODY + "<mj-secton></mj-secton>"), "mjml"),
        (
            page(
                GOOD_BODY,
                css="@media (prefers-color-scheme: dark) { .g { background-color: #111B21 !important }"
                " .l { color: #005EB8 !important } }",
            ),
            "dark-mode",
        ),
        (
            page(
                GOOD_BODY,
                css="@media (prefers-color-scheme:dark) { .b { color: #777 !important; background: #666 } }",
            ),
            "dark-mode",
        ),
    ],
)
def test_each_check_catches_its_problem(html: str, check: str) -> None:
    assert check in checks(html)


def test_lang_must_match_the_configured_locale() -> None:
    assert "lang" in checks(page(GOOD_BODY), lang="cy")
    assert "lang" not in checks(page(GOOD_BODY), lang=None)


def test_hidden_text_such_as_the_preheader_is_not_contrast_checked() -> None:
    hidden = '<div style="display:none;color:#ffffff">preheader</div>'
    assert check_email(page(hidden + GOOD_BODY), lang="en-GB") == ()


def test_translucent_colours_are_blended() -> None:
    faint = GOOD_BODY.replace("color:#005EB8", "color:rgba(0, 94, 184, 0.3)")
    assert "contrast" in checks(page(faint))


def test_digest_check_email_exits_4_and_lists_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.html"
    good.write_text(page(GOOD_BODY))
    bad = tmp_path / "bad.html"
    bad.write_text(page(GOOD_BODY.replace(' alt=""', "").replace("Midwives win", "here")))
    config = str(REPO / "config.toml")
    assert main(["check", "--config", config, "--email", str(good)]) == 0
    assert f"{good}: ok" in capsys.readouterr().out
    assert main(["check", "--config", config, "--email", str(good), "--email", str(bad)]) == 4
    err = capsys.readouterr().err
    assert f"{bad}: 2 problems" in err
    assert "alt: <img src='https://e.org/i.png'> has no alt" in err
    assert "link-text: link text 'here' says nothing" in err
    assert "1 email failed the checks" in err
    assert main(["check", "--config", config, "--email", str(tmp_path / "absent.html")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_check_email_works_without_a_config_file_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    good = tmp_path / "good.html"
    good.write_text(page(GOOD_BODY))
    bad = tmp_path / "bad.html"
    bad.write_text(page(GOOD_BODY).replace('lang="en-GB"', 'lang="fr"'))
    assert main(["check", "--email", str(good)]) == 0
    captured = capsys.readouterr()
    assert f"{good}: ok" in captured.out
    assert "checking the emails only, lang against en_GB" in captured.err
    assert main(["check", "--email", str(bad)]) == 4
    assert "lang" in capsys.readouterr().err
    # An explicit --config that is missing is still an error (exit 2), as is a bad config.
    assert main(["check", "--config", "absent.toml", "--email", str(good)]) == 2
    assert "absent.toml: config file not found" in capsys.readouterr().err
