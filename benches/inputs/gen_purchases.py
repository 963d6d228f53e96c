#!/usr/bin/env python3
"""Purchases like loyalty-rules-py/bench/bench_replay.py's table, as JSON Lines,
for the Rust replay measurements of bench3.rules (replay_speed, callgrind).

Deterministic (seeded), standard library only.
Usage: gen_purchases.py N_EVENTS [--customers N] > /tmp/b3.jsonl
"""
import argparse
import json
import random
from datetime import datetime, timedelta, timezone


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("events", type=int)
    ap.add_argument("--customers", type=int, default=50_000)
    a = ap.parse_args()
    rng = random.Random(1)
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    secs = sorted(rng.randrange(365 * 86400) for _ in range(a.events))
    for i, s in enumerate(secs):
        cents = int(rng.gammavariate(2.0, 3000.0))
        ev = {
            "type": "purchase",
            "id": f"o{i}",
            "customer": f"c{rng.randrange(a.customers)}",
            "time": (t0 + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "amount": f"{cents // 100}.{cents % 100:02d}",
            "store": str(rng.randrange(20)),
        }
        print(json.dumps(ev, separators=(",", ":")))


if __name__ == "__main__":
    main()
