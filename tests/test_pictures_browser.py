"""The corpus golden cases in Chromium with their pictures served locally at their real sizes (issue 11,
item 12): at 375 and 600 px, light and dark, no picture is drawn wider than its natural width, nothing
scrolls sideways, and axe-core finds no serious or critical violation, in the email and the web version."""

from __future__ import annotations

import html
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import AXE_JS
from golden_cases import GOLDEN, load_case
from test_render_browser import _axe

CORPUS_CASES = ("corpus-news", "corpus-releases", "corpus-languages")
# A picture whose size neither the feed nor its URL gives is served at this size (wider than the slot).
UNKNOWN_SIZE = (800, 533)


def png(width: int, height: int) -> bytes:
    """A plain grey PNG of exactly width x height pixels."""
    row = b"\x00" + b"\x88\x99\xaa" * width
    raw = zlib.compress(row * height, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def picture_server() -> Iterator[str]:
    """Serves /W/H.png as a W x H picture on 127.0.0.1, port 0."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            width, height = (int(part) for part in self.path.strip("/").removesuffix(".png").split("/"))
            body = png(width, height)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _natural_sizes(case: str) -> dict[str, tuple[int, int]]:
    sizes = {}
    for entry in load_case(case).entries:
        image = entry.image
        if image is None:
            continue
        if image.width is None:
            sizes[image.url] = UNKNOWN_SIZE
        else:
            sizes[image.url] = (image.width, image.height or round(image.width * 2 / 3))
    return sizes


def _local_copy(case: str, name: str, base: str, folder: Path) -> tuple[Path, dict[str, tuple[int, int]]]:
    """The golden file with every entry picture pointing at the local server at its natural size."""
    text = (GOLDEN / case / "expected" / name).read_text(encoding="utf-8")
    served: dict[str, tuple[int, int]] = {}
    for url, (width, height) in _natural_sizes(case).items():
        local = f"{base}/{width}/{height}.png"
        for form in (html.escape(url), url):
            if form in text:
                text = text.replace(form, local)
                served[local] = (width, height)
    copy = folder / f"{case}-{name}"
    copy.write_text(text, encoding="utf-8")
    return copy, served


def _page(browser: Any, width: int, base: str) -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith((base, "file:")) else route.abort(),
    )
    return page


@pytest.mark.browser
@pytest.mark.parametrize("case", CORPUS_CASES)
def test_corpus_pictures_at_real_sizes_in_chromium(
    browser: Any, picture_server: str, case: str, tmp_path: Path
) -> None:
    problems: list[str] = []
    pictures_seen = 0
    for name in ("email.html", "web.html"):
        copy, served = _local_copy(case, name, picture_server, tmp_path)
        for width in (375, 600):
            page = _page(browser, width, picture_server)
            try:
                page.goto(copy.as_uri(), wait_until="load")
                drawn = page.evaluate(
                    """(base) => [...document.images].filter(i => i.currentSrc.startsWith(base)).map(i => ({
                        src: i.currentSrc, complete: i.complete, natural: i.naturalWidth,
                        drawn: i.getBoundingClientRect().width}))""",
                    picture_server,
                )
                for picture in drawn:
                    pictures_seen += 1
                    expected = served[picture["src"]][0]
                    if not picture["complete"] or picture["natural"] != expected:
                        problems.append(f"{name} at {width}: {picture['src']} did not load at {expected} px")
                    if picture["drawn"] > picture["natural"] + 0.5:
                        problems.append(
                            f"{name} at {width}: {picture['src']} drawn {picture['drawn']} px wide,"
                            f" natural {picture['natural']} px"
                        )
                scroll = page.evaluate("document.documentElement.scrollWidth")
                if scroll > width:
                    problems.append(f"{name}: horizontal scroll at {width} px ({scroll} px wide)")
                page.add_script_tag(path=str(AXE_JS))
                for scheme in ("light", "dark"):
                    page.emulate_media(color_scheme=scheme)
                    problems += [f"{name} at {width} ({scheme}): {v}" for v in _axe(page)]
            finally:
                page.close()
    assert problems == []
    if case != "corpus-languages":  # BBC Chinese's entries carry no pictures
        assert pictures_seen > 0


def test_the_png_maker_makes_pictures_of_the_size_asked() -> None:
    data = png(151, 99)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (151, 99)
