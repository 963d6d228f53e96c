//! The syntax tree: what the source says, with a span on every node.
//!
//! Produced by `parser.rs`, consumed by `check.rs` and `format.rs`. Nothing
//! here is resolved or typed yet.
// Built once per compile and walked a few times; boxing the big variants
// would mostly only add indirection. The exceptions are boxed where they are
// declared (a rule's trigger, an effect clause): there the copies of a large
// node cost more than the allocation.
#![allow(clippy::large_enum_variant)]

use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use rust_decimal::Decimal;

/// A byte range in the source. Spans are not part of a node's identity:
/// two nodes that differ only in where they came from compare equal, so a
/// formatted and re-parsed program equals the original.
#[derive(Clone, Copy, Debug, Default)]
pub struct Span {
    /// Byte offset of the first character.
    pub start: u32,
    /// Byte offset one past the last character.
    pub end: u32,
}

impl PartialEq for Span {
    fn eq(&self, _: &Span) -> bool {
        true
    }
}

impl Span {
    /// A span covering `start..end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// Text in the tree: a name, or a string literal's content. The fast
/// parser keeps a slice of the (shared) source instead of a copy when the
/// source spells the text as it is, so most names cost no allocation.
/// Reads as a `str`; compares, prints and hashes as one.
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    /// `source[start..end]`.
    Source(Arc<str>, u32, u32),
    Own(Box<str>),
}

impl Text {
    /// The text `source[start..end]`, sharing `source`. `start..end` must be
    /// a range of `source` on character boundaries.
    pub fn slice(source: &Arc<str>, start: usize, end: usize) -> Text {
        debug_assert!(source.get(start..end).is_some());
        Text(Repr::Source(Arc::clone(source), start as u32, end as u32))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Source(s, a, b) => s.get(*a as usize..*b as usize).unwrap_or_default(),
            Repr::Own(s) => s,
        }
    }
}

impl Default for Text {
    fn default() -> Text {
        Text(Repr::Own(Box::default()))
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Repr::Own(s.into_boxed_str()))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(Repr::Own(s.into()))
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.as_str().to_string()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self.as_str(), f)
    }
}

/// A name with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Name {
    /// The name as written.
    pub text: Text,
    /// Where it was written.
    pub span: Span,
}

/// A whole program.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Program {
    /// Top-level items in source order.
    pub items: Vec<Item>,
}

/// How points are rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundingMode {
    /// Toward zero for positive amounts (floor of the magnitude).
    Down,
    /// Away from zero.
    Up,
    /// Banker's rounding.
    HalfEven,
    /// Half away from zero.
    HalfUp,
}

/// A top-level item.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `program "Name"`
    Header(Name),
    /// `currency USD`
    Currency(Name),
    /// `timezone "Europe/Paris"`
    Timezone(Name),
    /// `points are whole, rounded down` / `points have 2 decimals, rounded half even`
    Rounding {
        /// Decimal places kept.
        decimals: u32,
        /// Rounding mode.
        mode: RoundingMode,
        /// Where.
        span: Span,
    },
    /// `customer has name: type ...`
    CustomerDecl(Vec<FieldDecl>),
    /// `event name has field: type ...`
    EventDecl {
        /// The event's name.
        name: Name,
        /// Its payload fields.
        fields: Vec<FieldDecl>,
    },
    /// `tiers bronze, silver, gold` (lowest first)
    Tiers(Vec<Name>),
    /// `rewards "free coffee", "$5 off"`
    Rewards(Vec<Name>),
    /// `points kinds status, miles`
    PointKinds(Vec<Name>),
    /// A rule, full form or one-liner.
    Rule(Rule),
    /// `points expire 12 months after earning` / `at end of year` / `never`
    Expiry(ExpirySpec, Span),
    /// `points are pending for 14 days`
    Pending(u32, PeriodUnit, Span),
    /// `warn 10 days before points expire`
    ExpiryWarning(u32, PeriodUnit, Span),
    /// `at most 5000 points per customer per month` (all rules together)
    ProgramCap {
        /// The cap.
        points: Decimal,
        /// Point kind.
        kind: Option<Name>,
        /// Calendar period.
        period: PeriodUnit,
        /// Where.
        span: Span,
    },
    /// `tiers by spend in last 12 months  silver from $500 ...`
    TierQualification {
        /// What qualifies.
        metric: TierMetric,
        /// Over which window.
        window: Window,
        /// Tiers, in the order written.
        thresholds: Vec<(Name, Decimal, bool)>,
        /// Downgrade review.
        review: Option<(u32, PeriodUnit, bool)>,
        /// Where.
        span: Span,
    },
}

/// A calendar unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeriodUnit {
    /// day
    Day,
    /// week (Monday to Sunday)
    Week,
    /// month
    Month,
    /// year
    Year,
}

/// A duration unit for cooldowns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanUnit {
    /// hours
    Hour,
    /// days
    Day,
    /// weeks
    Week,
}

/// A history window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// All time.
    Ever,
    /// The event's local day.
    Today,
    /// The last N units, ending with the event's local day (inclusive).
    Last(u32, PeriodUnit),
    /// The current calendar unit.
    This(PeriodUnit),
}

/// When points expire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpirySpec {
    /// N units after they are earned (rolling).
    After(u32, PeriodUnit),
    /// At the end of the calendar unit they are earned in.
    EndOf(PeriodUnit),
    /// Never.
    Never,
}

/// What qualifies a customer for a tier.
#[derive(Clone, Debug, PartialEq)]
pub enum TierMetric {
    /// Money spent (sum of purchase amounts).
    Spend,
    /// Number of purchases.
    Visits,
    /// Points of a kind earned.
    Points(Option<Name>),
}

/// A rule's limit.
#[derive(Clone, Debug, PartialEq)]
pub enum Limit {
    /// `at most N times [per customer | in total] [per P | every N units]`
    Times {
        /// How many times.
        n: u32,
        /// Across all customers (`in total`).
        total: bool,
        /// Calendar period.
        period: Option<PeriodUnit>,
        /// Cooldown.
        every: Option<(u32, SpanUnit)>,
        /// Where.
        span: Span,
    },
    /// `at most N points [per customer] [per P]`
    Points {
        /// The cap.
        points: Decimal,
        /// Point kind.
        kind: Option<Name>,
        /// Calendar period (None: ever).
        period: Option<PeriodUnit>,
        /// Where.
        span: Span,
    },
}

/// History kept in the customer's state.
#[derive(Clone, Debug, PartialEq)]
pub enum History {
    /// `count of purchases in last 30 days`
    Count(Name, Window),
    /// `sum of purchase.amount in last 12 months`
    Sum(Box<Expr>, Window),
    /// `[kind] points earned this month`
    Points(Option<Name>, Window),
    /// `first purchase`
    First(Name),
    /// `streak of days with login`
    Streak(bool, Name),
    /// `days since last purchase`
    DaysSinceLast(Name),
}

/// `name: type` in a declaration.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldDecl {
    /// Field name.
    pub name: Name,
    /// Type name as written (`money`, `text`, ...).
    pub ty: Name,
    /// `list of <ty>`.
    pub list: bool,
    /// Marked optional with `?`.
    pub optional: bool,
}

/// A rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// The name (full form), or `None` for a one-liner.
    pub name: Option<Name>,
    /// One-liner trigger, when written as `IF ... THEN ...` (boxed: it is
    /// most of a rule's size, and most rules have none).
    pub trigger: Option<Box<Trigger>>,
    /// Clauses in source order.
    pub clauses: Vec<Clause>,
    /// The whole rule.
    pub span: Span,
}

/// The part between `IF` and `THEN` of a one-liner.
#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    /// `IF Purchase > $100`, `IF Birthday`, `IF Referral Successful and ...`
    Head {
        /// The event name.
        event: Name,
        /// A boolean field of the event that must be true (`Successful`).
        word: Option<Name>,
        /// Comparison applied to `word`'s field, or to the event's amount.
        cmp: Option<(CmpOp, Expr)>,
        /// `and <condition>`.
        rest: Option<Expr>,
    },
    /// Any condition; the event is inferred from the fields it uses.
    Expr(Expr),
}

/// One clause of a rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Clause {
    /// `on purchase`
    On(Name),
    /// `if <condition>` (several are and-ed).
    If(Expr),
    /// `active from D [to D]` / `active until D`
    Active {
        /// First day, inclusive.
        from: Option<NaiveDate>,
        /// Last day, inclusive.
        to: Option<NaiveDate>,
        /// Where.
        span: Span,
    },
    /// `in exclusive group "x"` / `in best group "x"`
    Group {
        /// Best-of (largest award wins) instead of first-match.
        best: bool,
        /// Group name.
        name: Name,
    },
    /// `priority 10`
    Priority(i64, Span),
    /// `stop processing`
    Stop(Span),
    /// An effect (boxed: it is most of a clause's size, and keeping
    /// clauses small keeps a rule's clause list small to build and move).
    Effect(Box<Effect>),
    /// A limit on how often or how much.
    Limit(Limit),
    /// `budget N points|awards` across all customers.
    Budget {
        /// The budget.
        amount: Decimal,
        /// Counts awards (true) or points.
        awards: bool,
        /// Where.
        span: Span,
    },
    /// `points expire ...` for this rule's awards.
    Expiry(ExpirySpec, Span),
}

/// How a proportional award counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateMode {
    /// `per`: proportional.
    Per,
    /// `for every`: whole steps only.
    Every,
}

/// How many points an award or deduction gives.
#[derive(Clone, Debug, PartialEq)]
pub enum Amount {
    /// `award 100 points`
    Fixed(Expr),
    /// `award 10% of purchase.amount`
    Percent {
        /// The percentage, e.g. 10 for 10%.
        pct: Decimal,
        /// Span of the percentage literal.
        pct_span: Span,
        /// The base.
        of: Expr,
    },
    /// `award 2 points per $1 [of x]` / `award 10 points for every $10 [of x]`
    Rate {
        /// Points per unit.
        points: Expr,
        /// Proportional or whole steps.
        mode: RateMode,
        /// The unit.
        unit: Expr,
        /// What is measured (default: the event's amount).
        of: Option<Expr>,
    },
    /// `award 5 points for each item in purchase.items where ...`
    Each {
        /// Points per matching element.
        points: Expr,
        /// Loop variable.
        var: Name,
        /// The list.
        list: Expr,
        /// Filter.
        filter: Option<Expr>,
    },
}

/// An effect.
#[derive(Clone, Debug, PartialEq)]
pub struct Effect {
    /// What it does.
    pub kind: EffectKind,
    /// Where.
    pub span: Span,
}

/// The effects.
#[derive(Clone, Debug, PartialEq)]
pub enum EffectKind {
    /// `award [bonus] <amount> [kind] points [to <customer>]`; `deduct ...`
    Award {
        /// Negative (`deduct`).
        deduct: bool,
        /// Written with `bonus`.
        bonus: bool,
        /// How many.
        amount: Amount,
        /// Point kind (`status`), default spendable points.
        kind: Option<Name>,
        /// Another customer.
        to: Option<Expr>,
    },
    /// `multiply [kind] points [of rule "x"] by 2`
    Multiply {
        /// Point kind.
        kind: Option<Name>,
        /// Only points from this rule.
        rule: Option<Name>,
        /// The factor.
        factor: Expr,
    },
    /// `grant reward "x" [to <customer>]`
    Grant {
        /// Reward name.
        reward: Name,
        /// Another customer.
        to: Option<Expr>,
    },
    /// `set tier gold`
    SetTier(Name),
    /// `set customer.attr to <value>`
    SetAttr {
        /// The attribute path.
        target: Expr,
        /// New value.
        value: Expr,
    },
    /// `tag customer "vip"`
    Tag(Name),
    /// `notify "message"`
    Notify(Name),
    /// `redeem N points [for reward "x"]` (auto-redeem)
    Redeem {
        /// How many points.
        points: Expr,
        /// The reward bought.
        reward: Option<Name>,
    },
    /// `extend expiry by N months|days`
    ExtendExpiry {
        /// How much.
        amount: u32,
        /// Months (true) or days.
        months: bool,
    },
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`, `==`, `is`
    Eq,
    /// `!=`, `is not`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as written in canonical source.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// Text tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextOp {
    /// `contains` (text) or membership (list).
    Contains,
    /// `starts with`
    StartsWith,
    /// `ends with`
    EndsWith,
    /// `matches "glob*"` (case-insensitive, `*` and `?`).
    Matches,
}

impl TextOp {
    /// The test as written in source.
    pub fn words(self) -> &'static str {
        match self {
            TextOp::Contains => "contains",
            TextOp::StartsWith => "starts with",
            TextOp::EndsWith => "ends with",
            TextOp::Matches => "matches",
        }
    }
}

/// Arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

/// Quantifiers over a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quant {
    /// `any`
    Any,
    /// `all` / `every`
    All,
    /// `no` / `none`
    None,
}

/// Aggregates over a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agg {
    /// `count of`
    Count,
    /// `sum of`
    Sum,
    /// `min of`
    Min,
    /// `max of`
    Max,
}

/// `X of <date>` calendar functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfFn {
    /// `anniversary of d`: d's month and day in the event's year.
    Anniversary,
    /// `month of d`
    Month,
    /// `year of d`
    Year,
    /// `day of d` (day of month)
    Day,
    /// `weekday of d`
    Weekday,
    /// `hour of t`
    Hour,
    /// `days since d`
    DaysSince,
    /// `days until d`
    DaysUntil,
}

/// The two operands of `and`, `or` and comparisons, in one allocation (the
/// most common nodes: one box for both saves an allocation apiece).
pub type Pair = Box<[Expr; 2]>;

/// An expression with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is.
    pub span: Span,
}

/// Expression forms.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// `42`, `1.5`
    Number(Decimal),
    /// `$100` (the currency sign as written)
    Money(Decimal, char),
    /// `10%`
    Percent(Decimal),
    /// `"text"`
    Str(Text),
    /// `true` / `false`
    Bool(bool),
    /// `2026-12-01`
    Date(NaiveDate),
    /// `17:30`
    Time(NaiveTime),
    /// A bare name: a field root, a loop variable, a calendar value, a tier...
    Name(Text),
    /// `x.field`
    Field(Box<Expr>, Name),
    /// `[a, b]`
    List(Vec<Expr>),
    /// `-x`
    Neg(Box<Expr>),
    /// `not x`
    Not(Box<Expr>),
    /// `a and b`
    And(Pair),
    /// `a or b`
    Or(Pair),
    /// `a + b` etc.
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    /// `a > b` etc.
    Cmp(CmpOp, Pair),
    /// `a [not] contains b` etc.
    TextTest(TextOp, bool, Box<Expr>, Box<Expr>),
    /// `a [not] in b`
    In(bool, Box<Expr>, Box<Expr>),
    /// `a is [not] between lo and hi` (inclusive)
    Between(bool, Box<Expr>, Box<Expr>, Box<Expr>),
    /// `a is [not] set`
    IsSet(bool, Box<Expr>),
    /// `if c then a else b`
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `f(a, b)`
    Call(Name, Vec<Expr>),
    /// `month of d`
    Of(OfFn, Box<Expr>),
    /// History from the customer's state.
    History(History),
    /// `any item in list where cond`
    Quant(Quant, Name, Box<Expr>, Box<Expr>),
    /// `sum of value for each item in list [where cond]`; `count of item in list [where cond]`
    Agg {
        /// Which aggregate.
        agg: Agg,
        /// The value (None for count).
        value: Option<Box<Expr>>,
        /// Loop variable.
        var: Name,
        /// The list.
        list: Box<Expr>,
        /// Filter.
        filter: Option<Box<Expr>>,
    },
}

impl Expr {
    /// Build an expression.
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }
}
