//! The rule index: for each event type, which rules one event's field
//! values rule out before the rule loop looks at any rule.
//!
//! Many rules of a program test the same few fields in their guards (the
//! leading direct tests of their conditions, `Quick::guard`):
//! `purchase.amount >= $5`, `> $100`, `>= $20`; `customer.tier is gold`;
//! `weekday is Tuesday`;
//! `any item in purchase.items ...`. Tested rule by rule, each costs a load,
//! a dispatch and a compare. Here they are gathered per field: thresholds
//! sorted, so that one binary search per field and side tells every rule
//! whose threshold the value misses; a table per weekday and per tier; a
//! mask per list field that must not be empty and per field that must (not)
//! be set. The result is a bit mask over the event type's rules (by
//! position in `Compiled::by_event`): a set bit means that one of the
//! rule's guard tests fails, so the rule cannot fire.
//!
//! The index only has to be sound (a set bit implies the guard fails), not
//! complete: rules it says nothing about are tested by their guards as
//! before. Debug builds check every set bit against the guard.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use crate::ast::CmpOp;
use crate::compile::Quick;
use crate::input::{Customer, Event};
use crate::ir::RuleIr;
use crate::pred::{dec_cmp, slot, Guard};
use crate::schema::Value;

/// Rules per event type the index covers (a mask is this many bits).
const WORDS: usize = 4;
const MAX_RULES: usize = WORDS * 64;
/// Fewer rules with a guard the index can use are left to their guards.
const MIN_RULES: usize = 3;

/// A set of rules of one event type, by position in its evaluation order.
pub(crate) type Mask = [u64; WORDS];

/// The empty set.
pub(crate) const NONE: Mask = [0; WORDS];

#[inline]
fn or(a: &mut Mask, b: &Mask) {
    for (x, y) in a.iter_mut().zip(b) {
        *x |= *y;
    }
}

/// Add rule position `p` (below `MAX_RULES`) to `m`.
#[inline]
fn insert(m: &mut Mask, p: usize) {
    if let Some(w) = m.get_mut(p / 64) {
        *w |= 1 << (p % 64);
    }
}

/// Whether rule position `p` is in `m` (the debug builds' soundness check
/// and the tests).
#[inline(always)]
#[cfg(any(debug_assertions, test))]
pub(crate) fn has(m: &Mask, p: usize) -> bool {
    m.get(p / 64).is_some_and(|w| w >> (p % 64) & 1 != 0)
}

/// The positions `0..len` not in `dead`, in increasing order (positions
/// past the mask's are all there): the rule loops visit only the rules the
/// index did not rule out.
#[inline]
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn alive(dead: Mask, len: usize) -> Alive {
    Alive {
        dead,
        len,
        word: 0,
        bits: !dead[0],
    }
}

/// See [`alive`].
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) struct Alive {
    dead: Mask,
    len: usize,
    /// The word of `bits` (positions `word * 64 ..`; past the mask's words
    /// too).
    word: usize,
    /// The positions of `word` not yet visited and not ruled out.
    bits: u64,
}

impl Iterator for Alive {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            self.word += 1;
            if self.word * 64 >= self.len {
                return None;
            }
            // past the mask, nothing is ruled out
            self.bits = !self.dead.get(self.word).copied().unwrap_or(0);
        }
        let p = self.word * 64 + self.bits.trailing_zeros() as usize;
        if p >= self.len {
            return None;
        }
        self.bits &= self.bits - 1;
        Some(p)
    }
}

/// Where a guard reads its value: an event field (`ev`) or a customer
/// field, by slot.
type Field = (bool, u16);

/// What the guards read: the event and the customer.
type Of<'a> = (&'a Event, &'a Customer);

/// The value kept for `f` in `v`, added as the default if there is none.
fn entry<T: Default>(v: &mut Vec<(Field, T)>, f: Field) -> &mut T {
    let i = match v.iter().position(|e| e.0 == f) {
        Some(i) => i,
        None => {
            v.push((f, T::default()));
            v.len() - 1
        }
    };
    &mut v[i].1
}

fn value<'a>((event, customer): Of<'a>, (ev, at): Field) -> Option<&'a Value> {
    slot(event, customer, ev, at)
}

/// Thresholds of one side and strictness, sorted, with the rules they rule
/// out for a value at each cut.
#[derive(Debug, Default)]
struct Cut {
    /// Sorted thresholds.
    ks: Vec<Decimal>,
    /// The same as integers at scale `FIXED` (empty if one does not fit):
    /// a value with at most `FIXED` decimals is found by integer compares.
    fixed: Vec<i64>,
    /// `dead[i]`: the rules ruled out when `i` thresholds are below the cut
    /// (see `NumIndex::dead`).
    dead: Vec<Mask>,
}

impl Cut {
    /// `entries` are (threshold, rule position). `suffix`: a value rules
    /// out the thresholds above its cut (a lower bound: `x >= k`, `x > k`);
    /// otherwise those below it (an upper bound).
    fn new(mut entries: Vec<(Decimal, usize)>, suffix: bool) -> Cut {
        entries.sort_by(|a, b| dec_cmp(&a.0, &b.0));
        let n = entries.len();
        let mut dead = vec![NONE; n + 1];
        if suffix {
            for i in (0..n).rev() {
                let mut m = dead[i + 1];
                insert(&mut m, entries[i].1);
                dead[i] = m;
            }
        } else {
            for i in 0..n {
                let mut m = dead[i];
                insert(&mut m, entries[i].1);
                dead[i + 1] = m;
            }
        }
        let ks: Vec<Decimal> = entries.into_iter().map(|e| e.0).collect();
        let fixed = ks.iter().map(fixed).collect::<Option<Vec<i64>>>();
        Cut {
            fixed: fixed.unwrap_or_default(),
            ks,
            dead,
        }
    }

    /// The rules ruled out by `x`: the cut is after the thresholds `k`
    /// with `k < x` (with `below_or_equal`: `k <= x`).
    #[inline]
    fn dead(&self, x: &Decimal, xf: Option<i64>, below_or_equal: bool) -> &Mask {
        let i = match xf {
            Some(xf) if !self.fixed.is_empty() => {
                self.fixed.partition_point(|&k| match k.cmp(&xf) {
                    Ordering::Less => true,
                    Ordering::Equal => below_or_equal,
                    Ordering::Greater => false,
                })
            }
            _ => self.ks.partition_point(|k| match dec_cmp(k, x) {
                Ordering::Less => true,
                Ordering::Equal => below_or_equal,
                Ordering::Greater => false,
            }),
        };
        &self.dead[i]
    }
}

/// The scale of `Cut::fixed`: money and points have at most 4 decimals.
const FIXED: u32 = 4;

/// `d` as an integer at scale `FIXED` (None: more decimals, or too large).
fn fixed(d: &Decimal) -> Option<i64> {
    const POW: [i64; FIXED as usize + 1] = [1, 10, 100, 1_000, 10_000];
    let p = POW.get(FIXED.checked_sub(d.scale())? as usize)?;
    i64::try_from(d.mantissa()).ok()?.checked_mul(*p)
}

/// Every ordering guard (`<`, `<=`, `>`, `>=` a constant) on one number
/// field.
#[derive(Debug)]
struct NumIndex {
    field: Field,
    /// `x >= k`: fails for `k > x`.
    ge: Cut,
    /// `x > k`: fails for `k >= x`.
    gt: Cut,
    /// `x <= k`: fails for `k < x`.
    le: Cut,
    /// `x < k`: fails for `k <= x`.
    lt: Cut,
    /// All of them: each fails when the field does not hold a number.
    all: Mask,
}

impl NumIndex {
    fn dead(&self, of: Of<'_>, out: &mut Mask) {
        let Some(Value::Num(x)) = value(of, self.field) else {
            or(out, &self.all);
            return;
        };
        let xf = fixed(x);
        if !self.ge.ks.is_empty() {
            or(out, self.ge.dead(x, xf, true));
        }
        if !self.gt.ks.is_empty() {
            or(out, self.gt.dead(x, xf, false));
        }
        if !self.le.ks.is_empty() {
            or(out, self.le.dead(x, xf, false));
        }
        if !self.lt.ks.is_empty() {
            or(out, self.lt.dead(x, xf, true));
        }
    }
}

/// Tier guards on one field: the rules each tier rules out.
#[derive(Debug)]
struct TierIndex {
    field: Field,
    /// By tier number (tiers past the table: no information).
    by_tier: Vec<Mask>,
    /// When the field does not hold a tier (unset): every tier guard fails.
    none: Mask,
}

/// (threshold, rule position) of one side and strictness.
type Thresholds = Vec<(Decimal, usize)>;
/// (tier mask, negated, rule position) of one field.
type TierGuards = Vec<(u64, bool, usize)>;

/// One event type's index.
#[derive(Debug, Default)]
pub(crate) struct EventIndex {
    nums: Vec<NumIndex>,
    tiers: Vec<TierIndex>,
    /// By weekday (Monday = 0): the rules whose weekday guard excludes it.
    weekday: Option<[Mask; 7]>,
    /// (field, rules needing it to be a non-empty list)
    items: Vec<(Field, Mask)>,
    /// (field, (rules needing it set, rules needing it unset))
    set: Vec<(Field, (Mask, Mask))>,
}

impl EventIndex {
    /// The index of the rules `order` (an event type's, in evaluation
    /// order), or None when there are too many for a mask or too few rules
    /// with a guard it can use (then testing their guards is cheaper).
    ///
    /// Members of best groups are left out: the rule loop decides such a
    /// group as a whole at its first member.
    ///
    /// The WebAssembly build, which is built for size and evaluates one
    /// event at a time for an editor's preview, has no index: the answers
    /// are the same without it.
    pub fn new(order: &[u32], quick: &[Quick], rules: &[RuleIr]) -> Option<EventIndex> {
        if cfg!(target_arch = "wasm32") || order.len() > MAX_RULES {
            return None;
        }
        let mut x = EventIndex::default();
        // per field: (threshold, rule position) for >=, >, <=, <
        let mut nums: Vec<(Field, [Thresholds; 4])> = Vec::new();
        // per field: (tier mask, negated, rule position)
        let mut tiers: Vec<(Field, TierGuards)> = Vec::new();
        let mut used = 0;
        for (p, &ri) in order.iter().enumerate() {
            let (Some(q), Some(r)) = (quick.get(ri as usize), rules.get(ri as usize)) else {
                continue;
            };
            if matches!(r.group, Some((_, true))) {
                continue;
            }
            let mut indexed = false;
            for g in q.guard.iter() {
                match g {
                    Guard::Num { ev, at, op, k, .. } => {
                        let side = match op {
                            CmpOp::Ge => 0,
                            CmpOp::Gt => 1,
                            CmpOp::Le => 2,
                            CmpOp::Lt => 3,
                            CmpOp::Eq | CmpOp::Ne => continue,
                        };
                        let cuts: &mut [Thresholds; 4] = entry(&mut nums, (*ev, *at));
                        cuts[side].push((*k, p));
                    }
                    Guard::Tiers { ev, at, mask, neg } => {
                        entry(&mut tiers, (*ev, *at)).push((*mask, *neg, p));
                    }
                    Guard::Weekday(days) => {
                        let w = x.weekday.get_or_insert([NONE; 7]);
                        for (d, m) in w.iter_mut().enumerate() {
                            if days & (1 << d) == 0 {
                                insert(m, p);
                            }
                        }
                    }
                    Guard::Items { ev, at } => insert(entry(&mut x.items, (*ev, *at)), p),
                    Guard::IsSet { ev, at, neg } => {
                        let (if_unset, if_set) = entry(&mut x.set, (*ev, *at));
                        insert(if *neg { if_set } else { if_unset }, p);
                    }
                    Guard::TextEq { .. } | Guard::Leaf(_) => continue,
                }
                indexed = true;
            }
            used += usize::from(indexed);
        }
        if used < MIN_RULES {
            return None;
        }
        for (field, [ge, gt, le, lt]) in nums {
            let mut all = NONE;
            for &(_, p) in ge.iter().chain(&gt).chain(&le).chain(&lt) {
                insert(&mut all, p);
            }
            x.nums.push(NumIndex {
                field,
                ge: Cut::new(ge, true),
                gt: Cut::new(gt, true),
                le: Cut::new(le, false),
                lt: Cut::new(lt, false),
                all,
            });
        }
        for (field, guards) in tiers {
            // tiers used by the guards' masks (bits 0-63)
            let n = guards
                .iter()
                .map(|g| 64 - g.0.leading_zeros() as usize)
                .max()
                .unwrap_or(0);
            let mut by_tier = vec![NONE; n + 1];
            let mut none = NONE;
            for &(mask, neg, p) in &guards {
                insert(&mut none, p);
                for (t, m) in by_tier.iter_mut().enumerate() {
                    if (mask & (1 << t) != 0) == neg {
                        insert(m, p);
                    }
                }
            }
            x.tiers.push(TierIndex {
                field,
                by_tier,
                none,
            });
        }
        Some(x)
    }

    /// The rules whose guards `event` and `customer` fail (a subset of
    /// them: see the module's documentation).
    pub fn dead(&self, event: &Event, customer: &Customer) -> Mask {
        let cx: Of<'_> = (event, customer);
        let mut out = NONE;
        for n in &self.nums {
            n.dead(cx, &mut out);
        }
        for t in &self.tiers {
            match value(cx, t.field) {
                Some(Value::Tier(i)) => {
                    if let Some(m) = t.by_tier.get(*i as usize) {
                        or(&mut out, m);
                    }
                }
                _ => or(&mut out, &t.none),
            }
        }
        if let Some(w) = &self.weekday {
            if let Some(m) = w.get(event.local.weekday as usize) {
                or(&mut out, m);
            }
        }
        for (f, m) in &self.items {
            if !matches!(value(cx, *f), Some(Value::List(l)) if !l.is_empty()) {
                or(&mut out, m);
            }
        }
        for (f, (if_unset, if_set)) in &self.set {
            let set = !matches!(value(cx, *f), None | Some(Value::Null));
            or(&mut out, if set { if_set } else { if_unset });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Program;

    proptest::proptest! {
        /// `alive` lists exactly the positions below `len` that `has` does
        /// not find in the mask, in order (beyond the mask's 256: all).
        #[test]
        fn alive_lists_the_positions_not_ruled_out(
            words in proptest::array::uniform4(proptest::prelude::any::<u64>()),
            sparse in proptest::prelude::any::<bool>(),
            len in 0usize..600,
        ) {
            // sparse masks too: whole words alive or dead
            let dead: Mask = if sparse { words.map(|w| if w % 3 == 0 { 0 } else if w % 3 == 1 { !0 } else { w }) } else { words };
            let got: Vec<usize> = alive(dead, len).collect();
            let want: Vec<usize> = (0..len).filter(|&p| !has(&dead, p)).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    /// Thresholds of every side and strictness, at scales the fixed-point
    /// path takes and one it does not, on event and customer fields; tier,
    /// weekday, set/unset and basket guards.
    const PROGRAM: &str = r#"
tiers member, silver, gold
customer has
  visits: number
rule "ge" on purchase if purchase.amount >= $5 award 1 point
rule "gt" on purchase if purchase.amount > $5 award 1 point
rule "le" on purchase if purchase.amount <= $5 award 1 point
rule "lt" on purchase if purchase.amount < $5.50 award 1 point
rule "two" on purchase if purchase.amount > $100 and customer.tier is gold award 1 point
rule "not gold" on purchase if customer.tier is not gold award 1 point
rule "weekend" on purchase if weekday in [Saturday, Sunday] award 1 point
rule "coupon" on purchase if purchase.coupon is set award 1 point
rule "no coupon" on purchase if purchase.coupon is not set award 1 point
rule "basket" on purchase if any item in purchase.items where item.category = "x" award 1 point
rule "fine" on purchase if customer.visits >= 0.00001 award 1 point
rule "equal" on purchase if purchase.amount = $5 award 1 point
rule "best a" on purchase in best group "g" if purchase.amount > $1000 award 1 point
rule "best b" on purchase in best group "g" if purchase.amount > $2000 award 2 points
"#;

    /// Whether the index may rule out a rule for failing `g`.
    fn indexed(g: &Guard) -> bool {
        !matches!(
            g,
            Guard::TextEq { .. }
                | Guard::Leaf(_)
                | Guard::Num {
                    op: CmpOp::Eq | CmpOp::Ne,
                    ..
                }
        )
    }

    #[test]
    fn rules_out_exactly_the_rules_whose_indexed_guards_fail() {
        let program = Program::compile(PROGRAM).unwrap();
        let c = &program.inner;
        let ty =
            c.ir.events
                .iter()
                .position(|e| e.name == "purchase")
                .unwrap();
        let order = &c.by_event[ty];
        let x = c.index[ty]
            .as_ref()
            .expect("the purchase rules are indexed");
        let amounts = [
            "-1",
            "0",
            "4.99",
            "5",
            "5.00",
            "5.000001",
            "5.01",
            "5.5",
            "5.50",
            "5.5000",
            "100",
            "100.00",
            "100.01",
            "1000.5",
            "2000.01",
            "12345678901234567890.5",
        ];
        let customers = [
            r#"{"id": "c", "tier": "gold", "visits": 0}"#,
            r#"{"id": "c", "tier": "silver", "visits": "0.00001"}"#,
            r#"{"id": "c", "visits": "0.000011"}"#,
            r#"{"id": "c", "tier": "member"}"#,
        ];
        let mut ruled_out = 0;
        for (i, amount) in amounts.iter().enumerate() {
            // alternately Saturday and Monday, with and without a coupon
            // and a basket
            let (day, extra) = match i % 3 {
                0 => ("2026-11-28", r#", "coupon": "X""#),
                1 => (
                    "2026-11-30",
                    r#", "items": [{"sku": "a", "category": "x", "quantity": 1, "price": "1", "total": "1"}]"#,
                ),
                _ => ("2026-11-30", ""),
            };
            let ev = format!(
                r#"{{"type": "purchase", "id": "e", "customer": "c", "time": "{day}T12:00:00Z", "amount": "{amount}"{extra}}}"#
            );
            let event = program.event_from_json(&ev).unwrap();
            for cu in customers {
                let customer = program.customer_from_json(cu).unwrap();
                let cx = crate::eval::Ctx::new(&event, &customer, None, 0);
                let dead = x.dead(&event, &customer);
                for (p, &ri) in order.iter().enumerate() {
                    let (q, r) = (&c.quick[ri as usize], &c.ir.rules[ri as usize]);
                    let fails = q.guard.iter().any(|g| !g.holds(&cx));
                    let indexed_fails = q.guard.iter().any(|g| indexed(g) && !g.holds(&cx));
                    let best = matches!(r.group, Some((_, true)));
                    assert_eq!(
                        has(&dead, p),
                        indexed_fails && !best,
                        "rule {} for {ev} and {cu}",
                        r.name
                    );
                    assert!(!has(&dead, p) || fails);
                    ruled_out += usize::from(has(&dead, p));
                }
            }
        }
        assert!(ruled_out > 100, "{ruled_out}");
    }

    #[test]
    fn small_or_huge_event_types_are_not_indexed() {
        let program = Program::compile(
            "IF Purchase > $100 THEN Award 100 Points\nIF Purchase > $200 THEN Award 1 Point",
        )
        .unwrap();
        assert!(program.inner.index.iter().all(Option::is_none));
        let many: String = (0..MAX_RULES + 1)
            .map(|i| format!("IF Purchase > ${i} THEN Award 1 Point\n"))
            .collect();
        let program = Program::compile(&many).unwrap();
        assert!(program.inner.index.iter().all(Option::is_none));
        let fewer: String = (0..MAX_RULES)
            .map(|i| format!("IF Purchase > ${i} THEN Award 1 Point\n"))
            .collect();
        let program = Program::compile(&fewer).unwrap();
        assert!(program.inner.index.iter().any(Option::is_some));
    }
}
