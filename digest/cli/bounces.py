"""`digest bounces process` and `digest subscribers show`: thin shells over pipeline.bounces and state."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from digest.cli.common import config_option, read_config, stdout
from digest.errors import UsageError
from digest.pipeline.bounces import choose_source, process_bounces
from digest.pipeline.subscribers import export_subscriber
from digest.state.signups import Signup
from digest.state.store import open_store


@click.group("bounces")
def bounces_group() -> None:
    """Process bounces and complaints that arrive in the bounce mailbox."""


@bounces_group.command("process")
@config_option
@click.option(
    "--maildir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Read this Maildir folder (instead of [bounces] maildir).",
)
@click.option("--imap", is_flag=True, help="Read the IMAP folder set in [bounces] (imap_host, folder).")
@click.option("--dry-run", is_flag=True, help="Classify and match only: change nothing, move nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message on its own line.")
def process_command(config_path: Path, maildir: Path | None, imap: bool, dry_run: bool, as_json: bool) -> int:
    """Classify each new message of the bounce mailbox (hard, soft, complaint, auto_reply, not_bounce),
    match it to a subscriber, and act on it.

    A hard bounce makes the subscriber bounced at once; [bounces] soft_limit soft bounces in a row
    across issues do the same; a complaint makes them complained. Processed messages are moved out of
    the way (Maildir: cur/ with the S flag; IMAP: \\Seen, and moved to [bounces] move_to), so a second
    run does nothing.
    """
    config = read_config(config_path)
    source = choose_source(config, maildir=maildir, imap=imap)
    db = open_store(config)
    try:
        report = process_bounces(
            config, db, source=source, maildir=maildir, dry_run=dry_run, now=lambda: datetime.now(UTC)
        )
    finally:
        db.close()
    if as_json:
        for outcome in report.outcomes:
            click.echo(json.dumps(outcome.as_json(), ensure_ascii=False))
        return 0
    for o in report.outcomes:
        who = o.subscriber or (", ".join(o.recipients) or "-")
        what = f" -> {o.changed_to}" if o.changed_to else ""
        status = f" {o.status}" if o.status else ""
        stdout.print(f"{o.source}: {o.kind}{status} {who}{what}", markup=False)
    counts = ", ".join(
        f"{report.count(k)} {k}" for k in ("hard", "soft", "complaint", "auto_reply", "not_bounce")
    )
    prefix = "Dry run: nothing changed. " if dry_run else ""
    stdout.print(
        f"{prefix}{len(report.outcomes)} message(s) from {source}: {counts};"
        f" {len(report.changed)} subscriber(s) changed",
        markup=False,
    )
    return 0


def _show_pending(pending: Signup) -> None:
    """`show` of an address with a sign-up waiting for its confirmation."""
    what = f"a new address for {pending.old_email}" if pending.old_email else "signed up"
    stdout.print(f"email:   {pending.email}", markup=False)
    stdout.print(f"name:    {pending.name or ''}", markup=False)
    stdout.print(f"status:  pending ({what}, not confirmed)", markup=False)
    stdout.print(f"since:   {pending.created_at:%Y-%m-%d %H:%M} UTC ({pending.method})", markup=False)
    stdout.print(f"last confirmation email: {pending.mailed_at:%Y-%m-%d %H:%M} UTC", markup=False)
    stdout.print(f"  source:  {pending.consent_source or '-'}", markup=False)
    stdout.print(f"  ip:      {pending.consent_ip or '-'}", markup=False)
    stdout.print(f"  sha256:  {pending.consent_sha256 or '-'}", markup=False)
    if pending.topics is not None:
        chosen = "; ".join(pending.topics) or "all"
        stdout.print(f"topics:  {chosen} (set when confirmed)", markup=False)


@click.command("show")
@config_option
@click.argument("email")
def show_command(config_path: Path, email: str) -> int:
    """Show everything held about one subscriber: profile, consent record, status history, bounces and
    complaints with their DSN status, and the issues sent to them."""
    config = read_config(config_path)
    db = open_store(config)
    try:
        subscriber = db.subscribers.get_subscriber(email.strip())
        events = list(db.bounces.events_for(email.strip())) if subscriber else []
        held = export_subscriber(db, email, logged=False) if subscriber else None
        pending = db.signups.get(email.strip()) if subscriber is None else None
    finally:
        db.close()
    if pending is not None:
        _show_pending(pending)
        return 0
    if subscriber is None:
        raise UsageError(f"{email} is not a subscriber", hint="digest subscribers list shows the list")
    stdout.print(f"email:   {subscriber.email}", markup=False)
    stdout.print(f"name:    {subscriber.name or ''}", markup=False)
    stdout.print(f"status:  {subscriber.status}", markup=False)
    stdout.print(f"reason:  {subscriber.reason or ''}", markup=False)
    stdout.print(f"since:   {subscriber.status_at or subscriber.updated_at:%Y-%m-%d %H:%M} UTC", markup=False)
    stdout.print(f"joined:  {subscriber.created_at:%Y-%m-%d %H:%M} UTC", markup=False)
    topics = held["profile"]["topics"] if held else []
    stdout.print(f"topics:  {'; '.join(topics) or 'all'}", markup=False)
    tags = held["profile"]["tags"] if held else []
    stdout.print(f"tags:    {', '.join(tags) or '-'}", markup=False)
    consent = held["consent"] if held else None
    if consent is None:
        stdout.print("consent: no record (joined before consent records were kept)", markup=False)
    else:
        stdout.print(f"consent: {consent['consent_method']} at {consent['consented_at']}", markup=False)
        stdout.print(f"  source:  {consent['source'] or '-'}", markup=False)
        stdout.print(f"  ip:      {consent['ip'] or '-'}", markup=False)
        sha = consent["consent_wording_sha256"]
        stdout.print(f"  wording: {consent['consent_wording'] or '-'}", markup=False)
        stdout.print(f"  sha256:  {sha or '-'}", markup=False)
    history = held["status_history"] if held else []
    stdout.print(f"status history: {len(history)}", markup=False)
    for change in history:
        stdout.print(
            f"  {change['at'][:16].replace('T', ' ')}  {change['status']}  {change['reason'] or ''}",
            markup=False,
        )
    sent = held["issues_sent"] if held else []
    stdout.print(f"issues: {len(sent)}", markup=False)
    for one in sent:
        stdout.print(f"  {one['at'][:16].replace('T', ' ')}  {one['issue']}  {one['status']}", markup=False)
    stdout.print(f"bounces and complaints: {len(events)}", markup=False)
    for e in events:
        changed = f" -> {e.changed_to}" if e.changed_to else ""
        stdout.print(
            f"  {e.at:%Y-%m-%d %H:%M}  {e.kind:<9} {e.status or '-':<7} issue {e.issue_id or '-'}"
            f"  {e.diagnostic or ''}{changed}  ({e.source})",
            markup=False,
        )
    return 0


def register(group: click.Group) -> None:
    """Add `bounces` to the `digest` group (`show` is added to `digest subscribers` in cli.send)."""
    group.add_command(bounces_group)
