"""Topic variants of a built issue: each distinct choice of priorities in use, composed and rendered once.

Readers who chose topics (`digest subscribers topics`, the preference page) get the variant of the issue
for their choice (`digest.compose.variants`). `build_variants` finds the choices of the active
subscribers the issue goes to, and renders each variant once into `DIR/<issue-id>/variants/v-<hash>/`
(email.html and email.txt, placeholders kept: deliver personalises them as it does the whole issue). A
variant with no entries is recorded with no files: its readers get nothing that week.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from digest.compose.variants import choice_key, topic_variant, variant_folder_name
from digest.config import Config
from digest.errors import RenderError
from digest.models import Issue
from digest.pipeline.build.budget import render_within_budget
from digest.pipeline.build.files import write_atomic
from digest.render import RenderSettings
from digest.state.store import Store
from digest.state.topics import VariantRecord

log = logging.getLogger(__name__)


def choices_in_use(config: Config, db: Store) -> dict[str, int]:
    """Each distinct choice (its key) of the active subscribers in the audience, with how many made it;
    choices naming no configured priority count as the whole issue and are left out."""
    configured = [p.name for p in config.priorities]
    counts: dict[str, int] = {}
    for names in db.topics.active_choices(db.audience).values():
        key = choice_key(names, configured)
        if key:
            counts[key] = counts.get(key, 0) + 1
    return counts


def build_variants(config: Config, db: Store, issue: Issue, folder: Path) -> tuple[VariantRecord, ...]:
    """Compose and render every variant in use of `issue` (written under `folder/variants/`), once each.

    Raises:
        RenderError: a variant cannot be rendered or written.
    """
    settings = RenderSettings.from_config(config)
    records = []
    for key in sorted(choices_in_use(config, db)):
        variant = topic_variant(issue, key)
        where = folder / "variants" / variant_folder_name(key)
        if variant.empty:
            records.append(VariantRecord(issue.id, key, where, "", "", 0))
            continue
        rendered = render_within_budget(
            variant,
            settings,
            excerpt_chars=config.digest.excerpt_chars,
            limit=config.digest.max_html_kb * 1024,
        )
        html, text = rendered.email_html.encode("utf-8"), rendered.email_text.encode("utf-8")
        try:
            where.mkdir(parents=True, exist_ok=True)
            write_atomic(where / "email.html", html)
            write_atomic(where / "email.txt", text)
        except OSError as e:
            raise RenderError(f"{where}: cannot write the variant {key!r}: {e.strerror}") from e
        records.append(
            VariantRecord(
                issue.id,
                key,
                where,
                hashlib.sha256(html).hexdigest(),
                hashlib.sha256(text).hexdigest(),
                len(variant.entries),
            )
        )
        log.debug("variant %r of issue %s: %d entries", key, issue.id, len(variant.entries))
    return tuple(records)


def variant_notes(records: tuple[VariantRecord, ...]) -> tuple[str, ...]:
    """What the build did for topic variants, for the user."""
    if not records:
        return ()
    empty = [r.key for r in records if r.entry_count == 0]
    notes = [
        f"{len(records)} topic variant(s) built: " + ", ".join(f"{r.key} ({r.entry_count})" for r in records)
    ]
    if empty:
        notes.append(
            "no entries this week for the topics " + " | ".join(empty) + ": their readers get nothing"
        )
    return tuple(notes)
