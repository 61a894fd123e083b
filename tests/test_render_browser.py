"""The built email in a real browser (Debian Chromium via playwright) and under html-validate.

At 375 px and 600 px: standards mode, no horizontal scroll at 375 px, axe-core with no serious or critical
violation in the light and the dark colour scheme, for every golden case. Screenshots of the sample issue
at both widths are written next to it (and, with DIGEST_REGENERATE_GOLDEN=1, copied to docs/screenshots/).
The checks run on the real email.html (placeholders and all); the screenshots, made for people, show the
HTML part of email.eml: the same email personalised with sample values, as a reader would see it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from conftest import AXE_JS, require
from golden_cases import CASES, GOLDEN

from digest.cli import main
from digest.models import NAME_PLACEHOLDER, UNSUBSCRIBE_URL_PLACEHOLDER

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "docs" / "screenshots"
HTML_VALIDATE = REPO / "tests" / "js" / "node_modules" / ".bin" / "html-validate"
REGENERATE = os.environ.get("DIGEST_REGENERATE_GOLDEN") == "1"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
# html-validate's recommended rules, minus what email HTML needs (EMAIL-NOTES): presentational attributes,
# inline styles and Outlook conditional comments; MJML's <img height="auto"> and its
# <div role="article" aria-roledescription="email"> wrapper; and long <title>s (the title is the subject).
HTML_VALIDATE_CONFIG: dict[str, Any] = {
    "extends": ["html-validate:recommended"],
    "elements": ["html5", {"img": {"attributes": {"height": {"enum": ["/^\\d+$/", "auto"]}}}}],
    "rules": {
        "no-deprecated-attr": "off",
        "no-inline-style": "off",
        "no-conditional-comment": "off",
        "long-title": "off",
        "prefer-native-element": ["error", {"exclude": ["article"]}],
    },
}


@pytest.fixture(scope="module")
def sample_issue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped sample built with `digest build`, as `make run` does."""
    site = tmp_path_factory.mktemp("site")
    shutil.copy(REPO / "config.toml", site / "config.toml")
    shutil.copytree(REPO / "feeds", site / "feeds")
    assert main(["build", "--config", str(site / "config.toml"), "--as-of", "2025-05-09T17:00:00+01:00"]) == 0
    return site / "out" / "2025-W19"


def personalised_copy(issue: Path) -> Path:
    """The HTML part of the issue's email.eml (sample values filled in), as a file to screenshot."""
    message = message_from_bytes((issue / "email.eml").read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    html = part.get_content()
    assert NAME_PLACEHOLDER not in html and UNSUBSCRIBE_URL_PLACEHOLDER not in html
    copy = issue / "screenshot-email.html"
    copy.write_text(html, encoding="utf-8")
    return copy


def _shoot(browser: Any, issue: Path, width: int, scheme: str = "light") -> Path:
    """A full-page screenshot of the personalised email next to the issue (and in docs/ if regenerating)."""
    suffix = "-dark" if scheme == "dark" else ""
    page = _page(browser, width, scheme)
    try:
        page.goto(personalised_copy(issue).as_uri(), wait_until="load")
        assert "Hello Sam Sample," in page.inner_text("body")
        shot = issue / f"screenshot-{width}{suffix}.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()
    assert shot.stat().st_size > 10_000
    if REGENERATE:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, SCREENSHOTS / f"email-{width}{suffix}.png")
    return shot


def _page(browser: Any, width: int, scheme: str = "light") -> Any:
    # No network (the browser fixture blocks every request off this machine): remote images do not load.
    return browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)


def _axe(page: Any) -> list[dict[str, Any]]:
    result = page.evaluate(
        """async (tags) => {
            const r = await axe.run(document, {runOnly: {type: "tag", values: tags},
                                               rules: {"heading-order": {enabled: true}}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                           nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
        }""",
        AXE_TAGS,
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


@pytest.mark.browser
def test_sample_email_in_chromium_at_375_and_600_px(browser: Any, sample_issue: Path) -> None:
    url = (sample_issue / "email.html").as_uri()
    for width in (375, 600):
        page = _page(browser, width)
        try:
            page.goto(url, wait_until="load")
            assert page.evaluate("document.compatMode") == "CSS1Compat"
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, f"horizontal scroll at {width} px: content is {scroll} px wide"
            # The 600 px column: cards fill the narrow screen, and stay at 600 px on a wide one.
            card = page.evaluate("document.querySelector('.card').getBoundingClientRect().width")
            assert card == min(width, 600)
            assert f"Hello {NAME_PLACEHOLDER}," in page.inner_text("body")  # the real email.html
        finally:
            page.close()
        _shoot(browser, sample_issue, width)


@pytest.mark.browser
def test_dark_mode_changes_grounds_and_keeps_text_readable(browser: Any, sample_issue: Path) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        page = _page(browser, 600, scheme)
        try:
            page.goto((sample_issue / "email.html").as_uri(), wait_until="load")
            colours[scheme] = page.evaluate(
                """() => [getComputedStyle(document.querySelector('.card')).backgroundColor,
                          getComputedStyle(document.querySelector('.h2')).color,
                          getComputedStyle(document.querySelector('.lk')).color]"""
            )
        finally:
            page.close()
    _shoot(browser, sample_issue, 600, "dark")
    assert colours["light"] == ["rgb(255, 255, 255)", "rgb(33, 43, 50)", "rgb(0, 94, 184)"]
    assert colours["dark"] == ["rgb(29, 42, 51)", "rgb(240, 244, 245)", "rgb(140, 200, 255)"]


@pytest.mark.browser
@pytest.mark.parametrize("case", CASES)
def test_axe_finds_no_serious_violation_in_light_or_dark(browser: Any, case: str) -> None:
    problems = []
    for name in ("email.html", "web.html"):
        page = _page(browser, 375)
        try:
            page.goto((GOLDEN / case / "expected" / name).as_uri(), wait_until="load")
            scroll = page.evaluate("document.documentElement.scrollWidth")
            if scroll > 375:
                problems.append(f"{name}: horizontal scroll, {scroll} px wide at 375 px")
            page.add_script_tag(path=str(AXE_JS))
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                problems += [f"{name} ({scheme}): {v}" for v in _axe(page)]
        finally:
            page.close()
    assert problems == []


def test_html_validate_accepts_every_golden_email_and_web_page(tmp_path: Path) -> None:
    require(shutil.which("node"), "node is not installed")
    require(HTML_VALIDATE.exists(), "html-validate is not installed (make test runs npm ci in tests/js)")
    config = tmp_path / "htmlvalidate.json"
    config.write_text(json.dumps(HTML_VALIDATE_CONFIG))
    files = [str(GOLDEN / c / "expected" / n) for c in CASES for n in ("email.html", "web.html")]
    result = subprocess.run(
        [str(HTML_VALIDATE), "--config", str(config), *files], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_html_validate_would_catch_a_broken_page(tmp_path: Path) -> None:
    require(HTML_VALIDATE.exists(), "html-validate is not installed (make test runs npm ci in tests/js)")
    config = tmp_path / "htmlvalidate.json"
    config.write_text(json.dumps(HTML_VALIDATE_CONFIG))
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html lang="en"><head><title>x</title></head><body><img src="x"><p><div></p>'
    )
    result = subprocess.run(
        [str(HTML_VALIDATE), "--config", str(config), str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "wcag/h37" in result.stdout or "alt" in result.stdout


@pytest.mark.browser
def test_axe_would_catch_low_contrast_text_in_dark_mode_only(browser: Any, tmp_path: Path) -> None:
    page_file = tmp_path / "page.html"
    page_file.write_text(
        '<!DOCTYPE html><html lang="en"><head><title>t</title><style>'
        "@media (prefers-color-scheme: dark) { body { background: #111 } p { color: #333 } }"
        "</style></head><body><main><h1>Title</h1><p>Hard to read in the dark</p></main></body></html>"
    )
    page = _page(browser, 375)
    try:
        page.goto(page_file.as_uri())
        page.add_script_tag(path=str(AXE_JS))
        page.emulate_media(color_scheme="light")
        assert _axe(page) == []
        page.emulate_media(color_scheme="dark")
        assert [v["id"] for v in _axe(page)] == ["color-contrast"]
    finally:
        page.close()
