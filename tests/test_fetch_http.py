"""HTTP fetching against a real server on 127.0.0.1: statuses, conditional GET, retries, redirects, caps."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from feed_server import (
    FeedServer,
    Reply,
    feed,
    gzipped,
    redirect,
    rss,
    running_server,
    sequence,
    write_config,
)
from state_support import sql

from digest.cli import main
from digest.cli.ingest import status_text
from digest.config import USER_AGENT, load_config
from digest.errors import FetchError
from digest.ingest import fetch
from digest.models import SourceStatus
from digest.pipeline.ingest import ingest_sources, source_reports
from digest.state.store import Store, open_store

NOW = datetime(2025, 5, 9, 16, 0, tzinfo=UTC)
FAST = 0.01  # backoff seconds between retries in tests


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with running_server() as s:
        yield s


def _get(server: FeedServer, path: str, **kwargs: object) -> fetch.Fetched:
    async def go() -> fetch.Fetched:
        async with fetch.new_client(concurrency=2) as client:
            options: dict[str, object] = {
                "name": "test",
                "timeout": 2.0,
                "user_agent": USER_AGENT,
                "validators": fetch.Validators(),
                "max_bytes": 100_000,
                "retries": 2,
                "backoff": FAST,
            }
            options.update(kwargs)
            return await fetch.fetch_http(client, server.url + path, **options)  # type: ignore[arg-type]

    return asyncio.run(go())


def _ingest(config_path: Path, db: Store, now: datetime = NOW) -> dict[str, object]:
    config = load_config(config_path)
    result = ingest_sources(config, db, now=now, backoff=FAST)
    return {"result": result, "reports": {r.name: r for r in result.reports}}


def test_200_gives_the_body_validators_and_an_honest_user_agent(server: FeedServer) -> None:
    server.routes["/feed"] = feed(rss("One"), etag='"v1"', last_modified="Fri, 09 May 2025 10:00:00 GMT")
    got = _get(server, "/feed")
    assert got.status == "ok"
    assert got.http_status == 200
    assert got.documents[0].body == rss("One")
    assert got.validators == fetch.Validators('"v1"', "Fri, 09 May 2025 10:00:00 GMT")
    request = server.hits("/feed")[0]
    assert request.headers["user-agent"] == USER_AGENT
    assert USER_AGENT.startswith("digest/") and "+http" in USER_AGENT
    assert "gzip" in request.headers["accept-encoding"]
    assert "application/rss+xml" in request.headers["accept"]


def test_304_with_etag_is_persisted_and_costs_one_request(server: FeedServer, tmp_path: Path) -> None:
    server.routes["/feed"] = feed(rss("One", "Two"), etag='"abc"')
    path = write_config(tmp_path, [{"name": "F", "url": server.url + "/feed"}])
    db = open_store(tmp_path / "state.db")
    first = _ingest(path, db)["reports"]["F"]  # type: ignore[index]
    assert first.status is SourceStatus.OK and first.entries == 2
    db.close()
    db = open_store(tmp_path / "state.db")  # validators survive a new process
    second = _ingest(path, db, NOW + timedelta(hours=1))
    report = second["reports"]["F"]  # type: ignore[index]
    assert report.status is SourceStatus.NOT_MODIFIED
    assert report.http_status == 304
    assert report.entries == 2
    assert [e.title for e in second["result"].entries] == ["One", "Two"]  # type: ignore[attr-defined]
    assert len(server.hits("/feed")) == 2
    assert server.hits("/feed")[1].headers["if-none-match"] == '"abc"'


def test_304_with_last_modified(server: FeedServer, tmp_path: Path) -> None:
    stamp = "Thu, 08 May 2025 09:00:00 GMT"
    server.routes["/feed"] = feed(rss("One"), last_modified=stamp)
    path = write_config(tmp_path, [{"name": "F", "url": server.url + "/feed"}])
    db = open_store(tmp_path / "state.db")
    _ingest(path, db)
    report = _ingest(path, db)["reports"]["F"]  # type: ignore[index]
    assert report.status is SourceStatus.NOT_MODIFIED
    assert server.hits("/feed")[1].headers["if-modified-since"] == stamp
    assert "if-none-match" not in server.hits("/feed")[1].headers


def test_304_returns_the_stored_entries_without_parsing_again(server: FeedServer, tmp_path: Path) -> None:
    server.routes["/feed"] = feed(rss("Original"), etag='"e"')
    path = write_config(tmp_path, [{"name": "F", "url": server.url + "/feed"}])
    db = open_store(tmp_path / "state.db")
    _ingest(path, db)
    # Change what state holds: if the 304 path parsed the feed again, the original title would come back.
    sql(db).execute("UPDATE entries SET data = replace(data, '\"Original\"', '\"From state\"')")
    result = _ingest(path, db)["result"]
    assert [e.title for e in result.entries] == ["From state"]  # type: ignore[attr-defined]


def test_an_identical_body_without_validators_is_not_modified_and_not_parsed_again(
    server: FeedServer, tmp_path: Path
) -> None:
    bodies = [rss("Original"), rss("Original"), rss("Changed")]
    server.routes["/feed"] = lambda request: Reply(
        200, bodies.pop(0), {"Content-Type": "application/rss+xml"}
    )
    path = write_config(tmp_path, [{"name": "F", "url": server.url + "/feed"}])
    db = open_store(tmp_path / "state.db")
    assert _ingest(path, db)["reports"]["F"].status is SourceStatus.OK  # type: ignore[index]
    # Change what state holds: if the same bytes were parsed again, the original title would come back.
    sql(db).execute("UPDATE entries SET data = replace(data, '\"Original\"', '\"From state\"')")
    again = _ingest(path, db, NOW + timedelta(hours=1))
    report = again["reports"]["F"]  # type: ignore[index]
    assert report.status is SourceStatus.NOT_MODIFIED
    assert report.http_status == 200  # the body came, but it is the one parsed last time
    assert report.entries == 1 and report.error is None
    assert [e.title for e in again["result"].entries] == ["From state"]  # type: ignore[attr-defined]
    changed = _ingest(path, db, NOW + timedelta(hours=2))
    assert changed["reports"]["F"].status is SourceStatus.OK  # type: ignore[index]
    assert [e.title for e in changed["result"].entries] == ["Changed"]  # type: ignore[attr-defined]
    assert len(server.hits("/feed")) == 3
    assert all("if-none-match" not in r.headers for r in server.hits("/feed"))


def test_a_body_that_failed_to_parse_is_not_remembered_and_validators_are_kept(
    server: FeedServer, tmp_path: Path
) -> None:
    plain = {"Content-Type": "application/rss+xml"}
    server.routes["/feed"] = sequence(
        Reply(200, rss("Good"), plain),
        Reply(200, b"<!DOCTYPE html><html><body>Maintenance</body></html>", plain),
        Reply(200, rss("Good"), {**plain, "ETag": '"new"'}),  # the same bytes, now with an ETag
        Reply(304, b"", {"ETag": '"new"'}),
    )
    path = write_config(tmp_path, [{"name": "F", "url": server.url + "/feed"}], retries=0)
    db = open_store(tmp_path / "state.db")
    statuses = [_ingest(path, db)["reports"]["F"].status for _ in range(4)]  # type: ignore[index]
    assert statuses == [
        SourceStatus.OK,
        SourceStatus.FAILED,
        SourceStatus.NOT_MODIFIED,  # the last body that parsed: its entries stand
        SourceStatus.NOT_MODIFIED,
    ]
    # The ETag that came with the unchanged body is used from then on.
    assert server.hits("/feed")[3].headers["if-none-match"] == '"new"'
    assert [e.title for e in _ingest(path, db)["result"].entries] == ["Good"]  # type: ignore[attr-defined]


def test_a_new_url_is_parsed_even_when_its_body_is_the_same(server: FeedServer, tmp_path: Path) -> None:
    server.routes["/a"] = lambda request: Reply(200, rss("Same"))
    server.routes["/b"] = lambda request: Reply(200, rss("Same"))
    db = open_store(tmp_path / "state.db")
    _ingest(write_config(tmp_path, [{"name": "F", "url": server.url + "/a"}]), db)
    moved = _ingest(write_config(tmp_path, [{"name": "F", "url": server.url + "/b"}]), db)
    assert moved["reports"]["F"].status is SourceStatus.OK  # type: ignore[index]


def test_404_fails_with_the_status_and_a_hint(server: FeedServer) -> None:
    with pytest.raises(fetch.HTTPStatusFetchError) as caught:
        _get(server, "/missing")
    assert caught.value.status == 404
    assert "HTTP 404" in str(caught.value)
    assert caught.value.hint and "url" in caught.value.hint
    assert len(server.hits("/missing")) == 1  # a 4xx is not retried


def test_410_marks_the_source_gone_and_it_is_not_fetched_again(server: FeedServer, tmp_path: Path) -> None:
    server.routes["/old"] = lambda request: Reply(410, b"gone")
    path = write_config(tmp_path, [{"name": "Old", "url": server.url + "/old"}])
    db = open_store(tmp_path / "state.db")
    assert _ingest(path, db)["reports"]["Old"].status is SourceStatus.GONE  # type: ignore[index]
    assert _ingest(path, db)["reports"]["Old"].status is SourceStatus.GONE  # type: ignore[index]
    assert len(server.hits("/old")) == 1
    # A new URL in the config is fetched afresh.
    server.routes["/new"] = feed(rss("Back"))
    path = write_config(tmp_path, [{"name": "Old", "url": server.url + "/new"}])
    assert _ingest(path, db)["reports"]["Old"].status is SourceStatus.OK  # type: ignore[index]


def test_500_then_success_on_retry(server: FeedServer) -> None:
    server.routes["/flaky"] = sequence(Reply(500, b"oops"), Reply(503, b"busy"), Reply(200, rss("Finally")))
    got = _get(server, "/flaky")
    assert got.status == "ok"
    assert got.attempts == 3
    assert len(server.hits("/flaky")) == 3


def test_5xx_after_every_retry_fails(server: FeedServer) -> None:
    server.routes["/down"] = lambda request: Reply(502, b"bad gateway")
    with pytest.raises(fetch.HTTPStatusFetchError) as caught:
        _get(server, "/down", retries=1)
    assert caught.value.status == 502
    assert len(server.hits("/down")) == 2


def test_slow_response_past_the_timeout_fails_after_retries(server: FeedServer) -> None:
    server.routes["/slow"] = lambda request: Reply(200, rss("Late"), hold=True)
    with pytest.raises(FetchError, match=r"timed out after 0\.2 s"):
        _get(server, "/slow", timeout=0.2, retries=1)
    assert len(server.hits("/slow")) == 2


def test_redirect_chain_is_followed_and_a_temporary_one_is_not_recorded_as_a_move(
    server: FeedServer,
) -> None:
    server.routes["/a"] = redirect("/b", 302)
    server.routes["/b"] = redirect("/c", 301)
    server.routes["/c"] = feed(rss("Here"))
    got = _get(server, "/a")
    assert got.status == "ok"
    assert got.redirected_to == server.url + "/c"
    assert got.permanent is False  # one hop was temporary


def test_permanent_redirects_are_recorded_shown_and_used_next_time(
    server: FeedServer, tmp_path: Path
) -> None:
    server.routes["/old"] = redirect("/mid", 301)
    server.routes["/mid"] = redirect("/new", 308)
    server.routes["/new"] = feed(rss("Moved"))
    path = write_config(tmp_path, [{"name": "M", "url": server.url + "/old"}])
    db = open_store(tmp_path / "state.db")
    report = _ingest(path, db)["reports"]["M"]  # type: ignore[index]
    assert report.status is SourceStatus.OK
    assert report.redirected_to == server.url + "/new"
    assert report.permanent_redirect is True
    _ingest(path, db)
    assert len(server.hits("/old")) == 1  # the second run went straight to the new address
    assert len(server.hits("/new")) == 2
    assert source_reports(load_config(path), db)[0].permanent_redirect


def test_redirect_loop_fails_clearly(server: FeedServer) -> None:
    server.routes["/loop"] = redirect("/loop", 302)
    with pytest.raises(FetchError, match="redirects"):
        _get(server, "/loop")


def test_gzip_is_decoded(server: FeedServer) -> None:
    server.routes["/gz"] = gzipped(rss("Compressed"))
    got = _get(server, "/gz")
    assert got.documents[0].body == rss("Compressed")


def test_wrong_content_type(server: FeedServer, tmp_path: Path) -> None:
    # A feed served as text/plain still parses (the bytes decide), a web page is refused with a hint.
    server.routes["/plain"] = feed(rss("Plain"), content_type="text/plain; charset=utf-8")
    page = b'<!DOCTYPE html><html><head><link rel="alternate" type="application/rss+xml" href="/feed.xml">'
    server.routes["/page"] = lambda request: Reply(
        200, page + b"</head></html>", {"Content-Type": "text/html"}
    )
    path = write_config(
        tmp_path,
        [{"name": "Plain", "url": server.url + "/plain"}, {"name": "Page", "url": server.url + "/page"}],
    )
    db = open_store(tmp_path / "state.db")
    reports = _ingest(path, db)["reports"]
    assert reports["Plain"].status is SourceStatus.OK  # type: ignore[index]
    assert reports["Plain"].entries == 1  # type: ignore[index]
    assert reports["Page"].status is SourceStatus.FAILED  # type: ignore[index]
    assert "web page" in reports["Page"].error  # type: ignore[index]
    assert "text/html" in reports["Page"].error  # type: ignore[index]
    assert f"set the source's url to {server.url}/feed.xml" in reports["Page"].error  # type: ignore[index]


def test_oversize_body_is_refused_with_and_without_content_length(server: FeedServer) -> None:
    big = rss(*[f"Item {i}" for i in range(400)])
    server.routes["/big"] = lambda request: Reply(200, big)
    server.routes["/big-stream"] = lambda request: Reply(200, big, length=False)
    for route in ("/big", "/big-stream"):
        with pytest.raises(FetchError, match="over the 10,000-byte limit"):
            _get(server, route, max_bytes=10_000)


def test_gzip_bomb_is_capped_on_decoded_size(server: FeedServer) -> None:
    server.routes["/bomb"] = gzipped(b"<rss>" + b" " * 2_000_000 + b"</rss>")
    with pytest.raises(FetchError, match="limit"):
        _get(server, "/bomb", max_bytes=100_000)


def test_connection_refused_is_a_fetch_error() -> None:
    async def go() -> None:
        async with fetch.new_client(concurrency=1) as client:
            await fetch.fetch_http(
                client,
                "http://127.0.0.1:9/feed",
                name="closed",
                timeout=1.0,
                user_agent=USER_AGENT,
                validators=fetch.Validators(),
                max_bytes=1000,
                retries=0,
            )

    with pytest.raises(FetchError, match="cannot connect"):
        asyncio.run(go())


def test_a_broken_source_never_stops_the_others(server: FeedServer, tmp_path: Path) -> None:
    server.routes["/good"] = feed(rss("Good news"))
    server.routes["/bad"] = lambda request: Reply(500, b"")
    server.routes["/junk"] = lambda request: Reply(
        200, b"\x00\x01 not a feed", {"Content-Type": "application/xml"}
    )
    path = write_config(
        tmp_path,
        [
            {"name": "Bad", "url": server.url + "/bad"},
            {"name": "Junk", "url": server.url + "/junk"},
            {"name": "Good", "url": server.url + "/good"},
        ],
        retries=0,
    )
    db = open_store(tmp_path / "state.db")
    out = _ingest(path, db)
    reports = out["reports"]
    assert reports["Good"].status is SourceStatus.OK  # type: ignore[index]
    assert reports["Bad"].status is SourceStatus.FAILED  # type: ignore[index]
    assert reports["Bad"].http_status == 500  # type: ignore[index]
    assert reports["Junk"].status is SourceStatus.FAILED  # type: ignore[index]
    assert [e.title for e in out["result"].entries] == ["Good news"]  # type: ignore[attr-defined]
    again = _ingest(path, db)["reports"]
    assert again["Bad"].consecutive_failures == 2  # type: ignore[index]
    assert again["Good"].consecutive_failures == 0  # type: ignore[index]


def test_a_failing_source_keeps_its_last_good_entries(server: FeedServer, tmp_path: Path) -> None:
    server.routes["/feed"] = sequence(Reply(200, rss("Kept")), Reply(500, b""))
    path = write_config(tmp_path, [{"name": "F", "url": server.url + "/feed"}], retries=0)
    db = open_store(tmp_path / "state.db")
    _ingest(path, db)
    out = _ingest(path, db)
    assert out["reports"]["F"].status is SourceStatus.FAILED  # type: ignore[index]
    assert [e.title for e in out["result"].entries] == ["Kept"]  # type: ignore[attr-defined]


def test_concurrency_is_bounded(server: FeedServer, tmp_path: Path) -> None:
    def slowish(request: object) -> Reply:
        time.sleep(0.05)
        return Reply(200, rss("x"))

    sources = []
    for i in range(6):
        server.routes[f"/f{i}"] = slowish
        sources.append({"name": f"S{i}", "url": f"{server.url}/f{i}"})
    path = write_config(tmp_path, sources, concurrency=2)
    db = open_store(tmp_path / "state.db")
    out = _ingest(path, db)
    assert all(r.status is SourceStatus.OK for r in out["result"].reports)  # type: ignore[attr-defined]
    assert 1 <= server.max_in_flight <= 2


def test_per_source_timeout_and_user_agent(server: FeedServer, tmp_path: Path) -> None:
    server.routes["/slow"] = lambda request: Reply(200, rss("Late"), hold=True)
    server.routes["/ua"] = feed(rss("UA"))
    path = write_config(
        tmp_path,
        [
            {"name": "Slow", "url": server.url + "/slow", "timeout": 0.2},
            {
                "name": "UA",
                "url": server.url + "/ua",
                "user_agent": "digest-test/1 (+mailto:comms@example.org)",
            },
        ],
        retries=0,
    )
    db = open_store(tmp_path / "state.db")
    reports = _ingest(path, db)["reports"]
    assert "timed out after 0.2 s" in reports["Slow"].error  # type: ignore[index]
    assert server.hits("/ua")[0].headers["user-agent"] == "digest-test/1 (+mailto:comms@example.org)"


def test_digest_fetch_shows_a_permanent_move_and_the_status(
    server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.routes["/old"] = redirect("/new", 301)
    server.routes["/new"] = feed(rss("Moved"))
    server.routes["/gone"] = lambda request: Reply(410)
    path = write_config(
        tmp_path,
        [{"name": "Moved", "url": server.url + "/old"}, {"name": "Gone", "url": server.url + "/gone"}],
    )
    assert main(["fetch", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "moved" in out and "permanently" in out and "gone (HTTP 410)" in out
    reports = source_reports(load_config(path), open_store(tmp_path / ".digest" / "state.db"))
    assert (
        status_text(reports[0]) == f"ok; moved permanently to {server.url}/new (update the url in the config)"
    )
    assert main(["fetch", "--config", str(path), "--json", "--strict"]) == 3
    moved, gone = json.loads(capsys.readouterr().out)
    assert (moved["status"], moved["redirected_to"], moved["permanent_redirect"]) == (
        "not_modified",  # the same body again (the test feed sends no validators)
        server.url + "/new",
        True,
    )
    assert (gone["status"], gone["http_status"]) == ("gone", 410)


def test_retry_after_is_honoured_in_seconds_or_as_a_date(server: FeedServer) -> None:
    server.routes["/busy"] = sequence(Reply(429, b"", {"Retry-After": "0"}), Reply(200, rss("Now")))
    assert _get(server, "/busy").attempts == 2
    assert fetch._retry_after("120", None) == 120.0
    assert fetch._retry_after("Fri, 09 May 2025 10:00:30 GMT", "Fri, 09 May 2025 10:00:00 GMT") == 30.0
    assert fetch._retry_after("soon", "Fri, 09 May 2025 10:00:00 GMT") is None
    assert fetch._retry_after("Fri, 09 May 2025 10:00:30 -0000", "Fri, 09 May 2025 10:00:00 GMT") is None
