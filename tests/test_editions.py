"""`[[editions]]` (issue 15 items 1 and 3): several newsletters from one pool, each at its own cadence,
with its own window, sent record, archive section and audience (subscriber tags)."""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from run_site import delivered, make_site
from schedule_clock import FakeClock

from digest.cli import main
from digest.cli.run import StopFlag, scheduled_job
from digest.compose import edition_issue_id
from digest.config import Config
from digest.config.editions import edition_config
from digest.errors import ConfigError
from digest.models import Window
from digest.schedule.cadence import EditionsLoop, slot_after, slot_before
from digest.state.store import open_store

EDITIONS = """
[[editions]]
id = "staff"
title = "Staff news"
cadence = "weekly"
audience = ["staff"]

[[editions]]
id = "residents"
title = "Residents daily"
cadence = "daily"
time = "07:00"
audience = ["residents"]
"""


@pytest.fixture(autouse=True)
def _restore_host_zone() -> Iterator[None]:
    yield
    time.tzset()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def _site(tmp_path: Path, extra: str = EDITIONS) -> Config:
    config = make_site(
        tmp_path,
        [
            ("Midwives celebrated", utc(2025, 5, 5, 9)),
            ("Clinic opens in Ashby", utc(2025, 5, 7, 12)),
            ("Library hours change", utc(2025, 5, 8, 12)),
        ],
        extra=extra,
        subscribers=("ann@example.org", "bob@example.org", "cat@example.org", "dan@example.org"),
    )
    with open_store(config) as db:
        db.tags.add_tags("ann@example.org", ["staff"])
        db.tags.add_tags("bob@example.org", ["Residents"])
        db.tags.add_tags("cat@example.org", ["staff", "residents"])
    return config


def _runs(config: Config, edition: str) -> list[tuple[datetime | None, str | None, str | None]]:
    with open_store(edition_config(config, edition)) as db:
        return sorted(
            ((r.slot, r.outcome, r.issue_id) for r in db.runs.recent_runs(100)), key=lambda r: str(r[0])
        )


def test_two_editions_run_at_their_own_cadences_on_the_controlled_clock_each_to_its_audience_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _site(tmp_path)
    clock = FakeClock(utc(2025, 5, 7, 5, 30))  # Wednesday 06:30 BST
    clock.install(monkeypatch)
    clock.stop_when = lambda c: c.now() >= utc(2025, 5, 10, 9)  # Saturday 10:00 BST
    narrowed = [edition_config(config, e.id) for e in config.editions]
    EditionsLoop(
        [(c.edition, c.schedule, scheduled_job(c, StopFlag(), clock.now)) for c in narrowed if c.edition],
        now=clock.now,
        wait=clock.wait,
        max_sleep=3600,
    ).run()

    # Daily at 07:00 BST (06:00Z): one issue a day while there is news, then nothing new.
    assert _runs(config, "residents") == [
        (utc(2025, 5, 7, 6), "sent", "residents-2025-05-07"),
        (utc(2025, 5, 8, 6), "sent", "residents-2025-05-08"),
        (utc(2025, 5, 9, 6), "sent", "residents-2025-05-09"),
        (utc(2025, 5, 10, 6), "skipped: nothing new", None),
    ]
    # Weekly on Friday at 08:00 BST (07:00Z), as [schedule] says; its window is its own.
    assert _runs(config, "staff") == [(utc(2025, 5, 9, 7), "sent", "staff-2025-W19")]

    copies = Counter((str(m["To"]).split("<")[-1].rstrip(">"), str(m["Subject"])) for m in delivered(config))
    assert all(n == 1 for n in copies.values()), copies
    got: dict[str, list[str]] = {}
    for (address, subject), _ in sorted(copies.items()):
        got.setdefault(address, []).append(subject)
    assert "dan@example.org" not in got  # no tag: in neither audience
    assert sum("Staff news" in s for s in got["ann@example.org"]) == 1
    assert not any("Residents" in s for s in got["ann@example.org"])
    assert sum("Residents daily" in s for s in got["bob@example.org"]) == 3
    assert not any("Staff" in s for s in got["bob@example.org"])
    # In both audiences: each edition's issues once each.
    assert sum("Staff news" in s for s in got["cat@example.org"]) == 1
    assert sum("Residents daily" in s for s in got["cat@example.org"]) == 3

    # The staff issue holds the whole week although the residents edition sent the same entries.
    with open_store(config) as db:
        staff = db.issues.get_issue("staff-2025-W19")
        assert staff is not None and staff.entry_count == 3
        assert db.issues.issue_edition("staff-2025-W19") == "staff"
    # Each edition has its own archive section.
    archive = config.web.archive_dir
    assert (archive / "staff" / "issues" / "staff-2025-W19" / "index.html").is_file()
    assert (archive / "residents" / "issues" / "residents-2025-05-09" / "index.html").is_file()
    assert not (archive / "issues").exists()
    # `digest status --edition` shows that edition's issues and runs; without it, each edition's next run.
    capsys.readouterr()
    assert main(["status", "--json", "--edition", "staff", "--config", str(config.path)]) == 0
    staff_status = json.loads(capsys.readouterr().out)
    assert staff_status["edition"] == "staff"
    assert [i["id"] for i in staff_status["issues"]] == ["staff-2025-W19"]
    assert {r["issue_id"] for r in staff_status["runs"]} == {"staff-2025-W19"}
    assert main(["status", "--json", "--config", str(config.path)]) == 0
    overall = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in overall["editions"]] == ["staff", "residents"]
    assert len(overall["issues"]) == 4
    # `digest publish` puts each edition's sent issues back in its own part of the archive.
    shutil.rmtree(archive)
    assert main(["publish", "--config", str(config.path)]) == 0
    assert (archive / "staff" / "issues" / "staff-2025-W19" / "index.html").is_file()
    assert (archive / "residents" / "index.html").is_file()
    assert (archive / "residents" / "issues" / "residents-2025-05-07" / "index.html").is_file()
    assert not (archive / "issues").exists()


def test_issue_ids_carry_the_edition_and_the_period_of_its_cadence() -> None:
    window = Window(utc(2025, 5, 2, 7), utc(2025, 5, 9, 7))
    assert edition_issue_id(window, "staff", "weekly", "Europe/London") == "staff-2025-W19"
    assert edition_issue_id(window, "gp", "monthly", "Europe/London") == "gp-2025-05"
    assert edition_issue_id(window, "res", "daily", "Europe/London") == "res-2025-05-09"
    assert edition_issue_id(window, "res", "cron", "Europe/London") == "res-2025-05-09"


def test_a_cron_cadence_keeps_its_local_time_across_the_clock_change(tmp_path: Path) -> None:
    config = _site(
        tmp_path,
        '[[editions]]\nid = "weekday"\ncadence = "0 8 * * mon-fri"\ntimezone = "Europe/London"\n'
        '[[editions]]\nid = "gp"\ncadence = "monthly"\nday = 3\ntime = "09:30"\n',
    )
    weekday = edition_config(config, "weekday")
    friday = utc(2025, 3, 28, 12)  # GMT
    assert slot_before(weekday.schedule, weekday.edition, friday) == utc(2025, 3, 28, 8)
    assert slot_after(weekday.schedule, weekday.edition, friday) == utc(2025, 3, 31, 7)  # Monday, BST
    assert slot_before(weekday.schedule, weekday.edition, utc(2025, 3, 28, 8)) == utc(2025, 3, 28, 8)
    gp = edition_config(config, "gp")
    assert slot_after(gp.schedule, gp.edition, utc(2025, 3, 28, 12)) == utc(2025, 4, 3, 8, 30)


def test_bad_editions_are_reported_together_with_their_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _site(
            tmp_path,
            '[[editions]]\nid = "Staff News"\ncadence = "fortnightly"\n'
            '[[editions]]\nid = "res"\ncadence = "monthly"\nday = 31\nsources = ["Nope"]\n'
            'priorities = ["Unknown"]\n[[editions]]\nid = "res"\ncadence = "daily"\nday = "monday"\n',
        )
    problems = "\n".join(caught.value.problems)
    assert "editions[0].id: 'Staff News' must be" in problems
    assert "editions[0].cadence: 'fortnightly' is neither daily, weekly, monthly nor" in problems
    assert "editions[1].day:" in problems
    assert "editions[1].sources: 'Nope' is not the name of a [[sources]] table" in problems
    assert "editions[1].priorities: 'Unknown' is not" in problems
    assert "editions[2].day: is only read with cadence weekly or monthly" in problems
    assert "editions: the id 'res' is used more than once" in problems


def test_an_edition_narrows_sources_priorities_title_and_theme(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "other.xml").write_text("<rss version='2.0'><channel><title>x</title></channel></rss>")
    config = make_site(
        tmp_path,
        [],
        extra_sources='[[sources]]\nname = "Other"\nurl = "other.xml"\ncategory = "Other"\n',
        extra='[[priorities]]\nname = "Start Well"\nkeywords = ["midwives"]\n'
        '[[priorities]]\nname = "Age Well"\nkeywords = ["care home"]\n'
        '[[editions]]\nid = "gp"\ntitle = "GP bulletin"\nsources = ["Other"]\npriorities = ["start well"]\n'
        '[editions.theme]\nprimary_colour = "#330072"\n',
    )
    gp = edition_config(config, "gp")
    assert [s.name for s in gp.sources] == ["Other"]
    assert [p.name for p in gp.priorities] == ["Start Well"]
    assert gp.digest.title == "GP bulletin"
    assert gp.theme.primary_colour == "#330072"
    assert config.theme.primary_colour != "#330072"
    assert gp.archive_url == config.web.base_url + "/gp"
    assert gp.web.archive_dir == config.web.archive_dir / "gp"


def test_commands_on_one_issue_need_the_edition_when_the_config_has_editions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _site(tmp_path)
    assert main(["build", "--offline", "--config", str(config.path)]) == 2
    assert "has [[editions]]: say which with --edition ID" in capsys.readouterr().err
    assert main(["build", "--offline", "--edition", "nope", "--config", str(config.path)]) == 2
    assert "editions configured: staff, residents" in capsys.readouterr().err
    as_of = ["--as-of", "2025-05-09T08:00:00+01:00"]
    assert main(["build", "--edition", "staff", *as_of, "--config", str(config.path)]) == 0
    built = capsys.readouterr().out.strip().splitlines()
    assert built[-1].endswith("/out/staff-2025-W19/email.html")
    # --issue names its edition: the dry run plans the staff audience only.
    command = ["send", "--dry-run", "--verbose", "--issue", "staff-2025-W19", "--config", str(config.path)]
    assert main(command) == 0
    planned = capsys.readouterr().out
    assert "ann@example.org" in planned and "cat@example.org" in planned
    assert "bob@example.org" not in planned and "dan@example.org" not in planned
    # Another edition's issue is refused, not sent to the wrong audience.
    code = main(
        [
            "send",
            "--dry-run",
            "--edition",
            "residents",
            "--issue",
            "staff-2025-W19",
            "--config",
            str(config.path),
        ]
    )
    assert code == 2
    assert "was built for edition staff, not residents" in capsys.readouterr().err


def test_subscriber_tags_from_the_command_line_and_the_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _site(tmp_path)
    args = ["--config", str(config.path)]
    assert main(["subscribers", "tag", "DAN@example.org", "Partners", "staff", *args]) == 0
    assert "dan@example.org: tags partners, staff" in capsys.readouterr().out
    assert main(["subscribers", "untag", "dan@example.org", "staff", *args]) == 0
    assert "dan@example.org: tags partners" in capsys.readouterr().out
    assert main(["subscribers", "tag", "eve@example.org", "staff", *args]) == 2
    assert "eve@example.org is not a subscriber" in capsys.readouterr().err
    assert main(["subscribers", "tag", "dan@example.org", "no spaces", *args]) == 2
    assert "is not a tag" in capsys.readouterr().err

    csv_file = tmp_path / "list.csv"
    csv_file.write_text(
        "email,name,tags\neve@example.org,Eve,staff;GP_practices\nfay@example.org,Fay,bad tag\n"
    )
    assert main(["subscribers", "import", str(csv_file), "--consent", "Staff list", *args]) == 0
    captured = capsys.readouterr()
    assert "list.csv:3: rejected 'bad tag': tags: 'bad tag' is not a tag" in captured.err
    with open_store(config) as db:
        assert db.tags.tags_of("eve@example.org") == ("gp_practices", "staff")
        assert db.subscribers.get_subscriber("fay@example.org") is None

    assert main(["subscribers", "list", "--tag", "staff", *args]) == 0
    listed = capsys.readouterr().out
    assert "ann@example.org" in listed and "eve@example.org" in listed and "cat@example.org" in listed
    assert "bob@example.org" not in listed and "dan@example.org" not in listed
    assert "3 subscriber(s) tagged staff" in listed

    assert main(["subscribers", "remove", "eve@example.org", *args]) == 0
    with open_store(config) as db:
        assert db.tags.tags_of("eve@example.org") == ()
