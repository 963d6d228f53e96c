//! Core errors -> the Python exceptions of `loyalty_rules.errors`, and
//! byte offsets -> code-point offsets.

use pyo3::prelude::*;
use serde_json::{json, Value as Json};

use crate::pyjson;

pyo3::import_exception!(loyalty_rules.errors, LoyaltyRulesError);
pyo3::import_exception!(loyalty_rules.errors, ProgramError);
pyo3::import_exception!(loyalty_rules.errors, EventError);
pyo3::import_exception!(loyalty_rules.errors, CustomerError);

/// Maps UTF-8 byte offsets of one source text to code-point offsets
/// (what Python's `str` indexes by). Identity for ASCII sources.
pub struct Offsets {
    /// `chars[b]` = number of code points before byte `b`; empty if ASCII.
    chars: Vec<u32>,
}

impl Offsets {
    pub fn new(source: &str) -> Offsets {
        if source.is_ascii() {
            return Offsets { chars: Vec::new() };
        }
        let mut chars = vec![0u32; source.len() + 1];
        let mut n = 0u32;
        for (i, c) in source.char_indices() {
            for slot in &mut chars[i..i + c.len_utf8()] {
                *slot = n;
            }
            n += 1;
        }
        chars[source.len()] = n;
        Offsets { chars }
    }

    /// Code-point offset of a byte offset (clamped to the text).
    pub fn to_chars(&self, byte: usize) -> usize {
        if self.chars.is_empty() {
            return byte;
        }
        self.chars[byte.min(self.chars.len() - 1)] as usize
    }

    /// Rewrite `start`/`end` of a JSON object in place.
    pub fn fix(&self, v: &mut Json) {
        if self.chars.is_empty() {
            return;
        }
        if let Json::Object(m) = v {
            for key in ["start", "end"] {
                if let Some(b) = m.get(key).and_then(Json::as_u64) {
                    m.insert(key.into(), json!(self.to_chars(b as usize)));
                }
            }
        }
    }
}

/// Byte offset of a code-point offset in `source` (clamped).
pub fn char_to_byte(source: &str, chars: usize) -> usize {
    source
        .char_indices()
        .nth(chars)
        .map_or(source.len(), |(b, _)| b)
}

/// Diagnostics as JSON with code-point offsets.
pub fn diagnostics_json(diags: &[loyalty_rules::Diagnostic], source: &str) -> Json {
    let offs = Offsets::new(source);
    let mut v = serde_json::to_value(diags).unwrap_or(Json::Array(Vec::new()));
    if let Json::Array(a) = &mut v {
        for d in a {
            offs.fix(d);
        }
    }
    v
}

/// A core error as a Python exception. `row` is the input row for batch
/// input (0-based), when known.
pub fn to_pyerr(py: Python<'_>, e: &loyalty_rules::Error, row: Option<usize>) -> PyErr {
    let mut payload = e.to_json();
    if let Json::Object(m) = &mut payload {
        m.insert("rendered".into(), Json::String(e.render()));
        if let Some(r) = row {
            m.insert("row".into(), json!(r));
        }
    }
    raise(py, e.kind(), e.diagnostics().is_empty(), payload)
}

/// Like [`to_pyerr`], for errors of compiling `source` (offsets converted).
pub fn to_pyerr_src(py: Python<'_>, e: &loyalty_rules::Error, source: &str) -> PyErr {
    let mut payload = e.to_json();
    if let Json::Object(m) = &mut payload {
        m.insert("rendered".into(), Json::String(e.render()));
        m.insert(
            "diagnostics".into(),
            diagnostics_json(e.diagnostics(), source),
        );
    }
    raise(py, e.kind(), e.diagnostics().is_empty(), payload)
}

fn raise(py: Python<'_>, kind: loyalty_rules::ErrorKind, no_diags: bool, payload: Json) -> PyErr {
    use loyalty_rules::ErrorKind as K;
    let message = payload
        .get("message")
        .and_then(Json::as_str)
        .unwrap_or("error")
        .to_string();
    let build = || -> PyResult<PyErr> {
        let ty = if !no_diags {
            py.get_type::<ProgramError>()
        } else {
            match kind {
                K::InvalidEvent => py.get_type::<EventError>(),
                K::InvalidCustomer => py.get_type::<CustomerError>(),
                _ => py.get_type::<LoyaltyRulesError>(),
            }
        };
        let obj = ty.call1((message.clone(), pyjson::to_py(py, &payload)?))?;
        Ok(PyErr::from_value(obj))
    };
    build().unwrap_or_else(|e| e)
}

/// A Python exception of kind `kind` with a plain message (binding-level
/// problems: bad column types, bad snapshots).
pub fn plain(py: Python<'_>, kind: &str, message: String, extra: Json) -> PyErr {
    let mut payload = json!({"kind": kind, "message": message, "diagnostics": []});
    if let (Json::Object(m), Json::Object(x)) = (&mut payload, extra) {
        m.extend(x);
    }
    let k = match kind {
        "invalid_event" => loyalty_rules::ErrorKind::InvalidEvent,
        "invalid_customer" => loyalty_rules::ErrorKind::InvalidCustomer,
        _ => loyalty_rules::ErrorKind::Json,
    };
    raise(py, k, true, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_code_points() {
        let s = "rule \"Café €5 bonus\" x";
        let o = Offsets::new(s);
        let x = s.find('x').unwrap();
        assert_eq!(o.to_chars(x), s.chars().position(|c| c == 'x').unwrap());
        assert_eq!(char_to_byte(s, o.to_chars(x)), x);
        assert_eq!(o.to_chars(s.len()), s.chars().count());
    }
}
