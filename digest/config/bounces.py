"""Readers of `[bounces]` and of the envelope-sender keys of `[delivery]` (bounce_address, verp)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast

from digest.config.schema import BounceSettings, Security
from digest.config.table import Table, local_path

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HOST_PATTERN = re.compile(r"[A-Za-z0-9*.-]+(:\d{1,5})?")
ADDRESS = re.compile(r"[^@\s<>\"]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+|[^@\s<>\"]+@localhost")


def address_problem(value: str) -> str | None:
    """Why `value` cannot be an envelope sender (None when it can)."""
    if not value.isascii() or not ADDRESS.fullmatch(value):
        return f"{value!r} is not an email address such as 'bounces@news.example.org'"
    if "+" in value.partition("@")[0]:
        return f"{value!r}: the local part must not contain '+' (verp adds +<id> to it)"
    return None


def read_bounces(t: Table, root: Path) -> BounceSettings:
    """`[bounces]` (the caller keeps None when the table is absent); problems are recorded on `t`."""
    d = BounceSettings()
    maildir = t.text("maildir", None)
    maildir_path = None
    if isinstance(maildir, str):
        maildir_path = local_path(t, "maildir", maildir, root, must_exist=False)
    ca_file = t.text("ca_file", None)
    ca_path = local_path(t, "ca_file", ca_file, root, must_exist=True) if isinstance(ca_file, str) else None
    sns_ca = t.text("sns_ca_file", None)
    sns_ca_path = (
        local_path(t, "sns_ca_file", sns_ca, root, must_exist=True) if isinstance(sns_ca, str) else None
    )
    imap_host = t.text("imap_host", None)
    tls = cast(Security, t.choice("tls", ("none", "starttls", "tls"), d.tls))
    port_default = 993 if tls == "tls" else 143
    settings = BounceSettings(
        maildir=maildir_path,
        imap_host=imap_host if isinstance(imap_host, str) and imap_host.strip() else None,
        imap_port=t.integer("imap_port", port_default, minimum=1, maximum=65_535),
        imap_user=t.text("imap_user", None),
        password_env=t.text("password_env", None),
        folder=t.text("folder", d.folder),
        move_to=t.text("move_to", None),
        tls=tls,
        ca_file=ca_path,
        timeout=t.number("timeout", d.timeout, minimum=1.0, maximum=3600.0),
        soft_limit=t.integer("soft_limit", d.soft_limit, minimum=1, maximum=100),
        sns_cert_hosts=t.strings("sns_cert_hosts", d.sns_cert_hosts),
        sns_ca_file=sns_ca_path,
        sns_topic_arns=t.strings("sns_topic_arns"),
    )
    if settings.imap_host is not None:
        if not settings.imap_user:
            t.problem("imap_user", "imap_host is set, so name the IMAP user too")
        if not settings.password_env:
            t.problem(
                "password_env", "imap_host is set, so name the environment variable holding the password"
            )
    else:
        for key in ("imap_user", "password_env", "move_to", "ca_file"):
            if key in t.data:
                t.problem(key, "is only used with imap_host (an IMAP bounce mailbox)")
    if isinstance(settings.password_env, str) and not ENV_NAME.fullmatch(settings.password_env):
        t.problem("password_env", f"{settings.password_env!r} is not an environment variable name")
    for i, pattern in enumerate(settings.sns_cert_hosts):
        if not HOST_PATTERN.fullmatch(pattern) or pattern.strip("*.") == "":
            t.problems.append(
                f"{t.where('sns_cert_hosts')}[{i}]: {pattern!r} is not a host name pattern such as"
                " 'sns.*.amazonaws.com'"
            )
    for i, arn in enumerate(settings.sns_topic_arns):
        if not arn.startswith("arn:"):
            t.problems.append(
                f"{t.where('sns_topic_arns')}[{i}]: {arn!r} is not an SNS topic ARN (arn:aws:sns:...)"
            )
    t.finish()
    return settings
