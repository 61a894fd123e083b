"""Issue 14 item 2 across processes: the sign-up limit per client is kept in state (`digest.state.throttle`),
so several `digest serve` processes or hosts on one state share it and a restart keeps it; the state holds
a keyed hash of the client, never its IP address; old windows are pruned. The CSRF secret of the public
app is shared the same way (a form served by one host is accepted by another). Both backends, clock
injected."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_archive import make_config
from test_signup import CONSENT, Clock, confirm, form_fields, link_in, mails
from web_support import served

from digest.config import Config
from digest.deliver.reader_tokens import preferences_token
from digest.deliver.tokens import unsubscribe_secret
from digest.state.backend import open_database
from digest.state.settings import Settings
from digest.state.store import Store, open_store
from digest.web.public import create_public_app

HOUR = timedelta(hours=1)
CLIENT = "203.0.113.77"  # a documentation address, for the Store-level tests


@pytest.fixture
def config(backend: tuple[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """Sign-up enabled (no IP recorded with consent), outbox delivery, state on each backend in turn."""
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    kind, where = backend
    state = f'\n[state]\nurl = "{where}"\n' if kind == "postgresql" else ""
    return make_config(
        tmp_path,
        f'\n[subscribe]\nenabled = true\nconsent_text = "{CONSENT}"\n'
        'privacy_url = "https://example.org/privacy"\n'
        '\n[delivery]\noutbox = "outbox"\nfrom_address = "news@example.org"\n' + state,
    )


def form_of(client: httpx.Client) -> dict[str, str]:
    page = client.get("/subscribe")
    assert page.status_code == 200
    return form_fields(page.text)


def test_two_apps_over_one_state_share_the_limit(config: Config) -> None:
    """Two `digest serve` processes (two apps, each its own memory) over one state: 100 POSTs from one
    client split between them send at most `per_ip_per_hour` (5) emails, not 5 per process."""
    clock = Clock()
    with (
        served(create_public_app(config, clock=clock)) as one,
        served(create_public_app(config, clock=clock)) as two,
        httpx.Client(base_url=one) as a,
        httpx.Client(base_url=two) as b,
    ):
        forms = {a: form_of(a), b: form_of(b)}
        clock.advance(5)
        for i in range(100):
            client = (a, b)[i % 2]
            response = client.post("/subscribe", data={**forms[client], "email": f"victim{i}@example.org"})
            assert response.status_code == 200 and "Check your inbox" in response.text
    assert len(mails(config)) == 5


def test_a_form_served_by_one_host_is_accepted_by_another(config: Config) -> None:
    """Behind a load balancer one browser's GET and POST may reach different `digest serve` hosts: the
    CSRF secret comes from the shared state, so the sign-up and the confirmation work across them."""
    clock = Clock()
    with (
        served(create_public_app(config, clock=clock)) as one,
        served(create_public_app(config, clock=clock)) as two,
        httpx.Client() as browser,  # one cookie jar for both (cookies ignore ports)
    ):
        page = browser.get(f"{one}/subscribe")
        clock.advance(5)
        sent = browser.post(f"{two}/subscribe", data={**form_fields(page.text), "email": "ann@example.org"})
        assert sent.status_code == 200 and "Check your inbox" in sent.text
        [message] = mails(config)
        token = link_in(message)
        shown = browser.get(f"{two}/confirm", params={"token": token})
        done = browser.post(
            f"{one}/confirm", params={"token": token}, data={"token": token, **form_fields(shown.text)}
        )
        assert done.status_code == 200 and "Subscription confirmed" in done.text
    with open_store(config) as db:
        found = db.subscribers.get_subscriber("ann@example.org")
        assert found is not None and found.status == "active"


def test_a_restart_keeps_the_count_and_the_preference_page_shares_it(config: Config) -> None:
    """Four sign-ups, then a restart (a new app): one more is allowed, then the form and the preference
    page's change of address are refused quietly (the same answers as before, nothing sent)."""
    clock = Clock()
    with served(create_public_app(config, clock=clock)) as base, httpx.Client(base_url=base) as c:
        fields = form_of(c)
        clock.advance(5)
        for i in range(4):
            c.post("/subscribe", data={**fields, "email": f"first{i}@example.org"})
    assert len(mails(config)) == 4
    with served(create_public_app(config, clock=clock)) as base, httpx.Client(base_url=base) as c:
        fields = form_of(c)
        clock.advance(5)
        for i in range(10):
            response = c.post("/subscribe", data={**fields, "email": f"second{i}@example.org"})
            assert "Check your inbox" in response.text
        assert len(mails(config)) == 5
        # The fifth sign-up, confirmed, is a subscriber whose preference page now asks to move address.
        [fifth] = [m for m in mails(config) if m["To"].addresses[0].addr_spec == "second0@example.org"]
        assert confirm(c, link_in(fifth)).status_code == 200
        with open_store(config) as db:
            found = db.subscribers.get_subscriber("second0@example.org")
            assert found is not None and found.status == "active"
            token = preferences_token(unsubscribe_secret(config, db), found.token_id)
        page = c.get("/preferences", params={"token": token})
        csrf = dict(re.findall(r'name="(csrf_token)" value="([^"]*)"', page.text))
        moved = c.post(
            "/preferences", data={"token": token, "action": "address", "email": "new@example.org", **csrf}
        )
        assert moved.status_code == 200 and "keeps receiving" in moved.text
    assert len(mails(config)) == 5  # no confirmation went to new@example.org
    # An hour on, the client may sign up again (the allowed hits have aged out of the window).
    clock.advance(2 * 3600)
    with served(create_public_app(config, clock=clock)) as base, httpx.Client(base_url=base) as c:
        fields = form_of(c)
        clock.advance(5)
        c.post("/subscribe", data={**fields, "email": "later@example.org"})
    assert len(mails(config)) == 6


def test_the_state_holds_no_ip_address(config: Config, backend: tuple[str, Any]) -> None:
    """After sign-ups from 127.0.0.1 the throttle rows hold a keyed hash only; on SQLite no byte of the
    state file or its WAL spells the address."""
    clock = Clock()
    with served(create_public_app(config, clock=clock)) as base, httpx.Client(base_url=base) as c:
        fields = form_of(c)
        clock.advance(5)
        for i in range(7):
            c.post("/subscribe", data={**fields, "email": f"someone{i}@example.org"})
    assert len(mails(config)) == 5
    with open_store(config) as db:
        rows = raw_rows(db)
        key = db.throttle.client_hash("127.0.0.1")
    assert rows, "the sign-ups were counted in state"
    assert all(re.fullmatch(r"[0-9a-f]{64}", str(row[1])) for row in rows)
    assert [row[1] for row in rows] == [key]
    assert not any("127.0.0" in str(value) for row in rows for value in row)
    if backend[0] == "sqlite":
        for path in config.state_path.parent.glob(config.state_path.name + "*"):
            data = path.read_bytes()
            assert b"127.0.0.1" not in data and "127.0.0.1".encode("utf-16-le") not in data, path


def raw_rows(db: Store) -> list[tuple[Any, ...]]:
    """Every row of the table as the database holds it (raw SQL, either backend)."""
    database = db._database  # a test's look below the Store's operations
    return [tuple(row) for row in database.fetch_all("SELECT * FROM throttle_hits ORDER BY bucket_start")]


def test_the_window_slides(store: Store) -> None:
    """A sliding hour counted in minutes: hits age out an hour after the minute they were made in, so a
    burst at the end of one clock hour is not followed by a second burst at the start of the next."""
    end = datetime(2025, 5, 9, 9, 59, 30, tzinfo=UTC)

    def hits(at: datetime, count: int, client: str = CLIENT, scope: str = "signup") -> list[bool]:
        return [store.throttle.hit(scope, client, at=at, window=HOUR, limit=5) for _ in range(count)]

    assert hits(end - timedelta(minutes=30), 2) == [True, True]  # 09:29:30
    assert hits(end, 4) == [True, True, True, False]  # 09:59:30: five in the hour
    assert hits(end + timedelta(minutes=2), 1) == [False]  # 10:01:30, a new clock hour: still five
    # 10:29:00: the two of 09:29 are out of the last hour (counted from the minute's start), three are in.
    assert hits(datetime(2025, 5, 9, 10, 29, tzinfo=UTC), 3) == [True, True, False]
    # Another client, and another scope, have counts of their own.
    assert hits(end, 1, client="198.51.100.1") == [True]
    assert hits(end, 1, scope="other") == [True]
    # 10:59:00: the three of 09:59 are out; the two of 10:29 still count.
    assert hits(datetime(2025, 5, 9, 10, 59, tzinfo=UTC), 4) == [True, True, True, False]


def test_a_clock_behind_or_set_back_still_counts_the_hits(store: Store) -> None:
    """Hits written by a host whose clock is ahead (or before this clock was set back) count: the limit
    is not reset by a clock going backwards; hits more than a window ahead are a broken clock's, ignored."""
    at = datetime(2025, 5, 9, 9, 30, tzinfo=UTC)

    def hits(when: datetime, count: int, client: str = CLIENT) -> list[bool]:
        return [store.throttle.hit("signup", client, at=when, window=HOUR, limit=5) for _ in range(count)]

    assert hits(at + timedelta(minutes=3), 5) == [True] * 5  # the clock ahead
    assert hits(at, 1) == [False]  # three minutes behind: still five in the hour
    assert hits(at - timedelta(minutes=10), 1) == [False]  # set back further
    assert hits(at + 2 * HOUR, 5, client="198.51.100.9") == [True] * 5
    assert hits(at, 1, client="198.51.100.9") == [True]  # those five are more than an hour ahead


def test_old_windows_are_pruned(store: Store) -> None:
    """Rows whose minute left the hour are deleted at each hit: the table holds one hour of keys at most."""
    start = datetime(2025, 5, 9, 9, 0, tzinfo=UTC)
    for n in range(50):
        assert store.throttle.hit("signup", f"192.0.2.{n}", at=start, window=HOUR, limit=5)
    assert store.throttle.rows() == 50
    store.throttle.hit("signup", CLIENT, at=start + HOUR - timedelta(seconds=1), window=HOUR, limit=5)
    assert store.throttle.rows() == 51  # 09:00's hits are still in the last hour
    store.throttle.hit("signup", CLIENT, at=start + HOUR, window=HOUR, limit=5)
    assert store.throttle.rows() == 2  # 09:00's 50 are gone; 09:59 and 10:00 are kept
    store.throttle.hit("signup", "192.0.2.1", at=start + 5 * HOUR, window=HOUR, limit=5)
    assert store.throttle.rows() == 1


def test_concurrent_hits_never_pass_the_limit(store: Store) -> None:
    """Twenty threads hit at once (on PostgreSQL each on its own pooled connection): exactly 5 allowed."""
    at = datetime(2025, 5, 9, 9, 30, tzinfo=UTC)
    store.throttle.client_hash(CLIENT)  # the key is generated before the threads start
    results: list[bool] = []
    gate = threading.Barrier(20)

    def hit() -> None:
        gate.wait(timeout=60)
        allowed = store.throttle.hit("signup", CLIENT, at=at, window=HOUR, limit=5)
        results.append(allowed)

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 20
    assert results.count(True) == 5


class Racing:
    """A Database whose first read of a setting is followed, before the caller goes on, by another host
    storing that setting: the moment two `digest serve` processes both find no secret yet."""

    def __init__(self, db: Any, other: Any) -> None:
        self._db = db
        self._other = other
        self.raced = False

    def fetch_one(self, sql: str, params: Any = ()) -> Any:
        row = self._db.fetch_one(sql, params)
        if not self.raced and "FROM settings" in sql:
            self.raced = True
            Settings(self._other).set_setting(params[0], "theirs")
        return row

    def execute(self, sql: str, params: Any = ()) -> int:
        return int(self._db.execute(sql, params))

    def transaction(self) -> Any:
        return self._db.transaction()


def test_a_secret_generated_by_two_hosts_at_once_is_the_first_stored(
    postgres_db: str, tmp_path: Path
) -> None:
    """Two processes finding no throttle key at once both use the one stored first (each its own would hash
    one client two ways, and the limit would double until a restart)."""
    mine = open_database(path=tmp_path / "unused.db", url=postgres_db)
    other = open_database(path=tmp_path / "unused.db", url=postgres_db)
    try:
        racing = Racing(mine, other)
        assert Settings(racing).generated_secret("throttle_key_secret") == "theirs"  # type: ignore[arg-type]
        assert racing.raced
        assert Settings(other).get_setting("throttle_key_secret") == "theirs"
    finally:
        mine.close()
        other.close()


@pytest.mark.parametrize(
    ("client", "counted_as"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"),  # the same line, another address
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("testclient", "testclient"),
    ],
)
def test_an_ipv6_client_counts_by_its_64(client: str, counted_as: str) -> None:
    """One line has a whole /64: a client taking a new address for each sign-up is still one client."""
    from digest.pipeline.signup import client_network

    assert client_network(client) == counted_as


def test_addresses_of_one_ipv6_line_share_the_limit(config: Config) -> None:
    from digest.pipeline.signup import allow_signup

    now = datetime(2025, 5, 9, 9, tzinfo=UTC)
    limit = config.subscribe.per_ip_per_hour
    with open_store(config) as db:
        allowed = [allow_signup(config, db, f"2001:db8:7:7::{i:x}", now=now) for i in range(1, limit + 3)]
        other_line = allow_signup(config, db, "2001:db8:7:8::1", now=now)
    assert allowed == [True] * limit + [False, False]
    assert other_line
