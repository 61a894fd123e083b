"""A scheduled run asked to stop in the middle of an SMTP send (a real aiosmtpd, a pool of connections):
the messages in flight are finished and recorded, the rest is left, and the next run resumes so that
every subscriber has exactly one copy."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from run_site import make_site
from send_support import Recorder, smtp_server

from digest.pipeline.run import run_once
from digest.state import ledger, open_state

AS_OF = datetime(2025, 5, 9, 7, tzinfo=UTC)
PEOPLE = tuple(f"reader{i:02d}@example.org" for i in range(24))


@pytest.mark.smtp
def test_a_stop_mid_send_finishes_the_messages_in_flight_and_the_next_run_sends_the_rest(
    tmp_path: Path,
) -> None:
    handler = Recorder(delay=0.02)
    with smtp_server(handler) as server:
        config = make_site(
            tmp_path,
            [("Midwives celebrated", datetime(2025, 5, 5, 9, tzinfo=UTC))],
            transport="smtp",
            smtp=f'host = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\npool_size = 4\n'
            "rate_per_second = 1000\n",
            subscribers=PEOPLE,
        )
        progress: list[int] = []
        stopped = run_once(
            config,
            now=AS_OF,
            as_of=AS_OF,
            stop=lambda: len([d for d in progress if d]) >= 5,
            on_progress=lambda done, _total: progress.append(done),
        )
        assert stopped.outcome == "stopped: will resume"
        assert stopped.exit_code == 0
        received = handler.recipients()
        assert 5 <= len(received) < len(PEOPLE)
        db = open_state(config.state_path)
        recorded = ledger.sent_count(db, "2025-W19")
        db.close()
        assert recorded == len(received)  # nothing accepted by the server is missing from the ledger

        resumed = run_once(config, now=AS_OF, as_of=AS_OF)
        assert (resumed.outcome, resumed.issue_id) == ("sent", "2025-W19")
        assert resumed.sent == len(PEOPLE) - len(received)
        assert resumed.already_sent == len(received)
    counts = Counter(r.lower() for r in handler.recipients())
    assert set(counts) == set(PEOPLE)
    assert set(counts.values()) == {1}
