"""Columnar input (pyarrow, pandas, polars) through __arrow_c_stream__."""

from __future__ import annotations

import datetime as dt
import gc
import json
from decimal import Decimal
from typing import Any

import pytest

import loyalty_rules as lr

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")

SOURCE = """
rule "Base" on purchase award 1 point per $1
rule "Coffee" on purchase if any item in purchase.items where item.category = "coffee" award 10 points
rule "Store 12" on purchase if purchase.store = "12" award 5 points
rule "Refund" on refund deduct 1 point per $1 of refund.amount
"""

N = 50


def rows() -> list[dict[str, Any]]:
    out = []
    for i in range(N):
        out.append(
            {
                "type": "refund" if i % 10 == 9 else "purchase",
                "id": f"o{i}",
                "customer": f"c{i % 7}",
                "time": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=i),
                "amount": Decimal(f"{(i * 37) % 300}.{i % 100:02d}"),
                "store": None if i % 3 == 0 else str(i % 20),
                "items": []
                if i % 10 == 9
                else [
                    {"sku": f"s{i}", "category": "coffee" if i % 4 == 0 else "tea", "price": Decimal("3.50"), "quantity": 1}
                ],
            }
        )
    return out


def as_json(r: dict[str, Any]) -> dict[str, Any]:
    d = {k: v for k, v in r.items() if v is not None}
    d["time"] = r["time"].isoformat().replace("+00:00", "Z")
    d["amount"] = str(r["amount"])
    d["items"] = [dict(it, price=str(it["price"])) for it in r["items"]]
    return d


@pytest.fixture(scope="module")
def program() -> lr.Program:
    return lr.compile(SOURCE)


@pytest.fixture(scope="module")
def expected(program: lr.Program) -> list[lr.Outcome]:
    e = lr.Engine(program)
    return [e.process(as_json(r)) for r in rows()]


def arrow_table() -> Any:
    return pa.Table.from_pylist(rows())


def check_results(table: Any, expected: list[lr.Outcome], program: lr.Program) -> None:
    assert table.num_rows == len(expected)
    d = table.to_pydict()
    assert d["row"] == list(range(len(expected)))
    assert d["event"] == [o.event for o in expected]
    assert d["status"] == [o.status for o in expected]
    assert table.schema.field("points").type == pa.int64()
    assert d["points"] == [o.points for o in expected]
    for r in program.rule_names:
        assert table.schema.field(f"points:{r}").type == pa.int64()
        assert d[f"points:{r}"] == [o.points_by_rule().get(r, Decimal(0)) for o in expected]


def test_pyarrow_table(program: lr.Program, expected: list[lr.Outcome]) -> None:
    t = arrow_table()
    assert pa.types.is_decimal(t.schema.field("amount").type)
    assert pa.types.is_list(t.schema.field("items").type)
    r = lr.replay(program, t)
    check_results(r.table, expected, program)
    assert isinstance(r.table, pa.Table)
    assert r.stats.events == N
    assert set(r.states) == {f"c{i}" for i in range(7)}
    # per-rule totals: the table and the exact stats agree
    for rule, pts in r.cost_per_rule().items():
        assert pts == pa.compute.sum(r.table.column(f"points:{rule}")).as_py()


def test_pyarrow_record_batch_reader(program: lr.Program, expected: list[lr.Outcome]) -> None:
    t = arrow_table()
    reader = pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=7))
    r = lr.replay(program, reader)
    check_results(r.table, expected, program)


def test_pandas(program: lr.Program, expected: list[lr.Outcome]) -> None:
    df = pd.DataFrame(rows())
    df["amount"] = df["amount"].astype(str)
    df.index = df.index + 1000  # a non-default index is not a column
    r = lr.replay(program, df)
    check_results(r.table, expected, program)
    out = r.table.to_pandas()
    assert list(out["event"]) == [o.event for o in expected]


def test_pandas_naive_and_zoned_timestamps(program: lr.Program, expected: list[lr.Outcome]) -> None:
    df = pd.DataFrame(rows())
    df["amount"] = df["amount"].astype(float)
    df["time"] = pd.to_datetime(df["time"]).dt.tz_convert("Europe/Paris")
    check_results(lr.replay(program, df).table, expected, program)
    df["time"] = df["time"].dt.tz_convert("UTC").dt.tz_localize(None)  # naive = UTC
    check_results(lr.replay(program, df).table, expected, program)


def test_polars(program: lr.Program, expected: list[lr.Outcome]) -> None:
    df = pl.from_arrow(arrow_table())
    assert isinstance(df, pl.DataFrame)
    r = lr.replay(program, df)
    check_results(r.table, expected, program)
    # categorical (dictionary) columns and string views
    df2 = df.with_columns(pl.col("customer").cast(pl.Categorical), pl.col("type").cast(pl.Categorical))
    check_results(lr.replay(program, df2).table, expected, program)


def test_column_mapping_and_event_type(program: lr.Program) -> None:
    t = pa.table(
        {
            "order_id": ["a", "b"],
            "member": ["m1", "m1"],
            "ts": pa.array([0, 3_600_000], pa.timestamp("ms")),
            "total": pa.array([Decimal("10.00"), Decimal("250.00")], pa.decimal128(10, 2)),
            "note": ["x", "y"],
        }
    )
    r = lr.replay(
        program,
        t,
        columns={"order_id": "id", "member": "customer", "ts": "time", "total": "amount", "note": None},
        event_type="purchase",
    )
    assert r.table.column("points").to_pylist() == [10, 250]
    assert r.table.column("event").to_pylist() == ["a", "b"]
    assert r.table.column("time").to_pylist()[1] == dt.datetime(1970, 1, 1, 1, tzinfo=dt.timezone.utc)


def test_bad_row_names_field_and_row(program: lr.Program) -> None:
    data = rows()
    data[13]["amount"] = "lots"
    t = pa.Table.from_pylist([as_json(r) if i != 13 else dict(as_json(data[12]), amount="lots", id="o13") for i, r in enumerate(data)])
    with pytest.raises(lr.EventError) as ei:
        lr.replay(program, t)
    assert ei.value.row == 13
    assert ei.value.field == "amount"
    assert "row 13" in str(ei.value)
    # an extra column is an unknown field (rename it to None to drop it)
    t2 = arrow_table().append_column("junk", pa.array(["x"] * N))
    with pytest.raises(lr.EventError) as ei:
        lr.replay(program, t2)
    assert ei.value.field == "junk" and ei.value.row == 0
    assert lr.replay(program, t2, columns={"junk": None}).stats.events == N
    # an unsupported Arrow type names the column
    t3 = pa.table({"type": ["purchase"], "id": ["x"], "customer": ["c"], "time": ["2026-01-01T00:00:00Z"], "amount": pa.array([b"1"], pa.binary())})
    with pytest.raises(lr.EventError) as ei:
        lr.replay(program, t3)
    assert ei.value.field == "amount" and ei.value.row == 0


def test_not_a_table(program: lr.Program) -> None:
    with pytest.raises(TypeError):
        lr.Engine(program).replay(42)


def test_evaluate_table_stateless(program: lr.Program) -> None:
    t = arrow_table()
    out = program.evaluate(t, customers={"c1": {"id": "c1"}}, explain=True, detail=True)
    assert out.num_rows == N
    assert out.column("status").null_count == N
    for r, row in zip(rows(), out.to_pylist()):
        o = program.evaluate(as_json(r), {"id": r["customer"]}, explain=True)
        assert json.loads(row["outcome"]) == o.to_dict()


def test_evaluate_table_in_chunks_keeps_row_order_and_numbers() -> None:
    """A table longer than one conversion chunk (65,536 rows), in several
    record batches: every row is evaluated once, in order, and an error
    after the first chunk names its own row."""
    program = lr.compile('rule "Base" on purchase award 1 point per $1\nrule "Big" on purchase if purchase.amount > $250 award 7 points')
    n = 70_001
    amounts = [f"{i % 300}.{i % 100:02d}" for i in range(n)]
    t = pa.table(
        {
            "id": [f"o{i}" for i in range(n)],
            "customer": [f"c{i % 997}" for i in range(n)],
            "time": pa.array([1_767_225_600_000_000 + i for i in range(n)], pa.timestamp("us", "UTC")),
            "amount": amounts,
        }
    )
    reader = pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=30_000))
    for data, threads in ((t, 1), (reader, 2)):
        out = program.evaluate(data, event_type="purchase", threads=threads).to_pydict()
        assert out["row"] == list(range(n))
        assert out["event"][65_535:65_538] == ["o65535", "o65536", "o65537"]
        want = [int(Decimal(a)) + (7 if Decimal(a) > 250 else 0) for a in amounts]
        assert out["points"] == want
    bad = t.set_column(3, "amount", pa.array(amounts[:69_000] + ["lots"] + amounts[69_001:]))
    with pytest.raises(lr.EventError) as ei:
        program.evaluate(bad, event_type="purchase")
    assert ei.value.row == 69_000 and ei.value.field == "amount"


def test_replay_streams_in_chunks_and_a_bad_row_changes_nothing() -> None:
    """On one or two threads, a fresh engine replays a table a chunk of rows
    at a time (8,192; with two threads each chunk is converted on the
    second thread while the previous one replays): the results are those of
    converting every row first (an engine with customers does that, and so
    does the partitioned replay), and a bad row after the first chunks
    still fails the call with the engine as it was (its clock too)."""
    program = lr.compile('rule "Base" on purchase award 1 point per $1\nrule "Big" on purchase if purchase.amount > $250 award 7 points')
    n = 20_001
    amounts = [f"{i % 300}.{i % 100:02d}" for i in range(n)]
    t = pa.table(
        {
            "id": [f"o{i % 19_000}" for i in range(n)],  # the last rows are duplicates
            "customer": [f"c{i % 19_000 % 997}" for i in range(n)],
            "time": pa.array([1_767_225_600_000_000 + i for i in range(n)], pa.timestamp("us", "UTC")),
            "amount": amounts,
        }
    )
    reader = pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=7_000))
    streamed = lr.replay(program, reader, event_type="purchase", threads=1)
    assert streamed.table.column("row").to_pylist() == list(range(n))
    assert streamed.stats.duplicates == n - 19_000
    pipelined = lr.replay(program, t, event_type="purchase", threads=2)
    assert pipelined.table.equals(streamed.table)
    assert pipelined.states_table().equals(streamed.states_table())
    for threads in (1, 2, 3):
        # an engine with a customer already converts all rows first
        e = lr.Engine(program)
        e.set_customer({"id": "someone else"})
        r = e.replay(t, event_type="purchase", threads=threads)
        assert r.table.drop_columns(["time"]).equals(streamed.table.drop_columns(["time"]))
        assert r.table.column("time").equals(streamed.table.column("time"))
        assert r.cost_per_rule() == streamed.cost_per_rule()
        got = {c: s for c, s in zip(*r.states_table().to_pydict().values()) if c != "someone else"}
        assert got == dict(zip(*streamed.states_table().to_pydict().values()))

    bad = t.set_column(3, "amount", pa.array(amounts[:19_500] + ["lots"] + amounts[19_501:]))
    clocked = lr.Engine(program)
    clocked.advance_to("2025-06-01T00:00:00Z")
    for eng in (lr.Engine(program), lr.Engine(program, clocked.snapshot()), e):
        before = eng.snapshot()
        for threads in (1, 2):
            with pytest.raises(lr.EventError) as ei:
                eng.replay(bad, event_type="purchase", threads=threads)
            assert ei.value.row == 19_500 and ei.value.field == "amount"
            assert eng.snapshot() == before
    # and the engine restored after the failure replays as a new one
    for threads in (1, 2):
        again = lr.Engine(program)
        with pytest.raises(lr.EventError):
            again.replay(bad, event_type="purchase", threads=threads)
        r = again.replay(t, event_type="purchase", threads=threads)
        assert r.table.equals(streamed.table) and r.cost_per_rule() == streamed.cost_per_rule()


def test_partition_shape_round_trip(program: lr.Program, expected: list[lr.Outcome]) -> None:
    """Two partitions in sequence (as a distributed job over time slices
    would do) give the same final states as one run."""
    t = arrow_table()
    first, second = t.slice(0, 20), t.slice(20)
    res1, states1 = lr.replay_partition(program, first)
    assert states1.column_names == ["customer", "state"]
    res2, states2 = lr.replay_partition(program.source, second, states1)
    full = lr.replay(program, t)
    assert states2.to_pydict() == full.states_table().to_pydict()
    assert res1.column("points").to_pylist() + res2.column("points").to_pylist() == full.table.column("points").to_pylist()


@pytest.mark.parametrize("kind", ["large_string", "string_view", "dictionary"])
def test_prior_states_in_any_text_column(program: lr.Program, kind: str) -> None:
    """A states table's `state` column may be any Arrow text type (polars
    writes large_string or string_view); a column of another type is an
    error naming the column."""
    t = arrow_table()
    first, second = t.slice(0, 20), t.slice(20)
    _, states1 = lr.replay_partition(program, first)
    col = states1.column("state")
    typ = {"large_string": pa.large_string(), "string_view": pa.string_view()}.get(kind)
    recast = col.dictionary_encode() if typ is None else col.cast(typ)
    states1 = states1.set_column(1, "state", recast)
    _, states2 = lr.replay_partition(program, second, states1)
    assert states2.to_pydict() == lr.replay(program, t).states_table().to_pydict()
    bad = states1.set_column(1, "state", pa.array(range(states1.num_rows)))
    with pytest.raises(lr.LoyaltyRulesError, match="JSON text"):
        lr.replay_partition(program, second, bad)


def test_prior_states_parsed_on_threads(program: lr.Program) -> None:
    """A large states table parses on several threads into the same engine
    as on one, in table order; a bad text names its row in the table."""
    n = 2600
    t = pa.table(
        {
            "type": ["purchase"] * n,
            "id": [f"o{i}" for i in range(n)],
            "customer": [f"c{i:05d}" for i in range(n)],
            "time": ["2026-01-05T10:00:00Z"] * n,
            "amount": [str(10 + i % 300) for i in range(n)],
        }
    )
    _, states = lr.replay_partition(program, t)
    assert states.num_rows == n
    for threads in (1, 2, 3):
        e = lr.Engine(program)
        assert e.load_states(states, threads=threads) == n
        assert e.states_table(threads=1).equals(states)
    texts = states.column("state").to_pylist()
    texts[2100] = "{"
    bad = states.set_column(1, "state", pa.array(texts))
    for threads in (1, 3):
        with pytest.raises(lr.LoyaltyRulesError, match="state row 2100"):
            lr.Engine(program).load_states(bad, threads=threads)


def test_partitions_by_customer(program: lr.Program) -> None:
    """Disjoint customer sets in separate partitions: union equals one run."""
    t = arrow_table()
    full = lr.replay(program, t)
    parts = []
    for k in range(3):
        part = t.filter(pa.compute.is_in(t.column("customer"), pa.array([f"c{i}" for i in range(7) if i % 3 == k])))
        _, st = lr.replay_partition(program, part)
        parts.extend(st.to_pylist())
    assert sorted(parts, key=lambda r: r["customer"]) == full.states_table().to_pylist()


def test_pandas_decimal_objects(program: lr.Program, expected: list[lr.Outcome]) -> None:
    """Object columns of Decimals (what pandas gives for Arrow decimals) go
    to the core as their text; nulls stay missing."""
    df = pd.DataFrame(rows())
    assert df["amount"].dtype == object
    df["shipping"] = [None if i % 2 else Decimal("0") for i in range(N)]
    check_results(lr.replay(program, df).table, expected, program)
    df.loc[5, "amount"] = Decimal("NaN")
    with pytest.raises(lr.EventError) as ei:
        lr.replay(program, df)
    assert ei.value.row == 5 and ei.value.field == "amount"


def test_replay_in_customer_order_gives_row_order_results() -> None:
    """A fresh engine on one thread converts and replays rows in the
    engine's replay order (each customer's rows together, customers linked
    by `referred_by` together) and puts the results back in row order: the
    table and states are those of row order (an engine with a customer
    replays in row order), and a bad row reported is the first one, not
    the first one met."""
    program = lr.compile(
        'rule "Base" on purchase award 1 point per $1\n'
        'rule "Referral" on signup if signup.referred_by is set award 50 points to signup.referred_by\n'
    )
    n = 3_000
    types = ["signup" if i % 50 == 7 else "redemption" if i % 50 == 8 else "purchase" for i in range(n)]
    t = pa.table(
        {
            "type": types,
            "id": [f"e{i}" for i in range(n)],
            "customer": [f"c{(i * 7) % 101}" for i in range(n)],
            "time": pa.array([1_767_225_600_000_000 + i * 1_000_000 for i in range(n)], pa.timestamp("us", "UTC")),
            "amount": [None if ty != "purchase" else f"{i % 90}.50" for i, ty in enumerate(types)],
            # a referrer's points arrive from another customer's sign-up,
            # just before that referrer redeems them
            "referred_by": [f"c{((i + 1) * 7) % 101}" if ty == "signup" else None for i, ty in enumerate(types)],
            "points": [50 if ty == "redemption" else None for ty in types],
            "reward": ["mug" if ty == "redemption" else None for ty in types],
        }
    )
    grouped = lr.replay(program, t, threads=1)
    e = lr.Engine(program)
    e.set_customer({"id": "someone else"})
    in_rows = e.replay(t, threads=1)
    assert grouped.table.equals(in_rows.table)
    assert grouped.table.column("row").to_pylist() == list(range(n))
    # r's redemption needs the points n's sign-up gives r: taken in
    # customer order without the `referred_by` link it would come first
    refer = pa.table(
        {
            "type": ["login", "signup", "redemption"],
            "id": ["l0", "s1", "r2"],
            "customer": ["r", "n", "r"],
            "time": pa.array([1_767_225_600_000_000 + i for i in range(3)], pa.timestamp("us", "UTC")),
            "referred_by": [None, "r", None],
            "points": [None, None, 50],
            "reward": [None, None, "mug"],
        }
    )
    for threads in (1, 2, 3):
        assert lr.replay(program, refer, threads=threads).table.column("status").to_pylist() == ["applied"] * 3
    # two threads convert the next chunk while one replays; three convert
    # rows in replay order too (all before any is applied) and replay them
    # partitioned: the same table
    assert lr.replay(program, t, threads=2).table.equals(in_rows.table)
    assert lr.replay(program, t, threads=3).table.equals(in_rows.table)
    got = {c: s for c, s in zip(*in_rows.states_table().to_pydict().values()) if c != "someone else"}
    assert got == dict(zip(*grouped.states_table().to_pydict().values()))

    # customer order meets c0's bad row 4 before c1's bad row 3
    small = pa.table(
        {
            "id": [f"p{i}" for i in range(6)],
            "customer": [f"c{i % 2}" for i in range(6)],
            "time": pa.array([1_767_225_600_000_000 + i for i in range(6)], pa.timestamp("us", "UTC")),
            "amount": ["1", "2", "3", "lots", "lots", "6"],
        }
    )
    for threads in (1, 2, 3):
        fresh = lr.Engine(program)
        before = fresh.snapshot()
        with pytest.raises(lr.EventError) as ei:
            fresh.replay(small, event_type="purchase", threads=threads)
        assert ei.value.row == 3 and ei.value.field == "amount"
        assert fresh.snapshot() == before


# --------------------------------------------------------------------------
# The points columns are exact: int64 for whole points, decimal128(38, N)
# for N decimals (the program's type, whatever the data)


def purchases(amounts: list[str]) -> Any:
    n = len(amounts)
    return pa.table(
        {
            "id": [f"o{i}" for i in range(n)],
            "customer": [f"c{i % 2}" for i in range(n)],
            "time": pa.array([1_767_225_600_000_000 + i for i in range(n)], pa.timestamp("us", "UTC")),
            "amount": amounts,
        }
    )


def every_path(program: lr.Program, t: Any, **kw: Any) -> Any:
    """The results of replaying ``t`` by every path, which must all be equal:
    one thread streamed in customer order, one thread in row order (an
    engine with a customer converts all rows first), two threads (the next
    chunk converted on the second), three threads (partitioned, rows made
    on the replay's threads), record batches, pandas and polars input."""
    base = lr.replay(program, t, threads=1, **kw).table
    e = lr.Engine(program)
    e.set_customer({"id": "someone else"})
    batches = pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=2))
    others = {
        "row order": e.replay(t, threads=1, **kw).table,
        "2 threads": lr.replay(program, t, threads=2, **kw).table,
        "3 threads": lr.replay(program, t, threads=3, **kw).table,
        "batches": lr.replay(program, batches, threads=1, **kw).table,
        "pandas": lr.replay(program, t.to_pandas(), **kw).table,
        "polars": lr.replay(program, pl.from_arrow(t), **kw).table,
    }
    for path, table in others.items():
        assert table.equals(base), path
    return base


def points_columns(program: lr.Program) -> list[str]:
    return ["points"] + [f"points:{r}" for r in program.rule_names]


def test_whole_points_are_exact_int64() -> None:
    """Whole points are int64, exact beyond 2^53 (where float64 is not)."""
    program = lr.compile(
        'rule "Base" on purchase award 1 point per $1\nrule "Bonus" on purchase\n  award 1 point\n  award 2 points'
    )
    assert program.points_decimals == 0 and program.points_type() == pa.int64()
    big = 2**53 + 1
    t = purchases([str(big), "12.99", str(2**62 + 1)])
    out = every_path(program, t, event_type="purchase")
    for c in points_columns(program):
        assert out.schema.field(c).type == pa.int64()
    assert out.column("points:Base").to_pylist() == [big, 12, 2**62 + 1]
    assert out.column("points:Bonus").to_pylist() == [3, 3, 3]
    assert out.column("points").to_pylist() == [big + 3, 15, 2**62 + 4]
    assert out.column("errors").null_count == 3
    # the stateless evaluation makes the same columns
    ev = program.evaluate(t, event_type="purchase", threads=2)
    assert ev.select(points_columns(program)).equals(out.select(points_columns(program)))


def test_points_with_decimals_are_exact_decimal128() -> None:
    """Points with 2 decimals are decimal128(38, 2), summed exactly: a rule's
    0.1 and 0.2 make 0.30 (0.30000000000000004 in float64), and 17
    significant digits stay exact."""
    program = lr.compile(
        "points have 2 decimals, rounded half even\n"
        'rule "Tenths" on purchase\n  award 0.1 points\n  award 0.2 points\n'
        'rule "Half" on purchase award 1 point per $1 of purchase.amount / 2\n'
    )
    assert program.points_decimals == 2
    assert program.points_type() == pa.decimal128(38, 2)
    t = purchases(["0.10", "1234567890123456.78", "7"])
    out = every_path(program, t, event_type="purchase")
    for c in points_columns(program):
        assert out.schema.field(c).type == pa.decimal128(38, 2)
    tenths = out.column("points:Tenths").to_pylist()
    assert all(isinstance(x, Decimal) for x in tenths)
    assert [str(x) for x in tenths] == ["0.30", "0.30", "0.30"]
    assert [str(x) for x in out.column("points:Half").to_pylist()] == ["0.05", "617283945061728.39", "3.50"]
    assert [str(x) for x in out.column("points").to_pylist()] == ["0.35", "617283945061728.69", "3.80"]
    # exact sums with pyarrow compute, and the stats agree
    r = lr.replay(program, t, event_type="purchase")
    for rule, pts in r.cost_per_rule().items():
        assert pa.compute.sum(r.table.column(f"points:{rule}")).as_py() == pts
    ev = program.evaluate(t, event_type="purchase")
    assert ev.select(points_columns(program)).equals(out.select(points_columns(program)))


def test_points_beyond_int64_are_null_with_an_error() -> None:
    """A cell whose points do not fit int64 is null (never wrapped, clamped
    or rounded), and the row's ``errors`` say so; the outcome has them."""
    program = lr.compile('rule "Base" on purchase award 1 point per $1\nrule "Bonus" on purchase award 5 points')
    t = purchases(["10", str(2**63 - 2), "20000000000000000000"])
    out = every_path(program, t, event_type="purchase", detail=True)
    assert out.schema.field("points").type == pa.int64()
    assert out.column("points:Base").to_pylist() == [10, 2**63 - 2, None]
    assert out.column("points:Bonus").to_pylist() == [5, 5, 5]
    assert out.column("points").to_pylist() == [15, None, None]
    errors = out.column("errors").to_pylist()
    assert errors[0] is None
    assert errors[1] == (
        f'points: {2**63 + 3} points do not fit the int64 column "points": left null '
        "(the exact points are in the outcome, detail=True)"
    )
    assert errors[2] == (
        'points: 20000000000000000005 points do not fit the int64 column "points": left null '
        "(the exact points are in the outcome, detail=True); "
        'Base: 20000000000000000000 points do not fit the int64 column "points:Base": left null '
        "(the exact points are in the outcome, detail=True)"
    )
    assert [json.loads(o)["points"] for o in out.column("outcome").to_pylist()] == [
        "15",
        str(2**63 + 3),
        "20000000000000000005",
    ]
    ev = program.evaluate(t, event_type="purchase")
    assert ev.select(["points", "points:Base", "errors"]).equals(out.select(["points", "points:Base", "errors"]))


def test_unfit_points_errors_follow_the_rules_errors() -> None:
    """A row's points that do not fit come after its rules' run-time
    errors in ``errors``, in the same ``name: message; ...`` form."""
    program = lr.compile(
        'rule "Base" on purchase award 1 point per $1\n'
        'rule "Div" on purchase award 10 / ((purchase.amount - purchase.amount) / $1) points'
    )
    out = every_path(program, purchases(["5", "20000000000000000000"]), event_type="purchase")
    assert out.column("points").to_pylist() == [5, None]
    assert out.column("errors").to_pylist() == [
        "Div: division by zero",
        "Div: division by zero; "
        'points: 20000000000000000000 points do not fit the int64 column "points": left null '
        "(the exact points are in the outcome, detail=True); "
        'Base: 20000000000000000000 points do not fit the int64 column "points:Base": left null '
        "(the exact points are in the outcome, detail=True)",
    ]


def test_a_large_engine_freed_apart_leaves_results_intact() -> None:
    """An engine of more than 10,000 customers is freed on a thread of its
    own when dropped: the tables taken from it stay valid, and engines made
    afterwards replay the same. Its states serialize alike on one thread or
    several."""
    program = lr.compile('rule "Base" on purchase award 1 point per $1')
    n = 24_000
    t = pa.table(
        {
            "id": [f"o{i}" for i in range(n)],
            "customer": [f"c{i % 12_000}" for i in range(n)],
            "time": pa.array([1_767_225_600_000_000 + i for i in range(n)], pa.timestamp("us", "UTC")),
            "amount": [f"{i % 50}.25" for i in range(n)],
        }
    )
    first = lr.replay(program, t, event_type="purchase", threads=1)
    table, states = first.table, first.states_table(threads=1)
    # serialized on three threads: the same table, in three chunks
    three = first.states_table(threads=3)
    assert three.column("state").num_chunks == 3 and states.column("state").num_chunks == 1
    assert three.equals(states)
    assert three.column("customer").to_pylist() == sorted(f"c{i}" for i in range(12_000))
    del first
    gc.collect()
    assert table.num_rows == n and states.num_rows == 12_000
    again = lr.replay(program, t, event_type="purchase", threads=1)
    assert again.table.equals(table)
    assert again.states_table().equals(states)
