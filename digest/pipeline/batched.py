"""One sender's share of a send cut into batches (state in PostgreSQL): claim, send, record, repeat.

Used by the first `digest send` of an issue when the state is PostgreSQL and by every `digest send
--join`. A batch is marked done only once every message of it has its ledger row, so a sender killed at
any point leaves its batch open: another sender takes it over (at once when the dead one ran on the
same host, else once its heartbeat is stale) and sends what the ledger does not show as settled. Only
the messages the dead sender had handed over without their row can arrive twice: at most one per
connection of its pool (`[smtp] pool_size`), with the same Message-ID, each recorded `in_doubt` before
it was handed over. An issue with topic variants is shared the same way: every sender routes each
recipient of its batches to their variant (the caller's `make_job`), so a re-sent copy is the same.

A sender stays until every batch of the send is done: while others hold the rest it looks again every
`POLL` seconds, so the last one standing takes over the batch of a sender that died.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from digest.deliver import Delivery, HandingOver, Job, Recipient, Transport
from digest.deliver.issue import Heartbeat
from digest.errors import DeliveryError
from digest.state import ledger
from digest.state.batches import Batch
from digest.state.store import Store

log = logging.getLogger(__name__)
POLL = timedelta(seconds=1)
CHECK_EVERY = timedelta(seconds=1)

# None: nothing to send to the recipient (settled as failed, or their topic variant has no entries)
MakeJob = Callable[[Recipient, str | None], Job | None]


@dataclass
class BatchRun:
    """What one sender did with its batches."""

    took_over_from: list[str] = field(default_factory=list)
    batches: int = 0
    error: DeliveryError | None = None
    lost: bool = False


def deliver_batches(  # noqa: PLR0915 - one loop: claim, send, record, settle, look again
    db: Store,
    issue_id: str,
    *,
    transport: Transport,
    holder: str,
    make_job: MakeJob,
    record: Callable[[Delivery], None],
    clock: Callable[[], datetime],
    should_stop: Callable[[], bool] | None = None,
    retry_failed: bool = False,
    wait: Callable[[float], object] | None = None,
    also_refresh: Callable[[Store, datetime], bool] | None = None,
    stale_after: timedelta = ledger.CLAIM_STALE_AFTER,
    handing_over: HandingOver | None = None,
) -> BatchRun:
    """Send batches of `issue_id` until every batch is done, the sender is stopped, or the server fails.

    `make_job` builds a recipient's message, their topic variant's copy (given the Message-ID of a copy
    in doubt), or None for a recipient with nothing to send (the batch is done without them); `record`
    writes the ledger row of each settled message. `wait(seconds)` pauses between looks while other senders
    hold the last batches (default: a sleep cut short once `should_stop()` is true). `also_refresh` is
    refreshed with the heartbeat (the first sender's issue claim): False from it stops this sender.
    `handing_over` is the transport's (the caller records the recipient in doubt before each hand-over).
    """
    run = BatchRun()
    stopping = should_stop or (lambda: False)
    outstanding: dict[str, int] = {}  # batch lo -> messages handed to the transport, not yet recorded
    exhausted: dict[str, Batch] = {}  # batches whose every message has been handed over
    owner: dict[str, str] = {}  # address (lower case) of a message handed over -> its batch's lo

    def refresh(store: Store, at: datetime) -> bool:
        store.batches.refresh(issue_id, holder, at=at)
        return also_refresh(store, at) if also_refresh is not None else True

    def settle(lo: str) -> None:
        if lo in exhausted and outstanding.get(lo, 0) == 0:
            batch = exhausted.pop(lo)
            if not db.batches.finish(batch, holder):
                log.warning("batch from %r of issue %s was taken over before it was done", lo, issue_id)

    def jobs(heartbeat: Heartbeat) -> Iterator[Job]:
        while not heartbeat.lost and not stopping():
            claimed = db.batches.claim_batch(
                issue_id, holder, at=clock(), stale_after=stale_after, gone=ledger.holder_gone
            )
            if claimed is None:
                return
            batch, previous = claimed
            run.batches += 1
            if previous is not None:
                log.warning("took over a batch of issue %s from %s, which stopped", issue_id, previous)
                run.took_over_from.append(previous)
            outstanding[batch.lo] = 0
            checked = time.monotonic()
            for email, name, token_id, doubt in db.batches.recipients(batch, retry_refused=retry_failed):
                if heartbeat.lost or stopping():
                    return
                # A batch is taken over only once its heartbeat is `stale_after` old (or its holder is
                # gone), so asking whether it is still ours at most every CHECK_EVERY before a hand-over
                # leaves it at once after a freeze (the monotonic clock ran on meanwhile).
                if time.monotonic() - checked >= CHECK_EVERY.total_seconds():
                    if not db.batches.holds(batch, holder):
                        log.warning(
                            "batch from %r of issue %s was taken over by another sender", batch.lo, issue_id
                        )
                        break
                    checked = time.monotonic()
                job = make_job(Recipient(email, name, token_id), doubt)
                if job is None:
                    continue
                outstanding[batch.lo] += 1
                owner[email.lower()] = batch.lo
                yield job
            else:
                exhausted[batch.lo] = batch
                settle(batch.lo)

    pause = wait or (lambda seconds: _pause(seconds, stopping))
    while True:
        with Heartbeat(db, issue_id, holder, clock, refresh=refresh) as heartbeat:
            deliveries = transport.send(jobs(heartbeat), should_stop=should_stop, handing_over=handing_over)
            try:
                for delivery in deliveries:
                    record(delivery)
                    lo = owner.pop(delivery.job.recipient.email.lower(), None)
                    if lo is not None:
                        outstanding[lo] -= 1
                        settle(lo)
            except DeliveryError as e:
                run.error = e
            finally:
                close = getattr(deliveries, "close", None)
                if close is not None:
                    close()
            run.lost = heartbeat.lost
        if run.error is not None or run.lost or stopping():
            break
        if db.batches.open_count(issue_id) == 0:
            break
        pause(POLL.total_seconds())  # others hold the last batches: look again, to take over a dead one
    db.batches.release(issue_id, holder)  # any batch left open (stopped, failed): others take it
    return run


def _pause(seconds: float, stopping: Callable[[], bool]) -> None:
    """Wait `seconds`, or less once `stopping()` is true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stopping():
        time.sleep(0.05)
