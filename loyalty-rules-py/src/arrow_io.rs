//! Columnar input and output through the Arrow C stream interface
//! (PyCapsule `arrow_array_stream`), so pyarrow Tables, polars and pandas
//! DataFrames come in without a copy on the Python side.
//!
//! Rows become core events through the core's `EventBuilder`: each column
//! is decoded once per batch into typed access (decimals, timestamps, text,
//! numbers straight from the Arrow buffers), and the builder does all the
//! checking exactly as `Program::event_from_value` would on the row's JSON
//! object, so batch input can never accept what a single event would refuse.
//! Nested values (lists, structs) go to the builder as JSON; a `type` column
//! that is not text sends its rows through the JSON object path.

use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::{Arc, Mutex};

use arrow_array::builder::{ArrayBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::types::*;
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, BooleanArray, Int64Array, LargeStringArray,
    PrimitiveArray, RecordBatch, RecordBatchIterator, RecordBatchReader, StringArray,
    StringViewArray, TimestampMicrosecondArray,
};
use arrow_buffer::{ArrowNativeType, BooleanBufferBuilder, NullBuffer};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
use loyalty_rules::{Effect, Engine, Event, EventBuilder, Outcome, Program};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use rust_decimal::Decimal;
use serde_json::{Map, Number, Value as Json};

const STREAM: &CStr = c"arrow_array_stream";

/// Read every batch of an object with `__arrow_c_stream__`. The capsule is
/// taken on the calling thread (attached); reading happens detached.
pub fn import_stream(obj: &Bound<'_, PyAny>) -> PyResult<(Vec<RecordBatch>, Arc<Schema>)> {
    let py = obj.py();
    if !obj.hasattr("__arrow_c_stream__")? {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "expected a table with the Arrow PyCapsule interface (pyarrow.Table, polars.DataFrame, pandas.DataFrame), got {}",
            obj.get_type().name()?
        )));
    }
    let capsule = obj.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.cast::<PyCapsule>()?;
    let ptr = capsule.pointer_checked(Some(STREAM))?;
    // SAFETY: the capsule is named "arrow_array_stream", so it points to an
    // FFI_ArrowArrayStream (Arrow PyCapsule interface); `from_raw` moves the
    // stream out and marks the capsule's copy released, which its destructor
    // then ignores.
    let reader = unsafe { RecordBatchStreamReader::from_raw(ptr.cast().as_ptr()) }
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("Arrow stream: {e}")))?;
    let schema = reader.schema();
    // Producers implemented in Python take the GIL themselves in get_next.
    let batches = py
        .detach(move || reader.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("Arrow stream: {e}")))?;
    Ok((batches, schema))
}

/// A stream handed to Python: `__arrow_c_stream__` gives it away once.
#[pyclass(frozen, module = "loyalty_rules._native")]
pub struct ArrowStream {
    stream: Mutex<Option<FFI_ArrowArrayStream>>,
    schema: Arc<Schema>,
}

#[pymethods]
impl ArrowStream {
    /// The Arrow PyCapsule stream protocol.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema; // we only offer our own schema
        let s = self
            .stream
            .lock()
            .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("stream lock poisoned"))?
            .take()
            .ok_or_else(|| {
                pyo3::exceptions::PyRuntimeError::new_err("this Arrow stream was already consumed")
            })?;
        PyCapsule::new_with_value(py, s, STREAM)
    }

    /// Column names.
    #[getter]
    fn column_names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }
}

pub fn export(batch: RecordBatch) -> ArrowStream {
    let schema = batch.schema();
    export_all(schema, vec![batch])
}

/// Several batches of one schema as an Arrow stream (a table of as many
/// chunks).
pub fn export_all(schema: Arc<Schema>, batches: Vec<RecordBatch>) -> ArrowStream {
    let it = RecordBatchIterator::new(batches.into_iter().map(Ok), schema.clone());
    ArrowStream {
        stream: Mutex::new(Some(FFI_ArrowArrayStream::new(Box::new(it)))),
        schema,
    }
}

/// How columns map to event fields.
pub struct Mapping {
    /// column name -> field name; `None` drops the column
    pub rename: HashMap<String, Option<String>>,
    /// the event type when there is no `type` column
    pub event_type: Option<String>,
}

/// A row that did not convert: message, field, row.
pub struct RowError {
    pub row: usize,
    pub kind: RowErrorKind,
}

pub enum RowErrorKind {
    Core(loyalty_rules::Error),
    Column { field: String, message: String },
}

struct Col {
    name: String,
    array: ArrayRef,
}

/// Convert all rows to events, on `threads` threads, appended to `out` in
/// row order; the first row is numbered `first_row` in errors.
pub fn to_events(
    program: &Program,
    batches: &[RecordBatch],
    mapping: &Mapping,
    threads: usize,
    first_row: usize,
    out: &mut Vec<Event>,
) -> Result<(), RowError> {
    out.reserve(batches.iter().map(|b| b.num_rows()).sum());
    let mut base = first_row;
    for b in batches {
        let schema = b.schema();
        let mut cols = Vec::new();
        for (f, a) in schema.fields().iter().zip(b.columns()) {
            let name = match mapping.rename.get(f.name()) {
                Some(None) => continue,
                Some(Some(n)) => n.clone(),
                None => f.name().clone(),
            };
            cols.push(Col {
                name,
                array: a.clone(),
            });
        }
        let et = if cols.iter().any(|c| c.name == "type") {
            None
        } else {
            mapping.event_type.clone()
        };
        let typed = Typed::new(program, &cols, et.as_deref());
        let n = b.num_rows();
        let threads = threads.clamp(1, 64).min(n / 4096 + 1);
        let run = |lo: usize, hi: usize, v: &mut Vec<Event>| -> Result<(), RowError> {
            match &typed {
                Some(t) => {
                    let mut rb = t.builder(program);
                    for i in lo..hi {
                        v.push(t.row(&mut rb, &cols, i, base)?);
                    }
                }
                None => {
                    for i in lo..hi {
                        v.push(row_event(program, &cols, et.as_deref(), i, base)?);
                    }
                }
            }
            Ok(())
        };
        if threads <= 1 {
            run(0, n, out)?;
        } else {
            let chunk = n.div_ceil(threads);
            let parts: Vec<Result<Vec<Event>, RowError>> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..threads)
                    .map(|t| {
                        let run = &run;
                        s.spawn(move || {
                            let lo = t * chunk;
                            let hi = ((t + 1) * chunk).min(n);
                            let mut v = Vec::with_capacity(hi.saturating_sub(lo));
                            run(lo, hi, &mut v)?;
                            Ok(v)
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(RowError {
                                row: base,
                                kind: RowErrorKind::Column {
                                    field: String::new(),
                                    message: "internal error converting rows".into(),
                                },
                            })
                        })
                    })
                    .collect()
            });
            for p in parts {
                out.extend(p?);
            }
        }
        base += n;
    }
    Ok(())
}

/// The rows of `batches` as events, converted `chunk` rows at a time as
/// they are taken: memory holds one chunk's events (a few MB), not the
/// table's (about 450 bytes an event with its values), and each event is
/// used while its memory is still in the cache. A row that does not
/// convert ends the iteration, with its error in `error`: the events of
/// the chunks before its own were given out, none of its own chunk.
pub struct EventChunks<'a> {
    /// Rows taken in this order (positions in `ordered`, all batches in
    /// one), instead of row order: see `in_order`.
    order: Option<(RecordBatch, Vec<u32>)>,
    program: &'a Program,
    batches: &'a [RecordBatch],
    mapping: &'a Mapping,
    threads: usize,
    chunk: usize,
    /// the next rows to convert: batch, offset in it, row number
    batch: usize,
    offset: usize,
    row: usize,
    /// the chunk being given out, last event first (so each is popped in
    /// row order and the vector is reused from chunk to chunk)
    current: Vec<Event>,
    /// Each event's time (UTC microseconds), in row order, as it is given.
    pub times: Vec<i64>,
    /// The first row that did not convert.
    pub error: Option<RowError>,
    /// Time spent converting, when measured (see `timed`).
    pub convert_time: Option<std::time::Duration>,
}

impl<'a> EventChunks<'a> {
    /// Conversion of a chunk runs on `threads` threads.
    pub fn new(
        program: &'a Program,
        batches: &'a [RecordBatch],
        mapping: &'a Mapping,
        threads: usize,
        chunk: usize,
    ) -> EventChunks<'a> {
        EventChunks {
            order: None,
            program,
            batches,
            mapping,
            threads,
            chunk: chunk.max(1),
            batch: 0,
            offset: 0,
            row: 0,
            current: Vec::new(),
            times: Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum()),
            error: None,
            convert_time: None,
        }
    }

    /// Measure the time spent converting (in `convert_time`) if `on`.
    pub fn timed(mut self, on: bool) -> Self {
        self.convert_time = on.then_some(std::time::Duration::ZERO);
        self
    }

    /// Take the rows of `whole` (the table's batches as one) in `order`
    /// (row numbers), a chunk at a time; `times` are then in that order,
    /// and an error's row is its position in that order.
    pub fn in_order(mut self, whole: RecordBatch, order: Vec<u32>) -> Self {
        self.order = Some((whole, order));
        self
    }

    /// Convert the next chunk, appending its events to `out`; false at the
    /// end, or after an error.
    pub fn next_chunk(&mut self, out: &mut Vec<Event>) -> bool {
        if let Some((whole, order)) = &self.order {
            if self.error.is_some() || self.row >= order.len() {
                return false;
            }
            let len = self.chunk.min(order.len() - self.row);
            let idx = arrow_array::UInt32Array::from(order[self.row..self.row + len].to_vec());
            let start = out.len();
            let t = self.convert_time.map(|_| std::time::Instant::now());
            let r = match arrow_select::take::take_record_batch(whole, &idx) {
                Ok(part) => to_events(
                    self.program,
                    &[part],
                    self.mapping,
                    self.threads,
                    self.row,
                    out,
                ),
                Err(e) => Err(RowError {
                    row: self.row,
                    kind: RowErrorKind::Column {
                        field: String::new(),
                        message: format!("taking rows: {e}"),
                    },
                }),
            };
            if let (Some(d), Some(t)) = (&mut self.convert_time, t) {
                *d += t.elapsed();
            }
            return match r {
                Ok(()) => {
                    self.row += len;
                    self.times
                        .extend(out[start..].iter().map(|e| e.time().timestamp_micros()));
                    true
                }
                Err(e) => {
                    self.error = Some(e);
                    false
                }
            };
        }
        while self.error.is_none() {
            let Some(b) = self.batches.get(self.batch) else {
                return false;
            };
            if self.offset >= b.num_rows() {
                self.batch += 1;
                self.offset = 0;
                continue;
            }
            let len = self.chunk.min(b.num_rows() - self.offset);
            let part = [b.slice(self.offset, len)];
            self.offset += len;
            let start = out.len();
            let t = self.convert_time.map(|_| std::time::Instant::now());
            let r = to_events(
                self.program,
                &part,
                self.mapping,
                self.threads,
                self.row,
                out,
            );
            if let (Some(d), Some(t)) = (&mut self.convert_time, t) {
                *d += t.elapsed();
            }
            match r {
                Ok(()) => {
                    self.row += len;
                    self.times
                        .extend(out[start..].iter().map(|e| e.time().timestamp_micros()));
                    return true;
                }
                Err(e) => self.error = Some(e),
            }
        }
        false
    }
}

impl Iterator for EventChunks<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.current.is_empty() {
            let mut v = std::mem::take(&mut self.current);
            if !self.next_chunk(&mut v) {
                // (a failed chunk's rows before the bad one are not given)
                v.clear();
                self.current = v;
                return None;
            }
            v.reverse();
            self.current = v;
        }
        self.current.pop()
    }
}

/// Replay `chunks` into `engine` with the conversion on a second thread
/// (`Engine::replay_made`: the next chunk is converted while the engine
/// replays this one, and replayed events are freed on the converting
/// thread). The same events in the same order as replaying `chunks`
/// directly; `each` runs on this thread.
pub fn replay_pipelined(
    engine: &mut Engine,
    chunks: &mut EventChunks<'_>,
    each: impl FnMut(&Outcome),
) -> loyalty_rules::ReplayStats {
    engine.replay_made(
        |v| {
            v.reserve(chunks.chunk);
            chunks.next_chunk(v)
        },
        each,
    )
}

/// The order in which the engine may replay the rows of `whole` with the
/// results of row order, each customer's rows together
/// (`Engine::replay_order`), from the columns mapped to `customer`,
/// `referred_by` and `referee`; None where row order is needed, or the
/// customer column is not text.
pub fn replay_order(engine: &Engine, whole: &RecordBatch, mapping: &Mapping) -> Option<Vec<u32>> {
    let schema = whole.schema();
    let col = |field: &str| {
        schema
            .fields()
            .iter()
            .position(|f| match mapping.rename.get(f.name()) {
                Some(to) => to.as_deref() == Some(field),
                None => f.name() == field,
            })
            .map(|i| whole.column(i).as_ref())
    };
    let customer = col("customer")?;
    let acc = Acc::new(customer);
    if !acc.is_text() {
        return None;
    }
    let customers: Vec<&str> = (0..whole.num_rows())
        .map(|i| {
            if customer.is_null(i) {
                ""
            } else {
                acc.text(i).unwrap_or("")
            }
        })
        .collect();
    let links: Vec<(&dyn Array, Acc<'_>)> = ["referred_by", "referee"]
        .iter()
        .filter_map(|f| col(f))
        .map(|a| (a, Acc::new(a)))
        .filter(|(_, acc)| acc.is_text())
        .collect();
    fn link<'b>((a, acc): &(&'b dyn Array, Acc<'b>), k: usize) -> Option<&'b str> {
        if a.is_null(k) {
            None
        } else {
            acc.text(k)
        }
    }
    engine.replay_order(&customers, |k| {
        [
            links.first().and_then(|l| link(l, k)),
            links.get(1).and_then(|l| link(l, k)),
        ]
    })
}

/// The table's rows as one batch, with the engine's replay order for them
/// (`replay_order`); None where there is none (or fewer than two rows).
pub fn grouped(
    engine: &Engine,
    schema: &Arc<Schema>,
    batches: &[RecordBatch],
    mapping: &Mapping,
) -> Result<Option<(RecordBatch, Vec<u32>)>, String> {
    if batches.iter().map(|b| b.num_rows()).sum::<usize>() < 2 {
        return Ok(None);
    }
    let whole = arrow_select::concat::concat_batches(schema, batches).map_err(|e| e.to_string())?;
    Ok(replay_order(engine, &whole, mapping).map(|o| (whole, o)))
}

/// The error to report when converting rows in replay order failed at
/// `met`: the first bad row in row order, as converting in row order would
/// report (`met` may be a later one).
pub fn first_bad_row(
    program: &Program,
    batches: &[RecordBatch],
    mapping: &Mapping,
    threads: usize,
    met: RowError,
) -> RowError {
    let mut scratch = Vec::new();
    to_events(program, batches, mapping, threads, 0, &mut scratch)
        .err()
        .unwrap_or(met)
}

/// Typed access to one column's values, decoded once per batch.
enum Acc<'a> {
    Null,
    Bool(&'a BooleanArray),
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
    F32(&'a [f32]),
    F64(&'a [f64]),
    /// mantissas and a scale rust_decimal can hold (0..=28)
    Dec32(&'a [i32], u32),
    Dec64(&'a [i64], u32),
    Dec128(&'a [i128], u32),
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    View(&'a StringViewArray),
    Ts(&'a [i64], TimeUnit),
    Date32(&'a [i32]),
    Date64(&'a [i64]),
    /// time of day as a multiple of nanoseconds
    Time32(&'a [i32], i64),
    Time64(&'a [i64], i64),
    Dict {
        keys: Vec<usize>,
        values: &'a dyn Array,
        acc: Box<Acc<'a>>,
    },
    /// anything else (lists, structs, ...) as JSON
    Json(&'a dyn Array),
}

fn dec_scale(s: i8) -> Option<u32> {
    (0..=28).contains(&s).then_some(s as u32)
}

impl<'a> Acc<'a> {
    fn new(a: &'a dyn Array) -> Acc<'a> {
        use DataType as D;
        match a.data_type() {
            D::Null => Acc::Null,
            D::Boolean => Acc::Bool(a.as_boolean()),
            D::Int8 => Acc::I8(a.as_primitive::<Int8Type>().values()),
            D::Int16 => Acc::I16(a.as_primitive::<Int16Type>().values()),
            D::Int32 => Acc::I32(a.as_primitive::<Int32Type>().values()),
            D::Int64 => Acc::I64(a.as_primitive::<Int64Type>().values()),
            D::UInt8 => Acc::U8(a.as_primitive::<UInt8Type>().values()),
            D::UInt16 => Acc::U16(a.as_primitive::<UInt16Type>().values()),
            D::UInt32 => Acc::U32(a.as_primitive::<UInt32Type>().values()),
            D::UInt64 => Acc::U64(a.as_primitive::<UInt64Type>().values()),
            D::Float32 => Acc::F32(a.as_primitive::<Float32Type>().values()),
            D::Float64 => Acc::F64(a.as_primitive::<Float64Type>().values()),
            D::Decimal32(_, s) if dec_scale(*s).is_some() => {
                Acc::Dec32(a.as_primitive::<Decimal32Type>().values(), *s as u32)
            }
            D::Decimal64(_, s) if dec_scale(*s).is_some() => {
                Acc::Dec64(a.as_primitive::<Decimal64Type>().values(), *s as u32)
            }
            D::Decimal128(_, s) if dec_scale(*s).is_some() => {
                Acc::Dec128(a.as_primitive::<Decimal128Type>().values(), *s as u32)
            }
            D::Utf8 => Acc::Utf8(a.as_string::<i32>()),
            D::LargeUtf8 => Acc::LargeUtf8(a.as_string::<i64>()),
            D::Utf8View => Acc::View(a.as_string_view()),
            D::Timestamp(unit, _) => Acc::Ts(
                match unit {
                    TimeUnit::Second => a.as_primitive::<TimestampSecondType>().values(),
                    TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().values(),
                    TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().values(),
                    TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().values(),
                },
                *unit,
            ),
            D::Date32 => Acc::Date32(a.as_primitive::<Date32Type>().values()),
            D::Date64 => Acc::Date64(a.as_primitive::<Date64Type>().values()),
            D::Time32(TimeUnit::Second) => {
                Acc::Time32(a.as_primitive::<Time32SecondType>().values(), 1_000_000_000)
            }
            D::Time32(_) => Acc::Time32(
                a.as_primitive::<Time32MillisecondType>().values(),
                1_000_000,
            ),
            D::Time64(TimeUnit::Microsecond) => {
                Acc::Time64(a.as_primitive::<Time64MicrosecondType>().values(), 1_000)
            }
            D::Time64(_) => Acc::Time64(a.as_primitive::<Time64NanosecondType>().values(), 1),
            D::Dictionary(k, _) if k.is_integer() => match a.as_any_dictionary_opt() {
                Some(d) if !d.values().is_empty() => Acc::Dict {
                    keys: d.normalized_keys(),
                    values: d.values().as_ref(),
                    acc: Box::new(Acc::new(d.values().as_ref())),
                },
                _ => Acc::Json(a),
            },
            _ => Acc::Json(a),
        }
    }

    /// The event type in row `i` (not null), when this is a text column.
    fn text(&self, i: usize) -> Option<&'a str> {
        Some(match self {
            Acc::Utf8(a) => a.value(i),
            Acc::LargeUtf8(a) => a.value(i),
            Acc::View(a) => a.value(i),
            Acc::Dict { keys, values, acc } => {
                let k = keys[i];
                if values.is_null(k) {
                    return None;
                }
                return acc.text(k);
            }
            _ => return None,
        })
    }

    fn is_text(&self) -> bool {
        match self {
            Acc::Utf8(_) | Acc::LargeUtf8(_) | Acc::View(_) => true,
            Acc::Dict { acc, .. } => acc.is_text(),
            _ => false,
        }
    }

    /// Set row `i` (not null) of this column as builder column `col`.
    fn set(&self, b: &mut EventBuilder, col: usize, i: usize) -> Result<(), String> {
        match self {
            Acc::Null => b.set_null(col),
            Acc::Bool(a) => b.set_bool(col, a.value(i)),
            Acc::I8(v) => b.set_i64(col, v[i] as i64),
            Acc::I16(v) => b.set_i64(col, v[i] as i64),
            Acc::I32(v) => b.set_i64(col, v[i] as i64),
            Acc::I64(v) => b.set_i64(col, v[i]),
            Acc::U8(v) => b.set_u64(col, v[i] as u64),
            Acc::U16(v) => b.set_u64(col, v[i] as u64),
            Acc::U32(v) => b.set_u64(col, v[i] as u64),
            Acc::U64(v) => b.set_u64(col, v[i]),
            Acc::F32(v) => b.set_f64(col, v[i] as f64),
            Acc::F64(v) => b.set_f64(col, v[i]),
            Acc::Dec32(v, s) => set_dec(b, col, v[i] as i128, *s),
            Acc::Dec64(v, s) => set_dec(b, col, v[i] as i128, *s),
            Acc::Dec128(v, s) => set_dec(b, col, v[i], *s),
            Acc::Utf8(a) => b.set_str(col, a.value(i)),
            Acc::LargeUtf8(a) => b.set_str(col, a.value(i)),
            Acc::View(a) => b.set_str(col, a.value(i)),
            Acc::Ts(v, unit) => b.set_timestamp(col, timestamp(v[i], unit)?),
            Acc::Date32(v) => b.set_date(col, date(v[i] as i64)?),
            Acc::Date64(v) => b.set_date(col, date(v[i].div_euclid(86_400_000))?),
            Acc::Time32(v, m) => b.set_time(col, time(v[i] as i64 * m)?),
            Acc::Time64(v, m) => b.set_time(col, time(v[i] * m)?),
            Acc::Dict { keys, values, acc } => {
                let k = keys[i];
                if values.is_null(k) {
                    b.set_null(col)
                } else {
                    acc.set(b, col, k)?
                }
            }
            Acc::Json(a) => b.set_json(col, &cell(*a, i)?),
        }
        Ok(())
    }
}

fn set_dec(b: &mut EventBuilder, col: usize, m: i128, scale: u32) {
    match Decimal::try_from_i128_with_scale(m, scale) {
        Ok(d) => b.set_decimal(col, d),
        // too many digits for a Decimal: the text, as the core reads it
        Err(_) => b.set_str(col, &arrow_decimal_text(m, scale)),
    }
}

/// A decimal128's text as Arrow prints it (`-12.50`).
fn arrow_decimal_text(m: i128, scale: u32) -> String {
    let digits = m.unsigned_abs().to_string();
    let sign = if m < 0 { "-" } else { "" };
    let scale = scale as usize;
    if scale == 0 {
        format!("{sign}{digits}")
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        format!("{sign}{int}.{frac}")
    } else {
        format!("{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
    }
}

/// Rows decoded through the core's typed `EventBuilder`: the type comes
/// from a text `type` column or from the mapping.
struct Typed<'a> {
    accs: Vec<Acc<'a>>,
    /// per column: null bitmaps
    nulls: Vec<Option<&'a arrow_buffer::NullBuffer>>,
    type_col: Option<usize>,
    event_type: Option<&'a str>,
    names: Vec<&'a str>,
}

impl<'a> Typed<'a> {
    /// `None` when a row needs the JSON path: a `type` column that is not
    /// text, or more than one.
    fn new(_program: &Program, cols: &'a [Col], event_type: Option<&'a str>) -> Option<Typed<'a>> {
        let accs: Vec<Acc<'a>> = cols.iter().map(|c| Acc::new(c.array.as_ref())).collect();
        let types: Vec<usize> = (0..cols.len())
            .filter(|&c| cols[c].name == "type")
            .collect();
        let type_col = match types.as_slice() {
            [] => None,
            [t] if accs[*t].is_text() => Some(*t),
            _ => return None,
        };
        Some(Typed {
            nulls: cols.iter().map(|c| c.array.nulls()).collect(),
            accs,
            type_col,
            event_type,
            names: cols.iter().map(|c| c.name.as_str()).collect(),
        })
    }

    fn builder(&self, program: &Program) -> EventBuilder {
        EventBuilder::new(program, &self.names)
    }

    fn row(
        &self,
        b: &mut EventBuilder,
        cols: &[Col],
        i: usize,
        base: usize,
    ) -> Result<Event, RowError> {
        let is_null = |c: usize| self.nulls[c].is_some_and(|n| n.is_null(i));
        match self.type_col {
            Some(t) if !is_null(t) => b.begin(self.accs[t].text(i)),
            Some(_) => b.begin(None),
            None => b.begin(self.event_type),
        }
        for (c, acc) in self.accs.iter().enumerate() {
            if Some(c) == self.type_col || is_null(c) {
                continue;
            }
            acc.set(b, c, i).map_err(|message| RowError {
                row: base + i,
                kind: RowErrorKind::Column {
                    field: cols[c].name.clone(),
                    message: format!("column `{}`: {message}", cols[c].name),
                },
            })?;
        }
        b.finish().map_err(|e| RowError {
            row: base + i,
            kind: RowErrorKind::Core(e),
        })
    }
}

fn row_event(
    program: &Program,
    cols: &[Col],
    event_type: Option<&str>,
    i: usize,
    base: usize,
) -> Result<Event, RowError> {
    let mut m = Map::new();
    if let Some(t) = event_type {
        m.insert("type".into(), Json::String(t.to_string()));
    }
    for c in cols {
        if c.array.is_null(i) {
            continue;
        }
        let v = cell(c.array.as_ref(), i).map_err(|message| RowError {
            row: base + i,
            kind: RowErrorKind::Column {
                field: c.name.clone(),
                message: format!("column `{}`: {message}", c.name),
            },
        })?;
        m.insert(c.name.clone(), v);
    }
    program
        .event_from_value(&Json::Object(m))
        .map_err(|e| RowError {
            row: base + i,
            kind: RowErrorKind::Core(e),
        })
}

fn timestamp(v: i64, unit: &TimeUnit) -> Result<DateTime<Utc>, String> {
    match unit {
        TimeUnit::Second => DateTime::<Utc>::from_timestamp(v, 0),
        TimeUnit::Millisecond => DateTime::<Utc>::from_timestamp_millis(v),
        TimeUnit::Microsecond => DateTime::<Utc>::from_timestamp_micros(v),
        TimeUnit::Nanosecond => Some(DateTime::<Utc>::from_timestamp_nanos(v)),
    }
    .ok_or_else(|| format!("timestamp {v} out of range"))
}

fn time(nanos: i64) -> Result<NaiveTime, String> {
    let secs = nanos.div_euclid(1_000_000_000);
    NaiveTime::from_num_seconds_from_midnight_opt(secs as u32, 0)
        .filter(|_| (0..86_400).contains(&secs))
        .ok_or_else(|| format!("time of day {nanos}ns out of range"))
}

fn date(days: i64) -> Result<NaiveDate, String> {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::Duration::days(days)))
        .ok_or_else(|| format!("date {days} out of range"))
}

fn num_f64(f: f64) -> Json {
    Number::from_f64(f).map_or(Json::Null, Json::Number)
}

fn ts(v: i64, unit: &TimeUnit) -> Result<Json, String> {
    Ok(Json::String(
        timestamp(v, unit)?.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    ))
}

fn time_of_day(nanos: i64) -> Result<Json, String> {
    Ok(Json::String(time(nanos)?.format("%H:%M:%S").to_string()))
}

fn date_of(days: i64) -> Result<Json, String> {
    Ok(Json::String(date(days)?.to_string()))
}

fn sub_array(a: &ArrayRef) -> Result<Json, String> {
    let mut v = Vec::with_capacity(a.len());
    for j in 0..a.len() {
        v.push(if a.is_null(j) {
            Json::Null
        } else {
            cell(a.as_ref(), j)?
        });
    }
    Ok(Json::Array(v))
}

macro_rules! dict_cell {
    ($arr:expr, $i:expr, $kt:ty) => {{
        let d = $arr.as_dictionary::<$kt>();
        let k = d.keys().value($i) as usize;
        let vals = d.values();
        if vals.is_null(k) {
            Ok(Json::Null)
        } else {
            cell(vals.as_ref(), k)
        }
    }};
}

/// One non-null cell as JSON.
pub fn cell(a: &dyn Array, i: usize) -> Result<Json, String> {
    use DataType as D;
    Ok(match a.data_type() {
        D::Null => Json::Null,
        D::Boolean => Json::Bool(a.as_boolean().value(i)),
        D::Int8 => a.as_primitive::<Int8Type>().value(i).into(),
        D::Int16 => a.as_primitive::<Int16Type>().value(i).into(),
        D::Int32 => a.as_primitive::<Int32Type>().value(i).into(),
        D::Int64 => a.as_primitive::<Int64Type>().value(i).into(),
        D::UInt8 => a.as_primitive::<UInt8Type>().value(i).into(),
        D::UInt16 => a.as_primitive::<UInt16Type>().value(i).into(),
        D::UInt32 => a.as_primitive::<UInt32Type>().value(i).into(),
        D::UInt64 => a.as_primitive::<UInt64Type>().value(i).into(),
        D::Float16 => num_f64(a.as_primitive::<Float16Type>().value(i).to_f64()),
        D::Float32 => num_f64(a.as_primitive::<Float32Type>().value(i) as f64),
        D::Float64 => num_f64(a.as_primitive::<Float64Type>().value(i)),
        D::Decimal32(..) => Json::String(a.as_primitive::<Decimal32Type>().value_as_string(i)),
        D::Decimal64(..) => Json::String(a.as_primitive::<Decimal64Type>().value_as_string(i)),
        D::Decimal128(..) => Json::String(a.as_primitive::<Decimal128Type>().value_as_string(i)),
        D::Decimal256(..) => Json::String(a.as_primitive::<Decimal256Type>().value_as_string(i)),
        D::Utf8 => Json::String(a.as_string::<i32>().value(i).to_owned()),
        D::LargeUtf8 => Json::String(a.as_string::<i64>().value(i).to_owned()),
        D::Utf8View => Json::String(a.as_string_view().value(i).to_owned()),
        D::Timestamp(unit, _) => {
            // Arrow timestamps are UTC instants whatever the zone; naive
            // ones (no zone) are taken as UTC.
            let v = match unit {
                TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(i),
                TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(i),
                TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(i),
                TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().value(i),
            };
            ts(v, unit)?
        }
        D::Date32 => date_of(a.as_primitive::<Date32Type>().value(i) as i64)?,
        D::Date64 => date_of(
            a.as_primitive::<Date64Type>()
                .value(i)
                .div_euclid(86_400_000),
        )?,
        D::Time32(TimeUnit::Second) => {
            time_of_day(a.as_primitive::<Time32SecondType>().value(i) as i64 * 1_000_000_000)?
        }
        D::Time32(_) => {
            time_of_day(a.as_primitive::<Time32MillisecondType>().value(i) as i64 * 1_000_000)?
        }
        D::Time64(TimeUnit::Microsecond) => {
            time_of_day(a.as_primitive::<Time64MicrosecondType>().value(i) * 1_000)?
        }
        D::Time64(_) => time_of_day(a.as_primitive::<Time64NanosecondType>().value(i))?,
        D::List(_) => sub_array(&a.as_list::<i32>().value(i))?,
        D::LargeList(_) => sub_array(&a.as_list::<i64>().value(i))?,
        D::FixedSizeList(..) => sub_array(&a.as_fixed_size_list().value(i))?,
        D::ListView(_) => sub_array(&a.as_list_view::<i32>().value(i))?,
        D::LargeListView(_) => sub_array(&a.as_list_view::<i64>().value(i))?,
        D::Struct(fields) => {
            let s = a.as_struct();
            let mut m = Map::new();
            for (f, c) in fields.iter().zip(s.columns()) {
                if c.is_null(i) {
                    continue;
                }
                m.insert(f.name().clone(), cell(c.as_ref(), i)?);
            }
            Json::Object(m)
        }
        D::Dictionary(k, _) => {
            return match k.as_ref() {
                D::Int8 => dict_cell!(a, i, Int8Type),
                D::Int16 => dict_cell!(a, i, Int16Type),
                D::Int32 => dict_cell!(a, i, Int32Type),
                D::Int64 => dict_cell!(a, i, Int64Type),
                D::UInt8 => dict_cell!(a, i, UInt8Type),
                D::UInt16 => dict_cell!(a, i, UInt16Type),
                D::UInt32 => dict_cell!(a, i, UInt32Type),
                D::UInt64 => dict_cell!(a, i, UInt64Type),
                other => Err(format!("unsupported dictionary key type {other}")),
            }
        }
        other => return Err(format!("unsupported Arrow type {other}")),
    })
}

/// A points value as a whole number of the results table's unit
/// (10^-decimals points), exactly; None when there is no exact one (more
/// decimals than the table's, or beyond i128).
pub type Units = Option<i128>;

/// `d` in units of 10^-`decimals`, exactly (see [`Units`]). Points carry
/// exactly the program's decimals, so this is normally the mantissa as it
/// is (the fast path: no multiplication, no division); any other scale is
/// rescaled exactly, or gives None when that would round.
pub fn units(d: &Decimal, decimals: u32) -> Units {
    let (m, s) = (d.mantissa(), d.scale());
    if s == decimals {
        Some(m)
    } else if s < decimals {
        m.checked_mul(10i128.checked_pow(decimals - s)?)
    } else {
        let f = 10i128.checked_pow(s - decimals)?;
        (m % f == 0).then(|| m / f)
    }
}

/// The exact sum of two [`Units`].
fn add_units(a: Units, b: Units) -> Units {
    a?.checked_add(b?)
}

/// `u` units of 10^-`decimals` as decimal text (`-12.50`).
fn units_text(u: i128, decimals: u32) -> String {
    let digits = u.unsigned_abs().to_string();
    let sign = if u < 0 { "-" } else { "" };
    let d = decimals as usize;
    if d == 0 {
        return format!("{sign}{digits}");
    }
    let digits = format!("{digits:0>width$}", width = d + 1);
    let (int, frac) = digits.split_at(digits.len() - d);
    format!("{sign}{int}.{frac}")
}

/// The integer of a points cell: `i64` for whole points (an `int64`
/// column), `i128` for points with decimals (a `decimal128(38, N)` column,
/// the value in units of 10^-N).
trait Cell: ArrowNativeType {
    type Arrow: ArrowPrimitiveType<Native = Self>;
    /// The cell holding `units`, if the column's type can.
    fn fit(units: i128) -> Option<Self>;
    fn units(self) -> i128;
}

impl Cell for i64 {
    type Arrow = Int64Type;
    fn fit(units: i128) -> Option<i64> {
        i64::try_from(units).ok()
    }
    fn units(self) -> i128 {
        self.into()
    }
}

/// The largest magnitude of a `decimal128(38, _)` value, plus one.
const DECIMAL38: u128 = 10u128.pow(38);

impl Cell for i128 {
    type Arrow = Decimal128Type;
    fn fit(units: i128) -> Option<i128> {
        (units.unsigned_abs() < DECIMAL38).then_some(units)
    }
    fn units(self) -> i128 {
        self
    }
}

/// The cells that do not fit their column in the row being added:
/// (column: 0 `points`, 1 + r rule r; exact points), and the rules whose
/// sum left the column's range during the row (it may come back: the sum
/// goes on here, exact).
#[derive(Default)]
struct Unfit {
    spill: Vec<(u32, Units)>,
    cells: Vec<(u32, Units)>,
}

/// The points columns' cells: `points`, then one column per rule, zeroed
/// ahead for the rows expected (freshly allocated zeros cost nothing
/// until written), so a row writes only the rules it awards, not every
/// rule's column.
struct Cells<T> {
    points: Vec<T>,
    per_rule: Vec<Vec<T>>,
}

impl<T: Cell> Cells<T> {
    fn new(rules: usize, capacity: usize) -> Self {
        Cells {
            points: Vec::with_capacity(capacity),
            per_rule: (0..rules).map(|_| vec![T::default(); capacity]).collect(),
        }
    }

    /// A new row of zero points; its index.
    fn new_row(&mut self) -> usize {
        let k = self.points.len();
        self.points.push(T::default());
        if self.per_rule.first().is_some_and(|v| v.len() <= k) {
            // more rows than expected (the columns all have one length)
            for v in &mut self.per_rule {
                v.resize((2 * k).max(1024), T::default());
            }
        }
        k
    }

    /// Add `u` to rule `r`'s points in row `k`.
    fn add(&mut self, k: usize, r: usize, u: Units, unfit: &mut Unfit) {
        let Some(col) = self.per_rule.get_mut(r) else {
            return;
        };
        if let Some(s) = unfit.spill.iter_mut().find(|(x, _)| *x as usize == r) {
            s.1 = add_units(s.1, u);
            return;
        }
        let sum = add_units(Some(col[k].units()), u);
        match sum.and_then(T::fit) {
            Some(v) => col[k] = v,
            None => unfit.spill.push((r as u32, sum)),
        }
    }

    /// Row `k`'s total points, and the sums that left their column's range
    /// during the row: those that do not fit in the end go to
    /// `unfit.cells`, their cells left zero (to be nulls).
    fn end_row(&mut self, k: usize, total: Units, unfit: &mut Unfit) {
        match total.and_then(T::fit) {
            Some(v) => self.points[k] = v,
            None => unfit.cells.push((0, total)),
        }
        for (r, u) in unfit.spill.drain(..) {
            let cell = &mut self.per_rule[r as usize][k];
            match u.and_then(T::fit) {
                Some(v) => *cell = v,
                None => {
                    *cell = T::default();
                    unfit.cells.push((r + 1, u));
                }
            }
        }
    }

    /// Add the row of `o`; its index, and whether it has a reward.
    fn push_outcome(
        &mut self,
        maker: &RowMaker<'_>,
        o: &Outcome,
        rewards: &mut String,
        unfit: &mut Unfit,
    ) -> (usize, bool) {
        let k = self.new_row();
        let any = maker.effects(o, |r, u| self.add(k, r, u, unfit), rewards);
        self.end_row(k, units(&o.points, maker.decimals), unfit);
        (k, any)
    }

    /// Add a row of `total` points, and of each rule's in `per_rule`; its
    /// index.
    fn push_sums(&mut self, total: Units, per_rule: &[(u32, Units)], unfit: &mut Unfit) -> usize {
        let k = self.new_row();
        for &(r, u) in per_rule {
            self.add(k, r as usize, u, unfit);
        }
        self.end_row(k, total, unfit);
        k
    }

    /// The `n` rows' columns, of type `ty`: `points`, then each rule's,
    /// with the cells of `nulls` null.
    fn finish(self, n: usize, ty: &DataType, nulls: &[(usize, u32)]) -> Vec<ArrayRef> {
        let null_buffer = |c: u32| {
            nulls.iter().any(|(_, x)| *x == c).then(|| {
                let mut valid = BooleanBufferBuilder::new(n);
                valid.append_n(n, true);
                for &(k, x) in nulls {
                    if x == c {
                        valid.set_bit(k, false);
                    }
                }
                NullBuffer::new(valid.finish())
            })
        };
        std::iter::once(self.points)
            .chain(self.per_rule)
            .enumerate()
            .map(|(c, mut v)| {
                v.truncate(n);
                let a = PrimitiveArray::<T::Arrow>::new(v.into(), null_buffer(c as u32))
                    .with_data_type(ty.clone());
                Arc::new(a) as ArrayRef
            })
            .collect()
    }
}

/// The points columns, by the program's decimals.
enum Points {
    /// whole points: `int64`
    Whole(Cells<i64>),
    /// points with decimals: `decimal128(38, decimals)`
    Decimal(Cells<i128>),
}

/// What the results table keeps of one outcome (made on the replay's
/// threads, appended in input order).
pub struct Row {
    points: Units,
    event: Arc<str>,
    customer: Arc<str>,
    event_type: Arc<str>,
    status: Option<&'static str>,
    reason: Option<String>,
    errors: Option<String>,
    /// (rule index, exact sum of its points of the spendable kind)
    per_rule: Vec<(u32, Units)>,
    rewards: Option<String>,
    /// The whole outcome as JSON (`detail` only).
    outcome: Option<String>,
}

/// Makes the rows of a results table from outcomes (read-only, so the
/// replay's threads share it).
pub struct RowMaker<'a> {
    detail: bool,
    /// the program's points decimals: the table's unit is 10^-decimals
    decimals: u32,
    source: &'a crate::errors::Offsets,
    rules: Vec<&'a str>,
    index: HashMap<&'a str, usize>,
}

impl RowMaker<'_> {
    /// The rule of an effect. Effects normally share the program's own
    /// rule names, so a pointer comparison (for up to 32 rules) finds most
    /// without hashing; the name's text decides otherwise.
    fn rule_index(&self, rule: &Arc<str>) -> Option<usize> {
        if self.rules.len() <= 32 {
            let ptr = rule.as_ptr();
            if let Some(r) = self.rules.iter().position(|n| n.as_ptr() == ptr) {
                return Some(r);
            }
        }
        self.index.get(&**rule).copied()
    }

    /// Walk `o`'s effects: `award(rule index, points in units)` for each
    /// award of the spendable kind, and the rewards' names added to
    /// `rewards` (`; ` between). Returns whether there was a reward.
    fn effects(
        &self,
        o: &Outcome,
        mut award: impl FnMut(usize, Units),
        rewards: &mut String,
    ) -> bool {
        let mut any = false;
        for e in &o.effects {
            match e {
                Effect::Award {
                    rule, kind, points, ..
                }
                | Effect::Multiply {
                    rule, kind, points, ..
                } if &**kind == "points" => {
                    if let Some(r) = self.rule_index(rule) {
                        award(r, units(points, self.decimals));
                    }
                }
                Effect::Reward { reward, .. } => {
                    any = true;
                    if !rewards.is_empty() {
                        rewards.push_str("; ");
                    }
                    rewards.push_str(reward);
                }
                _ => {}
            }
        }
        any
    }

    fn errors(o: &Outcome) -> Option<String> {
        (!o.errors.is_empty()).then(|| {
            o.errors
                .iter()
                .map(|e| format!("{}: {}", e.rule, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// The whole outcome as JSON text (`detail` only).
    fn outcome(&self, o: &Outcome) -> Option<String> {
        self.detail.then(|| {
            let mut v = serde_json::to_value(o).unwrap_or(Json::Null);
            if let Some(Json::Array(ex)) = v.get_mut("explanation") {
                for x in ex {
                    self.source.fix(x);
                }
            }
            v.to_string()
        })
    }

    fn status(o: &Outcome) -> Option<&'static str> {
        o.status.map(|s| match s {
            loyalty_rules::Status::Applied => "applied",
            loyalty_rules::Status::Duplicate => "duplicate",
            loyalty_rules::Status::Rejected => "rejected",
        })
    }

    /// The type of the points columns: `int64` for whole points,
    /// `decimal128(38, N)` for N decimals.
    fn points_type(&self) -> DataType {
        match self.decimals {
            0 => DataType::Int64,
            d => DataType::Decimal128(38, d as i8),
        }
    }

    /// Add to `errors` (`; ` between, as the rules' errors) why the cells
    /// of `unfit` are null: their points, exact, do not fit the column.
    /// The entry of a rule's column starts with the rule's name, the
    /// total's with `points`.
    fn unfit_errors(&self, unfit: &mut [(u32, Units)], errors: &mut String) {
        // in column order, however the row was made
        unfit.sort_unstable_by_key(|(c, _)| *c);
        let ty = self.points_type().to_string().to_lowercase();
        for (c, u) in unfit.iter() {
            let (who, column) = match c.checked_sub(1) {
                None => ("points", "points".to_string()),
                Some(r) => {
                    let rule = self.rules[r as usize];
                    (rule, format!("points:{rule}"))
                }
            };
            let value = match u {
                Some(u) => format!("{} points", units_text(*u, self.decimals)),
                None => "the points".to_string(),
            };
            if !errors.is_empty() {
                errors.push_str("; ");
            }
            errors.push_str(&format!(
                "{who}: {value} do not fit the {ty} column \"{column}\": left null \
                 (the exact points are in the outcome, detail=True)"
            ));
        }
    }

    /// What the table keeps of `o` (on any thread: see `push_row`).
    pub fn row(&self, o: &Outcome) -> Row {
        let mut per_rule: Vec<(u32, Units)> = Vec::new();
        let mut rewards = String::new();
        let any = self.effects(
            o,
            |r, u| match per_rule.iter_mut().find(|(x, _)| *x as usize == r) {
                Some((_, q)) => *q = add_units(*q, u),
                None => per_rule.push((r as u32, u)),
            },
            &mut rewards,
        );
        Row {
            points: units(&o.points, self.decimals),
            event: o.event.clone(),
            customer: o.customer.clone(),
            event_type: o.event_type.clone(),
            status: Self::status(o),
            reason: o.reason.clone(),
            errors: Self::errors(o),
            per_rule,
            rewards: any.then_some(rewards),
            outcome: self.outcome(o),
        }
    }
}

/// The text columns of a results table.
struct Texts {
    event: StringBuilder,
    customer: StringBuilder,
    ety: StringBuilder,
    status: StringBuilder,
    reason: StringBuilder,
    errors: StringBuilder,
    rewards: StringBuilder,
    outcome: StringBuilder,
}

/// One row's text.
struct RowText<'r> {
    event: &'r str,
    customer: &'r str,
    event_type: &'r str,
    status: Option<&'static str>,
    reason: Option<&'r str>,
    errors: Option<&'r str>,
    rewards: Option<&'r str>,
    outcome: Option<&'r str>,
}

impl Texts {
    fn push(&mut self, t: RowText<'_>) {
        self.event.append_value(t.event);
        self.customer.append_value(t.customer);
        self.ety.append_value(t.event_type);
        self.status.append_option(t.status);
        self.reason.append_option(t.reason);
        self.errors.append_option(t.errors);
        self.rewards.append_option(t.rewards);
        if let Some(t) = t.outcome {
            self.outcome.append_value(t);
        }
    }
}

/// Per-event results as one record batch: one row per event, in input
/// order, with points per rule. Outcomes are added one at a time (so a
/// replay can stream them in without keeping them).
///
/// The points columns are exact, of a type set by the program alone:
/// `int64` for whole points, `decimal128(38, N)` for N decimals. A cell
/// whose points do not fit it (beyond 2^63 whole points; 10^38 units) is
/// null, and the row's `errors` say so.
pub struct ResultsBuilder<'a> {
    maker: RowMaker<'a>,
    points: Points,
    /// the cells left null: (row, column: 0 `points`, 1 + r rule r)
    nulls: Vec<(usize, u32)>,
    /// the row being added's cells that do not fit (reused)
    unfit: Unfit,
    texts: Texts,
    /// the rewards text of the outcome being added (reused)
    rewards: String,
}

impl<'a> ResultsBuilder<'a> {
    /// The results of `program` (its points' decimals,
    /// `Program::points_decimals`, set the points columns' type).
    pub fn new(
        program: &'a Program,
        detail: bool,
        source: &'a crate::errors::Offsets,
        capacity: usize,
    ) -> Self {
        let decimals = program.points_decimals();
        let rules: Vec<&str> = program.rule_names().collect();
        let index = rules.iter().enumerate().map(|(i, r)| (*r, i)).collect();
        let strings = || StringBuilder::with_capacity(capacity, capacity * 8);
        ResultsBuilder {
            points: match decimals {
                0 => Points::Whole(Cells::new(rules.len(), capacity)),
                _ => Points::Decimal(Cells::new(rules.len(), capacity)),
            },
            maker: RowMaker {
                detail,
                decimals,
                source,
                rules,
                index,
            },
            nulls: Vec::new(),
            unfit: Unfit::default(),
            texts: Texts {
                event: strings(),
                customer: strings(),
                ety: strings(),
                status: strings(),
                reason: StringBuilder::new(),
                errors: StringBuilder::new(),
                rewards: StringBuilder::new(),
                outcome: StringBuilder::new(),
            },
            rewards: String::new(),
        }
    }

    /// The row maker, for the replay's threads.
    pub fn maker(&self) -> &RowMaker<'a> {
        &self.maker
    }

    /// Row `k`'s cells that did not fit are nulls, and `errors` say why.
    fn unfit_cells(&mut self, k: usize, errors: &mut Option<String>) {
        let cells = &mut self.unfit.cells;
        if !cells.is_empty() {
            self.nulls.extend(cells.iter().map(|(c, _)| (k, *c)));
            self.maker
                .unfit_errors(cells, errors.get_or_insert_with(String::new));
            cells.clear();
        }
    }

    /// Append the row of `o` straight from it (on the thread that builds
    /// the table: no `Row` is made, so nothing is allocated or shared).
    pub fn push(&mut self, o: &Outcome) {
        self.rewards.clear();
        let (maker, rewards, unfit) = (&self.maker, &mut self.rewards, &mut self.unfit);
        let (k, any) = match &mut self.points {
            Points::Whole(c) => c.push_outcome(maker, o, rewards, unfit),
            Points::Decimal(c) => c.push_outcome(maker, o, rewards, unfit),
        };
        let mut errors = RowMaker::errors(o);
        self.unfit_cells(k, &mut errors);
        let outcome = self.maker.outcome(o);
        self.texts.push(RowText {
            event: &o.event,
            customer: &o.customer,
            event_type: &o.event_type,
            status: RowMaker::status(o),
            reason: o.reason.as_deref(),
            errors: errors.as_deref(),
            rewards: any.then_some(self.rewards.as_str()),
            outcome: outcome.as_deref(),
        });
    }

    /// Append a row made by `row` (rows must come in input order).
    pub fn push_row(&mut self, mut r: Row) {
        let unfit = &mut self.unfit;
        let k = match &mut self.points {
            Points::Whole(c) => c.push_sums(r.points, &r.per_rule, unfit),
            Points::Decimal(c) => c.push_sums(r.points, &r.per_rule, unfit),
        };
        self.unfit_cells(k, &mut r.errors);
        self.texts.push(RowText {
            event: &r.event,
            customer: &r.customer,
            event_type: &r.event_type,
            status: r.status,
            reason: r.reason.as_deref(),
            errors: r.errors.as_deref(),
            rewards: r.rewards.as_deref(),
            outcome: r.outcome.as_deref(),
        });
    }

    pub fn finish(self, times: Vec<i64>, rows: Vec<i64>) -> Result<RecordBatch, String> {
        let n = self.texts.event.len();
        let ty = self.maker.points_type();
        let mut points = match self.points {
            Points::Whole(c) => c.finish(n, &ty, &self.nulls),
            Points::Decimal(c) => c.finish(n, &ty, &self.nulls),
        }
        .into_iter();
        let mut texts = self.texts;
        let mut fields = vec![
            Field::new("row", DataType::Int64, false),
            Field::new("event", DataType::Utf8, false),
            Field::new("customer", DataType::Utf8, false),
            Field::new("event_type", DataType::Utf8, false),
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("status", DataType::Utf8, true),
            Field::new("reason", DataType::Utf8, true),
            // nullable whatever the data: the schema is the program's
            Field::new("points", ty.clone(), true),
            Field::new("rewards", DataType::Utf8, true),
            Field::new("errors", DataType::Utf8, true),
        ];
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(rows)),
            Arc::new(texts.event.finish()),
            Arc::new(texts.customer.finish()),
            Arc::new(texts.ety.finish()),
            Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
            Arc::new(texts.status.finish()),
            Arc::new(texts.reason.finish()),
            points.next().ok_or("no points column")?,
            Arc::new(texts.rewards.finish()),
            Arc::new(texts.errors.finish()),
        ];
        for (r, col) in self.maker.rules.iter().zip(points) {
            fields.push(Field::new(format!("points:{r}"), ty.clone(), true));
            cols.push(col);
        }
        if self.maker.detail {
            fields.push(Field::new("outcome", DataType::Utf8, false));
            cols.push(Arc::new(texts.outcome.finish()));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| e.to_string())
    }
}

/// Customer states as batches, in order, serialized on up to `threads`
/// threads (a batch per thread, each at least a few thousand states): a
/// third of the time is JSON escaping, and the states are independent.
pub fn states_batches(
    states: &[&loyalty_rules::CustomerState],
    threads: usize,
) -> Result<Vec<RecordBatch>, String> {
    let parts = threads.clamp(1, 64).min(states.len() / 4096 + 1);
    in_parts(
        states,
        parts,
        states_batch,
        "internal error serializing states",
    )
}

/// `f` over `parts` consecutive parts of `items`, a scoped thread each
/// (none for one part); its results in order, or the first part's error
/// (`panicked` for a part whose thread panicked).
fn in_parts<T: Sync, R: Send>(
    items: &[T],
    parts: usize,
    f: impl Fn(&[T]) -> Result<R, String> + Sync,
    panicked: &str,
) -> Result<Vec<R>, String> {
    if parts <= 1 {
        return Ok(vec![f(items)?]);
    }
    let size = items.len().div_ceil(parts).max(1);
    let f = &f;
    std::thread::scope(|s| {
        let hs: Vec<_> = items
            .chunks(size)
            .map(|part| s.spawn(move || f(part)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(panicked.into())))
            .collect()
    })
}

/// Customer states as a batch: `customer` (utf8), `state` (utf8, JSON).
fn states_batch(states: &[&loyalty_rules::CustomerState]) -> Result<RecordBatch, String> {
    let ids: Vec<&str> = states.iter().map(|s| s.id.as_str()).collect();
    let mut js = StringBuilder::with_capacity(states.len(), states.len() * 256);
    let mut text = Vec::new();
    for s in states {
        text.clear();
        serde_json::to_writer(&mut text, s).map_err(|e| e.to_string())?;
        js.append_value(std::str::from_utf8(&text).map_err(|e| e.to_string())?);
    }
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("customer", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
        ])),
        vec![Arc::new(StringArray::from(ids)), Arc::new(js.finish())],
    )
    .map_err(|e| e.to_string())
}

/// Read a states table back (`state` column of JSON text), parsing on up
/// to `threads` threads (the states in table order whatever the threads;
/// the first bad row's error).
pub fn states_from_batches(
    batches: &[RecordBatch],
    threads: usize,
) -> Result<Vec<loyalty_rules::CustomerState>, String> {
    // the texts, read in place (a state's text is kilobytes), with their
    // row in the table
    let mut texts: Vec<(usize, &str)> = Vec::new();
    let mut row = 0;
    for b in batches {
        let col = b.column_by_name("state").ok_or(
            "a states table needs a `state` column (JSON text, as written by states_table())",
        )?;
        let acc = Acc::new(col.as_ref());
        if !acc.is_text() && col.null_count() < col.len() {
            return Err("the `state` column must hold JSON text".into());
        }
        texts.reserve(b.num_rows());
        for i in 0..b.num_rows() {
            if !col.is_null(i) {
                if let Some(text) = acc.text(i) {
                    texts.push((row + i, text));
                }
            }
        }
        row += b.num_rows();
    }
    let parse = |part: &[(usize, &str)]| -> Result<Vec<loyalty_rules::CustomerState>, String> {
        part.iter()
            .map(|(i, text)| serde_json::from_str(text).map_err(|e| format!("state row {i}: {e}")))
            .collect()
    };
    // a thread per 1,024 states at least
    let parts = threads.clamp(1, texts.len().div_ceil(1024).max(1));
    let mut parts = in_parts(&texts, parts, parse, "a thread parsing states panicked")?;
    if parts.len() == 1 {
        // one part: its vector as it is
        return Ok(parts.pop().unwrap_or_default());
    }
    Ok(parts.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::{units, units_text, ResultsBuilder};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, Int64Type};
    use arrow_array::{Array, RecordBatch};
    use arrow_schema::DataType;
    use rust_decimal::Decimal;

    fn purchase(i: usize, amount: &str) -> String {
        format!(
            r#"{{"type":"purchase","id":"o{i}","customer":"c","time":"2025-01-01T00:00:00Z","amount":"{amount}"}}"#
        )
    }

    /// The results of `amounts` replayed through `source`, made both ways:
    /// pushed straight from the outcomes, and as `Row`s (the several-thread
    /// replay); the two must be equal.
    fn results(source: &str, amounts: &[&str]) -> RecordBatch {
        let p = loyalty_rules::Program::compile(source).unwrap();
        let offs = crate::errors::Offsets::new(p.source());
        let mut e = loyalty_rules::Engine::new(p.clone());
        let mut direct = ResultsBuilder::new(&p, false, &offs, 1);
        let mut rows = ResultsBuilder::new(&p, false, &offs, 1);
        for (i, a) in amounts.iter().enumerate() {
            let o = e.process_json(&purchase(i, a)).unwrap();
            direct.push(&o);
            let r = rows.maker().row(&o);
            rows.push_row(r);
        }
        let n = amounts.len();
        let finish = |b: ResultsBuilder<'_>| b.finish(vec![0; n], (0..n as i64).collect()).unwrap();
        let (direct, rows) = (finish(direct), finish(rows));
        assert_eq!(direct, rows);
        direct
    }

    fn ints(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
        let c = b.column_by_name(name).unwrap();
        assert_eq!(c.data_type(), &DataType::Int64, "{name}");
        c.as_primitive::<Int64Type>().iter().collect()
    }

    fn texts(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
        let c = b.column_by_name(name).unwrap().as_string::<i32>();
        c.iter().map(|s| s.map(str::to_string)).collect()
    }

    #[test]
    fn results_grow_past_the_rows_expected() {
        let n = 1500;
        let amounts: Vec<String> = (0..n).map(|i| (i % 10).to_string()).collect();
        let amounts: Vec<&str> = amounts.iter().map(|s| s.as_str()).collect();
        let b = results(
            "rule \"A\" on purchase award 1 point per $1\nrule \"B\" on purchase if purchase.amount > $5 award 3 points",
            &amounts,
        );
        let want_a: Vec<Option<i64>> = (0..n).map(|i| Some((i % 10) as i64)).collect();
        let want_b: Vec<Option<i64>> = (0..n)
            .map(|i| Some(if i % 10 > 5 { 3 } else { 0 }))
            .collect();
        assert_eq!(ints(&b, "points:A"), want_a);
        assert_eq!(ints(&b, "points:B"), want_b);
    }

    #[test]
    fn whole_points_are_exact_int64() {
        // 2^53 + 1 points: a float64 would give 2^53
        let b = results(
            "rule \"A\" on purchase award 1 point per $1\nrule \"B\" on purchase award 2 points\nrule \"B2\" on purchase award 0 points",
            &["9007199254740993", "9223372036854775805"],
        );
        assert_eq!(
            ints(&b, "points:A"),
            [Some(9007199254740993), Some(9223372036854775805)]
        );
        assert_eq!(ints(&b, "points"), [Some(9007199254740995), Some(i64::MAX)]);
        assert_eq!(texts(&b, "errors"), [None, None]);
        assert!(b.schema().field_with_name("points").unwrap().is_nullable());
    }

    #[test]
    fn points_beyond_int64_are_null_with_an_error() {
        let source = "rule \"A\" on purchase award 1 point per $1\n\
                      rule \"B\" on purchase\n  award 1 point per $1\n  award 1 point per $1\n  deduct 1 point per $1\n\
                      rule \"C\" on purchase if purchase.amount > $100 award 5 points";
        // B's sum goes past int64 on its second line and back on its third
        let b = results(
            source,
            &["10", "5000000000000000000", "20000000000000000000"],
        );
        assert_eq!(
            ints(&b, "points:A"),
            [Some(10), Some(5_000_000_000_000_000_000), None]
        );
        assert_eq!(
            ints(&b, "points:B"),
            [Some(10), Some(5_000_000_000_000_000_000), None]
        );
        assert_eq!(ints(&b, "points:C"), [Some(0), Some(5), Some(5)]);
        assert_eq!(ints(&b, "points"), [Some(20), None, None]);
        let errors = texts(&b, "errors");
        assert_eq!(errors[0], None);
        assert_eq!(
            errors[1].as_deref(),
            Some("points: 10000000000000000005 points do not fit the int64 column \"points\": left null (the exact points are in the outcome, detail=True)")
        );
        let e2 = errors[2].as_deref().unwrap();
        assert!(
            e2.starts_with(
                "points: 40000000000000000005 points do not fit the int64 column \"points\""
            ),
            "{e2}"
        );
        assert!(e2.contains("; A: 20000000000000000000 points do not fit the int64 column \"points:A\": left null"), "{e2}");
        assert!(
            e2.contains(
                "; B: 20000000000000000000 points do not fit the int64 column \"points:B\""
            ),
            "{e2}"
        );
        // the null cells are zeros underneath
        let a = b.column_by_name("points:A").unwrap();
        assert_eq!(a.null_count(), 1);
        assert_eq!(a.as_primitive::<Int64Type>().values()[2], 0);
    }

    #[test]
    fn points_with_decimals_are_exact_decimal128() {
        // 0.1 + 0.2 (in float64, 0.30000000000000004) and 2.675 rounded down
        let source = "points have 2 decimals, rounded down\n\
                      rule \"A\" on purchase\n  award 0.1 points\n  award 0.2 points\n\
                      rule \"B\" on purchase award 1 point per $1 of purchase.amount / 2";
        let b = results(source, &["5.35", "0.01", "100000000000000000000000"]);
        for c in ["points", "points:A", "points:B"] {
            assert_eq!(
                b.schema().field_with_name(c).unwrap().data_type(),
                &DataType::Decimal128(38, 2)
            );
        }
        let dec = |name: &str| -> Vec<String> {
            let c = b
                .column_by_name(name)
                .unwrap()
                .as_primitive::<Decimal128Type>();
            (0..c.len()).map(|i| c.value_as_string(i)).collect()
        };
        assert_eq!(dec("points:A"), ["0.30", "0.30", "0.30"]);
        assert_eq!(
            dec("points:B"),
            ["2.67", "0.00", "50000000000000000000000.00"]
        );
        assert_eq!(
            dec("points"),
            ["2.97", "0.30", "50000000000000000000000.30"]
        );
    }

    #[test]
    fn decimals_of_a_program() {
        let d = |s: &str| {
            loyalty_rules::Program::compile(s)
                .unwrap()
                .points_decimals()
        };
        assert_eq!(d("rule \"A\" on purchase award 1 point"), 0);
        assert_eq!(
            d("points are whole, rounded up\nrule \"A\" on purchase award 1 point"),
            0
        );
        assert_eq!(
            d("points have 8 decimals, rounded half even\nrule \"A\" on purchase award 1 point"),
            8
        );
        assert_eq!(
            d("points have 1 decimal, rounded down\nrule \"A\" on purchase award 1 point"),
            1
        );
    }

    #[test]
    fn units_rescale_exactly() {
        let u = |s: &str, d: u32| units(&s.parse::<Decimal>().unwrap(), d);
        assert_eq!(u("12.50", 2), Some(1250));
        assert_eq!(u("12.5", 2), Some(1250));
        assert_eq!(u("-7", 8), Some(-700_000_000));
        assert_eq!(u("12.500", 2), Some(1250));
        assert_eq!(u("12.505", 2), None); // would round
        assert_eq!(u("3.0", 0), Some(3));
        assert_eq!(
            u("79228162514264337593543950335", 8),
            Some(79228162514264337593543950335 * 100_000_000)
        );
        assert_eq!(units_text(-1250, 2), "-12.50");
        assert_eq!(units_text(5, 3), "0.005");
        assert_eq!(units_text(-5, 0), "-5");
        assert_eq!(units_text(i128::MIN, 0), i128::MIN.to_string());
    }
}
