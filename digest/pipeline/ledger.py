"""Keeping the send ledger small: fold the per-recipient rows of old, sent issues into counts."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from digest.config import Config
from digest.state.folds import FoldResult
from digest.state.store import Store

log = logging.getLogger(__name__)


def fold_old_ledger(config: Config, db: Store, *, now: datetime) -> FoldResult:
    """Fold the ledger rows and bounce events older than `[state] ledger_keep_days` of every sent issue
    into per-issue counts (addresses, Message-IDs and diagnostics go; `digest status` keeps showing the
    counts) and forget the SNS message ids as old.

    Raises:
        StateError: the state database failed (nothing is folded then: it is one transaction).
    """
    before = now - timedelta(days=config.ledger_keep_days)
    result = db.folds.fold_ledger(before=before, at=now)
    if result.rows:
        log.info(
            "folded %d send-ledger rows of %d issue(s) older than %d days into per-issue counts",
            result.rows,
            result.issues,
            config.ledger_keep_days,
        )
    if result.bounce_events or result.hook_messages:
        log.info(
            "folded or deleted %d bounce event(s) and forgot %d SNS message id(s) older than %d days",
            result.bounce_events,
            result.hook_messages,
            config.ledger_keep_days,
        )
    return result
