//! Fast predicates: each rule's folded condition turned into a tree of typed
//! tests, so the common shapes (a field against a constant, a calendar value
//! in a set, a flag, `any item in ... where ...`) run without the general
//! evaluator's value passing and recursion. Every other sub-condition stays a
//! [`Pred::General`] node run by the evaluator, so a predicate always answers
//! exactly what `Evaluator::truthy` answers for the same node, errors
//! included.

use std::cmp::Ordering;

use chrono::{Datelike, Timelike};
use rust_decimal::Decimal;

use crate::ast::{Agg, CmpOp, Quant, TextOp};
use crate::eval::{cmp_v, text_test, view, Ctx, EvalError, Evaluator, V};
use crate::input::{Customer, Event};
use crate::ir::{Node, NodeKind};
use crate::schema::{Calendar, Ty, Value};

/// Where a leaf test reads its value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Src {
    Event(u16),
    Customer(u16),
    Local(u8, Option<u16>),
    Calendar(Calendar),
}

#[derive(Clone, Debug)]
pub(crate) enum Pred {
    Const(bool),
    All(Box<[Pred]>),
    Any(Box<[Pred]>),
    Not(Box<Pred>),
    /// A number against a number constant.
    Num {
        src: Src,
        op: CmpOp,
        k: Decimal,
    },
    /// Any other comparison against a constant.
    Cmp {
        src: Src,
        op: CmpOp,
        k: Value,
    },
    /// `count of x in list [where ...]` (no `value`) or `sum of <number> for
    /// each x in list [where ...]` against a number constant.
    Agg {
        list: Src,
        depth: u8,
        value: Option<Src>,
        filter: Option<Box<Pred>>,
        op: CmpOp,
        k: Decimal,
    },
    /// A computed value (an aggregate, arithmetic) against a constant.
    CmpExpr {
        x: Box<Node>,
        op: CmpOp,
        k: Value,
    },
    /// The event's weekday in a set (bit per day, Monday = bit 0).
    Weekday(u8),
    /// A tier in a set of tiers (bit per tier index), from `is`, `is not`,
    /// `in [...]`, `not in [...]`: an unset tier answers false either way,
    /// as the comparison does.
    Tiers {
        src: Src,
        mask: u64,
        neg: bool,
    },
    /// Text equal (`ne`: not equal) to a constant; unset answers false.
    TextEq {
        src: Src,
        k: Box<str>,
        ne: bool,
    },
    /// A number between two number constants (inclusive); unset answers
    /// false either way.
    NumBetween {
        src: Src,
        lo: Decimal,
        hi: Decimal,
        neg: bool,
    },
    In {
        src: Src,
        list: Box<[Value]>,
        neg: bool,
    },
    Between {
        src: Src,
        lo: Value,
        hi: Value,
        neg: bool,
    },
    Text {
        src: Src,
        op: TextOp,
        neg: bool,
        k: Box<str>,
    },
    IsSet {
        src: Src,
        neg: bool,
    },
    Quant {
        q: Quant,
        depth: u8,
        list: Src,
        body: Box<Pred>,
    },
    General(Box<Node>),
}

fn src_of(n: &Node) -> Option<Src> {
    Some(match n.kind {
        NodeKind::EventField(s) => Src::Event(s),
        NodeKind::CustomerField(s) => Src::Customer(s),
        NodeKind::Local(d, f) => Src::Local(d, f),
        NodeKind::Calendar(c) => Src::Calendar(c),
        _ => return None,
    })
}

/// The parts of `count of x in <src> [where f]` (value `None`) and of
/// `sum of <number leaf> for each x in <src> [where f]`.
#[allow(clippy::type_complexity)]
fn agg_of(n: &Node) -> Option<(Src, u8, Option<Src>, Option<&Node>)> {
    let NodeKind::Agg {
        agg,
        depth,
        list,
        value,
        filter,
    } = &n.kind
    else {
        return None;
    };
    let value = match (agg, value) {
        (Agg::Count, _) => None,
        (Agg::Sum, Some(v)) if matches!(v.ty, Ty::Number | Ty::Money) => Some(src_of(v)?),
        _ => return None,
    };
    Some((src_of(list)?, *depth, value, filter.as_deref()))
}

fn konst(n: &Node) -> Option<&Value> {
    match &n.kind {
        NodeKind::Const(v) => Some(v),
        _ => None,
    }
}

/// Each operand of a chain of `and` (or `or`), left to right.
fn each_operand<'n>(n: &'n Node, and: bool, f: &mut impl FnMut(&'n Node)) {
    match &n.kind {
        NodeKind::And(ab) if and => ab.iter().for_each(|o| each_operand(o, and, f)),
        NodeKind::Or(ab) if !and => ab.iter().for_each(|o| each_operand(o, and, f)),
        _ => f(n),
    }
}

impl Pred {
    /// The predicate for a (folded) condition.
    pub fn build(n: &Node) -> Pred {
        match &n.kind {
            NodeKind::Const(v) => Pred::Const(matches!(v, Value::Bool(true))),
            NodeKind::And(..) | NodeKind::Or(..) => {
                let and = matches!(n.kind, NodeKind::And(..));
                // counted first: built at their exact length, with no list
                // of the operands in between
                let mut len = 0;
                each_operand(n, and, &mut |_| len += 1);
                let mut preds = Vec::with_capacity(len);
                each_operand(n, and, &mut |o| preds.push(Pred::build(o)));
                let preds = preds.into_boxed_slice();
                if and {
                    Pred::All(preds)
                } else {
                    Pred::Any(preds)
                }
            }
            NodeKind::Not(a) => Pred::Not(Box::new(Pred::build(a))),
            NodeKind::Cmp(op, ab) => match (src_of(&ab[0]), konst(&ab[1])) {
                (Some(Src::Calendar(Calendar::Weekday)), Some(Value::Weekday(d)))
                    if matches!(op, CmpOp::Eq | CmpOp::Ne) && *d < 7 =>
                {
                    let bit = 1u8 << d;
                    Pred::Weekday(if *op == CmpOp::Eq { bit } else { !bit & 0x7f })
                }
                (Some(src), Some(Value::Num(k))) => Pred::Num {
                    src,
                    op: *op,
                    k: *k,
                },
                (Some(src), Some(Value::Tier(t)))
                    if matches!(op, CmpOp::Eq | CmpOp::Ne) && *t < 64 =>
                {
                    Pred::Tiers {
                        src,
                        mask: 1 << t,
                        neg: *op == CmpOp::Ne,
                    }
                }
                (Some(src), Some(Value::Text(k))) if matches!(op, CmpOp::Eq | CmpOp::Ne) => {
                    Pred::TextEq {
                        src,
                        k: k.to_string().into_boxed_str(),
                        ne: *op == CmpOp::Ne,
                    }
                }
                (Some(src), Some(k)) => Pred::Cmp {
                    src,
                    op: *op,
                    k: k.clone(),
                },
                (None, Some(Value::Num(k))) if agg_of(&ab[0]).is_some() => {
                    let (list, depth, value, filter) =
                        agg_of(&ab[0]).unwrap_or((Src::Event(0), 0, None, None));
                    Pred::Agg {
                        list,
                        depth,
                        value,
                        filter: filter.map(|f| Box::new(Pred::build(f))),
                        op: *op,
                        k: *k,
                    }
                }
                (None, Some(k)) => Pred::CmpExpr {
                    x: Box::new(ab[0].clone()),
                    op: *op,
                    k: k.clone(),
                },
                _ => Pred::General(Box::new(n.clone())),
            },
            NodeKind::In(neg, a, b) => match (src_of(a), konst(b)) {
                (Some(Src::Calendar(Calendar::Weekday)), Some(Value::List(l)))
                    if l.iter().all(|v| matches!(v, Value::Weekday(d) if *d < 7)) =>
                {
                    let mut mask = 0u8;
                    for v in l.iter() {
                        if let Value::Weekday(d) = v {
                            mask |= 1 << d;
                        }
                    }
                    Pred::Weekday(if *neg { !mask & 0x7f } else { mask })
                }
                (Some(src), Some(Value::List(l)))
                    if !l.is_empty()
                        && l.iter().all(|v| matches!(v, Value::Tier(t) if *t < 64)) =>
                {
                    let mut mask = 0u64;
                    for v in l.iter() {
                        if let Value::Tier(t) = v {
                            mask |= 1 << t;
                        }
                    }
                    Pred::Tiers {
                        src,
                        mask,
                        neg: *neg,
                    }
                }
                (Some(src), Some(Value::List(l))) => Pred::In {
                    src,
                    list: l.clone().into_boxed_slice(),
                    neg: *neg,
                },
                _ => Pred::General(Box::new(n.clone())),
            },
            NodeKind::Between(neg, a, lo, hi) => match (src_of(a), konst(lo), konst(hi)) {
                (Some(src), Some(Value::Num(lo)), Some(Value::Num(hi))) => Pred::NumBetween {
                    src,
                    lo: *lo,
                    hi: *hi,
                    neg: *neg,
                },
                (Some(src), Some(lo), Some(hi)) => Pred::Between {
                    src,
                    lo: lo.clone(),
                    hi: hi.clone(),
                    neg: *neg,
                },
                _ => Pred::General(Box::new(n.clone())),
            },
            NodeKind::TextTest(op, neg, a, b) => match (src_of(a), konst(b)) {
                (Some(src), Some(Value::Text(k))) => Pred::Text {
                    src,
                    op: *op,
                    neg: *neg,
                    k: k.to_string().into_boxed_str(),
                },
                _ => Pred::General(Box::new(n.clone())),
            },
            NodeKind::IsSet(neg, a) => match src_of(a) {
                Some(src) => Pred::IsSet { src, neg: *neg },
                None => Pred::General(Box::new(n.clone())),
            },
            NodeKind::Quant(q, depth, list, body) => match src_of(list) {
                Some(src) => Pred::Quant {
                    q: *q,
                    depth: *depth,
                    list: src,
                    body: Box::new(Pred::build(body)),
                },
                None => Pred::General(Box::new(n.clone())),
            },
            _ => Pred::General(Box::new(n.clone())),
        }
    }

    /// The condition's leading direct tests (see [`leaf`](Self::leaf)), as
    /// [`Guard`]s: the whole condition when it is one, or the first operands
    /// of an `and` up to the first test that is not direct (at most four).
    /// Each is infallible, so if one fails the whole condition is false (an
    /// earlier operand cannot have failed with an error), and the rule loop
    /// can skip the rule without the recursive test. The flag says whether
    /// the tests are the whole condition: then their passing means it holds;
    /// the count is how many of the `and`'s operands the tests are.
    ///
    /// The WebAssembly build, which is built for size and evaluates an
    /// editor's preview events one at a time, has no guards: every rule's
    /// condition is tested in full, with the same answers.
    pub fn guard(&self) -> (Box<[Guard]>, bool, usize) {
        if cfg!(target_arch = "wasm32") {
            return (Box::default(), false, 0);
        }
        let parts = match self {
            Pred::All(ps) => &ps[..],
            p => std::slice::from_ref(p),
        };
        let tested = parts.iter().take(4).take_while(|p| p.is_leaf()).count();
        // The first operand that is not direct, if it is among the first four.
        let stop = parts.get(tested).filter(|_| tested < 4);
        // a basket test that is false for an empty list still rules the
        // rule out cheaply when the list is empty
        let items = stop.and_then(Pred::needs_items);
        // Collected at its exact length: no growing, no shrinking.
        let guard = parts[..tested].iter().map(Guard::of).chain(items).collect();
        (guard, stop.is_none() && tested == parts.len(), tested)
    }

    /// [`test`](Self::test) when the first `skip` operands of an `and` are
    /// known to hold (a rule's guard passed): the same answer, without
    /// testing them again. They are infallible, so no error is lost.
    pub fn test_after<'a>(
        &'a self,
        skip: usize,
        ev: &Evaluator<'a>,
        cx: &mut Ctx<'a>,
    ) -> Result<bool, EvalError> {
        match self {
            Pred::All(ps) if skip > 0 => all_hold(ps.get(skip..).unwrap_or(&[]), ev, cx),
            _ => self.test(ev, cx),
        }
    }

    /// For `any x in <field> ...` and for a count or sum over a field's
    /// list compared so that an empty total (zero) fails: the test that
    /// the list has an element, which the predicate implies.
    fn needs_items(&self) -> Option<Guard> {
        let (list, zero_fails) = match self {
            Pred::Quant {
                q: Quant::Any,
                list,
                ..
            } => (list, true),
            Pred::Agg { list, op, k, .. } => (list, !holds(*op, dec_cmp(&Decimal::ZERO, k))),
            _ => return None,
        };
        match (*list, zero_fails) {
            (Src::Event(at), true) => Some(Guard::Items { ev: true, at }),
            (Src::Customer(at), true) => Some(Guard::Items { ev: false, at }),
            _ => None,
        }
    }

    fn is_leaf(&self) -> bool {
        matches!(
            self,
            Pred::Num { .. }
                | Pred::Tiers { .. }
                | Pred::TextEq { .. }
                | Pred::Weekday(_)
                | Pred::IsSet { .. }
                | Pred::NumBetween { .. }
                | Pred::Text { .. }
        )
    }

    /// For the direct tests (no recursion, no error, no fuel): whether it
    /// holds, without a call; `None` for every other form.
    #[cfg_attr(not(target_arch = "wasm32"), inline(always))]
    fn leaf(&self, cx: &Ctx<'_>) -> Option<bool> {
        Some(match self {
            Pred::Num { src, op, k } => match read(*src, cx) {
                V::Num(x) => holds(*op, dec_cmp(&x, k)),
                _ => false,
            },
            Pred::Tiers { src, mask, neg } => match read(*src, cx) {
                V::Tier(t) => (t < 64 && mask & (1 << t) != 0) != *neg,
                _ => false,
            },
            Pred::TextEq { src, k, ne } => match read(*src, cx) {
                V::Text(x) => (x == &**k) != *ne,
                _ => false,
            },
            Pred::Weekday(mask) => mask & (1 << cx.event.local.weekday) != 0,
            Pred::IsSet { src, neg } => !matches!(read(*src, cx), V::Null) != *neg,
            Pred::NumBetween { src, lo, hi, neg } => match read(*src, cx) {
                V::Num(x) => {
                    (dec_cmp(&x, lo) != Ordering::Less && dec_cmp(&x, hi) != Ordering::Greater)
                        != *neg
                }
                _ => false,
            },
            Pred::Text { src, op, neg, k } => match read(*src, cx) {
                V::Text(x) => text_test(*op, x, k) != *neg,
                _ => false,
            },
            _ => return None,
        })
    }

    /// Whether the condition holds: the same answer as `Evaluator::truthy`.
    pub fn test<'a>(&'a self, ev: &Evaluator<'a>, cx: &mut Ctx<'a>) -> Result<bool, EvalError> {
        Ok(match self {
            Pred::Const(b) => *b,
            Pred::All(ps) => all_hold(ps, ev, cx)?,
            Pred::Any(ps) => {
                for p in ps.iter() {
                    let holds = match p.leaf(cx) {
                        Some(b) => b,
                        None => p.test(ev, cx)?,
                    };
                    if holds {
                        return Ok(true);
                    }
                }
                false
            }
            Pred::Not(p) => !p.test(ev, cx)?,
            Pred::Num { .. }
            | Pred::Tiers { .. }
            | Pred::TextEq { .. }
            | Pred::Weekday(_)
            | Pred::IsSet { .. }
            | Pred::NumBetween { .. }
            | Pred::Text { .. } => self.leaf(cx).unwrap_or(false),
            Pred::Cmp { src, op, k } => match cmp_v(read(*src, cx), view(k)) {
                Some(o) => holds(*op, o),
                None => false,
            },
            Pred::Agg {
                list,
                depth,
                value,
                filter,
                op,
                k,
            } => {
                // as the evaluator: null values are skipped, overflow is an error
                let mut total = Decimal::ZERO;
                if let V::List(l) = read(*list, cx) {
                    let pass = |cx: &mut Ctx<'a>| match filter {
                        Some(f) => f.test(ev, cx),
                        None => Ok(true),
                    };
                    ev.each(l, *depth, cx, pass, |cx| {
                        let add = match value {
                            None => Decimal::ONE,
                            Some(v) => match read(*v, cx) {
                                V::Num(x) => x,
                                _ => return Ok(true),
                            },
                        };
                        total = total
                            .checked_add(add)
                            .ok_or(EvalError("number too large"))?;
                        Ok(true)
                    })?;
                }
                holds(*op, dec_cmp(&total, k))
            }
            Pred::CmpExpr { x, op, k } => match cmp_v(ev.eval(x, cx)?, view(k)) {
                Some(o) => holds(*op, o),
                None => false,
            },
            Pred::In { src, list, neg } => {
                let x = read(*src, cx);
                if matches!(x, V::Null) {
                    return Ok(false);
                }
                let found = list
                    .iter()
                    .any(|e| cmp_v(x, view(e)) == Some(Ordering::Equal));
                found != *neg
            }
            Pred::Between { src, lo, hi, neg } => {
                let x = read(*src, cx);
                match (cmp_v(x, view(lo)), cmp_v(x, view(hi))) {
                    (Some(a), Some(b)) => (a != Ordering::Less && b != Ordering::Greater) != *neg,
                    _ => false,
                }
            }
            Pred::Quant {
                q,
                depth,
                list,
                body,
            } => {
                let V::List(l) = read(*list, cx) else {
                    return Ok(matches!(q, Quant::All | Quant::None));
                };
                ev.quantify(*q, *depth, l, cx, |cx| body.test(ev, cx))?
            }
            Pred::General(n) => ev.truthy(n, cx)?,
        })
    }
}

/// A direct test of a rule's guard, flattened for the rule loop: a test of
/// an event or customer field is one bounds-checked load and a compare,
/// without the general predicate's dispatch on the predicate, then the
/// source, then the value.
#[derive(Clone, Debug)]
pub(crate) enum Guard {
    /// An event (`ev`) or customer field holding a number, against a
    /// constant; unset or not a number answers false.
    Num {
        ev: bool,
        at: u16,
        op: CmpOp,
        k: Decimal,
        /// `k`'s mantissa at scales 0 to 4 (money, points, counts), or
        /// `i64::MIN` where `k` has more decimals or does not fit: a field
        /// value with that scale and a 64-bit mantissa compares as an integer.
        k_at: [i64; 5],
    },
    /// A tier field in a set of tiers (see [`Pred::Tiers`]).
    Tiers {
        ev: bool,
        at: u16,
        mask: u64,
        neg: bool,
    },
    /// A text field equal (`ne`: not equal) to a constant.
    TextEq {
        ev: bool,
        at: u16,
        k: Box<str>,
        ne: bool,
    },
    /// A field is set (`neg`: unset).
    IsSet { ev: bool, at: u16, neg: bool },
    /// The event's weekday in a set (bit per day, Monday = bit 0).
    Weekday(u8),
    /// A field holds a list with at least one element.
    Items { ev: bool, at: u16 },
    /// Any other direct test (calendar values, loop variables).
    Leaf(Pred),
}

impl Guard {
    fn of(p: &Pred) -> Guard {
        let src = match p {
            Pred::Num { src, .. }
            | Pred::Tiers { src, .. }
            | Pred::TextEq { src, .. }
            | Pred::IsSet { src, .. } => *src,
            Pred::Weekday(mask) => return Guard::Weekday(*mask),
            _ => return Guard::Leaf(p.clone()),
        };
        let (ev, at) = match src {
            Src::Event(at) => (true, at),
            Src::Customer(at) => (false, at),
            _ => return Guard::Leaf(p.clone()),
        };
        match p {
            Pred::Num { op, k, .. } => Guard::Num {
                ev,
                at,
                op: *op,
                k: *k,
                k_at: scaled(k),
            },
            Pred::Tiers { mask, neg, .. } => Guard::Tiers {
                ev,
                at,
                mask: *mask,
                neg: *neg,
            },
            Pred::TextEq { k, ne, .. } => Guard::TextEq {
                ev,
                at,
                k: k.clone(),
                ne: *ne,
            },
            Pred::IsSet { neg, .. } => Guard::IsSet { ev, at, neg: *neg },
            _ => Guard::Leaf(p.clone()),
        }
    }

    /// Whether the test holds: the same answer as [`Pred::test`] gives for
    /// the predicate it was made from.
    // forced inline on native targets only: the WASM build is for size
    #[cfg_attr(not(target_arch = "wasm32"), inline(always))]
    pub fn holds(&self, cx: &Ctx<'_>) -> bool {
        match self {
            Guard::Leaf(p) => p.leaf(cx).unwrap_or(true),
            g => g.holds_on(cx.event, cx.customer).unwrap_or(true),
        }
    }

    /// [`holds`](Self::holds) for the tests that read only the event's and
    /// the customer's fields (all but `Leaf`, which answers `None`): no
    /// evaluation context needed.
    #[cfg_attr(not(target_arch = "wasm32"), inline(always))]
    pub fn holds_on(&self, event: &Event, customer: &Customer) -> Option<bool> {
        let field = |ev: bool, at: u16| slot(event, customer, ev, at);
        Some(match self {
            Guard::Num {
                ev,
                at,
                op,
                k,
                k_at,
            } => match field(*ev, *at) {
                Some(Value::Num(x)) => holds(*op, cmp_scaled(x, k, k_at)),
                _ => false,
            },
            Guard::Tiers { ev, at, mask, neg } => match field(*ev, *at) {
                Some(Value::Tier(t)) => (*t < 64 && mask & (1 << t) != 0) != *neg,
                _ => false,
            },
            Guard::TextEq { ev, at, k, ne } => match field(*ev, *at) {
                Some(Value::Text(x)) => (**x == **k) != *ne,
                _ => false,
            },
            Guard::IsSet { ev, at, neg } => {
                !matches!(field(*ev, *at), None | Some(Value::Null)) != *neg
            }
            Guard::Weekday(mask) => mask & (1 << event.local.weekday) != 0,
            Guard::Items { ev, at } => {
                matches!(field(*ev, *at), Some(Value::List(l)) if !l.is_empty())
            }
            Guard::Leaf(_) => return None,
        })
    }
}

/// Where a guard (and the rule index) reads its value: slot `at` of the
/// event's fields (`ev`) or of the customer's.
#[inline(always)]
pub(crate) fn slot<'a>(
    event: &'a Event,
    customer: &'a Customer,
    ev: bool,
    at: u16,
) -> Option<&'a Value> {
    let fields = if ev { &event.fields } else { &customer.fields };
    fields.get(at as usize)
}

/// `k`'s mantissa at scales 0 to 4, `i64::MIN` where it is not an integer
/// at that scale or does not fit (see [`Guard::Num`]).
fn scaled(k: &Decimal) -> [i64; 5] {
    std::array::from_fn(|s| {
        let s = s as u32;
        if k.scale() > s {
            return i64::MIN;
        }
        let m = POW10_U64
            .get((s - k.scale()) as usize)
            .and_then(|&p| k.mantissa().checked_mul(i128::from(p)));
        m.and_then(|m| i64::try_from(m).ok())
            .filter(|&m| m != i64::MIN)
            .unwrap_or(i64::MIN)
    })
}

/// `x` against a constant `k` with `k_at = scaled(k)`: the order of
/// `Decimal::cmp`, as two integers when `x`'s scale is at most 4 and its
/// mantissa fits 64 bits.
#[inline]
fn cmp_scaled(x: &Decimal, k: &Decimal, k_at: &[i64; 5]) -> Ordering {
    let small = k_at
        .get(x.scale() as usize)
        .filter(|&&kk| kk != i64::MIN)
        .and_then(|&kk| Some((i64::try_from(x.mantissa()).ok()?, kk)));
    match small {
        Some((m, kk)) => m.cmp(&kk),
        None => dec_cmp(x, k),
    }
}

/// Whether every operand of an `and` holds, left to right, stopping at the
/// first that does not (or fails with an error).
#[inline]
fn all_hold<'a>(ps: &'a [Pred], ev: &Evaluator<'a>, cx: &mut Ctx<'a>) -> Result<bool, EvalError> {
    for p in ps {
        let holds = match p.leaf(cx) {
            Some(b) => b,
            None => p.test(ev, cx)?,
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A leaf value: an event or customer field, a loop variable (or its
/// field), or the event's local calendar.
#[cfg_attr(not(target_arch = "wasm32"), inline(always))]
pub(crate) fn read<'a>(src: Src, cx: &Ctx<'a>) -> V<'a> {
    match src {
        Src::Event(s) => cx.event.fields.get(s as usize).map_or(V::Null, view),
        Src::Customer(s) => cx.customer.fields.get(s as usize).map_or(V::Null, view),
        Src::Local(d, f) => {
            let v = cx.locals[d as usize];
            match (f, v) {
                (None, v) => v,
                (Some(f), V::Record(r)) => r.get(f as usize).map_or(V::Null, view),
                _ => V::Null,
            }
        }
        Src::Calendar(c) => {
            let l = &cx.event.local;
            match c {
                Calendar::Weekday => V::Weekday(l.weekday),
                Calendar::Hour => V::Num(l.time.hour().into()),
                Calendar::Minute => V::Num(l.time.minute().into()),
                Calendar::Time => V::Time(l.time),
                Calendar::Date => V::Date(l.date),
                Calendar::Day => V::Num(l.date.day().into()),
                Calendar::Month => V::Num(l.date.month().into()),
                Calendar::Year => V::Num(l.date.year().into()),
            }
        }
    }
}

#[inline]
fn holds(op: CmpOp, o: Ordering) -> bool {
    match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::Ne => o != Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Le => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Ge => o != Ordering::Less,
    }
}

const POW10_U64: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// `Decimal` ordering; the same order as `Decimal::cmp`. Fast paths: two
/// non-negative values whose mantissas fit 64 bits (money, points, counts)
/// compare as integers at a common scale; otherwise both fit an `i128` at a
/// common scale when the scales differ by at most 9.
#[inline]
pub(crate) fn dec_cmp(a: &Decimal, b: &Decimal) -> Ordering {
    let (ra, rb) = (a.serialize(), b.serialize());
    let word = |r: &[u8; 16], i: usize| u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
    let (fa, fb) = (word(&ra, 0), word(&rb, 0));
    const SIGN: u32 = 0x8000_0000;
    if (fa | fb) & SIGN == 0 && word(&ra, 12) == 0 && word(&rb, 12) == 0 {
        let lo64 = |r: &[u8; 16]| u64::from(word(r, 4)) | (u64::from(word(r, 8)) << 32);
        let (ma, mb) = (lo64(&ra), lo64(&rb));
        let (sa, sb) = ((fa >> 16) & 0xff, (fb >> 16) & 0xff);
        if sa == sb {
            return ma.cmp(&mb);
        }
        // u64 * 10^k (k < 20) fits a u128
        if sa < sb {
            if let Some(&p) = POW10_U64.get((sb - sa) as usize) {
                return (u128::from(ma) * u128::from(p)).cmp(&u128::from(mb));
            }
        } else if let Some(&p) = POW10_U64.get((sa - sb) as usize) {
            return u128::from(ma).cmp(&(u128::from(mb) * u128::from(p)));
        }
    }
    let (sa, sb) = (a.scale(), b.scale());
    let (ma, mb) = (a.mantissa(), b.mantissa());
    if sa == sb {
        return ma.cmp(&mb);
    }
    // |mantissa| < 2^96 and 10^k < 2^32 for k <= 9: the product fits an i128
    let pow = |k: u32| {
        POW10_U64
            .get(k as usize)
            .filter(|_| k <= 9)
            .map(|&p| i128::from(p))
    };
    let aligned = if sa < sb {
        pow(sb - sa).map(|p| (ma * p).cmp(&mb))
    } else {
        pow(sa - sb).map(|p| ma.cmp(&(mb * p)))
    };
    aligned.unwrap_or_else(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::dec_cmp;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    #[test]
    fn dec_cmp_agrees_with_decimal_ord() {
        let xs = [
            "0",
            "-0",
            "0.00",
            "3.00",
            "5",
            "5.0",
            "4.999",
            "-5",
            "-5.01",
            "100",
            "99.99",
            "79228162514264337593543950335",
            "-79228162514264337593543950335",
            "0.0000000000000000000000000001",
            "7922816251426433759354395033.5",
        ];
        for a in xs {
            for b in xs {
                let (x, y) = (Decimal::from_str(a).unwrap(), Decimal::from_str(b).unwrap());
                assert_eq!(dec_cmp(&x, &y), x.cmp(&y), "{a} vs {b}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]
        #[test]
        fn cmp_scaled_is_decimal_ord(
            mx in proptest::prelude::any::<i64>(),
            mk in proptest::prelude::any::<i64>(),
            small in proptest::prelude::any::<bool>(),
            sx in 0u32..=8,
            sk in 0u32..=8,
        ) {
            let (mx, mk) = if small { (mx % 100_000, mk % 100_000) } else { (mx, mk) };
            let x = Decimal::from_i128_with_scale(i128::from(mx), sx);
            let k = Decimal::from_i128_with_scale(i128::from(mk), sk);
            let k_at = super::scaled(&k);
            proptest::prop_assert_eq!(super::cmp_scaled(&x, &k, &k_at), x.cmp(&k), "{} vs {}", x, k);
            // the same value at a larger scale, and a value equal to k
            let x10 = Decimal::from_i128_with_scale(i128::from(mx) * 10, sx + 1);
            proptest::prop_assert_eq!(super::cmp_scaled(&x10, &k, &k_at), x10.cmp(&k));
            proptest::prop_assert_eq!(super::cmp_scaled(&k, &k, &k_at), std::cmp::Ordering::Equal);
        }

        #[test]
        fn dec_cmp_is_decimal_ord(
            ma in proptest::prelude::any::<i64>(),
            mb in proptest::prelude::any::<i64>(),
            wide in proptest::prelude::any::<bool>(),
            sa in 0u32..=28,
            sb in 0u32..=28,
        ) {
            // small mantissas and near-equal values are the interesting ones
            let (ma, mb) = (i128::from(ma % 100_000), i128::from(if wide { mb } else { mb % 100_000 }));
            let x = Decimal::from_i128_with_scale(ma, sa % 6);
            let y = Decimal::from_i128_with_scale(mb, if wide { sb } else { sb % 6 });
            proptest::prop_assert_eq!(dec_cmp(&x, &y), x.cmp(&y), "{} vs {}", x, y);
            proptest::prop_assert_eq!(dec_cmp(&y, &x), y.cmp(&x), "{} vs {}", y, x);
            let x10 = Decimal::from_i128_with_scale(ma * 10, sa % 6 + 1);
            proptest::prop_assert_eq!(dec_cmp(&x, &x10), std::cmp::Ordering::Equal);
        }
    }
}
