"""Golden files: each case in tests/golden/<case>/ builds to exactly the stored files, which pass every
email check. Regenerate with DIGEST_REGENERATE_GOLDEN=1 (then review the diff)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from golden_cases import CASES, build_case, load_case, scrub_issue_json

from digest.checks.email import check_email
from digest.render import html_lang

REGENERATE = os.environ.get("DIGEST_REGENERATE_GOLDEN") == "1"
FILES = ("email.html", "email.txt", "email.eml", "web.html", "issue.json", "notes.txt")


def _outputs(case_name: str, work: Path) -> tuple[dict[str, str], str]:
    case = load_case(case_name)
    config, outcome = build_case(case, work)
    assert outcome.built is not None, f"{case_name}: nothing was built"
    folder = outcome.built.folder
    assert folder.name == case.issue_id
    out = {name: (folder / name).read_text(encoding="utf-8") for name in FILES if name != "notes.txt"}
    out["issue.json"] = scrub_issue_json(out["issue.json"])
    out["notes.txt"] = "".join(f"{note}\n" for note in outcome.notes)
    return out, html_lang(config.digest.locale)


def test_there_are_golden_cases() -> None:
    assert {"sample", "first-run", "draft-week", "empty", "hostile", "oversized", "theme-override"} <= set(
        CASES
    )


@pytest.mark.parametrize("case_name", CASES)
def test_golden_case(case_name: str, tmp_path: Path) -> None:
    outputs, lang = _outputs(case_name, tmp_path)
    assert check_email(outputs["email.html"], lang=lang) == ()
    expected_dir = load_case(case_name).folder / "expected"
    if REGENERATE:
        expected_dir.mkdir(exist_ok=True)
        for name, text in outputs.items():
            (expected_dir / name).write_text(text, encoding="utf-8")
        return
    for name, text in outputs.items():
        expected = expected_dir / name
        assert expected.exists(), f"{expected} is missing: run with DIGEST_REGENERATE_GOLDEN=1"
        assert text == expected.read_text(encoding="utf-8"), (
            f"{case_name}/{name} differs from the golden file; if the change is intended, regenerate "
            "with DIGEST_REGENERATE_GOLDEN=1 and review the diff"
        )
