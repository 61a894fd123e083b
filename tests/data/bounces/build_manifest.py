import json, re, subprocess, email, sys, ast
from pathlib import Path
base = Path('/work/h-bounce/tests/data/bounces')
entries = []
# flufl.bounce: recipients from its own tests/test_detectors.py table; kinds reviewed by hand from the text
src = Path('/tmp/h-bounce-dl/flufl_bounce-6.0.0/tests/test_detectors.py').read_text()
table = src[src.index('DETECTORS = [') + len('DETECTORS = '): src.index(']\n\n\n@pytest')+1]
rows = ast.literal_eval(re.sub(r'#.*', '', table))
recips = {}
temp = {}
for det, fname, addrs, is_temp in rows:
    if addrs:
        recips.setdefault(fname, set()).update(a.decode() for a in addrs)
        temp[fname] = is_temp
HARD = set('''bounce_02 groupwise_01 groupwise_02 llnl_01 simple_11 simple_13 simple_37 yale_01 simple_05 simple_06 yahoo_10
simple_12 smtp32_07 simple_23 postfix_02 simple_39 simple_41 dsn_10 dsn_11 dsn_12 dsn_13
dsn_14 dsn_15 dsn_16 dsn_18 exim_01 microsoft_01 microsoft_02 microsoft_04 postfix_01 qmail_03 qmail_04 qmail_05 simple_04 simple_08
simple_15 simple_19 simple_25 simple_26 simple_27 simple_29 simple_30 simple_33 simple_34 simple_36 smtp32_04 smtp32_06 yahoo_11 yahoo_13'''.split())
NOT_BOUNCE_NOTE = {}
for f in sorted((base / 'flufl').glob('*.txt')):
    name = f.stem
    if f.name not in recips:
        continue  # flufl's own table has no addresses for it (unrecognised or not a bounce)
    if temp[f.name]:
        kind = 'not_bounce'
    else:
        kind = 'hard' if name in HARD else 'soft'
    entries.append({'file': f'flufl/{f.name}', 'kind': kind, 'recipients': sorted(recips[f.name]),
                    'label': 'recipients: flufl.bounce tests/test_detectors.py; kind: reviewed'})
# sisimai: kinds from rb-sisimai's test expectations (test/public/*.rb), recipients from the samples
def expectations(module):
    text = subprocess.run(['git', '-C', '/work/.mirror/sisimai+rb-sisimai/repo', 'show', f'HEAD:test/public/{module}.rb'],
                          capture_output=True, text=True).stdout
    out = {}
    for m in re.finditer(r"'(\d+)'\s*=>\s*\[(.*?)\]\],?\n", text, re.S):
        rows = re.findall(r"\['([^']*)',\s*'([^']*)',\s*'([^']*)',\s*(true|false)(?:,\s*'([^']*)')?\s*\]?", m.group(2))
        out[m.group(1)] = rows
    return out
def kind_of(reason, hard, sub):
    if reason == 'feedback':
        return 'not_bounce' if sub == 'auth-failure' else 'complaint'
    if reason == 'vacation':
        return 'auto_reply'
    if reason == 'delivered':
        return 'not_bounce'
    return 'hard' if hard == 'true' else 'soft'
def recipients_of(raw):
    msg = email.message_from_bytes(raw)
    found = []
    text = raw.decode('utf-8', 'replace')
    # per recipient: Original-Recipient (the address as sent) when given, else Final-Recipient
    for block in re.split(r'\n\s*\n', text.replace('\r\n', '\n')):
        fields = {k.lower(): v for k, v in re.findall(r'^(Original-Recipient|Final-Recipient|Original-Rcpt-To|Removal-Recipient):\s*(?:rfc822;)?\s*<?([^>\s;]+@[^>\s;]+)>?', block, re.I | re.M)}
        for key in ('original-recipient', 'final-recipient', 'original-rcpt-to', 'removal-recipient'):
            if key in fields:
                found.append(fields[key])
                break
    if not found:
        for m in re.finditer(r'^X-Failed-Recipients:\s*(.+)$', text, re.I | re.M):
            found += [a.strip() for a in m.group(1).split(',')]
    return list(dict.fromkeys(found))
for module in ['arf', 'rfc3834', 'lhost-postfix', 'lhost-gmail', 'lhost-office365', 'lhost-exchange2007', 'lhost-yahoo',
               'lhost-amazonses', 'lhost-outlook', 'rhost-microsoft']:
    for index, rows in expectations(module).items():
        f = base / 'sisimai' / f'{module}-{index}.eml'
        if not f.exists():
            continue
        kinds = {kind_of(r[2], r[3], r[4]) for r in rows}
        if len(kinds) != 1:
            print('skip mixed', f.name, kinds, file=sys.stderr); continue
        kind = kinds.pop()
        raw = f.read_bytes()
        recipients = [] if kind in ('auto_reply', 'not_bounce') else recipients_of(raw)
        if kind != 'auto_reply' and kind != 'not_bounce' and len(recipients) != len(rows):
            print('skip: recipients not named in a DSN/ARF field', f.name, kind, recipients, len(rows), file=sys.stderr)
            continue
        entries.append({'file': f'sisimai/{f.name}', 'kind': kind, 'recipients': recipients,
                        'label': f'kind: rb-sisimai test/public/{module}.rb ({", ".join(sorted({r[2] for r in rows}))})'})
# Where digest's verdict differs from the label, and why (kept as measured misses, not relabelled).
DIFFERS = {
    'sisimai/lhost-postfix-01.eml': "sisimai: mailererror; the text is procmail's 'No such user'",
    'sisimai/lhost-postfix-03.eml': "sisimai: filtered; the diagnostic reads '550 Unknown user'",
    'sisimai/lhost-postfix-35.eml': "sisimai: filtered; the diagnostic reads '550 : User unknown'",
    'sisimai/lhost-office365-04.eml': "sisimai: filtered; the diagnostic reads 'unknown recipient ... User unknown'",
    'sisimai/lhost-amazonses-01.eml': "sisimai: securityerror; SES's summary reads 'Unknown address error'",
    'sisimai/lhost-amazonses-02.eml': "sisimai: filtered; the diagnostic reads 'Unknown user'",
    'sisimai/lhost-postfix-46.eml': "sisimai: userunknown from a bare 'Recipient address rejected.'",
    'sisimai/lhost-outlook-03.eml': "sisimai: hostunknown from 'the domain is not reachable' (also a network fault)",
    'sisimai/lhost-outlook-06.eml': "sisimai: expired; the DSN says Action: delayed (digest: a warning, not_bounce)",
}
for e in entries:
    if e['file'] in DIFFERS:
        e['differs'] = DIFFERS[e['file']]
used = {e['file'] for e in entries}
for f in (base / 'sisimai').glob('*.eml'):
    if f'sisimai/{f.name}' not in used:
        f.unlink()
json.dump(entries, open(base / 'manifest.json', 'w'), indent=1)
print(len(entries), 'entries', file=sys.stderr)
