"""Which copy of an issue each recipient gets: the whole issue, or the topic variant of their choice.

`VariantRouter` is made once per send: each non-empty variant built for the issue is prepared once
(its files checked against the hashes recorded at build time), so personalising a recipient is a
dictionary look-up plus the substitution `make_job` does. A reader whose variant has no entries gets
nothing that week (`route` returns None; counted by the send, not an error). A reader whose choice was
made after the build (no variant of it was built) gets the whole issue, and the send says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from digest.checks.email import check_email
from digest.compose.variants import choice_key, variant_folder_name
from digest.config import Config
from digest.deliver.issue import PreparedIssue, prepare_issue
from digest.render import html_lang
from digest.state.store import Store


@dataclass(slots=True)
class VariantRouter:
    """Routes recipients to the prepared copy they get; keeps the counts for the report."""

    whole: PreparedIssue
    prepared: dict[str, PreparedIssue]
    empty: frozenset[str]
    choices: dict[str, str]  # address (lower case) -> key of the reader's choice
    unbuilt: int = 0
    no_entries: int = 0
    counted: set[str] = field(default_factory=set)
    handed: dict[str, str] = field(default_factory=dict)  # address -> the variant key routed to it

    @classmethod
    def make(cls, config: Config, db: Store, whole: PreparedIssue) -> VariantRouter:
        """A router for the issue `whole` is; with no variants built and no choices, everyone gets it."""
        record = whole.record
        variants = db.topics.variants_of(record.id)
        configured = [p.name for p in config.priorities]
        choices = {
            email: key
            for email, names in db.topics.choices().items()
            if (key := choice_key(names, configured))
        }
        prepared = {
            key: prepare_issue(config, db, record, test=False, variant=v)
            for key, v in variants.items()
            if v.entry_count > 0
        }
        empty = frozenset(key for key, v in variants.items() if v.entry_count == 0)
        return cls(whole, prepared, empty, choices)

    def key_of(self, email: str) -> str:
        return self.choices.get(email.lower(), "")

    def route(self, email: str) -> tuple[str, PreparedIssue | None]:
        """The variant key and prepared copy for a recipient; None: their variant is empty this week."""
        key, copy = self._route(email)
        if copy is not None:
            self.handed[email.lower()] = key
        return key, copy

    def _route(self, email: str) -> tuple[str, PreparedIssue | None]:
        key = self.key_of(email)
        if not key:
            return "", self.whole
        if key in self.empty:
            if email.lower() not in self.counted:
                self.counted.add(email.lower())
                self.no_entries += 1
            return key, None
        copy = self.prepared.get(key)
        if copy is None:  # chosen after the build: the whole issue rather than nothing
            self.unbuilt += 1
            return "", self.whole
        return key, copy

    def handed_variant(self, email: str) -> str | None:
        """The variant key of the copy last routed to `email` (None: the whole issue), forgotten then."""
        return self.handed.pop(email.lower(), "") or None

    def is_empty_for(self, email: str) -> bool:
        """True when the recipient's variant has no entries this week (without counting them)."""
        return self.key_of(email) in self.empty


@dataclass(frozen=True, slots=True)
class VariantSummary:
    """One copy of an issue as the preview and the pre-send report show it: the whole issue (key "") or a
    topic variant, its readers, entries, HTML size and the email checks' problems."""

    key: str
    name: str  # the variant's folder name ("" for the whole issue): what the preview's picker passes
    readers: int
    entries: int
    size: int
    problems: tuple[str, ...]
    folder: Path | None  # where its email.html is (None: an empty variant, not sent)

    @property
    def label(self) -> str:
        return self.key or "Whole issue (no topics chosen)"


def variant_summaries(config: Config, db: Store, issue_id: str) -> tuple[VariantSummary, ...]:
    """The whole issue and each topic variant of a built issue, with how many active readers of the
    edition get it (those of an empty variant get nothing), for the preview's picker and report.

    `db` should be scoped to the edition (`Store.for_edition`) so the readers are its audience.
    """
    record = db.issues.get_issue(issue_id)
    if record is None:
        return ()
    configured = [p.name for p in config.priorities]
    readers: dict[str, int] = {}
    for names in db.topics.active_choices(db.audience).values():
        key = choice_key(names, configured)
        readers[key] = readers.get(key, 0) + 1
    active = (
        db.tags.count_tagged(db.audience, "active")
        if db.audience
        else db.subscribers.count_subscribers("active")
    )
    variants = db.topics.variants_of(issue_id)
    chosen = sum(n for key, n in readers.items() if key in variants)
    whole_folder = next(
        (f for f in (record.out_dir / record.id, record.out_dir) if (f / "email.html").is_file()), None
    )
    rows = [
        _summary(
            "",
            name="",
            readers=active - chosen,
            entries=record.entry_count,
            folder=whole_folder,
            config=config,
        )
    ]
    rows += [
        _summary(
            key,
            name=variant_folder_name(key),
            readers=readers.get(key, 0),
            entries=v.entry_count,
            folder=v.folder if v.entry_count else None,
            config=config,
        )
        for key, v in variants.items()
    ]
    return tuple(rows)


def _summary(
    key: str, *, name: str, readers: int, entries: int, folder: Path | None, config: Config
) -> VariantSummary:
    if folder is None or not (folder / "email.html").is_file():
        return VariantSummary(key, name, readers, entries, 0, (), None)
    html = (folder / "email.html").read_text(encoding="utf-8")
    problems = tuple(
        f"{p.check}: {p.message}" for p in check_email(html, lang=html_lang(config.digest.locale))
    )
    return VariantSummary(key, name, readers, entries, len(html.encode("utf-8")), problems, folder)


def variant_emails(db: Store, issue_id: str) -> tuple[tuple[str, Path], ...]:
    """(key, its email.html) of each topic variant of a built issue that is sent (has entries), by key:
    what the pre-send report checks besides the whole issue's email (their links, for one)."""
    return tuple(
        (key, v.folder / "email.html") for key, v in db.topics.variants_of(issue_id).items() if v.entry_count
    )
