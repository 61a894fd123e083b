"""Render: a 60-entry issue; Jinja2, MJML and CSS inlining timed apart; final size; warm build vs bare calls.

The "bare" figures call the three libraries directly on the same input, with nothing of digest around
them; the warm whole build (`build_from_entries`: compose, render, compile, size check, .eml, issue.json,
hashes and the state record) is compared with their sum, so the ratio is digest's own overhead.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mjml import mjml2html
from premailer import Premailer

from digest.compose import ComposeSettings, compose_issue, issue_window
from digest.config import load_config
from digest.models import Entry, Image
from digest.pipeline.build import build_from_entries
from digest.render import (
    EMAIL_TEMPLATE,
    TEXT_TEMPLATE,
    WEB_TEMPLATE,
    RenderOptions,
    RenderSettings,
    TemplateSet,
    issue_context,
)
from digest.state.store import open_store

REPO = Path(__file__).resolve().parent.parent
AS_OF = datetime(2025, 5, 9, 16, tzinfo=UTC)
ENTRIES = 60
ROUNDS = 15
WORDS = [
    "midwives",
    "patients",
    "services",
    "community",
    "hospital",
    "clinic",
    "support",
    "local",
    "families",
    "nurses",
    "staff",
    "programme",
    "waiting",
    "access",
    "digital",
    "records",
    "children",
    "dementia",
    "net",
    "zero",
    "research",
    "young",
    "people",
    "carers",
]


def make_entries() -> tuple[Entry, ...]:
    """60 entries over a week in three categories: real-length titles and summaries, a picture on some."""
    entries = []
    for i in range(ENTRIES):
        words = [WORDS[(i * 5 + k) % len(WORDS)] for k in range(60)]
        entries.append(
            Entry(
                id=f"bench-{i}",
                source=("BLMK news", "BLMK blog", "Curated")[i % 3],
                category=("News", "Blog", "Campaigns and events")[i % 3],
                title=f"Story {i}: " + " ".join(words[:9]).capitalize(),
                link=f"https://blmk.example/news/{i}/a-readable-slug-for-story-{i}",
                published=AS_OF - timedelta(hours=2 + i * 2),
                summary_text=" ".join(words).capitalize() + ".",
                image=Image(f"https://blmk.example/img/{i}.jpg", f"Picture for story {i}")
                if i % 5 == 0
                else None,
            )
        )
    return tuple(entries)


def timed(funcs: dict[str, Callable[[], object]], rounds: int = ROUNDS) -> dict[str, float]:
    """Median seconds of `rounds` warm calls of each function, interleaved round by round so that a busy
    machine slows them alike (one unmeasured call of each first)."""
    for func in funcs.values():
        func()
    samples: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(rounds):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    logging.getLogger("digest").setLevel(logging.WARNING)
    config = load_config(REPO / "config.toml")
    entries = make_entries()
    window = issue_window(as_of=AS_OF, last_sent_end=None, lookback_days=7)
    issue = compose_issue(
        entries, window=window, issue_id="2025-W19", edition=1, settings=ComposeSettings.from_config(config)
    )
    settings = RenderSettings.from_config(config)
    templates = TemplateSet(settings.template_dirs)
    context = issue_context(issue, settings, RenderOptions(excerpt_chars=config.digest.excerpt_chars))
    env = templates.env
    mjml_source = env.get_template(EMAIL_TEMPLATE).render(context)
    html = str(mjml2html(mjml_source, disable_comments=True, fonts={})).replace(
        "<!doctype html>", "<!DOCTYPE html>", 1
    )

    def jinja() -> None:
        for name in (EMAIL_TEMPLATE, TEXT_TEMPLATE, WEB_TEMPLATE):
            env.get_template(name).render(context)

    def mjml() -> None:
        mjml2html(mjml_source, disable_comments=True, fonts={})

    def inline() -> str:
        return str(
            Premailer(
                html,
                allow_network=False,
                strip_important=False,
                keep_style_tags=True,
                disable_basic_attributes=["width", "height"],
                disable_validation=True,
                cssutils_logging_level=logging.CRITICAL,
                disable_link_rewrites=True,
            ).transform(pretty_print=False)
        )

    final = inline()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = replace(config, state_path=Path(tmp) / "state.db")
        db = open_store(cfg.state_path)
        sizes: list[int] = []
        notes: list[str] = []

        def whole() -> None:
            outcome = build_from_entries(cfg, db, entries, (), now=AS_OF, out_dir=Path(tmp) / "out")
            assert outcome.built is not None
            sizes.append(outcome.built.size)
            notes[:] = outcome.notes

        times = timed({"jinja": jinja, "mjml": mjml, "inline": inline, "whole": whole})
        db.close()
    t_jinja, t_mjml, t_inline, t_whole = times["jinja"], times["mjml"], times["inline"], times["whole"]
    bare = t_jinja + t_mjml + t_inline

    shown = sum(len(s.groups and [e for g in s.groups for e in g.entries]) - s.more for s in issue.sections)
    print(f"issue: {ENTRIES} entries, {len(issue.highlights)} highlights, {shown} in the email (section cap)")
    print(f"jinja2 (email.mjml + email.txt + web.html): {t_jinja * 1000:8.1f} ms")
    print(f"mjml2html:                                  {t_mjml * 1000:8.1f} ms")
    print(f"premailer inlining:                         {t_inline * 1000:8.1f} ms")
    print(f"sum of the bare library calls:              {bare * 1000:8.1f} ms")
    print(f"whole warm build (build_from_entries):      {t_whole * 1000:8.1f} ms")
    print(f"ratio whole build / bare calls:             {t_whole / bare:8.2f}x")
    print(f"final email.html: {len(final.encode()) / 1024:.1f} KB bare, {sizes[-1] / 1024:.1f} KB built")
    for note in notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
