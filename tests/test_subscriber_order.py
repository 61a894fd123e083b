"""`digest subscribers list` gives addresses in the same order on SQLite and PostgreSQL: by the address
with ASCII letters lowercased, byte by byte (SQLite's NOCASE), never PostgreSQL's ICU order, which puts
punctuation and digits elsewhere (`a_b` before `a-b` before `a.b` before `a+b`...)."""

from __future__ import annotations

import string
from datetime import UTC, datetime

from digest.state.store import Store
from digest.state.subscribers import ConsentRecord

AT = datetime(2026, 1, 5, 9, tzinfo=UTC)
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
ADDRESSES = (
    "a.b@example.org", "a-b@example.org", "a+news@example.org", "a_b@example.org", "a1@example.org",
    "a@example.org", "A2@example.org", "ab@example.org", "B@example.org", "9lives@example.org",
    "0@example.org", "x.y-z+1@example.org", "x.y-z+10@example.org", "x.y-z+2@example.org",
    "x-y@example.org", "x_y@example.org", "xy@example.org", "Zed@example.org", "zed.1@example.org",
    "o'brien@example.org", "mary.o-neil@nhs.net", "mary.oneil@nhs.net", "mary-o.neil@nhs.net",
    "émile@example.org", "zoë@example.org",
)  # fmt: skip


def _expected(addresses: list[str]) -> list[str]:
    return sorted(addresses, key=lambda a: a.translate(_ASCII_LOWER).encode("utf-8"))


def _people(count: int) -> list[str]:
    """`count` more addresses mixing digits, dots, plus signs, hyphens and underscores (over a page)."""
    seps = (".", "-", "+", "_", "")
    return [f"r{i % 7}{seps[i % 5]}{i}{seps[(i // 5) % 5]}x@Example.org" for i in range(count)]


def test_subscribers_are_listed_in_the_same_order_on_both_backends(store: Store) -> None:
    addresses = [*ADDRESSES, *_people(1_100)]  # more than a page (1,000): the keyset pages follow it
    consent = ConsentRecord(consented_at=AT, method="import", wording_sha256=None, source="t", ip=None)
    store.subscribers.add_many([(a, None) for a in addresses], at=AT, consent=consent)
    for address in ADDRESSES[::2]:
        store.tags.add_tags(address, ["staff"])
    store.subscribers.set_status("a+news@example.org", "unsubscribed", at=AT)

    listed = [s.email for s in store.subscribers.iter_subscribers()]
    assert listed == _expected(addresses)
    active = [s.email for s in store.subscribers.iter_subscribers("active")]
    assert active == _expected([a for a in addresses if a != "a+news@example.org"])
    tagged = [s.email for s in store.tags.iter_tagged(["staff"])]
    assert tagged == _expected(list(ADDRESSES[::2]))
    assert [s.email for s in store.tags.iter_tagged(["staff"], "unsubscribed")] == ["a+news@example.org"]
