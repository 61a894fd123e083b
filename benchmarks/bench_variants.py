"""Topic variants: 16 variants of one issue sent to 100,000 readers, beside the single-variant figure.

The sample issue is built from the shipped config and feeds (`make run`'s issue), with 16 distinct
choices of its five priorities in use. Measured in the same run:
- the once-per-variant build: composing and rendering the 16 variants (`build_variants`), total and per
  variant;
- personalise + serialise: 100,000 complete messages made the way `digest send` makes them
  (`VariantRouter.route` then `make_job`: signed unsubscribe token, derived Message-ID), all of the
  whole issue (the single-variant figure) and spread evenly over the 16 variants, in alternating rounds
  of 20,000 (the machine is shared: both see the same conditions; each figure is its median round).
  Goal: the variant rate at least 0.8 times the single-variant rate. Peak RSS is read after each pass.
Nothing is sent: the messages are built and dropped.
"""

from __future__ import annotations

import itertools
import resource
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from digest.config import Config, load_config
from digest.deliver import Recipient
from digest.deliver.issue import PreparedIssue, make_job, prepare_issue
from digest.pipeline.build import build_issue
from digest.pipeline.build.variants import build_variants
from digest.pipeline.topics import VariantRouter
from digest.state.store import Store, open_store

REPO = Path(__file__).resolve().parent.parent
MESSAGES = 100_000
VARIANTS = 16
ROUNDS = 5
NOW = datetime(2025, 5, 9, 7, 0, tzinfo=UTC)
AS_OF = datetime.fromisoformat("2025-05-09T17:00:00+01:00")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _choices(config: Config) -> list[tuple[str, ...]]:
    """16 distinct non-empty choices of the configured priorities (singles, pairs, then larger sets)."""
    names = [p.name for p in config.priorities]
    sets = (c for size in range(1, len(names) + 1) for c in itertools.combinations(names, size))
    return list(itertools.islice(sets, VARIANTS))


def _rate(router: VariantRouter, base_url: str, addresses: list[str]) -> tuple[float, int]:
    """Messages/s personalising and serialising one message per address; total bytes."""
    total = 0
    start = time.perf_counter()
    for i, address in enumerate(addresses):
        _, copy = router.route(address)
        assert copy is not None
        job = make_job(copy, base_url, Recipient(address, f"Reader {i}", f"{i:032x}"), NOW)
        total += len(job.message)
        router.handed_variant(address)
    return len(addresses) / (time.perf_counter() - start), total


def _prepared(config: Config, db: Store, issue_id: str) -> PreparedIssue:
    record = db.issues.get_issue(issue_id)
    assert record is not None
    return prepare_issue(config, db, record, test=False)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "feeds", root / "feeds")
        shutil.copy(REPO / "config.toml", root / "config.toml")
        config = load_config(root / "config.toml")
        with open_store(config) as db:
            choices = _choices(config)
            for n, names in enumerate(choices):  # one reader per choice makes the choice "in use"
                db.subscribers.upsert_subscriber(f"chooser{n:02d}@example.org", name=None, at=NOW)
                db.topics.set_topics(f"chooser{n:02d}@example.org", names)
            outcome = build_issue(config, db, now=NOW, as_of=AS_OF, offline=False)
            built = outcome.built
            assert built is not None
            issue_id = built.issue.id
            start = time.perf_counter()
            records = build_variants(config, db, built.issue, built.folder)
            took = time.perf_counter() - start
            db.topics.record_variants(issue_id, records)
            sizes = sorted(r.entry_count for r in records)
            print(
                f"  issue {issue_id}: {len(built.issue.entries)} entries; {len(records)} variants"
                f" ({sum(1 for r in records if r.entry_count)} with entries,"
                f" {sizes[0]}-{sizes[-1]} entries each)"
            )
            print(
                f"  once-per-variant build: {took:.2f} s for {len(records)} variants"
                f" ({took / max(len(records), 1) * 1000:.0f} ms each, compose + render + write)"
            )
            whole = _prepared(config, db, issue_id)
            single = VariantRouter(whole, {}, frozenset(), {})
            varied = VariantRouter.make(config, db, whole)
        addresses = [f"reader{i:06d}@example.org" for i in range(MESSAGES)]
        keys = list(varied.prepared)
        varied.choices = {a: keys[i % len(keys)] for i, a in enumerate(addresses)}
        base_url = config.web.base_url
        # The machine is shared: the two are measured in alternating rounds (same conditions for both),
        # each round a slice of the 100,000 readers; the rate is the median round's.
        one: list[float] = []
        many: list[float] = []
        one_bytes = many_bytes = 0
        one_rss = many_rss = 0.0
        size = MESSAGES // ROUNDS
        for r in range(ROUNDS):
            part = addresses[r * size : (r + 1) * size]
            rate, count = _rate(single, base_url, part)
            one.append(rate)
            one_bytes += count
            one_rss = peak_rss_mb()
            rate, count = _rate(varied, base_url, part)
            many.append(rate)
            many_bytes += count
            many_rss = peak_rss_mb()
    one_rate, many_rate = sorted(one)[ROUNDS // 2], sorted(many)[ROUNDS // 2]
    print(
        f"  single variant: {MESSAGES:,} messages, median round {one_rate:,.0f}/s (best {max(one):,.0f}/s,"
        f" {one_bytes / MESSAGES / 1024:.1f} KB each), peak RSS {one_rss:.0f} MB"
    )
    print(
        f"  {len(keys)} variants:   {MESSAGES:,} messages, median round {many_rate:,.0f}/s (best"
        f" {max(many):,.0f}/s, {many_bytes / MESSAGES / 1024:.1f} KB each), peak RSS {many_rss:.0f} MB"
    )
    ratio = many_rate / one_rate
    print(f"  variants / single: {ratio:.2f}x (goal >= 0.8x): {'met' if ratio >= 0.8 else 'NOT met'}")


if __name__ == "__main__":
    main()
