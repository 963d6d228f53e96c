//! JSON -> typed events and customers, checked against the program's
//! schema. Every error names the offending field.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value as Json};

use crate::error::{did_you_mean, Error, ErrorKind};
use crate::ir::ProgramIr;
use crate::limits;
use crate::schema::*;

/// An event, decoded and checked against a program's schema.
///
/// Build one with [`Program::event_from_json`](crate::Program::event_from_json);
/// it is only meaningful for the program that built it.
#[derive(Clone, Debug)]
pub struct Event {
    pub(crate) ty: u16,
    pub(crate) type_name: Arc<str>,
    pub(crate) id: Arc<str>,
    pub(crate) customer: Arc<str>,
    pub(crate) time: DateTime<Utc>,
    pub(crate) local: Local,
    pub(crate) fields: Vec<Value>,
}

/// The event's time in the program's time zone, precomputed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Local {
    pub date: NaiveDate,
    pub time: NaiveTime,
    pub weekday: u8,
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
    let type_name = match obj.get("type") {
        Some(Json::String(s)) => s.to_ascii_lowercase(),
        Some(_) => return Err(bad(k, "type", "`type` must be text".into())),
        None => {
            return Err(bad(
                k,
                "type",
                "missing field `type` (the event type, e.g. \"purchase\")".into(),
            ))
        }
    };
    let Some(ty) = ir.events.iter().position(|e| e.name == type_name) else {
        let hint = did_you_mean(&type_name, ir.events.iter().map(|e| e.name.as_str()))
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        return Err(bad(
            k,
            "type",
            format!("unknown event type \"{type_name}\"{hint}"),
        ));
    };
    let schema = &ir.events[ty];
    let fields = record(ir, &schema.fields, obj, &String::new, k, &["type"])?;
    let id = match &fields[EV_ID] {
        Value::Text(s) => Arc::from(&**s),
        _ => return Err(bad(k, "id", "missing field `id`".into())),
    };
    let customer = match &fields[EV_CUSTOMER] {
        Value::Text(s) => Arc::from(&**s),
        _ => return Err(bad(k, "customer", "missing field `customer`".into())),
    };
    let time = match &fields[EV_TIME] {
        Value::DateTime(t) => *t,
        _ => return Err(bad(k, "time", "missing field `time`".into())),
    };
    Ok(Event {
        ty: ty as u16,
        type_name: Arc::from(schema.name.as_str()),
        id,
        customer,
        time,
        local: local_of(ir, time),
        fields,
    })
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
        Value::Text(s) => Arc::from(&**s),
        _ => return Err(bad(k, "id", "missing field `id`".into())),
    };
    Ok(Customer { id, fields })
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
            let path = format!("{}{key}", prefix());
            let hint = did_you_mean(key, defs.iter().map(|d| d.name.as_str()))
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            return Err(bad(k, &path, format!("unknown field `{path}`{hint}")));
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
            None | Some(Json::Null) => match (&d.default, d.optional) {
                (Some(def), _) => def.clone(),
                (None, true) => Value::Null,
                (None, false) => {
                    let path = path();
                    return Err(bad(
                        k,
                        &path,
                        format!("missing field `{path}` ({})", d.ty.name()),
                    ));
                }
            },
            Some(j) => convert(ir, d.ty, j, &path, k)?,
        };
        out.push(v);
    }
    // computed item total
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
    Ok(out)
}

pub(crate) fn decimal_of(j: &Json) -> Option<Decimal> {
    let s = match j {
        Json::String(s) => s.trim().to_string(),
        // serde_json keeps integers exact; other numbers print as the
        // shortest text that reads back the same, which is what was written.
        Json::Number(n) => n.to_string(),
        _ => return None,
    };
    let s = s.strip_prefix('$').unwrap_or(&s).replace(',', "");
    Decimal::from_str(&s)
        .ok()
        .or_else(|| Decimal::from_scientific(&s).ok())
}

fn convert(
    ir: &ProgramIr,
    ty: Ty,
    j: &Json,
    path_fn: &dyn Fn() -> String,
    k: ErrorKind,
) -> Result<Value, Error> {
    let type_err = |what: &str| {
        let path = path_fn();
        bad(
            k,
            &path,
            format!("field `{path}` must be {what}, got {}", describe(j)),
        )
    };
    Ok(match ty {
        Ty::Bool => match j {
            Json::Bool(b) => Value::Bool(*b),
            _ => return Err(type_err("true or false")),
        },
        Ty::Number | Ty::Money => match decimal_of(j) {
            Some(d) => Value::Num(d),
            None => {
                return Err(type_err(if ty == Ty::Money {
                    "an amount like \"12.50\""
                } else {
                    "a number"
                }))
            }
        },
        Ty::Text => match j {
            Json::String(s) => Value::Text(s.as_str().into()),
            Json::Number(n) => Value::Text(n.to_string().into()),
            _ => return Err(type_err("text")),
        },
        Ty::Date => match j {
            Json::String(s) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Ok(d) => Value::Date(d),
                Err(_) => return Err(type_err("a date like \"2026-12-01\"")),
            },
            _ => return Err(type_err("a date like \"2026-12-01\"")),
        },
        Ty::Time => match j {
            Json::String(s) => match NaiveTime::parse_from_str(s, "%H:%M:%S")
                .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
            {
                Ok(t) => Value::Time(t),
                Err(_) => return Err(type_err("a time like \"17:30\"")),
            },
            _ => return Err(type_err("a time like \"17:30\"")),
        },
        Ty::DateTime => match j {
            Json::String(s) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) => Value::DateTime(t.with_timezone(&Utc)),
                Err(_) => {
                    let path = path_fn();
                    return Err(bad(
                        k,
                        &path,
                        format!(
                            "field `{path}` must be an RFC 3339 timestamp with an offset, like \"2026-11-24T18:30:00Z\", got {}",
                            describe(j)
                        ),
                    ));
                }
            },
            _ => return Err(type_err("a timestamp like \"2026-11-24T18:30:00Z\"")),
        },
        Ty::Weekday => match j {
            Json::String(s) => match weekday_from_name(s) {
                Some(d) => Value::Weekday(d),
                None => return Err(type_err("a weekday name")),
            },
            _ => return Err(type_err("a weekday name")),
        },
        Ty::Tier => match j {
            Json::String(s) => match ir.tiers.iter().position(|t| t.eq_ignore_ascii_case(s)) {
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
            _ => return Err(type_err("a tier name")),
        },
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

fn describe(j: &Json) -> String {
    match j {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) if s.chars().count() > 40 => {
            format!("\"{}...\"", s.chars().take(40).collect::<String>())
        }
        Json::String(s) => format!("\"{s}\""),
        Json::Array(_) => "a list".into(),
        Json::Object(_) => "an object".into(),
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
