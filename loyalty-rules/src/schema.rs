//! Types, and the shapes of built-in events, basket items and customers.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;

/// The type of a value in the language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Bool,
    Number,
    Money,
    Text,
    Date,
    Time,
    DateTime,
    Weekday,
    Tier,
    /// A basket line (record of `ITEM_FIELDS`).
    Item,
    List(Elem),
    /// Error recovery: already reported.
    Error,
}

/// Element types of lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Elem {
    Text,
    Number,
    Money,
    Date,
    Item,
}

impl Elem {
    pub fn ty(self) -> Ty {
        match self {
            Elem::Text => Ty::Text,
            Elem::Number => Ty::Number,
            Elem::Money => Ty::Money,
            Elem::Date => Ty::Date,
            Elem::Item => Ty::Item,
        }
    }
    pub fn of(ty: Ty) -> Option<Elem> {
        Some(match ty {
            Ty::Text => Elem::Text,
            Ty::Number => Elem::Number,
            Ty::Money => Elem::Money,
            Ty::Date => Elem::Date,
            Ty::Item => Elem::Item,
            _ => return None,
        })
    }
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Bool => "yes/no",
            Ty::Number => "number",
            Ty::Money => "money",
            Ty::Text => "text",
            Ty::Date => "date",
            Ty::Time => "time of day",
            Ty::DateTime => "timestamp",
            Ty::Weekday => "weekday",
            Ty::Tier => "tier",
            Ty::Item => "basket item",
            Ty::List(Elem::Text) => "list of text",
            Ty::List(Elem::Number) => "list of numbers",
            Ty::List(Elem::Money) => "list of money",
            Ty::List(Elem::Date) => "list of dates",
            Ty::List(Elem::Item) => "list of basket items",
            Ty::Error => "?",
        }
    }

    /// Parse a declared type name.
    pub fn from_decl(name: &str) -> Option<Ty> {
        Some(match name.to_ascii_lowercase().as_str() {
            "money" => Ty::Money,
            "number" => Ty::Number,
            "text" | "customer" => Ty::Text,
            "date" => Ty::Date,
            "time" => Ty::Time,
            "timestamp" | "datetime" => Ty::DateTime,
            "boolean" | "bool" | "yesno" | "flag" => Ty::Bool,
            "tier" => Ty::Tier,
            "weekday" => Ty::Weekday,
            "item" => Ty::Item,
            _ => return None,
        })
    }

    pub const DECL_NAMES: &'static [&'static str] = &[
        "money",
        "number",
        "text",
        "customer",
        "date",
        "time",
        "timestamp",
        "boolean",
        "tier",
        "weekday",
    ];
}

/// A runtime value. Money is a `Num`: the distinction is checked at compile time.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Num(Decimal),
    Text(Arc<str>),
    Date(NaiveDate),
    Time(NaiveTime),
    DateTime(DateTime<Utc>),
    Weekday(u8),
    Tier(u16),
    List(Vec<Value>),
    Record(Box<[Value]>),
}

/// A field of an event, item or customer.
#[derive(Clone, Debug)]
pub(crate) struct FieldDef {
    pub name: String,
    pub ty: Ty,
    pub optional: bool,
    /// Value used when the field is absent (for optional fields with a natural default).
    pub default: Option<Value>,
}

fn f(name: &str, ty: Ty) -> FieldDef {
    FieldDef {
        name: name.into(),
        ty,
        optional: false,
        default: None,
    }
}
fn opt(name: &str, ty: Ty) -> FieldDef {
    FieldDef {
        name: name.into(),
        ty,
        optional: true,
        default: None,
    }
}
fn dflt(name: &str, ty: Ty, v: Value) -> FieldDef {
    FieldDef {
        name: name.into(),
        ty,
        optional: true,
        default: Some(v),
    }
}

/// Slots shared by every event.
pub(crate) const EV_ID: usize = 0;
pub(crate) const EV_CUSTOMER: usize = 1;
pub(crate) const EV_TIME: usize = 2;

/// Basket line fields, in slot order (built once, shared).
pub(crate) fn item_fields() -> &'static [FieldDef] {
    static FIELDS: OnceLock<Vec<FieldDef>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        vec![
            opt("sku", Ty::Text),
            opt("name", Ty::Text),
            opt("category", Ty::Text),
            opt("brand", Ty::Text),
            f("price", Ty::Money),
            dflt("quantity", Ty::Number, Value::Num(Decimal::ONE)),
            // computed: price * quantity
            dflt("total", Ty::Money, Value::Null),
            dflt("labels", Ty::List(Elem::Text), Value::List(Vec::new())),
            dflt("discounted", Ty::Bool, Value::Bool(false)),
        ]
    })
}
pub(crate) const ITEM_PRICE: usize = 4;
pub(crate) const ITEM_QUANTITY: usize = 5;
pub(crate) const ITEM_TOTAL: usize = 6;

/// An event type: built-in or declared.
#[derive(Clone, Debug)]
pub(crate) struct EventSchema {
    pub name: String,
    pub fields: Vec<FieldDef>,
    /// The field that `IF purchase > 100` compares.
    pub primary: Option<usize>,
}

impl EventSchema {
    pub fn field(&self, name: &str) -> Option<usize> {
        self.fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))
    }
}

fn event(name: &str, extra: Vec<FieldDef>, primary: Option<&str>) -> EventSchema {
    let mut fields = vec![
        f("id", Ty::Text),
        f("customer", Ty::Text),
        f("time", Ty::DateTime),
    ];
    fields.extend(extra);
    let primary = primary.and_then(|p| fields.iter().position(|f| f.name == p));
    EventSchema {
        name: name.into(),
        fields,
        primary,
    }
}

/// The built-in events (built once, shared).
pub(crate) fn builtin_events() -> &'static [EventSchema] {
    static EVENTS: OnceLock<Vec<EventSchema>> = OnceLock::new();
    EVENTS.get_or_init(build_events)
}

fn build_events() -> Vec<EventSchema> {
    let zero = || Value::Num(Decimal::ZERO);
    let items = || dflt("items", Ty::List(Elem::Item), Value::List(Vec::new()));
    vec![
        event(
            "purchase",
            vec![
                f("amount", Ty::Money),
                items(),
                opt("store", Ty::Text),
                opt("channel", Ty::Text),
                dflt("shipping", Ty::Money, zero()),
                dflt("tax", Ty::Money, zero()),
                opt("coupon", Ty::Text),
            ],
            Some("amount"),
        ),
        event(
            "refund",
            vec![
                f("amount", Ty::Money),
                opt("original", Ty::Text),
                items(),
                opt("store", Ty::Text),
                opt("channel", Ty::Text),
            ],
            Some("amount"),
        ),
        event(
            "referral",
            vec![
                opt("referee", Ty::Text),
                dflt("successful", Ty::Bool, Value::Bool(false)),
            ],
            None,
        ),
        event(
            "signup",
            vec![opt("channel", Ty::Text), opt("referred_by", Ty::Text)],
            None,
        ),
        event("login", vec![opt("channel", Ty::Text)], None),
        event(
            "review",
            vec![f("rating", Ty::Number), opt("product", Ty::Text)],
            Some("rating"),
        ),
        event("birthday", vec![], None),
        event(
            "renewal",
            vec![opt("plan", Ty::Text), opt("amount", Ty::Money)],
            Some("amount"),
        ),
        event(
            "redemption",
            vec![f("reward", Ty::Text), f("points", Ty::Number)],
            Some("points"),
        ),
        event(
            "tier_change",
            vec![opt("from", Ty::Tier), f("to", Ty::Tier)],
            None,
        ),
    ]
}

pub(crate) const CU_TIER: usize = 1;

/// Built-in customer fields, in slot order (declared attributes follow;
/// built once, shared).
pub(crate) fn customer_fields() -> &'static [FieldDef] {
    static FIELDS: OnceLock<Vec<FieldDef>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        vec![
            f("id", Ty::Text),
            opt("tier", Ty::Tier),
            dflt("tags", Ty::List(Elem::Text), Value::List(Vec::new())),
            dflt("points", Ty::Number, Value::Num(Decimal::ZERO)),
            dflt("pending_points", Ty::Number, Value::Num(Decimal::ZERO)),
            opt("birthday", Ty::Date),
            opt("joined", Ty::Date),
            opt("referred_by", Ty::Text),
        ]
    })
}

/// Calendar values of the event's local time, usable as bare names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Calendar {
    Weekday,
    Hour,
    Minute,
    Time,
    Date,
    Day,
    Month,
    Year,
}

impl Calendar {
    pub const NAMES: &'static [&'static str] = &[
        "weekday", "hour", "minute", "time", "date", "today", "day", "month", "year",
    ];

    pub fn from_name(n: &str) -> Option<Calendar> {
        // No name is longer than 7 bytes: lower-case on the stack.
        let mut buf = [0u8; 7];
        let l = buf.get_mut(..n.len())?;
        l.copy_from_slice(n.as_bytes());
        l.make_ascii_lowercase();
        Some(match &*l {
            b"weekday" => Calendar::Weekday,
            b"hour" => Calendar::Hour,
            b"minute" => Calendar::Minute,
            b"time" => Calendar::Time,
            b"date" | b"today" => Calendar::Date,
            b"day" => Calendar::Day,
            b"month" => Calendar::Month,
            b"year" => Calendar::Year,
            _ => return None,
        })
    }
    pub fn ty(self) -> Ty {
        match self {
            Calendar::Weekday => Ty::Weekday,
            Calendar::Time => Ty::Time,
            Calendar::Date => Ty::Date,
            _ => Ty::Number,
        }
    }
}

pub(crate) const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Monday = 0.
pub(crate) fn weekday_from_name(n: &str) -> Option<u8> {
    let n = n.as_bytes();
    WEEKDAYS
        .iter()
        .position(|w| {
            let w = w.as_bytes();
            w.eq_ignore_ascii_case(n) || (n.len() == 3 && w[..3].eq_ignore_ascii_case(n))
        })
        .map(|i| i as u8)
}
