"""Budget: three oversized issues; the search's choice beside the richest that fits, found by trying all.

For each issue: the full email's size, the variant the build's search chose (its size and the time of the
whole search, median of 3), and the richest variant that fits found by rendering every variant (caps x
excerpt lengths x pictures). The two must be the same variant; the search renders a handful of them.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from digest.compose import ComposeSettings, cap_sections, compose_issue, issue_window
from digest.config import Config
from digest.models import Entry, Issue
from digest.pipeline.build.budget import budget_axes, render_within_budget
from digest.render import RenderSettings, render_issue, templates_for
from digest.render import compile as email_compile

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from golden_cases import Case, case_config, load_case  # noqa: E402 - tests/ is put on the path above

ROUNDS = 3


def _issue(case: Case, digest_overrides: dict[str, object]) -> tuple[Issue, Config]:
    case = replace(
        case, overrides={**case.overrides, "digest": {**case.overrides.get("digest", {}), **digest_overrides}}
    )
    config = case_config(case, Path(tempfile.mkdtemp(prefix="digest-bench-")))
    window = issue_window(as_of=case.as_of, last_sent_end=None, lookback_days=config.digest.lookback_days)
    issue = compose_issue(
        case.entries,
        window=window,
        issue_id=case.issue_id,
        edition=1,
        settings=ComposeSettings.from_config(config),
    )
    return issue, config


def _doubled(case: Case) -> Case:
    """The oversized case's entries twice over (new ids, a third category): 120 long entries."""
    extra: list[Entry] = [
        replace(
            e,
            id=f"{e.id}-again",
            link=f"{e.link}?again" if e.link else None,
            category="Blog",
            title=f"{e.title} (again)",
        )
        for e in case.entries
    ]
    return replace(case, entries=case.entries + tuple(extra))


def _kb(size: int) -> str:
    return f"{size / 1024:.1f} KB"


def _measure(name: str, issue: Issue, config: Config) -> None:
    settings = RenderSettings.from_config(config)
    limit = config.digest.max_html_kb * 1024
    excerpt_chars = config.digest.excerpt_chars
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        chosen = render_within_budget(issue, settings, excerpt_chars=excerpt_chars, limit=limit)
        times.append(time.perf_counter() - start)
    chosen_size = len(chosen.email_html.encode("utf-8"))
    templates = templates_for(settings.template_dirs)
    axes = budget_axes(issue, excerpt_chars)
    start = time.perf_counter()
    sizes = {}
    for variant in axes.all_variants():
        shaped = cap_sections(issue, variant.cap) if variant.cap is not None else issue
        parts = render_issue(shaped, settings, variant.options(), templates)
        sizes[variant] = len(email_compile.compile_email(parts.mjml).encode("utf-8"))
    exhaustive_time = time.perf_counter() - start
    full = axes.variant(0, 0, True)
    fitting = [v for v, size in sizes.items() if size <= limit]
    best = max(fitting) if fitting else None
    what = (chosen.notes or ("built nothing cut, now",))[0].split("built ", 1)[-1].split(", now")[0]
    print(f"{name}: full email {_kb(sizes[full])}, budget {config.digest.max_html_kb} KB")
    print(f"  search chose       {_kb(chosen_size):>9}  ({what})")
    if best is not None:
        cut = best.describe(full) or "nothing cut"
        print(f"  richest that fits  {_kb(sizes[best]):>9}  ({cut}), by trying all {len(sizes)} variants")
    print(f"  same variant: {'yes' if best is not None and sizes[best] == chosen_size else 'NO'}")
    search_ms = statistics.median(times) * 1000
    print(f"  search time {search_ms:.0f} ms (median of {ROUNDS}); trying all {exhaustive_time:.1f} s")


def main() -> None:
    oversized = load_case("oversized")
    news = load_case("corpus-news")
    cases = (
        ("oversized (60 long entries)", *_issue(oversized, {})),
        (
            "corpus news, 40 a section, 600-char excerpts",
            *_issue(news, {"section_cap": 40, "excerpt_chars": 600}),
        ),
        ("oversized doubled (120 entries, 3 sections)", *_issue(_doubled(oversized), {"section_cap": 60})),
    )
    for name, issue, config in cases:
        _measure(name, issue, config)


if __name__ == "__main__":
    main()
