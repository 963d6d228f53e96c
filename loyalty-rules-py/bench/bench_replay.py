"""Replay throughput: 1 million events from a pyarrow Table and from a
pandas DataFrame through loyalty_rules, versus the same rules written as a
straightforward pure-Python loop. Prints events/second and the ratios.

The Python loop is timed two ways: over tuples built from
``table.to_pydict()`` before the clock starts (the loop alone, its best
case), and from the pandas DataFrame itself (``df.itertuples()``, as a
notebook user would write it, the iteration included), which is what
``lr.replay`` is timed from: the table or the DataFrame, conversion
included.

    python loyalty-rules-py/bench/bench_replay.py [--events 1000000] [--threads 1] [--decimals 0]

``--decimals 2`` runs the same rules with ``points have 2 decimals``: the
results table's points columns are then decimal128(38, 2) instead of
int64 (the Python loop is not run: its points are whole).

Not a timed test: numbers depend on the machine (and on what else runs).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from decimal import ROUND_FLOOR, Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import loyalty_rules as lr

PROGRAM = """
program "Bench"
rule "Base earn" on purchase award 1 point per $1
rule "Big basket" on purchase if purchase.amount > $150 award 25 points
rule "Store 7 promo" on purchase if purchase.store = "7" award 10 points
"""


def make_table(n: int, customers: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    cust = rng.integers(0, customers, n)
    t0 = np.datetime64("2025-01-01T00:00:00", "s").astype("int64")
    secs = np.sort(rng.integers(0, 365 * 86400, n)) + t0
    cents = rng.gamma(2.0, 3000.0, n).astype(np.int64)
    store = rng.integers(0, 20, n)
    return pa.table(
        {
            "id": pa.array([f"o{i}" for i in range(n)]),
            "customer": pa.array([f"c{c}" for c in cust]),
            "time": pa.array(secs * 1_000_000, pa.timestamp("us", "UTC")),
            "amount": pa.array([Decimal(int(c)).scaleb(-2) for c in cents], pa.decimal128(18, 2)),
            "store": pa.array([str(s) for s in store]),
        }
    )


def python_loop(rows: Iterable[tuple[str, str, Decimal, str]]) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """The same three rules as plain Python: what a notebook user would write.
    ``rows``: (id, customer, amount, store) tuples (or a DataFrame's
    ``itertuples()``, whose rows unpack the same way)."""
    per_rule: dict[str, Decimal] = defaultdict(Decimal)
    balance: dict[str, Decimal] = defaultdict(Decimal)
    seen: set[str] = set()
    big = Decimal(150)
    for event_id, customer, amount, store in rows:
        if event_id in seen:
            continue
        seen.add(event_id)
        pts = amount.to_integral_value(rounding=ROUND_FLOOR)
        per_rule["Base earn"] += pts
        if amount > big:
            per_rule["Big basket"] += 25
            pts += 25
        if store == "7":
            per_rule["Store 7 promo"] += 10
            pts += 10
        balance[customer] += pts
    return per_rule, balance


REPEAT = 1


def timed(label: str, n: int, f):  # type: ignore[no-untyped-def]
    """Run ``f`` REPEAT times; print and return the best time's rate (the
    one least disturbed by other work on the machine)."""
    best = float("inf")
    for _ in range(REPEAT):
        r = None  # the previous result is freed before the next run
        t = time.perf_counter()
        r = f()
        best = min(best, time.perf_counter() - t)
    print(f"{label:<44} {best:8.2f} s  {n / best:>12,.0f} events/s")
    return r, n / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=50_000)
    ap.add_argument("--threads", type=int, default=1, help="replay threads (default 1 = one core)")
    ap.add_argument("--python-events", type=int, default=None, help="events for the pure-Python loop (default: all)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each; the best time is shown (default 1)")
    ap.add_argument("--decimals", type=int, default=0,
                    help="points have N decimals (default 0: whole points, int64 columns)")
    a = ap.parse_args()
    global REPEAT
    REPEAT = max(1, a.repeat)
    n = a.events
    print(f"loyalty_rules {lr.__version__}; {n:,} events, {a.customers:,} customers, "
          f"threads={a.threads}, cpus={os.cpu_count()}, best of {REPEAT}, "
          f"load average {os.getloadavg()[0]:.1f}")
    t = time.perf_counter()
    table = make_table(n, a.customers)
    df = table.to_pandas()
    print(f"data generated in {time.perf_counter() - t:.1f} s")
    source = PROGRAM
    if a.decimals:
        source = f"points have {a.decimals} decimals, rounded down\n" + PROGRAM
    program = lr.compile(source)
    print(f"points columns: {program.points_type()}")

    res_arrow, arrow_eps = timed(
        "loyalty_rules replay (pyarrow.Table)", n,
        lambda: lr.replay(program, table, event_type="purchase", threads=a.threads),
    )
    res_pd, pandas_eps = timed(
        "loyalty_rules replay (pandas.DataFrame)", n,
        lambda: lr.replay(program, df, event_type="purchase", threads=a.threads),
    )
    if a.threads == 1:
        _, par_eps = timed(
            f"loyalty_rules replay (pyarrow, {os.cpu_count()} threads)", n,
            lambda: lr.replay(program, table, event_type="purchase", threads=os.cpu_count()),
        )
    # evaluation only (stateless): conversion + rules, no ledger
    _, eval_eps = timed(
        "loyalty_rules evaluate (pyarrow, stateless)", n,
        lambda: program.evaluate(table, event_type="purchase", threads=a.threads),
    )

    # the table's exact per-rule columns sum to the stats (no deductions here)
    for rule, pts in res_arrow.cost_per_rule().items():
        assert pc.sum(res_arrow.table.column(f"points:{rule}")).as_py() == pts, rule
    if a.decimals:
        print("cost per rule:", {k: str(v) for k, v in res_arrow.cost_per_rule().items()})
        return

    pn = a.python_events or n
    cols = table.slice(0, pn).to_pydict()
    rows = list(zip(cols["id"], cols["customer"], cols["amount"], cols["store"]))
    (py_rules, _), py_eps = timed(
        "pure-Python loop, tuples built untimed", pn, lambda: python_loop(rows)
    )
    part = df if pn == n else df.iloc[:pn]
    (df_rules, _), df_eps = timed(
        "pure-Python loop over df.itertuples()", pn,
        lambda: python_loop(part[["id", "customer", "amount", "store"]].itertuples(index=False)),
    )

    # the results agree
    assert dict(df_rules) == dict(py_rules), (dict(df_rules), dict(py_rules))
    if pn == n:
        got = res_arrow.cost_per_rule()
        assert {k: v for k, v in got.items()} == dict(py_rules), (got, dict(py_rules))
        assert res_pd.cost_per_rule() == got
        print("cost per rule (identical in all four):", {k: str(v) for k, v in got.items()})
    print("ratios (events/s over events/s; the issue asks >= 50x):")
    for label, eps in [("pyarrow.Table", arrow_eps), ("pandas.DataFrame", pandas_eps)]:
        print(f"  lr.replay({label:<16}) / Python loop over untimed tuples: {eps / py_eps:6.2f}x")
        print(f"  lr.replay({label:<16}) / Python loop over df.itertuples(): {eps / df_eps:6.2f}x")


if __name__ == "__main__":
    main()
