"""Bounce and complaint processing: classify (`classify`), the mailboxes they arrive in (`sources`,
registered by name), VERP envelope senders (`verp`) and Amazon SES notifications (`ses`).

`digest.pipeline.bounces` composes them with the state: what a bounce does to a subscriber.
"""

from digest.deliver.bounces.classify import KINDS, Classified, Failure, Kind, classify_message
from digest.deliver.bounces.sources import SOURCES, Incoming, open_source

__all__ = ["KINDS", "SOURCES", "Classified", "Failure", "Incoming", "Kind", "classify_message", "open_source"]
