"""The Store: every operation on digest's state, named for what it does, over SQLite or PostgreSQL.

Callers (the pipeline, the web apps through it, deliver, the CLI) hold a `Store` and call its parts:
`store.ledger.record_sent(...)`, `store.issues.get_issue(...)`, `store.subscribers.upsert_subscriber(...)`.
They never see a connection, a cursor or SQL. Each part is a small class in its own module
(`digest.state.ledger.Ledger`, ...) over one `Database` (`digest.state.backend`), which is where every
backend error becomes a `StateError`. `transaction()` groups operations into one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from digest.state.approvals import Approvals
from digest.state.articles import Articles
from digest.state.audit import Audit
from digest.state.backend import Database, Dialect, SqliteDatabase, open_database
from digest.state.batches import Batches
from digest.state.bounces import Bounces
from digest.state.consent import Consent
from digest.state.entries import Entries
from digest.state.feeds import Feeds
from digest.state.folds import LedgerFolds
from digest.state.issues import Issues
from digest.state.ledger import Ledger
from digest.state.runs import Runs
from digest.state.settings import Settings
from digest.state.signups import Signups
from digest.state.subscribers import Subscribers
from digest.state.tags import SubscriberTags
from digest.state.throttle import Throttle
from digest.state.topics import Topics
from digest.state.users import Users

if TYPE_CHECKING:
    from digest.config import Config

__all__ = ["Store", "open_store"]

log = logging.getLogger(__name__)


class Store:
    """digest's state: feeds, entries, articles, issues, the send ledger, subscribers, bounces, runs."""

    def __init__(
        self,
        database: Database,
        *,
        owns_database: bool = True,
        edition: str | None = None,
        audience: tuple[str, ...] = (),
    ) -> None:
        self._database = database
        self._owns_database = owns_database
        self.edition = edition  # `[[editions]]`: issues and runs are this edition's; None: no editions
        self.audience = audience
        self.settings = Settings(database)
        self.feeds = Feeds(database)
        self.entries = Entries(database)
        self.articles = Articles(database)
        self.issues = Issues(database, edition)
        self.ledger = Ledger(database, audience)
        self.batches = Batches(database)
        self.approvals = Approvals(database)
        self.subscribers = Subscribers(database)
        self.bounces = Bounces(database)
        self.runs = Runs(database, edition)
        self.tags = SubscriberTags(database)
        self.topics = Topics(database)
        self.folds = LedgerFolds(database)
        self.users = Users(database)
        self.audit = Audit(database)
        self.consent = Consent(database)
        self.signups = Signups(database)
        self.throttle = Throttle(database)

    @property
    def dialect(self) -> Dialect:
        return self._database.dialect

    @property
    def name(self) -> str:
        """The state file's path, or the PostgreSQL URL without its password (for messages)."""
        return self._database.name

    @property
    def has_advisory_locks(self) -> bool:
        """True when `advisory_lock` works (PostgreSQL): a lock every host using this state shares."""
        return self._database.has_advisory_locks

    def transaction(self) -> AbstractContextManager[None]:
        """Run the operations in the block as one transaction (committed at its end, rolled back on error)."""
        return self._database.transaction()

    @contextmanager
    def erasure(self) -> Iterator[None]:
        """A block that erases data for good: on SQLite, deleted content is overwritten (secure_delete) and
        the WAL is checkpointed and truncated at the end, so no copy of it stays in the file or its WAL.
        PostgreSQL deletes the rows; their old versions stay in the table's pages until VACUUM reclaims
        them (and VACUUM marks space reusable, it does not overwrite it), and in WAL archives and backups.
        """
        if not isinstance(self._database, SqliteDatabase):
            yield
            return
        self._database.execute("PRAGMA secure_delete = ON")
        try:
            yield
        finally:
            self._database.execute("PRAGMA secure_delete = OFF")
        row = self._database.fetch_one("PRAGMA wal_checkpoint(TRUNCATE)")
        if row is not None and row[0]:
            log.warning(
                "%s: the WAL could not be checkpointed (another process reads the state); erased rows"
                " may stay in the WAL until the next checkpoint",
                self.name,
            )

    def advisory_lock(self, name: str) -> AbstractContextManager[bool]:
        """Try to take the lock `name` across hosts, without waiting (PostgreSQL only): yields if taken."""
        return self._database.advisory_lock(name)

    def another(self) -> Store:
        """A second handle on the same state, for another thread that must not wait behind this one's
        transactions: SQLite gets its own connection; PostgreSQL shares the pool (a connection per use)."""
        if isinstance(self._database, SqliteDatabase):
            database = SqliteDatabase.open(Path(self._database.name))
            return Store(database, edition=self.edition, audience=self.audience)
        return Store(self._database, owns_database=False, edition=self.edition, audience=self.audience)

    def for_edition(self, edition: str | None, audience: tuple[str, ...] = ()) -> Store:
        """This state seen by one `[[editions]]` edition (its issues, runs and audience), sharing the
        database (closing the view leaves it open)."""
        return Store(self._database, owns_database=False, edition=edition, audience=audience)

    def close(self) -> None:
        if self._owns_database:
            self._database.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def open_store(where: Config | Path, *, read_only: bool = False) -> Store:
    """Open the state the config names (`[state] url` PostgreSQL, else the `[state] path` SQLite file),
    or the SQLite file at a path, creating or migrating its schema (not when `read_only`).

    Raises:
        StateError: the database cannot be reached, opened or migrated (the message names it).
    """
    if isinstance(where, Path):
        return Store(SqliteDatabase.open(where, read_only=read_only))
    # A config narrowed to one of its [[editions]] (`edition_config`) sees that edition's state.
    edition = where.edition.id if where.edition else None
    audience = where.edition.audience if where.edition else ()
    if where.state_url is None and read_only:
        return Store(
            SqliteDatabase.open(where.state_path, read_only=True), edition=edition, audience=audience
        )
    # PostgreSQL: a connection for each SMTP worker (each writes its recipient's in_doubt row before the
    # hand-over) and two for the sender's own thread and its batch heartbeat, so no worker waits for one.
    connections = max(4, where.smtp.pool_size + 2)
    return Store(
        open_database(
            path=where.state_path,
            url=where.state_url,
            password_env=where.state_password_env,
            pool_size=connections,
        ),
        edition=edition,
        audience=audience,
    )
