"""PURE choice of an entry's picture: sizes from attributes or URLs, the best of several for the email's slot.

Feeds offer pictures in many sizes (the Guardian gives 140 and 460 px `media:content`, Sky a 70 px
thumbnail, GitHub a 30 px avatar). The email's picture slot is `SLOT_WIDTH` px wide: the best candidate is
the smallest at least that wide, else the largest; pictures known to be narrower than the configured
minimum are avatars or icons and are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

from digest.models import Image

SLOT_WIDTH = 552
MIN_IMAGE_WIDTH = 120
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")
_MAX_DIMENSION = 20_000
# "/70x70/" or "-640x360." in a path: width x height.
_PATH_SIZE = re.compile(r"(?:^|[/_-])(\d{2,5})x(\d{2,5})(?=[/._-]|$)")
_WIDTH_PARAMS = ("width", "w")
_HEIGHT_PARAMS = ("height", "h")


def dimension(value: object) -> int | None:
    """A pixel size from an attribute value ("460", "460px", 460), or None when absent or unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d{1,6})(?:\.\d+)?\s*(?:px)?\s*", value)
        if not match:
            return None
        number = int(match.group(1))
    else:
        return None
    return number if 0 < number <= _MAX_DIMENSION else None


def looks_like_image(url: str) -> bool:
    """True when the URL's path ends in a picture file extension (the query is not looked at)."""
    try:
        path = urlsplit(url).path.lower()
    except ValueError:
        return False
    return path.endswith(IMAGE_EXTENSIONS)


def size_from_url(url: str) -> tuple[int | None, int | None]:
    """Width and height an image URL states: `?width=460`/`?w=460` (and `height`/`h`), else a `70x70`
    path segment. (None, None) when the URL says nothing."""
    try:
        parts = urlsplit(url)
        query = {k.lower(): v for k, v in parse_qsl(parts.query)}
    except ValueError:
        return None, None
    width = next((dimension(query[k]) for k in _WIDTH_PARAMS if k in query), None)
    height = next((dimension(query[k]) for k in _HEIGHT_PARAMS if k in query), None)
    if width is not None:
        return width, height
    match = _PATH_SIZE.search(parts.path)
    if match:
        return dimension(match.group(1)), dimension(match.group(2))
    return None, height


def sized(image: Image) -> Image:
    """`image` with its width and height filled from its URL where the feed gave none."""
    if image.width is not None:
        return image
    width, height = size_from_url(image.url)
    if width is None:
        return image
    return replace(image, width=width, height=image.height or height)


def too_small(image: Image, min_width: int) -> bool:
    """True when the image is known to be narrower than `min_width` px (an avatar or an icon)."""
    return image.width is not None and image.width < min_width


def best_image(candidates: Iterable[Image], min_width: int = MIN_IMAGE_WIDTH) -> Image | None:
    """The candidate that best fills the picture slot: the smallest at least `SLOT_WIDTH` wide, else the
    widest; candidates of unknown width count after any of known width; too-narrow ones are dropped.
    Among equals the first wins."""
    usable = [c for c in (sized(c) for c in candidates) if not too_small(c, min_width)]
    if not usable:
        return None
    known = [c for c in usable if c.width is not None]
    if not known:
        return usable[0]
    wide = [c for c in known if (c.width or 0) >= SLOT_WIDTH]
    if wide:
        return min(wide, key=lambda c: c.width or 0)
    return max(known, key=lambda c: c.width or 0)
