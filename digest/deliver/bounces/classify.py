"""What one message in a bounce mailbox is: a hard or soft bounce, a complaint, an auto-reply, or none.

Pure: bytes in, a `Classified` out. The order of the checks:

1. an ARF report (RFC 5965 `multipart/report; report-type=feedback-report`, or a
   `message/feedback-report` part; Microsoft JMRP and Yahoo/AOL send these) is a `complaint`, unless
   its Feedback-Type is `auth-failure` (an RFC 6591 DMARC/DKIM report: `not_bounce`);
2. an RFC 3464 `message/delivery-status` part gives each recipient's Action, Status and
   Diagnostic-Code: a `failed` recipient is a bounce;
3. a message that says it was sent automatically (RFC 3834 `Auto-Submitted`, or the usual vendor
   headers of out-of-office replies) and not by a mail server is an `auto_reply`, never a bounce;
4. flufl.bounce (Mailman's detectors for the formats of many MTAs) finds the failed addresses of the
   bounces without a readable delivery-status part;
5. a delay warning (Action: delayed, or a flufl.bounce warning) is `not_bounce`: nothing failed yet.

A failure is `hard` when the address itself is dead: Status 5.1.1, 5.1.2, 5.1.6 or 5.1.10, or a
vendor's wording of "no such user / domain" or "moved" (`HARD_WORDING`); any other failure is `soft`
(mailbox full, blocked, spam, policy, expired, network and system errors).
"""

from __future__ import annotations

import email
import email.message
import email.parser
import logging
import re
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Literal

from flufl.bounce import all_failures

log = logging.getLogger(__name__)


class _DetectorLog(logging.Handler):
    """flufl.bounce logs a detector that trips on odd input with its traceback (at ERROR, which Python's
    last-resort handler prints): it changes nothing here (the message is classified without that
    detector), so it becomes a debug line of digest's, shown with `-v`."""

    def emit(self, record: logging.LogRecord) -> None:
        log.debug("flufl.bounce: %s", record.getMessage(), exc_info=record.exc_info)


logging.getLogger("flufl.bounce").addHandler(_DetectorLog())
logging.getLogger("flufl.bounce").propagate = False

Kind = Literal["hard", "soft", "complaint", "auto_reply", "not_bounce"]
KINDS: tuple[Kind, ...] = ("hard", "soft", "complaint", "auto_reply", "not_bounce")

HARD_STATUSES = frozenset({"5.1.1", "5.1.2", "5.1.6", "5.1.10"})
SENDER_STATUSES = frozenset({"5.1.7", "5.1.8", "4.1.7", "4.1.8"})
_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
HARD_WORDING = re.compile(
    r"user(?:name)? unknown|unknown (?:user|recipient|local[- ]part|address|mailbox)|"
    r"no such (?:user|mailbox|recipient|address|person|account|domain)|"
    r"(?:user|mailbox|recipient|address|account|e-?mail account|addressee)(?: \S+)? (?:does not|doesn't|"
    r"did not|not) exist|does not exist|doesn't exist|"
    r"(?:mailbox|recipient|user|address) (?:not found|unknown|invalid)|invalid (?:recipient|mailbox)|"
    r"recip(?:ient)?notfound|not a valid (?:mailbox|recipient|user)|no mailbox here by that name|"
    r"unrouteable address|host unknown|host or domain name not found|domain (?:not found|does not exist)|"
    r"unknown (?:host|domain)|no (?:valid )?mx (?:record|host)|has moved|no longer (?:valid|available|"
    r"exists|in use|with)|is not a known user|not our customer|no account by that name|"
    r"address rejected: (?:user|recipient) unknown|bad destination (?:mailbox|system) address|"
    r"unknown or illegal alias|account (?:has been |was )?(?:closed|deleted|removed)|"
    r"no mailbox|mailbox unavailable: invalid|user not listed|isn't in my control/locals file|"
    r"requested action not taken: mailbox unavailable|name is not recognized|not listed in|"
    r"did not exactly match|n'existe pas|no final (?:e-?mail )?delivery point|no matches to nameserver|"
    r"doesn't have an? \S+ account|invalid final delivery userid|user not known|host not found|"
    r"not have a final (?:e-?mail )?delivery point|recipient rejected|address not present|no such local user|"
    r"recipient address rejected: access denied|invalid domain|no such domain",
    re.IGNORECASE,
)
SOFT_WORDING = re.compile(
    r"quota|mailbox (?:is )?full|over ?(?:the )?limit|insufficient (?:storage|disk)|"
    r"exceeded (?:the )?storage|out of storage|too many messages",
    re.IGNORECASE,
)
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|answer|respons)|out of (?:the )?office|away from|"
    r"on vacation|vacation|abwesenheit|r[ée]ponse automatique|autoreply|auto:)",
    re.IGNORECASE,
)
_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery (?:system|subsystem)", re.IGNORECASE)
_FBL_SENDERS = re.compile(r"scomp@aol\.net|staff@hotmail\.com|feedbackloop|fbl@", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"^message-id:\s*(<[^>\s]+>)", re.IGNORECASE | re.MULTILINE)
_ADDRESS = re.compile(r"[A-Za-z0-9._%+'=-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
DIAGNOSTIC_CHARS = 300


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient a bounce names, with its own kind, status and diagnostic."""

    address: str
    kind: Kind
    status: str | None
    diagnostic: str | None


@dataclass(frozen=True, slots=True)
class Classified:
    """The verdict on one message.

    `recipients` are the failed (or complaining, or warned) addresses; `status` and `diagnostic`
    those of the first failure; `original_message_id` the Message-ID of the message that bounced,
    when the bounce quotes it; `delivered_to` the addresses the bounce itself was sent to (where a
    VERP envelope sender shows up); `detector` names the check that decided.
    """

    kind: Kind
    recipients: tuple[str, ...]
    status: str | None
    diagnostic: str | None
    original_message_id: str | None
    delivered_to: tuple[str, ...]
    detector: str
    failures: tuple[Failure, ...] = ()
    original_recipients: tuple[str, ...] = ()  # RFC 3464 Original-Recipient: the address as sent


def classify_message(raw: bytes) -> Classified:
    """Classify one raw message (RFC 5322 bytes); never raises on malformed input."""
    msg = email.message_from_bytes(raw)
    delivered_to = _delivered_to(msg)
    original_id = _original_message_id(msg)

    def verdict(
        kind: Kind, failures: tuple[Failure, ...], detector: str, diagnostic: str | None = None
    ) -> Classified:
        first = failures[0] if failures else None
        return Classified(
            kind=kind,
            recipients=tuple(dict.fromkeys(f.address for f in failures)),
            status=first.status if first else None,
            diagnostic=(first.diagnostic if first else None) or diagnostic,
            original_message_id=original_id,
            delivered_to=delivered_to,
            detector=detector,
            failures=failures,
            original_recipients=_original_recipients(msg),
        )

    report = _feedback_report(msg)
    if report is not None:
        feedback_type = (report.get("Feedback-Type") or "abuse").strip().lower()
        recipients = _complainants(msg, report)
        failures = tuple(Failure(a, "complaint", None, f"feedback-type: {feedback_type}") for a in recipients)
        if feedback_type == "auth-failure":
            return verdict(
                "not_bounce", (), "arf", "an authentication failure report (RFC 6591), not a complaint"
            )
        return verdict("complaint", failures, "arf", f"feedback-type: {feedback_type}")
    if _is_jmrp(msg):
        recipients = _complainants(msg, None)
        failures = tuple(Failure(a, "complaint", None, "feedback loop report") for a in recipients)
        return verdict("complaint", failures, "fbl", "feedback loop report")

    failed, delayed, other = _delivery_status(msg)
    if failed:
        return verdict(_message_kind(failed), tuple(failed), "dsn")
    if _is_auto_reply(msg):
        return verdict("auto_reply", (), "rfc3834", "an automatic reply (out of office), not a bounce")

    try:
        found_temporary, found_permanent = all_failures(msg)
    except Exception:  # noqa: BLE001 - a detector tripping on odd input must not stop the batch
        found_temporary, found_permanent = frozenset(), frozenset()
    permanent = {a for a in found_permanent if _ADDRESS.fullmatch(_decode(a))}
    temporary = {a for a in found_temporary if _ADDRESS.fullmatch(_decode(a))}
    if other and not delayed and not permanent:
        return verdict("not_bounce", (), "dsn", "a delivery report without a failure (delivered, relayed)")
    if permanent:
        text = _report_text(msg)
        failures = tuple(_text_failure(_decode(a), text) for a in sorted(permanent))
        return verdict(_message_kind(list(failures)), failures, "flufl.bounce")
    if delayed:
        return verdict("not_bounce", tuple(delayed), "dsn", "a delay warning: delivery is still being tried")
    if temporary:
        text = _report_text(msg)
        failures = tuple(
            Failure(_decode(a), "not_bounce", _status_in(text), _diagnostic_in(text, _decode(a)))
            for a in sorted(temporary)
        )
        return verdict(
            "not_bounce", failures, "flufl.bounce", "a delay warning: delivery is still being tried"
        )
    return verdict("not_bounce", (), "none")


def failure_kind(status: str | None, diagnostic: str | None) -> Kind:
    """`hard` for a dead address (by status or wording), else `soft`."""
    text = diagnostic or ""
    if status in HARD_STATUSES:
        return "hard"
    if status in SENDER_STATUSES:
        return "soft"  # the sender's address was refused, not the recipient's
    if status is not None and status.split(".")[1:2] == ["2"] and SOFT_WORDING.search(text):
        return "soft"
    if SOFT_WORDING.search(text):
        return "soft"
    if HARD_WORDING.search(text):
        return "hard"
    return "soft"


def _message_kind(failures: list[Failure]) -> Kind:
    return "hard" if any(f.kind == "hard" for f in failures) else "soft"


def _decode(address: bytes | str) -> str:
    return address.decode("utf-8", "replace") if isinstance(address, bytes) else address


def _header_address(value: str | None) -> str | None:
    """The address of a DSN field such as `rfc822; ann@example.org` (None when there is none)."""
    if not value:
        return None
    text = " ".join(str(value).split())
    _, _, address = text.rpartition(";") if ";" in text else ("", "", text)
    address = address.strip().strip("<>").strip()
    return address if "@" in address else None


def _clean(text: str | None) -> str | None:
    if not text:
        return None
    return " ".join(str(text).split())[:DIAGNOSTIC_CHARS] or None


def _delivery_status(msg: email.message.Message) -> tuple[list[Failure], list[Failure], int]:
    """The failed and the delayed recipients of every message/delivery-status part, and how many
    other recipients (delivered, relayed, expanded) they report."""
    failed: list[Failure] = []
    delayed: list[Failure] = []
    other = 0
    parts = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"]
    if not parts:  # a DSN forwarded or pasted as text: its fields in a text part
        parts = [p for p in msg.walk() if p.get_content_type() == "text/plain"][:1]
    for part in parts:
        blocks = part.get_payload()
        if part.get_content_type() == "text/plain":
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
            cut = re.search(r"^Content-Type: (?:message/rfc822|text/rfc822-headers)", text, re.I | re.M)
            blocks = [b for b in _header_blocks(text[: cut.start()] if cut else text) if b.get("Action")]
        if isinstance(blocks, str):
            blocks = _header_blocks(blocks)
        elif not isinstance(blocks, list):
            continue
        for block in blocks:
            if not isinstance(block, email.message.Message):
                continue
            # Original-Recipient is the address as the sender gave it (before forwarding or aliases):
            # the address digest sent to, when the DSN keeps it.
            address = _header_address(block.get("Original-Recipient")) or _header_address(
                block.get("Final-Recipient")
            )
            if address is None:
                continue
            action = (block.get("Action") or "").strip().lower()
            status_match = _STATUS.search(block.get("Status") or "")
            status = ".".join(status_match.groups()) if status_match else None
            diagnostic = _clean(_after_type(block.get("Diagnostic-Code")))
            if action.startswith("failed") or (not action and status and status.startswith("5")):
                failed.append(Failure(address, failure_kind(status, diagnostic), status, diagnostic))
            elif action.startswith("delayed"):
                delayed.append(Failure(address, "not_bounce", status, diagnostic))
            elif action:
                other += 1
    return failed, delayed, other


def _original_recipients(msg: email.message.Message) -> tuple[str, ...]:
    found: list[str] = []
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in part.get_payload() or []:
                if isinstance(block, email.message.Message):
                    address = _header_address(block.get("Original-Recipient"))
                    if address:
                        found.append(address)
    return tuple(dict.fromkeys(found))


def _header_blocks(text: str) -> list[email.message.Message]:
    parser = email.parser.HeaderParser()
    return [parser.parsestr(block.strip() + "\n") for block in re.split(r"\n\s*\n", text) if block.strip()]


def _after_type(value: str | None) -> str | None:
    """`smtp; 550 5.1.1 ...` -> `550 5.1.1 ...`."""
    if not value:
        return None
    text = str(value)
    head, sep, rest = text.partition(";")
    return rest.strip() if sep and len(head.strip()) < 20 and " " not in head.strip() else text.strip()


def _feedback_report(msg: email.message.Message) -> email.message.Message | None:
    """The fields of an ARF report's `message/feedback-report` part (None when it is not ARF)."""
    is_arf = msg.get_content_type() == "multipart/report" and (
        (msg.get_param("report-type") or "") == "feedback-report"
    )
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list):  # parsed as a message: its headers are the fields
                first = payload[0] if payload else None
                return first if isinstance(first, email.message.Message) else email.message.Message()
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
            return email.parser.HeaderParser().parsestr(text.strip() + "\n")
    return email.message.Message() if is_arf else None


def _is_jmrp(msg: email.message.Message) -> bool:
    """A feedback-loop report without an ARF part: Microsoft JMRP (older form), AOL's scomp."""
    sender = str(msg.get("From") or "")
    has_original = any(p.get_content_type() == "message/rfc822" for p in msg.walk())
    if _FBL_SENDERS.search(sender) and has_original:
        return True
    return any(
        isinstance(inner, email.message.Message) and inner.get("X-HmXmrOriginalRecipient")
        for part in msg.walk()
        if part.get_content_type() == "message/rfc822"
        for inner in (part.get_payload() or [])
    )


def _original_headers(msg: email.message.Message) -> list[email.message.Message]:
    """The headers of the quoted original message(s): message/rfc822 and text/rfc822-headers parts."""
    found: list[email.message.Message] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            for inner in part.get_payload() or []:
                if isinstance(inner, email.message.Message):
                    found.append(inner)
        elif ctype in ("text/rfc822-headers", "text/rfc822-header"):
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(part.get_payload())
            found.append(email.parser.HeaderParser().parsestr(text.lstrip()))
    return found


def _complainants(msg: email.message.Message, report: email.message.Message | None) -> tuple[str, ...]:
    names: list[str] = []
    if report is not None:
        for field in ("Original-Rcpt-To", "Removal-Recipient"):
            names.extend(a for value in report.get_all(field) or [] if (a := _header_address(value)))
    for original in _original_headers(msg):
        if names:
            break
        jmrp = original.get("X-HmXmrOriginalRecipient")
        if jmrp and (address := _header_address(jmrp)):
            names.append(address)
            continue
        names.extend(a for _, a in getaddresses(original.get_all("To") or []) if "@" in a)
    return tuple(dict.fromkeys(names))


def _original_message_id(msg: email.message.Message) -> str | None:
    for original in _original_headers(msg):
        value = original.get("Message-ID")
        if value and (match := re.search(r"<[^>\s]+>", str(value))):
            return match.group(0)
    for part in msg.walk():
        if part is msg or part.get_content_maintype() != "text":
            continue
        raw = part.get_payload(decode=True)
        if isinstance(raw, bytes) and (match := _MESSAGE_ID.search(raw.decode("utf-8", "replace"))):
            return match.group(1)
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in part.get_payload() or []:
                if isinstance(block, email.message.Message):
                    value = block.get("X-Original-Message-ID") or block.get("Original-Envelope-Id")
                    if value and (match := re.search(r"<[^>\s]+>", str(value))):
                        return match.group(0)
    return None


def _delivered_to(msg: email.message.Message) -> tuple[str, ...]:
    values: list[str] = []
    for name in ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To"):
        values.extend(str(v) for v in msg.get_all(name) or [])
    return tuple(dict.fromkeys(a for _, a in getaddresses(values) if "@" in a))


def _is_auto_reply(msg: email.message.Message) -> bool:
    if _DAEMON.search(str(msg.get("From") or "")):
        return False  # a mail server's report (it may say auto-replied too): a bounce, if anything
    auto = (msg.get("Auto-Submitted") or "").strip().lower()
    if auto and auto != "no":
        return True
    if msg.get("X-Autoreply") or msg.get("X-Autorespond") or msg.get("X-Vacation"):
        return True
    if (msg.get("Precedence") or "").strip().lower() == "auto_reply":
        return True
    subject = str(msg.get("Subject") or "")
    return bool(_AUTO_REPLY_SUBJECT.search(_decoded_subject(subject)))


def _decoded_subject(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (UnicodeDecodeError, LookupError, email.errors.HeaderParseError):
        return value


def _report_text(msg: email.message.Message) -> str:
    """The human-readable part of a bounce (before the quoted original), as text."""
    texts: list[str] = []
    for part in msg.walk():
        if part.get_content_type() == "message/rfc822":
            break
        if part.get_content_maintype() == "text" and part.get_content_type() != "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                texts.append(raw.decode(part.get_content_charset() or "utf-8", "replace"))
    text = "\n".join(texts)
    # Cut where the original message is quoted inline.
    cut = re.search(
        r"^(?:-+ ?(?:original message|this is a copy)|original message follows|"
        r"-+ ?(?:message|headers) (?:text )?follow)",
        text,
        re.IGNORECASE | re.MULTILINE,
    )
    return text[: cut.start()] if cut else text


def _status_in(text: str) -> str | None:
    match = _STATUS.search(text)
    return ".".join(match.groups()) if match and match.group(1) in "45" else None


def _diagnostic_in(text: str, address: str) -> str | None:
    """The lines around the failed address, else the first line that reads like an SMTP reply."""
    lines = [line.strip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        if address.lower() in line.lower():
            window = " ".join(x for x in lines[i : i + 4] if x)
            return _clean(window)
    for line in lines:
        if re.match(r"^[45]\d\d[ -]", line) or HARD_WORDING.search(line):
            return _clean(line)
    return None


def _text_failure(address: str, text: str) -> Failure:
    diagnostic = _diagnostic_in(text, address)
    status = _status_in(diagnostic or "") or _status_in(text)
    kind = failure_kind(status, diagnostic)
    if (
        kind == "soft"
        and status not in HARD_STATUSES
        and not (diagnostic and SOFT_WORDING.search(diagnostic))
    ):
        kind = failure_kind(status, text)  # the wording may be a line or two away from the address
    return Failure(address, kind, status, diagnostic)


__all__ = ["HARD_STATUSES", "KINDS", "Classified", "Failure", "Kind", "classify_message", "failure_kind"]
