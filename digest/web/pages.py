"""The web area's static files, and its page rendering as the pipeline provides it.

Pages are rendered by `digest.render.pages` (Jinja2 lives in `digest.render`); the web apps reach it
through `digest.pipeline.web`, never directly.
"""

from __future__ import annotations

from pathlib import Path

from digest.pipeline.web import PageFormat, render_message, render_page

__all__ = ["STATIC", "PageFormat", "render_message", "render_page"]

STATIC = Path(__file__).with_name("static")
