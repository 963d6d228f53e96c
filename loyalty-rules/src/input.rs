//! JSON -> typed events and customers, checked against the program's
//! schema. Every error names the offending field.

use std::io::Write as _;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, SecondsFormat, Timelike, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Number, Value as Json};

use crate::error::{did_you_mean, Error, ErrorKind};
use crate::ir::ProgramIr;
use crate::limits;
use crate::schema::*;
use crate::Program;

/// An event, decoded and checked against a program's schema.
///
/// Build one with [`Program::event_from_json`](crate::Program::event_from_json).
/// Another program (one swapped in while events were in flight, say) takes
/// it if it decodes the event's type the same way (the same fields, item
/// fields and tiers where the type uses them, and time zone), whatever
/// index it gives the type; otherwise its outcome is `rejected`, with the
/// reason, and nothing changes.
#[derive(Clone, Debug)]
pub struct Event {
    pub(crate) ty: u16,
    pub(crate) type_name: Arc<str>,
    pub(crate) id: Arc<str>,
    pub(crate) customer: Arc<str>,
    pub(crate) time: DateTime<Utc>,
    pub(crate) local: Local,
    pub(crate) fields: Vec<Value>,
    /// The decoding program's fingerprint of the event's type
    /// (`ProgramIr::event_keys`).
    pub(crate) key: u64,
}

/// The event's time in the program's time zone, precomputed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Local {
    pub date: NaiveDate,
    pub time: NaiveTime,
    pub weekday: u8,
    /// `date` as days from the Common Era (for rules' active dates).
    pub day: i32,
}

impl Event {
    /// The event's id (the idempotency key).
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The id of the customer the event belongs to.
    pub fn customer(&self) -> &str {
        &self.customer
    }
    /// The event type's name (`purchase`, ...).
    pub fn event_type(&self) -> &str {
        &self.type_name
    }
    /// When the event happened (UTC).
    pub fn time(&self) -> DateTime<Utc> {
        self.time
    }
}

/// A customer profile as the rules see it: built-in fields (`tier`, `tags`,
/// `points`, `birthday`, ...) and the program's declared attributes.
#[derive(Clone, Debug)]
pub struct Customer {
    pub(crate) id: Arc<str>,
    pub(crate) fields: Vec<Value>,
    /// The decoding program's `ProgramIr::customer_key`.
    pub(crate) key: u64,
}

impl Customer {
    /// The customer's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

fn bad(kind: ErrorKind, field: &str, msg: String) -> Error {
    Error::input(kind, Some(field.to_string()), msg)
}

pub(crate) fn local_of(ir: &ProgramIr, t: DateTime<Utc>) -> Local {
    let l = t.with_timezone(&ir.tz).naive_local();
    Local {
        date: l.date(),
        time: l.time(),
        weekday: l.weekday().num_days_from_monday() as u8,
        day: l.date().num_days_from_ce(),
    }
}

pub(crate) fn parse_json(json: &str, kind: ErrorKind) -> Result<Json, Error> {
    serde_json::from_str(json).map_err(|e| Error::input(kind, None, format!("not valid JSON: {e}")))
}

pub(crate) fn event_from_value(ir: &ProgramIr, v: &Json) -> Result<Event, Error> {
    let k = ErrorKind::InvalidEvent;
    let Json::Object(obj) = v else {
        return Err(Error::input(
            k,
            None,
            "an event must be a JSON object".into(),
        ));
    };
    let ty = match obj.get("type") {
        Some(Json::String(s)) => event_type_index(ir, s)?,
        Some(_) => return Err(type_not_text()),
        None => return Err(type_missing()),
    };
    let schema = &ir.events[ty];
    let fields = record(ir, &schema.fields, obj, &String::new, k, &["type"])?;
    assemble_event(ir, ty, Arc::from(schema.name.as_str()), fields)
}

fn type_not_text() -> Error {
    bad(
        ErrorKind::InvalidEvent,
        "type",
        "`type` must be text".into(),
    )
}

fn type_missing() -> Error {
    bad(
        ErrorKind::InvalidEvent,
        "type",
        "missing field `type` (the event type, e.g. \"purchase\")".into(),
    )
}

/// The index of the event type called `name` (any case).
fn event_type_index(ir: &ProgramIr, name: &str) -> Result<usize, Error> {
    let type_name = name.to_ascii_lowercase();
    match ir.events.iter().position(|e| e.name == type_name) {
        Some(ty) => Ok(ty),
        None => {
            let hint = did_you_mean(&type_name, ir.events.iter().map(|e| e.name.as_str()))
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            Err(bad(
                ErrorKind::InvalidEvent,
                "type",
                format!("unknown event type \"{type_name}\"{hint}"),
            ))
        }
    }
}

/// An event from its checked field values (in slot order).
fn assemble_event(
    ir: &ProgramIr,
    ty: usize,
    type_name: Arc<str>,
    fields: Vec<Value>,
) -> Result<Event, Error> {
    let k = ErrorKind::InvalidEvent;
    let id = match &fields[EV_ID] {
        Value::Text(s) => s.clone(),
        _ => return Err(bad(k, "id", "missing field `id`".into())),
    };
    let customer = match &fields[EV_CUSTOMER] {
        Value::Text(s) => s.clone(),
        _ => return Err(bad(k, "customer", "missing field `customer`".into())),
    };
    let time = match &fields[EV_TIME] {
        Value::DateTime(t) => *t,
        _ => return Err(bad(k, "time", "missing field `time`".into())),
    };
    Ok(Event {
        ty: ty as u16,
        type_name,
        id,
        customer,
        time,
        local: local_of(ir, time),
        fields,
        key: ir.event_keys.get(ty).copied().unwrap_or(0),
    })
}

/// The fingerprints of `ProgramIr::event_keys` and `customer_key`: the
/// fields (names, types, whether optional, defaults), with the item fields
/// for types with basket lines, the tiers for types with tier fields
/// (there or in their lines), and the time zone (which `Event::local` is
/// in). So a program that adds a tier or a declared event type still takes
/// a `purchase` decoded before it. (Texts made here rather than `Debug`
/// output, which would add the schema types' `Debug` code to the WASM
/// module.)
pub(crate) fn decode_keys(ir: &ProgramIr) -> (Vec<u64>, u64) {
    use std::fmt::Write as _;
    let has = |defs: &[FieldDef], t: Ty| {
        defs.iter()
            .any(|f| f.ty == t || matches!((f.ty, t), (Ty::List(Elem::Item), Ty::Item)))
    };
    let fields = |out: &mut String, defs: &[FieldDef]| {
        for f in defs {
            let default = f.default.as_ref().map(|d| to_json(ir, d).to_string());
            let opt = if f.optional { "?" } else { "" };
            let _ = write!(
                out,
                "{}:{}{opt}={}|",
                f.name,
                f.ty.name(),
                default.unwrap_or_default()
            );
        }
    };
    let tiers = |out: &mut String| {
        for t in &ir.tiers {
            let _ = write!(out, "tier {t}|");
        }
    };
    let item_tiers = has(&ir.item, Ty::Tier);
    let events = ir
        .events
        .iter()
        .map(|e| {
            let items = has(&e.fields, Ty::Item);
            let mut text = format!("{} {:?} {}|", e.name, e.primary, ir.tz);
            fields(&mut text, &e.fields);
            if items {
                text.push_str("items|");
                fields(&mut text, &ir.item);
            }
            if has(&e.fields, Ty::Tier) || (items && item_tiers) {
                tiers(&mut text);
            }
            crate::state::small_hash(&text)
        })
        .collect();
    let mut text = String::from("customer|");
    fields(&mut text, &ir.customer);
    tiers(&mut text);
    (events, crate::state::small_hash(&text))
}

/// Whether this program decoded `event` (or decodes its type the same
/// way under the same index): the events it takes as they are.
#[inline]
pub(crate) fn fits(ir: &ProgramIr, event: &Event) -> bool {
    ir.event_keys.get(event.ty as usize) == Some(&event.key)
}

/// `event` as this program reads it: itself when it [`fits`], else its
/// copy under this program's index for its type, made in `copy` (see
/// [`refit_event`]); or the reason it cannot be used.
#[inline]
pub(crate) fn fit_event<'e>(
    ir: &ProgramIr,
    event: &'e Event,
    copy: &'e mut Option<Event>,
) -> Result<&'e Event, String> {
    if fits(ir, event) {
        return Ok(event);
    }
    Ok(copy.insert(refit_event(ir, event)?))
}

/// An event that does not [`fits`]: decoded by another program (a program
/// swapped in while events were in flight, say). A copy under this
/// program's index for its type, when this program decodes that type the
/// same way; otherwise the reason it cannot be used.
#[cold]
#[inline(never)]
pub(crate) fn refit_event(ir: &ProgramIr, event: &Event) -> Result<Event, String> {
    let name = &*event.type_name;
    match ir.events.iter().position(|e| e.name == name) {
        Some(t) if ir.event_keys.get(t) == Some(&event.key) => {
            let mut e = event.clone();
            e.ty = t as u16;
            Ok(e)
        }
        Some(_) => Err(format!(
            "the event was decoded by another program, whose `{name}` events differ from this \
             program's (fields, item fields, tiers or time zone): decode it with this program"
        )),
        None => Err(format!(
            "the event was decoded by another program: this program has no `{name}` events"
        )),
    }
}

/// Whether `customer` was decoded the way this program decodes customers.
#[inline]
pub(crate) fn customer_fits(ir: &ProgramIr, customer: &Customer) -> bool {
    customer.key == ir.customer_key
}

/// [`customer_fits`], or the reason the customer cannot be used.
pub(crate) fn fit_customer(ir: &ProgramIr, customer: &Customer) -> Result<(), String> {
    if customer_fits(ir, customer) {
        Ok(())
    } else {
        Err(
            "the customer was decoded by another program, whose customer fields or tiers \
             differ from this program's: decode it with this program"
                .into(),
        )
    }
}

pub(crate) fn customer_from_value(ir: &ProgramIr, v: &Json) -> Result<Customer, Error> {
    let k = ErrorKind::InvalidCustomer;
    let Json::Object(obj) = v else {
        return Err(Error::input(
            k,
            None,
            "a customer must be a JSON object".into(),
        ));
    };
    let fields = record(ir, &ir.customer, obj, &String::new, k, &[])?;
    let id = match &fields[0] {
        Value::Text(s) => s.clone(),
        _ => return Err(bad(k, "id", "missing field `id`".into())),
    };
    Ok(Customer {
        id,
        fields,
        key: ir.customer_key,
    })
}

fn unknown_field(defs: &[FieldDef], key: &str, prefix: &dyn Fn() -> String, k: ErrorKind) -> Error {
    let path = format!("{}{key}", prefix());
    let hint = did_you_mean(key, defs.iter().map(|d| d.name.as_str()))
        .map(|h| format!("; {h}"))
        .unwrap_or_default();
    bad(k, &path, format!("unknown field `{path}`{hint}"))
}

/// The value of a field that is absent (or null): its default, `Null` when
/// optional, else an error.
fn absent(d: &FieldDef, path: &dyn Fn() -> String, k: ErrorKind) -> Result<Value, Error> {
    match (&d.default, d.optional) {
        (Some(def), _) => Ok(def.clone()),
        (None, true) => Ok(Value::Null),
        (None, false) => {
            let path = path();
            Err(bad(
                k,
                &path,
                format!("missing field `{path}` ({})", d.ty.name()),
            ))
        }
    }
}

fn record(
    ir: &ProgramIr,
    defs: &[FieldDef],
    obj: &Map<String, Json>,
    prefix: &dyn Fn() -> String,
    k: ErrorKind,
    ignore: &[&str],
) -> Result<Vec<Value>, Error> {
    for key in obj.keys() {
        if ignore.contains(&key.as_str()) {
            continue;
        }
        if !defs.iter().any(|d| d.name.eq_ignore_ascii_case(key)) {
            return Err(unknown_field(defs, key, prefix, k));
        }
    }
    let mut out = Vec::with_capacity(defs.len());
    for d in defs {
        // built only on error: formatting it per field is the decoder's main cost
        let path = || format!("{}{}", prefix(), d.name);
        let raw = obj.get(&d.name).or_else(|| {
            obj.iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(&d.name))
                .map(|(_, v)| v)
        });
        let v = match raw {
            None | Some(Json::Null) => absent(d, &path, k)?,
            Some(j) => convert(ir, d.ty, j, &path, k)?,
        };
        out.push(v);
    }
    computed_fields(defs, &mut out, prefix, k)?;
    Ok(out)
}

/// Fields computed from others once a record is decoded: a basket line's
/// `total` (price times quantity) when it was not given.
fn computed_fields(
    defs: &[FieldDef],
    out: &mut [Value],
    prefix: &dyn Fn() -> String,
    k: ErrorKind,
) -> Result<(), Error> {
    if defs.len() == ITEM_TOTAL + 3
        && defs[ITEM_TOTAL].name == "total"
        && out[ITEM_TOTAL] == Value::Null
    {
        if let (Value::Num(p), Value::Num(q)) = (&out[ITEM_PRICE], &out[ITEM_QUANTITY]) {
            match p.checked_mul(*q) {
                Some(t) => out[ITEM_TOTAL] = Value::Num(t),
                None => {
                    return Err(bad(
                        k,
                        &format!("{}price", prefix()),
                        "price times quantity is too large".into(),
                    ))
                }
            }
        }
    }
    Ok(())
}

/// A decimal from text as events write it (`"12.50"`, `" $1,250.00 "`,
/// `"1e3"`).
fn decimal_of_str(s: &str) -> Option<Decimal> {
    let s = s.trim();
    let s = s.strip_prefix('$').unwrap_or(s);
    let joined;
    let s = if s.contains(',') {
        joined = s.replace(',', "");
        joined.as_str()
    } else {
        s
    };
    Decimal::from_str(s)
        .ok()
        .or_else(|| Decimal::from_scientific(s).ok())
}

/// A JSON number as a decimal. serde_json keeps integers exact; other
/// numbers print as the shortest text that reads back the same, which is
/// what was written.
fn decimal_of_number(n: &Number) -> Option<Decimal> {
    if let Some(i) = n.as_i64() {
        return Some(Decimal::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Some(Decimal::from(u));
    }
    // the shortest form of an f64 is at most 24 bytes; print it without allocating
    let mut buf = [0u8; 64];
    let mut w = &mut buf[..];
    if write!(w, "{n}").is_err() {
        return decimal_of_str(&n.to_string());
    }
    let len = 64 - w.len();
    std::str::from_utf8(&buf[..len])
        .ok()
        .and_then(decimal_of_str)
}

fn type_err(path_fn: &dyn Fn() -> String, k: ErrorKind, what: &str, got: String) -> Error {
    let path = path_fn();
    bad(
        k,
        &path,
        format!("field `{path}` must be {what}, got {got}"),
    )
}

fn convert(
    ir: &ProgramIr,
    ty: Ty,
    j: &Json,
    path_fn: &dyn Fn() -> String,
    k: ErrorKind,
) -> Result<Value, Error> {
    if let Json::String(s) = j {
        return convert_str(ir, ty, s, path_fn, k);
    }
    let type_err = |what: &str| type_err(path_fn, k, what, describe(j));
    Ok(match ty {
        Ty::Bool => match j {
            Json::Bool(b) => Value::Bool(*b),
            _ => return Err(type_err("true or false")),
        },
        Ty::Number | Ty::Money => match j {
            Json::Number(n) => match decimal_of_number(n) {
                Some(d) => Value::Num(d),
                None => return Err(type_err(money_or_number(ty))),
            },
            _ => return Err(type_err(money_or_number(ty))),
        },
        Ty::Text => match j {
            Json::Number(n) => Value::Text(n.to_string().into()),
            _ => return Err(type_err("text")),
        },
        Ty::Date => return Err(type_err("a date like \"2026-12-01\"")),
        Ty::Time => return Err(type_err("a time like \"17:30\"")),
        Ty::DateTime => return Err(type_err("a timestamp like \"2026-11-24T18:30:00Z\"")),
        Ty::Weekday => return Err(type_err("a weekday name")),
        Ty::Tier => return Err(type_err("a tier name")),
        Ty::Item => match j {
            Json::Object(o) => Value::Record(
                record(ir, &ir.item, o, &|| format!("{}.", path_fn()), k, &[])?.into_boxed_slice(),
            ),
            _ => return Err(type_err("an object")),
        },
        Ty::List(el) => match j {
            Json::Array(a) => {
                if a.len() > limits::MAX_LIST_LEN {
                    let path = path_fn();
                    return Err(bad(
                        k,
                        &path,
                        format!(
                            "`{path}` has {} entries; the limit is {}",
                            a.len(),
                            limits::MAX_LIST_LEN
                        ),
                    ));
                }
                let mut out = Vec::with_capacity(a.len());
                for (i, x) in a.iter().enumerate() {
                    out.push(convert(
                        ir,
                        el.ty(),
                        x,
                        &|| format!("{}[{i}]", path_fn()),
                        k,
                    )?);
                }
                Value::List(out)
            }
            _ => return Err(type_err("a list")),
        },
        Ty::Error => Value::Null,
    })
}

fn money_or_number(ty: Ty) -> &'static str {
    if ty == Ty::Money {
        "an amount like \"12.50\""
    } else {
        "a number"
    }
}

/// [`convert`] of a JSON string, without needing one.
fn convert_str(
    ir: &ProgramIr,
    ty: Ty,
    s: &str,
    path_fn: &dyn Fn() -> String,
    k: ErrorKind,
) -> Result<Value, Error> {
    let type_err = |what: &str| type_err(path_fn, k, what, describe_str(s));
    Ok(match ty {
        Ty::Bool => return Err(type_err("true or false")),
        Ty::Number | Ty::Money => match decimal_of_str(s) {
            Some(d) => Value::Num(d),
            None => return Err(type_err(money_or_number(ty))),
        },
        Ty::Text => Value::Text(s.into()),
        Ty::Date => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) => Value::Date(d),
            Err(_) => return Err(type_err("a date like \"2026-12-01\"")),
        },
        Ty::Time => match NaiveTime::parse_from_str(s, "%H:%M:%S")
            .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        {
            Ok(t) => Value::Time(t),
            Err(_) => return Err(type_err("a time like \"17:30\"")),
        },
        Ty::DateTime => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Value::DateTime(t.with_timezone(&Utc)),
            Err(_) => {
                return Err(type_err(
                    "an RFC 3339 timestamp with an offset, like \"2026-11-24T18:30:00Z\"",
                ))
            }
        },
        Ty::Weekday => match weekday_from_name(s) {
            Some(d) => Value::Weekday(d),
            None => return Err(type_err("a weekday name")),
        },
        Ty::Tier => match ir.tiers.iter().position(|t| t.eq_ignore_ascii_case(s)) {
            Some(i) => Value::Tier(i as u16),
            None => {
                let known = if ir.tiers.is_empty() {
                    "the program declares no tiers".to_string()
                } else {
                    format!("tiers are {}", ir.tiers.join(", "))
                };
                let path = path_fn();
                return Err(bad(
                    k,
                    &path,
                    format!("unknown tier \"{s}\" in `{path}`; {known}"),
                ));
            }
        },
        Ty::Item => return Err(type_err("an object")),
        Ty::List(_) => return Err(type_err("a list")),
        Ty::Error => Value::Null,
    })
}

fn describe(j: &Json) -> String {
    match j {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => describe_str(s),
        Json::Array(_) => "a list".into(),
        Json::Object(_) => "an object".into(),
    }
}

fn describe_str(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("\"{}...\"", s.chars().take(40).collect::<String>())
    } else {
        format!("\"{s}\"")
    }
}

/// Value -> JSON, for `set_attribute` effects.
pub(crate) fn to_json(ir: &ProgramIr, v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Num(d) => Json::String(d.to_string()),
        Value::Text(s) => Json::String(s.to_string()),
        Value::Date(d) => Json::String(d.to_string()),
        Value::Time(t) => Json::String(t.format("%H:%M:%S").to_string()),
        Value::DateTime(t) => Json::String(t.to_rfc3339()),
        Value::Weekday(d) => Json::String(WEEKDAYS[*d as usize % 7].into()),
        Value::Tier(t) => Json::String(
            ir.tiers
                .get(*t as usize)
                .map_or(String::new(), |s| s.to_string()),
        ),
        Value::List(l) => Json::Array(l.iter().map(|x| to_json(ir, x)).collect()),
        Value::Record(r) => Json::Array(r.iter().map(|x| to_json(ir, x)).collect()),
    }
}

/// Builds events from typed values, column by column, with exactly the
/// checks (and errors) of [`Program::event_from_value`].
///
/// For batch input: name the columns once, then for each row call
/// [`begin`](Self::begin) with the event type, one `set_*` per non-missing
/// cell, and [`finish`](Self::finish). Column names are matched to fields
/// once per event type, not per row. Each setter is defined as setting the
/// JSON value its documentation names, so a row gives the same [`Event`],
/// or the same [`Error`] (kind, message and field), as the JSON object
/// `{"type": ..., column: value, ...}` whose keys are the columns that were
/// set; a column that is not set is a key that is absent. A column named
/// `type` is the JSON `type` key: give its value to `begin`, not to a setter.
///
/// ```
/// use loyalty_rules::{EventBuilder, Program};
/// use rust_decimal::Decimal;
///
/// let program = Program::compile("IF Purchase > $100 THEN Award 100 Points")?;
/// let mut b = EventBuilder::new(&program, &["id", "customer", "time", "amount"]);
/// b.begin(Some("purchase"));
/// b.set_str(0, "o-1");
/// b.set_str(1, "c1");
/// b.set_str(2, "2026-11-24T18:30:00Z");
/// b.set_decimal(3, Decimal::new(12000, 2));
/// let event = b.finish()?;
/// assert_eq!(event.id(), "o-1");
/// # Ok::<(), loyalty_rules::Error>(())
/// ```
pub struct EventBuilder {
    program: Program,
    names: Vec<Box<str>>,
    /// Per event type, built on first use.
    layouts: Vec<Option<Layout>>,
    type_names: Vec<Arc<str>>,
    /// The last type name given to `begin` and its index.
    last_type: Option<(Box<str>, usize)>,
    row: Row,
    cells: Vec<Cell>,
    /// Per column: recent texts, shared by the rows that repeat them.
    texts: Vec<TextCache>,
}

/// A column's recent texts, so that rows repeating a text (a customer's
/// id on each of its rows, a store, a channel) share one allocation
/// instead of each making and later freeing its own. Direct-mapped: a text
/// goes in the slot its hash picks, replacing what was there. A column
/// whose texts rarely repeat (event ids) stops looking after a while.
#[derive(Default)]
struct TextCache {
    slots: Vec<Option<Arc<str>>>,
    hits: u32,
    misses: u32,
}

impl TextCache {
    const SLOTS: usize = 64;
    /// Rows looked at before a column may be given up on.
    const TRIAL: u32 = 1024;

    fn text(&mut self, s: &str) -> Arc<str> {
        if self.misses >= Self::TRIAL && self.misses > 8 * self.hits {
            // mostly distinct texts: caching only costs
            return Arc::from(s);
        }
        if self.slots.is_empty() {
            self.slots = vec![None; Self::SLOTS];
        }
        let i = (crate::state::small_hash(s) as usize) % Self::SLOTS;
        match &self.slots[i] {
            Some(t) if **t == *s => {
                self.hits = self.hits.saturating_add(1);
                t.clone()
            }
            _ => {
                self.misses = self.misses.saturating_add(1);
                let t: Arc<str> = Arc::from(s);
                self.slots[i] = Some(t.clone());
                t
            }
        }
    }
}

enum Row {
    NotBegun,
    Type(usize),
    Failed(Error),
}

/// One column's value in the current row.
enum Cell {
    /// The key is absent.
    Unset,
    /// The key is present with a null value (or the column is not a field).
    Null,
    Val(Value),
    Err(Error),
}

/// How the columns map onto one event type's fields.
struct Layout {
    /// Per column: the field its values are converted for.
    field: Vec<Option<usize>>,
    /// Per field: the columns that give its value, in the order JSON decoding
    /// looks at the keys; the first one that is set wins.
    sources: Vec<Vec<usize>>,
    /// Columns that name no field, in the order JSON decoding reports them.
    unknown: Vec<usize>,
}

impl Layout {
    fn new(defs: &[FieldDef], names: &[Box<str>]) -> Layout {
        let mut field = vec![None; names.len()];
        let mut sources = Vec::with_capacity(defs.len());
        for (f, d) in defs.iter().enumerate() {
            // an exact key first (the last column of that name: a later key
            // replaces an earlier one), then other spellings in key order
            let mut exact: Vec<usize> = (0..names.len())
                .rev()
                .filter(|&c| *names[c] == *d.name)
                .collect();
            let mut other: Vec<usize> = (0..names.len())
                .filter(|&c| *names[c] != *d.name && names[c].eq_ignore_ascii_case(&d.name))
                .collect();
            other.sort_by(|&a, &b| names[a].cmp(&names[b]).then(b.cmp(&a)));
            exact.extend(other);
            for &c in &exact {
                field[c].get_or_insert(f);
            }
            sources.push(exact);
        }
        let mut unknown: Vec<usize> = (0..names.len())
            .filter(|&c| &*names[c] != "type" && field[c].is_none())
            .collect();
        unknown.sort_by(|&a, &b| names[a].cmp(&names[b]));
        Layout {
            field,
            sources,
            unknown,
        }
    }
}

impl EventBuilder {
    /// A builder for rows whose cells are named by `columns` (in the order
    /// the setters' `col` index them).
    pub fn new<S: AsRef<str>>(program: &Program, columns: &[S]) -> EventBuilder {
        let ir = &program.inner.ir;
        EventBuilder {
            program: program.clone(),
            names: columns.iter().map(|c| Box::from(c.as_ref())).collect(),
            layouts: ir.events.iter().map(|_| None).collect(),
            type_names: ir
                .events
                .iter()
                .map(|e| Arc::from(e.name.as_str()))
                .collect(),
            last_type: None,
            row: Row::NotBegun,
            cells: columns.iter().map(|_| Cell::Unset).collect(),
            texts: columns.iter().map(|_| TextCache::default()).collect(),
        }
    }

    /// The column names, as given to [`new`](Self::new).
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    /// Start a row of event type `event_type` (the JSON `type` text, any
    /// case); `None` means the row has no `type`. Clears the previous row's
    /// cells.
    pub fn begin(&mut self, event_type: Option<&str>) {
        self.clear();
        self.row = match event_type {
            None => Row::Failed(type_missing()),
            Some(name) => match &self.last_type {
                Some((last, t)) if **last == *name => Row::Type(*t),
                _ => match event_type_index(&self.program.inner.ir, name) {
                    Ok(t) => {
                        if self.layouts[t].is_none() {
                            self.layouts[t] = Some(Layout::new(
                                &self.program.inner.ir.events[t].fields,
                                &self.names,
                            ));
                        }
                        self.last_type = Some((name.into(), t));
                        Row::Type(t)
                    }
                    Err(e) => Row::Failed(e),
                },
            },
        };
    }

    /// Like [`begin`](Self::begin) with the JSON value of `type` (an error
    /// unless it is text).
    pub fn begin_json(&mut self, event_type: &Json) {
        match event_type {
            Json::String(s) => self.begin(Some(s)),
            _ => {
                self.clear();
                self.row = Row::Failed(type_not_text());
            }
        }
    }

    fn clear(&mut self) {
        for c in &mut self.cells {
            *c = Cell::Unset;
        }
        self.row = Row::NotBegun;
    }

    /// Convert a value for column `col` with `conv`, given the field's type.
    fn put(
        &mut self,
        col: usize,
        conv: impl FnOnce(&ProgramIr, Ty, &dyn Fn() -> String) -> Result<Value, Error>,
    ) {
        let ir = &self.program.inner.ir;
        let cell = match &self.row {
            Row::Type(t) => match self.layouts[*t].as_ref().and_then(|l| l.field[col]) {
                Some(f) => {
                    let d = &ir.events[*t].fields[f];
                    match conv(ir, d.ty, &|| d.name.clone()) {
                        Ok(v) => Cell::Val(v),
                        Err(e) => Cell::Err(e),
                    }
                }
                None => Cell::Null,
            },
            // values of a row that already failed are not looked at
            _ => Cell::Null,
        };
        self.cells[col] = cell;
    }

    /// Column `col` is JSON `null` (which is not the same as not setting it:
    /// a null key that names no field is still an unknown field).
    pub fn set_null(&mut self, col: usize) {
        self.cells[col] = Cell::Null;
    }

    /// Column `col` is the JSON string `value`.
    pub fn set_str(&mut self, col: usize, value: &str) {
        if let Row::Type(t) = self.row {
            let ir = &self.program.inner.ir;
            if let Some(f) = self.layouts[t].as_ref().and_then(|l| l.field[col]) {
                if ir.events[t].fields[f].ty == Ty::Text {
                    let text = self.texts[col].text(value);
                    self.cells[col] = Cell::Val(Value::Text(text));
                    return;
                }
            }
        }
        self.put(col, |ir, ty, path| {
            convert_str(ir, ty, value, path, ErrorKind::InvalidEvent)
        });
    }

    /// Column `col` is the JSON boolean `value`.
    pub fn set_bool(&mut self, col: usize, value: bool) {
        self.put(col, |ir, ty, path| match ty {
            Ty::Bool => Ok(Value::Bool(value)),
            _ => convert(ir, ty, &Json::Bool(value), path, ErrorKind::InvalidEvent),
        });
    }

    /// Column `col` is the JSON integer `value`.
    pub fn set_i64(&mut self, col: usize, value: i64) {
        self.put(col, |ir, ty, path| match ty {
            Ty::Number | Ty::Money => Ok(Value::Num(Decimal::from(value))),
            _ => convert(ir, ty, &Json::from(value), path, ErrorKind::InvalidEvent),
        });
    }

    /// Column `col` is the JSON integer `value`.
    pub fn set_u64(&mut self, col: usize, value: u64) {
        self.put(col, |ir, ty, path| match ty {
            Ty::Number | Ty::Money => Ok(Value::Num(Decimal::from(value))),
            _ => convert(ir, ty, &Json::from(value), path, ErrorKind::InvalidEvent),
        });
    }

    /// Column `col` is the JSON number `value` (a decimal from its shortest
    /// text, `0.1` for `0.1f64`); NaN and infinities, which JSON cannot
    /// hold, are `null`.
    pub fn set_f64(&mut self, col: usize, value: f64) {
        let Some(n) = Number::from_f64(value) else {
            return self.set_null(col);
        };
        self.put(col, |ir, ty, path| match ty {
            Ty::Number | Ty::Money => match decimal_of_number(&n) {
                Some(d) => Ok(Value::Num(d)),
                None => convert(ir, ty, &Json::Number(n), path, ErrorKind::InvalidEvent),
            },
            _ => convert(ir, ty, &Json::Number(n), path, ErrorKind::InvalidEvent),
        });
    }

    /// Column `col` is the JSON string of `value` (`"12.50"`: its text,
    /// with its scale).
    pub fn set_decimal(&mut self, col: usize, value: Decimal) {
        self.put(col, |ir, ty, path| match ty {
            Ty::Number | Ty::Money => Ok(Value::Num(value)),
            _ => convert_str(ir, ty, &value.to_string(), path, ErrorKind::InvalidEvent),
        });
    }

    /// Column `col` is the JSON string of `value` in RFC 3339
    /// (`"2026-11-24T18:30:00.25Z"`: UTC, fractional seconds as needed).
    pub fn set_timestamp(&mut self, col: usize, value: DateTime<Utc>) {
        self.put(col, |ir, ty, path| match ty {
            // years that RFC 3339 text can hold read back unchanged
            Ty::DateTime if (1..=9999).contains(&value.year()) => Ok(Value::DateTime(value)),
            _ => convert_str(
                ir,
                ty,
                &value.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                path,
                ErrorKind::InvalidEvent,
            ),
        });
    }

    /// Column `col` is the JSON string of `value` (`"2026-12-01"`).
    pub fn set_date(&mut self, col: usize, value: NaiveDate) {
        self.put(col, |ir, ty, path| match ty {
            Ty::Date if (1..=9999).contains(&value.year()) => Ok(Value::Date(value)),
            _ => convert_str(ir, ty, &value.to_string(), path, ErrorKind::InvalidEvent),
        });
    }

    /// Column `col` is the JSON string of `value` in whole seconds
    /// (`"17:30:00"`; a fraction of a second is dropped).
    pub fn set_time(&mut self, col: usize, value: NaiveTime) {
        self.put(col, |ir, ty, path| match ty {
            Ty::Time if value.nanosecond() == 0 => Ok(Value::Time(value)),
            _ => convert_str(
                ir,
                ty,
                &value.format("%H:%M:%S").to_string(),
                path,
                ErrorKind::InvalidEvent,
            ),
        });
    }

    /// Column `col` is the JSON value `value` (for lists, basket items and
    /// anything without a typed setter).
    pub fn set_json(&mut self, col: usize, value: &Json) {
        if value.is_null() {
            return self.set_null(col);
        }
        self.put(col, |ir, ty, path| {
            convert(ir, ty, value, path, ErrorKind::InvalidEvent)
        });
    }

    /// The row's event, checked; or the error JSON decoding of the row
    /// would give. Clears the row.
    pub fn finish(&mut self) -> Result<Event, Error> {
        let k = ErrorKind::InvalidEvent;
        let t = match std::mem::replace(&mut self.row, Row::NotBegun) {
            Row::Type(t) => t,
            Row::Failed(e) => return Err(e),
            Row::NotBegun => return Err(type_missing()),
        };
        let ir = &self.program.inner.ir;
        let defs = &ir.events[t].fields;
        let Some(layout) = self.layouts[t].as_ref() else {
            return Err(type_missing());
        };
        for &c in &layout.unknown {
            if !matches!(self.cells[c], Cell::Unset) {
                return Err(unknown_field(defs, &self.names[c], &String::new, k));
            }
        }
        let mut fields = Vec::with_capacity(defs.len());
        for (d, src) in defs.iter().zip(&layout.sources) {
            let cell = src
                .iter()
                .find(|&&c| !matches!(self.cells[c], Cell::Unset))
                .map(|&c| std::mem::replace(&mut self.cells[c], Cell::Unset));
            fields.push(match cell {
                Some(Cell::Val(v)) => v,
                Some(Cell::Err(e)) => return Err(e),
                _ => absent(d, &|| d.name.clone(), k)?,
            });
        }
        computed_fields(defs, &mut fields, &String::new, k)?;
        assemble_event(ir, t, self.type_names[t].clone(), fields)
    }
}

impl std::fmt::Debug for EventBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBuilder")
            .field("columns", &self.names)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const SOURCE: &str = r#"
customer has
  segment: text
tiers bronze, silver, gold
event checkin has
  store: text
  distance_m: number
  spent: money?
  visit_date: date?
  visit_time: time?
  day: weekday?
  level: tier?
  member: boolean?
  tags: list of text
  seen: timestamp?
event quirk has
  a: text?
  price: money?
  quantity: number?
  total: money?
  e: text?
  f: text?
rule "base" on purchase award 1 point per $1
"#;

    fn program() -> Program {
        Program::compile(SOURCE).expect("test program compiles")
    }

    /// A cell value: set through the builder's typed setter, or as the JSON
    /// value that setter is documented to mean.
    #[derive(Clone, Debug)]
    enum Tv {
        Null,
        Str(String),
        Bool(bool),
        I64(i64),
        U64(u64),
        F64(f64),
        Dec(Decimal),
        Ts(DateTime<Utc>),
        Date(NaiveDate),
        Time(NaiveTime),
        Json(Json),
    }

    impl Tv {
        fn json(&self) -> Json {
            match self {
                Tv::Null => Json::Null,
                Tv::Str(s) => Json::String(s.clone()),
                Tv::Bool(b) => Json::Bool(*b),
                Tv::I64(i) => Json::from(*i),
                Tv::U64(u) => Json::from(*u),
                Tv::F64(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
                Tv::Dec(d) => Json::String(d.to_string()),
                Tv::Ts(t) => Json::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
                Tv::Date(d) => Json::String(d.to_string()),
                Tv::Time(t) => Json::String(t.format("%H:%M:%S").to_string()),
                Tv::Json(j) => j.clone(),
            }
        }
        fn set(&self, b: &mut EventBuilder, col: usize) {
            match self {
                Tv::Null => b.set_null(col),
                Tv::Str(s) => b.set_str(col, s),
                Tv::Bool(x) => b.set_bool(col, *x),
                Tv::I64(x) => b.set_i64(col, *x),
                Tv::U64(x) => b.set_u64(col, *x),
                Tv::F64(x) => b.set_f64(col, *x),
                Tv::Dec(x) => b.set_decimal(col, *x),
                Tv::Ts(x) => b.set_timestamp(col, *x),
                Tv::Date(x) => b.set_date(col, *x),
                Tv::Time(x) => b.set_time(col, *x),
                Tv::Json(x) => b.set_json(col, x),
            }
        }
    }

    /// The event type of a row: text, missing, or not text.
    #[derive(Clone, Debug)]
    enum TypeCell {
        Missing,
        Text(String),
        Other(Json),
    }

    /// A row: its type and its cells (`None`: not set).
    type TestRow = (TypeCell, Vec<Option<Tv>>);
    /// Column names and rows.
    type Batch = (Vec<&'static str>, Vec<TestRow>);

    fn check_same(json_side: Result<Event, Error>, built: Result<Event, Error>) {
        match (json_side, built) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.ty, b.ty);
                assert_eq!(a.type_name, b.type_name);
                assert_eq!(a.id, b.id);
                assert_eq!(a.customer, b.customer);
                assert_eq!(a.time, b.time);
                assert_eq!(
                    (a.local.date, a.local.time, a.local.weekday),
                    (b.local.date, b.local.time, b.local.weekday)
                );
                // Debug also tells decimals of different scales apart
                assert_eq!(format!("{:?}", a.fields), format!("{:?}", b.fields));
                assert_eq!(a.fields, b.fields);
            }
            (Err(a), Err(b)) => {
                assert_eq!(
                    (a.kind(), a.message(), a.field()),
                    (b.kind(), b.message(), b.field())
                );
            }
            (a, b) => panic!("JSON decoding gave {a:?}, the builder {b:?}"),
        }
    }

    /// Decode rows both ways with one builder and compare every row.
    fn compare(p: &Program, columns: &[&str], rows: &[TestRow]) {
        let mut b = EventBuilder::new(p, columns);
        for (ty, cells) in rows {
            let mut obj = Map::new();
            match ty {
                TypeCell::Missing => b.begin(None),
                TypeCell::Text(s) => {
                    obj.insert("type".into(), Json::String(s.clone()));
                    b.begin(Some(s));
                }
                TypeCell::Other(j) => {
                    obj.insert("type".into(), j.clone());
                    b.begin_json(j);
                }
            }
            for (c, v) in cells.iter().enumerate() {
                if let Some(v) = v {
                    obj.insert(columns[c].to_string(), v.json());
                    v.set(&mut b, c);
                }
            }
            check_same(p.event_from_value(&Json::Object(obj)), b.finish());
        }
    }

    fn base(ty: &str) -> TestRow {
        (
            TypeCell::Text(ty.into()),
            vec![
                Some(Tv::Str("o1".into())),
                Some(Tv::Str("c1".into())),
                Some(Tv::Str("2026-11-24T18:30:00Z".into())),
            ],
        )
    }

    /// Repeated texts share one allocation (the column's text cache), and
    /// the cache never changes a value: colliding texts, a column of
    /// distinct ids past the point where the cache gives up on it, and a
    /// mix of types all decode as JSON does.
    #[test]
    fn builder_shares_repeated_texts_and_decodes_as_json() {
        let p = program();
        let cols = ["id", "customer", "time", "amount", "store"];
        let rows: Vec<TestRow> = (0..3000)
            .map(|i| {
                let (t, mut c) = base("purchase");
                c[0] = Some(Tv::Str(format!("o{i}")));
                c[1] = Some(Tv::Str(format!("c{}", i / 7)));
                c.push(Some(Tv::Dec(Decimal::new(i as i64, 2))));
                // 300 stores: more than the cache's slots, so they collide
                c.push(Some(Tv::Str(format!("s{}", (i * 37) % 300))));
                (t, c)
            })
            .collect();
        compare(&p, &cols, &rows);
        let mut b = EventBuilder::new(&p, &cols);
        let mut events = Vec::new();
        for (_, cells) in &rows {
            b.begin(Some("purchase"));
            for (c, v) in cells.iter().enumerate() {
                v.as_ref().unwrap().set(&mut b, c);
            }
            events.push(b.finish().unwrap());
        }
        for w in events.windows(2) {
            if w[0].customer == w[1].customer {
                assert!(
                    Arc::ptr_eq(&w[0].customer, &w[1].customer),
                    "{}",
                    w[0].customer
                );
            }
        }
        let shared = events
            .windows(2)
            .filter(|w| Arc::ptr_eq(&w[0].customer, &w[1].customer))
            .count();
        assert_eq!(shared, 3000 - 3000usize.div_ceil(7));
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.id(), format!("o{i}"));
            assert_eq!(e.customer(), format!("c{}", i / 7));
        }
    }

    #[test]
    fn builder_matches_json_on_typical_and_bad_rows() {
        let p = program();
        let cols = ["id", "customer", "time", "amount", "store"];
        let ok = {
            let (t, mut c) = base("purchase");
            c.push(Some(Tv::Dec(Decimal::new(12050, 2))));
            c.push(Some(Tv::Str("7".into())));
            (t, c)
        };
        let mut rows = vec![ok.clone()];
        // missing required field, wrong type, out of range, unknown type
        let mut r = ok.clone();
        r.1[3] = None;
        rows.push(r);
        let mut r = ok.clone();
        r.1[3] = Some(Tv::Bool(true));
        rows.push(r);
        let mut r = ok.clone();
        r.1[3] = Some(Tv::Str("99999999999999999999999999999999".into()));
        rows.push(r);
        let mut r = ok.clone();
        r.1[2] = Some(Tv::Ts(
            DateTime::from_timestamp(400_000_000_000, 0).expect("in chrono's range"),
        ));
        rows.push(r);
        let mut r = ok.clone();
        r.1[3] = Some(Tv::F64(f64::NAN));
        rows.push(r);
        let mut r = ok.clone();
        r.1[3] = Some(Tv::F64(0.1));
        rows.push(r);
        let mut r = ok.clone();
        r.0 = TypeCell::Text("purchse".into());
        rows.push(r);
        let mut r = ok.clone();
        r.0 = TypeCell::Missing;
        rows.push(r);
        let mut r = ok.clone();
        r.0 = TypeCell::Other(json!(3));
        rows.push(r);
        rows.push(ok);
        compare(&p, &cols, &rows);

        // an unknown column only counts when set (null included)
        let cols = ["id", "customer", "time", "amount", "junk"];
        let (t, mut c) = base("purchase");
        c.push(Some(Tv::I64(5)));
        c.push(None);
        compare(&p, &cols, &[(t.clone(), c.clone())]);
        c[4] = Some(Tv::Null);
        compare(&p, &cols, &[(t, c)]);
    }

    #[test]
    fn builder_uses_json_key_order_for_spellings_and_duplicates() {
        let p = program();
        let cols = [
            "id", "customer", "time", "AMOUNT", "Amount", "amount", "amount",
        ];
        let (t, mut c) = base("purchase");
        c.extend([
            Some(Tv::Str("1".into())),
            Some(Tv::Str("2".into())),
            Some(Tv::Str("3".into())),
            Some(Tv::Str("4".into())),
        ]);
        let mut rows = vec![(t.clone(), c.clone())];
        for unset in [6, 5, 3] {
            c[unset] = None;
            rows.push((t.clone(), c.clone()));
        }
        c[4] = Some(Tv::Str("bad".into()));
        rows.push((t, c));
        compare(&p, &cols, &rows);
    }

    fn tv() -> impl Strategy<Value = Tv> {
        let strs = prop::sample::select(vec![
            "o1",
            "c1",
            "",
            "2026-11-24T18:30:00Z",
            "2026-11-24T18:30:00.5+02:00",
            "2026-12-01",
            "17:30",
            "17:30:05",
            "12.50",
            " $1,250.00 ",
            "1e3",
            "-0.00",
            "abc",
            "Monday",
            "tue",
            "silver",
            "platinum",
            "99999999999999999999999999999999",
            "a text that is longer than forty characters, to be cut",
        ]);
        prop_oneof![
            Just(Tv::Null),
            strs.prop_map(|s| Tv::Str(s.to_string())),
            any::<bool>().prop_map(Tv::Bool),
            any::<i64>().prop_map(Tv::I64),
            (-1000i64..1000).prop_map(Tv::I64),
            any::<u64>().prop_map(Tv::U64),
            any::<f64>().prop_map(Tv::F64),
            prop::sample::select(vec![0.1, 12.5, -2.25, 1e20, 1e300, f64::NAN, f64::INFINITY])
                .prop_map(Tv::F64),
            (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Tv::Dec(Decimal::new(m, s))),
            (
                -100_000_000_000i64..400_000_000_000,
                0u32..1_000_000_000,
                any::<bool>()
            )
                .prop_map(|(s, n, whole)| Tv::Ts(
                    DateTime::from_timestamp(s, if whole { 0 } else { n })
                        .expect("in chrono's range")
                )),
            (-1_000_000i32..5_000_000).prop_map(|d| Tv::Date(
                NaiveDate::from_num_days_from_ce_opt(d).expect("in chrono's range")
            )),
            (
                0u32..86_400,
                prop::sample::select(vec![0u32, 1, 500_000_000])
            )
                .prop_map(|(s, n)| {
                    Tv::Time(NaiveTime::from_num_seconds_from_midnight_opt(s, n).expect("in range"))
                }),
            prop::sample::select(vec![
                json!(["a", "b"]),
                json!([1, 2]),
                json!([]),
                json!([{"price": "3.50", "quantity": 2}]),
                json!([{"price": "1e27", "quantity": "1e27"}]),
                json!([{"prize": "3.50"}]),
                json!({"x": 1}),
            ])
            .prop_map(Tv::Json),
        ]
    }

    const PURCHASE_COLUMNS: &[&str] = &["amount", "store", "items", "shipping", "coupon"];
    const CHECKIN_COLUMNS: &[&str] = &[
        "store",
        "distance_m",
        "spent",
        "visit_date",
        "visit_time",
        "day",
        "level",
        "member",
        "tags",
        "seen",
    ];
    const QUIRK_COLUMNS: &[&str] = &["a", "price", "quantity", "total", "e"];

    /// Every event's columns, other spellings and unknown names.
    fn all_columns() -> Vec<&'static str> {
        let mut cols = vec!["id", "customer", "time", "AMOUNT", "junk", "Store"];
        for c in [PURCHASE_COLUMNS, CHECKIN_COLUMNS, QUIRK_COLUMNS].concat() {
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
        cols
    }

    fn type_cell() -> impl Strategy<Value = TypeCell> {
        prop_oneof![
            8 => prop::sample::select(vec!["purchase", "checkin", "quirk", "Checkin"])
                .prop_map(|s| TypeCell::Text(s.into())),
            1 => Just(TypeCell::Missing),
            1 => Just(TypeCell::Text("purchases".into())),
            1 => Just(TypeCell::Other(json!(true))),
        ]
    }

    /// Columns, then rows of cells for them: the first three columns are
    /// usually `id`, `customer`, `time` with good values.
    fn batch() -> impl Strategy<Value = Batch> {
        prop::collection::vec(prop::sample::select(all_columns()), 0..6).prop_flat_map(|extra| {
            let mut cols = vec!["id", "customer", "time"];
            cols.extend(extra);
            let n = cols.len();
            let good = prop_oneof![
                6 => Just(None),
                1 => Just(Some(())),
            ];
            let row = (
                type_cell(),
                prop::collection::vec(prop::option::weighted(0.8, tv()), n),
                prop::collection::vec(good, 3),
            )
                .prop_map(|(t, mut cells, spoil)| {
                    let good = [
                        Tv::Str("o1".into()),
                        Tv::Str("c1".into()),
                        Tv::Ts(DateTime::from_timestamp(1_790_000_000, 0).expect("in range")),
                    ];
                    for (i, g) in good.into_iter().enumerate() {
                        if spoil[i].is_none() {
                            cells[i] = Some(g);
                        }
                    }
                    (t, cells)
                });
            (Just(cols), prop::collection::vec(row, 1..4))
        })
    }

    /// A value that usually fits the column named `col`.
    fn plausible(col: &str) -> BoxedStrategy<Tv> {
        let dec = (-100_000i64..10_000_000, 0u32..4).prop_map(|(m, s)| Tv::Dec(Decimal::new(m, s)));
        let fitting: BoxedStrategy<Tv> = match col {
            "amount" | "shipping" | "spent" | "price" | "total" => prop_oneof![
                dec,
                (-1000i64..100_000).prop_map(Tv::I64),
                (-1e6f64..1e6).prop_map(Tv::F64),
                Just(Tv::Str("$1,250.50".into())),
            ]
            .boxed(),
            "distance_m" | "quantity" => prop_oneof![
                (0u64..10_000).prop_map(Tv::U64),
                (0f64..1000.0).prop_map(Tv::F64),
            ]
            .boxed(),
            "visit_date" => (700_000i32..800_000)
                .prop_map(|d| Tv::Date(NaiveDate::from_num_days_from_ce_opt(d).expect("in range")))
                .boxed(),
            "visit_time" => (0u32..86_400)
                .prop_map(|s| {
                    Tv::Time(NaiveTime::from_num_seconds_from_midnight_opt(s, 0).expect("in range"))
                })
                .boxed(),
            "seen" => (0i64..4_000_000_000, 0u32..1_000_000_000)
                .prop_map(|(s, n)| Tv::Ts(DateTime::from_timestamp(s, n).expect("in range")))
                .boxed(),
            "day" => prop::sample::select(vec!["monday", "Sun", "Friday"])
                .prop_map(|s| Tv::Str(s.into()))
                .boxed(),
            "level" => prop::sample::select(vec!["gold", "Bronze"])
                .prop_map(|s| Tv::Str(s.into()))
                .boxed(),
            "member" => any::<bool>().prop_map(Tv::Bool).boxed(),
            "tags" => Just(Tv::Json(json!(["x", "y"]))).boxed(),
            "items" => Just(Tv::Json(
                json!([{"price": "2.50", "quantity": 3}, {"price": 1}]),
            ))
            .boxed(),
            _ => "[a-z0-9]{0,6}".prop_map(Tv::Str).boxed(),
        };
        prop_oneof![8 => fitting, 1 => tv()].boxed()
    }

    fn typed_batch() -> impl Strategy<Value = Batch> {
        prop::sample::select(vec![
            ("purchase", PURCHASE_COLUMNS),
            ("checkin", CHECKIN_COLUMNS),
            ("quirk", QUIRK_COLUMNS),
        ])
        .prop_flat_map(|(ty, extra)| {
            let mut cols = vec!["id", "customer", "time"];
            cols.extend_from_slice(extra);
            let cells: Vec<_> = cols
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let v = match i {
                        0 | 1 => "[a-z0-9]{1,8}".prop_map(Tv::Str).boxed(),
                        2 => (0i64..4_000_000_000)
                            .prop_map(|s| Tv::Ts(DateTime::from_timestamp(s, 0).expect("in range")))
                            .boxed(),
                        _ => plausible(c),
                    };
                    prop::option::weighted(0.95, v)
                })
                .collect();
            let row = (Just(TypeCell::Text(ty.into())), cells);
            (Just(cols), prop::collection::vec(row, 1..4))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn builder_and_json_decode_alike((cols, rows) in batch()) {
            compare(&program(), &cols, &rows);
        }

        #[test]
        fn builder_and_json_decode_typed_columns_alike((cols, rows) in typed_batch()) {
            compare(&program(), &cols, &rows);
        }
    }
}
