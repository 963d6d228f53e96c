//! The checked, resolved form that the evaluator runs: every name is a slot,
//! every node has a type and a span, no strings are looked up at run time.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::ast::{
    Agg, ArithOp, CmpOp, ExpirySpec, OfFn, PeriodUnit, Quant, RoundingMode, Span, TextOp, Window,
};
use crate::schema::{Calendar, EventSchema, FieldDef, Ty, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    Min,
    Max,
    Round,
    Floor,
    Ceil,
    Abs,
}

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub ty: Ty,
    pub span: Span,
}

/// The two operands of `and`, `or` and comparisons, in one allocation (the
/// most common nodes: one box for both saves an allocation apiece).
pub(crate) type Pair = Box<[Node; 2]>;

#[derive(Clone, Debug)]
pub(crate) enum NodeKind {
    Const(Value),
    EventField(u16),
    CustomerField(u16),
    /// Loop variable at this depth (0 = outermost), optionally a field of it.
    Local(u8, Option<u16>),
    Calendar(Calendar),
    Not(Box<Node>),
    And(Pair),
    Or(Pair),
    Neg(Box<Node>),
    Arith(ArithOp, Box<Node>, Box<Node>),
    Cmp(CmpOp, Pair),
    TextTest(TextOp, bool, Box<Node>, Box<Node>),
    In(bool, Box<Node>, Box<Node>),
    /// `list contains text`, ignoring ASCII case (list first).
    ListContains(bool, Box<Node>, Box<Node>),
    Between(bool, Box<Node>, Box<Node>, Box<Node>),
    IsSet(bool, Box<Node>),
    If(Box<Node>, Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
    Of(OfFn, Box<Node>),
    History(HistIr),
    Quant(Quant, u8, Box<Node>, Box<Node>),
    Agg {
        agg: Agg,
        depth: u8,
        list: Box<Node>,
        value: Option<Box<Node>>,
        filter: Option<Box<Node>>,
    },
}

impl Node {
    pub fn new(kind: NodeKind, ty: Ty, span: Span) -> Node {
        Node { kind, ty, span }
    }
}

/// A history query against the customer's state.
#[derive(Clone, Copy, Debug)]
pub(crate) enum HistIr {
    Count {
        ty: u16,
        window: Window,
    },
    /// index into `ProgramIr::tracked`
    Sum {
        idx: u16,
        window: Window,
    },
    Points {
        kind: u16,
        window: Window,
    },
    First(u16),
    Streak {
        ty: u16,
        weeks: bool,
    },
    DaysSinceLast(u16),
}

#[derive(Clone, Debug)]
pub(crate) enum LimitIr {
    Times {
        n: u32,
        total: bool,
        period: Option<PeriodUnit>,
        /// cooldown in seconds
        every: Option<i64>,
        text: Arc<str>,
    },
    Points {
        points: Decimal,
        kind: u16,
        period: Option<PeriodUnit>,
        text: Arc<str>,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct ProgramCapIr {
    pub kind: u16,
    pub points: Decimal,
    pub period: PeriodUnit,
    pub text: Arc<str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TierMetricIr {
    Spend,
    Visits,
    Points(u16),
}

#[derive(Clone, Debug)]
pub(crate) struct TieringIr {
    pub metric: TierMetricIr,
    pub window: Window,
    /// (tier index, minimum), ascending
    pub thresholds: Vec<(u16, Decimal)>,
    /// (every n units, drop at most one tier)
    pub review: Option<(u32, PeriodUnit, bool)>,
}

#[derive(Clone, Debug)]
pub(crate) enum AmountIr {
    Fixed(Node),
    /// factor = pct / 100
    Percent(Decimal, Node),
    Rate {
        points: Node,
        every: bool,
        unit: Node,
        of: Node,
    },
    Each {
        points: Node,
        depth: u8,
        list: Node,
        filter: Option<Node>,
    },
}

#[derive(Clone, Debug)]
pub(crate) enum EffectIr {
    Award {
        deduct: bool,
        kind: u16,
        amount: AmountIr,
        to: Option<Node>,
    },
    Multiply {
        kind: u16,
        rule: Option<u32>,
        factor: Node,
    },
    Grant {
        reward: Arc<str>,
        to: Option<Node>,
    },
    SetTier(u16),
    SetAttr {
        attr: Arc<str>,
        value: Node,
    },
    Tag(Arc<str>),
    Notify(Arc<str>),
    Redeem {
        points: Node,
        reward: Option<Arc<str>>,
    },
    Extend {
        amount: u32,
        months: bool,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct RuleIr {
    pub name: Arc<str>,
    pub event: u16,
    pub cond: Option<Node>,
    pub active: (Option<NaiveDate>, Option<NaiveDate>),
    pub priority: i64,
    /// (group index, best-of)
    pub group: Option<(u16, bool)>,
    pub stop: bool,
    pub effects: Vec<EffectIr>,
    pub span: Span,
    pub limits: Vec<LimitIr>,
    /// (amount, counts awards rather than points)
    pub budget: Option<(Decimal, bool)>,
    pub expiry: Option<ExpirySpec>,
    /// `cond` as a fast predicate (set by the compiler, after folding).
    pub pred: Option<crate::pred::Pred>,
}

impl RuleIr {
    /// Whether `day` is inside the rule's `active` dates (both inclusive).
    #[inline]
    pub fn active_on(&self, day: NaiveDate) -> bool {
        let (from, to) = self.active;
        from.is_none_or(|f| day >= f) && to.is_none_or(|t| day <= t)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ProgramIr {
    pub name: Option<String>,
    pub currency: Currency,
    pub tz: crate::tz::Tz,
    pub decimals: u32,
    pub rounding: RoundingMode,
    /// The built-in events (`schema::builtin_events`, shared) until a
    /// declaration adds one or extends one.
    pub events: Cow<'static, [EventSchema]>,
    /// The built-in customer fields, then any declared attributes.
    pub customer: Cow<'static, [FieldDef]>,
    pub item: Cow<'static, [FieldDef]>,
    pub tiers: Vec<Arc<str>>,
    pub rewards: Vec<Arc<str>>,
    /// Point kinds; index 0 is the spendable `points`.
    pub kinds: Vec<Arc<str>>,
    pub groups: Vec<Arc<str>>,
    pub rules: Vec<RuleIr>,
    pub expiry: ExpirySpec,
    pub pending: Option<(u32, PeriodUnit)>,
    /// `warn N units before points expire`
    pub warning: Option<(u32, PeriodUnit)>,
    pub caps: Vec<ProgramCapIr>,
    pub tiering: Option<TieringIr>,
    /// History sums kept per event type: (event type, field slot).
    pub tracked: Vec<(u16, u16)>,
    /// Longest window (in days) any history query looks back, per event type.
    pub retention_days: Vec<u32>,
    /// Longest window over points earned, per kind.
    pub points_retention_days: Vec<u32>,
    /// Per event type: a fingerprint of everything decoding an event of
    /// that type depends on (its fields, the item fields and tiers where
    /// it uses them, and the time zone), which the events decoded carry. An
    /// event from another program is used only if its type's fingerprint
    /// here is the same (see `input::fit_event`). Set by `Compiled::new`.
    pub event_keys: Vec<u64>,
    /// The same for customers (their fields and the tiers).
    pub customer_key: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Currency {
    pub code: [u8; 3],
    pub sign: Option<char>,
}

impl Currency {
    pub fn from_code(code: &str) -> Option<Currency> {
        let up = code.to_ascii_uppercase();
        let b = up.as_bytes();
        if b.len() != 3 || !b.iter().all(|c| c.is_ascii_uppercase()) {
            return None;
        }
        let sign = match up.as_str() {
            "USD" | "CAD" | "AUD" | "NZD" | "SGD" | "HKD" | "MXN" => Some('$'),
            "EUR" => Some('€'),
            "GBP" => Some('£'),
            _ => None,
        };
        Some(Currency {
            code: [b[0], b[1], b[2]],
            sign,
        })
    }
    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.code).unwrap_or("USD")
    }
    pub fn format(&self, v: Decimal) -> String {
        match self.sign {
            Some(s) if v.is_sign_negative() => format!("-{s}{}", v.abs()),
            Some(s) => format!("{s}{v}"),
            None => format!("{v} {}", self.code()),
        }
    }
}
