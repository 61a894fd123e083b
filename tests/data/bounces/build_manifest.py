"""How manifest.json was built (run by hand; kept for provenance, not run by the tests).

    python tests/data/bounces/build_manifest.py FLUFL_SDIST SET_OF_EMAILS RB_SISIMAI

FLUFL_SDIST: the unpacked flufl.bounce 6.0.0 sdist (its tests/data/*.txt were copied to flufl/).
SET_OF_EMAILS, RB_SISIMAI: git clones of sisimai/set-of-emails (maildir/bsd/*.eml were copied to
sisimai/) and sisimai/rb-sisimai (test/public/*.rb hold sisimai's expected reason of each sample).

- flufl/: the recipients are those flufl.bounce's own tests/test_detectors.py expects; a sample flufl
  reports as temporary is `not_bounce` (a warning); the others were read and labelled `hard` (the
  address is dead: the list HARD) or `soft`.
- sisimai/: the kind is sisimai's label mapped onto digest's: hardbounce true -> hard, feedback ->
  complaint (auth-failure -> not_bounce), vacation -> auto_reply, delivered -> not_bounce, otherwise
  soft; the recipients are each DSN block's Original-Recipient, else Final-Recipient (ARF:
  Original-Rcpt-To, Removal-Recipient). Samples whose recipients cannot be read that way, or that mix
  kinds, are left out. DIFFERS lists where digest's verdict disagrees with the label, and why.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

BASE = Path(__file__).resolve().parent
HARD = set(
    """bounce_02 groupwise_01 groupwise_02 llnl_01 simple_11 simple_13 simple_37 yale_01 simple_05 simple_06
    yahoo_10 simple_12 smtp32_07 simple_23 postfix_02 simple_39 simple_41 dsn_10 dsn_11 dsn_12 dsn_13 dsn_14
    dsn_15 dsn_16 dsn_18 exim_01 microsoft_01 microsoft_02 microsoft_04 postfix_01 qmail_03 qmail_04 qmail_05
    simple_04 simple_08 simple_15 simple_19 simple_25 simple_26 simple_27 simple_29 simple_30 simple_33
    simple_34 simple_36 smtp32_04 smtp32_06 yahoo_11 yahoo_13""".split()  # noqa: SIM905 - reads better
)
MODULES = (
    "arf",
    "rfc3834",
    "lhost-postfix",
    "lhost-gmail",
    "lhost-office365",
    "lhost-exchange2007",
    "lhost-yahoo",
    "lhost-amazonses",
    "lhost-outlook",
    "rhost-microsoft",
)
DIFFERS = {
    "sisimai/lhost-postfix-01.eml": "sisimai: mailererror; the text is procmail's 'No such user'",
    "sisimai/lhost-postfix-03.eml": "sisimai: filtered; the diagnostic reads '550 Unknown user'",
    "sisimai/lhost-postfix-35.eml": "sisimai: filtered; the diagnostic reads '550 : User unknown'",
    "sisimai/lhost-office365-04.eml": "sisimai: filtered; the diagnostic reads 'unknown recipient ... User"
    " unknown'",
    "sisimai/lhost-amazonses-01.eml": "sisimai: securityerror; SES's summary reads 'Unknown address error'",
    "sisimai/lhost-amazonses-02.eml": "sisimai: filtered; the diagnostic reads 'Unknown user'",
    "sisimai/lhost-postfix-46.eml": "sisimai: userunknown from a bare 'Recipient address rejected.'",
    "sisimai/lhost-outlook-03.eml": "sisimai: hostunknown from 'the domain is not reachable' (also a network"
    " fault)",
    "sisimai/lhost-outlook-06.eml": "sisimai: expired; the DSN says Action: delayed (digest: a warning,"
    " not_bounce)",
}
FIELD = re.compile(
    r"^(Original-Recipient|Final-Recipient|Original-Rcpt-To|Removal-Recipient):\s*(?:rfc822;)?\s*"
    r"<?([^>\s;]+@[^>\s;]+)>?",
    re.IGNORECASE | re.MULTILINE,
)
ROW = re.compile(r"\['([^']*)',\s*'([^']*)',\s*'([^']*)',\s*(true|false)(?:,\s*'([^']*)')?\s*\]?")


def flufl_entries(sdist: Path) -> list[dict[str, object]]:
    source = (sdist / "tests" / "test_detectors.py").read_text()
    table = source[source.index("DETECTORS = [") + len("DETECTORS = ") : source.index("]\n\n\n@pytest") + 1]
    recipients: dict[str, set[str]] = {}
    temporary: dict[str, bool] = {}
    for _detector, name, addresses, is_temporary in ast.literal_eval(re.sub(r"#.*", "", table)):
        if addresses:
            recipients.setdefault(name, set()).update(a.decode() for a in addresses)
            temporary[name] = is_temporary
    entries: list[dict[str, object]] = []
    for path in sorted((BASE / "flufl").glob("*.txt")):
        if path.name not in recipients:
            continue  # flufl's own table names no address for it
        kind = "not_bounce" if temporary[path.name] else ("hard" if path.stem in HARD else "soft")
        entries.append(
            {
                "file": f"flufl/{path.name}",
                "kind": kind,
                "recipients": sorted(recipients[path.name]),
                "label": "recipients: flufl.bounce tests/test_detectors.py; kind: reviewed",
            }
        )
    return entries


def expectations(rb_sisimai: Path, module: str) -> dict[str, list[tuple[str, ...]]]:
    text = subprocess.run(
        ["git", "-C", str(rb_sisimai), "show", f"HEAD:test/public/{module}.rb"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        m.group(1): ROW.findall(m.group(2))
        for m in re.finditer(r"'(\d+)'\s*=>\s*\[(.*?)\]\],?\n", text, re.S)
    }


def kind_of(reason: str, hard: str, sub: str) -> str:
    if reason == "feedback":
        return "not_bounce" if sub == "auth-failure" else "complaint"
    if reason == "vacation":
        return "auto_reply"
    if reason == "delivered":
        return "not_bounce"
    return "hard" if hard == "true" else "soft"


def recipients_of(raw: bytes) -> list[str]:
    found: list[str] = []
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n")
    for block in re.split(r"\n\s*\n", text):
        fields = {k.lower(): v for k, v in FIELD.findall(block)}
        for key in ("original-recipient", "final-recipient", "original-rcpt-to", "removal-recipient"):
            if key in fields:
                found.append(fields[key])
                break
    if not found:  # Gmail and Exim name them in a header; Microsoft JMRP in the reported message's
        header = r"^(?:X-Failed-Recipients|X-HmXmrOriginalRecipient):\s*(.+)$"
        for match in re.finditer(header, text, re.IGNORECASE | re.MULTILINE):
            found += [a.strip() for a in match.group(1).split(",")]
    return list(dict.fromkeys(found))


def sisimai_entries(rb_sisimai: Path) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    for module in MODULES:
        for index, rows in expectations(rb_sisimai, module).items():
            path = BASE / "sisimai" / f"{module}-{index}.eml"
            if not path.exists():
                continue
            kinds = {kind_of(r[2], r[3], r[4]) for r in rows}
            if len(kinds) != 1:
                continue
            kind = kinds.pop()
            recipients = [] if kind in ("auto_reply", "not_bounce") else recipients_of(path.read_bytes())
            if kind not in ("auto_reply", "not_bounce") and len(recipients) != len(rows):
                continue
            reasons = ", ".join(sorted({r[2] for r in rows}))
            entry: dict[str, object] = {
                "file": f"sisimai/{path.name}",
                "kind": kind,
                "recipients": recipients,
                "label": f"kind: rb-sisimai test/public/{module}.rb ({reasons})",
            }
            if entry["file"] in DIFFERS:
                entry["differs"] = DIFFERS[str(entry["file"])]
            entries.append(entry)
    return entries


def main() -> None:
    sdist, _set_of_emails, rb_sisimai = (Path(a) for a in sys.argv[1:4])
    entries = flufl_entries(sdist) + sisimai_entries(rb_sisimai)
    (BASE / "manifest.json").write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
