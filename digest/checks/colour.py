"""CSS colours and their WCAG 2 contrast: used by the email checks and by the theme's label colours."""

from __future__ import annotations

from tinycss2 import color4

RGB = tuple[float, float, float]


def parse_colour(value: str, behind: RGB | None = None) -> RGB | None:
    """A CSS colour as 0-255 RGB (blending a translucent one over `behind`); None if not understood.

    Every CSS Color 4 form is read (by tinycss2): the 148 named colours such as `lightgrey`, #rgb,
    #rrggbb(aa), rgb()/rgba() with numbers or percentages, hsl()/hsla(), hwb(), space-separated syntax.
    `currentcolor` and unknown values give None.
    """
    try:
        parsed = color4.parse_color(value.strip())
    except (ValueError, TypeError):  # tinycss2 raises on a few malformed functions
        return None
    if not isinstance(parsed, color4.Color):
        return None
    srgb = parsed.to("srgb")
    r, g, b = (min(255.0, max(0.0, c * 255)) for c in srgb.coordinates)
    alpha = float(srgb.alpha)
    if alpha < 1 and behind is not None:
        return (
            alpha * r + (1 - alpha) * behind[0],
            alpha * g + (1 - alpha) * behind[1],
            alpha * b + (1 - alpha) * behind[2],
        )
    return (r, g, b)


def _luminance(rgb: RGB) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(foreground: str | RGB, background: str | RGB) -> float:
    """WCAG 2 contrast ratio of two colours (1.0 to 21.0).

    Raises:
        ValueError: a colour is not a CSS colour this module understands.
    """
    fg = parse_colour(foreground) if isinstance(foreground, str) else foreground
    bg = parse_colour(background) if isinstance(background, str) else background
    if fg is None or bg is None:
        raise ValueError(f"not a colour: {foreground!r} or {background!r}")
    light, dark = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)
