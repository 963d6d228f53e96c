//! Python objects <-> `serde_json::Value`, the core's input and output
//! currency. Hand-written rather than pythonize so that the values data
//! people actually have (`Decimal`, `datetime`, `date`, numpy scalars via
//! `__index__`/`__float__`) are accepted; every failure names the path.

use chrono::SecondsFormat;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value as Json};

/// Convert a Python value to JSON. `path` names the value in errors.
pub fn to_json(obj: &Bound<'_, PyAny>, path: &str) -> PyResult<Json> {
    if obj.is_none() {
        return Ok(Json::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Json::Bool(b.is_true()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Json::String(s.to_str()?.to_owned()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Json::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Json::from(u));
        }
        // a big integer: keep it exact as text, the core reads decimals from text
        return Ok(Json::String(obj.str()?.to_str()?.to_owned()));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Number::from_f64(f.value()).map_or(Json::Null, Json::Number));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut m = Map::new();
        for (k, v) in d.iter() {
            let key: String = match k.cast::<PyString>() {
                Ok(s) => s.to_str()?.to_owned(),
                Err(_) => {
                    return Err(PyTypeError::new_err(format!(
                        "{}: keys must be str, got {}",
                        if path.is_empty() { "object" } else { path },
                        k.get_type().name()?
                    )))
                }
            };
            let sub = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            m.insert(key, to_json(&v, &sub)?);
        }
        return Ok(Json::Object(m));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .enumerate()
            .map(|(i, x)| to_json(&x, &format!("{path}[{i}]")))
            .collect::<PyResult<Vec<_>>>()
            .map(Json::Array);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t
            .iter()
            .enumerate()
            .map(|(i, x)| to_json(&x, &format!("{path}[{i}]")))
            .collect::<PyResult<Vec<_>>>()
            .map(Json::Array);
    }
    // Duck-typed values (limited API: no datetime C types).
    let ty = obj.get_type();
    let name = ty.name()?;
    let name = name.to_str()?;
    match name {
        "Decimal" => return Ok(Json::String(obj.str()?.to_str()?.to_owned())),
        "datetime" | "Timestamp" => {
            // naive datetimes are taken as UTC
            let tz = obj.getattr("tzinfo")?;
            let iso: String = obj.call_method0("isoformat")?.extract()?;
            if tz.is_none() {
                return Ok(Json::String(format!("{iso}Z")));
            }
            // normalise to UTC through chrono so every offset form is accepted
            return Ok(Json::String(
                chrono::DateTime::parse_from_rfc3339(&iso)
                    .map(|t| {
                        t.with_timezone(&chrono::Utc)
                            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
                    })
                    .unwrap_or(iso),
            ));
        }
        "date" | "time" => {
            return Ok(Json::String(obj.call_method0("isoformat")?.extract()?));
        }
        _ => {}
    }
    if let Ok(m) = obj.cast::<pyo3::types::PyMapping>() {
        let d = PyDict::new(obj.py());
        for item in m.items()?.iter() {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
            d.set_item(k, v)?;
        }
        return to_json(d.as_any(), path);
    }
    // numpy scalars and friends
    if obj.hasattr("__index__")? {
        if let Ok(i) = obj.call_method0("__index__")?.extract::<i64>() {
            return Ok(Json::from(i));
        }
    }
    if obj.hasattr("__float__")? {
        let f: f64 = obj.call_method0("__float__")?.extract()?;
        return Ok(Number::from_f64(f).map_or(Json::Null, Json::Number));
    }
    Err(PyTypeError::new_err(format!(
        "{}: cannot convert a value of type {name} (use str, int, float, bool, None, Decimal, datetime, date, dict or list)",
        if path.is_empty() { "value" } else { path }
    )))
}

/// Convert JSON to Python (dicts, lists, str, int, float, bool, None).
pub fn to_py<'py>(py: Python<'py>, v: &Json) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Json::Null => py.None().into_bound(py),
        Json::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Json::String(s) => PyString::new(py, s).into_any(),
        Json::Array(a) => {
            let l = PyList::empty(py);
            for x in a {
                l.append(to_py(py, x)?)?;
            }
            l.into_any()
        }
        Json::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}
