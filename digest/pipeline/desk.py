"""The comms team's desk: preview users and their roles, sign-in, four-eyes approval and the audit trail.

The CLI (`digest users`, `digest status --audit`) and the preview app call these functions; the SQL is in
`digest.state.users` and `digest.state.audit`. Passwords are hashed with argon2id (argon2-cffi) and never
stored or logged.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from digest.config import Config
from digest.errors import UsageError
from digest.state.audit import AuditEvent
from digest.state.store import Store
from digest.state.users import User

log = logging.getLogger(__name__)

ROLES = ("editor", "approver", "admin")
# What each role may do: editors change the draft and send tests, approvers also approve, admins also
# manage users.
RIGHTS: dict[str, frozenset[str]] = {
    "editor": frozenset({"edit"}),
    "approver": frozenset({"edit", "approve"}),
    "admin": frozenset({"edit", "approve", "users"}),
}
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}")
# An argon2id hash of a random password: verified against when the user is unknown, so a wrong name
# takes as long as a wrong password.
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a password: the user does not exist")

__all__ = [
    "ROLES",
    "AuditEvent",
    "FourEyes",
    "User",
    "add_user",
    "allowed",
    "audit_events",
    "authenticate",
    "change_password",
    "four_eyes",
    "get_user",
    "has_users",
    "list_users",
    "record_audit",
    "remove_user",
]


def allowed(role: str | None, right: str) -> bool:
    """Whether `role` has `right` ("edit", "approve" or "users")."""
    return role is not None and right in RIGHTS.get(role, frozenset())


def check_name(name: str) -> str:
    """A user name: letters, digits and . _ @ + - (an email address works), at most 100 characters.

    Raises:
        UsageError: the name is empty or holds other characters.
    """
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a usable user name",
            hint="use letters, digits and . _ @ + - (such as 'asha' or 'asha@council.example'), at most 100",
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"{role!r} is not a role", hint=f"use one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    """Raises UsageError when the password is too short, too long or holds control characters."""
    if len(password) < MIN_PASSWORD:
        raise UsageError(
            f"the password is shorter than {MIN_PASSWORD} characters",
            hint="use a long passphrase, or a password manager's generated password",
        )
    if len(password) > MAX_PASSWORD:
        raise UsageError(f"the password is longer than {MAX_PASSWORD} characters")
    if any(unicodedata.category(c) == "Cc" for c in password):
        raise UsageError("the password holds control characters (a pasted line break?)")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(check_password(password))


def add_user(db: Store, name: str, role: str, password: str, *, now: datetime) -> User:
    """Add a preview user with an argon2id hash of `password`.

    Raises:
        UsageError: a bad name, role or password, or the name is taken.
    """
    check_name(name)
    check_role(role)
    if not db.users.add_user(name=name, role=role, password_hash=hash_password(password), at=now):
        raise UsageError(
            f"user {name!r} already exists", hint=f"`digest users passwd {name}` changes the password"
        )
    log.info("added preview user %s (%s)", name, role)
    user = db.users.get_user(name)
    assert user is not None  # noqa: S101 - just added
    return user


def require_user(db: Store, name: str) -> User:
    """Raises UsageError when there is no such user."""
    user = db.users.get_user(name)
    if user is None:
        raise UsageError(f"there is no user {name!r}", hint="`digest users list` shows the users")
    return user


def list_users(db: Store) -> list[User]:
    return db.users.list_users()


def has_users(db: Store) -> bool:
    return db.users.count_users() > 0


def remove_user(db: Store, name: str) -> None:
    """Raises UsageError when there is no such user."""
    if not db.users.remove_user(name):
        raise UsageError(f"there is no user {name!r}", hint="`digest users list` shows the users")
    log.info("removed preview user %s", name)


def change_password(db: Store, name: str, password: str, *, now: datetime) -> None:
    """Raises UsageError for an unknown user or an unusable password."""
    require_user(db, name)
    db.users.set_password_hash(name, hash_password(password), at=now)
    log.info("changed the password of preview user %s", name)


def authenticate(db: Store, name: str, password: str, *, now: datetime) -> User | None:
    """The user when `password` is theirs, else None (an unknown name costs the same time)."""
    user = db.users.get_user(name) if _NAME.fullmatch(name) else None
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _HASHER.check_needs_rehash(user.password_hash):
        db.users.set_password_hash(user.name, _HASHER.hash(password), at=now)
    return user


def get_user(db: Store, name: str) -> User | None:
    """A password user now (None once removed): a session ends when its user goes."""
    return db.users.get_user(name)


def header_role(config: Config, name: str) -> str | None:
    """The role `[preview.roles]` gives a user named by the proxy's header (`"*"`: anyone else)."""
    roles = dict(config.preview.roles)
    return roles.get(name.strip().lower(), roles.get("*"))


# --- audit and four eyes --------------------------------------------------------------------------------

# Actions that change what an issue says: the last person to do one cannot approve under four eyes.
CONTENT_ACTIONS = frozenset({"edit", "rebuild"})


def record_audit(
    db: Store,
    *,
    at: datetime,
    issue_id: str | None,
    actor: str,
    action: str,
    detail: str,
    content: bool | None = None,
) -> None:
    """Append one event to the audit trail (edit, rebuild, test-send, approve, void, send).

    `content`: whether it changed what the issue says (default: edits and rebuilds do).
    """
    db.audit.record(
        at=at,
        issue_id=issue_id,
        actor=actor or "unknown",
        action=action,
        detail=detail[:1000],
        content=action in CONTENT_ACTIONS if content is None else content,
    )


def audit_events(db: Store, *, issue_id: str | None = None, limit: int = 100) -> list[AuditEvent]:
    return db.audit.events(issue_id=issue_id, limit=limit)


@dataclass(frozen=True, slots=True)
class FourEyes:
    """Whether four-eyes approval applies to an issue, who changed it last, and who may approve it."""

    required: bool
    last_changed_by: str | None
    approvers: tuple[str, ...]  # password users who may approve now (header users are not listed)

    def refuses(self, name: str) -> bool:
        return self.required and self.last_changed_by is not None and self.last_changed_by == name


def four_eyes(config: Config, db: Store, issue_id: str) -> FourEyes:
    last = db.audit.last_content_change(issue_id)
    by = last.actor if last else None
    approvers = tuple(u.name for u in db.users.list_users() if allowed(u.role, "approve") and u.name != by)
    return FourEyes(config.approval.four_eyes, by, approvers)
