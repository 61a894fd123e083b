"""CSS colours and their WCAG 2 contrast: used by the email checks and by the theme's label colours."""

from __future__ import annotations

import re

_NAMED = {
    "white": "#ffffff",
    "black": "#000000",
    "red": "#ff0000",
    "green": "#008000",
    "blue": "#0000ff",
    "grey": "#808080",
    "gray": "#808080",
    "yellow": "#ffff00",
    "silver": "#c0c0c0",
}
_HEX = re.compile(r"#([0-9a-f]{3}|[0-9a-f]{6})\b", re.IGNORECASE)
_RGB = re.compile(r"rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:[\s,/]+([\d.]+%?))?\s*\)", re.IGNORECASE)

RGB = tuple[float, float, float]


def parse_colour(value: str, behind: RGB | None = None) -> RGB | None:
    """A CSS colour as 0-255 RGB (blending a translucent one over `behind`); None if not understood."""
    value = value.strip().lower()
    value = _NAMED.get(value, value)
    match = _HEX.fullmatch(value)
    if match:
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))
    match = _RGB.fullmatch(value)
    if match:
        r, g, b = (float(match.group(i)) for i in (1, 2, 3))
        alpha_text = match.group(4)
        alpha = 1.0
        if alpha_text:
            alpha = float(alpha_text[:-1]) / 100 if alpha_text.endswith("%") else float(alpha_text)
        if alpha < 1 and behind is not None:
            return tuple(alpha * c + (1 - alpha) * d for c, d in zip((r, g, b), behind, strict=True))  # type: ignore[return-value]
        return (r, g, b)
    return None


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
