//! The evaluator: runs a compiled program's rules for one event.
//!
//! Works on slots only; allocates nothing unless a rule fires (effects) or
//! an explanation is asked for.

use std::cmp::Ordering;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate, Timelike};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::ast::{Agg, ArithOp, CmpOp, OfFn, Quant, RoundingMode, Span, TextOp};
use crate::compile::{Compiled, Quick};
use crate::history;
use crate::index;
use crate::input::{customer_fits, fit_customer, fit_event, fits, to_json, Customer, Event};
use crate::ir::*;
use crate::limits;
use crate::outcome::*;
use crate::pred::{read, Src};
use crate::schema::{Ty, Value, CU_TIER, WEEKDAYS};
use crate::state::{BudgetUse, CustomerState};

/// Most loop iterations (over list elements) one event may cost.
const FUEL: u32 = 1_000_000;

/// A borrowed runtime value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum V<'a> {
    Null,
    Bool(bool),
    Num(Decimal),
    Text(&'a str),
    Date(NaiveDate),
    Time(chrono::NaiveTime),
    DateTime(chrono::DateTime<chrono::Utc>),
    Weekday(u8),
    Tier(u16),
    List(&'a [Value]),
    Record(&'a [Value]),
}

#[inline]
pub(crate) fn view(v: &Value) -> V<'_> {
    match v {
        Value::Null => V::Null,
        Value::Bool(b) => V::Bool(*b),
        Value::Num(d) => V::Num(*d),
        Value::Text(s) => V::Text(s),
        Value::Date(d) => V::Date(*d),
        Value::Time(t) => V::Time(*t),
        Value::DateTime(t) => V::DateTime(*t),
        Value::Weekday(d) => V::Weekday(*d),
        Value::Tier(t) => V::Tier(*t),
        Value::List(l) => V::List(l),
        Value::Record(r) => V::Record(r),
    }
}

pub(crate) fn own_value(v: V<'_>) -> Value {
    match v {
        V::Null => Value::Null,
        V::Bool(b) => Value::Bool(b),
        V::Num(d) => Value::Num(d),
        V::Text(s) => Value::Text(s.into()),
        V::Date(d) => Value::Date(d),
        V::Time(t) => Value::Time(t),
        V::DateTime(t) => Value::DateTime(t),
        V::Weekday(d) => Value::Weekday(d),
        V::Tier(t) => Value::Tier(t),
        V::List(l) => Value::List(l.to_vec()),
        V::Record(r) => Value::Record(r.to_vec().into_boxed_slice()),
    }
}

/// A run-time failure inside one rule.
#[derive(Debug)]
pub(crate) struct EvalError(pub &'static str);

type R<T> = Result<T, EvalError>;

pub(crate) struct Ctx<'a> {
    pub event: &'a Event,
    pub customer: &'a Customer,
    pub locals: [V<'a>; 8],
    pub fuel: u32,
    /// The customer's state and campaign counters, inside the engine.
    pub st: Option<StateCtx<'a>>,
    /// Points awarded so far on this event, per program cap.
    pub cap_used: Vec<Decimal>,
    /// Points awarded so far by the current rule, per limit (and budget last).
    pub rule_used: [Decimal; 9],
}

/// What a stateful evaluation reads (state aligned with the program).
#[derive(Clone, Copy)]
pub(crate) struct StateCtx<'a> {
    pub customer: &'a CustomerState,
    pub budgets: &'a [BudgetUse],
}

impl<'a> Ctx<'a> {
    pub fn new(
        event: &'a Event,
        customer: &'a Customer,
        st: Option<StateCtx<'a>>,
        caps: usize,
    ) -> Ctx<'a> {
        Ctx {
            event,
            customer,
            locals: [V::Null; 8],
            fuel: FUEL,
            st,
            cap_used: if st.is_some() && caps > 0 {
                vec![Decimal::ZERO; caps]
            } else {
                Vec::new()
            },
            rule_used: [Decimal::ZERO; 9],
        }
    }
}

/// Order two values of the same type (None if incomparable).
pub(crate) fn cmp_values(a: &Value, b: &Value) -> Option<Ordering> {
    cmp_v(view(a), view(b))
}

pub(crate) fn cmp_v(a: V<'_>, b: V<'_>) -> Option<Ordering> {
    Some(match (a, b) {
        (V::Num(x), V::Num(y)) => crate::pred::dec_cmp(&x, &y),
        (V::Text(x), V::Text(y)) => x.cmp(y),
        (V::Bool(x), V::Bool(y)) => x.cmp(&y),
        (V::Date(x), V::Date(y)) => x.cmp(&y),
        (V::Time(x), V::Time(y)) => x.cmp(&y),
        (V::DateTime(x), V::DateTime(y)) => x.cmp(&y),
        (V::Weekday(x), V::Weekday(y)) => x.cmp(&y),
        (V::Tier(x), V::Tier(y)) => x.cmp(&y),
        _ => return None,
    })
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Glob match with `*` and `?`, ASCII case-insensitive; linear
/// backtracking over byte offsets (no allocation).
fn glob(text: &str, pat: &str) -> bool {
    let next = |s: &str, i: usize| s[i..].chars().next();
    let (mut ti, mut pi) = (0usize, 0usize);
    let mut star: Option<usize> = None;
    let mut mark = 0usize;
    while let Some(tc) = next(text, ti) {
        match next(pat, pi) {
            Some(pc) if pc == '?' || (pc != '*' && pc.eq_ignore_ascii_case(&tc)) => {
                ti += tc.len_utf8();
                pi += pc.len_utf8();
                continue;
            }
            Some('*') => {
                star = Some(pi);
                mark = ti;
                pi += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some(s) => {
                pi = s + 1;
                mark += next(text, mark).map_or(1, char::len_utf8);
                ti = mark;
            }
            None => return false,
        }
    }
    while next(pat, pi) == Some('*') {
        pi += 1;
    }
    pi == pat.len()
}

/// `contains`, `starts with`, `ends with`, `matches`: ASCII case-insensitive.
pub(crate) fn text_test(op: TextOp, x: &str, y: &str) -> bool {
    match op {
        TextOp::Contains => contains_ci(x, y),
        TextOp::StartsWith => {
            x.len() >= y.len() && x.as_bytes()[..y.len()].eq_ignore_ascii_case(y.as_bytes())
        }
        TextOp::EndsWith => {
            x.len() >= y.len()
                && x.as_bytes()[x.len() - y.len()..].eq_ignore_ascii_case(y.as_bytes())
        }
        TextOp::Matches => glob(x, y),
    }
}

fn num(v: V<'_>) -> Option<Decimal> {
    match v {
        V::Num(d) => Some(d),
        _ => None,
    }
}

/// The date of a date, or of a timestamp in the program's zone.
fn local_date(v: V<'_>, tz: crate::tz::Tz) -> Option<NaiveDate> {
    match v {
        V::Date(d) => Some(d),
        V::DateTime(t) => Some(t.with_timezone(&tz).date_naive()),
        _ => None,
    }
}

pub(crate) struct Evaluator<'p> {
    pub ir: &'p ProgramIr,
}

impl<'p> Evaluator<'p> {
    pub fn eval<'a>(&self, n: &'a Node, cx: &mut Ctx<'a>) -> R<V<'a>>
    where
        'p: 'a,
    {
        Ok(match &n.kind {
            NodeKind::Const(v) => view(v),
            NodeKind::EventField(s) => read(Src::Event(*s), cx),
            NodeKind::CustomerField(s) => read(Src::Customer(*s), cx),
            NodeKind::Local(d, f) => read(Src::Local(*d, *f), cx),
            NodeKind::Calendar(c) => read(Src::Calendar(*c), cx),
            NodeKind::Not(a) => V::Bool(!self.truthy(a, cx)?),
            NodeKind::And(ab) => V::Bool(self.truthy(&ab[0], cx)? && self.truthy(&ab[1], cx)?),
            NodeKind::Or(ab) => V::Bool(self.truthy(&ab[0], cx)? || self.truthy(&ab[1], cx)?),
            NodeKind::Neg(a) => match self.eval(a, cx)? {
                V::Num(d) => V::Num(-d),
                _ => V::Null,
            },
            NodeKind::Arith(op, a, b) => {
                let (Some(x), Some(y)) = (num(self.eval(a, cx)?), num(self.eval(b, cx)?)) else {
                    return Ok(V::Null);
                };
                let r = match op {
                    ArithOp::Add => x.checked_add(y),
                    ArithOp::Sub => x.checked_sub(y),
                    ArithOp::Mul => x.checked_mul(y),
                    ArithOp::Div => {
                        if y.is_zero() {
                            return Err(EvalError("division by zero"));
                        }
                        x.checked_div(y)
                    }
                };
                V::Num(r.ok_or(EvalError("number too large"))?)
            }
            NodeKind::Cmp(op, ab) => {
                let x = self.eval(&ab[0], cx)?;
                let y = self.eval(&ab[1], cx)?;
                V::Bool(match cmp_v(x, y) {
                    None => false,
                    Some(o) => match op {
                        CmpOp::Eq => o == Ordering::Equal,
                        CmpOp::Ne => o != Ordering::Equal,
                        CmpOp::Lt => o == Ordering::Less,
                        CmpOp::Le => o != Ordering::Greater,
                        CmpOp::Gt => o == Ordering::Greater,
                        CmpOp::Ge => o != Ordering::Less,
                    },
                })
            }
            NodeKind::TextTest(op, neg, a, b) => {
                let (V::Text(x), V::Text(y)) = (self.eval(a, cx)?, self.eval(b, cx)?) else {
                    return Ok(V::Bool(false));
                };
                V::Bool(text_test(*op, x, y) != *neg)
            }
            NodeKind::In(neg, a, b) => {
                let x = self.eval(a, cx)?;
                if matches!(x, V::Null) {
                    return Ok(V::Bool(false));
                }
                let V::List(l) = self.eval(b, cx)? else {
                    return Ok(V::Bool(false));
                };
                let found = l.iter().any(|e| cmp_v(x, view(e)) == Some(Ordering::Equal));
                V::Bool(found != *neg)
            }
            NodeKind::ListContains(neg, list, v) => {
                let (V::List(l), V::Text(x)) = (self.eval(list, cx)?, self.eval(v, cx)?) else {
                    return Ok(V::Bool(false));
                };
                let found = l
                    .iter()
                    .any(|e| matches!(e, Value::Text(t) if t.eq_ignore_ascii_case(x)));
                V::Bool(found != *neg)
            }
            NodeKind::Between(neg, v, lo, hi) => {
                let x = self.eval(v, cx)?;
                let l = self.eval(lo, cx)?;
                let h = self.eval(hi, cx)?;
                match (cmp_v(x, l), cmp_v(x, h)) {
                    (Some(a), Some(b)) => {
                        V::Bool((a != Ordering::Less && b != Ordering::Greater) != *neg)
                    }
                    _ => V::Bool(false),
                }
            }
            NodeKind::IsSet(neg, v) => V::Bool(!matches!(self.eval(v, cx)?, V::Null) != *neg),
            NodeKind::If(c, t, f) => {
                if self.truthy(c, cx)? {
                    self.eval(t, cx)?
                } else {
                    self.eval(f, cx)?
                }
            }
            NodeKind::Call(f, args) => self.call(*f, args, cx)?,
            NodeKind::Of(f, a) => {
                let x = self.eval(a, cx)?;
                if matches!(x, V::Null) {
                    return Ok(V::Null);
                }
                match f {
                    OfFn::Hour => match x {
                        V::Time(t) => V::Num(t.hour().into()),
                        V::DateTime(t) => V::Num(t.with_timezone(&self.ir.tz).hour().into()),
                        _ => V::Null,
                    },
                    _ => {
                        let Some(d) = local_date(x, self.ir.tz) else {
                            return Ok(V::Null);
                        };
                        let today = cx.event.local.date;
                        match f {
                            OfFn::Anniversary => V::Date(anniversary(d, today.year())),
                            OfFn::Month => V::Num(d.month().into()),
                            OfFn::Year => V::Num(d.year().into()),
                            OfFn::Day => V::Num(d.day().into()),
                            OfFn::Weekday => V::Weekday(d.weekday().num_days_from_monday() as u8),
                            OfFn::DaysSince => V::Num((today - d).num_days().into()),
                            OfFn::DaysUntil => V::Num((d - today).num_days().into()),
                            OfFn::Hour => V::Null,
                        }
                    }
                }
            }
            NodeKind::History(h) => self.history(*h, cx),
            NodeKind::Quant(q, depth, list, body) => {
                let V::List(l) = self.eval(list, cx)? else {
                    return Ok(V::Bool(matches!(q, Quant::All | Quant::None)));
                };
                V::Bool(self.quantify(*q, *depth, l, cx, |cx| self.truthy(body, cx))?)
            }
            NodeKind::Agg {
                agg,
                depth,
                list,
                value,
                filter,
            } => {
                let V::List(l) = self.eval(list, cx)? else {
                    return Ok(match agg {
                        Agg::Count | Agg::Sum => V::Num(Decimal::ZERO),
                        _ => V::Null,
                    });
                };
                let mut count = Decimal::ZERO;
                let mut acc: Option<V<'a>> = None;
                let pass = |cx: &mut Ctx<'a>| match filter {
                    Some(f) => self.truthy(f, cx),
                    None => Ok(true),
                };
                self.each(l, *depth, cx, pass, |cx| {
                    match (agg, value) {
                        (Agg::Count, _) | (_, None) => count += Decimal::ONE,
                        (_, Some(v)) => {
                            let x = self.eval(v, cx)?;
                            if matches!(x, V::Null) {
                                return Ok(true);
                            }
                            acc = Some(match (acc, agg) {
                                (None, Agg::Sum) => x,
                                (None, _) => x,
                                (Some(V::Num(a)), Agg::Sum) => V::Num(
                                    a.checked_add(num(x).unwrap_or_default())
                                        .ok_or(EvalError("number too large"))?,
                                ),
                                (Some(a), Agg::Min) => {
                                    if cmp_v(x, a) == Some(Ordering::Less) {
                                        x
                                    } else {
                                        a
                                    }
                                }
                                (Some(a), _) => {
                                    if cmp_v(x, a) == Some(Ordering::Greater) {
                                        x
                                    } else {
                                        a
                                    }
                                }
                            });
                        }
                    }
                    Ok(true)
                })?;
                match agg {
                    Agg::Count => V::Num(count),
                    Agg::Sum => acc.unwrap_or(V::Num(Decimal::ZERO)),
                    _ => acc.unwrap_or(V::Null),
                }
            }
        })
    }

    fn history<'a>(&self, h: HistIr, cx: &Ctx<'a>) -> V<'a> {
        let today = cx.event.local.date;
        let ev_ty = cx.event.ty;
        let Some(st) = cx.st else {
            // Without state the customer's history is just this event.
            return match h {
                HistIr::Count { ty, .. } | HistIr::Streak { ty, .. } => V::Num(if ty == ev_ty {
                    Decimal::ONE
                } else {
                    Decimal::ZERO
                }),
                HistIr::Sum { idx, .. } => {
                    let (ty, slot) = self.ir.tracked[idx as usize];
                    match cx.event.fields.get(slot as usize) {
                        Some(Value::Num(d)) if ty == ev_ty => V::Num(*d),
                        _ => V::Num(Decimal::ZERO),
                    }
                }
                HistIr::Points { .. } => V::Num(Decimal::ZERO),
                HistIr::First(ty) => V::Bool(ty == ev_ty),
                HistIr::DaysSinceLast(_) => V::Null,
            };
        };
        let hist = |ty: u16| st.customer.history.get(ty as usize);
        match h {
            HistIr::Count { ty, window } => V::Num(
                hist(ty)
                    .map_or(0, |x| history::count(x, today, window))
                    .into(),
            ),
            HistIr::Sum { idx, window } => {
                let (ty, _) = self.ir.tracked[idx as usize];
                let pos = self.ir.tracked[..idx as usize]
                    .iter()
                    .filter(|(t, _)| *t == ty)
                    .count();
                V::Num(hist(ty).map_or(Decimal::ZERO, |x| history::sum(x, pos, today, window)))
            }
            HistIr::Points { kind, window } => V::Num(
                st.customer
                    .points_history
                    .get(kind as usize)
                    .map_or(Decimal::ZERO, |x| history::points(x, today, window)),
            ),
            HistIr::First(ty) => V::Bool(hist(ty).is_some_and(|x| x.total == 1)),
            HistIr::Streak { ty, weeks } => V::Num(
                hist(ty)
                    .map_or(0, |x| history::streak(x, today, weeks))
                    .into(),
            ),
            HistIr::DaysSinceLast(ty) => {
                let prev = hist(ty).and_then(|x| if ty == ev_ty { x.prev_at } else { x.last_at });
                match prev {
                    Some(t) => V::Num(
                        today
                            .signed_duration_since(t.with_timezone(&self.ir.tz).date_naive())
                            .num_days()
                            .into(),
                    ),
                    None => V::Null,
                }
            }
        }
    }

    /// `any`/`all`/`no` element of `l` (bound at `depth`) passing `test`.
    #[inline]
    pub(crate) fn quantify<'a>(
        &self,
        q: Quant,
        depth: u8,
        l: &'a [Value],
        cx: &mut Ctx<'a>,
        mut test: impl FnMut(&mut Ctx<'a>) -> R<bool>,
    ) -> R<bool> {
        let mut result = matches!(q, Quant::All | Quant::None);
        self.each(
            l,
            depth,
            cx,
            |_| Ok(true),
            |cx| {
                let t = test(cx)?;
                let decided = match q {
                    Quant::Any => t,
                    Quant::All | Quant::None => t != (q == Quant::All),
                };
                if decided {
                    result = q == Quant::Any;
                }
                Ok(!decided)
            },
        )?;
        Ok(result)
    }

    /// Bind each element of `l` at `depth` in turn (each costs fuel) and, if
    /// `filter` passes, run `body`, until `body` answers false.
    #[inline]
    pub(crate) fn each<'a>(
        &self,
        l: &'a [Value],
        depth: u8,
        cx: &mut Ctx<'a>,
        mut filter: impl FnMut(&mut Ctx<'a>) -> R<bool>,
        mut body: impl FnMut(&mut Ctx<'a>) -> R<bool>,
    ) -> R<()> {
        for e in l {
            self.burn(cx)?;
            cx.locals[depth as usize] = view(e);
            if filter(cx)? && !body(cx)? {
                break;
            }
        }
        Ok(())
    }

    pub(crate) fn burn(&self, cx: &mut Ctx<'_>) -> R<()> {
        if cx.fuel == 0 {
            return Err(EvalError(
                "evaluation limit reached (too many list elements examined)",
            ));
        }
        cx.fuel -= 1;
        Ok(())
    }

    pub fn truthy<'a>(&self, n: &'a Node, cx: &mut Ctx<'a>) -> R<bool>
    where
        'p: 'a,
    {
        Ok(matches!(self.eval(n, cx)?, V::Bool(true)))
    }

    fn call<'a>(&self, f: Func, args: &'a [Node], cx: &mut Ctx<'a>) -> R<V<'a>>
    where
        'p: 'a,
    {
        let mut vals = [Decimal::ZERO; 2];
        match f {
            Func::Min | Func::Max => {
                let mut best: Option<Decimal> = None;
                for a in args {
                    let Some(x) = num(self.eval(a, cx)?) else {
                        return Ok(V::Null);
                    };
                    best = Some(match best {
                        None => x,
                        Some(b) if f == Func::Min => b.min(x),
                        Some(b) => b.max(x),
                    });
                }
                return Ok(best.map_or(V::Null, V::Num));
            }
            _ => {
                for (i, a) in args.iter().enumerate().take(2) {
                    match num(self.eval(a, cx)?) {
                        Some(x) => vals[i] = x,
                        None => return Ok(V::Null),
                    }
                }
            }
        }
        let x = vals[0];
        Ok(V::Num(match f {
            Func::Round => {
                let dp = if args.len() > 1 {
                    vals[1]
                } else {
                    Decimal::ZERO
                };
                let dp: u32 = dp
                    .try_into()
                    .ok()
                    .filter(|d| *d <= 28)
                    .ok_or(EvalError("round: bad number of decimals"))?;
                x.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
            }
            Func::Floor => x.floor(),
            Func::Ceil => x.ceil(),
            _ => x.abs(),
        }))
    }
}

fn anniversary(d: NaiveDate, year: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, d.month(), d.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, d.month(), 28))
        .unwrap_or(d)
}

/// Round points by the program's policy (on the magnitude, so deductions
/// round the same way as awards) to exactly `decimals` places.
pub(crate) fn round_points(ir: &ProgramIr, d: Decimal) -> Decimal {
    round_to(d, ir.decimals, ir.rounding)
}

/// `d` rounded by `mode` to exactly `places` decimals (see
/// [`round_points`]).
fn round_to(d: Decimal, places: u32, mode: RoundingMode) -> Decimal {
    let (m, scale) = (d.mantissa(), d.scale());
    if scale <= places {
        // nothing to round: only the scale changes
        return at_places(d, places);
    }
    if scale - places <= 18 {
        // on the integer mantissa (a decimal's is below 2^96, so none of
        // this overflows); `round_dp_with_strategy` below gives the same
        // (tested in `round_points_fast_path_agrees`)
        let p = 10u64.pow(scale - places);
        let a = m.unsigned_abs();
        // u64 division where the mantissa fits (u128 division is a call)
        let (q, rem) = match u64::try_from(a) {
            Ok(a) => (u128::from(a / p), u128::from(a % p)),
            Err(_) => (a / u128::from(p), a % u128::from(p)),
        };
        // (p is a power of ten of at least 10: its half is exact)
        let half = u128::from(p / 2);
        let up = match mode {
            RoundingMode::Down => false,
            RoundingMode::Up => rem != 0,
            RoundingMode::HalfUp => rem >= half,
            RoundingMode::HalfEven => rem > half || (rem == half && q % 2 == 1),
        };
        let mag = (q + u128::from(up)) as i128;
        if let Ok(r) = Decimal::try_from_i128_with_scale(if m < 0 { -mag } else { mag }, places) {
            return if r.is_zero() {
                Decimal::new(0, places)
            } else {
                r
            };
        }
    }
    round_slow(d, places, mode)
}

fn round_slow(d: Decimal, places: u32, mode: RoundingMode) -> Decimal {
    let s = match mode {
        RoundingMode::Down => RoundingStrategy::ToZero,
        RoundingMode::Up => RoundingStrategy::AwayFromZero,
        RoundingMode::HalfEven => RoundingStrategy::MidpointNearestEven,
        RoundingMode::HalfUp => RoundingStrategy::MidpointAwayFromZero,
    };
    at_places(d.round_dp_with_strategy(places, s), places)
}

/// `r` at exactly `places` decimals, and a zero without a sign.
fn at_places(mut r: Decimal, places: u32) -> Decimal {
    r.rescale(places);
    if r.is_zero() {
        r.set_sign_positive(true);
    }
    r
}

/// Format a value for explanations.
pub(crate) fn show(ir: &ProgramIr, v: V<'_>, ty: Ty) -> String {
    match v {
        V::Null => "not set".into(),
        V::Bool(b) => {
            if b {
                "true".into()
            } else {
                "false".into()
            }
        }
        V::Num(d) if ty == Ty::Money => ir.currency.format(d),
        V::Num(d) => d.to_string(),
        V::Text(s) => format!("\"{s}\""),
        V::Date(d) => d.to_string(),
        V::Time(t) => {
            if t.second() == 0 {
                t.format("%H:%M").to_string()
            } else {
                t.format("%H:%M:%S").to_string()
            }
        }
        V::DateTime(t) => t.with_timezone(&ir.tz).to_rfc3339(),
        V::Weekday(d) => WEEKDAYS[d as usize % 7].into(),
        V::Tier(t) => ir
            .tiers
            .get(t as usize)
            .map_or("?".into(), |s| s.to_string()),
        V::List(l) => format!("a list of {}", l.len()),
        V::Record(_) => "an item".into(),
    }
}

/// A best-group member that fired: (rule, own points, effects,
/// multipliers, program-cap tallies after it).
type Candidate<'p> = (u32, Decimal, Vec<Effect>, Vec<Deferred<'p>>, Vec<Decimal>);

struct Deferred<'p> {
    rule: &'p RuleIr,
    kind: u16,
    scope: Option<u32>,
    factor: Decimal,
}

/// The rules whose dates and condition hold (see `Program::matching_rules`).
#[inline]
pub(crate) fn matching<'c, 'e>(
    c: &'c Compiled,
    event: &'e Event,
    customer: &'e Customer,
) -> Matches<'c, 'e> {
    if fits(&c.ir, event) && customer_fits(&c.ir, customer) {
        return Matches::Lazy(Matching::new(c, event, customer));
    }
    Matches::Listed(matching_refitted(c, event, customer).into_iter())
}

/// [`matching`] for an event or customer another program decoded: the
/// event under this program's index for its type (all at once: the copy is
/// gone when this returns), or nothing matches.
#[cold]
#[inline(never)]
fn matching_refitted<'c>(c: &'c Compiled, event: &Event, customer: &Customer) -> Vec<&'c str> {
    let mut copy = None;
    match fit_event(&c.ir, event, &mut copy) {
        Ok(e) if customer_fits(&c.ir, customer) => Matching::new(c, e, customer).collect(),
        _ => Vec::new(),
    }
}

/// What [`matching`] gives: rules tested as the caller asks, or (for an
/// event another program decoded) the names found at once.
pub(crate) enum Matches<'c, 'e> {
    Lazy(Matching<'c, 'e>),
    Listed(std::vec::IntoIter<&'c str>),
}

impl<'c> Iterator for Matches<'c, '_> {
    type Item = &'c str;

    #[inline]
    fn next(&mut self) -> Option<&'c str> {
        match self {
            Matches::Lazy(m) => m.next(),
            Matches::Listed(v) => v.next(),
        }
    }
}

/// The iterator of [`matching`]. It is small (no evaluation context): a
/// context is made only for a rule whose guard cannot answer alone, so
/// that asking whether a simple condition holds costs little more than the
/// test itself.
pub(crate) struct Matching<'c, 'e> {
    c: &'c Compiled,
    event: &'e Event,
    customer: &'e Customer,
    order: &'c [u32],
    /// The positions in `order` not yet visited that the index did not
    /// rule out.
    left: Positions,
    /// Evaluation work left, shared by all the rules (as in one evaluation).
    fuel: u32,
}

impl<'c> Iterator for Matching<'c, '_> {
    type Item = &'c str;

    #[inline]
    fn next(&mut self) -> Option<&'c str> {
        let ir = &self.c.ir;
        let day = self.event.local.day;
        'rules: while let Some(p) = self.left.next() {
            let Some(&ri) = self.order.get(p) else {
                continue;
            };
            let q = &self.c.quick[ri as usize];
            if day < q.from || day > q.to {
                continue;
            }
            let mut needs_cx = !q.decides;
            for g in &q.guard {
                match g.holds_on(self.event, self.customer) {
                    Some(true) => {}
                    Some(false) => continue 'rules,
                    None => {
                        needs_cx = true;
                        break;
                    }
                }
            }
            let rule = &ir.rules[ri as usize];
            #[cfg(debug_assertions)]
            if !needs_cx {
                let mut cx = Ctx::new(self.event, self.customer, None, 0);
                check_quick(&Evaluator { ir }, rule, &mut cx, true);
            }
            if !needs_cx || self.holds_in_full(q, rule) {
                return Some(&*rule.name);
            }
        }
        None
    }
}

impl<'c, 'e> Matching<'c, 'e> {
    #[inline]
    fn new(c: &'c Compiled, event: &'e Event, customer: &'e Customer) -> Matching<'c, 'e> {
        let order: &[u32] = c.by_event.get(event.ty as usize).map_or(&[], |v| &v[..]);
        let dead = ruled_out(c, event, customer);
        #[cfg(debug_assertions)]
        check_ruled_out(c, order, &dead, &Ctx::new(event, customer, None, 0));
        Matching {
            c,
            event,
            customer,
            order,
            left: positions(dead, order.len()),
            fuel: FUEL,
        }
    }

    /// Whether `rule`'s guard and condition hold, tested with an evaluation
    /// context (the guard again: the tests it could answer alone hold).
    #[inline(never)]
    fn holds_in_full(&mut self, q: &'c Quick, rule: &'c RuleIr) -> bool {
        let ev = Evaluator { ir: &self.c.ir };
        let mut cx = Ctx::new(self.event, self.customer, None, 0);
        cx.fuel = self.fuel;
        let holds = q.guard.iter().all(|g| g.holds(&cx))
            && (q.decides
                || match &rule.pred {
                    None => true,
                    Some(p) => matches!(p.test_after(q.tested, &ev, &mut cx), Ok(true)),
                });
        self.fuel = cx.fuel;
        holds
    }
}

/// Evaluate every rule for `event`'s type against `customer`.
/// An event or customer another program decoded is taken as
/// [`fit_event`] says, or the outcome is `rejected` with the reason.
pub(crate) fn run(c: &Compiled, event: &Event, customer: &Customer, explain: bool) -> Outcome {
    if let Err(reason) = fit_customer(&c.ir, customer) {
        return Outcome::rejected(event, reason);
    }
    let mut copy = None;
    let event = match fit_event(&c.ir, event, &mut copy) {
        Ok(e) => e,
        Err(reason) => return Outcome::rejected(event, reason),
    };
    run_with(c, event, customer, explain, None, &mut Buffers::default())
}

/// Vectors a stateful caller (the engine) keeps between evaluations, so
/// that evaluating an event does not allocate them afresh.
#[derive(Default)]
pub(crate) struct Buffers {
    /// Out: the indexes of the rules that fired, in order.
    pub fired: Vec<u32>,
    /// In: an empty vector whose capacity the outcome's effects take over.
    pub effects: Vec<Effect>,
    /// The program caps' usage during the evaluation.
    caps: Vec<Decimal>,
}

/// Evaluate with the customer's state (limits, caps, budgets, history).
/// Also leaves the indexes of the rules that fired, in order, in
/// `buf.fired`.
pub(crate) fn run_with<'a>(
    c: &'a Compiled,
    event: &'a Event,
    customer: &'a Customer,
    explain: bool,
    st: Option<StateCtx<'a>>,
    buf: &mut Buffers,
) -> Outcome {
    let ir = &c.ir;
    let ev = Evaluator { ir };
    let mut effects = std::mem::take(&mut buf.effects);
    effects.clear();
    let mut out = Outcome {
        event: event.id.clone(),
        event_type: event.type_name.clone(),
        customer: event.customer.clone(),
        points: Decimal::ZERO,
        effects,
        errors: Vec::new(),
        explanation: if explain { Some(Vec::new()) } else { None },
        status: None,
        reason: None,
        ledger: Vec::new(),
    };
    let fired_rules = &mut buf.fired;
    fired_rules.clear();
    let mut cx = Ctx::new(event, customer, st, 0);
    if st.is_some() && !ir.caps.is_empty() {
        // as `Ctx::new` would make it, in the caller's vector
        let mut caps = std::mem::take(&mut buf.caps);
        caps.clear();
        caps.resize(ir.caps.len(), Decimal::ZERO);
        cx.cap_used = caps;
    }
    let order: &[u32] = c.by_event.get(event.ty as usize).map_or(&[], |v| &v[..]);
    let mut stopped_by: Option<&Arc<str>> = None;
    // group index -> the rule that took it (on the stack for up to 8 groups)
    let mut taken = Taken::new(ir.groups.len());
    let mut deferred: Vec<Deferred<'_>> = Vec::new();

    let day = event.local.day;
    let dead = if explain {
        index::NONE
    } else {
        ruled_out(c, event, customer)
    };
    #[cfg(debug_assertions)]
    check_ruled_out(c, order, &dead, &cx);
    // (the rules the index ruled out are not visited: no rule is ruled out
    // when explaining; best groups' members are not indexed)
    for p in positions(dead, order.len()) {
        let Some(&ri) = order.get(p) else { break };
        let rule = &ir.rules[ri as usize];
        // Fast rejection of a rule that cannot fire: the full path below
        // would only add explanation notes. (An exclusive group's member
        // that does not fire changes nothing; a best group is decided as a
        // whole at its first member, below.)
        // A condition the quick look found true is not tested again.
        let mut known = false;
        if !explain && stopped_by.is_none() && !matches!(rule.group, Some((_, true))) {
            match look(&ev, rule, &c.quick[ri as usize], &mut cx, day) {
                Look::CannotFire => continue,
                Look::Holds => known = true,
                Look::Maybe => {}
            }
        }
        if let Some(by) = stopped_by {
            if explain {
                let detail = format!("rule \"{by}\" stopped processing");
                note(&mut out, ir, c, rule, false, "stopped", detail, None);
            }
            continue;
        }
        if let Some((g, best)) = rule.group {
            if let Some((winner, _)) = taken.get(g) {
                if best {
                    // already explained when the group was resolved
                    continue;
                }
                if explain {
                    let detail = format!(
                        "exclusive group \"{}\" already applied rule \"{}\"",
                        ir.groups[g as usize], ir.rules[winner as usize].name
                    );
                    note(&mut out, ir, c, rule, false, "group", detail, None);
                }
                continue;
            }
            let fuel = cx.fuel;
            // the group's rules for this event, in evaluation order
            let members = c.group_members[g as usize]
                .iter()
                .copied()
                .filter(|&mi| ir.rules[mi as usize].event == rule.event);
            if best
                && !explain
                && stopped_by.is_none()
                && members.clone().all(|mi| {
                    let (m, q) = (&ir.rules[mi as usize], &c.quick[mi as usize]);
                    matches!(look(&ev, m, q, &mut cx, day), Look::CannotFire)
                })
            {
                // no member can fire: the group is decided, with no winner
                taken.set(g, Some((ri, None)));
                continue;
            }
            // the members are tested again below, from the same fuel
            cx.fuel = fuel;
            if best {
                // Evaluate every member now; apply the one that awards most
                // (the earliest in evaluation order on a tie).
                let mut fired: Vec<Candidate<'_>> = Vec::new();
                let saved_caps = cx.cap_used.clone();
                for mi in members {
                    let m = &ir.rules[mi as usize];
                    let mut effs = Vec::new();
                    let mut defs = Vec::new();
                    cx.cap_used.clone_from(&saved_caps);
                    if let Fire::Yes = try_rule(
                        &ev,
                        (mi as usize, m),
                        &mut cx,
                        &mut effs,
                        &mut defs,
                        &mut out,
                        explain,
                        false,
                        c,
                    ) {
                        let pts = own_points(&effs, event);
                        fired.push((mi, pts, effs, defs, cx.cap_used.clone()));
                    }
                }
                let mut win: Option<usize> = None;
                for (i, f) in fired.iter().enumerate() {
                    if win.is_none_or(|w| f.1 > fired[w].1) {
                        win = Some(i);
                    }
                }
                if let Some(w) = win {
                    let wi = fired[w].0;
                    let wpts = fired[w].1;
                    taken.set(g, Some((wi, Some(wpts))));
                    let wrule = &ir.rules[wi as usize];
                    for (i, (mi, _, effs, defs, caps)) in fired.into_iter().enumerate() {
                        let m = &ir.rules[mi as usize];
                        if i == w {
                            out.effects.extend(effs);
                            deferred.extend(defs);
                            cx.cap_used = caps;
                            fired_rules.push(mi);
                            note(&mut out, ir, c, m, true, "", String::new(), None);
                        } else {
                            let detail = format!(
                                "best group \"{}\" chose rule \"{}\" ({} points)",
                                ir.groups[g as usize], wrule.name, wpts
                            );
                            note(&mut out, ir, c, m, false, "group", detail, None);
                        }
                    }
                    if wrule.stop {
                        stopped_by = Some(&wrule.name);
                    }
                } else {
                    cx.cap_used = saved_caps;
                    taken.set(g, Some((ri, None)));
                }
                continue;
            }
        }
        let mut effs = std::mem::take(&mut out.effects);
        let fired = try_rule(
            &ev,
            (ri as usize, rule),
            &mut cx,
            &mut effs,
            &mut deferred,
            &mut out,
            explain,
            known,
            c,
        );
        out.effects = effs;
        if let Fire::Yes = fired {
            fired_rules.push(ri);
            note(&mut out, ir, c, rule, true, "", String::new(), None);
            if let Some((g, _)) = rule.group {
                taken.set(g, Some((ri, None)));
            }
            if rule.stop {
                stopped_by = Some(&rule.name);
            }
        }
    }

    // Multipliers: after every award, in evaluation order. A multiplier over
    // all points also multiplies the extras of multipliers before it, so
    // factors combine by multiplication.
    for d in &deferred {
        let mut base = Decimal::ZERO;
        for e in &out.effects {
            match e {
                Effect::Award {
                    rule,
                    customer,
                    kind,
                    points,
                    ..
                } if *customer == event.customer
                    && **kind == *ir.kinds[d.kind as usize]
                    && points.is_sign_positive() =>
                {
                    let in_scope = match d.scope {
                        None => true,
                        Some(s) => **rule == *ir.rules[s as usize].name,
                    };
                    if in_scope {
                        base += *points;
                    }
                }
                Effect::Multiply {
                    customer,
                    kind,
                    points,
                    ..
                } if d.scope.is_none()
                    && *customer == event.customer
                    && **kind == *ir.kinds[d.kind as usize] =>
                {
                    base += *points
                }
                _ => {}
            }
        }
        let extra = base
            .checked_mul(d.factor - Decimal::ONE)
            .map(|x| round_points(ir, x))
            .map(|x| {
                if x.is_sign_positive() {
                    cap_program(ir, &mut cx, d.kind, x).0
                } else {
                    x
                }
            });
        match extra {
            Some(x) => out.effects.push(Effect::Multiply {
                rule: d.rule.name.clone(),
                customer: event.customer.clone(),
                kind: ir.kinds[d.kind as usize].clone(),
                factor: d.factor,
                points: x,
            }),
            None => out.errors.push(RuleError {
                rule: d.rule.name.clone(),
                message: "number too large".into(),
            }),
        }
    }
    out.points = if out.effects.is_empty() {
        Decimal::new(0, ir.decimals)
    } else {
        let mut total = own_points(&out.effects, event);
        total.rescale(ir.decimals);
        total
    };
    if let Some(ex) = out.explanation.as_mut() {
        // Best groups are decided at their first member, so notes can arrive
        // out of order or twice (a loser later passed by a stop): keep the
        // first note of each rule, in evaluation order.
        let pos = |name: &str| {
            order
                .iter()
                .position(|&i| *ir.rules[i as usize].name == *name)
        };
        let mut seen = std::collections::HashSet::new();
        ex.retain(|e| seen.insert(e.rule.clone()));
        ex.sort_by_key(|e| pos(&e.rule));
    }
    buf.caps = cx.cap_used;
    out
}

/// What a quick look at a rule shows (see [`look`]).
enum Look {
    /// Outside its dates, or its condition is false.
    CannotFire,
    /// Its condition holds (its dates and limits are still checked).
    Holds,
    /// Left to the full path: the rule has limits to check first (with
    /// state), or its condition failed with an error.
    Maybe,
}

/// A quick look at whether the rule can fire now: its dates, its guard,
/// then (without limits to check first) its condition. A condition found
/// true keeps the fuel it used, and the full path does not test it again;
/// otherwise the full path tests it from the same fuel. Only for
/// evaluations without explanations: it records nothing.
#[cfg_attr(not(target_arch = "wasm32"), inline(always))]
fn look<'a>(ev: &Evaluator<'a>, rule: &'a RuleIr, q: &Quick, cx: &mut Ctx<'a>, today: i32) -> Look {
    if today < q.from || today > q.to {
        return Look::CannotFire;
    }
    for g in &q.guard {
        if !g.holds(cx) {
            #[cfg(debug_assertions)]
            check_quick(ev, rule, cx, false);
            return Look::CannotFire;
        }
    }
    if q.decides {
        #[cfg(debug_assertions)]
        check_quick(ev, rule, cx, true);
        return Look::Holds;
    }
    if q.stateful && cx.st.is_some() {
        return Look::Maybe;
    }
    let Some(pred) = &rule.pred else {
        return Look::Holds;
    };
    let fuel = cx.fuel;
    match pred.test_after(q.tested, ev, cx) {
        Ok(false) => Look::CannotFire,
        Ok(true) => Look::Holds,
        Err(_) => {
            cx.fuel = fuel;
            Look::Maybe
        }
    }
}

/// The positions of the rules to visit: those the index did not rule out.
#[cfg(not(target_arch = "wasm32"))]
#[inline]
fn positions(dead: index::Mask, len: usize) -> Positions {
    index::alive(dead, len)
}

/// The rule positions a rule loop visits.
#[cfg(not(target_arch = "wasm32"))]
type Positions = index::Alive;
#[cfg(target_arch = "wasm32")]
type Positions = std::ops::Range<usize>;

/// The WebAssembly build has no index (see `EventIndex::new`): every rule.
#[cfg(target_arch = "wasm32")]
#[inline]
fn positions(_dead: index::Mask, len: usize) -> Positions {
    0..len
}

/// The rules of `event`'s type that the rule index rules out for it and
/// `customer` (by position in `by_event`).
#[inline]
fn ruled_out(c: &Compiled, event: &Event, customer: &Customer) -> index::Mask {
    if cfg!(target_arch = "wasm32") {
        // (no index: see `EventIndex::new`)
        return index::NONE;
    }
    match c.index.get(event.ty as usize) {
        Some(Some(x)) => x.dead(event, customer),
        _ => index::NONE,
    }
}

/// Debug builds (all tests, the fuzzers): every rule of `order` the index
/// ruled out (in `dead`) has a guard test that fails.
#[cfg(debug_assertions)]
fn check_ruled_out(c: &Compiled, order: &[u32], dead: &index::Mask, cx: &Ctx<'_>) {
    for (p, &ri) in order.iter().enumerate() {
        if index::has(dead, p) {
            let (q, rule) = (&c.quick[ri as usize], &c.ir.rules[ri as usize]);
            assert!(
                q.guard.iter().any(|g| !g.holds(cx)),
                "the rule index ruled out rule {}, whose guard holds",
                rule.name
            );
        }
    }
}

/// Debug builds (all tests, the fuzzers): a quick look (a rule's guard, or
/// the test it skips) answered `holds` for the rule's whole condition; the
/// predicate must answer the same.
#[cfg(debug_assertions)]
fn check_quick<'a>(ev: &Evaluator<'a>, rule: &'a RuleIr, cx: &mut Ctx<'a>, holds: bool) {
    if let Some(p) = &rule.pred {
        let fuel = cx.fuel;
        let full = p.test(ev, cx).ok();
        cx.fuel = fuel;
        assert_eq!(
            full,
            Some(holds),
            "the quick look at rule {} differs",
            rule.name
        );
    }
}

type Taker = Option<(u32, Option<Decimal>)>;

/// Which rule took each group, without allocating for small programs.
enum Taken {
    Small([Taker; 8]),
    Large(Vec<Taker>),
}

impl Taken {
    fn new(groups: usize) -> Taken {
        if groups <= 8 {
            Taken::Small([None; 8])
        } else {
            Taken::Large(vec![None; groups])
        }
    }
    fn get(&self, g: u16) -> Taker {
        match self {
            Taken::Small(a) => a.get(g as usize).copied().flatten(),
            Taken::Large(v) => v.get(g as usize).copied().flatten(),
        }
    }
    fn set(&mut self, g: u16, v: Taker) {
        let slot = match self {
            Taken::Small(a) => a.get_mut(g as usize),
            Taken::Large(v) => v.get_mut(g as usize),
        };
        if let Some(slot) = slot {
            *slot = v;
        }
    }
}

/// Cut `pts` to what the program-wide caps for `kind` still allow.
/// Returns the points allowed and, if cut, the cap's text.
fn cap_program(
    ir: &ProgramIr,
    cx: &mut Ctx<'_>,
    kind: u16,
    pts: Decimal,
) -> (Decimal, Option<Arc<str>>) {
    let Some(st) = cx.st else { return (pts, None) };
    let today = cx.event.local.date;
    let mut allowed = pts;
    let mut by = None;
    for (i, cap) in ir.caps.iter().enumerate() {
        if cap.kind != kind {
            continue;
        }
        let start = history::period_start(today, cap.period);
        let used_before = st
            .customer
            .caps
            .get(i)
            .filter(|c| c.period == Some(start))
            .map_or(Decimal::ZERO, |c| c.points);
        let remaining = (cap.points - used_before - cx.cap_used[i]).max(Decimal::ZERO);
        if allowed > remaining {
            allowed = remaining;
            by = Some(cap.text.clone());
        }
    }
    for (i, cap) in ir.caps.iter().enumerate() {
        if cap.kind == kind {
            cx.cap_used[i] += allowed;
        }
    }
    (allowed, by)
}

fn own_points(effs: &[Effect], event: &Event) -> Decimal {
    let mut total = Decimal::ZERO;
    for e in effs {
        match e {
            Effect::Award {
                customer,
                kind,
                points,
                ..
            }
            | Effect::Multiply {
                customer,
                kind,
                points,
                ..
            } if *customer == event.customer && &**kind == "points" => {
                total = total.saturating_add(*points)
            }
            _ => {}
        }
    }
    total
}

enum Fire {
    Yes,
    No,
}

/// Check the rule's window, limits and condition (`known`: the condition
/// is already known to hold); on failure record why.
fn check_rule<'a>(
    ev: &Evaluator<'a>,
    rule: &'a RuleIr,
    cx: &mut Ctx<'a>,
    out: &mut Outcome,
    explain: bool,
    known: bool,
    c: &Compiled,
) -> Fire {
    let today = cx.event.local.date;
    if !rule.active_on(today) {
        if explain {
            let (from, to) = rule.active;
            let window = match (from, to) {
                (Some(f), Some(t)) => format!("from {f} to {t}"),
                (Some(f), None) => format!("from {f}"),
                (None, Some(t)) => format!("until {t}"),
                _ => String::new(),
            };
            note(
                out,
                ev.ir,
                c,
                rule,
                false,
                "inactive",
                format!("the rule is active {window}; the event is on {today}"),
                None,
            );
        }
        return Fire::No;
    }
    if let Some(why) = limit_reached(ev.ir, rule, cx) {
        if explain {
            note(out, ev.ir, c, rule, false, "limit", why, None);
        }
        return Fire::No;
    }
    if known {
        #[cfg(debug_assertions)]
        check_quick(ev, rule, cx, true);
        return Fire::Yes;
    }
    if let (Some(cond), Some(pred)) = (&rule.cond, &rule.pred) {
        // Debug builds (all tests, the fuzzers) check that the fast
        // predicate answers exactly what the evaluator answers.
        #[cfg(debug_assertions)]
        {
            let fuel = cx.fuel;
            let slow = ev.truthy(cond, cx).map_err(|e| e.0);
            cx.fuel = fuel;
            let fast = pred.test(ev, cx).map_err(|e| e.0);
            cx.fuel = fuel;
            assert_eq!(fast, slow, "fast predicate differs for rule {}", rule.name);
        }
        match pred.test(ev, cx) {
            Ok(true) => {}
            Ok(false) => {
                if explain {
                    let (node, values) = why_false(ev, c, cond, cx);
                    let text = c.text(node.span).to_string();
                    let detail = if values.is_empty() {
                        format!("`{text}` is false")
                    } else {
                        format!(
                            "`{text}` is false: {}",
                            values
                                .iter()
                                .map(|v| format!("{} is {}", v.expr, v.value))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    note(
                        out,
                        ev.ir,
                        c,
                        rule,
                        false,
                        "condition_failed",
                        detail,
                        Some((node.span, text, values)),
                    );
                }
                return Fire::No;
            }
            Err(e) => {
                out.errors.push(RuleError {
                    rule: rule.name.clone(),
                    message: e.0.into(),
                });
                if explain {
                    note(out, ev.ir, c, rule, false, "error", e.0.into(), None);
                }
                return Fire::No;
            }
        }
    }
    Fire::Yes
}

/// A frequency limit or awards budget that stops the rule from firing now.
fn limit_reached(ir: &ProgramIr, rule: &RuleIr, cx: &Ctx<'_>) -> Option<String> {
    let st = cx.st?;
    if rule.limits.is_empty() && rule.budget.is_none() {
        return None;
    }
    let ri = ir.rules.iter().position(|r| std::ptr::eq(r, rule))?;
    let counters = st.customer.counters.get(ri);
    let today = cx.event.local.date;
    let used = st.budgets.get(ri);
    if let Some((amount, true)) = rule.budget {
        let awards = used.map_or(0, |u| u.awards);
        if Decimal::from(awards) >= amount {
            return Some(format!("the campaign budget of {amount} awards is used up"));
        }
    }
    for (li, l) in rule.limits.iter().enumerate() {
        let LimitIr::Times {
            n,
            total,
            period,
            every,
            text,
        } = l
        else {
            continue;
        };
        if *total {
            if used.map_or(0, |u| u.awards) >= u64::from(*n) {
                return Some(format!("`{text}`: reached ({n} awards in total)"));
            }
            continue;
        }
        if let Some(secs) = every {
            if let Some(last) = counters.and_then(|c| c.last_fired) {
                let next = last + chrono::Duration::seconds(*secs);
                if cx.event.time < next {
                    return Some(format!("`{text}`: last fired at {}", last.to_rfc3339()));
                }
            }
            continue;
        }
        let count = match counters.and_then(|c| c.limits.get(li)) {
            Some(pc) => match period {
                Some(p) if pc.period != Some(history::period_start(today, *p)) => 0,
                _ => pc.count,
            },
            None => 0,
        };
        if count >= u64::from(*n) {
            return Some(format!("`{text}`: already fired {count} times"));
        }
    }
    None
}

/// Cut an award to what the rule's point caps, its budget and the program's
/// caps still allow.
fn cap_award(
    ev: &Evaluator<'_>,
    (ri, rule): (usize, &RuleIr),
    cx: &mut Ctx<'_>,
    kind: u16,
    pts: Decimal,
) -> (Decimal, Option<Capped>) {
    let Some(st) = cx.st else { return (pts, None) };
    let ir = ev.ir;
    if rule.limits.is_empty() && rule.budget.is_none() && ir.caps.is_empty() {
        // nothing can cap it (and `rule_used` is only read for limits and
        // budgets)
        return (pts, None);
    }
    let today = cx.event.local.date;
    let mut allowed = pts;
    let mut by: Option<Arc<str>> = None;
    for (li, l) in rule.limits.iter().enumerate() {
        let LimitIr::Points {
            points,
            kind: k,
            period,
            text,
        } = l
        else {
            continue;
        };
        if *k != kind || li >= 8 {
            continue;
        }
        let before = st
            .customer
            .counters
            .get(ri)
            .and_then(|c| c.limits.get(li))
            .filter(|pc| match period {
                Some(p) => pc.period == Some(history::period_start(today, *p)),
                None => true,
            })
            .map_or(Decimal::ZERO, |pc| pc.points);
        let remaining = (*points - before - cx.rule_used[li]).max(Decimal::ZERO);
        if allowed > remaining {
            allowed = remaining;
            by = Some(text.clone());
        }
    }
    if let (Some((amount, false)), 0) = (rule.budget, kind) {
        let before = st.budgets.get(ri).map_or(Decimal::ZERO, |u| u.points);
        let remaining = (amount - before - cx.rule_used[8]).max(Decimal::ZERO);
        if allowed > remaining {
            allowed = remaining;
            by = Some(Arc::from(format!("budget {amount} points").as_str()));
        }
    }
    let (allowed, prog) = cap_program(ir, cx, kind, allowed);
    if prog.is_some() {
        by = prog;
    }
    for (li, l) in rule.limits.iter().enumerate().take(8) {
        if matches!(l, LimitIr::Points { kind: k, .. } if *k == kind) {
            cx.rule_used[li] += allowed;
        }
    }
    if kind == 0 {
        cx.rule_used[8] += allowed;
    }
    let capped = by.map(|limit| Capped {
        limit,
        requested: pts,
        remaining: allowed,
    });
    (allowed, capped)
}

/// Check the rule and compute its effects into `effs`. A rule whose effects
/// fail to compute does not fire at all (no partial effects).
#[allow(clippy::too_many_arguments)]
fn try_rule<'a>(
    ev: &Evaluator<'a>,
    (ri, rule): (usize, &'a RuleIr),
    cx: &mut Ctx<'a>,
    effs: &mut Vec<Effect>,
    deferred: &mut Vec<Deferred<'a>>,
    out: &mut Outcome,
    explain: bool,
    known: bool,
    c: &Compiled,
) -> Fire {
    if let Fire::No = check_rule(ev, rule, cx, out, explain, known, c) {
        return Fire::No;
    }
    let start = effs.len();
    let deferred_start = deferred.len();
    cx.rule_used = [Decimal::ZERO; 9];
    let mut skipped: Vec<String> = Vec::new();
    for e in &rule.effects {
        match effect(ev, (ri, rule), e, cx, effs, deferred, &mut skipped) {
            Ok(()) => {}
            Err(err) => {
                effs.truncate(start);
                deferred.truncate(deferred_start);
                out.errors.push(RuleError {
                    rule: rule.name.clone(),
                    message: err.0.into(),
                });
                if explain {
                    note(out, ev.ir, c, rule, false, "error", err.0.into(), None);
                }
                return Fire::No;
            }
        }
    }
    for s in skipped {
        out.errors.push(RuleError {
            rule: rule.name.clone(),
            message: s,
        });
    }
    Fire::Yes
}

fn target<'a>(
    ev: &Evaluator<'a>,
    to: &'a Option<Node>,
    cx: &mut Ctx<'a>,
    skipped: &mut Vec<String>,
) -> R<Option<Arc<str>>> {
    match to {
        None => Ok(Some(cx.event.customer.clone())),
        Some(n) => match ev.eval(n, cx)? {
            V::Text(s) if !s.is_empty() => Ok(Some(if *s == *cx.event.customer {
                cx.event.customer.clone()
            } else {
                Arc::from(s)
            })),
            _ => {
                skipped.push("effect skipped: the customer it is for is not set".into());
                Ok(None)
            }
        },
    }
}

/// One effect of `rule` (given with its index in the program's rules).
fn effect<'a>(
    ev: &Evaluator<'a>,
    (ri, rule): (usize, &'a RuleIr),
    e: &'a EffectIr,
    cx: &mut Ctx<'a>,
    effs: &mut Vec<Effect>,
    deferred: &mut Vec<Deferred<'a>>,
    skipped: &mut Vec<String>,
) -> R<()> {
    let ir = ev.ir;
    let too_big = || EvalError("number too large");
    match e {
        EffectIr::Award {
            deduct,
            kind,
            amount,
            to,
        } => {
            let raw: Option<Decimal> = match amount {
                AmountIr::Fixed(n) => num(ev.eval(n, cx)?),
                AmountIr::Percent(f, base) => num(ev.eval(base, cx)?)
                    .map(|b| b.checked_mul(*f))
                    .map(|x| x.ok_or_else(too_big))
                    .transpose()?,
                AmountIr::Rate {
                    points,
                    every,
                    unit,
                    of,
                } => {
                    let (Some(p), Some(u), Some(m)) = (
                        num(ev.eval(points, cx)?),
                        num(ev.eval(unit, cx)?),
                        num(ev.eval(of, cx)?),
                    ) else {
                        return Ok(());
                    };
                    if u.is_zero() {
                        return Err(EvalError("division by zero: the unit of a rate is 0"));
                    }
                    // (`1 point per $1`: no division)
                    let units = if u == Decimal::ONE {
                        m
                    } else {
                        m.checked_div(u).ok_or_else(too_big)?
                    };
                    let units = if *every { units.trunc() } else { units };
                    Some(units.checked_mul(p).ok_or_else(too_big)?)
                }
                AmountIr::Each {
                    points,
                    depth,
                    list,
                    filter,
                } => {
                    let Some(p) = num(ev.eval(points, cx)?) else {
                        return Ok(());
                    };
                    let mut n = Decimal::ZERO;
                    if let V::List(l) = ev.eval(list, cx)? {
                        for item in l {
                            ev.burn(cx)?;
                            cx.locals[*depth as usize] = view(item);
                            if let Some(f) = filter {
                                if !ev.truthy(f, cx)? {
                                    continue;
                                }
                            }
                            n += Decimal::ONE;
                        }
                    }
                    Some(n.checked_mul(p).ok_or_else(too_big)?)
                }
            };
            let Some(raw) = raw else {
                skipped.push("award skipped: its amount is not set".into());
                return Ok(());
            };
            let mut pts = round_points(ir, raw);
            if *deduct && !pts.is_zero() {
                pts = -pts;
            }
            if let Some(who) = target(ev, to, cx, skipped)? {
                let mut capped = None;
                if pts.is_sign_positive() && !pts.is_zero() && Arc::ptr_eq(&who, &cx.event.customer)
                {
                    let (allowed, c) = cap_award(ev, (ri, rule), cx, *kind, pts);
                    pts = allowed;
                    capped = c;
                }
                effs.push(Effect::Award {
                    rule: rule.name.clone(),
                    customer: who,
                    kind: ir.kinds[*kind as usize].clone(),
                    points: pts,
                    capped,
                });
            }
        }
        EffectIr::Multiply {
            kind,
            rule: scope,
            factor,
        } => match ev.eval(factor, cx)? {
            V::Num(f) => deferred.push(Deferred {
                rule,
                kind: *kind,
                scope: *scope,
                factor: f,
            }),
            _ => skipped.push("multiplier skipped: its factor is not set".into()),
        },
        EffectIr::Grant { reward, to } => {
            if let Some(who) = target(ev, to, cx, skipped)? {
                effs.push(Effect::Reward {
                    rule: rule.name.clone(),
                    customer: who,
                    reward: reward.clone(),
                });
            }
        }
        EffectIr::SetTier(t) => {
            let from = match cx.customer.fields.get(CU_TIER) {
                Some(Value::Tier(f)) => ir.tiers.get(*f as usize).cloned(),
                _ => None,
            };
            effs.push(Effect::Tier {
                rule: rule.name.clone(),
                customer: cx.event.customer.clone(),
                from,
                to: ir.tiers[*t as usize].clone(),
            });
        }
        EffectIr::SetAttr { attr, value } => {
            let v = own_value(ev.eval(value, cx)?);
            effs.push(Effect::SetAttribute {
                rule: rule.name.clone(),
                customer: cx.event.customer.clone(),
                attribute: attr.clone(),
                value: to_json(ir, &v),
            });
        }
        EffectIr::Redeem { points, reward } => {
            if let Some(p) = num(ev.eval(points, cx)?) {
                let p = round_points(ir, p);
                if p > Decimal::ZERO {
                    effs.push(Effect::Redeem {
                        rule: rule.name.clone(),
                        customer: cx.event.customer.clone(),
                        points: p,
                        reward: reward.clone(),
                    });
                }
            }
        }
        EffectIr::Tag(t) => effs.push(Effect::Tag {
            rule: rule.name.clone(),
            customer: cx.event.customer.clone(),
            tag: t.clone(),
        }),
        EffectIr::Notify(m) => effs.push(Effect::Notify {
            rule: rule.name.clone(),
            customer: cx.event.customer.clone(),
            message: m.clone(),
        }),
        EffectIr::Extend { amount, months } => effs.push(Effect::ExtendExpiry {
            rule: rule.name.clone(),
            customer: cx.event.customer.clone(),
            days: if *months { None } else { Some(*amount) },
            months: if *months { Some(*amount) } else { None },
        }),
    }
    Ok(())
}

/// The first failed part of a false condition, and the values it saw.
fn why_false<'a>(
    ev: &Evaluator<'a>,
    c: &Compiled,
    n: &'a Node,
    cx: &mut Ctx<'a>,
) -> (&'a Node, Vec<SeenValue>) {
    let mut cur = n;
    while let NodeKind::And(ab) = &cur.kind {
        let [a, b] = &**ab;
        cur = if matches!(ev.truthy(a, cx), Ok(false)) {
            a
        } else {
            b
        };
    }
    let mut values = Vec::new();
    seen(ev, c, cur, cx, &mut values, 0);
    (cur, values)
}

fn seen<'a>(
    ev: &Evaluator<'a>,
    c: &Compiled,
    n: &'a Node,
    cx: &mut Ctx<'a>,
    out: &mut Vec<SeenValue>,
    depth: usize,
) {
    if depth > limits::MAX_EXPR_DEPTH || out.len() >= 8 {
        return;
    }
    let operands: Vec<&'a Node> = match &n.kind {
        NodeKind::Cmp(_, ab) => ab.iter().collect(),
        NodeKind::TextTest(_, _, a, b)
        | NodeKind::In(_, a, b)
        | NodeKind::ListContains(_, a, b) => {
            vec![a, b]
        }
        NodeKind::Between(_, a, b, c) => vec![a, b, c],
        NodeKind::IsSet(_, a) => vec![a],
        NodeKind::And(ab) | NodeKind::Or(ab) => {
            for o in ab.iter() {
                seen(ev, c, o, cx, out, depth + 1);
            }
            return;
        }
        NodeKind::Not(a) => {
            seen(ev, c, a, cx, out, depth + 1);
            return;
        }
        NodeKind::EventField(_) | NodeKind::CustomerField(_) | NodeKind::Calendar(_) => vec![n],
        _ => vec![],
    };
    for o in operands {
        if matches!(o.kind, NodeKind::Const(_)) {
            continue;
        }
        let text = c.text(o.span).to_string();
        if out.iter().any(|s| s.expr == text) {
            continue;
        }
        let value = match ev.eval(o, cx) {
            Ok(v) => show(ev.ir, v, o.ty),
            Err(e) => format!("error: {}", e.0),
        };
        out.push(SeenValue { expr: text, value });
    }
}

#[allow(clippy::too_many_arguments)]
fn note(
    out: &mut Outcome,
    _ir: &ProgramIr,
    c: &Compiled,
    rule: &RuleIr,
    fired: bool,
    reason: &str,
    detail: String,
    cond: Option<(Span, String, Vec<SeenValue>)>,
) {
    let Some(ex) = out.explanation.as_mut() else {
        return;
    };
    let (span, condition, values) = match cond {
        Some((s, t, v)) => (s, Some(t), v),
        None => (rule.span, None, Vec::new()),
    };
    let (line, column) = c.line_col(span.start as usize);
    ex.push(Explanation {
        rule: rule.name.clone(),
        fired,
        reason: if fired {
            None
        } else {
            Some(reason.to_string())
        },
        detail: if fired || detail.is_empty() {
            None
        } else {
            Some(detail)
        },
        condition,
        line,
        column,
        start: span.start as usize,
        end: span.end as usize,
        values,
    });
}

#[cfg(test)]
mod glob_tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("COF-123", "cof-*"));
        assert!(glob("COF-123", "*-1?3"));
        assert!(!glob("COF-123", "tea-*"));
        assert!(glob("", "*"));
        assert!(!glob("", "?"));
        assert!(glob("Café €5", "caf? €*"));
        assert!(glob("aaab", "*a*b"));
        assert!(!glob("aaa", "*b"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Rounding on the mantissa gives what rust_decimal's rounding gives,
        /// for every mode, sign, scale and number of places.
        #[test]
        fn round_points_fast_path_agrees(
            m in prop_oneof![any::<i64>().prop_map(i128::from), -(1i128 << 95)..(1i128 << 95), -2000i128..2000],
            places in 0u32..=6,
            extra in prop_oneof![0u32..=3, 0u32..=22],
            mode in 0usize..4,
        ) {
            // scales near `places` make exact halves common
            let scale = (places + extra).min(28);
            let mode = [RoundingMode::Down, RoundingMode::Up, RoundingMode::HalfEven, RoundingMode::HalfUp][mode];
            let d = Decimal::from_i128_with_scale(m, scale);
            let fast = round_to(d, places, mode);
            let slow = round_slow(d, places, mode);
            prop_assert_eq!(fast, slow);
            prop_assert_eq!(fast.scale(), slow.scale());
            prop_assert_eq!(fast.is_sign_negative(), slow.is_sign_negative());
        }
    }

    #[test]
    fn round_points_examples() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(
            round_to(d("21.73"), 0, RoundingMode::Down).to_string(),
            "21"
        );
        assert_eq!(
            round_to(d("-21.73"), 0, RoundingMode::Down).to_string(),
            "-21"
        );
        assert_eq!(
            round_to(d("2.5"), 0, RoundingMode::HalfEven).to_string(),
            "2"
        );
        assert_eq!(
            round_to(d("3.5"), 0, RoundingMode::HalfEven).to_string(),
            "4"
        );
        assert_eq!(round_to(d("2.5"), 0, RoundingMode::HalfUp).to_string(), "3");
        assert_eq!(round_to(d("2.01"), 0, RoundingMode::Up).to_string(), "3");
        assert_eq!(round_to(d("-0.4"), 0, RoundingMode::Down).to_string(), "0");
        assert_eq!(round_to(d("7"), 2, RoundingMode::Down).to_string(), "7.00");
    }
}
