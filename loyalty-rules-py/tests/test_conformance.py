"""The shared conformance corpus (conformance/*.json), with the matching
rules of loyalty-rules/tests/conformance.rs (docs/API-CONTRACT.md).

The Python API reports source offsets in code points; the corpus holds the
core's UTF-8 byte offsets. The runner converts the Python values back to
bytes with the program source, so a case passes only if the conversion is
exact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import loyalty_rules as lr

CORPUS = Path(__file__).resolve().parents[2] / "conformance"
CASES = sorted(CORPUS.glob("*.json"))


def program_text(v: Any) -> str:
    if isinstance(v, str):
        return v
    assert isinstance(v, list), "`program` must be a string or a list of lines"
    return "\n".join(v)


def matches(expected: Any, actual: Any, path: str, errors: list[str]) -> None:
    """Subset match, as in conformance.rs."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k, ev in expected.items():
            if k.endswith("_contains"):
                fld = k[: -len("_contains")]
                got = actual.get(fld)
                got = got if isinstance(got, str) else ""
                want = ev if isinstance(ev, str) else ""
                if want not in got:
                    errors.append(f"{path}.{fld}: {got!r} does not contain {want!r}")
                continue
            if k in actual:
                matches(ev, actual[k], f"{path}.{k}", errors)
            else:
                errors.append(f"{path}.{k}: missing (expected {ev!r})")
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            errors.append(
                f"{path}: expected {len(expected)} elements, got {len(actual)}: {actual!r}"
            )
            return
        for i, (ev, av) in enumerate(zip(expected, actual)):
            matches(ev, av, f"{path}[{i}]", errors)
    else:
        # JSON equality: no bool/int confusion
        if type(expected) is not type(actual) and not (
            isinstance(expected, (int, float))
            and isinstance(actual, (int, float))
            and not isinstance(expected, bool)
            and not isinstance(actual, bool)
        ):
            errors.append(f"{path}: expected {expected!r}, got {actual!r}")
        elif expected != actual:
            errors.append(f"{path}: expected {expected!r}, got {actual!r}")


def to_bytes(source: str, d: dict[str, Any]) -> dict[str, Any]:
    """Code-point offsets -> UTF-8 byte offsets (the core's JSON)."""
    d = dict(d)
    for k in ("start", "end"):
        if k in d:
            d[k] = len(source[: d[k]].encode("utf-8"))
    return d


def outcome_json(source: str, o: lr.Outcome) -> dict[str, Any]:
    d = dict(o.to_dict())
    if d.get("explanation") is not None:
        d["explanation"] = [to_bytes(source, x) for x in d["explanation"]]
    return d


def run_plain(case: dict[str, Any], source: str, program: lr.Program) -> list[str]:
    errors: list[str] = []
    default_customer = case.get("customer", {"id": "c1"})
    for i, step in enumerate(case["steps"]):
        customer = step.get("customer", default_customer)
        exp_err = step.get("expect_error")
        try:
            program.check_event(step["event"])
            outcome = program.evaluate(step["event"], customer, explain=step.get("explain", False))
        except (lr.EventError, lr.CustomerError) as e:
            if exp_err is None:
                errors.append(f"steps[{i}]: unexpected error: {e}")
            else:
                matches(exp_err, e.to_dict(), f"steps[{i}].error", errors)
            continue
        if exp_err is not None:
            errors.append(f"steps[{i}]: expected an error, got none")
            continue
        actual = outcome_json(source, outcome)
        matches(step.get("expect", {}), actual, f"steps[{i}]", errors)
        if "expect_matching" in step:
            names = program.matching_rules(step["event"], customer)
            matches(step["expect_matching"], names, f"steps[{i}].matching", errors)
        again = program.evaluate(step["event"], customer, explain=step.get("explain", False))
        if json.dumps(again.to_dict(), sort_keys=True) != json.dumps(
            outcome.to_dict(), sort_keys=True
        ):
            errors.append(f"steps[{i}]: second evaluation differs")
    return errors


def run_engine(case: dict[str, Any], source: str, program: lr.Program) -> list[str]:
    errors: list[str] = []
    engine = lr.Engine(program)
    for c in case.get("customers", []):
        engine.set_customer(c)
    for i, step in enumerate(case["steps"]):
        if "advance_to" in step:
            ledger = engine.advance_to(step["advance_to"])
            if "expect_ledger" in step:
                matches(step["expect_ledger"], ledger, f"steps[{i}].ledger", errors)
        else:
            exp_err = step.get("expect_error")
            try:
                outcome = engine.process(step["event"])
            except (lr.EventError, lr.CustomerError) as e:
                if exp_err is None:
                    errors.append(f"steps[{i}]: unexpected error: {e}")
                else:
                    matches(exp_err, e.to_dict(), f"steps[{i}].error", errors)
                continue
            if exp_err is not None:
                errors.append(f"steps[{i}]: expected an error, got none")
                continue
            matches(step.get("expect", {}), outcome_json(source, outcome), f"steps[{i}]", errors)
        if "expect_customer" in step:
            want = step["expect_customer"]
            got = engine.customer_dict(want["id"])
            if got is None:
                errors.append(f"steps[{i}]: customer {want['id']} unknown")
            else:
                matches(want, got, f"steps[{i}].customer", errors)
    return errors


def run_case(path: Path) -> list[str]:
    case = json.loads(path.read_text(encoding="utf-8"))
    source = program_text(case["program"])
    errors: list[str] = []
    diags = [to_bytes(source, d.to_dict()) for d in lr.check(source)]
    if "expect_diagnostics" in case:
        matches(case["expect_diagnostics"], diags, "diagnostics", errors)
        if any(d["severity"] == "error" for d in diags):
            try:
                lr.compile(source)
                errors.append("compile() succeeded although check() reported errors")
            except lr.ProgramError as e:
                # the exception carries the same diagnostics
                got = [to_bytes(source, d.to_dict()) for d in e.diagnostics]
                if got != diags:
                    errors.append("ProgramError.diagnostics differ from check()")
        return errors
    if diags:
        return [f"unexpected diagnostics: {diags}"]
    try:
        program = lr.compile(source)
    except lr.ProgramError as e:
        return [f"does not compile: {e}"]
    if case.get("mode") == "engine":
        return run_engine(case, source, program)
    return run_plain(case, source, program)


def test_corpus_present() -> None:
    assert CASES, f"no conformance cases in {CORPUS}"
    assert any(json.loads(p.read_text()).get("mode") == "engine" for p in CASES)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_conformance(path: Path) -> None:
    errors = run_case(path)
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    "path",
    [p for p in CASES if json.loads(p.read_text()).get("mode") == "engine"],
    ids=lambda p: p.stem,
)
def test_engine_cases_batch_equals_steps(path: Path) -> None:
    """The event steps of every engine case, replayed as one pyarrow table
    (no advance_to in between), give the same outcomes and states as
    processing them one by one."""
    pa = pytest.importorskip("pyarrow")
    case = json.loads(path.read_text(encoding="utf-8"))
    program = lr.compile(program_text(case["program"]))
    events = [s["event"] for s in case["steps"] if "event" in s and "expect_error" not in s]
    one = lr.Engine(program)
    for c in case.get("customers", []):
        one.set_customer(c)
    expected = [one.process(e) for e in events]
    many = lr.Engine(program)
    for c in case.get("customers", []):
        many.set_customer(c)
    res = many.replay(events)
    assert res.outcomes is not None
    assert [o.to_dict() for o in res.outcomes] == [o.to_dict() for o in expected]
    assert many.snapshot() == one.snapshot()
    # the same events as one Arrow table (missing keys become nulls)
    keys = list(dict.fromkeys(k for e in events for k in e))
    table = pa.Table.from_pylist([{k: e.get(k) for k in keys} for e in events])
    arrow = lr.Engine(program)
    for c in case.get("customers", []):
        arrow.set_customer(c)
    r = arrow.replay(table, detail=True)
    assert [json.loads(x) for x in r.table.column("outcome").to_pylist()] == [
        o.to_dict() for o in expected
    ]
    assert arrow.snapshot() == one.snapshot()
