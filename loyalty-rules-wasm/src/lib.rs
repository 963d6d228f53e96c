//! WebAssembly bindings for the `loyalty-rules` engine.
//!
//! A thin adapter: every result is the core's own serde JSON, passed through
//! unchanged, plus `from`/`to` UTF-16 code-unit offsets next to each UTF-8
//! byte span (`start`/`end`) so JavaScript editors can use them directly.
//! User mistakes (bad rules, bad event/customer JSON) come back as data;
//! nothing is thrown for them.

use loyalty_rules as core;
use serde::Serialize;
use serde_json::{json, Map, Value};
use wasm_bindgen::prelude::*;

pub mod utf16;
use utf16::Utf16Map;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Severity of a diagnostic. */
export type Severity = "error" | "warning";

/** Machine-readable kind of a problem (the core's `ErrorKind`). */
export type ErrorKind =
  | "syntax" | "unknown_event" | "unknown_field" | "unknown_name" | "unknown_tier"
  | "unknown_reward" | "unknown_type" | "unknown_function" | "type_mismatch"
  | "contradiction" | "duplicate" | "invalid_rule" | "invalid_setting" | "limit"
  | "invalid_event" | "invalid_customer" | "json" | (string & {});

/**
 * A problem found in a program. `start`/`end` are UTF-8 byte offsets (as the
 * Rust core reports them); `from`/`to` are the same span in UTF-16 code units,
 * i.e. JavaScript string indices (what CodeMirror and Monaco count).
 * `line`/`column` are 1-based; columns count Unicode scalar values.
 */
export interface Diagnostic {
  severity: Severity;
  kind: ErrorKind;
  message: string;
  hint: string | null;
  start: number;
  end: number;
  from: number;
  to: number;
  line: number;
  column: number;
  end_line: number;
  end_column: number;
}

/** The core's `Error::to_json()`, with `from`/`to` added to each diagnostic. */
export interface RulesError {
  kind: ErrorKind;
  message: string;
  /** Path of the offending field, for event/customer errors: "items[0].price". */
  field?: string | null;
  diagnostics: Diagnostic[];
}

/** One effect of an outcome. Decimal values are strings. */
export type Effect =
  | { effect: "award"; rule: string; customer: string; kind: string; points: string;
      capped?: { limit: string; requested: string; remaining: string } }
  | { effect: "multiply"; rule: string; customer: string; kind: string; factor: string; points: string }
  | { effect: "redeem"; rule: string; customer: string; points: string; reward?: string }
  | { effect: "reward"; rule: string; customer: string; reward: string }
  | { effect: "tier"; rule: string; customer: string; from: string | null; to: string }
  | { effect: "tag"; rule: string; customer: string; tag: string }
  | { effect: "notify"; rule: string; customer: string; message: string }
  | { effect: "set_attribute"; rule: string; customer: string; attribute: string; value: unknown }
  | { effect: "extend_expiry"; rule: string; customer: string; months?: number; days?: number };

/** Why one rule did or did not fire (present only from `Program.explain`). */
export interface RuleExplanation {
  rule: string;
  fired: boolean;
  /** e.g. "condition_failed", when the rule did not fire. */
  reason?: string;
  /** Source text of the deciding condition. */
  condition?: string;
  line: number;
  column: number;
  start: number;
  end: number;
  from: number;
  to: number;
  values?: { expr: string; value: string }[];
  [key: string]: unknown;
}

/** What a program did with one event. */
export interface Outcome {
  event: string;
  event_type: string;
  customer: string;
  /** Total points, as a decimal string. */
  points: string;
  effects: Effect[];
  explanation?: RuleExplanation[];
  [key: string]: unknown;
}

/** A name available at the cursor, for autocompletion. */
export interface Completion {
  label: string;
  kind: "keyword" | "event" | "field" | "attribute" | "tier" | "reward" | (string & {});
  detail?: string | null;
}

/** An event or customer: a plain object, or its JSON text. */
export type JsonInput = string | Record<string, unknown>;

export type CompileResult =
  | { ok: true; program: Program }
  | { ok: false; error: RulesError };

/** From `checkAndCompile`: every diagnostic, and the program when none is an error. */
export interface CheckAndCompileResult {
  diagnostics: Diagnostic[];
  program: Program | null;
}

export type FormatResult =
  | { ok: true; formatted: string }
  | { ok: false; error: RulesError };

export type OkResult = { ok: true } | { ok: false; error: RulesError };

/** A ledger entry from `Engine.advanceTo` (the core's `LedgerEntry` JSON). */
export type LedgerEntry = Record<string, unknown>;
/** A customer's state in an `Engine` (the core's `CustomerState` JSON). */
export type CustomerState = { id: string; balances: Record<string, string>; [key: string]: unknown };
/** An `Engine`'s whole state (the core's `Snapshot` JSON). */
export type Snapshot = { customers: CustomerState[]; [key: string]: unknown };

export type AdvanceResult =
  | { ok: true; ledger: LedgerEntry[] }
  | { ok: false; error: RulesError };

export type EvaluateResult =
  | { ok: true; outcome: Outcome }
  | { ok: false; error: RulesError };

/** `Program.matchingRules`: rule names in evaluation order. */
export type MatchingResult =
  | { ok: true; rules: string[] }
  | { ok: false; error: RulesError };
"#;

// ---------------------------------------------------------------------------
// plumbing

fn to_js(value: &Value) -> JsValue {
    // One JSON text and one `JSON.parse`: smaller and faster than building the
    // object field by field across the boundary, and the same values (maps are
    // plain objects, `None` is `null`).
    js_sys::JSON::parse(&value.to_string()).unwrap_or(JsValue::NULL)
}

fn ser<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| {
        json!({"kind": "internal", "message": format!("cannot serialise result: {e}"), "diagnostics": []})
    })
}

/// Adds `from`/`to` (UTF-16) beside `start`/`end` (UTF-8) in one object.
fn add_utf16_span(obj: &mut Value, map: &Utf16Map) {
    if let Value::Object(o) = obj {
        let start = o.get("start").and_then(Value::as_u64);
        let end = o.get("end").and_then(Value::as_u64);
        if let (Some(s), Some(e)) = (start, end) {
            o.insert("from".into(), map.to_utf16(s as usize).into());
            o.insert("to".into(), map.to_utf16(e as usize).into());
        }
    }
}

fn add_utf16_spans(list: &mut Value, map: &Utf16Map) {
    if let Value::Array(items) = list {
        for item in items {
            add_utf16_span(item, map);
        }
    }
}

fn error_json(err: &core::Error, map: &Utf16Map) -> Value {
    let mut v = err.to_json();
    if let Some(d) = v.get_mut("diagnostics") {
        add_utf16_spans(d, map);
    } else if let Value::Object(o) = &mut v {
        o.insert("diagnostics".into(), Value::Array(vec![]));
    }
    v
}

fn result_ok(key: &str, value: Value) -> Value {
    let mut o = Map::new();
    o.insert("ok".into(), true.into());
    o.insert(key.into(), value);
    Value::Object(o)
}

fn result_err(error: Value) -> Value {
    json!({"ok": false, "error": error})
}

/// Event or customer input: a JSON string is used as is; anything else goes
/// through `JSON.stringify` so Rust parses exactly the same text it would get
/// from a file.
fn json_text(value: &JsValue) -> Option<String> {
    if let Some(s) = value.as_string() {
        return Some(s);
    }
    if value.is_undefined() || value.is_null() || value.is_function() || value.is_symbol() {
        return None;
    }
    js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
}

fn input_error(kind: &str, what: &str) -> Value {
    json!({
        "kind": kind,
        "message": format!("{what} must be an object or a JSON string"),
        "diagnostics": [],
    })
}

// ---------------------------------------------------------------------------
// panics

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

/// A panic is a bug (the core must never panic): say where on the console
/// before the wasm `unreachable` trap turns it into a JS `RuntimeError`.
#[wasm_bindgen(start)]
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        console_error(&format!(
            "loyalty-rules-wasm: internal error (panic): {info}"
        ));
    }));
}

// ---------------------------------------------------------------------------
// API

/// Version of this package (and of the core it was built from).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Checks a program: every diagnostic (errors and warnings), sorted by start
/// offset as the core returns them. An empty list means the program is clean.
#[wasm_bindgen(unchecked_return_type = "Diagnostic[]")]
pub fn check(source: &str) -> JsValue {
    let map = Utf16Map::new(source);
    let mut list = ser(&core::check(source));
    add_utf16_spans(&mut list, &map);
    to_js(&list)
}

/// Formats a program into its canonical form.
#[wasm_bindgen(unchecked_return_type = "FormatResult")]
pub fn format(source: &str) -> JsValue {
    let map = Utf16Map::new(source);
    let v = match core::format(source) {
        Ok(text) => result_ok("formatted", Value::String(text)),
        Err(e) => result_err(error_json(&e, &map)),
    };
    to_js(&v)
}

/// Names available at `offset` (a UTF-16 offset, i.e. a JavaScript string
/// index such as `textarea.selectionStart`): events, fields, tiers, rewards,
/// keywords.
#[wasm_bindgen(unchecked_return_type = "Completion[]")]
pub fn completions(source: &str, offset: u32) -> JsValue {
    let map = Utf16Map::new(source);
    let byte = map.to_byte(offset as usize);
    to_js(&ser(&core::completions(source, byte)))
}

/// Checks and compiles in one pass (the source is parsed once), for editors
/// that want both on every keystroke: `diagnostics` as `check` returns them,
/// and `program` as `compile` would return it when none of them is an error
/// (otherwise `null`).
#[wasm_bindgen(js_name = checkAndCompile, unchecked_return_type = "CheckAndCompileResult")]
pub fn check_and_compile(source: &str) -> JsValue {
    let map = Utf16Map::new(source);
    let (diagnostics, program) = core::check_and_compile(source);
    let mut list = ser(&diagnostics);
    add_utf16_spans(&mut list, &map);
    let obj = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&obj, &"diagnostics".into(), &to_js(&list));
    let program = match program {
        Some(inner) => JsValue::from(Program { inner, map }),
        None => JsValue::NULL,
    };
    let _ = js_sys::Reflect::set(&obj, &"program".into(), &program);
    obj.into()
}

/// Compiles a program once; evaluate many events with the returned `Program`.
#[wasm_bindgen(unchecked_return_type = "CompileResult")]
pub fn compile(source: &str) -> JsValue {
    let map = Utf16Map::new(source);
    match core::Program::compile(source) {
        Ok(program) => {
            let obj = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&obj, &"ok".into(), &JsValue::TRUE);
            let handle = JsValue::from(Program {
                inner: program,
                map,
            });
            let _ = js_sys::Reflect::set(&obj, &"program".into(), &handle);
            obj.into()
        }
        Err(e) => to_js(&result_err(error_json(&e, &map))),
    }
}

/// A compiled program. Call `free()` when done with it (it is also freed by
/// the garbage collector where `FinalizationRegistry` exists).
#[wasm_bindgen]
pub struct Program {
    inner: core::Program,
    map: Utf16Map,
}

#[wasm_bindgen]
impl Program {
    /// Evaluates one event for one customer (no explanation).
    #[wasm_bindgen(unchecked_return_type = "EvaluateResult")]
    pub fn evaluate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "JsonInput")] event: JsValue,
        #[wasm_bindgen(unchecked_param_type = "JsonInput")] customer: JsValue,
    ) -> JsValue {
        to_js(&self.run(&event, &customer, false))
    }

    /// The names of the rules whose dates and condition hold for the event
    /// and customer, in evaluation order, without effects, groups or limits
    /// (campaign eligibility).
    #[wasm_bindgen(js_name = matchingRules, unchecked_return_type = "MatchingResult")]
    pub fn matching_rules(
        &self,
        #[wasm_bindgen(unchecked_param_type = "JsonInput")] event: JsValue,
        #[wasm_bindgen(unchecked_param_type = "JsonInput")] customer: JsValue,
    ) -> JsValue {
        let (event, customer) = match self.inputs(&event, &customer) {
            Ok(x) => x,
            Err(e) => return to_js(&e),
        };
        let names: Vec<&str> = self.inner.matching_rules(&event, &customer).collect();
        to_js(&result_ok("rules", json!(names)))
    }

    /// Evaluates one event for one customer, with the per-rule explanation.
    #[wasm_bindgen(unchecked_return_type = "EvaluateResult")]
    pub fn explain(
        &self,
        #[wasm_bindgen(unchecked_param_type = "JsonInput")] event: JsValue,
        #[wasm_bindgen(unchecked_param_type = "JsonInput")] customer: JsValue,
    ) -> JsValue {
        to_js(&self.run(&event, &customer, true))
    }
}

impl Program {
    /// The customer, then the event (the order of the Rust conformance
    /// runner), or the error result for the first that does not decode.
    fn inputs(
        &self,
        event: &JsValue,
        customer: &JsValue,
    ) -> Result<(core::Event, core::Customer), Value> {
        let Some(customer_text) = json_text(customer) else {
            return Err(result_err(input_error("invalid_customer", "customer")));
        };
        let customer = self
            .inner
            .customer_from_json(&customer_text)
            .map_err(|e| result_err(error_json(&e, &self.map)))?;
        let Some(event_text) = json_text(event) else {
            return Err(result_err(input_error("invalid_event", "event")));
        };
        let event = self
            .inner
            .event_from_json(&event_text)
            .map_err(|e| result_err(error_json(&e, &self.map)))?;
        Ok((event, customer))
    }

    fn run(&self, event: &JsValue, customer: &JsValue, explain: bool) -> Value {
        let (event, customer) = match self.inputs(event, customer) {
            Ok(x) => x,
            Err(e) => return e,
        };
        let outcome = if explain {
            self.inner.explain(&event, &customer)
        } else {
            self.inner.evaluate(&event, &customer)
        };
        let mut v = ser(&outcome);
        if let Some(ex) = v.get_mut("explanation") {
            add_utf16_spans(ex, &self.map);
        }
        result_ok("outcome", v)
    }
}

// ---------------------------------------------------------------------------
// Stateful engine (balances, history, limits, time)

/// A stateful engine over a compiled program: customers' balances, history,
/// caps and time. `process` applies an event, `preview` is a dry run with
/// explanation, `advanceTo` moves time (pending points, expiry, tier
/// reviews). State lives in memory; `snapshot()` exports it as JSON.
#[wasm_bindgen]
pub struct Engine {
    inner: core::Engine,
    map: Utf16Map,
}

#[wasm_bindgen]
impl Engine {
    /// An engine with no customers yet, for a compiled program (which stays usable).
    #[wasm_bindgen(constructor)]
    pub fn new(program: &Program) -> Engine {
        Engine {
            inner: core::Engine::new(program.inner.clone()),
            map: Utf16Map::new(program.inner.source()),
        }
    }

    /// Creates or updates a customer's profile (balances and history are kept).
    #[wasm_bindgen(js_name = setCustomer, unchecked_return_type = "OkResult")]
    pub fn set_customer(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "JsonInput")] customer: JsValue,
    ) -> JsValue {
        let v = match json_value(&customer, "invalid_customer", "customer") {
            Ok(v) => v,
            Err(e) => return to_js(&result_err(e)),
        };
        to_js(&match self.inner.set_customer(&v) {
            Ok(()) => json!({"ok": true}),
            Err(e) => result_err(error_json(&e, &self.map)),
        })
    }

    /// Processes one event: applies its effects to the customers' states.
    #[wasm_bindgen(unchecked_return_type = "EvaluateResult")]
    pub fn process(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "JsonInput")] event: JsValue,
    ) -> JsValue {
        let ev = match self.event(&event) {
            Ok(e) => e,
            Err(e) => return to_js(&result_err(e)),
        };
        let out = self.inner.process(&ev);
        to_js(&self.outcome(&out))
    }

    /// What `process` would do, without changing anything, with an explanation.
    #[wasm_bindgen(unchecked_return_type = "EvaluateResult")]
    pub fn preview(
        &self,
        #[wasm_bindgen(unchecked_param_type = "JsonInput")] event: JsValue,
    ) -> JsValue {
        let ev = match self.event(&event) {
            Ok(e) => e,
            Err(e) => return to_js(&result_err(e)),
        };
        let out = self.inner.preview(&ev);
        to_js(&self.outcome(&out))
    }

    /// Moves time to `time` (RFC 3339) for every customer; returns the ledger entries it caused.
    #[wasm_bindgen(js_name = advanceTo, unchecked_return_type = "AdvanceResult")]
    pub fn advance_to(&mut self, time: &str) -> JsValue {
        match time.parse::<chrono::DateTime<chrono::Utc>>() {
            Ok(t) => to_js(&result_ok("ledger", ser(&self.inner.advance_to(t)))),
            Err(e) => to_js(&result_err(json!({
                "kind": "invalid_event",
                "message": format!("`{time}` is not an RFC 3339 time: {e}"),
                "diagnostics": [],
            }))),
        }
    }

    /// A customer's state (balances, tier, history), or `null` if unknown.
    #[wasm_bindgen(unchecked_return_type = "CustomerState | null")]
    pub fn customer(&self, id: &str) -> JsValue {
        match self.inner.customer(id) {
            Some(st) => to_js(&ser(st)),
            None => JsValue::NULL,
        }
    }

    /// The whole state as JSON (customers sorted by id, campaign counters).
    #[wasm_bindgen(unchecked_return_type = "Snapshot")]
    pub fn snapshot(&self) -> JsValue {
        to_js(&ser(&self.inner.snapshot()))
    }
}

impl Engine {
    fn event(&self, event: &JsValue) -> Result<core::Event, Value> {
        let v = json_value(event, "invalid_event", "event")?;
        self.inner
            .program()
            .event_from_value(&v)
            .map_err(|e| error_json(&e, &self.map))
    }

    fn outcome(&self, out: &core::Outcome) -> Value {
        let mut v = ser(out);
        if let Some(ex) = v.get_mut("explanation") {
            add_utf16_spans(ex, &self.map);
        }
        result_ok("outcome", v)
    }
}

/// JSON text or a JS object -> serde_json::Value, parsed by serde_json as the
/// Rust API would parse the same text.
fn json_value(value: &JsValue, kind: &str, what: &str) -> Result<Value, Value> {
    let Some(text) = json_text(value) else {
        return Err(input_error(kind, what));
    };
    serde_json::from_str(&text).map_err(
        |e| json!({"kind": kind, "message": format!("not valid JSON: {e}"), "diagnostics": []}),
    )
}
