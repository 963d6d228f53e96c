//! Columnar input and output through the Arrow C stream interface
//! (PyCapsule `arrow_array_stream`), so pyarrow Tables, polars and pandas
//! DataFrames come in without a copy on the Python side.
//!
//! Rows become core events by building one JSON object per row and calling
//! `Program::event_from_value`: the core does all checking, so batch input
//! can never accept what a single event would refuse.

use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::types::*;
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, RecordBatchIterator, RecordBatchReader,
    StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use loyalty_rules::{Effect, Event, Outcome, Program};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
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
    let it = RecordBatchIterator::new(vec![Ok(batch)], schema.clone());
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

/// Convert all rows to events, on `threads` threads, in row order.
pub fn to_events(
    program: &Program,
    batches: &[RecordBatch],
    mapping: &Mapping,
    threads: usize,
) -> Result<Vec<Event>, RowError> {
    let mut out = Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
    let mut base = 0usize;
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
        let n = b.num_rows();
        let threads = threads.clamp(1, 64).min(n / 4096 + 1);
        if threads <= 1 {
            for i in 0..n {
                out.push(row_event(program, &cols, et.as_deref(), i, base)?);
            }
        } else {
            let chunk = n.div_ceil(threads);
            let parts: Vec<Result<Vec<Event>, RowError>> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..threads)
                    .map(|t| {
                        let (cols, et) = (&cols, et.as_deref());
                        s.spawn(move || {
                            let lo = t * chunk;
                            let hi = ((t + 1) * chunk).min(n);
                            let mut v = Vec::with_capacity(hi.saturating_sub(lo));
                            for i in lo..hi {
                                v.push(row_event(program, cols, et, i, base)?);
                            }
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
    Ok(out)
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

fn num_f64(f: f64) -> Json {
    Number::from_f64(f).map_or(Json::Null, Json::Number)
}

fn ts(v: i64, unit: &TimeUnit) -> Result<Json, String> {
    let t = match unit {
        TimeUnit::Second => DateTime::<Utc>::from_timestamp(v, 0),
        TimeUnit::Millisecond => DateTime::<Utc>::from_timestamp_millis(v),
        TimeUnit::Microsecond => DateTime::<Utc>::from_timestamp_micros(v),
        TimeUnit::Nanosecond => Some(DateTime::<Utc>::from_timestamp_nanos(v)),
    }
    .ok_or_else(|| format!("timestamp {v} out of range"))?;
    Ok(Json::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
}

fn time_of_day(nanos: i64) -> Result<Json, String> {
    let secs = nanos.div_euclid(1_000_000_000);
    chrono::NaiveTime::from_num_seconds_from_midnight_opt(secs as u32, 0)
        .filter(|_| (0..86_400).contains(&secs))
        .map(|t| Json::String(t.format("%H:%M:%S").to_string()))
        .ok_or_else(|| format!("time of day {nanos}ns out of range"))
}

fn date_of(days: i64) -> Result<Json, String> {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::Duration::days(days)))
        .map(|d| Json::String(d.to_string()))
        .ok_or_else(|| format!("date {days} out of range"))
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

/// Per-event results as one record batch: one row per event, in input
/// order, with points per rule.
pub struct ResultsBuilder<'a> {
    pub program: &'a Program,
    pub detail: bool,
}

impl ResultsBuilder<'_> {
    pub fn build(
        &self,
        outcomes: &[Outcome],
        times: &[i64],
        rows: &[i64],
        source: &crate::errors::Offsets,
    ) -> Result<RecordBatch, String> {
        let rules: Vec<&str> = self.program.rule_names().collect();
        let index: HashMap<&str, usize> = rules.iter().enumerate().map(|(i, r)| (*r, i)).collect();
        let n = outcomes.len();
        let mut per_rule = vec![vec![0f64; n]; rules.len()];
        let mut points = Vec::with_capacity(n);
        let mut event = Vec::with_capacity(n);
        let mut customer = Vec::with_capacity(n);
        let mut ety = Vec::with_capacity(n);
        let mut status: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut reason: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut errors: Vec<Option<String>> = Vec::with_capacity(n);
        let mut rewards: Vec<Option<String>> = Vec::with_capacity(n);
        let mut detail: Vec<String> = Vec::new();
        for (k, o) in outcomes.iter().enumerate() {
            points.push(dec_f64(&o.points));
            event.push(&*o.event);
            customer.push(&*o.customer);
            ety.push(&*o.event_type);
            status.push(o.status.map(|s| match s {
                loyalty_rules::Status::Applied => "applied",
                loyalty_rules::Status::Duplicate => "duplicate",
                loyalty_rules::Status::Rejected => "rejected",
            }));
            reason.push(o.reason.as_deref());
            errors.push(if o.errors.is_empty() {
                None
            } else {
                Some(
                    o.errors
                        .iter()
                        .map(|e| format!("{}: {}", e.rule, e.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            });
            let mut rw: Vec<&str> = Vec::new();
            for e in &o.effects {
                match e {
                    Effect::Award {
                        rule, kind, points, ..
                    }
                    | Effect::Multiply {
                        rule, kind, points, ..
                    } if &**kind == "points" => {
                        if let Some(&r) = index.get(&**rule) {
                            per_rule[r][k] += dec_f64(points);
                        }
                    }
                    Effect::Reward { reward, .. } => rw.push(reward),
                    _ => {}
                }
            }
            rewards.push(if rw.is_empty() {
                None
            } else {
                Some(rw.join("; "))
            });
            if self.detail {
                let mut v = serde_json::to_value(o).unwrap_or(Json::Null);
                if let Some(Json::Array(ex)) = v.get_mut("explanation") {
                    for x in ex {
                        source.fix(x);
                    }
                }
                detail.push(v.to_string());
            }
        }
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
            Field::new("points", DataType::Float64, false),
            Field::new("rewards", DataType::Utf8, true),
            Field::new("errors", DataType::Utf8, true),
        ];
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(rows.to_vec())),
            Arc::new(StringArray::from(event)),
            Arc::new(StringArray::from(customer)),
            Arc::new(StringArray::from(ety)),
            Arc::new(TimestampMicrosecondArray::from(times.to_vec()).with_timezone("UTC")),
            Arc::new(StringArray::from(status)),
            Arc::new(StringArray::from(reason)),
            Arc::new(Float64Array::from(points)),
            Arc::new(StringArray::from(rewards)),
            Arc::new(StringArray::from(errors)),
        ];
        for (r, vals) in rules.iter().zip(per_rule) {
            fields.push(Field::new(format!("points:{r}"), DataType::Float64, false));
            cols.push(Arc::new(Float64Array::from(vals)));
        }
        if self.detail {
            fields.push(Field::new("outcome", DataType::Utf8, false));
            cols.push(Arc::new(StringArray::from(detail)));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| e.to_string())
    }
}

/// A decimal as the nearest f64.
pub fn dec_f64(d: &rust_decimal::Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    d.to_f64().unwrap_or(f64::NAN)
}

/// Customer states as a batch: `customer` (utf8), `state` (utf8, JSON).
pub fn states_batch(states: &[loyalty_rules::CustomerState]) -> Result<RecordBatch, String> {
    let ids: Vec<&str> = states.iter().map(|s| s.id.as_str()).collect();
    let js: Vec<String> = states
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("customer", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(js)),
        ],
    )
    .map_err(|e| e.to_string())
}

/// Read a states table back (`state` column of JSON text).
pub fn states_from_batches(
    batches: &[RecordBatch],
) -> Result<Vec<loyalty_rules::CustomerState>, String> {
    let mut out = Vec::new();
    for b in batches {
        let col = b.column_by_name("state").ok_or(
            "a states table needs a `state` column (JSON text, as written by states_table())",
        )?;
        for i in 0..b.num_rows() {
            if col.is_null(i) {
                continue;
            }
            let text = match cell(col.as_ref(), i)? {
                Json::String(s) => s,
                _ => return Err("the `state` column must hold JSON text".into()),
            };
            out.push(serde_json::from_str(&text).map_err(|e| format!("state row {i}: {e}"))?);
        }
    }
    Ok(out)
}
