"""Amazon SES bounce and complaint notifications delivered by SNS: signature check and reading.

An SNS message is trusted only when its signature verifies with the certificate at `SigningCertURL`,
and that URL is https on a host matching `[bounces] sns_cert_hosts` (default `sns.*.amazonaws.com`);
certificates are cached by URL. The string signed is SNS's: for a Notification the fields Message,
MessageId, Subject (when present), Timestamp, TopicArn, Type; for a (Un)SubscriptionConfirmation
Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type; each as "Name\\nvalue\\n".
SignatureVersion 1 is RSA with SHA1, 2 RSA with SHA256. A message older than `MAX_AGE` is refused
(the state keeps the MessageIds acted on, so a replay inside the window changes nothing either).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from digest.deliver.bounces.classify import Kind, failure_kind

MAX_AGE = timedelta(hours=1)
MAX_CERT_BYTES = 64 * 1024
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")


class SnsError(ValueError):
    """An SNS message that is malformed, forged, too old, or from a host not allowed."""


@dataclass(frozen=True, slots=True)
class SesEvent:
    """One recipient of an SES bounce or complaint notification."""

    kind: Kind
    email: str
    status: str | None
    diagnostic: str | None
    message_id: str | None  # the Message-ID header of the message that bounced, when SES includes it


def host_allowed(url: str, patterns: tuple[str, ...]) -> bool:
    """An https URL whose host (or host:port, for a pattern with a port) matches one of `patterns`."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        return False
    host = parts.hostname.lower()
    with_port = f"{host}:{parts.port}" if parts.port else host
    for given in patterns:
        pattern = given.lower()
        target = with_port if ":" in pattern else host
        if ":" not in pattern and parts.port not in (None, 443):
            continue
        if _host_regex(pattern).fullmatch(target):
            return True
    return False


def _host_regex(pattern: str) -> re.Pattern[str]:
    """A host pattern as a regex where `*` stands for one DNS label (never a dot)."""
    return re.compile(
        "".join("[a-z0-9-]+" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern))
    )


def fetch_https(url: str, *, ca_file: Path | None, timeout: float = 10.0) -> bytes:
    """GET an https URL (no redirects), for signing certificates and subscription confirmations.

    Raises:
        SnsError: the request fails or the answer is not 200.
    """
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        response = httpx.get(url, verify=context, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as e:
        raise SnsError(f"{url}: {e}") from e
    if response.status_code != 200:
        raise SnsError(f"{url}: HTTP {response.status_code}")
    return response.content


class CertificateCache:
    """Signing certificates by URL, fetched once each by `fetch(url) -> PEM bytes`."""

    def __init__(self, fetch: Callable[[str], bytes]) -> None:
        self._fetch = fetch
        self._certs: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> x509.Certificate:
        with self._lock:
            cert = self._certs.get(url)
        if cert is not None:
            return cert
        pem = self._fetch(url)
        if len(pem) > MAX_CERT_BYTES:
            raise SnsError(f"{url}: the signing certificate is larger than {MAX_CERT_BYTES} bytes")
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as e:
            raise SnsError(f"{url}: not a PEM certificate") from e
        with self._lock:
            self._certs[url] = cert
        return cert


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    fields = NOTIFICATION_FIELDS if message.get("Type") == "Notification" else CONFIRMATION_FIELDS
    out = []
    for name in fields:
        if name in message and message[name] is not None:
            out.append(f"{name}\n{message[name]}\n")
        elif name != "Subject":
            raise SnsError(f"the field {name} is missing")
    return "".join(out).encode("utf-8")


def verify(
    message: Mapping[str, Any], *, cert_hosts: tuple[str, ...], certs: CertificateCache, now: datetime
) -> None:
    """Check an SNS message's type, age, certificate host and signature.

    Raises:
        SnsError: any check fails (the message must then change nothing).
    """
    if message.get("Type") not in TYPES:
        raise SnsError(f"unknown SNS message type {message.get('Type')!r}")
    url = str(message.get("SigningCertURL") or "")
    if not host_allowed(url, cert_hosts):
        raise SnsError(f"signing certificate URL {url!r} is not https on a host in [bounces] sns_cert_hosts")
    try:
        timestamp = datetime.fromisoformat(str(message.get("Timestamp", "")).replace("Z", "+00:00"))
    except ValueError as e:
        raise SnsError("the Timestamp is not an ISO 8601 time") from e
    if timestamp.tzinfo is None or abs(now - timestamp) > MAX_AGE:
        raise SnsError(f"the message is from {timestamp.isoformat()}: older than {MAX_AGE} (a replay?)")
    version = str(message.get("SignatureVersion", ""))
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()  # noqa: S303 - SNS SignatureVersion 1 is defined with SHA1
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        raise SnsError(f"unknown SignatureVersion {version!r}")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (binascii.Error, ValueError) as e:
        raise SnsError("the Signature is not base64") from e
    key = certs.get(url).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SnsError("the signing certificate does not hold an RSA key")
    try:
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature as e:
        raise SnsError("the signature does not verify") from e


def ses_events(message: Mapping[str, Any]) -> tuple[SesEvent, ...]:
    """The bounced or complaining recipients of a verified Notification's SES message (none for others).

    Raises:
        SnsError: the Message is not SES's JSON.
    """
    try:
        body = json.loads(str(message.get("Message", "")))
    except json.JSONDecodeError as e:
        raise SnsError("the Message is not JSON") from e
    if not isinstance(body, dict):
        raise SnsError("the Message is not a JSON object")
    kind_of_notice = body.get("notificationType") or body.get("eventType")
    mail = body.get("mail")
    headers = mail.get("commonHeaders") if isinstance(mail, dict) else None
    found_id = headers.get("messageId") if isinstance(headers, dict) else None
    message_id = found_id if isinstance(found_id, str) else None
    events: list[SesEvent] = []
    if kind_of_notice == "Bounce" and isinstance(body.get("bounce"), dict):
        bounce = body["bounce"]
        permanent = bounce.get("bounceType") == "Permanent"
        for r in bounce.get("bouncedRecipients") or []:
            if not isinstance(r, dict) or not isinstance(r.get("emailAddress"), str):
                continue
            status = r.get("status") if isinstance(r.get("status"), str) else None
            diagnostic = r.get("diagnosticCode") if isinstance(r.get("diagnosticCode"), str) else None
            kind = failure_kind(status, diagnostic) if permanent else "soft"
            if permanent and status is None and bounce.get("bounceSubType") == "NoEmail":
                kind = "hard"
            events.append(SesEvent(kind, r["emailAddress"], status, diagnostic, message_id))
    elif kind_of_notice == "Complaint" and isinstance(body.get("complaint"), dict):
        complaint = body["complaint"]
        feedback = complaint.get("complaintFeedbackType")
        for r in complaint.get("complainedRecipients") or []:
            if isinstance(r, dict) and isinstance(r.get("emailAddress"), str):
                detail = f"feedback-type: {feedback}" if isinstance(feedback, str) else "complaint"
                events.append(SesEvent("complaint", r["emailAddress"], None, detail, message_id))
    return tuple(events)
