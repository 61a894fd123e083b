"""Readers joining and managing themselves on `digest serve`: sign-up with double opt-in, confirmation,
resubscribing from the unsubscribe page, and the preference page (name, address, unsubscribe).

The web app (`digest.web.public`) calls these; they reach state through the Store and send mail through
the configured transport. What a reader is shown never depends on whether the address is known (no
enumeration): `sign_up` returns what happened for logs and tests only.

- A sign-up is `pending` (a row in `signups`) until its link is used; the link is signed, carries a random
  id (never the address) and is valid `[subscribe] confirm_within_hours`. One confirmation email per
  address per `CONFIRM_GAP`, however often the form is sent.
- An active or suppressed (unsubscribed, bounced, complained, erased) address gets no email from the form.
  An unsubscribed reader can join again from the unsubscribe page (double opt-in, consent_method resubscribe).
- Pending sign-ups older than `[subscribe] pending_keep_days` are deleted by the next run.
- Topics (issue 15 item 4): the priorities ticked on the form are kept with the pending sign-up and set on
  the subscriber only when the address is confirmed (none ticked: all topics, the whole issue); the
  preference page changes them through the same operation as `digest subscribers topics`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from digest.config import Config
from digest.deliver import audience
from digest.deliver.headers import HeaderValueError
from digest.deliver.issue import make_transport, message_sender
from digest.deliver.message import MessageTemplate, Recipient
from digest.deliver.reader_tokens import (
    confirm_token,
    confirm_url,
    read_confirm_token,
    read_preferences_token,
    truncated_ip,
)
from digest.deliver.signing import DkimSigner
from digest.deliver.tokens import (
    NO_SUBSCRIPTION,
    StaleTokenError,
    unsubscribe_secret,
    unsubscribe_token,
)
from digest.deliver.transport import Job
from digest.errors import ConfigError, DeliveryError, InvalidValueError
from digest.models import unsubscribe_url
from digest.pipeline.web import check_unsubscribe_token
from digest.render.signup import render_confirmation
from digest.state.signups import Signup, SignupMethod
from digest.state.store import Store
from digest.state.subscribers import ConsentMethod, ConsentRecord, Subscriber

log = logging.getLogger(__name__)

CONFIRM_GAP = timedelta(minutes=10)  # at most one confirmation email per address in this time
SIGNUP_WINDOW = timedelta(hours=1)  # `[subscribe] per_ip_per_hour` sign-ups per client in this time
SignupResult = Literal["mailed", "throttled", "active", "suppressed", "not_mailed"]


@dataclass(frozen=True, slots=True)
class PendingView:
    """What the confirmation page shows: the address to confirm and whether it is a change of address."""

    email: str
    change: bool


def form_secret(config: Config, db: Store) -> str:
    """The secret the sign-up form's timestamp is signed with (the one of the unsubscribe links)."""
    return unsubscribe_secret(config, db)


def allow_signup(config: Config, db: Store, client: str, *, now: datetime) -> bool:
    """Count one sign-up (form, resubscribe or change of address) from `client` (its IP address); False
    when it already had `[subscribe] per_ip_per_hour` in the last hour. Counted in state, so every process
    and host serving this state shares the limit and a restart keeps it; only a keyed hash of the client
    is stored (`digest.state.throttle`). An IPv6 client counts by its /64 network: one home or phone
    line has a whole /64 and could take a new address for every sign-up."""
    return db.throttle.hit(
        "signup", client_network(client), at=now, window=SIGNUP_WINDOW, limit=config.subscribe.per_ip_per_hour
    )


def client_network(client: str) -> str:
    """What the limit counts for a client: an IPv4 address as it is, an IPv6 address as its /64."""
    try:
        address = ipaddress.ip_address(client.strip())
    except ValueError:  # not an address (a test client's name, a proxy's label): counted as given
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is the IPv4 client 192.0.2.1
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _client_record(config: Config, client_ip: str | None) -> str | None:
    if config.subscribe.record_ip != "truncated" or not client_ip:
        return None
    return truncated_ip(client_ip)


def topic_names(config: Config) -> tuple[str, ...]:
    """The priorities a reader may choose from ([[priorities]] names; none: no topics are offered)."""
    return tuple(p.name for p in config.priorities)


def read_topics(config: Config, names: Iterable[str]) -> tuple[str, ...]:
    """The priorities a reader ticked, as configured (none: all topics).

    Raises:
        InvalidValueError: a name is not a configured priority (the message names it and lists the topics).
    """
    offered = topic_names(config)
    ticked = list(names)
    known = {name.casefold() for name in offered}
    unknown = next((n.strip()[:80] for n in ticked if n.strip() and n.strip().casefold() not in known), None)
    if unknown is not None:
        listed = ", ".join(offered) if offered else "none are offered"
        raise InvalidValueError(
            f"Topics: {unknown!r} is not one of the topics ({listed}). Tick the topics you want,"
            " or none to get all topics."
        )
    return audience.check_topics(ticked, offered)


def sign_up(
    config: Config,
    db: Store,
    email: str,
    *,
    name: str | None,
    now: datetime,
    source: str,
    client_ip: str | None = None,
    topics: Iterable[str] | None = None,
) -> SignupResult:
    """Start a double opt-in for a valid address (the caller checked the form and the rate limits).

    `topics`: the priorities ticked on the form (empty: all topics), kept with the pending sign-up and set
    on the subscriber when the address is confirmed; None when the form offered none (no [[priorities]]).

    Raises:
        InvalidValueError: the address is not a valid email address, or a topic is not a configured priority
            (the form says so; this leaks nothing).
    """
    chosen = None if topics is None else read_topics(config, topics)
    address = audience.normalise_address(
        email, allow_special_domains=config.subscribers.allow_special_domains
    )
    with db.transaction():
        found = db.subscribers.get_subscriber(address)
        if found is not None and found.status == "active":
            return "active"
        if audience.suppression(db, address) is not None:
            return "suppressed"
        signup = _start(
            config,
            db,
            address,
            name=name,
            method="form",
            now=now,
            source=source,
            ip=client_ip,
            topics=chosen,
        )
    if signup is None:
        return "throttled"
    return "mailed" if send_confirmation(config, db, signup, now=now) else "not_mailed"


def _start(
    config: Config,
    db: Store,
    address: str,
    *,
    name: str | None,
    method: SignupMethod,
    now: datetime,
    source: str,
    ip: str | None,
    old_email: str | None = None,
    topics: tuple[str, ...] | None = None,
) -> Signup | None:
    wording = db.consent.keep_wording(config.subscribe.consent_text, at=now)
    return db.signups.start(
        address,
        name=audience.clean_name(name),
        method=method,
        at=now,
        min_gap=CONFIRM_GAP,
        old_email=old_email,
        consent_sha256=wording,
        consent_source=source,
        consent_ip=_client_record(config, ip),
        topics=topics,
    )


def send_confirmation(config: Config, db: Store, signup: Signup, *, now: datetime) -> bool:
    """Send the confirmation email of a sign-up through the configured transport, with the issue's headers
    and DKIM signature. Returns whether the transport accepted it (a failure is logged, not raised: the
    reader sees the same page either way)."""
    secret = unsubscribe_secret(config, db)
    link = confirm_url(config.web.base_url, confirm_token(secret, signup.token_id, at=now))
    email = render_confirmation(
        list_title=config.digest.title,
        confirm_url=link,
        hours=config.subscribe.confirm_within_hours,
        change=signup.method == "change",
        organisation=config.theme.organisation or config.digest.title,
        lang=config.digest.locale.replace("_", "-"),
    )
    try:
        template = MessageTemplate(
            html_body=email.html,
            text_body=email.text,
            subject=email.subject,
            sender=message_sender(config),
            issue_id="confirm",
        )
        recipient = Recipient(signup.email, signup.name)
        # No subscription yet: the List-Unsubscribe link names none (the page says so, nothing changes).
        no_one = unsubscribe_url(config.web.base_url, unsubscribe_token(secret, NO_SUBSCRIPTION))
        message_id = template.new_message_id()
        message = template.message(recipient, unsubscribe_url=no_one, message_id=message_id, date=now)
    except HeaderValueError as e:
        raise ConfigError(str(e), hint="fix the [delivery] setting named above") from e
    d = config.delivery
    if d.dkim_key is not None and d.dkim_selector:
        message = DkimSigner(d.dkim_key, d.dkim_selector, d.dkim_domain or template.sender.domain).sign(
            message
        )
    job = Job(recipient=recipient, message_id=message_id, message=message, envelope_from=d.bounce_address)
    try:
        deliveries = list(make_transport(config, "confirmation").send([job]))
    except (DeliveryError, OSError) as e:
        log.warning("a confirmation email could not be sent: %s", e)
        return False
    accepted = any(d.accepted for d in deliveries)
    if not accepted:
        log.warning("a confirmation email was not accepted: %s", "; ".join(d.detail for d in deliveries))
    return accepted


def _pending(config: Config, db: Store, token: str, *, now: datetime) -> Signup:
    token_id = read_confirm_token(
        unsubscribe_secret(config, db),
        token,
        now=now,
        within=timedelta(hours=config.subscribe.confirm_within_hours),
    )
    signup = db.signups.by_token(token_id)
    if signup is None:
        raise StaleTokenError("this confirmation link has been used already, or a newer one was sent")
    return signup


def check_confirmation(config: Config, db: Store, token: str, *, now: datetime) -> PendingView:
    """What a confirmation link is for, changing nothing (GET: link scanners follow every link).

    Raises:
        BadTokenError: altered or not ours; ExpiredTokenError: too old; StaleTokenError: used or replaced.
    """
    signup = _pending(config, db, token, now=now)
    return PendingView(email=signup.email, change=signup.method == "change")


def confirm(config: Config, db: Store, token: str, *, now: datetime) -> Subscriber:
    """Confirm a sign-up (the POST of the confirmation page): the address becomes `active` with its consent
    record, or, for a change of address, the subscription moves to the new address.

    Raises:
        BadTokenError, ExpiredTokenError, StaleTokenError: as `check_confirmation`.
    """
    with db.transaction():
        signup = _pending(config, db, token, now=now)
        db.signups.delete(signup.email)
        if signup.method == "change" and signup.old_email is not None:
            if not db.subscribers.change_address(signup.old_email, signup.email, at=now):
                raise StaleTokenError("this address is on the list already, or the old one is not any more")
            db.topics.move_address(signup.old_email, signup.email)
            db.tags.move_address(signup.old_email, signup.email)
            log.info("a subscriber confirmed a new address")
        else:
            method: ConsentMethod = "resubscribe" if signup.method == "resubscribe" else "form"
            record = ConsentRecord(
                now, method, signup.consent_sha256, signup.consent_source, signup.consent_ip
            )
            db.consent.unforget(signup.email)
            db.subscribers.upsert_subscriber(
                signup.email, name=signup.name, at=now, reactivate=True, consent=record
            )
            if signup.topics is not None:  # chosen on the form: applied now, never before
                db.topics.set_topics(signup.email, signup.topics)
            log.info("a reader confirmed their subscription (%s)", method)
        found = db.subscribers.get_subscriber(signup.email)
    if found is None:  # pragma: no cover - written in the transaction above
        raise StaleTokenError("this confirmation link is no longer valid")
    return found


def request_resubscribe(
    config: Config, db: Store, unsubscribe_token_text: str, *, now: datetime, client_ip: str | None = None
) -> SignupResult:
    """From the unsubscribe page: an unsubscribed reader asks to join again (double opt-in to the same
    address, consent_method resubscribe).

    Raises:
        BadTokenError, StaleTokenError: the unsubscribe link is not valid (any more).
    """
    found = check_unsubscribe_token(config, db, unsubscribe_token_text)
    if found.status_before == "active":
        return "active"
    if found.status_before != "unsubscribed":
        return "suppressed"  # bounced or complained: only the operator re-adds those
    with db.transaction():
        signup = _start(
            config,
            db,
            found.email,
            name=None,
            method="resubscribe",
            now=now,
            source="/unsubscribe",
            ip=client_ip,
        )
    if signup is None:
        return "throttled"
    return "mailed" if send_confirmation(config, db, signup, now=now) else "not_mailed"


def delete_stale_signups(config: Config, db: Store, *, now: datetime) -> int:
    """Delete pending sign-ups started more than `[subscribe] pending_keep_days` ago (the next run does)."""
    deleted = db.signups.delete_started_before(now - timedelta(days=config.subscribe.pending_keep_days))
    if deleted:
        log.info("deleted %d sign-up(s) never confirmed", deleted)
    return deleted


# --- the preference page ---------------------------------------------------------------------------------


def preferences_subscriber(config: Config, db: Store, token: str) -> Subscriber:
    """The active subscriber a preference link belongs to.

    Raises:
        BadTokenError: not ours; StaleTokenError: the subscription has ended (unsubscribed, re-subscribed).
    """
    token_id = read_preferences_token(unsubscribe_secret(config, db), token)
    found = db.subscribers.subscriber_by_token(token_id)
    if found is None or found.status != "active":
        raise StaleTokenError("this preference link is no longer valid")
    return found


def change_name(config: Config, db: Store, token: str, name: str, *, now: datetime) -> Subscriber:
    """Change the name a subscriber is greeted by (empty: no name)."""
    with db.transaction():
        found = preferences_subscriber(config, db, token)
        cleaned = audience.clean_name(name)
        db.subscribers.set_name(found.email, cleaned, at=now)
        changed = db.subscribers.get_subscriber(found.email)
    log.info("a subscriber changed their name on the preference page")
    return changed or found


def change_topics(
    config: Config, db: Store, token: str, names: Iterable[str], *, now: datetime
) -> tuple[str, ...]:
    """Set the priorities a subscriber wants (none: all topics, the whole issue) with the operation of
    `digest subscribers topics`; returns the choice now held, in the configured order.

    Raises:
        InvalidValueError: a name is not a configured priority.
        BadTokenError, StaleTokenError: the preference link is not valid.
    """
    chosen = read_topics(config, names)
    with db.transaction():
        found = preferences_subscriber(config, db, token)
        _, held = audience.set_topics(
            db,
            found.email,
            chosen,
            configured=topic_names(config),
            allow_special_domains=config.subscribers.allow_special_domains,
        )
        db.subscribers.touch(found.email, at=now)
    log.info("a subscriber changed their topics on the preference page (%d chosen)", len(held))
    return tuple(name for name in topic_names(config) if name in held)  # in the configured order


def current_topics(db: Store, subscriber: Subscriber) -> tuple[str, ...]:
    """The priorities a subscriber chose (none: all topics)."""
    return db.topics.topics_of(subscriber.email)


def change_address(
    config: Config, db: Store, token: str, new_email: str, *, now: datetime, client_ip: str | None = None
) -> SignupResult:
    """Start moving a subscription to a new address: a confirmation goes to the new one; the old one keeps
    receiving until it is confirmed.

    Raises:
        InvalidValueError: the new address is not valid.
        BadTokenError, StaleTokenError: the link is not valid.
    """
    found = preferences_subscriber(config, db, token)
    address = audience.normalise_address(
        new_email, allow_special_domains=config.subscribers.allow_special_domains
    )
    with db.transaction():
        if (
            db.subscribers.get_subscriber(address) is not None
            or audience.suppression(db, address) is not None
        ):
            return "active"
        signup = _start(
            config,
            db,
            address,
            name=found.name,
            method="change",
            now=now,
            source="/preferences",
            ip=client_ip,
            old_email=found.email,
        )
    if signup is None:
        return "throttled"
    return "mailed" if send_confirmation(config, db, signup, now=now) else "not_mailed"


def unsubscribe_from_preferences(config: Config, db: Store, token: str, *, now: datetime) -> Subscriber:
    """Unsubscribe from the preference page."""
    found = preferences_subscriber(config, db, token)
    db.subscribers.set_status(found.email, "unsubscribed", at=now, reason="unsubscribed (preference page)")
    log.info("a subscriber unsubscribed on the preference page")
    return found
