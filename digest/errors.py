"""The one exception tree of digest: every error carries a hint for the user and an exit code.

Exit codes (also listed in the README):
    0  success
    1  unexpected internal error (a bug: run again with -v and report the traceback)
    2  configuration or usage error
    3  sources: every source failed (with --strict: any source failed), or a feed could not be read
    4  render: a template or the email could not be produced, or an email check failed
    5  delivery: a message failed permanently or the mail server could not be reached
    6  state: the SQLite state store is unreadable or locked by another process
    7  busy: another run holds the lock
    8  approval: the issue needs approval before it can be sent
"""

from __future__ import annotations


class DigestError(Exception):
    """Base of every error digest reports to the user; `str()` reads "message: hint"-free."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(DigestError):
    """The configuration file is missing, unreadable or invalid; `problems` lists every one found."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems


class UsageError(DigestError):
    """A command was given arguments that cannot work together or a value it cannot use."""

    exit_code = 2


class InvalidValueError(UsageError):
    """A value a person gave cannot be used: an email address, a tag, a topic, a CSS selector, an edit
    of the issue. The message says what is wrong with it (callers add the key or field it came from).

    It is the one channel for bad input: never a bare ValueError, so that `except InvalidValueError`
    around a larger call cannot turn a bug (a ValueError from anywhere inside) into "enter an address".
    """


class SourceError(DigestError):
    """A source could not be fetched or parsed."""

    exit_code = 3


class FetchError(SourceError):
    """Fetching one source failed (network, HTTP status, size cap, path outside the config folder)."""


class ParseError(SourceError):
    """A fetched document is not a feed digest can read."""


class RenderError(DigestError):
    """The issue could not be rendered into an email."""

    exit_code = 4


class TemplateNotFoundError(RenderError):
    """A template was not found in any folder of the template search path."""


class EmailCheckError(RenderError):
    """A built email fails one or more quality checks."""


class DeliveryError(DigestError):
    """A message could not be delivered, or the mail server could not be reached."""

    exit_code = 5


class MailboxError(DeliveryError):
    """The bounce mailbox (a Maildir folder or an IMAP folder) could not be read or updated."""


class StateError(DigestError):
    """The SQLite state store could not be opened, migrated or written."""

    exit_code = 6


class BusyError(DigestError):
    """Another digest process holds the lock for this work."""

    exit_code = 7


class ApprovalError(DigestError):
    """The issue has not been approved (or its approval was voided by a later change)."""

    exit_code = 8
