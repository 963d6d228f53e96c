"""loyalty_rules: a loyalty-program rules engine, from Python.

A thin facade over the Rust core (``loyalty_rules._native``): every rule is
evaluated by the core; this module only converts values.

>>> import loyalty_rules as lr
>>> p = lr.compile("IF Purchase > $100 THEN Award 100 Points")
>>> o = p.evaluate({"type": "purchase", "id": "o1", "customer": "c1",
...                 "time": "2026-11-24T10:00:00Z", "amount": "120.00"})
>>> o.points
Decimal('100')

Tables (pandas, polars, pyarrow) go through the Arrow PyCapsule stream
interface: ``lr.replay(program, df)`` returns a ``ReplayResult`` with an
Arrow-backed results table (one row per event) and the final customer
states. See the README for the column mapping and the per-partition shape
used with PySpark or Dask.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Mapping, Union

from . import _native
from .errors import (
    CustomerError,
    Diagnostic,
    EventError,
    LoyaltyRulesError,
    ProgramError,
)

#: A ``pyarrow.Table`` (typed as Any: pyarrow ships no type information).
ArrowTable = Any

__version__: str = _native.__version__

__all__ = [
    "Balances",
    "CustomerError",
    "CustomerState",
    "Diagnostic",
    "Effect",
    "Engine",
    "EventError",
    "Explanation",
    "LoyaltyRulesError",
    "Outcome",
    "Program",
    "ProgramError",
    "ReplayResult",
    "ReplayStats",
    "RuleError",
    "check",
    "compile",
    "compile_file",
    "completions",
    "format",
    "replay",
    "replay_partition",
]

PathLike = Union[str, "os.PathLike[str]"]


def _dec(v: Any) -> Decimal:
    return Decimal(str(v))


def _opt_dec(v: Any) -> Decimal | None:
    return None if v is None else Decimal(str(v))


# --------------------------------------------------------------------------
# Typed results


@dataclass(frozen=True)
class Effect:
    """One effect of a fired rule (``effect``: award, multiply, reward, tier,
    tag, notify, set_attribute, extend_expiry). Other keys are in ``data``."""

    effect: str
    rule: str
    customer: str
    points: Decimal | None
    data: dict[str, Any]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Effect:
        return cls(
            effect=d["effect"],
            rule=d["rule"],
            customer=d.get("customer", ""),
            points=_opt_dec(d.get("points")),
            data=d,
        )

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


@dataclass(frozen=True)
class Explanation:
    """Why a rule fired or not. ``start``/``end`` are code-point offsets
    into the program source; ``line``/``column`` are 1-based."""

    rule: str
    fired: bool
    line: int
    column: int
    start: int
    end: int
    reason: str | None = None
    detail: str | None = None
    condition: str | None = None
    values: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Explanation:
        return cls(
            rule=d["rule"],
            fired=d["fired"],
            line=d["line"],
            column=d["column"],
            start=d["start"],
            end=d["end"],
            reason=d.get("reason"),
            detail=d.get("detail"),
            condition=d.get("condition"),
            values=[(v["expr"], v["value"]) for v in d.get("values", [])],
        )


@dataclass(frozen=True)
class RuleError:
    """A rule that failed at run time (e.g. a division by zero)."""

    rule: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """The result of evaluating or processing one event.

    ``points`` is exact (Decimal). ``status`` (applied, duplicate, rejected)
    and ``ledger`` are set by the engine; ``explanation`` by
    ``explain=True`` / ``Engine.preview``. ``to_dict()`` gives the core's
    JSON shape unchanged.
    """

    event: str
    event_type: str
    customer: str
    points: Decimal
    effects: list[Effect]
    errors: list[RuleError]
    status: str | None
    reason: str | None
    ledger: list[dict[str, Any]]
    explanation: list[Explanation] | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Outcome:
        ex = d.get("explanation")
        return cls(
            event=d["event"],
            event_type=d["event_type"],
            customer=d["customer"],
            points=_dec(d["points"]),
            effects=[Effect.from_dict(e) for e in d.get("effects", [])],
            errors=[RuleError(e["rule"], e["message"]) for e in d.get("errors", [])],
            status=d.get("status"),
            reason=d.get("reason"),
            ledger=list(d.get("ledger", [])),
            explanation=None if ex is None else [Explanation.from_dict(x) for x in ex],
            raw=d,
        )

    def to_dict(self) -> dict[str, Any]:
        return self.raw

    def points_by_rule(self) -> dict[str, Decimal]:
        """Points (kind ``points``) awarded or multiplied, per rule."""
        out: dict[str, Decimal] = {}
        for e in self.effects:
            if e.effect in ("award", "multiply") and e.get("kind", "points") == "points":
                out[e.rule] = out.get(e.rule, Decimal(0)) + (e.points or Decimal(0))
        return out


@dataclass(frozen=True)
class Balances:
    available: Decimal
    pending: Decimal
    lifetime_earned: Decimal
    redeemed: Decimal
    expired: Decimal
    reversed: Decimal

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Balances:
        def g(k: str) -> Decimal:
            return _dec(d.get(k, "0"))

        return cls(
            g("available"),
            g("pending"),
            g("lifetime_earned"),
            g("redeemed"),
            g("expired"),
            g("reversed"),
        )


@dataclass(frozen=True)
class CustomerState:
    """A customer's state in an engine (typed view; ``to_dict()`` is the
    core's JSON, accepted back by ``Engine.load_states``)."""

    id: str
    tier: str | None
    tags: list[str]
    balances: Balances
    profile: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CustomerState:
        return cls(
            id=d["id"],
            tier=d.get("tier"),
            tags=list(d.get("tags", [])),
            balances=Balances.from_dict(d.get("balances", {})),
            profile=dict(d.get("profile", {})),
            raw=d,
        )

    @property
    def points(self) -> Decimal:
        """Spendable points (``balances.available``)."""
        return self.balances.available

    def to_dict(self) -> dict[str, Any]:
        return self.raw


@dataclass(frozen=True)
class ReplayStats:
    """Totals of a replay (points are exact)."""

    events: int
    applied: int
    duplicates: int
    rejected: int
    invalid: int
    points_issued: Decimal
    points_deducted: Decimal
    points_expired: Decimal
    points_redeemed: Decimal
    points_reversed: Decimal
    per_rule: dict[str, Decimal]
    errors: list[str]
    parallel: bool

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReplayStats:
        return cls(
            events=d["events"],
            applied=d["applied"],
            duplicates=d["duplicates"],
            rejected=d["rejected"],
            invalid=d["invalid"],
            points_issued=_dec(d["points_issued"]),
            points_deducted=_dec(d["points_deducted"]),
            points_expired=_dec(d["points_expired"]),
            points_redeemed=_dec(d["points_redeemed"]),
            points_reversed=_dec(d["points_reversed"]),
            per_rule={r: _dec(p) for r, p in d["per_rule"]},
            errors=list(d["errors"]),
            parallel=d["parallel"],
        )


# --------------------------------------------------------------------------
# Tables


def _as_stream(data: Any) -> Any:
    """Anything with ``__arrow_c_stream__``; pandas goes through pyarrow
    without its index (a non-default index would become a column)."""
    mod = type(data).__module__
    if mod.startswith("pandas"):
        import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

        return pa.Table.from_pandas(_decimals_as_text(data), preserve_index=False)
    if hasattr(data, "__arrow_c_stream__"):
        return data
    raise TypeError(
        "expected a pyarrow Table/RecordBatchReader, a polars DataFrame or a pandas "
        f"DataFrame (anything with __arrow_c_stream__), got {type(data).__name__}"
    )


def _decimals_as_text(df: Any) -> Any:
    """A DataFrame whose object columns of ``decimal.Decimal`` values hold
    their text instead (nulls kept). pyarrow infers a decimal type by
    inspecting every Python object, about 8x slower than ``str``; the core
    reads the text exactly (``"12.50"``), as it reads a dict's Decimal."""
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]

    if not df.columns.is_unique:
        return df
    cols = [
        c
        for c, t in df.dtypes.items()
        if t == object and pd.api.types.infer_dtype(df[c], skipna=True) == "decimal"
    ]
    if not cols:
        return df
    df = df.copy(deep=False)
    for c in cols:
        df[c] = df[c].map(str, na_action="ignore")
    return df


def _is_table(data: Any) -> bool:
    return hasattr(data, "__arrow_c_stream__") or type(data).__module__.startswith("pandas")


def _to_table(stream: _native.ArrowStream) -> ArrowTable:
    """Wrap a native stream as a pyarrow Table."""
    try:
        import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # pragma: no cover - pyarrow is optional
        return stream
    return pa.RecordBatchReader.from_stream(stream).read_all()


# --------------------------------------------------------------------------
# Program


def _customer_arg(c: Any) -> Any:
    if isinstance(c, CustomerState):
        d = dict(c.profile)
        d["id"] = c.id
        if c.tier is not None:
            d["tier"] = c.tier
        if c.tags:
            d["tags"] = c.tags
        return d
    return c


class Program:
    """A compiled program. Immutable and safe to share between threads."""

    __slots__ = ("_p",)

    def __init__(self, source: str) -> None:
        self._p = _native.Program(source)

    @classmethod
    def from_file(cls, path: PathLike) -> Program:
        with open(path, encoding="utf-8") as f:
            return cls(f.read())

    @classmethod
    def _wrap(cls, native: _native.Program) -> Program:
        p = cls.__new__(cls)
        p._p = native
        return p

    @property
    def source(self) -> str:
        return self._p.source

    @property
    def name(self) -> str | None:
        return self._p.name

    @property
    def rule_names(self) -> list[str]:
        return self._p.rule_names

    @property
    def points_decimals(self) -> int:
        """The decimals of the program's points: 0 for whole points (the
        default), N for ``points have N decimals``. It sets the type of the
        results tables' points columns: ``int64`` when 0, else
        ``decimal128(38, N)`` (see ``points_type``)."""
        return self._p.points_decimals

    def points_type(self) -> Any:
        """The ``pyarrow`` type of the results tables' points columns
        (``points`` and each ``points:<rule>``): ``pa.int64()`` for whole
        points, ``pa.decimal128(38, N)`` for N decimals. It depends on the
        program only, so a fixed output schema (PySpark ``mapInArrow``) can
        be written ahead."""
        import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

        d = self.points_decimals
        return pa.int64() if d == 0 else pa.decimal128(38, d)

    def __repr__(self) -> str:
        return repr(self._p)

    def evaluate(
        self,
        event: Any,
        customer: Any = None,
        *,
        explain: bool = False,
        customers: Mapping[str, Any] | None = None,
        columns: Mapping[str, str | None] | None = None,
        event_type: str | None = None,
        detail: bool = False,
        threads: int | None = None,
    ) -> Any:
        """Evaluate without state.

        One event (a dict) against ``customer`` (a dict or CustomerState;
        default ``{"id": event["customer"]}``) returns an ``Outcome``.

        A table (pandas, polars, pyarrow) returns a ``pyarrow.Table`` with
        one row per event (see ``replay`` for the columns); ``customers``
        maps customer ids to profiles.
        """
        if _is_table(event):
            custs = None
            if customers is not None:
                custs = {k: _customer_arg(v) for k, v in customers.items()}
            s = self._p.evaluate_table(
                _as_stream(event),
                custs,
                dict(columns) if columns else None,
                event_type,
                explain,
                detail,
                threads,
            )
            return _to_table(s)
        return Outcome.from_dict(self._p.evaluate(event, _customer_arg(customer), explain))

    def explain(self, event: Mapping[str, Any], customer: Any = None) -> Outcome:
        """``evaluate`` with an explanation of every rule."""
        return Outcome.from_dict(self._p.evaluate(event, _customer_arg(customer), True))

    def matching_rules(self, event: Mapping[str, Any], customer: Any = None) -> list[str]:
        """The names of the rules whose dates and condition hold for ``event``
        and ``customer``, in evaluation order, without computing effects,
        groups or limits (campaign eligibility)."""
        return self._p.matching_rules(event, _customer_arg(customer))

    def check_event(self, event: Mapping[str, Any]) -> None:
        """Raise ``EventError`` if the event does not fit the program."""
        self._p.check_event(event)

    def engine(self, snapshot: Mapping[str, Any] | None = None) -> Engine:
        """A new engine for this program (optionally restored)."""
        return Engine(self, snapshot)


def compile(source: str) -> Program:  # noqa: A001 - the natural name
    """Compile a program; raises ``ProgramError`` with every diagnostic."""
    return Program(source)


def compile_file(path: PathLike) -> Program:
    """Compile the program in a file (UTF-8)."""
    return Program.from_file(path)


def check(source: str) -> list[Diagnostic]:
    """Every diagnostic (errors and warnings) in source order; empty = clean."""
    return [Diagnostic.from_dict(d) for d in _native.check(source)]


def format(source: str) -> str:  # noqa: A001
    """The canonical form of a program (raises ``ProgramError``)."""
    return _native.format(source)


def completions(source: str, offset: int) -> list[dict[str, Any]]:
    """Completions at code-point ``offset``: ``{"label", "kind", "detail"}``."""
    return _native.completions(source, offset)


# --------------------------------------------------------------------------
# Engine


@dataclass
class ReplayResult:
    """What a replay produced.

    ``table``: a ``pyarrow.Table`` (table input) with one row per event:
    ``row`` (input row), ``event``, ``customer``, ``event_type``, ``time``
    (UTC), ``status``, ``reason``, ``points``, ``rewards``, ``errors``, one
    ``points:<rule>`` column per rule, and ``outcome`` (JSON text) with
    ``detail=True``. The points columns are exact: ``int64`` for a program
    of whole points, ``decimal128(38, N)`` for one with N decimals
    (``Program.points_type()``); a cell whose points do not fit (beyond
    the int64 range) is null, with the reason in the row's ``errors``.

    ``outcomes``: the Outcome objects (list input), else None.

    The final customer states are in ``engine`` (``states``,
    ``states_table()``, ``snapshot()``).
    """

    stats: ReplayStats
    engine: Engine
    table: Any = None
    outcomes: list[Outcome] | None = None

    @property
    def states(self) -> dict[str, CustomerState]:
        return self.engine.states()

    def states_table(self, threads: int | None = None) -> ArrowTable:
        return self.engine.states_table(threads=threads)

    def cost_per_rule(self) -> dict[str, Decimal]:
        """Points issued per rule (exact), in source order."""
        return dict(self.stats.per_rule)


class Engine:
    """Customers' balances, history, limits and tiers for one program.

    Time only moves with the events (and ``advance_to``).
    """

    __slots__ = ("_e", "program")

    def __init__(self, program: Program, snapshot: Mapping[str, Any] | None = None) -> None:
        if not isinstance(program, Program):
            raise TypeError("Engine(program): expected a loyalty_rules.Program")
        self.program = program
        self._e = _native.Engine(program._p, snapshot)

    @classmethod
    def from_snapshot(cls, program: Program, snapshot: Mapping[str, Any]) -> Engine:
        return cls(program, snapshot)

    def set_customer(self, customer: Any) -> None:
        """Create or update a profile (dict or CustomerState); balances are kept."""
        self._e.set_customer(_customer_arg(customer))

    def customer(self, id: str) -> CustomerState | None:
        d = self._e.customer(id)
        return None if d is None else CustomerState.from_dict(d)

    def customer_dict(self, id: str) -> dict[str, Any] | None:
        """A customer's state as the core's JSON (a plain dict)."""
        return self._e.customer(id)

    def customer_ids(self) -> list[str]:
        return self._e.customer_ids()

    def states(self) -> dict[str, CustomerState]:
        """Every customer's state, by id (sorted)."""
        return {
            c["id"]: CustomerState.from_dict(c) for c in self._e.snapshot()["customers"]
        }

    def process(self, event: Mapping[str, Any]) -> Outcome:
        return Outcome.from_dict(self._e.process(event))

    def preview(self, event: Mapping[str, Any]) -> Outcome:
        """What ``process`` would do (explained), changing nothing."""
        return Outcome.from_dict(self._e.preview(event))

    def advance_to(self, time: Any) -> list[dict[str, Any]]:
        """Move time (RFC 3339 text or datetime): release, expire, review."""
        return self._e.advance_to(time)

    def replay(
        self,
        events: Any,
        *,
        columns: Mapping[str, str | None] | None = None,
        event_type: str | None = None,
        threads: int | None = None,
        detail: bool = False,
    ) -> ReplayResult:
        """Process many events in order (parallel across customers, with
        exactly the result of processing them one by one).

        ``events``: a table (pandas, polars, pyarrow: one row per event,
        see the README for the column mapping) or an iterable of dicts.
        The GIL is released during the work.
        """
        if _is_table(events):
            s, stats = self._e.replay_table(
                _as_stream(events),
                dict(columns) if columns else None,
                event_type,
                threads,
                detail,
            )
            return ReplayResult(ReplayStats.from_dict(stats), self, table=_to_table(s))
        if columns or event_type:
            evs: Iterable[Any] = (_map_dict(e, columns, event_type) for e in events)
        else:
            evs = events
        outs, stats = self._e.replay(list(evs), threads)
        return ReplayResult(
            ReplayStats.from_dict(stats), self, outcomes=[Outcome.from_dict(o) for o in outs]
        )

    def snapshot(self) -> dict[str, Any]:
        """Everything, as plain JSON-able dicts (customers sorted by id)."""
        return self._e.snapshot()

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace all state by a snapshot."""
        self._e = _native.Engine(self.program._p, snapshot)

    def states_table(self, threads: int | None = None) -> ArrowTable:
        """Customer states as a table: ``customer`` (string), ``state`` (JSON
        text), in id order; serialized on ``threads`` threads (default: all
        cores), a chunk of the table per thread."""
        return _to_table(self._e.states_table(threads))

    def load_states(self, states: Any, threads: int | None = None) -> int:
        """Load prior customer states: a ``states_table()``-shaped table, a
        list of state dicts / CustomerState, or a ``{id: state}`` mapping.
        A table's JSON is parsed on ``threads`` threads (default: all
        cores)."""
        if isinstance(states, Mapping):
            states = list(states.values())
        if _is_table(states):
            return self._e.load_states(_as_stream(states), threads)
        return self._e.load_states(
            [s.to_dict() if isinstance(s, CustomerState) else s for s in states]
        )


def _map_dict(
    e: Mapping[str, Any], columns: Mapping[str, str | None] | None, event_type: str | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in e.items():
        if columns and k in columns:
            if columns[k] is None:
                continue
            k = columns[k]  # type: ignore[assignment]
        out[k] = v
    if event_type is not None and "type" not in out:
        out["type"] = event_type
    return out


def replay(
    program: Program,
    events: Any,
    *,
    states: Any = None,
    columns: Mapping[str, str | None] | None = None,
    event_type: str | None = None,
    threads: int | None = None,
    detail: bool = False,
) -> ReplayResult:
    """Back-test: replay ``events`` (a table or list of dicts) through a new
    engine, starting from ``states`` (optional, see ``Engine.load_states``)."""
    eng = Engine(program)
    if states is not None:
        eng.load_states(states, threads=threads)
    return eng.replay(
        events, columns=columns, event_type=event_type, threads=threads, detail=detail
    )


def replay_partition(
    program: Program | str,
    events: Any,
    states: Any = None,
    *,
    columns: Mapping[str, str | None] | None = None,
    event_type: str | None = None,
    threads: int | None = 1,
) -> tuple[ArrowTable, ArrowTable]:
    """The per-partition entry point for distributed back-tests.

    In: one Arrow table holding *all* events of a set of customers (in time
    order per customer), and those customers' prior states (a
    ``states_table()``-shaped table: ``customer``, ``state`` JSON; or None).
    Out: ``(results, new_states)``, both pyarrow Tables. Pure: the same
    input gives the same output on any worker. ``threads`` defaults to 1
    because the distributed engine already runs one task per core.
    """
    p = program if isinstance(program, Program) else Program(program)
    r = replay(p, events, states=states, columns=columns, event_type=event_type, threads=threads)
    return r.table, r.states_table(threads=threads)
