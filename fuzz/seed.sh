#!/usr/bin/env bash
# Regenerate the seed corpora in fuzz/seeds/<target>/ from the repository's
# example programs, customers and events (examples/), the conformance corpus
# (conformance/*.json) and the hand-written programs in fuzz/programs/.
# Run it again whenever examples or conformance cases are added.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
exec python3 - "$root" "$here" <<'PY'
import hashlib, json, os, re, subprocess, sys, pathlib

root, here = map(pathlib.Path, sys.argv[1:3])
seeds = here / "seeds"
programs, events, customers = [], [], []

# examples/**: *.rules files, and the editor's samples.js (an ES module).
for p in sorted((root / "examples").rglob("*.rules")):
    programs.append(p.read_text())
for p in sorted((root / "examples").rglob("samples.js")):
    js = ("import(process.argv[1]).then(m => console.log(JSON.stringify("
          "{p: (m.PROGRAMS||[]).map(x => x.source), e: (m.EVENTS||[]).map(x => x.value),"
          " c: (m.CUSTOMERS||[]).map(x => x.value)})))")
    try:
        out = subprocess.run(["node", "-e", js, str(p)], check=True, capture_output=True, text=True).stdout
        d = json.loads(out)
        programs += d["p"]; events += d["e"]; customers += d["c"]
    except (OSError, subprocess.CalledProcessError) as e:
        # Without node: pull the template literals out with a regex.
        text = p.read_text()
        programs += re.findall(r"source:\s*`([^`]*)`", text)
        print(f"seed.sh: node failed on {p} ({e}); used a regex", file=sys.stderr)

# conformance/*.json: programs, step events and customers.
for p in sorted((root / "conformance").glob("*.json")):
    case = json.loads(p.read_text())
    prog = case.get("program")
    if isinstance(prog, list):
        prog = "\n".join(prog)
    if isinstance(prog, str):
        programs.append(prog)
    if "customer" in case:
        customers.append(case["customer"])
    for step in case.get("steps", []):
        if "event" in step:
            events.append(step["event"])
        if "customer" in step:
            customers.append(step["customer"])

# fuzz/programs/*.rules: hand-written programs covering the whole grammar.
for p in sorted((here / "programs").glob("*.rules")):
    programs.append(p.read_text())

# A few hand-written events for types the examples do not cover yet.
T = "2026-11-24T10:00:00Z"
events += [
    {"type": "purchase", "id": "o1", "customer": "c1", "time": "2026-11-24T15:30:00-05:00", "amount": "75.00",
     "store": "Café Olé", "channel": "app", "shipping": "4.99", "tax": "1.20", "coupon": "X",
     "items": [{"sku": "A", "category": "coffee", "price": "12.50", "quantity": 3, "labels": ["gift"], "discounted": True},
               {"sku": "B", "name": "Mug", "brand": "Acme", "category": "merch", "price": "20"}]},
    {"type": "refund", "id": "r1", "customer": "c1", "time": T, "amount": "30.00", "original": "o1",
     "items": [{"sku": "A", "price": "10"}]},
    {"type": "referral", "id": "f1", "customer": "c1", "time": T, "referee": "c9", "successful": True},
    {"type": "signup", "id": "s1", "customer": "c1", "time": T, "channel": "web", "referred_by": "c2"},
    {"type": "login", "id": "l1", "customer": "c1", "time": T},
    {"type": "review", "id": "v1", "customer": "c1", "time": T, "rating": 5, "product": "Latte"},
    {"type": "birthday", "id": "b1", "customer": "c1", "time": T},
    {"type": "renewal", "id": "n1", "customer": "c1", "time": T, "plan": "annual", "amount": "99"},
    {"type": "redemption", "id": "d1", "customer": "c1", "time": T, "reward": "free coffee", "points": 600},
    {"type": "tier_change", "id": "t1", "customer": "c1", "time": T, "from": "gold", "to": "platinum"},
    {"type": "checkin", "id": "k1", "customer": "c1", "time": T, "venue": "Sky Lounge", "spent": "15", "seats": [1, 2]},
    {"type": "visit", "id": "w1", "customer": "c1", "time": T},
    {"type": "survey", "id": "q1", "customer": "c1", "time": "2026-12-05T10:15:00+01:00", "score": 2,
     "answers": ["ok"], "window": "10:30", "day_off": "Saturday"},
]
customers += [
    {"id": "c1", "tier": "platinum", "points": "12.5", "pending_points": "3", "birthday": "1990-11-27",
     "joined": "2020-06-01", "referred_by": "c0", "tags": ["vip"], "segment": "a", "visits": 4,
     "favourite_stores": ["Mall"], "last_visit": "2026-01-01", "vip": False},
]

def write(target, blobs):
    d = seeds / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.iterdir():
        if old.name.startswith("gen-"):
            old.unlink()
    for b in blobs:
        data = b.encode() if isinstance(b, str) else b
        (d / ("gen-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)
    print(f"seeds/{target}: {len(set(blobs))} generated")

programs = list(dict.fromkeys(programs))
write("compile", programs)
write("format_roundtrip", programs)
# completions: 2-byte little-endian offset, then the text; cursors at a few places.
comp = []
for prog in programs:
    b = prog.encode()
    for off in {len(b), len(b) // 2, b.find(b".") + 1, b.find(b" on ") + 4}:
        comp.append(max(0, min(off, 65535)).to_bytes(2, "little") + b)
write("completions", comp)
# evaluate: event JSON on the first line, customer JSON after it.
ev = [json.dumps(e, ensure_ascii=False) + "\n" + json.dumps(c, ensure_ascii=False)
      for e in events for c in customers[:3] + customers[-1:]]
write("evaluate", ev)
PY
