#!/usr/bin/env python3
"""Generate a realistic, time-ordered JSON Lines event stream for program.rules.

Deterministic (seeded). Usage: generate.py N_EVENTS [--customers N] > events.jsonl
"""
import argparse
import json
import random
import sys
from datetime import datetime, timedelta, timezone

CATEGORIES = [("grocery", 3, 40), ("apparel", 15, 120), ("electronics", 40, 900), ("home", 10, 200), ("beauty", 5, 60)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("events", type=int)
    ap.add_argument("--customers", type=int, default=0, help="default: events / 20")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    n_customers = args.customers or max(10, args.events // 20)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    span = 365 * 24 * 3600
    # event times spread over the year, sorted
    times = sorted(rng.random() * span for _ in range(args.events))
    signed_up = set()
    purchases = {}
    out = sys.stdout
    w = out.write
    for i, t in enumerate(times):
        c = rng.randrange(n_customers)
        cid = f"c{c}"
        ts = (start + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%SZ")
        eid = f"e{i}"
        if c not in signed_up:
            signed_up.add(c)
            ev = {"type": "signup", "id": eid, "customer": cid, "time": ts, "channel": rng.choice(["app", "web", "store"])}
            if c > 10 and rng.random() < 0.2:
                ev["referred_by"] = f"c{rng.randrange(c)}"
            w(json.dumps(ev) + "\n")
            continue
        r = rng.random()
        if r < 0.55:
            items = []
            for _ in range(rng.randint(1, 4)):
                cat, lo, hi = rng.choice(CATEGORIES)
                items.append({"sku": f"{cat[:3].upper()}-{rng.randrange(500)}", "category": cat,
                              "price": f"{rng.uniform(lo, hi):.2f}", "quantity": rng.randint(1, 3)})
            amount = sum(float(x["price"]) * x["quantity"] for x in items)
            shipping = 0 if amount > 50 else 4.99
            ev = {"type": "purchase", "id": eid, "customer": cid, "time": ts, "amount": f"{amount + shipping:.2f}",
                  "shipping": f"{shipping:.2f}", "items": items, "channel": rng.choice(["app", "web", "store"])}
            purchases.setdefault(c, []).append((eid, amount + shipping, items))
        elif r < 0.60 and purchases.get(c):
            orig, amount, items = rng.choice(purchases[c])
            part = amount if rng.random() < 0.5 else amount * rng.uniform(0.1, 0.9)
            ev = {"type": "refund", "id": eid, "customer": cid, "time": ts, "amount": f"{part:.2f}", "original": orig,
                  "items": items[:1]}
        elif r < 0.85:
            ev = {"type": "login", "id": eid, "customer": cid, "time": ts}
        elif r < 0.92:
            ev = {"type": "review", "id": eid, "customer": cid, "time": ts, "rating": rng.randint(1, 5)}
        elif r < 0.95:
            ev = {"type": "referral", "id": eid, "customer": cid, "time": ts, "successful": rng.random() < 0.6}
        elif r < 0.96:
            ev = {"type": "birthday", "id": eid, "customer": cid, "time": ts}
        else:
            ev = {"type": "redemption", "id": eid, "customer": cid, "time": ts, "reward": "voucher", "points": rng.choice([500, 1000, 2500])}
        w(json.dumps(ev) + "\n")
        # occasional duplicate delivery of the same event
        if rng.random() < 0.01:
            w(json.dumps(ev) + "\n")


if __name__ == "__main__":
    main()
