"""Topic variants of an issue (issue 15 item 4): the issue as a reader who chose some priorities sees it.

Pure: a variant is computed from the composed issue and a choice of priority names, nothing else. Its
highlights and sections hold only the entries matched (or re-tagged) to one of the chosen priorities,
plus pinned entries; groups and sections left empty are dropped. A variant with no entries is `empty`
(it is not sent that week). A choice is named by its key: the chosen names in the configured order,
joined by "; " ("" is the whole issue, for readers who made no choice).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace

from digest.models import Group, Issue, IssueEntry, Section

SEPARATOR = "; "


def choice_key(chosen: Iterable[str], configured: Iterable[str]) -> str:
    """The key of a choice: the configured priority names chosen (case-insensitively), in the configured
    order; names not configured are left out, so a choice of none of them is the whole issue ("")."""
    wanted = {name.strip().casefold() for name in chosen}
    return SEPARATOR.join(name for name in configured if name.casefold() in wanted)


def choice_names(key: str) -> frozenset[str]:
    """The priority names of a key, case-folded."""
    return frozenset(name.casefold() for name in key.split(SEPARATOR) if name)


def variant_folder_name(key: str) -> str:
    """A folder name for a variant's files: stable, safe in any file system (`v-` and 12 hex digits)."""
    return "v-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def _keeps(item: IssueEntry, names: frozenset[str]) -> bool:
    return item.entry.pinned or any(p.casefold() in names for p in item.priorities)


def _more(section: Section, kept: tuple[Group, ...]) -> int:
    """How many of a variant's entries its section leaves out: the whole issue's cap for the section
    (what it shows: its entries less `more`, after any size-budget cut) applies to the variant too."""
    if not section.more:
        return 0
    shown = sum(len(g.entries) for g in section.groups) - section.more
    return max(0, sum(len(g.entries) for g in kept) - shown)


def topic_variant(issue: Issue, key: str) -> Issue:
    """The issue for readers whose choice is `key`: only their priorities' entries, plus pinned ones,
    each section showing at most as many as the whole issue's does."""
    if not key:
        return issue
    names = choice_names(key)
    sections = []
    for section in issue.sections:
        groups = tuple(
            Group(g.label, g.date, kept)
            for g in section.groups
            if (kept := tuple(e for e in g.entries if _keeps(e, names)))
        )
        if groups:
            sections.append(Section(section.category, groups, _more(section, groups)))
    highlights = tuple(h for h in issue.highlights if _keeps(h.item, names))
    variant = replace(issue, sections=tuple(sections), highlights=highlights)
    return replace(variant, empty=not variant.entries)
