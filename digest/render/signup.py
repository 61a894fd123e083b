"""The confirmation email of a sign-up (double opt-in): its own small template, HTML and plain text.

Built-in templates `confirm_email.html` and `confirm_email.txt` (package data, next to the issue's); the
text one marks its values safe, as it is not HTML.
"""

from __future__ import annotations

from dataclasses import dataclass

from digest.render import BUILTIN_TEMPLATES, PageSet

_TEMPLATES = PageSet(BUILTIN_TEMPLATES)


@dataclass(frozen=True, slots=True)
class ConfirmationEmail:
    subject: str
    html: str
    text: str


def render_confirmation(
    *, list_title: str, confirm_url: str, hours: int, change: bool, organisation: str, lang: str
) -> ConfirmationEmail:
    """The email asking a reader to confirm a sign-up (or, with `change`, a new address)."""
    subject = (
        f"Confirm your new address for {list_title}"
        if change
        else f"Confirm your subscription to {list_title}"
    )
    context = {
        "list_title": list_title,
        "confirm_url": confirm_url,
        "hours": hours,
        "change": change,
        "organisation": organisation,
        "subject": subject,
        "lang": lang,
    }
    return ConfirmationEmail(
        subject=subject,
        html=_TEMPLATES.render("confirm_email.html", **context),
        text=_TEMPLATES.render("confirm_email.txt", **context),
    )
