"""The state schema as an append-only list of migrations: never edit one that has shipped, add another."""

MIGRATIONS: tuple[str, ...] = (
    """
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE feeds (
    source               TEXT PRIMARY KEY,   -- [[sources]] name
    url                  TEXT NOT NULL,
    etag                 TEXT,
    last_modified        TEXT,
    permanent_url        TEXT,               -- target of a recorded 301/308
    gone                 INTEGER NOT NULL DEFAULT 0,
    status               TEXT,               -- ok | not_modified | failed | gone
    http_status          INTEGER,
    error                TEXT,
    redirected_to        TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    entry_count          INTEGER NOT NULL DEFAULT 0,
    newest_entry_at      TEXT,
    last_attempt_at      TEXT,
    last_success_at      TEXT
);
CREATE TABLE entries (
    source        TEXT NOT NULL,
    id            TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    published_at  TEXT NOT NULL,
    current       INTEGER NOT NULL DEFAULT 1,  -- present in the source's latest successful fetch
    data          TEXT NOT NULL,               -- the Entry as JSON
    PRIMARY KEY (source, id)
);
CREATE INDEX entries_published ON entries (published_at);
CREATE TABLE issues (
    id            TEXT PRIMARY KEY,
    edition       INTEGER NOT NULL,
    window_start  TEXT NOT NULL,
    window_end    TEXT NOT NULL,
    subject       TEXT NOT NULL,
    built_at      TEXT NOT NULL,
    out_dir       TEXT NOT NULL,
    html_sha256   TEXT NOT NULL,
    text_sha256   TEXT NOT NULL,
    entry_count   INTEGER NOT NULL,
    empty         INTEGER NOT NULL DEFAULT 0,
    send_started_at TEXT,
    sent_at       TEXT
);
CREATE TABLE issue_entries (
    issue_id TEXT NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    entry_id TEXT NOT NULL,
    PRIMARY KEY (issue_id, entry_id)
);
CREATE TABLE sent_entries (
    entry_id TEXT PRIMARY KEY,
    issue_id TEXT NOT NULL,
    sent_at  TEXT NOT NULL
);
CREATE TABLE subscribers (
    email      TEXT PRIMARY KEY COLLATE NOCASE,
    name       TEXT,
    status     TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'unsubscribed', 'bounced')),
    reason     TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE send_ledger (
    issue_id   TEXT NOT NULL,
    email      TEXT NOT NULL COLLATE NOCASE,
    status     TEXT NOT NULL CHECK (status IN ('sent', 'failed')),
    message_id TEXT,
    detail     TEXT,
    at         TEXT NOT NULL,
    PRIMARY KEY (issue_id, email)
);
CREATE TABLE send_claims (
    issue_id     TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    claimed_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);
CREATE TABLE approvals (
    issue_id    TEXT PRIMARY KEY,
    approved_by TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    html_sha256 TEXT NOT NULL,
    text_sha256 TEXT NOT NULL
);
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    slot        TEXT,             -- the scheduled time this run is for (ISO UTC), NULL for manual runs
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT,             -- sent | skipped: nothing new | waiting for approval | failed: ...
    issue_id    TEXT,
    detail      TEXT
);
CREATE UNIQUE INDEX runs_slot ON runs (slot) WHERE slot IS NOT NULL
""",
    """
-- The sha256 of the last body that parsed, so a server without ETag/Last-Modified that sends the same
-- bytes again is "not modified" and not parsed again.
ALTER TABLE feeds ADD COLUMN body_sha256 TEXT
""",
    """
-- A fingerprint of the settings parsing depends on (category, excerpt length, time zone, priorities,
-- max_entries): when it changes, the next fetch is unconditional and the feed is parsed again.
ALTER TABLE feeds ADD COLUMN parse_settings TEXT
""",
    """
-- Article pages read to enrich entries (sources with enrich = true): fetched once per address, the reply's
-- validators kept for a conditional GET, and what the page said (JSON, null when it could not be read).
CREATE TABLE articles (
    url           TEXT PRIMARY KEY,
    etag          TEXT,
    last_modified TEXT,
    fetched_at    TEXT NOT NULL,
    status        TEXT NOT NULL,   -- ok | failed | disallowed (robots.txt)
    meta          TEXT,
    error         TEXT
)
""",
)
