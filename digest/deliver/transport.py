"""What every transport takes and gives back: jobs in, one `Delivery` per job out, as each is settled."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from digest.deliver.message import Recipient

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class Job:
    """One finished message for one recipient."""

    recipient: Recipient
    message_id: str
    message: bytes
    envelope_from: str | None = None  # SMTP MAIL FROM / Return-Path; None: the transport's default


@dataclass(frozen=True, slots=True)
class Delivery:
    """How one job ended.

    `accepted`: the transport took responsibility for the message (SMTP 250, or the file is in the
    Maildir). Otherwise `permanent` says whether trying again could help, and `bounced` that the
    address itself was refused (a hard bounce: the subscriber is marked bounced). `in_doubt`: the whole
    message was handed over but no reply came, so it may have been delivered: it is not retried in
    this run, and a later send re-sends it with the same Message-ID.
    """

    job: Job
    accepted: bool
    detail: str
    permanent: bool = False
    bounced: bool = False
    in_doubt: bool = False


HandingOver = Callable[[Job], None]
"""Called with a job just before its message is committed to the destination (see `Transport`)."""


class Transport(Protocol):
    """Sends jobs; yields one Delivery per job as it is settled (not necessarily in order).

    Jobs are pulled lazily, so the caller can stream them. A transport that cannot go on (the server
    is unreachable, the login is refused) raises DeliveryError after yielding what was settled. Once
    `should_stop()` is true, no new job is started and no wait (retry, backoff) goes on: the jobs not
    settled are simply not yielded. A transport may start no other message until the caller asks for
    the next Delivery (the caller records each one first), and stops every worker when closed.

    `handing_over(job)` is called just before the job's message is committed to the destination, once
    nothing but the message itself can still refuse it (SMTP: after the recipient is accepted, before
    DATA; outbox: before the written file is moved into `new/`), again before each retry, and never
    for a job refused earlier (a refused login or recipient). The caller records the recipient as in
    doubt there, so no message can arrive without a ledger row. It may be called from any of the
    transport's threads. When it raises, that message is not handed over, nor is any other after it:
    the transport yields what was settled, then raises that exception.
    """

    name: str

    def send(
        self,
        jobs: Iterable[Job],
        *,
        should_stop: Callable[[], bool] | None = None,
        handing_over: HandingOver | None = None,
    ) -> Iterator[Delivery]: ...


def describe_reply(code: int, message: bytes | str) -> str:
    """`550 5.1.1 no such user` from an SMTP reply."""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}".strip()


def is_hard_bounce(code: int, message: bytes | str) -> bool:
    """A permanent refusal of the address itself (RFC 3463 5.1.x, or 550/551/553 without a status code).

    Policy (5.7.x), size (5.3.x) and mailbox-full (5.2.x) refusals are failures, not hard bounces.
    """
    if not 500 <= code < 600:
        return False
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    enhanced = _ENHANCED.match(text)
    if enhanced:
        return enhanced.group(1) == "5" and enhanced.group(2) == "1"
    return code in (550, 551, 553)
