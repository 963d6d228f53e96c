//! `loyalty_rules._native`: a thin pyo3 adapter over the `loyalty-rules`
//! core. It converts values and errors and calls the core; no rule logic
//! lives here. The public Python API is the facade in
//! `python/loyalty_rules/__init__.py`.

mod arrow_io;
mod errors;
mod pyjson;

/// mimalloc for the extension's own (Rust) allocations, as polars does:
/// converting, evaluating and freeing millions of small values a chunk at
/// a time fragments glibc's allocator (a quarter of the time went to its
/// bin upkeep). Python's objects still use Python's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use loyalty_rules::{Customer, Engine, Event, Outcome, Program, ReplayStats};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::{json, Value as Json};

use arrow_io::{ArrowStream, Mapping, RowError, RowErrorKind};
use errors::Offsets;

/// Run `f`, turning a Rust panic into a Python exception (the core is not
/// supposed to panic; if it does, Python must still see a normal error).
fn guard<T>(f: impl FnOnce() -> T) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        PyRuntimeError::new_err(format!(
            "internal error in loyalty-rules (please report): {msg}"
        ))
    })
}

/// A multiply-rotate hash (the Fx hash) for maps keyed by customer id
/// within one call: ids come from the caller's own table, so resistance to
/// chosen collisions buys nothing here.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        // hashbrown takes its control bits from the top 7 bits: mix them
        let h = self.0;
        (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (h >> 32)
    }
}

type FastHash = BuildHasherDefault<FxHasher>;

/// Phase timings of the table calls, printed to stderr when the
/// environment variable `LOYALTY_RULES_TIMINGS` is set (read once per
/// process): where a replay's time goes, without a profiler.
struct Phases {
    what: &'static str,
    /// None: timings off (no clock is read)
    last: Option<Instant>,
    parts: Vec<(&'static str, Duration)>,
}

impl Phases {
    fn new(what: &'static str) -> Phases {
        static ON: OnceLock<bool> = OnceLock::new();
        let on = *ON.get_or_init(|| std::env::var_os("LOYALTY_RULES_TIMINGS").is_some());
        Phases {
            what,
            last: on.then(Instant::now),
            parts: Vec::new(),
        }
    }

    fn on(&self) -> bool {
        self.last.is_some()
    }

    /// The time since the last lap, as `name`.
    fn lap(&mut self, name: &'static str) {
        if let Some(t) = self.last {
            let now = Instant::now();
            self.add(name, now - t);
            self.last = Some(now);
        }
    }

    /// Add `d` to `name` (time measured by the caller).
    fn add(&mut self, name: &'static str, d: Duration) {
        match self.parts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, x)) => *x += d,
            None => self.parts.push((name, d)),
        }
    }
}

impl Drop for Phases {
    fn drop(&mut self) {
        if self.on() {
            let parts: Vec<String> = self
                .parts
                .iter()
                .map(|(n, d)| format!("{n} {:.3}s", d.as_secs_f64()))
                .collect();
            eprintln!("[loyalty_rules] {}: {}", self.what, parts.join(", "));
        }
    }
}

/// Rows converted at a time by the streaming one-thread table replay:
/// a few MB of events, which stay in the cache until they are replayed.
/// `LOYALTY_RULES_CHUNK` overrides it (for measuring; 0: convert all rows
/// first, as with an engine that has customers).
fn replay_chunk() -> usize {
    static CHUNK: OnceLock<usize> = OnceLock::new();
    *CHUNK.get_or_init(|| {
        std::env::var("LOYALTY_RULES_CHUNK")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(8192)
    })
}

/// Whether the one-thread table replay takes rows in the engine's replay
/// order (`LOYALTY_RULES_GROUPED=0`: row order, to measure one against the
/// other and to test that both give the same table).
fn replay_grouped() -> bool {
    static GROUPED: OnceLock<bool> = OnceLock::new();
    *GROUPED.get_or_init(|| std::env::var("LOYALTY_RULES_GROUPED").map_or(true, |v| v != "0"))
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn row_error(py: Python<'_>, e: RowError) -> PyErr {
    match e.kind {
        RowErrorKind::Core(err) => errors::to_pyerr(py, &err, Some(e.row)),
        RowErrorKind::Column { field, message } => errors::plain(
            py,
            "invalid_event",
            format!("row {}: {message}", e.row),
            json!({"field": field, "row": e.row}),
        ),
    }
}

fn mapping(columns: Option<&Bound<'_, PyDict>>, event_type: Option<String>) -> PyResult<Mapping> {
    let mut rename = HashMap::new();
    if let Some(c) = columns {
        for (k, v) in c.iter() {
            let k: String = k.extract()?;
            let v: Option<String> = v.extract()?;
            rename.insert(k, v);
        }
    }
    Ok(Mapping { rename, event_type })
}

/// Outcome -> Python dict, explanation offsets in code points.
fn outcome_py<'py>(py: Python<'py>, o: &Outcome, offs: &Offsets) -> PyResult<Bound<'py, PyAny>> {
    let mut v = serde_json::to_value(o).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    if let Some(Json::Array(ex)) = v.get_mut("explanation") {
        for x in ex {
            offs.fix(x);
        }
    }
    pyjson::to_py(py, &v)
}

fn stats_py<'py>(py: Python<'py>, s: &ReplayStats) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(s).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    pyjson::to_py(py, &v)
}

fn event_of(
    py: Python<'_>,
    program: &Program,
    obj: &Bound<'_, PyAny>,
    row: Option<usize>,
) -> PyResult<Event> {
    let j = pyjson::to_json(obj, "")?;
    program
        .event_from_value(&j)
        .map_err(|e| errors::to_pyerr(py, &e, row))
}

/// A compiled program (immutable, thread-safe).
#[pyclass(frozen, module = "loyalty_rules._native", name = "Program")]
pub struct PyProgram {
    program: Program,
    offsets: Arc<Offsets>,
}

impl PyProgram {
    fn customer_of(
        &self,
        py: Python<'_>,
        obj: Option<&Bound<'_, PyAny>>,
        id: &str,
    ) -> PyResult<Customer> {
        let j = match obj {
            Some(o) if !o.is_none() => pyjson::to_json(o, "")?,
            _ => json!({ "id": id }),
        };
        self.program
            .customer_from_value(&j)
            .map_err(|e| errors::to_pyerr(py, &e, None))
    }
}

#[pymethods]
impl PyProgram {
    /// Compile a program (the GIL is released while compiling).
    #[new]
    fn new(py: Python<'_>, source: &str) -> PyResult<Self> {
        let src = source.to_string();
        let r = py.detach(move || guard(|| Program::compile(&src)))?;
        match r {
            Ok(program) => Ok(PyProgram {
                offsets: Arc::new(Offsets::new(program.source())),
                program,
            }),
            Err(e) => Err(errors::to_pyerr_src(py, &e, source)),
        }
    }

    /// The number of decimals of the program's points (0 for whole
    /// points): the results tables' points columns are int64 when 0,
    /// decimal128(38, N) otherwise.
    #[getter]
    fn points_decimals(&self) -> u32 {
        self.program.points_decimals()
    }

    #[getter]
    fn source(&self) -> &str {
        self.program.source()
    }

    #[getter]
    fn name(&self) -> Option<&str> {
        self.program.name()
    }

    #[getter]
    fn rule_names(&self) -> Vec<String> {
        self.program.rule_names().map(str::to_string).collect()
    }

    /// Evaluate one event (a dict) for a customer (a dict; default
    /// `{"id": event["customer"]}`). Returns the outcome as a dict.
    #[pyo3(signature = (event, customer=None, explain=false))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        event: &Bound<'py, PyAny>,
        customer: Option<&Bound<'py, PyAny>>,
        explain: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ev = event_of(py, &self.program, event, None)?;
        let c = self.customer_of(py, customer, ev.customer())?;
        let o = guard(|| {
            if explain {
                self.program.explain(&ev, &c)
            } else {
                self.program.evaluate(&ev, &c)
            }
        })?;
        outcome_py(py, &o, &self.offsets)
    }

    /// The names of the rules whose dates and condition hold for `event`
    /// (a dict) and `customer` (a dict; default `{"id": event["customer"]}`),
    /// in evaluation order, without effects, groups or limits (campaign
    /// eligibility).
    #[pyo3(signature = (event, customer=None))]
    fn matching_rules(
        &self,
        py: Python<'_>,
        event: &Bound<'_, PyAny>,
        customer: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<String>> {
        let ev = event_of(py, &self.program, event, None)?;
        let c = self.customer_of(py, customer, ev.customer())?;
        guard(|| {
            self.program
                .matching_rules(&ev, &c)
                .map(str::to_string)
                .collect()
        })
    }

    /// Check an event dict against the program's schema (raises EventError).
    fn check_event(&self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<()> {
        event_of(py, &self.program, event, None).map(|_| ())
    }

    /// Evaluate every row of an Arrow-stream table, each against its
    /// customer's profile (`customers`: id -> profile dict; default
    /// `{"id": id}`). No state: see `Engine.replay_table` for that.
    #[pyo3(signature = (data, customers=None, columns=None, event_type=None, explain=false, detail=false, threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate_table(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        customers: Option<&Bound<'_, PyDict>>,
        columns: Option<&Bound<'_, PyDict>>,
        event_type: Option<String>,
        explain: bool,
        detail: bool,
        threads: Option<usize>,
    ) -> PyResult<ArrowStream> {
        let map = mapping(columns, event_type)?;
        let mut profiles: HashMap<String, Customer> = HashMap::new();
        if let Some(cs) = customers {
            for (k, v) in cs.iter() {
                let id: String = k.extract()?;
                let c = self.customer_of(py, Some(&v), &id)?;
                profiles.insert(id, c);
            }
        }
        let (batches, _schema) = arrow_io::import_stream(data)?;
        let threads = threads.unwrap_or_else(default_threads).max(1);
        let program = &self.program;
        let offs = &self.offsets;
        let r = py.detach(|| {
            guard(|| -> Result<_, RowError> {
                // Rows are converted, evaluated and added to the results a
                // chunk at a time, so memory holds one chunk's events and
                // outcomes, not the whole table's.
                const CHUNK: usize = 1 << 16;
                let total: usize = batches.iter().map(|b| b.num_rows()).sum();
                // each thread's customers without a profile, kept across chunks
                let mut caches: Vec<HashMap<String, Customer, FastHash>> =
                    (0..threads).map(|_| HashMap::default()).collect();
                let eval = |evs: &[Event],
                            local: &mut HashMap<String, Customer, FastHash>|
                 -> Result<Vec<Outcome>, loyalty_rules::Error> {
                    let mut out = Vec::with_capacity(evs.len());
                    for ev in evs {
                        let id = ev.customer();
                        let c = match profiles.get(id) {
                            Some(c) => c,
                            None => match local.get(id) {
                                Some(c) => c,
                                None => {
                                    let c = program.customer_from_value(&json!({ "id": id }))?;
                                    local.insert(id.to_string(), c);
                                    &local[id]
                                }
                            },
                        };
                        out.push(if explain {
                            program.explain(ev, c)
                        } else {
                            program.evaluate(ev, c)
                        });
                    }
                    Ok(out)
                };
                let mut rb = arrow_io::ResultsBuilder::new(program, detail, offs, total);
                let mut chunks =
                    arrow_io::EventChunks::new(program, &batches, &map, threads, CHUNK);
                let mut events: Vec<Event> = Vec::new();
                while chunks.next_chunk(&mut events) {
                    let n = events.len();
                    let parts: Vec<Result<Vec<Outcome>, loyalty_rules::Error>> = if threads <= 1
                        || n < 8192
                    {
                        vec![eval(&events, &mut caches[0])]
                    } else {
                        let eval = &eval;
                        std::thread::scope(|s| {
                            let hs: Vec<_> = events
                                .chunks(n.div_ceil(threads))
                                .zip(caches.iter_mut())
                                .map(|(c, local)| s.spawn(move || eval(c, local)))
                                .collect();
                            hs.into_iter()
                                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                                .collect()
                        })
                    };
                    for p in parts {
                        let outs = p.map_err(|e| RowError {
                            row: 0,
                            kind: RowErrorKind::Core(e),
                        })?;
                        for o in &outs {
                            rb.push(o);
                        }
                    }
                    events.clear();
                }
                if let Some(e) = chunks.error {
                    return Err(e);
                }
                let times = chunks.times;
                let rows: Vec<i64> = (0..times.len() as i64).collect();
                let b = rb.finish(times, rows).map_err(|m| RowError {
                    row: 0,
                    kind: RowErrorKind::Column {
                        field: String::new(),
                        message: m,
                    },
                })?;
                Ok(b)
            })
        })?;
        match r {
            Ok(b) => Ok(arrow_io::export(b)),
            Err(e) => Err(row_error(py, e)),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<Program {} ({} rules)>",
            self.program
                .name()
                .map_or("(unnamed)".to_string(), |n| format!("{n:?}")),
            self.program.rule_names().count()
        )
    }
}

/// The stateful engine: customers' balances, history, limits, tiers.
#[pyclass(frozen, module = "loyalty_rules._native", name = "Engine")]
pub struct PyEngine {
    inner: Mutex<Held>,
    program: Program,
    offsets: Arc<Offsets>,
}

/// Engines with more customers than this are freed on a thread of their
/// own when dropped.
const FREE_APART: usize = 10_000;

impl Drop for PyEngine {
    /// Freeing an engine of many customers (every state's lots, records
    /// and ids) takes a while: 0.1-0.3 s for 50,000 customers after a
    /// million events. Python drops the engine with the GIL held (when a
    /// notebook re-runs `r = lr.replay(...)`, say), so a large one is freed
    /// on a thread of its own instead.
    fn drop(&mut self) {
        let Ok(held) = self.inner.get_mut() else {
            return;
        };
        if held.engine.customer_ids().len() <= FREE_APART {
            return;
        }
        let engine = std::mem::replace(&mut held.engine, Engine::new(self.program.clone()));
        // (if no thread can be made, the closure and the engine are
        // dropped here)
        let _ = std::thread::Builder::new()
            .name("loyalty-rules-free".into())
            .spawn(move || drop(engine));
    }
}

/// The engine behind a `PyEngine`'s lock, and whether it is known to have
/// no customers. Every mutable use goes through `DerefMut`, which clears
/// `empty`, so the flag can only err on the safe side (false when the
/// engine may have none); `replay_table` streams rows on one thread only
/// while it holds, since restoring such an engine after a bad row is cheap.
struct Held {
    engine: Engine,
    /// Made without customers, not changed since (or restored to that).
    empty: bool,
}

impl std::ops::Deref for Held {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl std::ops::DerefMut for Held {
    fn deref_mut(&mut self) -> &mut Engine {
        self.empty = false;
        &mut self.engine
    }
}

fn lock(m: &Mutex<Held>) -> PyResult<MutexGuard<'_, Held>> {
    m.lock()
        .map_err(|_| PyRuntimeError::new_err("engine unusable after an internal error"))
}

fn snapshot_of(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<loyalty_rules::Snapshot> {
    let j = pyjson::to_json(obj, "snapshot")?;
    serde_json::from_value(j).map_err(|e| {
        errors::plain(
            py,
            "invalid_snapshot",
            format!("not a valid snapshot: {e}"),
            json!({}),
        )
    })
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (program, snapshot=None))]
    fn new(
        py: Python<'_>,
        program: &PyProgram,
        snapshot: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let p = program.program.clone();
        let (engine, empty) = match snapshot {
            Some(s) if !s.is_none() => {
                let snap = snapshot_of(py, s)?;
                let empty = snap.customers.is_empty();
                let p2 = p.clone();
                let e = py
                    .detach(move || guard(|| Engine::from_snapshot(p2, snap)))?
                    .map_err(|e| errors::to_pyerr(py, &e, None))?;
                (e, empty)
            }
            _ => (Engine::new(p.clone()), true),
        };
        Ok(PyEngine {
            inner: Mutex::new(Held { engine, empty }),
            program: p,
            offsets: program.offsets.clone(),
        })
    }

    #[getter]
    fn program(&self) -> PyProgram {
        PyProgram {
            program: self.program.clone(),
            offsets: self.offsets.clone(),
        }
    }

    /// Create or update a customer's profile (a dict).
    fn set_customer(&self, py: Python<'_>, customer: &Bound<'_, PyAny>) -> PyResult<()> {
        let j = pyjson::to_json(customer, "")?;
        let r = py.detach(|| -> PyResult<Result<(), loyalty_rules::Error>> {
            let mut e = lock(&self.inner)?;
            guard(|| e.set_customer(&j))
        })?;
        r.map_err(|e| errors::to_pyerr(py, &e, None))
    }

    /// One customer's state as a dict, or None.
    fn customer<'py>(&self, py: Python<'py>, id: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let v =
            py.detach(|| lock(&self.inner).map(|e| e.customer(id).map(serde_json::to_value)))?;
        match v {
            Some(Ok(v)) => Ok(Some(pyjson::to_py(py, &v)?)),
            Some(Err(e)) => Err(PyRuntimeError::new_err(e.to_string())),
            None => Ok(None),
        }
    }

    fn customer_ids(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        py.detach(|| {
            lock(&self.inner).map(|e| e.customer_ids().into_iter().map(str::to_string).collect())
        })
    }

    /// Apply one event; returns the outcome dict (with `status`).
    fn process<'py>(
        &self,
        py: Python<'py>,
        event: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ev = event_of(py, &self.program, event, None)?;
        let o = py.detach(|| lock(&self.inner).map(|mut e| guard(|| e.process(&ev))))??;
        outcome_py(py, &o, &self.offsets)
    }

    /// What `process` would do, without changing anything (explained).
    fn preview<'py>(
        &self,
        py: Python<'py>,
        event: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ev = event_of(py, &self.program, event, None)?;
        let o = py.detach(|| lock(&self.inner).map(|e| guard(|| e.preview(&ev))))??;
        outcome_py(py, &o, &self.offsets)
    }

    /// Move time forward (RFC 3339 text or datetime); returns ledger entries.
    fn advance_to<'py>(
        &self,
        py: Python<'py>,
        time: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = match pyjson::to_json(time, "time")? {
            Json::String(s) => chrono::DateTime::parse_from_rfc3339(&s)
                .map_err(|e| {
                    PyValueError::new_err(format!("time must be RFC 3339 with an offset: {e}"))
                })?
                .with_timezone(&chrono::Utc),
            _ => return Err(PyTypeError::new_err("time must be a str or datetime")),
        };
        let l = py.detach(|| lock(&self.inner).map(|mut e| guard(|| e.advance_to(t))))??;
        let v = serde_json::to_value(l).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        pyjson::to_py(py, &v)
    }

    /// Replay a list of event dicts (in order; parallel across customers).
    /// Returns (outcomes, stats).
    #[pyo3(signature = (events, threads=None))]
    fn replay<'py>(
        &self,
        py: Python<'py>,
        events: &Bound<'py, PyAny>,
        threads: Option<usize>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyAny>)> {
        let mut evs = Vec::new();
        for (i, e) in events.try_iter()?.enumerate() {
            evs.push(event_of(py, &self.program, &e?, Some(i))?);
        }
        let threads = threads.unwrap_or_else(default_threads).max(1);
        let (outs, stats) = py.detach(|| {
            lock(&self.inner).map(|mut e| guard(|| e.replay_parallel(evs, threads)))
        })??;
        let l = PyList::empty(py);
        for o in &outs {
            l.append(outcome_py(py, o, &self.offsets)?)?;
        }
        Ok((l, stats_py(py, &stats)?))
    }

    /// Replay every row of an Arrow-stream table (one row per event) with
    /// the engine's state. Returns (results stream, stats).
    #[pyo3(signature = (data, columns=None, event_type=None, threads=None, detail=false))]
    fn replay_table<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        columns: Option<&Bound<'py, PyDict>>,
        event_type: Option<String>,
        threads: Option<usize>,
        detail: bool,
    ) -> PyResult<(ArrowStream, Bound<'py, PyAny>)> {
        let mut ph = Phases::new("replay_table");
        let map = mapping(columns, event_type)?;
        let (batches, schema) = arrow_io::import_stream(data)?;
        ph.lap("import");
        let threads = threads.unwrap_or_else(default_threads).max(1);
        let program = &self.program;
        let offs = &self.offsets;
        let inner = &self.inner;
        let r = py.detach(|| {
            guard(|| -> Result<Result<_, RowError>, String> {
                let mut held = inner
                    .lock()
                    .map_err(|_| "engine unusable after an internal error")?;
                let total: usize = batches.iter().map(|b| b.num_rows()).sum();
                let mut rb = arrow_io::ResultsBuilder::new(program, detail, offs, total);
                // (`LOYALTY_RULES_CHUNK=0` converts all rows first here
                // too, to measure one way against the other)
                let (stats, times, order) = if threads <= 2 && held.empty && replay_chunk() > 0 {
                    // One or two threads, an engine without customers:
                    // rows are converted a chunk at a time as the replay
                    // reaches them (with two threads, on the second), each row's result made as its event is
                    // replayed (memory holds one chunk's events, not the
                    // table's, and they are still in the cache when used).
                    // A row that does not convert is found only when its
                    // chunk is reached, after the rows before it were
                    // applied; as when all rows were converted first, the
                    // call must then fail leaving the engine unchanged, so
                    // it is restored from a snapshot taken before. Without
                    // customers that snapshot is only the clock and the
                    // campaign counters; an engine with customers (where
                    // it would copy every state on every call) converts
                    // all rows first instead, below.
                    let backup = held.engine.snapshot();
                    let timed = ph.on();
                    let mut events =
                        arrow_io::EventChunks::new(program, &batches, &map, 1, replay_chunk())
                            .timed(timed);
                    // Rows are converted and replayed in the engine's
                    // replay order where it has one (each customer's rows
                    // together: the same results as row order, and the
                    // customer's state and events stay in the cache; about
                    // twice as fast on a large table in time order), and
                    // their results put back in row order at the end.
                    let mut order = None;
                    if replay_grouped() {
                        if let Some((whole, o)) =
                            arrow_io::grouped(&held.engine, &schema, &batches, &map)?
                        {
                            events = events.in_order(whole, o.clone());
                            order = Some(o);
                        }
                    }
                    ph.lap("replay order");
                    let mut rows_t = Duration::ZERO;
                    let each = |o: &Outcome| {
                        if timed {
                            let t = Instant::now();
                            rb.push(o);
                            rows_t += t.elapsed();
                        } else {
                            rb.push(o)
                        }
                    };
                    // Two threads: the next chunk is converted on the
                    // second while this one replays (measured faster here
                    // than partitioning the replay over two threads, which
                    // converts every row first; with more threads the
                    // partitioned replay below is used).
                    let stats = if threads == 2 {
                        arrow_io::replay_pipelined(&mut held, &mut events, each)
                    } else {
                        held.replay_with(&mut events, each)
                    };
                    ph.lap("convert+replay+rows");
                    ph.add(
                        "(of which convert)",
                        events.convert_time.unwrap_or_default(),
                    );
                    ph.add("(of which rows)", rows_t);
                    if let Some(e) = events.error {
                        held.engine = Engine::from_snapshot(program.clone(), backup)
                            .map_err(|e| format!("restoring the engine: {e}"))?;
                        held.empty = true;
                        if order.is_none() {
                            return Ok(Err(e));
                        }
                        return Ok(Err(arrow_io::first_bad_row(program, &batches, &map, 1, e)));
                    }
                    (stats, events.times, order)
                } else {
                    // Every row converted before any is applied: a bad row
                    // fails the call with the engine unchanged. With several
                    // threads, in the engine's replay order where it has
                    // one: each customer's events then lie together in
                    // memory, as each partition replays them (grouped), and
                    // the results are put back in row order at the end.
                    let grouped = if threads > 1 && replay_grouped() {
                        arrow_io::grouped(&held.engine, &schema, &batches, &map)?
                    } else {
                        None
                    };
                    ph.lap("replay order");
                    let mut events = Vec::new();
                    let converted = match &grouped {
                        Some((whole, o)) => {
                            let idx = arrow_array::UInt32Array::from(o.clone());
                            let rows = arrow_select::take::take_record_batch(whole, &idx)
                                .map_err(|e| e.to_string())?;
                            arrow_io::to_events(program, &[rows], &map, threads, 0, &mut events)
                        }
                        None => {
                            arrow_io::to_events(program, &batches, &map, threads, 0, &mut events)
                        }
                    };
                    if let Err(e) = converted {
                        if grouped.is_none() {
                            return Ok(Err(e));
                        }
                        events.clear();
                        return Ok(Err(arrow_io::first_bad_row(
                            program, &batches, &map, threads, e,
                        )));
                    }
                    ph.lap("convert");
                    let times: Vec<i64> =
                        events.iter().map(|e| e.time().timestamp_micros()).collect();
                    let stats = if threads <= 1 {
                        // in row order, each row made as its event is
                        // replayed: measured no slower here than the grouped
                        // replay plus a second pass over the rows
                        let s = held.replay_with(events, |o| rb.push(o));
                        ph.lap("replay+rows");
                        s
                    } else {
                        // partitioned (each referral group's events together,
                        // which keeps their states in the cache); each
                        // outcome becomes its row on the replay's threads,
                        // so no outcome is kept to the end
                        let (rows, stats) = {
                            let mk = rb.maker();
                            held.replay_parallel_map(events, threads, |o| mk.row(o))
                        };
                        ph.lap("replay+rows");
                        for r in rows {
                            rb.push_row(r);
                        }
                        ph.lap("push rows");
                        stats
                    };
                    (stats, times, grouped.map(|(_, o)| o))
                };
                drop(held);
                let b = match order {
                    None => rb.finish(times, (0..total as i64).collect())?,
                    Some(order) => {
                        // results were made in `order`: back to row order
                        let rows: Vec<i64> = order.iter().map(|&k| i64::from(k)).collect();
                        let b = rb.finish(times, rows)?;
                        let mut back = vec![0u32; order.len()];
                        for (j, &k) in order.iter().enumerate() {
                            if let Some(slot) = back.get_mut(k as usize) {
                                *slot = j as u32;
                            }
                        }
                        arrow_select::take::take_record_batch(
                            &b,
                            &arrow_array::UInt32Array::from(back),
                        )
                        .map_err(|e| e.to_string())?
                    }
                };
                ph.lap("finish table");
                Ok(Ok((b, stats)))
            })
        })?;
        let r = match r {
            Ok(Ok((b, stats))) => Ok((arrow_io::export(b), stats_py(py, &stats)?)),
            Ok(Err(e)) => Err(row_error(py, e)),
            Err(m) => Err(PyRuntimeError::new_err(m)),
        };
        ph.lap("export");
        r
    }

    /// Everything, as a dict (customers sorted by id).
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| lock(&self.inner).map(|e| serde_json::to_value(e.snapshot())))?
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        pyjson::to_py(py, &v)
    }

    /// Customer states as an Arrow stream: `customer`, `state` (JSON text),
    /// serialized on `threads` threads (default: all cores).
    #[pyo3(signature = (threads=None))]
    fn states_table(&self, py: Python<'_>, threads: Option<usize>) -> PyResult<ArrowStream> {
        let mut ph = Phases::new("states_table");
        let threads = threads.unwrap_or_else(default_threads).max(1);
        let batches = py
            .detach(|| {
                lock(&self.inner).map(|e| {
                    // the states themselves, in id order (as a snapshot
                    // lists them), without copying them into a snapshot
                    let states: Vec<_> = e
                        .customer_ids()
                        .into_iter()
                        .filter_map(|id| e.customer(id))
                        .collect();
                    arrow_io::states_batches(&states, threads)
                })
            })?
            .map_err(PyRuntimeError::new_err)?;
        ph.lap("states+json");
        let schema = batches
            .first()
            .map(|b| b.schema())
            .ok_or_else(|| PyRuntimeError::new_err("no states batch"))?;
        Ok(arrow_io::export_all(schema, batches))
    }

    /// Load customer states (replacing those with the same id): a list of
    /// state dicts, or an Arrow-stream table with a `state` JSON column
    /// (parsed on `threads` threads; default: all cores).
    #[pyo3(signature = (states, threads=None))]
    fn load_states(
        &self,
        py: Python<'_>,
        states: &Bound<'_, PyAny>,
        threads: Option<usize>,
    ) -> PyResult<usize> {
        let threads = threads.unwrap_or_else(default_threads).max(1);
        let list: Vec<loyalty_rules::CustomerState> = if states.hasattr("__arrow_c_stream__")? {
            let (batches, _) = arrow_io::import_stream(states)?;
            py.detach(|| arrow_io::states_from_batches(&batches, threads))
                .map_err(|m| errors::plain(py, "invalid_snapshot", m, json!({})))?
        } else {
            let j = pyjson::to_json(states, "states")?;
            serde_json::from_value(j).map_err(|e| {
                errors::plain(
                    py,
                    "invalid_snapshot",
                    format!("not a list of customer states: {e}"),
                    json!({}),
                )
            })?
        };
        let n = list.len();
        let program = self.program.clone();
        let r = py.detach(|| -> PyResult<Result<(), loyalty_rules::Error>> {
            let mut eng = lock(&self.inner)?;
            guard(|| {
                let mut snap = eng.snapshot();
                let mut by_id: std::collections::BTreeMap<String, loyalty_rules::CustomerState> =
                    snap.customers
                        .drain(..)
                        .map(|c| (c.id.clone(), c))
                        .collect();
                for s in list {
                    by_id.insert(s.id.clone(), s);
                }
                snap.customers = by_id.into_values().collect();
                Engine::from_snapshot(program, snap).map(|e| **eng = e)
            })
        })?;
        r.map_err(|e| errors::to_pyerr(py, &e, None))?;
        Ok(n)
    }
}

/// Every diagnostic of `source` (list of dicts; offsets in code points).
#[pyfunction]
fn check<'py>(py: Python<'py>, source: &str) -> PyResult<Bound<'py, PyAny>> {
    let src = source.to_string();
    let d = py.detach(move || guard(|| loyalty_rules::check(&src)))?;
    pyjson::to_py(py, &errors::diagnostics_json(&d, source))
}

/// The canonical form of `source` (raises ProgramError if it does not parse).
#[pyfunction]
fn format(py: Python<'_>, source: &str) -> PyResult<String> {
    let src = source.to_string();
    py.detach(move || guard(|| loyalty_rules::format(&src)))?
        .map_err(|e| errors::to_pyerr_src(py, &e, source))
}

/// Completions at code-point offset `offset`.
#[pyfunction]
fn completions<'py>(py: Python<'py>, source: &str, offset: usize) -> PyResult<Bound<'py, PyAny>> {
    let b = errors::char_to_byte(source, offset);
    let c = guard(|| loyalty_rules::completions(source, b))?;
    let v = serde_json::to_value(c).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    pyjson::to_py(py, &v)
}

/// Render diagnostics (dicts from `check`) as the CLI prints them.
#[pyfunction]
fn render(source: &str) -> PyResult<String> {
    let d = guard(|| loyalty_rules::check(source))?;
    Ok(d.iter().map(|x| x.render(source)).collect())
}

#[pymodule]
mod _native {
    #[pymodule_export]
    use super::{check, completions, format, render, ArrowStream, PyEngine, PyProgram};

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
