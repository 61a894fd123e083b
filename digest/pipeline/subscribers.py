"""Data rights (UK GDPR) over the subscriber list: a subject access export and erasure (`forget`).

Both are logged without the address (a masked form only), so the log is not a copy of it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from digest.errors import UsageError
from digest.state.store import Store

log = logging.getLogger(__name__)


def _unknown(email: str) -> UsageError:
    return UsageError(f"{email} is not a subscriber", hint="digest subscribers list shows the list")


def export_subscriber(db: Store, email: str, *, logged: bool = True) -> dict[str, Any]:
    """Everything held about one person: profile (with topics and tags), consent record (with the
    wording), status history, bounces and complaints, and every issue sent (or attempted) to them.

    Raises:
        UsageError: the address is not on the list.
    """
    subscriber = db.subscribers.get_subscriber(email.strip())
    if subscriber is None:
        raise _unknown(email)
    consent: dict[str, Any] | None = None
    if subscriber.consent is not None:
        record = subscriber.consent
        consent = {
            "consented_at": record.consented_at.isoformat(),
            "consent_method": record.method,
            "consent_wording_sha256": record.wording_sha256,
            "consent_wording": db.consent.wording(record.wording_sha256) if record.wording_sha256 else None,
            "source": record.source,
            "ip": record.ip,
        }
    if logged:
        log.info("exported the data held about one subscriber (subject access)")
    return {
        "profile": {
            "email": subscriber.email,
            "name": subscriber.name,
            "status": subscriber.status,
            "reason": subscriber.reason,
            "status_since": (subscriber.status_at or subscriber.updated_at).isoformat(),
            "created_at": subscriber.created_at.isoformat(),
            "updated_at": subscriber.updated_at.isoformat(),
            "topics": list(db.topics.topics_of(subscriber.email)),  # chosen priorities; []: all topics
            "tags": list(db.tags.tags_of(subscriber.email)),  # audiences of [[editions]]
        },
        "consent": consent,
        "status_history": [
            {"at": c.at.isoformat(), "status": c.status, "reason": c.reason}
            for c in db.subscribers.history(subscriber.email)
        ],
        "bounces_and_complaints": [
            {"at": e.at.isoformat(), "kind": e.kind, "status": e.status, "issue": e.issue_id}
            for e in db.bounces.events_for(subscriber.email)
        ],
        "issues_sent": [
            {"issue": issue_id, "status": status, "at": at.isoformat()}
            for issue_id, status, at in db.ledger.sends_to(subscriber.email)
        ],
    }


def forget_subscriber(db: Store, email: str, *, now: datetime) -> int:
    """Erase one person: their row (name, consent details), topics, tags, pending sign-ups, status history
    and bounce events are deleted, their address in the audit trail (a test copy sent to them) is replaced,
    the send ledger's rows keep their counts under a keyed hash instead of the address, and only that
    keyed hash stays, on the suppression list, so a later import or `add` still refuses them.

    On SQLite, deleted content is overwritten and the WAL truncated (`Store.erasure`). Returns the number
    of ledger rows blanked.

    Raises:
        UsageError: the address is not on the list (nor in the ledger, nor signing up).
    """
    address = email.strip()
    with db.erasure(), db.transaction():
        found = db.subscribers.get_subscriber(address)
        stand_in = "forgotten:" + db.consent.address_hash(address)[:32]
        blanked = db.ledger.blank_address(address, stand_in)
        pending = db.signups.forget(address)
        if found is None and blanked == 0 and pending == 0:
            raise _unknown(email)
        db.bounces.forget_events(address)
        db.topics.set_topics(address, ())
        db.tags.forget(address)
        db.audit.redact_address(address, stand_in)
        db.subscribers.delete_subscriber(address)
        db.consent.suppress_address(address, at=now)
    log.info("erased a subscriber on request (%d ledger row(s) blanked); only a keyed hash is kept", blanked)
    return blanked
