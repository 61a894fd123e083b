"""Loads and builds the golden cases of tests/golden/<case>/ (shared by the golden and browser tests)."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from digest.config import Config, load_config
from digest.ingest.dedupe import dedupe
from digest.ingest.parse import ParseContext, parse_document
from digest.models import Entry, SourceReport, SourceStatus, image_from_dict
from digest.pipeline.build import BuildOutcome, build_from_entries
from digest.state import from_iso
from digest.state.store import Store, open_store

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "case.toml").exists())
SECRET = "golden-secret-not-for-production"


@dataclass(frozen=True)
class Case:
    name: str
    folder: Path
    as_of: datetime
    issue_id: str
    entries: tuple[Entry, ...]
    overrides: dict[str, Any]


def entry_from_dict(data: dict[str, Any]) -> Entry:
    image = data.get("image")
    return Entry(
        id=data["id"],
        source=data["source"],
        category=data["category"],
        title=data["title"],
        link=data.get("link"),
        published=from_iso(data["published"]),
        updated=from_iso(data["updated"]) if data.get("updated") else None,
        date_estimated=bool(data.get("date_estimated")),
        summary_html=data.get("summary_html", ""),
        summary_text=data.get("summary_text", ""),
        author=data.get("author"),
        tags=tuple(data.get("tags") or ()),
        image=image_from_dict(image) if image else None,
        priority=data.get("priority"),
        pinned=bool(data.get("pinned")),
        also_from=tuple(data.get("also_from") or ()),
        language=data.get("language"),
    )


def feed_entries(folder: Path, feeds: list[dict[str, str]], as_of: datetime) -> tuple[Entry, ...]:
    """Entries of real feed files (`[[feeds]]` of a case: path, source, category), parsed and de-duplicated
    as ingest does, with the shipped config's parse settings."""
    config = load_config(REPO / "config.toml")
    parsed: list[Entry] = []
    for feed in feeds:
        path = folder / feed["path"]
        ctx = ParseContext(
            source=feed["source"],
            category=feed["category"],
            url=feed.get("url", str(path)),
            seen_at=as_of.astimezone(UTC),
            excerpt_chars=config.digest.excerpt_chars,
            timezone=config.digest.timezone,
            priorities=tuple(p.name for p in config.priorities),
            min_image_width=config.digest.min_image_width,
        )
        parsed.extend(parse_document(path.read_bytes(), ctx, label=str(path)).entries)
    return dedupe(parsed)


def load_case(name: str) -> Case:
    folder = GOLDEN / name
    spec = tomllib.loads((folder / "case.toml").read_text())
    as_of = datetime.fromisoformat(spec["as_of"])
    if "feeds" in spec:
        entries = feed_entries(folder, spec["feeds"], as_of)
    else:
        entries_file = (folder / spec.get("entries", "entries.json")).resolve()
        entries = tuple(entry_from_dict(d) for d in json.loads(entries_file.read_text()))
    return Case(
        name=name,
        folder=folder,
        as_of=datetime.fromisoformat(spec["as_of"]),
        issue_id=spec["issue_id"],
        entries=entries,
        overrides=spec.get("config", {}),
    )


def case_config(case: Case, state_dir: Path) -> Config:
    """The shipped config with the case's overrides, and state in `state_dir`."""
    config = load_config(REPO / "config.toml")
    changes: dict[str, Any] = {"state_path": state_dir / "state.db"}
    for table, values in case.overrides.items():
        current = getattr(config, table)
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        if table == "theme" and "templates" in fixed:
            fixed["templates"] = (case.folder / fixed["templates"]).resolve()
        changes[table] = replace(current, **fixed)
    return replace(config, **changes)


def reports_for(config: Config, entries: tuple[Entry, ...]) -> tuple[SourceReport, ...]:
    """Source health as ingest reports it; `fetched_at` is the real time, so issue.json must scrub it."""
    return tuple(
        SourceReport(
            name=s.name,
            url=s.url,
            category=s.category,
            status=SourceStatus.OK,
            entries=sum(1 for e in entries if e.source == s.name),
            fetched_at=datetime.now(UTC),
        )
        for s in config.enabled_sources
    )


def build_case(case: Case, work: Path) -> tuple[Config, BuildOutcome]:
    """Build a case into `work/out` with its own state, as `digest build` would after ingest."""
    config = case_config(case, work)
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    if (case.folder / "draft.toml").exists():
        shutil.copy(case.folder / "draft.toml", out / f"{case.issue_id}.draft.toml")
    db: Store = open_store(config)
    saved = os.environ.get(config.web.secret_env)
    os.environ[config.web.secret_env] = SECRET  # the sample's unsubscribe token is then the same every run
    try:
        outcome = build_from_entries(
            config,
            db,
            case.entries,
            reports_for(config, case.entries),
            now=case.as_of,
            as_of=case.as_of,
            out_dir=out,
        )
    finally:
        db.close()
        if saved is None:
            os.environ.pop(config.web.secret_env, None)
        else:
            os.environ[config.web.secret_env] = saved
    return config, outcome


def scrub_issue_json(text: str) -> str:
    """issue.json with the volatile source health (fetch times) replaced by a marker."""
    data = json.loads(text)
    for source in data.get("sources", []):
        if source.get("fetched_at"):
            source["fetched_at"] = "<scrubbed>"
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
