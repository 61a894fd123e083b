"""Every real-world feed of ../shared/corpus goes through ingestion: the manifest's facts hold, or the file
is refused with one clear error (never a traceback)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import SHARED
from feed_server import write_config

from digest.config import load_config
from digest.ingest.clean import clean_title
from digest.models import Entry, SourceReport, SourceStatus
from digest.pipeline.ingest import ingest_sources
from digest.state.store import Store, open_store

CORPUS = SHARED / "corpus"
MANIFEST: list[dict[str, Any]] = (
    json.loads((CORPUS / "MANIFEST.json").read_text(encoding="utf-8")) if CORPUS.exists() else []
)
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
# Entries that are the same entry by digest's identity rules, so within-feed de-duplication keeps one.
KNOWN_DUPLICATES = {
    # Two guids are each used by two different posts: the guid is the identity, the first post is kept.
    "netnewswire/scriptingNews.rss": 2,
    # Two items with the same title, no guid/link/date/text, differing only in an enclosure's length.
    "atoma/rss__broken-enclosure.xml": 1,
    # The same item (identical description, no title/guid/link/date) is in the feed twice.
    "sample-feeds/rssboard-0.92-sample.rss": 1,
}


@dataclass
class Ingested:
    db: Store
    reports: dict[str, SourceReport]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingested]:
    """Ingest the whole corpus once: one local-file source per manifest row, all in one run."""
    if not MANIFEST:
        pytest.fail(f"the shared corpus is missing: {CORPUS}")
    folder = tmp_path_factory.mktemp("corpus")
    shutil.copytree(CORPUS, folder / "corpus")
    sources: list[dict[str, object]] = [
        {"name": row["file"], "url": f"corpus/{row['file']}", "category": "Test"} for row in MANIFEST
    ]
    config = load_config(write_config(folder, sources))
    db = open_store(folder / "state.db")
    result = ingest_sources(config, db, now=NOW)
    yield Ingested(db, {r.name: r for r in result.reports})
    db.close()


def _expected(row: dict[str, Any]) -> tuple[int | None, str | None, str | None, bool]:
    """(entry count, first title, first date as ISO UTC, whether the first entry has a date)."""
    if "raw_version" in row or row["file"].endswith(".json"):
        title = row.get("raw_first_title")
        if isinstance(title, str) and title.startswith("NON-STRING"):
            title = None
        date = row.get("raw_first_date")
        try:
            iso = datetime.fromisoformat(date).astimezone(UTC).isoformat() if date else None
        except ValueError:
            iso = None
        return row.get("raw_items"), clean_title(title, markup=False) if title else None, iso, iso is not None
    title = row.get("fp_first_title")
    parsed = row.get("fp_first_date_parsed")
    iso = datetime.fromisoformat(parsed.replace("Z", "+00:00")).isoformat() if parsed else None
    return row.get("fp_entries"), clean_title(title) if title else None, iso, iso is not None


def _check_entries(entries: tuple[Entry, ...]) -> None:
    for entry in entries:
        assert entry.title.strip(), "every entry has a title (derived when the feed gave none)"
        assert entry.published.tzinfo is not None and entry.published.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert entry.link is None or entry.link.startswith(("http://", "https://"))
        lowered = entry.summary_html.lower()
        assert "<script" not in lowered and "javascript:" not in lowered and " onload=" not in lowered


@pytest.mark.parametrize("row", MANIFEST, ids=[row["file"] for row in MANIFEST])
def test_corpus_file(row: dict[str, Any], ingested: Ingested) -> None:
    report = ingested.reports[row["file"]]
    count, title, date, dated = _expected(row)
    if report.status is SourceStatus.FAILED:
        # Refused: only a file from which no entries could be expected, with one clear line naming it.
        assert report.error and "\n" not in report.error
        assert report.error.startswith(row["file"])
        assert "unexpected" not in report.error, report.error
        assert not count, f"refused a file with {count} entries: {report.error}"
        return
    assert report.status is SourceStatus.OK, report
    entries = ingested.db.entries.current_entries(row["file"])
    _check_entries(entries)
    if count is not None:
        assert len(entries) == count - KNOWN_DUPLICATES.get(row["file"], 0)
    if not entries:
        return
    first = entries[0]
    if title:
        assert first.title == title
    if date:
        assert first.published.isoformat() == date
        assert not first.date_estimated
    elif not dated and ("fp_first_date_raw" in row or "raw_first_date" in row):
        assert first.date_estimated
        assert first.published == NOW


def test_corpus_is_complete() -> None:
    assert len(MANIFEST) == 177
