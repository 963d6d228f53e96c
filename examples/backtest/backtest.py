"""Back-test a loyalty campaign over a year of generated transactions.

    pip install ./loyalty-rules-py matplotlib numpy pandas pyarrow
    python examples/backtest/backtest.py [--events 1200000] [--out backtest.png]

1. generates a realistic transaction table (purchases with basket lines,
   some refunds of earlier purchases), >= 1 million events, as a pyarrow
   Table;
2. replays it month by month through one engine (balances, tiers, limits
   and expiry carry over; `advance_to` closes each month so points expire
   on time);
3. prints the cost of every rule (from the replay stats, checked against
   the sums of the results tables' exact `points:<rule>` columns) and the
   outstanding liability;
4. writes a PNG chart: points issued per month (stacked by rule) and the
   outstanding liability at each month end.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import loyalty_rules as lr

HERE = Path(__file__).resolve().parent
CATEGORIES = np.array(["coffee", "bakery", "tea", "merch"])
CAT_P = np.array([0.5, 0.3, 0.15, 0.05])
CAT_PRICE = np.array([4.2, 3.5, 3.8, 18.0])  # mean unit price


def generate(n_purchases: int, customers: int, year: int = 2025, seed: int = 7) -> pa.Table:
    """Purchases (1-5 basket lines) by customers of very different activity,
    plus ~2% refunds of earlier purchases; sorted by time."""
    rng = np.random.default_rng(seed)
    # customer activity: heavy-tailed (a few regulars, many occasional)
    weights = rng.pareto(1.2, customers) + 0.05
    weights /= weights.sum()
    cust = rng.choice(customers, n_purchases, p=weights)
    start = np.datetime64(f"{year}-01-01T00:00:00", "s").astype(np.int64)
    day = rng.integers(0, 365, n_purchases)
    # opening hours 7:00-20:00, busier in the morning
    secs = (7 * 3600 + rng.beta(1.6, 2.4, n_purchases) * 13 * 3600).astype(np.int64)
    t = start + day * 86400 + secs + 5 * 3600  # local (New York) to UTC, roughly

    lines = rng.integers(1, 6, n_purchases)
    total_lines = int(lines.sum())
    offsets = np.zeros(n_purchases + 1, dtype=np.int32)
    np.cumsum(lines, out=offsets[1:])
    cat = rng.choice(len(CATEGORIES), total_lines, p=CAT_P)
    price_cents = np.maximum(50, (CAT_PRICE[cat] * rng.lognormal(0, 0.35, total_lines) * 100)).astype(np.int64)
    qty = rng.choice([1, 1, 1, 2, 3], total_lines)
    line_total = price_cents * qty
    amount = np.add.reduceat(line_total, offsets[:-1])
    shipping = np.where(rng.random(n_purchases) < 0.04, 499, 0)  # online orders
    amount = amount + shipping
    store = rng.integers(1, 40, n_purchases)

    order = np.argsort(t, kind="stable")
    ids = np.array([f"p{i}" for i in range(n_purchases)], dtype=object)

    def dec(cents: np.ndarray) -> pa.Array:
        # exact: Arrow rounds float -> decimal to the nearest cent
        return pa.array(cents / 100.0).cast(pa.decimal128(16, 2))

    items = pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.StructArray.from_arrays(
            [
                pa.array([f"SKU{c}{p % 97}" for c, p in zip(cat, price_cents)]),
                pa.DictionaryArray.from_arrays(pa.array(cat, pa.int8()), pa.array(CATEGORIES)),
                dec(price_cents),
                pa.array(qty, pa.int64()),
            ],
            names=["sku", "category", "price", "quantity"],
        ),
    )
    purchases = pa.table(
        {
            "type": pa.array(["purchase"] * n_purchases),
            "id": pa.array(ids),
            "customer": pa.array([f"m{c:06d}" for c in cust]),
            "time": pa.array(t * 1_000_000, pa.timestamp("us", "UTC")),
            "amount": dec(amount),
            "shipping": dec(shipping),
            "store": pa.array([str(s) for s in store]),
            "items": items,
            "original": pa.nulls(n_purchases, pa.string()),
        }
    )

    # refunds: 2% of purchases, 1-20 days later, part or all of the amount
    k = n_purchases // 50
    which = rng.choice(n_purchases, k, replace=False)
    frac = np.where(rng.random(k) < 0.6, 1.0, rng.uniform(0.2, 0.9, k))
    refunds = pa.table(
        {
            "type": pa.array(["refund"] * k),
            "id": pa.array([f"r{i}" for i in range(k)]),
            "customer": purchases.column("customer").take(pa.array(which)),
            "time": pa.array((t[which] + rng.integers(1, 21, k) * 86400) * 1_000_000, pa.timestamp("us", "UTC")),
            "amount": dec((amount[which] * frac).astype(np.int64)),
            "shipping": pa.nulls(k, pa.decimal128(16, 2)),
            "store": purchases.column("store").take(pa.array(which)),
            "items": pa.nulls(k, items.type),
            "original": pa.array(ids[which].tolist()),
        }
    )
    both = pa.concat_tables([purchases.take(pa.array(order)), refunds])
    tcol = both.column("time").cast(pa.int64()).to_numpy()
    return both.take(pa.array(np.argsort(tcol, kind="stable")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_200_000, help="purchases to generate (refunds add 2%%)")
    ap.add_argument("--customers", type=int, default=80_000)
    ap.add_argument("--point-value", type=Decimal, default=Decimal("0.01"), help="cost of one point in $")
    ap.add_argument("--program", type=Path, default=HERE / "campaign.rules")
    ap.add_argument("--out", type=Path, default=HERE / "backtest.png")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()

    t0 = time.perf_counter()
    table = generate(a.events, a.customers)
    print(f"generated {table.num_rows:,} events for {a.customers:,} customers in {time.perf_counter() - t0:.1f} s")

    program = lr.compile_file(a.program)
    engine = lr.Engine(program)
    times = table.column("time").cast(pa.int64()).to_numpy()
    year = 2025
    months = [np.datetime64(f"{year}-{m:02d}-01", "us") for m in range(1, 13)] + [np.datetime64(f"{year + 1}-01-01", "us")]
    bounds = np.searchsorted(times, np.array(months).astype(np.int64))

    rules = program.rule_names
    issued_by_rule: list[dict[str, Decimal]] = []
    liability: list[Decimal] = []
    outstanding = Decimal(0)
    total: dict[str, Decimal] = {r: Decimal(0) for r in rules}
    # the same per rule from the results tables' exact points columns
    # (int64 here; decimal128 for a program with decimals), summed by
    # pyarrow: no float, no Python loop over rows
    from_tables: dict[str, Decimal] = {r: Decimal(0) for r in rules}
    t1 = time.perf_counter()
    replay_s = 0.0
    for m in range(12):
        part = table.slice(int(bounds[m]), int(bounds[m + 1] - bounds[m]))
        s = time.perf_counter()
        r = engine.replay(part, threads=a.threads)
        ledger = engine.advance_to(str(months[m + 1]) + "Z")  # month end: expiry, releases
        replay_s += time.perf_counter() - s
        st = r.stats
        expired_at_close = sum((Decimal(e["points"]) for e in ledger if e["entry"] == "expired"), Decimal(0))
        outstanding += (
            st.points_issued - st.points_deducted - st.points_expired - st.points_redeemed
            - st.points_reversed - expired_at_close
        )
        issued_by_rule.append(st.per_rule)
        for k, v in st.per_rule.items():
            total[k] += v
        for k in rules:
            from_tables[k] += Decimal(pc.sum(r.table.column(f"points:{k}")).as_py() or 0)
        liability.append(outstanding)
        print(
            f"  {str(months[m])[:7]}: {part.num_rows:>8,} events  issued {st.points_issued:>12,}  "
            f"expired {st.points_expired + expired_at_close:>10,}  reversed {st.points_reversed:>9,}  "
            f"outstanding {outstanding:>13,}"
        )
    elapsed = time.perf_counter() - t1
    print(f"replayed {table.num_rows:,} events in {replay_s:.1f} s ({table.num_rows / replay_s:,.0f} events/s, "
          f"{a.threads} threads; {elapsed:.1f} s with bookkeeping)")

    # check: the liability from the stats equals the sum over final states
    st_tab = engine.states_table()

    avail = sum(
        (Decimal(b["available"]) + Decimal(b["pending"]) for b in (json.loads(s)["balances"] for s in st_tab.column("state").to_pylist())),
        Decimal(0),
    )
    assert avail == outstanding, (avail, outstanding)

    assert from_tables == total, (from_tables, total)
    print("cost per rule: the stats and the sums of the results tables' points:<rule> columns agree exactly")

    print(f"\ncost per rule (1 point = ${a.point_value}):")
    width = max(len(r) for r in rules)
    grand = sum(total.values(), Decimal(0))
    for r in rules:
        pts = total[r]
        share = (pts / grand * 100) if grand else Decimal(0)
        print(f"  {r:<{width}}  {pts:>14,} points  ${pts * a.point_value:>12,.2f}  {share:5.1f}%")
    print(f"  {'total':<{width}}  {grand:>14,} points  ${grand * a.point_value:>12,.2f}")
    print(f"outstanding liability at year end: {outstanding:,} points = ${outstanding * a.point_value:,.2f} "
          f"over {len(engine.customer_ids()):,} customers")

    chart(a.out, rules, issued_by_rule, liability, a.point_value, year)
    print(f"wrote {a.out}")
    print(f"total {time.perf_counter() - t0:.1f} s")


def chart(out: Path, rules: list[str], by_rule: list[dict[str, Decimal]], liability: list[Decimal],
          point_value: Decimal, year: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{year}-{m:02d}" for m in range(1, 13)]
    x = np.arange(12)
    fig, ax = plt.subplots(figsize=(11, 5.5))
    bottom = np.zeros(12)
    for r in rules:
        vals = np.array([float(m.get(r, 0)) for m in by_rule]) / 1e6
        if not vals.any():
            continue
        ax.bar(x, vals, bottom=bottom, label=r, width=0.7)
        bottom += vals
    ax.set_ylabel("points issued (millions)")
    ax.set_xticks(x, labels, rotation=45)
    ax2 = ax.twinx()
    ax2.plot(x, [float(v * point_value) / 1e3 for v in liability], color="black", marker="o", label="outstanding liability")
    ax2.set_ylabel("outstanding liability ($ thousands, month end)")
    ax2.set_ylim(bottom=0)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8)
    ax.set_title("Spring campaign back-test: points issued per month and outstanding liability")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
