"""Every operation of every Store part, on SQLite and on a real PostgreSQL (`store` is parametrised).

What differs between the dialects is what these tests pin down: unique keys and ON CONFLICT paths,
case-insensitive addresses, RETURNING ids, ordering (entries by feed position, subscribers by address),
keyset pagination, parameters in LIMIT and in SELECT lists, claims and their stale takeover, and the
ledger's guard that a sent row is never overwritten.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.errors import BusyError, StateError
from digest.ingest.parse.article import ArticleMeta
from digest.models import Entry, Image, SourceStatus
from digest.state import subscribers as subscribers_module
from digest.state.articles import ArticleOutcome
from digest.state.store import Store

NOW = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)
ISSUE = "2025-W19"


def entry(entry_id: str, *, source: str = "blog", published: datetime = NOW, **extra: object) -> Entry:
    return Entry(
        id=entry_id,
        source=source,
        category="News",
        title=f"Title {entry_id}",
        link=f"https://example.org/{entry_id}",
        published=published,
        **extra,  # type: ignore[arg-type]
    )


def build(
    store: Store, issue_id: str = ISSUE, *, entry_ids: tuple[str, ...] = ("e1",), at: datetime = NOW
) -> None:
    store.issues.record_built_issue(
        issue_id=issue_id,
        edition=1,
        window_start=at - timedelta(days=7),
        window_end=at,
        subject=f"Weekly {issue_id}",
        built_at=at,
        out_dir=Path("out") / issue_id,
        html_sha256="a" * 64,
        text_sha256="b" * 64,
        entry_ids=entry_ids,
        empty=False,
    )


# --- settings ----------------------------------------------------------------------------------------


def test_settings_upsert_and_generated_secret(store: Store) -> None:
    assert store.settings.get_setting("k") is None
    store.settings.set_setting("k", "one")
    store.settings.set_setting("k", "two")  # ON CONFLICT (key) DO UPDATE
    assert store.settings.get_setting("k") == "two"
    secret = store.settings.generated_secret("signing")
    assert len(secret) >= 32
    assert store.settings.generated_secret("signing") == secret


# --- feeds -------------------------------------------------------------------------------------------


def test_feeds_record_fetch_failures_success_gone_and_url_change(store: Store) -> None:
    url = "https://example.org/feed.xml"
    assert store.feeds.get_feed("blog") is None
    failed = store.feeds.record_fetch(source="blog", url=url, status=SourceStatus.FAILED, at=NOW, error="503")
    assert (failed.consecutive_failures, failed.status, failed.gone) == (1, SourceStatus.FAILED, False)
    store.feeds.record_fetch(source="blog", url=url, status=SourceStatus.FAILED, at=NOW, error="503")
    ok = store.feeds.record_fetch(
        source="blog",
        url=url,
        status=SourceStatus.OK,
        at=NOW + timedelta(hours=1),
        http_status=200,
        etag='"v1"',
        last_modified="Fri, 09 May 2025 16:00:00 GMT",
        body_sha256="c" * 64,
        parse_settings="p1",
        entry_count=3,
        newest_entry_at=NOW,
        permanent_url="https://example.org/new.xml",
    )
    assert ok.consecutive_failures == 0 and ok.etag == '"v1"' and ok.entry_count == 3
    assert ok.last_success_at == NOW + timedelta(hours=1) and ok.newest_entry_at == NOW
    assert ok.permanent_url == "https://example.org/new.xml" and ok.body_sha256 == "c" * 64
    gone = store.feeds.record_fetch(source="blog", url=url, status=SourceStatus.GONE, at=NOW, http_status=410)
    assert gone.gone is True and gone.etag == '"v1"'  # gone keeps the validators
    assert store.feeds.get_feed("blog", url) == gone
    assert store.feeds.get_feed("blog", "https://other.example/feed") is None
    # A new URL forgets the old one's validators, redirect and gone flag (the ON CONFLICT ... CASE path).
    moved = store.feeds.record_fetch(
        source="blog", url="https://other.example/feed", status=SourceStatus.FAILED, at=NOW, error="x"
    )
    assert (moved.etag, moved.permanent_url, moved.gone, moved.consecutive_failures) == (None, None, False, 1)
    store.feeds.record_fetch(source="news", url=url, status=SourceStatus.NOT_MODIFIED, at=NOW)
    assert set(store.feeds.all_feeds()) == {"blog", "news"}


# --- entries -----------------------------------------------------------------------------------------


def test_entries_keep_feed_order_first_sight_and_round_trip(store: Store) -> None:
    image = Image("https://example.org/i.png", "alt", 10, 20)
    given = [
        entry("z", tags=("a", "b"), image=image, language="de"),
        entry("a", date_estimated=True, published=NOW - timedelta(days=3)),
        entry("m"),
        entry("z"),  # a duplicate id keeps the first
    ]
    stored = store.entries.store_entries("blog", given, now=NOW)
    assert [e.id for e in stored] == ["z", "a", "m"]
    assert stored[1].published == NOW  # an undated entry is dated by its first sighting
    assert [e.id for e in store.entries.current_entries("blog")] == ["z", "a", "m"]  # by position
    assert store.entries.current_entries("blog")[0] == given[0]
    # The next fetch in another order, without "m": order follows the feed, first sighting stays.
    later = NOW + timedelta(days=1)
    store.entries.store_entries(
        "blog", [entry("m"), entry("a", date_estimated=True, published=later)], now=later
    )
    assert [e.id for e in store.entries.current_entries("blog")] == ["m", "a"]
    assert store.entries.current_entries("blog")[1].published == NOW
    assert store.entries.first_seen("blog", "a") == NOW
    assert store.entries.first_seen("blog", "nope") is None
    assert store.entries.entry_ids("blog") == frozenset({"z", "a", "m"})
    found = store.entries.find_entry("z")
    assert found is not None and found.image == image and found.tags == ("a", "b")
    assert store.entries.find_entry("missing") is None
    assert store.entries.newest_before(NOW + timedelta(seconds=1)) == NOW
    assert store.entries.newest_before(NOW - timedelta(days=30)) is None


def test_prune_entries_keeps_current_and_unsent_issue_entries(store: Store) -> None:
    old = NOW - timedelta(days=200)
    store.entries.store_entries("blog", [entry("old1", published=old), entry("old2", published=old)], now=old)
    store.entries.store_entries("blog", [entry("new", published=NOW)], now=NOW)  # old1, old2 not current
    build(store, "2024-W40", entry_ids=("old2",))  # an unsent issue still needs old2
    assert store.entries.prune_entries(before=NOW - timedelta(days=90), sources=["blog"]) == 1
    assert store.entries.entry_ids("blog") == frozenset({"old2", "new"})
    # No configured sources at all: every entry that is old enough goes (an empty IN list on both).
    store.entries.store_entries("gone-source", [entry("g", source="gone-source", published=old)], now=old)
    assert store.entries.prune_entries(before=NOW - timedelta(days=90), sources=[]) == 1
    assert store.entries.entry_ids("gone-source") == frozenset()


# --- articles ----------------------------------------------------------------------------------------


def test_articles_record_replace_touch_and_lookup_in_chunks(store: Store) -> None:
    meta = ArticleMeta(title="T", published=NOW, image=Image("https://e/i.png", "", None, None), summary="S")
    store.articles.record_article("https://e/1", at=NOW, status="ok", meta=meta, etag='"e"')
    store.articles.record_article("https://e/1", at=NOW, status="failed", error="timeout")  # ON CONFLICT
    store.articles.record_article("https://e/2", at=NOW, status="ok", meta=meta)
    store.articles.touch_article("https://e/2", at=NOW + timedelta(days=1))
    urls = [f"https://e/{i}" for i in range(1200)]  # more than one chunk of 500
    found = store.articles.get_articles(urls)
    assert set(found) == {"https://e/1", "https://e/2"}
    assert (found["https://e/1"].status, found["https://e/1"].meta, found["https://e/1"].etag) == (
        "failed",
        None,
        None,
    )
    assert found["https://e/2"].meta == meta and found["https://e/2"].fetched_at == NOW + timedelta(days=1)
    assert store.articles.get_articles([]) == {}
    # One run's outcomes in one call (one transaction): a new page, a failure, and a 304 that keeps the meta.
    later = NOW + timedelta(days=2)
    store.articles.record_articles(
        [
            ArticleOutcome("https://e/3", "ok", meta, etag='"3"'),
            ArticleOutcome("https://e/1", "disallowed"),
            ArticleOutcome("https://e/2", "unchanged", meta),
        ],
        at=later,
    )
    found = store.articles.get_articles(["https://e/1", "https://e/2", "https://e/3"])
    assert (found["https://e/3"].status, found["https://e/3"].meta, found["https://e/3"].etag) == (
        "ok",
        meta,
        '"3"',
    )
    assert found["https://e/1"].status == "disallowed" and found["https://e/1"].fetched_at == later
    assert found["https://e/2"].meta == meta and found["https://e/2"].fetched_at == later


# --- issues ------------------------------------------------------------------------------------------


def test_issues_record_rebuild_send_and_order(store: Store) -> None:
    build(store, "2025-W18", entry_ids=("a", "b"), at=NOW - timedelta(days=7))
    build(store, ISSUE, entry_ids=("b", "c", "c"))
    build(store, ISSUE, entry_ids=("c", "d"))  # a rebuild replaces the entry list (ON CONFLICT (id))
    record = store.issues.get_issue(ISSUE)
    assert record is not None and record.entry_count == 2 and record.empty is False
    assert store.issues.issue_entry_ids(ISSUE) == frozenset({"c", "d"})
    assert store.issues.latest_issue() == record
    assert [r.id for r in store.issues.recent_issues(limit=1)] == [ISSUE]  # a parameter in LIMIT
    assert [r.id for r in store.issues.recent_issues()] == [ISSUE, "2025-W18"]
    assert store.issues.interrupted_issue() is None
    store.issues.mark_send_started("2025-W18", NOW - timedelta(days=6))
    store.issues.mark_send_started("2025-W18", NOW)  # the first start stays
    started = store.issues.interrupted_issue()
    assert started is not None and started.send_started_at == NOW - timedelta(days=6)
    store.issues.mark_issue_sent("2025-W18", NOW - timedelta(days=5))
    store.issues.mark_issue_sent(ISSUE, NOW + timedelta(hours=1))  # "c" and "d" go to sent_entries
    store.issues.mark_issue_sent(ISSUE, NOW + timedelta(hours=2))  # again: nothing changes
    sent = store.issues.get_issue(ISSUE)
    assert sent is not None and sent.sent_at == NOW + timedelta(hours=1)
    assert store.issues.sent_entry_ids() == frozenset({"a", "b", "c", "d"})
    assert store.issues.sent_issue_count() == 2
    last = store.issues.last_sent_issue()
    assert last is not None and last.id == ISSUE
    with pytest.raises(ValueError, match=ISSUE):
        build(store, ISSUE)


def test_discard_unsent_issue_takes_its_approval_along(store: Store) -> None:
    build(store)
    store.approvals.record_approval(
        issue_id=ISSUE, approved_by="Ann", approved_at=NOW, html_sha256="a" * 64, text_sha256="b" * 64
    )
    removed = store.issues.discard_unsent_issue(ISSUE)
    assert removed is not None and removed.id == ISSUE
    assert store.issues.get_issue(ISSUE) is None and store.approvals.get_approval(ISSUE) is None
    assert store.issues.issue_entry_ids(ISSUE) == frozenset()
    build(store)
    store.issues.mark_send_started(ISSUE, NOW)
    assert store.issues.discard_unsent_issue(ISSUE) is None
    assert store.issues.get_issue(ISSUE) is not None


# --- approvals ---------------------------------------------------------------------------------------


def test_approvals_replace_and_cover_only_the_same_content(store: Store) -> None:
    assert store.approvals.get_approval(ISSUE) is None
    assert not store.approvals.is_approved(ISSUE, "a" * 64, "b" * 64)
    store.approvals.record_approval(
        issue_id=ISSUE, approved_by="Ann", approved_at=NOW, html_sha256="a" * 64, text_sha256="b" * 64
    )
    store.approvals.record_approval(
        issue_id=ISSUE, approved_by="Bob", approved_at=NOW, html_sha256="c" * 64, text_sha256="b" * 64
    )
    approval = store.approvals.get_approval(ISSUE)
    assert approval is not None and approval.approved_by == "Bob" and approval.approved_at == NOW
    assert store.approvals.is_approved(ISSUE, "c" * 64, "b" * 64)
    assert not store.approvals.is_approved(ISSUE, "a" * 64, "b" * 64)


# --- subscribers -------------------------------------------------------------------------------------


def test_subscriber_addresses_are_case_insensitive_keys(store: Store) -> None:
    subs = store.subscribers
    assert subs.upsert_subscriber("Ann@Example.org", name="Ann", at=NOW) == "added"
    assert subs.upsert_subscriber("ann@example.ORG", name=None, at=NOW) == "unchanged"
    assert subs.upsert_subscriber("ANN@example.org", name="Ann B", at=NOW) == "updated"
    found = subs.get_subscriber("ann@EXAMPLE.org")
    assert found is not None and found.email == "Ann@Example.org" and found.name == "Ann B"
    assert subs.count_subscribers() == 1
    # A second row for the same address in another case is a unique-key violation, a StateError.
    with pytest.raises(StateError, match="same key"):
        store.subscribers._db.execute(
            "INSERT INTO subscribers (email, status, created_at, updated_at, token_id)"
            " VALUES (?, 'active', ?, ?, ?)",
            ("ANN@EXAMPLE.ORG", "t", "t", "other-token"),
        )
    assert subs.delete_subscriber("ANN@EXAMPLE.ORG") is True
    assert subs.delete_subscriber("ann@example.org") is False
    assert subs.count_subscribers() == 0


def test_subscriber_status_changes_and_new_token_on_resubscribe(store: Store) -> None:
    subs = store.subscribers
    subs.upsert_subscriber("b@example.org", name=None, at=NOW)
    first = subs.get_subscriber("b@example.org")
    assert first is not None and first.status == "active" and not first.address_tokens
    assert subs.subscriber_by_token(first.token_id) == first
    assert subs.set_status("B@example.org", "unsubscribed", at=NOW, reason="one-click") is True
    assert subs.set_status("nobody@example.org", "bounced", at=NOW) is False
    off = subs.get_subscriber("b@example.org")
    assert off is not None and (off.status, off.reason, off.token_id) == (
        "unsubscribed",
        "one-click",
        first.token_id,
    )
    assert subs.upsert_subscriber("b@example.org", name=None, at=NOW, reactivate=False) == "unchanged"
    assert subs.upsert_subscriber("b@example.org", name=None, at=NOW + timedelta(days=1)) == "updated"
    again = subs.get_subscriber("b@example.org")
    assert again is not None and again.status == "active" and again.reason is None
    assert again.token_id != first.token_id and subs.subscriber_by_token(first.token_id) is None
    assert again.updated_at == NOW + timedelta(days=1) and again.created_at == NOW
    subs.set_status("b@example.org", "complained", at=NOW)
    assert subs.count_subscribers("complained") == 1 and subs.count_subscribers("active") == 0


def test_a_row_inserted_without_a_token_id_gets_one(store: Store) -> None:
    store.subscribers._db.execute(
        "INSERT INTO subscribers (email, status, created_at, updated_at) VALUES (?, 'active', ?, ?)",
        ("raw@example.org", "2025-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),
    )
    found = store.subscribers.get_subscriber("raw@example.org")
    assert found is not None and len(found.token_id) == 32


def test_subscribers_are_paged_in_address_order(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscribers_module, "_PAGE", 3)
    addresses = [f"user{i:02d}@example.org" for i in range(10)]
    for address in reversed(addresses):
        store.subscribers.upsert_subscriber(address, name=None, at=NOW)
    store.subscribers.set_status("user04@example.org", "bounced", at=NOW)
    assert [s.email for s in store.subscribers.iter_subscribers()] == addresses
    assert [s.email for s in store.subscribers.iter_subscribers("bounced")] == ["user04@example.org"]
    assert len(list(store.subscribers.iter_subscribers("active"))) == 9


# --- the ledger and claims ---------------------------------------------------------------------------


def test_ledger_sent_row_guard_and_statuses(store: Store) -> None:
    ledger = store.ledger
    ledger.record_sent(ISSUE, "a@example.org", message_id="<1@x>", at=NOW)
    ledger.record_failed(ISSUE, "A@EXAMPLE.ORG", detail="451", at=NOW)  # never over a sent row
    ledger.record_in_doubt(ISSUE, "a@example.org", message_id="<9@x>", detail="timeout", at=NOW)
    row = ledger.ledger_entry(ISSUE, "A@example.org")
    assert row is not None and (row.status, row.message_id, row.detail) == ("sent", "<1@x>", None)
    ledger.record_failed(ISSUE, "b@example.org", detail="451 later", at=NOW)
    ledger.record_failed(ISSUE, "b@example.org", detail="550 no such user", at=NOW, permanent=True)
    ledger.record_in_doubt(ISSUE, "c@example.org", message_id="<3@x>", detail="no reply", at=NOW)
    ledger.record_failed(ISSUE, "d@example.org", detail="451", at=NOW)
    assert ledger.status_counts(ISSUE) == {"sent": 1, "failed": 1, "refused": 1, "in_doubt": 1}
    assert ledger.sent_count(ISSUE) == 1
    assert [r.email for r in ledger.failed_rows(ISSUE, limit=1)] == ["b@example.org"]
    assert [r.email for r in ledger.failed_rows(ISSUE, limit=10)] == ["b@example.org", "d@example.org"]
    assert [r.email for r in ledger.iter_ledger(ISSUE)] == [f"{c}@example.org" for c in "abcd"]
    assert [r.email for r in ledger.iter_ledger(ISSUE, "in_doubt")] == ["c@example.org"]
    ledger.record_sent(ISSUE, "c@example.org", message_id="<3@x>", at=NOW)  # in doubt -> sent
    assert ledger.status_counts(ISSUE)["sent"] == 2


def test_pending_recipients_page_through_and_skip_settled_rows(store: Store) -> None:
    for i in range(7):
        store.subscribers.upsert_subscriber(f"r{i}@example.org", name=f"R{i}", at=NOW)
    store.subscribers.set_status("r6@example.org", "unsubscribed", at=NOW)
    store.ledger.record_sent(ISSUE, "R0@example.org", message_id="<0@x>", at=NOW)
    store.ledger.record_failed(ISSUE, "r1@example.org", detail="550", at=NOW, permanent=True)
    store.ledger.record_failed(ISSUE, "r2@example.org", detail="451", at=NOW)
    pending = list(store.ledger.pending_recipients(ISSUE, page_size=2))
    assert [p[0] for p in pending] == [f"r{i}@example.org" for i in (2, 3, 4, 5)]
    assert pending[0][1] == "R2" and all(len(p[2]) == 32 for p in pending)
    assert store.ledger.pending_count(ISSUE) == 4
    assert store.ledger.pending_count(ISSUE, retry_refused=True) == 5
    retry = [p[0] for p in store.ledger.pending_recipients(ISSUE, page_size=2, retry_refused=True)]
    assert retry[0] == "r1@example.org"


def test_refused_count_is_the_active_subscribers_an_earlier_send_was_refused_for(store: Store) -> None:
    for i in range(6):
        store.subscribers.upsert_subscriber(f"r{i}@example.org", name=None, at=NOW)
    store.subscribers.set_status("r5@example.org", "unsubscribed", at=NOW)
    store.ledger.record_failed(ISSUE, "R1@example.org", detail="550", at=NOW, permanent=True)
    store.ledger.record_failed(ISSUE, "r2@example.org", detail="550", at=NOW, permanent=True)
    store.ledger.record_failed(ISSUE, "r5@example.org", detail="550", at=NOW, permanent=True)  # left
    store.ledger.record_failed(ISSUE, "gone@example.org", detail="550", at=NOW, permanent=True)  # deleted
    store.ledger.record_failed(ISSUE, "r3@example.org", detail="451", at=NOW)
    store.ledger.record_sent(ISSUE, "r0@example.org", message_id="<0@x>", at=NOW)
    store.ledger.record_failed("2025-W20", "r4@example.org", detail="550", at=NOW, permanent=True)
    assert store.ledger.refused_count(ISSUE) == 2
    assert store.ledger.pending_count(ISSUE, retry_refused=True) - store.ledger.pending_count(ISSUE) == 2


def test_claims_refuse_a_live_holder_and_take_over_a_stale_one(store: Store) -> None:
    ledger = store.ledger
    assert ledger.claim_send(ISSUE, "otherhost:1:aa", at=NOW) is None
    assert ledger.claim_send(ISSUE, "otherhost:1:aa", at=NOW) is None  # the holder itself: no-op
    with pytest.raises(BusyError, match="otherhost:1:aa"):
        ledger.claim_send(ISSUE, "otherhost:2:bb", at=NOW + timedelta(seconds=30))
    assert ledger.refresh_claim(ISSUE, "otherhost:1:aa", at=NOW + timedelta(minutes=1)) is True
    with pytest.raises(BusyError):
        ledger.claim_send(ISSUE, "otherhost:2:bb", at=NOW + timedelta(minutes=2))
    taken = ledger.claim_send(ISSUE, "otherhost:2:bb", at=NOW + timedelta(minutes=4))
    assert (
        taken is not None
        and taken.holder == "otherhost:1:aa"
        and taken.heartbeat_at == NOW + timedelta(minutes=1)
    )
    assert ledger.refresh_claim(ISSUE, "otherhost:1:aa", at=NOW + timedelta(minutes=5)) is False
    claim = ledger.get_claim(ISSUE)
    assert claim is not None and (claim.holder, claim.host, claim.pid) == ("otherhost:2:bb", "otherhost", 2)
    ledger.release_claim(ISSUE, "otherhost:1:aa")  # not ours: nothing happens
    assert ledger.get_claim(ISSUE) is not None
    ledger.release_claim(ISSUE, "otherhost:2:bb")
    assert ledger.get_claim(ISSUE) is None


# --- bounces -----------------------------------------------------------------------------------------


def test_bounce_events_streaks_messages_and_hook_replays(store: Store) -> None:
    bounces = store.bounces
    for week, issue in enumerate(("2025-W17", "2025-W18", "2025-W19")):
        store.ledger.record_sent(
            issue, "s@example.org", message_id=f"<{issue}@x>", at=NOW + timedelta(weeks=week)
        )
    assert bounces.soft_streak("s@example.org") == 0
    for issue in ("2025-W18", "2025-W19"):
        bounces.record_event(
            at=NOW, source=f"maildir:{issue}", kind="soft", email="S@example.org", issue_id=issue,
            status="4.2.2", diagnostic="mailbox full", changed_to=None,
        )  # fmt: skip
    assert bounces.soft_streak("s@example.org") == 2
    bounces.mark_last_event("s@example.org", "bounced")
    events = list(bounces.events_for("s@EXAMPLE.org"))
    assert [e.changed_to for e in events] == [None, "bounced"] and events[0].status == "4.2.2"
    assert bounces.sent_message("<2025-W18@x>") == ("2025-W18", "s@example.org")
    assert bounces.sent_message("<nope@x>") is None
    assert bounces.latest_issue_sent_to("S@example.org") == "2025-W19"
    assert bounces.latest_issue_sent_to("none@example.org") is None
    bounces.record_event(
        at=NOW, source="ses:1", kind="complaint", email="s@example.org", issue_id="2025-W19",
        status=None, diagnostic=None, changed_to="complained",
    )  # fmt: skip
    assert bounces.issue_bounces("2025-W19") == type(bounces.issue_bounces("x"))(hard=0, soft=1, complaints=1)
    assert bounces.remember_hook_message("sns-1", at=NOW) is True
    assert bounces.remember_hook_message("sns-1", at=NOW) is False  # ON CONFLICT DO NOTHING
    assert bounces.hook_message_seen("sns-1") and not bounces.hook_message_seen("sns-2")


# --- runs --------------------------------------------------------------------------------------------


def test_runs_one_per_slot_returning_ids(store: Store) -> None:
    runs = store.runs
    slot = NOW
    first = runs.start_run(started_at=NOW, slot=slot)
    assert isinstance(first, int)
    assert runs.start_run(started_at=NOW, slot=slot) is None  # the partial unique index: ON CONFLICT
    manual1 = runs.start_run(started_at=NOW + timedelta(minutes=1))
    manual2 = runs.start_run(started_at=NOW + timedelta(minutes=2))  # NULL slots never conflict
    assert manual1 is not None and manual2 is not None and len({first, manual1, manual2}) == 3
    runs.finish_run(first, finished_at=NOW, outcome="failed", detail="SMTP down", issue_id=ISSUE)
    runs.reopen_run(first, started_at=NOW + timedelta(hours=1), note="resumed")
    reopened = runs.get_run(first)
    assert reopened is not None and reopened.outcome is None and not reopened.finished
    runs.finish_run(first, finished_at=NOW + timedelta(hours=2), outcome="sent", detail="done")
    done = runs.run_for_slot(slot)
    assert done is not None and done.finished and done.issue_id == ISSUE
    assert done.detail == "SMTP down; resumed; done"
    skipped = runs.record_run(slot=NOW + timedelta(weeks=1), at=NOW, outcome="skipped: nothing new")
    assert skipped is not None
    assert runs.record_run(slot=NOW + timedelta(weeks=1), at=NOW, outcome="skipped: nothing new") is None
    last = runs.last_slot_run()
    assert last is not None and last.id == skipped and last.slot == NOW + timedelta(weeks=1)
    assert [r.id for r in runs.recent_runs(limit=2)] == [first, manual2]  # reopened last: newest start
    assert [r.id for r in runs.runs_for_issue(ISSUE)] == [first]
    assert runs.get_run(10_000) is None


# --- the store ---------------------------------------------------------------------------------------


def test_transactions_roll_back_and_another_handle_sees_commits(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.settings.set_setting("a", "1")
        raise RuntimeError("boom")
    assert store.settings.get_setting("a") is None
    with store.transaction():
        store.settings.set_setting("a", "2")
        with pytest.raises(RuntimeError), store.transaction():  # a savepoint
            store.settings.set_setting("b", "x")
            raise RuntimeError("inner")
    assert (store.settings.get_setting("a"), store.settings.get_setting("b")) == ("2", None)
    other = store.another()
    try:
        assert other.settings.get_setting("a") == "2"
        other.settings.set_setting("c", "3")
    finally:
        other.close()
    assert store.settings.get_setting("c") == "3"
    assert store.settings.get_setting("a") == "2"  # closing `another` leaves this store usable
