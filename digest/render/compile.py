"""The only importer of mjml and premailer: MJML source -> the final HTML email, CSS inlined.

mjml-python (MRML) turns MJML into table-based HTML; premailer then inlines the CSS for clients that
ignore `<style>`. premailer's defaults damage MJML output, so it runs with the settings verified in
EMAIL-NOTES: the doctype is upper-cased first (a lower-case one is dropped, putting browsers in quirks
mode), `!important` and the `<style>` blocks are kept (media queries and dark mode need them), image
width/height attributes are left alone (Outlook needs pixels), and nothing is fetched over the network
(`@import` rules are removed first: cssutils fetches them even when premailer is told not to).
"""

from __future__ import annotations

import logging
import re

from mjml import mjml2html
from premailer import Premailer

from digest.errors import RenderError

logger = logging.getLogger(__name__)
_DOCTYPE = re.compile(r"^\s*<!doctype html>", re.IGNORECASE)
_MJ_TAG = re.compile(r"<mj-[a-z-]+")
_STYLE_BLOCK = re.compile(r"(<style\b[^>]*>)(.*?)(</style>)", re.IGNORECASE | re.DOTALL)
_IMPORT = re.compile(r"@import\s+(?:url\()?[^;]*;?", re.IGNORECASE)


def _drop_imports(html: str) -> str:
    """Remove `@import` rules from `<style>` blocks: cssutils fetches them even with allow_network=False."""

    def clean(match: re.Match[str]) -> str:
        css = match.group(2)
        if "@import" not in css.lower():
            return match.group(0)
        logger.warning("removed @import from a <style> block (an email cannot load external CSS)")
        return match.group(1) + _IMPORT.sub("", css) + match.group(3)

    return _STYLE_BLOCK.sub(clean, html)


def mjml_to_html(source: str) -> str:
    """Compile MJML with mjml-python (no web fonts, no comments except Outlook's conditional ones).

    Raises:
        RenderError: the MJML is invalid, or an unknown `mj-` tag passed through unconverted.
    """
    try:
        html = str(mjml2html(source, disable_comments=True, fonts={}))
    except ValueError as e:
        raise RenderError(
            f"MJML could not be compiled: {e}",
            hint="check the email template (email.mjml in [theme] templates or digest/templates)",
        ) from e
    leaked = _MJ_TAG.search(html)
    if leaked:
        raise RenderError(
            f"MJML tag {leaked.group(0)}> was not converted (misspelt or unknown to mjml-python)",
            hint="fix the tag name in the email template",
        )
    return html


def inline_css(html: str) -> str:
    """Inline the CSS of `<style>` blocks into style attributes, keeping media queries and `!important`.

    Raises:
        RenderError: premailer could not process the document.
    """
    html = _drop_imports(_DOCTYPE.sub("<!DOCTYPE html>", html, count=1))
    try:
        inliner = Premailer(
            html,
            allow_network=False,
            strip_important=False,
            keep_style_tags=True,
            disable_basic_attributes=["width", "height"],
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
            disable_link_rewrites=True,
        )
        out = str(inliner.transform(pretty_print=False))
    except Exception as e:  # premailer raises bare lxml/cssutils errors; wrapped where they leave us
        raise RenderError(
            f"CSS inlining failed: {type(e).__name__}: {e}", hint="check the <mj-style> CSS"
        ) from e
    if not _DOCTYPE.match(out):
        out = "<!DOCTYPE html>\n" + out
    return out


def compile_email(source: str) -> str:
    """MJML source -> final HTML email (compiled, then CSS inlined)."""
    return inline_css(mjml_to_html(source))
