"""The pre-send report's parts that are plain reasoning over values: size, source health, what changed,
which copies of the issue hold each link.

Pure functions: the preview hands in the draft `Issue`, the last sent issue's `issue.json` (as parsed
JSON) and sizes, and gets back small values the page template shows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from digest.checks.links import LinkStatus
from digest.models import Issue, SourceReport, SourceStatus

BAD = frozenset({SourceStatus.FAILED, SourceStatus.GONE})


@dataclass(frozen=True, slots=True)
class SizeReport:
    """The HTML part's size against Gmail's clipping limit and the team's target."""

    size: int
    limit: int
    target: int

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.size / self.limit)) if self.limit else 0

    @property
    def level(self) -> str:
        """ "over" (Gmail clips it), "near" (above the target), or "ok"."""
        if self.size > self.limit:
            return "over"
        return "near" if self.size > self.target else "ok"


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One source's health as the report shows it; `alarm` when it needs the team's attention."""

    report: SourceReport
    alarm: bool
    summary: str


def source_rows(reports: Iterable[SourceReport], *, failing_after: int) -> tuple[SourceRow, ...]:
    """Every source with a one-line summary; failing ones (and those failing `failing_after` runs) flagged."""
    rows = []
    for r in reports:
        if r.status in BAD:
            streak = f", {r.consecutive_failures} runs in a row" if r.consecutive_failures > 1 else ""
            summary = f"{r.status.value}: {r.error or 'no detail'}{streak}"
            if r.consecutive_failures >= failing_after:
                summary += f" (failing for {failing_after} or more runs: check the feed address)"
        elif r.status == SourceStatus.NOT_MODIFIED:
            summary = f"not modified since the last fetch, {r.entries} entries"
        else:
            summary = f"ok, {r.entries} entries"
        if r.permanent_redirect and r.redirected_to:
            summary += f"; moved permanently to {r.redirected_to} (update the config)"
        rows.append(SourceRow(report=r, alarm=r.status in BAD or r.permanent_redirect, summary=summary))
    return tuple(rows)


@dataclass(frozen=True, slots=True)
class LinkRow:
    """One distinct link of the issue's copies: its status (None while it is being checked) and the
    labels of the copies whose email holds it (the whole issue, topic variants)."""

    url: str
    status: LinkStatus | None
    copies: tuple[str, ...]

    @property
    def broken(self) -> bool:
        return self.status is not None and not self.status.ok


@dataclass(frozen=True, slots=True)
class LinkProblem:
    """A broken link as one copy of the issue holds it, with how many readers get that copy."""

    copy: str  # "whole issue" or "variant 'Start Well'"
    readers: int
    url: str
    status: str  # what the check found: "HTTP 404", "timed out", ...

    def __str__(self) -> str:
        readers = f"{self.readers} reader{'' if self.readers == 1 else 's'}"
        return f"{self.copy} ({readers}): broken link {self.url} ({self.status})"


def copy_label(key: str) -> str:
    """How the report names a copy of the issue: its topic variant's key, or the whole issue ("")."""
    return f"variant '{key}'" if key else "whole issue"


def link_report(
    results: Sequence[tuple[str, LinkStatus | None, Sequence[str]]], readers: Mapping[str, int]
) -> tuple[tuple[LinkRow, ...], tuple[LinkProblem, ...]]:
    """Each distinct link with the copies holding it, and each broken link against every copy it is in.

    `results`: (url, status, keys of the copies holding it; "" the whole issue); `readers`: the readers of
    each copy by key. A broken link counts once in the rows (it was checked once) and gives one problem
    per copy holding it, whole issue first, then the variants in key order.
    """
    rows = tuple(LinkRow(url, status, tuple(copy_label(k) for k in keys)) for url, status, keys in results)
    by_copy: dict[str, list[LinkProblem]] = {}
    for url, status, keys in results:
        if status is None or status.ok:
            continue
        for key in keys:
            problem = LinkProblem(copy_label(key), readers.get(key, 0), url, status.describe())
            by_copy.setdefault(key, []).append(problem)
    problems = tuple(p for key in sorted(by_copy) for p in by_copy[key])
    return rows, problems


def _section_counts(sections: Sequence[Mapping[str, Any]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for section in sections:
        for group in section.get("groups", ()):
            counts[str(section.get("category", "?"))] += len(group.get("entries", ()))
    return counts


def changes_since(
    issue: Issue,
    *,
    size: int,
    last_id: str | None,
    last_json: Mapping[str, Any] | None,
    last_size: int | None,
    last_sent: str | None,
) -> tuple[str, ...]:
    """Lines describing how the draft differs from the last sent issue (or that none was sent yet)."""
    if last_id is None:
        return ("No issue has been sent yet: this will be the first.",)
    lines = [f"Last sent issue: {last_id}" + (f", sent {last_sent}." if last_sent else ".")]
    now_counts = Counter({s.category: sum(len(g.entries) for g in s.groups) for s in issue.sections})
    if last_json is None:
        n = sum(now_counts.values())
        total = f"{n} {'entry' if n == 1 else 'entries'}"
        lines.append(f"Its build folder is gone, so only this issue's figures are shown: {total}.")
        return tuple(lines)
    lines += _entry_lines(now_counts, _section_counts(last_json.get("sections", ())))
    lines.append(_highlight_line(issue, last_json))
    if last_size is not None:
        delta = size - last_size
        sign = "+" if delta >= 0 else "-"
        lines.append(
            f"Email size: {size / 1024:.1f} KB, {sign}{abs(delta) / 1024:.1f} KB on the last sent issue "
            f"({last_size / 1024:.1f} KB)."
        )
    lines += _source_lines(issue, last_json)
    return tuple(lines)


def _entry_lines(now_counts: Counter[str], then_counts: Counter[str]) -> list[str]:
    lines = [f"Entries: {sum(now_counts.values())} now, {sum(then_counts.values())} in the last sent issue."]
    per_section = []
    for category in dict.fromkeys([*now_counts, *then_counts]):
        now_n, then_n = now_counts.get(category, 0), then_counts.get(category, 0)
        if then_n == 0:
            per_section.append(f"{category}: {now_n} (new section)")
        elif now_n == 0:
            per_section.append(f"{category}: none (had {then_n})")
        elif now_n != then_n:
            per_section.append(f"{category}: {now_n} (was {then_n})")
    if per_section:
        lines.append("By section: " + "; ".join(per_section) + ".")
    return lines


def _highlight_line(issue: Issue, last_json: Mapping[str, Any]) -> str:
    now_prio = Counter(h.priority for h in issue.highlights)
    then_prio = Counter(str(h.get("priority")) for h in last_json.get("highlights", ()))
    if now_prio == then_prio:
        return "Highlights by priority: the same mix as the last sent issue."
    parts = [
        f"{p} {now_prio.get(p, 0)} (was {then_prio.get(p, 0)})"
        for p in dict.fromkeys([*now_prio, *then_prio])
        if now_prio.get(p, 0) != then_prio.get(p, 0)
    ]
    return "Highlights by priority: " + "; ".join(parts) + "."


def _source_lines(issue: Issue, last_json: Mapping[str, Any]) -> list[str]:
    lines = []
    then_sources = {str(s.get("name")): str(s.get("status")) for s in last_json.get("sources", ())}
    bad = {s.value for s in BAD}
    for source in issue.sources:
        before = then_sources.get(source.name)
        bad_now = source.status in BAD
        if before is None:
            lines.append(f"Source {source.name!r} is new since the last sent issue.")
        elif bad_now and before not in bad:
            lines.append(f"Source {source.name!r} is now failing ({source.status.value}); it was {before}.")
        elif before in bad and not bad_now:
            lines.append(f"Source {source.name!r} has recovered (it was {before}).")
    gone = sorted(set(then_sources) - {s.name for s in issue.sources})
    if gone:
        lines.append("Sources no longer in the issue: " + ", ".join(repr(g) for g in gone) + ".")
    return lines
