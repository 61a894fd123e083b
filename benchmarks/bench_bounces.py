"""Bounce classification on real DSN and ARF samples: digest beside flufl.bounce used alone.

The samples and their expected kind and recipients are in tests/data/bounces/manifest.json. A sample
counts as right when the kind AND the set of recipients (case-insensitive) both match. flufl.bounce
alone has no hard/soft/complaint/auto-reply: its verdict is read as `hard` for permanent failures (what
Mailman acts on), `not_bounce` for warnings only or nothing found.
"""

from __future__ import annotations

import email
import json
import time
from pathlib import Path

from flufl.bounce import all_failures

from digest.deliver.bounces import classify_message

SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "data" / "bounces"


def _flufl_alone(raw: bytes) -> tuple[str, set[str]]:
    temporary, permanent = all_failures(email.message_from_bytes(raw))
    if permanent:
        return "hard", {a.decode("utf-8", "replace").lower() for a in permanent}
    return "not_bounce", {a.decode("utf-8", "replace").lower() for a in temporary}


def main() -> None:
    entries = json.loads((SAMPLES / "manifest.json").read_text(encoding="utf-8"))
    ours = ours_kind = flufl = flufl_kind = flufl_recipients = ours_recipients = 0
    started = time.perf_counter()
    for entry in entries:
        raw = (SAMPLES / entry["file"]).read_bytes()
        expected = {r.lower() for r in entry["recipients"]}
        got = classify_message(raw)
        kind_ok = got.kind == entry["kind"]
        recipients_ok = {r.lower() for r in got.recipients} == expected
        ours += kind_ok and recipients_ok
        ours_kind += kind_ok
        ours_recipients += recipients_ok
    elapsed = time.perf_counter() - started
    for entry in entries:
        raw = (SAMPLES / entry["file"]).read_bytes()
        expected = {r.lower() for r in entry["recipients"]}
        kind, recipients = _flufl_alone(raw)
        kind_ok = kind == entry["kind"]
        flufl += kind_ok and recipients == expected
        flufl_kind += kind_ok
        flufl_recipients += recipients == expected
    n = len(entries)
    print(
        f"{n} samples ({sum(1 for e in entries if e['file'].startswith('flufl/'))} flufl.bounce,"
        f" {sum(1 for e in entries if e['file'].startswith('sisimai/'))} sisimai)"
    )
    print(
        f"digest:            kind and recipients right {ours}/{n} = {ours / n:.1%}"
        f"  (kind {ours_kind / n:.1%}, recipients {ours_recipients / n:.1%});"
        f" {elapsed / n * 1000:.1f} ms/message"
    )
    print(
        f"flufl.bounce alone: kind and recipients right {flufl}/{n} = {flufl / n:.1%}"
        f"  (kind {flufl_kind / n:.1%}, recipients {flufl_recipients / n:.1%})"
    )
    print("goal: at least 95% for digest")
