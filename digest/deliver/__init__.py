"""Deliver: personalised messages from an issue rendered once, and the transports that carry them.

`message.MessageTemplate` turns the issue's email.html/email.txt into per-recipient messages by joining
pre-encoded pieces; `outbox.OutboxTransport` writes them into a Maildir and `smtp.SmtpTransport` sends
them through a pool of connections. The send ledger and claims that make a send exactly-once live in
`digest.state.ledger`; `digest.pipeline.send` composes it all.
"""

from digest.deliver.message import MessageTemplate, Recipient, Sender
from digest.deliver.outbox import OutboxTransport
from digest.deliver.smtp import SmtpTransport
from digest.deliver.transport import Delivery, HandingOver, Job, Transport

__all__ = [
    "Delivery",
    "HandingOver",
    "Job",
    "MessageTemplate",
    "OutboxTransport",
    "Recipient",
    "Sender",
    "SmtpTransport",
    "Transport",
]
