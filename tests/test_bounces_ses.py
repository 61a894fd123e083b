"""`POST /hooks/ses` in `digest serve`: Amazon SES notifications delivered by SNS, signed with a locally
generated certificate that a local HTTPS server (allowed by [bounces] sns_cert_hosts) serves."""

from __future__ import annotations

import base64
import http.server
import json
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from send_support import make_certificate, write_config
from web_support import served

from digest.config import Config, load_config
from digest.state.store import open_store
from digest.web.public import create_public_app

NOW = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)
TOPIC = "arn:aws:sns:eu-west-2:123456789012:digest-bounces"


def signing_key_and_cert() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class SnsHost:
    """A local HTTPS server standing in for sns.<region>.amazonaws.com: the signing certificate and
    the subscription confirmation URL; `hits` counts the requests per path."""

    base: str
    hits: Counter[str] = field(default_factory=Counter)


@pytest.fixture
def sns_host(tmp_path: Path) -> Iterator[tuple[SnsHost, rsa.RSAPrivateKey, Path]]:
    key, pem = signing_key_and_cert()
    tls_cert, tls_key = make_certificate(tmp_path)
    host = SnsHost("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            host.hits[path] += 1
            body = pem if path == "/cert.pem" else b"<ConfirmSubscriptionResponse/>"
            self.send_response(200 if path in ("/cert.pem", "/confirm") else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_cert, tls_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    host.base = f"https://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield host, key, tls_cert
    finally:
        server.shutdown()
        server.server_close()


def setup(tmp_path: Path, host: SnsHost, tls_cert: Path) -> Config:
    config = write_config(tmp_path)
    port = host.base.rsplit(":", 1)[1]
    with config.path.open("a", encoding="utf-8") as handle:
        handle.write(
            f'\n[bounces]\nsns_cert_hosts = ["127.0.0.1:{port}"]\nsns_ca_file = "{tls_cert.name}"\n'
            f'sns_topic_arns = ["{TOPIC}"]\n'
        )
    config = load_config(config.path)
    db = open_store(config)
    for address in ("ann@example.org", "bob@example.org", "cat@example.org"):
        db.subscribers.upsert_subscriber(address, name=None, at=NOW)
    db.ledger.record_sent("2025-W19", "ann@example.org", message_id="<2025-W19.a1@blmk.example>", at=NOW)
    db.close()
    return config


def signed(key: rsa.RSAPrivateKey, fields: dict[str, str], *, version: str = "2") -> dict[str, str]:
    """An SNS message signed as SNS signs: "Name\\nvalue\\n" for the fields of its type, in this order."""
    order = (
        ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
        if fields["Type"] == "Notification"
        else ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
    )
    text = "".join(f"{name}\n{fields[name]}\n" for name in order if name in fields)
    algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()  # noqa: S303 - SNS version 1
    signature = key.sign(text.encode(), padding.PKCS1v15(), algorithm)
    return {**fields, "SignatureVersion": version, "Signature": base64.b64encode(signature).decode()}


def notification(
    host: SnsHost, ses_message: dict[str, Any], message_id: str, *, at: datetime = NOW
) -> dict[str, str]:
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": TOPIC,
        "Message": json.dumps(ses_message),
        "Timestamp": at.isoformat().replace("+00:00", "Z"),
        "SigningCertURL": f"{host.base}/cert.pem",
    }


def bounce(email: str, *, kind: str = "Permanent", status: str = "5.1.1") -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": kind,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": email,
                    "status": status,
                    "diagnosticCode": f"smtp; 550 {status} user unknown",
                }
            ],
        },
        "mail": {"commonHeaders": {"messageId": "<2025-W19.a1@blmk.example>"}},
    }


def state_of(config: Config, email: str) -> tuple[str, list[tuple[str, str | None, str | None]]]:
    db = open_store(config)
    found = db.subscribers.get_subscriber(email)
    events = [(e.kind, e.status, e.issue_id) for e in db.bounces.events_for(email)]
    db.close()
    assert found is not None
    return found.status, events


def post(client: httpx.Client, message: dict[str, str]) -> httpx.Response:
    return client.post("/hooks/ses", content=json.dumps(message), headers={"content-type": "text/plain"})


def test_signed_notifications_act_and_forged_or_replayed_ones_change_nothing(
    tmp_path: Path, sns_host: tuple[SnsHost, rsa.RSAPrivateKey, Path]
) -> None:
    host, key, tls_cert = sns_host
    config = setup(tmp_path, host, tls_cert)
    with served(create_public_app(config, clock=lambda: NOW)) as base, httpx.Client(base_url=base) as client:
        confirm = signed(
            key,
            {
                "Type": "SubscriptionConfirmation",
                "MessageId": "m-0",
                "Token": "tok",
                "TopicArn": TOPIC,
                "Message": "You have chosen to subscribe",
                "SubscribeURL": f"{host.base}/confirm?Token=tok",
                "Timestamp": NOW.isoformat(),
                "SigningCertURL": f"{host.base}/cert.pem",
            },
        )
        assert post(client, confirm).status_code == 200
        assert host.hits["/confirm"] == 1

        good = signed(key, notification(host, bounce("ann@example.org"), "m-1"))
        response = post(client, good)
        assert response.status_code == 200, response.text
        assert state_of(config, "ann@example.org") == ("bounced", [("hard", "5.1.1", "2025-W19")])

        replay = post(client, good)
        assert (replay.status_code, replay.text.strip()) == (200, "already processed")
        assert len(state_of(config, "ann@example.org")[1]) == 1

        forged = {**good, "MessageId": "m-2", "Message": json.dumps(bounce("bob@example.org"))}
        assert post(client, forged).status_code == 403
        other_host = signed(key, {**notification(host, bounce("bob@example.org"), "m-3")})
        other_host["SigningCertURL"] = "https://sns.evil.example/cert.pem"
        assert post(client, other_host).status_code == 403
        old = signed(key, notification(host, bounce("bob@example.org"), "m-4", at=NOW - timedelta(hours=2)))
        assert post(client, old).status_code == 403
        wrong_topic = signed(
            key, {**notification(host, bounce("bob@example.org"), "m-5"), "TopicArn": "arn:x"}
        )
        assert post(client, wrong_topic).status_code == 403
        assert post(client, {"Type": "Notification"}).status_code == 403
        assert client.post("/hooks/ses", content=b"not json").status_code == 400
        assert state_of(config, "bob@example.org") == ("active", [])

        complaint = {
            "notificationType": "Complaint",
            "complaint": {
                "complainedRecipients": [{"emailAddress": "cat@example.org"}],
                "complaintFeedbackType": "abuse",
            },
        }
        assert post(client, signed(key, notification(host, complaint, "m-6"), version="1")).status_code == 200
        assert state_of(config, "cat@example.org")[0] == "complained"
        soft = signed(
            key, notification(host, bounce("bob@example.org", kind="Transient", status="4.2.2"), "m-7")
        )
        assert post(client, soft).status_code == 200
        assert state_of(config, "bob@example.org") == ("active", [("soft", "4.2.2", None)])
    assert host.hits["/cert.pem"] == 1  # fetched once, then cached


def test_the_default_certificate_hosts_are_amazons_sns_only() -> None:
    from digest.deliver.bounces.ses import host_allowed

    default = ("sns.*.amazonaws.com",)
    assert host_allowed("https://sns.eu-west-2.amazonaws.com/SimpleNotificationService-1.pem", default)
    for url in (
        "http://sns.eu-west-2.amazonaws.com/cert.pem",
        "https://sns.eu-west-2.amazonaws.com.evil.example/cert.pem",
        "https://sns.a.b.amazonaws.com/cert.pem",
        "https://evil.example/sns.x.amazonaws.com/cert.pem",
        "https://sns.eu-west-2.amazonaws.com:8443/cert.pem",
        "https://user@sns.eu-west-2.amazonaws.com/cert.pem",
    ):
        assert not host_allowed(url, default), url
