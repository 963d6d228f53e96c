"""Hypothesis: batch replay (Arrow table or list, parallel across customers)
equals processing the same events one by one."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loyalty_rules as lr

pa = pytest.importorskip("pyarrow")

# A program using state: history windows, a per-customer limit, pending
# points, tiers and refunds, so the order of events per customer matters.
SOURCE = """
points expire 2 months after earning
tiers by spend in last 12 months
  silver from $300
  gold from $800
rule "Base" on purchase award 1 point per $1
rule "Gold double" on purchase if customer.tier is gold multiply points by 2
rule "Third visit"
  on purchase
  if count of purchases in last 30 days = 3
  award 100 points
rule "Big basket"
  on purchase
  if purchase.amount > $150
  award 25 points
  at most 2 times per customer per month
rule "Welcome gold" on tier_change if tier_change.to is gold award 300 points
"""

PROGRAM = lr.compile(SOURCE)
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


@st.composite
def event_lists(draw: Any) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=1, max_value=60))
    customers = draw(st.integers(min_value=1, max_value=6))
    minutes = sorted(draw(st.lists(st.integers(0, 200 * 24 * 60), min_size=n, max_size=n)))
    out: list[dict[str, Any]] = []
    for i, m in enumerate(minutes):
        c = f"c{draw(st.integers(0, customers - 1))}"
        kind = draw(st.sampled_from(["purchase"] * 6 + ["refund", "dup"]))
        t = (T0 + dt.timedelta(minutes=m)).isoformat().replace("+00:00", "Z")
        cents = draw(st.integers(0, 40000))
        amount = f"{cents // 100}.{cents % 100:02d}"
        if kind == "dup" and out:
            prev = draw(st.sampled_from(out))
            out.append(dict(prev))  # a duplicate id (maybe late)
            continue
        if kind == "refund":
            originals = [e["id"] for e in out if e["type"] == "purchase" and e["customer"] == c]
            ev = {"type": "refund", "id": f"r{i}", "customer": c, "time": t, "amount": amount}
            if originals:
                ev["original"] = draw(st.sampled_from(originals))
            out.append(ev)
            continue
        out.append({"type": "purchase", "id": f"p{i}", "customer": c, "time": t, "amount": amount})
    return out


def to_table(events: list[dict[str, Any]]) -> Any:
    """One row per event; keys missing from an event are nulls."""
    keys = ["type", "id", "customer", "time", "amount", "original"]
    return pa.Table.from_pylist(
        [{k: e.get(k) for k in keys} for e in events],
        schema=pa.schema([(k, pa.string()) for k in keys]),
    )


def one_by_one(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    e = lr.Engine(PROGRAM)
    outs = [e.process(ev).to_dict() for ev in events]
    return outs, e.snapshot()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_lists(), st.integers(1, 4))
def test_batch_replay_equals_event_by_event(events: list[dict[str, Any]], threads: int) -> None:
    outs, snap = one_by_one(events)

    # list of dicts, parallel across customers
    e1 = lr.Engine(PROGRAM)
    r1 = e1.replay(events, threads=threads)
    assert r1.outcomes is not None
    assert [o.to_dict() for o in r1.outcomes] == outs
    assert e1.snapshot() == snap

    # one Arrow table (in several batches), full outcomes in the `outcome` column
    table = to_table(events)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=17))
    e2 = lr.Engine(PROGRAM)
    r2 = e2.replay(reader, threads=threads, detail=True)
    assert [json.loads(x) for x in r2.table.column("outcome").to_pylist()] == outs
    assert r2.table.schema.field("points").type == pa.int64()
    assert r2.table.column("points").to_pylist() == [int(o["points"]) for o in outs]
    assert e2.snapshot() == snap

    # stats are the sums of the outcomes
    issued = sum(
        (
            Decimal(eff["points"])
            for o in outs
            for eff in o["effects"]
            if eff["effect"] in ("award", "multiply")
            and eff.get("kind") == "points"
            and Decimal(eff["points"]) > 0
        ),
        Decimal(0),
    )
    assert r2.stats.points_issued == issued
    assert r2.stats.events == len(events)


@settings(max_examples=30, deadline=None)
@given(event_lists(), st.integers(1, 59))
def test_split_replay_with_states_equals_one_run(events: list[dict[str, Any]], cut: int) -> None:
    """Replaying a prefix, saving states as an Arrow table, and replaying the
    rest from those states gives the same outcomes as one run (the
    per-partition shape used by distributed back-tests)."""
    outs, snap = one_by_one(events)
    cut = min(cut, len(events))
    first, rest = events[:cut], events[cut:]
    r1, s1 = lr.replay_partition(PROGRAM, to_table(first))
    got = [json.loads(x) for x in []]
    e = lr.Engine(PROGRAM)
    e.load_states(s1)
    if rest:
        r2 = e.replay(rest)
        assert r2.outcomes is not None
        got = [o.to_dict() for o in r2.outcomes]
    assert got == outs[cut:]
    assert r1.column("points").to_pylist() == [int(o["points"]) for o in outs[:cut]]
    assert {c["id"]: c for c in e.snapshot()["customers"]} == {c["id"]: c for c in snap["customers"]}
