"""The email checks know every CSS colour form before computing contrast (issue 11, item 8)."""

from __future__ import annotations

import pytest
from test_render_emailcheck import GOOD_BODY, checks, page

from digest.checks.colour import contrast_ratio, parse_colour


@pytest.mark.parametrize(
    ("value", "rgb"),
    [
        ("lightgrey", (211, 211, 211)),
        ("LightSlateGray", (119, 136, 153)),
        ("#abc", (170, 187, 204)),
        ("#005EB8", (0, 94, 184)),
        ("rgb(50%, 20%, 10%)", (127.5, 51, 25.5)),
        ("rgb(0 94 184)", (0, 94, 184)),
        ("hsl(120, 100%, 25%)", (0, 127.5, 0)),
        ("hsl(120deg 100% 25%)", (0, 127.5, 0)),
    ],
)
def test_every_css_colour_form_is_read(value: str, rgb: tuple[float, float, float]) -> None:
    parsed = parse_colour(value)
    assert parsed is not None
    assert parsed == pytest.approx(rgb, abs=0.01)


def test_translucent_colours_blend_over_what_is_behind() -> None:
    assert parse_colour("rgba(0, 0, 0, 0.5)", (255, 255, 255)) == pytest.approx((127.5,) * 3)
    assert parse_colour("#00000080", (255, 255, 255)) == pytest.approx((127.0,) * 3, abs=0.6)
    assert parse_colour("currentcolor") is None
    assert parse_colour("bluish") is None


@pytest.mark.parametrize(
    "grey",
    ["lightgrey", "rgb(83%, 83%, 83%)", "hsl(0, 0%, 83%)", "#D3D3D3"],
)
def test_light_grey_text_fails_however_it_is_written(grey: str) -> None:
    assert contrast_ratio(grey, "#FFFFFF") < 1.7
    html = page(GOOD_BODY.replace("<h2>Section</h2>", f'<h2 style="color:{grey}">Section</h2>'))
    assert "contrast" in checks(html)


def test_readable_named_colours_pass() -> None:
    html = page(GOOD_BODY.replace("<h2>Section</h2>", '<h2 style="color:darkslategray">Section</h2>'))
    assert "contrast" not in checks(html)
