//! Checked IR -> a runnable program: constants folded, rules indexed by
//! event type in evaluation order (priority, then source order).

use std::sync::{Arc, OnceLock};

use crate::ast::Span;
use crate::eval::{Ctx, Evaluator, V};
use crate::input::{local_of, Customer, Event};
use crate::ir::*;
use crate::schema::Value;

/// The compiled form shared (behind an `Arc`) by every clone of a `Program`.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub ir: ProgramIr,
    /// For each event type, indexes into `ir.rules` in evaluation order.
    pub by_event: Vec<Box<[u32]>>,
    /// For each rule (by index into `ir.rules`), what the rule loop checks
    /// first, kept together so that skipping a rule touches one record.
    pub quick: Box<[Quick]>,
    /// For each group, its rules (indexes into `ir.rules`) in evaluation
    /// order, so that deciding a best group does not scan every rule.
    pub group_members: Box<[Box<[u32]>]>,
    /// For each event type, the rules its field values rule out at once
    /// (`index.rs`; None: the rules' guards are tested one by one).
    pub index: Box<[Option<crate::index::EventIndex>]>,
    pub source: Arc<str>,
    /// Byte offset of each line start, for line/column of explanations:
    /// found on the first `line_col`, so that compiling does not scan the
    /// source for them.
    line_starts: OnceLock<Vec<usize>>,
}

/// A rule's cheap checks: its active dates, its guard (the predicate's
/// leading direct tests), and whether it has limits
/// or a budget (then it cannot be ruled out without its state).
#[derive(Debug)]
pub(crate) struct Quick {
    /// First and last active day, as days from the Common Era (inclusive;
    /// `i32::MIN`/`i32::MAX` when open).
    pub from: i32,
    pub to: i32,
    pub stateful: bool,
    /// The condition's leading direct tests (`Pred::guard`).
    pub guard: Box<[crate::pred::Guard]>,
    /// Whether `guard` is the whole condition (true when there is none).
    pub decides: bool,
    /// How many of the condition's leading `and` operands the guard tested
    /// (`Pred::test_after` starts after them).
    pub tested: usize,
}

impl Quick {
    fn of(r: &RuleIr) -> Quick {
        use chrono::Datelike;
        let (guard, decides, tested) = match &r.pred {
            Some(p) => p.guard(),
            None => (Box::default(), true, 0),
        };
        Quick {
            from: r.active.0.map_or(i32::MIN, |d| d.num_days_from_ce()),
            to: r.active.1.map_or(i32::MAX, |d| d.num_days_from_ce()),
            stateful: !(r.limits.is_empty() && r.budget.is_none()),
            guard,
            decides,
            tested,
        }
    }
}

impl Compiled {
    pub fn new(mut ir: ProgramIr, source: Arc<str>) -> Compiled {
        let (event_keys, customer_key) = crate::input::decode_keys(&ir);
        ir.event_keys = event_keys;
        ir.customer_key = customer_key;
        fold_program(&mut ir);
        for r in &mut ir.rules {
            r.pred = r.cond.as_ref().map(crate::pred::Pred::build);
        }
        // Each list at its final length: no growing, and no shrinking in
        // `into_boxed_slice` below.
        let mut sizes = vec![0usize; ir.events.len()];
        for r in &ir.rules {
            sizes[r.event as usize] += 1;
        }
        let mut by_event: Vec<Vec<u32>> = sizes.iter().map(|&n| Vec::with_capacity(n)).collect();
        for (i, r) in ir.rules.iter().enumerate() {
            by_event[r.event as usize].push(i as u32);
        }
        for list in &mut by_event {
            // stable: equal priorities keep source order
            list.sort_by_key(|&i| std::cmp::Reverse(ir.rules[i as usize].priority));
        }
        let quick: Box<[Quick]> = ir.rules.iter().map(Quick::of).collect();
        let index = by_event
            .iter()
            .map(|order| crate::index::EventIndex::new(order, &quick, &ir.rules))
            .collect();
        let mut group_members: Vec<Vec<u32>> = vec![Vec::new(); ir.groups.len()];
        for list in &by_event {
            for &i in list {
                if let Some((g, _)) = ir.rules[i as usize].group {
                    if let Some(m) = group_members.get_mut(g as usize) {
                        m.push(i);
                    }
                }
            }
        }
        Compiled {
            ir,
            by_event: by_event.into_iter().map(Vec::into_boxed_slice).collect(),
            quick,
            index,
            group_members: group_members
                .into_iter()
                .map(Vec::into_boxed_slice)
                .collect(),
            source,
            line_starts: OnceLock::new(),
        }
    }

    pub fn text(&self, span: Span) -> &str {
        self.source
            .get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }

    pub fn line_col(&self, at: usize) -> (usize, usize) {
        let line_starts = self.line_starts.get_or_init(|| {
            let mut v = vec![0];
            // bytes, not chars: `match_indices` was a third of this function
            v.extend(
                self.source
                    .bytes()
                    .enumerate()
                    .filter(|&(_, b)| b == b'\n')
                    .map(|(i, _)| i + 1),
            );
            v
        });
        let line = line_starts.partition_point(|&s| s <= at);
        let start = line_starts[line - 1];
        let col = self
            .source
            .get(start..at)
            .map_or(1, |s| s.chars().count() + 1);
        (line, col)
    }
}

fn fold_program(ir: &mut ProgramIr) {
    let mut rules = std::mem::take(&mut ir.rules);
    {
        let folder = Folder::new(ir);
        for r in &mut rules {
            if let Some(c) = &mut r.cond {
                folder.fold(c);
            }
            for e in &mut r.effects {
                match e {
                    EffectIr::Award { amount, to, .. } => {
                        match amount {
                            AmountIr::Fixed(n) | AmountIr::Percent(_, n) => {
                                folder.fold(n);
                            }
                            AmountIr::Rate {
                                points, unit, of, ..
                            } => {
                                folder.fold(points);
                                folder.fold(unit);
                                folder.fold(of);
                            }
                            AmountIr::Each {
                                points,
                                list,
                                filter,
                                ..
                            } => {
                                folder.fold(points);
                                folder.fold(list);
                                if let Some(f) = filter {
                                    folder.fold(f);
                                }
                            }
                        }
                        if let Some(t) = to {
                            folder.fold(t);
                        }
                    }
                    EffectIr::Multiply { factor, .. } => {
                        folder.fold(factor);
                    }
                    EffectIr::Grant { to: Some(t), .. } => {
                        folder.fold(t);
                    }
                    EffectIr::Redeem { points, .. } => {
                        folder.fold(points);
                    }
                    EffectIr::SetAttr { value, .. } => {
                        folder.fold(value);
                    }
                    _ => {}
                }
            }
        }
    }
    ir.rules = rules;
}

/// Replaces subtrees that read nothing from the event or customer by their value.
struct Folder<'p> {
    ir: &'p ProgramIr,
    event: Event,
    customer: Customer,
}

impl<'p> Folder<'p> {
    fn new(ir: &'p ProgramIr) -> Folder<'p> {
        let t = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        Folder {
            ir,
            event: Event {
                ty: 0,
                type_name: Arc::from(""),
                id: Arc::from(""),
                customer: Arc::from(""),
                time: t,
                local: local_of(ir, t),
                fields: Vec::new(),
                key: 0,
            },
            customer: Customer {
                id: Arc::from(""),
                fields: Vec::new(),
                key: 0,
            },
        }
    }

    /// Returns whether `n` is constant (after folding its children).
    fn fold(&self, n: &mut Node) -> bool {
        use NodeKind::*;
        let all_const = match &mut n.kind {
            Const(_) => return true,
            EventField(_) | CustomerField(_) | Local(..) | Calendar(_) | History(_) => {
                return false
            }
            // loops bind variables; fold inside but never the loop itself
            Quant(_, _, l, b) => {
                self.fold(l);
                self.fold(b);
                return false;
            }
            Agg {
                list,
                value,
                filter,
                ..
            } => {
                self.fold(list);
                if let Some(v) = value {
                    self.fold(v);
                }
                if let Some(f) = filter {
                    self.fold(f);
                }
                return false;
            }
            // `anniversary of`, `days since` depend on the event's date
            Of(_, a) => {
                self.fold(a);
                return false;
            }
            Not(a) | Neg(a) | IsSet(_, a) => self.fold(a),
            And(ab) | Or(ab) | Cmp(_, ab) => {
                let [a, b] = &mut **ab;
                let x = self.fold(a);
                let y = self.fold(b);
                x && y
            }
            Arith(_, a, b) | TextTest(_, _, a, b) | In(_, a, b) | ListContains(_, a, b) => {
                let x = self.fold(a);
                let y = self.fold(b);
                x && y
            }
            Between(_, a, b, c) | If(a, b, c) => {
                let x = self.fold(a);
                let y = self.fold(b);
                let z = self.fold(c);
                x && y && z
            }
            Call(_, args) => {
                let mut all = true;
                for a in args {
                    all &= self.fold(a);
                }
                all
            }
        };
        if !all_const {
            return false;
        }
        let ev = Evaluator { ir: self.ir };
        let mut cx = Ctx::new(&self.event, &self.customer, None, 0);
        cx.fuel = 1000;
        // Errors (division by zero in constants) are left for run time,
        // where they are reported against the rule.
        let folded = match ev.eval(n, &mut cx) {
            Ok(v) => Some(owned(v)),
            Err(_) => None,
        };
        match folded {
            Some(v) => {
                n.kind = Const(v);
                true
            }
            None => false,
        }
    }
}

fn owned(v: V<'_>) -> Value {
    crate::eval::own_value(v)
}
