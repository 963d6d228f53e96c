//! The embedded engine: many customers in memory, a stream of events,
//! limits, budgets, tiers, pending points, expiry, refunds and idempotency.
//! See docs/LANGUAGE.md, "State".

use std::collections::{hash_map, HashMap};
use std::io::BufRead;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::ast::PeriodUnit;
use crate::compile::Compiled;
use crate::error::{Error, ErrorKind};
use crate::eval::{self, round_points, StateCtx};
use crate::history;
use crate::input::{fit_event, local_of, Customer, Event};
use crate::ir::{LimitIr, ProgramIr, TierMetricIr};
use crate::ledger;
use crate::outcome::{Effect, LedgerEntry, Outcome, Status};
use crate::schema::{Value, CU_TIER};
use crate::state::*;
use crate::Program;

/// Customers by id (hashed with the seeded hasher of `state`: SipHash,
/// the std default, was a visible share of per-event time).
type Ids<V> = HashMap<Arc<str>, V, IdHash>;

#[derive(Clone)]
struct Entry {
    state: CustomerState,
    view: Customer,
    /// The tier review's due time for a `tier_since` (time-zone arithmetic,
    /// so kept until `tier_since` changes).
    review: ReviewDue,
    /// The view's last rebuild failed: it is older than the state.
    stale: bool,
}

/// (`tier_since`, the review due then)
type ReviewDue = Option<(DateTime<Utc>, Option<DateTime<Utc>>)>;

impl Entry {
    fn new(state: CustomerState, view: Customer) -> Entry {
        Entry {
            state,
            view,
            review: None,
            stale: false,
        }
    }
}

/// Totals of a replay.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReplayStats {
    /// Events read.
    pub events: u64,
    /// Events applied.
    pub applied: u64,
    /// Events skipped as duplicates.
    pub duplicates: u64,
    /// Events rejected (late, or redemptions without enough points).
    pub rejected: u64,
    /// Events that could not be decoded (see `errors`).
    pub invalid: u64,
    /// Spendable points awarded (after caps), to anyone.
    pub points_issued: Decimal,
    /// Points deducted by rules.
    pub points_deducted: Decimal,
    /// Points expired.
    pub points_expired: Decimal,
    /// Points redeemed.
    pub points_redeemed: Decimal,
    /// Points reversed by refunds.
    pub points_reversed: Decimal,
    /// Points awarded per rule.
    pub per_rule: Vec<(String, Decimal)>,
    /// The first errors (up to 100), with their line or index.
    pub errors: Vec<String>,
    /// Whether the replay ran on several threads.
    pub parallel: bool,
}

/// What a replay keeps of each outcome: `(kept, the outcome back if it was
/// not kept, for its vectors to be reused)`; None keeps nothing.
type Keep<'a, T> = Option<&'a (dyn Fn(Outcome) -> (T, Option<Outcome>) + Sync)>;

/// Adds outcomes up into `ReplayStats`, with the points per rule kept by
/// rule index until `finish`.
struct Tally<'a> {
    stats: ReplayStats,
    rules: &'a [crate::ir::RuleIr],
    /// The spendable kind's name.
    points: &'a str,
    /// Points per rule (None: no award of the spendable kind yet).
    by_rule: Vec<Option<Decimal>>,
}

impl<'a> Tally<'a> {
    fn new(ir: &'a ProgramIr) -> Tally<'a> {
        Tally {
            stats: ReplayStats::default(),
            rules: &ir.rules,
            points: "points",
            by_rule: vec![None; ir.rules.len()],
        }
    }

    fn add(&mut self, o: &Outcome) {
        let stats = &mut self.stats;
        stats.events += 1;
        match o.status {
            Some(Status::Duplicate) => stats.duplicates += 1,
            Some(Status::Rejected) => stats.rejected += 1,
            _ => stats.applied += 1,
        }
        for e in &o.effects {
            if let Effect::Award {
                rule, kind, points, ..
            }
            | Effect::Multiply {
                rule, kind, points, ..
            } = e
            {
                if **kind != *self.points {
                    continue;
                }
                if points.is_sign_negative() {
                    stats.points_deducted -= *points;
                } else {
                    add_dec(&mut stats.points_issued, *points);
                }
                let slot = self
                    .rules
                    .iter()
                    .position(|r| Arc::ptr_eq(&r.name, rule))
                    .or_else(|| self.rules.iter().position(|r| r.name == *rule))
                    .and_then(|i| self.by_rule.get_mut(i));
                match slot {
                    Some(Some(p)) => add_dec(p, *points),
                    Some(slot) => *slot = Some(*points),
                    None => match stats.per_rule.iter_mut().find(|(r, _)| **r == **rule) {
                        Some((_, p)) => *p += *points,
                        None => stats.per_rule.push((rule.to_string(), *points)),
                    },
                }
            }
        }
        for l in &o.ledger {
            match l {
                LedgerEntry::Expired { points, .. } => stats.points_expired += *points,
                LedgerEntry::Redeemed { points, .. } => stats.points_redeemed += *points,
                LedgerEntry::Reversed { points, .. } => stats.points_reversed += *points,
                _ => {}
            }
        }
    }

    /// The totals, sorted (`ReplayStats::sort`).
    fn finish_sorted(self, program: &Program) -> ReplayStats {
        let mut stats = self.finish();
        stats.sort(program);
        stats
    }

    /// The totals, the program's rules first in program order (as `sort`
    /// puts them).
    fn finish(self) -> ReplayStats {
        let mut stats = self.stats;
        let others = std::mem::take(&mut stats.per_rule);
        stats.per_rule = self
            .rules
            .iter()
            .zip(self.by_rule)
            .filter_map(|(r, p)| p.map(|p| (r.name.to_string(), p)))
            .collect();
        stats.per_rule.extend(others);
        stats
    }
}

impl ReplayStats {
    /// Add another part's totals (then `sort`).
    fn merge(&mut self, o: ReplayStats) {
        self.parallel |= o.parallel;
        self.events += o.events;
        self.applied += o.applied;
        self.duplicates += o.duplicates;
        self.rejected += o.rejected;
        self.invalid += o.invalid;
        self.points_issued += o.points_issued;
        self.points_deducted += o.points_deducted;
        self.points_expired += o.points_expired;
        self.points_redeemed += o.points_redeemed;
        self.points_reversed += o.points_reversed;
        for (rule, p) in o.per_rule {
            match self.per_rule.iter_mut().find(|(r, _)| *r == rule) {
                Some((_, q)) => *q += p,
                None => self.per_rule.push((rule, p)),
            }
        }
        self.errors.extend(o.errors);
    }

    fn sort(&mut self, program: &Program) {
        let pos = |r: &str| {
            program
                .rule_names()
                .position(|n| n == r)
                .unwrap_or(usize::MAX)
        };
        self.per_rule.sort_by_key(|(r, _)| pos(r));
    }
}

/// An engine holding every customer's state for one program.
///
/// `process` applies one event; `replay` many; `snapshot`/`from_snapshot`
/// save and restore everything. Time only moves with the events (and
/// `advance_to`): the engine never reads the clock.
pub struct Engine {
    program: Program,
    customers: Ids<Entry>,
    budgets: Vec<BudgetUse>,
    /// Per rule: points added to its budget (not counting refills) and
    /// awards, since the engine was made (for `replay_parallel`'s check).
    gross: Vec<(Decimal, u64)>,
    clock: Option<DateTime<Utc>>,
    /// A new customer's state and view, made once (None if the program's
    /// customer attributes need values: then each new customer is checked).
    blank: Option<Entry>,
    /// Names shared by all customers' states.
    names: Arc<Names>,
    /// Vectors reused from event to event (empty between events).
    buf: eval::Buffers,
    transfers: Vec<Transfer>,
    /// An outcome's ledger vector handed back by `recycle` (empty).
    ledger: Vec<LedgerEntry>,
    earned: Earned,
}

/// What the event being committed earned, gathered before it is stored as
/// an `EventAwards` (with vectors of the exact size).
#[derive(Default)]
struct Earned {
    lots: Vec<u64>,
    /// (rule index, points)
    by_rule: Vec<(usize, Decimal)>,
    kinds: Vec<(Arc<str>, Decimal)>,
}

struct Transfer {
    to: Arc<str>,
    effect: Effect,
    rule: u32,
}

impl Engine {
    /// An engine with no customers yet.
    pub fn new(program: Program) -> Engine {
        let budgets = program
            .inner
            .ir
            .rules
            .iter()
            .map(|r| BudgetUse {
                rule: r.name.to_string(),
                points: Decimal::ZERO,
                awards: 0,
            })
            .collect::<Vec<_>>();
        let names = Arc::new(Names::of(&program.inner.ir));
        let st = new_state(&program.inner.ir, &names, "");
        let blank = view_of(&program, &st).ok().map(|view| Entry::new(st, view));
        Engine {
            program,
            customers: Ids::default(),
            gross: vec![(Decimal::ZERO, 0); budgets.len()],
            budgets,
            clock: None,
            blank,
            names,
            buf: eval::Buffers::default(),
            transfers: Vec::new(),
            ledger: Vec::new(),
            earned: Earned::default(),
        }
    }

    /// Restore an engine from a snapshot (possibly taken with an earlier
    /// version of the program: state is matched by event, rule and kind name).
    pub fn from_snapshot(program: Program, snapshot: Snapshot) -> Result<Engine, Error> {
        let mut e = Engine::new(program);
        for b in snapshot.budgets {
            if let Some(slot) = e.budgets.iter_mut().find(|x| x.rule == b.rule) {
                *slot = b;
            }
        }
        e.clock = snapshot.clock;
        for st in snapshot.customers {
            let st = align(&e.program.inner.ir, &e.names, st);
            let view = view_of(&e.program, &st)?;
            e.customers
                .insert(Arc::from(st.id.as_str()), Entry::new(st, view));
        }
        Ok(e)
    }

    /// Everything, customers sorted by id: restoring it and continuing gives
    /// the same results as never having stopped.
    pub fn snapshot(&self) -> Snapshot {
        let mut customers: Vec<CustomerState> =
            self.customers.values().map(|e| e.state.clone()).collect();
        customers.sort_by(|a, b| a.id.cmp(&b.id));
        Snapshot {
            customers,
            budgets: self.budgets.clone(),
            clock: self.clock,
        }
    }

    /// The program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// One customer's state.
    pub fn customer(&self, id: &str) -> Option<&CustomerState> {
        self.customers.get(id).map(|e| &e.state)
    }

    /// Ids of all customers, sorted.
    pub fn customer_ids(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.customers.keys().map(|k| &**k).collect();
        v.sort_unstable();
        v
    }

    /// Campaign counters per rule.
    pub fn budgets(&self) -> &[BudgetUse] {
        &self.budgets
    }

    /// Create or update a customer's profile from customer JSON
    /// (`{"id", "tier"?, "tags"?, "birthday"?, ...attributes}`). Balances
    /// and history are kept. Checked against the program first: on error
    /// nothing changes.
    pub fn set_customer(&mut self, json: &serde_json::Value) -> Result<(), Error> {
        let c = self.program.customer_from_value(json)?;
        let id: Arc<str> = Arc::from(c.id());
        let mut st = self
            .customers
            .get(&id)
            .map(|e| e.state.clone())
            .unwrap_or_else(|| new_state(&self.program.inner.ir, &self.names, &id));
        if let serde_json::Value::Object(m) = json {
            for (k, v) in m {
                match k.as_str() {
                    "id" | "points" | "pending_points" => {}
                    "tier" => st.tier = v.as_str().map(|s| Arc::from(s.to_ascii_lowercase())),
                    "tags" => {
                        st.tags = v
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default()
                    }
                    _ => {
                        st.profile.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        let view = view_of(&self.program, &st)?;
        self.customers.insert(id, Entry::new(st, view));
        Ok(())
    }

    /// Decode and process one event given as JSON.
    pub fn process_json(&mut self, json: &str) -> Result<Outcome, Error> {
        let ev = self.program.event_from_json(json)?;
        Ok(self.process(&ev))
    }

    /// Process one event: apply its effects to the customers' states.
    /// A duplicate id or a late event changes nothing (see `Outcome::status`).
    pub fn process(&mut self, event: &Event) -> Outcome {
        let mut transfers = std::mem::take(&mut self.transfers);
        let out = self.process_one(event, false, &mut transfers);
        self.deliver(event, &mut transfers);
        self.transfers = transfers;
        out
    }

    /// Give an outcome's effects and ledger vectors back for the next
    /// event's outcome.
    fn recycle(&mut self, o: Outcome) {
        if o.effects.capacity() > self.buf.effects.capacity() {
            let mut v = o.effects;
            v.clear();
            self.buf.effects = v;
        }
        if o.ledger.capacity() > self.ledger.capacity() {
            let mut v = o.ledger;
            v.clear();
            self.ledger = v;
        }
    }

    /// What `process` would do, without changing anything (a dry run with
    /// the customer's history, limits and balances), with an explanation.
    pub fn preview(&self, event: &Event) -> Outcome {
        let mut scratch = Engine {
            program: self.program.clone(),
            customers: Ids::default(),
            budgets: self.budgets.clone(),
            gross: self.gross.clone(),
            clock: self.clock,
            blank: self.blank.clone(),
            names: self.names.clone(),
            buf: eval::Buffers::default(),
            transfers: Vec::new(),
            ledger: Vec::new(),
            earned: Earned::default(),
        };
        if let Some(e) = self.customers.get(&event.customer) {
            scratch.customers.insert(event.customer.clone(), e.clone());
        }
        let mut transfers = Vec::new();
        scratch.process_one(event, true, &mut transfers)
    }

    /// Move time to `t` for every customer: pending points are released,
    /// points expire, tier reviews happen. Returns what changed.
    pub fn advance_to(&mut self, t: DateTime<Utc>) -> Vec<LedgerEntry> {
        let mut ledger = Vec::new();
        let mut ids: Vec<Arc<str>> = self.customers.keys().cloned().collect();
        ids.sort();
        let ir = &self.program.inner.ir;
        let mut changed = Vec::new();
        for id in ids {
            if let Some(e) = self.customers.get_mut(&id) {
                let before = e.state.tier.clone();
                advance_customer(ir, &mut e.state, &mut e.review, &id, t, &mut ledger);
                refresh_view(&self.program, e);
                if e.state.tier != before {
                    changed.push((
                        id,
                        before,
                        e.state.tier.clone(),
                        e.state.tier_since.unwrap_or(t),
                    ));
                }
            }
        }
        // tier changes at review run the `tier_change` rules too
        for (id, from, to, at) in changed {
            let mut transfers = Vec::new();
            let base = format!("review:{}:{}", id, at.to_rfc3339());
            if let Some(o) =
                self.tier_change_rules(&id, &from, &to, at, &base, false, &mut transfers)
            {
                if !o.effects.is_empty() {
                    ledger.push(LedgerEntry::Rules {
                        customer: id.clone(),
                        event: Arc::from(base.as_str()),
                        effects: o.effects.clone(),
                    });
                }
                let derived = self
                    .program
                    .inner
                    .ir
                    .events
                    .iter()
                    .position(|e| e.name == "tier_change")
                    .map(|tc| Event {
                        ty: tc as u16,
                        type_name: Arc::from("tier_change"),
                        id: Arc::from(base.as_str()),
                        customer: id.clone(),
                        time: at,
                        local: local_of(&self.program.inner.ir, at),
                        fields: Vec::new(),
                        key: self.program.inner.ir.event_keys[tc],
                    });
                if let Some(d) = derived {
                    self.deliver(&d, &mut transfers);
                }
            }
        }
        self.clock = Some(self.clock.map_or(t, |c| c.max(t)));
        ledger
    }

    /// Process events in order, calling `each` with every outcome.
    pub fn replay_with<I, F>(&mut self, events: I, mut each: F) -> ReplayStats
    where
        I: IntoIterator<Item = Event>,
        F: FnMut(&Outcome),
    {
        self.replay_owned(events, |o| {
            each(&o);
            Some(o)
        })
    }

    /// Like [`replay_with`](Self::replay_with), for events that come in
    /// chunks: each chunk goes to `spent` once its events are processed,
    /// events and all, so that a caller making events on another thread
    /// can free them (or reuse the vector) there.
    pub fn replay_chunks<C, F, S>(&mut self, chunks: C, mut each: F, mut spent: S) -> ReplayStats
    where
        C: IntoIterator<Item = Vec<Event>>,
        F: FnMut(&Outcome),
        S: FnMut(Vec<Event>),
    {
        let program = self.program.clone();
        let mut tally = Tally::new(&program.inner.ir);
        for chunk in chunks {
            for ev in &chunk {
                self.replay_one(&mut tally, ev, |o| {
                    each(&o);
                    Some(o)
                });
            }
            spent(chunk);
        }
        tally.finish_sorted(&self.program)
    }

    /// Replay events made on a second thread, a chunk at a time: `make`
    /// runs there, filling an empty vector with the next chunk's events
    /// (false at the end, or to stop: a chunk it fails gives none of its
    /// events), while this thread replays the chunk before, with `each`
    /// called here. At most two made chunks wait; replayed chunks go back
    /// to `make`'s thread, which frees their events where they were made
    /// and reuses the vectors. The same result as `replay_with` over the
    /// chunks' events in order. A panic on either thread reaches the caller.
    pub fn replay_made<M, F>(&mut self, mut make: M, each: F) -> ReplayStats
    where
        M: FnMut(&mut Vec<Event>) -> bool + Send,
        F: FnMut(&Outcome),
    {
        use std::sync::mpsc;
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::sync_channel::<Vec<Event>>(2);
            let (spent_tx, spent_rx) = mpsc::channel::<Vec<Event>>();
            let maker = s.spawn(move || {
                loop {
                    let mut v = match spent_rx.try_recv() {
                        Ok(mut v) => {
                            v.clear();
                            v
                        }
                        Err(_) => Vec::new(),
                    };
                    if !make(&mut v) || tx.send(v).is_err() {
                        break;
                    }
                }
                // the replay ends when `tx` is gone; its last chunks are
                // freed here as well
                drop(tx);
                for v in spent_rx {
                    drop(v);
                }
            });
            let stats = self.replay_chunks(rx, each, |v| {
                // (if the maker is gone, the chunk is freed here)
                let _ = spent_tx.send(v);
            });
            drop(spent_tx);
            if let Err(panic) = maker.join() {
                std::panic::resume_unwind(panic);
            }
            stats
        })
    }

    /// Process events in order, giving `keep` every outcome (it hands back
    /// those it does not keep, whose vectors the next events reuse).
    fn replay_owned<I, F>(&mut self, events: I, mut keep: F) -> ReplayStats
    where
        I: IntoIterator<Item = Event>,
        F: FnMut(Outcome) -> Option<Outcome>,
    {
        let program = self.program.clone();
        let mut tally = Tally::new(&program.inner.ir);
        for ev in events {
            self.replay_one(&mut tally, &ev, &mut keep);
        }
        tally.finish_sorted(&self.program)
    }

    /// One event of a replay: processed, counted, its outcome given to
    /// `keep` (and recycled if handed back).
    #[inline]
    fn replay_one(
        &mut self,
        tally: &mut Tally,
        ev: &Event,
        keep: impl FnOnce(Outcome) -> Option<Outcome>,
    ) {
        let o = self.process(ev);
        tally.add(&o);
        if let Some(o) = keep(o) {
            self.recycle(o);
        }
    }

    /// Process events in order and return the totals.
    pub fn replay<I: IntoIterator<Item = Event>>(&mut self, events: I) -> ReplayStats {
        self.replay_with(events, |_| {})
    }

    /// Replay a JSON Lines stream of events. Lines that do not decode are
    /// counted in `invalid` and listed in `errors` (with their line number);
    /// the rest are processed.
    pub fn replay_jsonl<R: BufRead, F: FnMut(&Outcome)>(
        &mut self,
        reader: R,
        mut each: F,
    ) -> Result<ReplayStats, Error> {
        let program = self.program.clone();
        let mut tally = Tally::new(&program.inner.ir);
        for (i, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| {
                Error::input(
                    ErrorKind::Json,
                    None,
                    format!("reading line {}: {e}", i + 1),
                )
            })?;
            if line.trim().is_empty() {
                continue;
            }
            match self.program.event_from_json(&line) {
                Ok(ev) => self.replay_one(&mut tally, &ev, |o| {
                    each(&o);
                    Some(o)
                }),
                Err(e) => {
                    let stats = &mut tally.stats;
                    stats.invalid += 1;
                    if stats.errors.len() < 100 {
                        stats.errors.push(format!("line {}: {e}", i + 1));
                    }
                }
            }
        }
        Ok(tally.finish_sorted(&self.program))
    }

    /// Replay on `threads` threads, partitioned by customer, with exactly
    /// the result of `replay` (states, outcomes in input order, totals).
    ///
    /// Customers linked by referrals (`referred_by`, `referee`) share a
    /// partition, so awards to referrers stay inside it. Campaign budgets
    /// and `in total` limits are shared by all customers and used in event
    /// order, so the events that can use them (those of the rule's event
    /// type inside its `active` dates; any event for `tier_change` rules),
    /// from the first to the last in input order, replay on one thread; the
    /// events before and after them replay in parallel. Where those events
    /// are half the replay or more, it all runs in parallel as if budgets
    /// never ran out, and afterwards the engine checks that, added up over
    /// all partitions, no budget or `in total` limit could have been reached
    /// (points awarded, without the refills of refunds, within the budget;
    /// awards below the limit): then no cut or refusal happened in either
    /// order. If one could have been reached, or an award crossed
    /// partitions, that part starts over on one thread.
    /// `ReplayStats::parallel` tells whether any part ran in parallel.
    ///
    /// Inside a partition, and with `threads = 1` too, the events of each
    /// referral group are replayed together (in input order within the
    /// group), so each customer's state stays in the cache while its events
    /// run: for a large replay this is faster than [`replay`](Self::replay)
    /// even on one thread (which then runs budget-contested stretches in
    /// order, as above, without a second pass).
    pub fn replay_parallel(
        &mut self,
        events: Vec<Event>,
        threads: usize,
    ) -> (Vec<Outcome>, ReplayStats) {
        self.replay_parts(events, threads, Some(&|o| (o, None)))
    }

    /// `replay_parallel` without the outcomes: the same states and totals,
    /// without keeping a copy of every outcome.
    pub fn replay_parallel_totals(&mut self, events: Vec<Event>, threads: usize) -> ReplayStats {
        self.replay_parts::<()>(events, threads, None).1
    }

    /// `replay_parallel`, keeping `f` of each outcome instead of the
    /// outcome (in input order): what a caller needs of every event (its
    /// points, say), without holding every outcome until the end. `f` runs
    /// on the replay's threads; its results are in input order whatever
    /// order the events ran in.
    pub fn replay_parallel_map<T, F>(
        &mut self,
        events: Vec<Event>,
        threads: usize,
        f: F,
    ) -> (Vec<T>, ReplayStats)
    where
        T: Send,
        F: Fn(&Outcome) -> T + Sync,
    {
        self.replay_parts(events, threads, Some(&|o| (f(&o), Some(o))))
    }

    /// `replay_parallel`, keeping `keep` of each outcome (it hands back the
    /// outcome if it does not keep it, for its vectors to be reused); None
    /// keeps nothing (the vector returned is empty).
    fn replay_parts<T: Send>(
        &mut self,
        mut events: Vec<Event>,
        threads: usize,
        keep: Keep<'_, T>,
    ) -> (Vec<T>, ReplayStats) {
        let threads = threads.clamp(1, 64);
        if events.len() < 2 || !transfers_follow_links(&self.program.inner.ir) {
            // (points sent to customers the partitions do not link: in
            // input order, on one thread)
            return self.replay_collect(events, keep);
        }
        let span = self.contested_span(&events);
        if threads == 1 && span.is_some_and(|(a, b)| (b + 1 - a) * 2 >= events.len()) {
            // on one thread, checking budgets after the fact gains nothing
            return self.replay_collect(events, keep);
        }
        // (on one thread too: the partitioned replay takes each referral
        // group's events together, which keeps its states in the cache)
        match span {
            Some((a, b)) if (b + 1 - a) * 2 < events.len() => {
                let tail = events.split_off(b + 1);
                let middle = events.split_off(a);
                let (mut outs, mut stats) = self.replay_partitioned(events, threads, keep);
                let (o, s) = self.replay_collect(middle, keep);
                outs.extend(o);
                stats.merge(s);
                let (o, s) = self.replay_partitioned(tail, threads, keep);
                outs.extend(o);
                stats.merge(s);
                stats.sort(&self.program);
                (outs, stats)
            }
            _ => self.replay_partitioned(events, threads, keep),
        }
    }

    /// An order in which [`replay`](Self::replay) may take a batch of
    /// events and give exactly what it gives in input order: each referral
    /// group's events together, in input order within the group (the order
    /// `replay_parallel` runs a partition in). None when input order is
    /// needed: the program has campaign budgets or `in total` limits,
    /// which all customers share in event order, or sends points or
    /// rewards to customers named by fields other than `referred_by` and
    /// `referee`.
    ///
    /// `customers[i]` is event `i`'s customer, and `links(i)` the values of
    /// its `referred_by` and `referee` fields, if it has them: customers
    /// linked by those, or by the `referred_by` of a customer the engine
    /// holds, are one group (one customer's awards to another stay in
    /// order).
    ///
    /// For callers that make events on the fly, from columns say: events
    /// made and replayed in this order find their customer's state, and
    /// each other, in the cache, which for a large replay in time order is
    /// about twice as fast as input order.
    pub fn replay_order<'a, L>(&self, customers: &[&'a str], links: L) -> Option<Vec<u32>>
    where
        L: Fn(usize) -> [Option<&'a str>; 2],
    {
        let ir = &self.program.inner.ir;
        if shared_limits(ir).next().is_some() || !transfers_follow_links(ir) {
            return None;
        }
        let mut uf = self.held_referrals(false);
        let mut who: Vec<u32> = Vec::with_capacity(customers.len());
        for (k, c) in customers.iter().enumerate() {
            let i = uf.add(c);
            who.push(i);
            for r in links(k).into_iter().flatten() {
                if !r.is_empty() {
                    let j = uf.add(r);
                    uf.union(i, j);
                }
            }
        }
        let n = uf.names.len();
        let root_of: Vec<u32> = (0..n as u32).map(|i| uf.find(i)).collect();
        Some(group_order(&who, &root_of, n))
    }

    /// The customers the engine holds that name a referrer (`referred_by`
    /// in their profile), each joined to it; with `all`, every held
    /// customer.
    fn held_referrals(&self, all: bool) -> UnionFind {
        let mut uf = UnionFind::default();
        for (id, e) in &self.customers {
            let r = e.state.profile.get("referred_by").and_then(|v| v.as_str());
            if r.is_none() && !all {
                continue;
            }
            let i = uf.add_arc(id);
            if let Some(r) = r {
                let j = uf.add(r);
                uf.union(i, j);
            }
        }
        uf
    }

    /// First and last index of the events that may use a campaign budget or
    /// an `in total` limit (None: there are none).
    fn contested_span(&self, events: &[Event]) -> Option<(usize, usize)> {
        let ir = &self.program.inner.ir;
        let tier_change = ir.events.iter().position(|e| e.name == "tier_change");
        let shared: Vec<_> = shared_limits(ir).collect();
        if shared.is_empty() {
            return None;
        }
        let uses = |ev: &Event| {
            let day = ev.local.date;
            shared.iter().any(|r| {
                (r.event == ev.ty || Some(r.event as usize) == tier_change) && r.active_on(day)
            })
        };
        let a = events.iter().position(uses)?;
        let b = events.iter().rposition(uses)?;
        Some((a, b))
    }

    /// Replay partitioned by customer on `threads` threads, checked after
    /// the fact (see `replay_parallel`); on one thread if the check fails.
    fn replay_partitioned<T: Send>(
        &mut self,
        events: Vec<Event>,
        threads: usize,
        keep: Keep<'_, T>,
    ) -> (Vec<T>, ReplayStats) {
        if events.len() < 2 {
            return self.replay_collect(events, keep);
        }
        let ir = &self.program.inner.ir;
        // Union customers linked by referral fields (every held customer
        // is in it, to be placed in a partition).
        let mut uf = self.held_referrals(true);
        let links: Vec<Vec<usize>> = ir
            .events
            .iter()
            .map(|e| {
                e.fields
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| matches!(f.name.as_str(), "referred_by" | "referee"))
                    .map(|(slot, _)| slot)
                    .collect()
            })
            .collect();
        // each event's customer, by index
        let mut who: Vec<u32> = Vec::with_capacity(events.len());
        for ev in &events {
            let i = uf.add_arc(&ev.customer);
            who.push(i);
            for &slot in &links[ev.ty as usize] {
                if let Some(Value::Text(r)) = ev.fields.get(slot) {
                    let j = uf.add(r);
                    uf.union(i, j);
                }
            }
        }
        // partition of every customer, and of every event
        let mut by_index: Vec<u8> = Vec::with_capacity(uf.names.len());
        // each customer's referral group, by its root's index
        let mut root_of: Vec<u32> = Vec::with_capacity(uf.names.len());
        for i in 0..uf.names.len() as u32 {
            let root = uf.find(i);
            root_of.push(root);
            by_index.push((fnv(&uf.names[root as usize]) % threads as u64) as u8);
        }
        let part = |id: &str| uf.index.get(id).map(|&i| by_index[i as usize]);
        let mut order: Vec<u8> = Vec::with_capacity(events.len());
        // each part's events, by position in `events` (the events stay
        // where they are: moving them into parts took a quarter of this
        // setup, about 56 ms per million)
        let mut parts: Vec<Vec<u32>> = (0..threads)
            .map(|_| Vec::with_capacity(events.len() / threads + 1))
            .collect();
        // each part's events' customers, by index
        let mut part_who: Vec<Vec<u32>> = (0..threads)
            .map(|_| Vec::with_capacity(events.len() / threads + 1))
            .collect();
        for (k, i) in who.into_iter().enumerate() {
            let p = by_index[i as usize];
            order.push(p);
            parts[p as usize].push(k as u32);
            part_who[p as usize].push(i);
        }
        // customers per part, to size the parts' maps once
        let mut sizes = vec![0usize; threads];
        for &p in &by_index {
            sizes[p as usize] += 1;
        }
        let initial_budgets = self.budgets.clone();
        let mut engines: Vec<Engine> = (0..threads)
            .map(|_| Engine {
                program: self.program.clone(),
                customers: Ids::default(),
                budgets: initial_budgets.clone(),
                gross: vec![(Decimal::ZERO, 0); initial_budgets.len()],
                clock: self.clock,
                blank: self.blank.clone(),
                names: self.names.clone(),
                buf: eval::Buffers::default(),
                transfers: Vec::new(),
                ledger: Vec::new(),
                earned: Earned::default(),
            })
            .collect();
        for (eng, n) in engines.iter_mut().zip(&sizes) {
            eng.customers.reserve(*n);
        }
        for (id, e) in std::mem::take(&mut self.customers) {
            let p = part(&id).unwrap_or(0);
            engines[p as usize].customers.insert(id, e);
        }
        let part = &part;
        let index = &uf.index;
        let n_ids = uf.names.len();
        let root_of = &root_of;
        // (outcomes, totals, an award crossed partitions, the customers the
        // partition changed as they were before: None if new); a panic goes
        // on as on one thread
        type Part<T> = (Vec<T>, ReplayStats, bool, Saved);
        // one partition's replay (on this thread when there is one)
        // Whether the replay may have to start over on one thread: only if
        // a partition may push a budget or `in total` limit past its cap
        // (events that use one), or an award may reach a customer the
        // partitioning did not link (awards go only to `referred_by` and
        // `referee`, all linked above, and `set` effects may change only
        // declared attributes; any `set` effect still counts, to be safe).
        // Otherwise nothing is saved: saving is a copy of
        // every held customer the replay touches (replaying 86k retail
        // events into an engine of 50,000 customers took 0.55 s with the
        // copies).
        let may_redo = self.contested_span(&events).is_some()
            || ir.rules.iter().any(|r| {
                r.effects
                    .iter()
                    .any(|e| matches!(e, crate::ir::EffectIr::SetAttr { .. }))
            });
        let all = &events;
        let work = |p: usize, eng: &mut Engine, evs: &Vec<u32>, whos: &Vec<u32>| -> Part<T> {
            // kept in case the replay must start over on one
            // thread: each customer as it was before the
            // partition first changed it (by customer index;
            // `others` for ids the partitioning did not see)
            let mut saved = Saved::default();
            let mut seen = vec![false; n_ids];
            let mut others: Ids<()> = Ids::default();
            // by input position: filled out of order
            let mut slots: Vec<Option<T>> = Vec::new();
            if keep.is_some() {
                slots.resize_with(evs.len(), || None);
            }
            let program = eng.program.clone();
            let mut tally = Tally::new(&program.inner.ir);
            let mut crossed = false;
            let mut transfers = Vec::new();
            // One referral group after another, each group's
            // events in input order: groups share nothing
            // inside a partition (as partitions share nothing),
            // and a customer's state stays in the cache while
            // its events run (in time order, each event would
            // find another customer's state cold).
            for k in group_order(whos, root_of, n_ids) {
                let k = k as usize;
                let (ev, i) = (&all[evs[k] as usize], whos[k]);
                if may_redo && !std::mem::replace(&mut seen[i as usize], true) {
                    save_entry(&mut saved, &eng.customers, &ev.customer);
                }
                let o = eng.process_one(ev, false, &mut transfers);
                for t in &transfers {
                    if part(&t.to).is_none_or(|tp| tp as usize != p) {
                        crossed = true;
                    }
                    if !may_redo {
                        continue;
                    }
                    let first = match index.get(&*t.to) {
                        Some(&j) => !std::mem::replace(&mut seen[j as usize], true),
                        None => others.insert(t.to.clone(), ()).is_none(),
                    };
                    if first {
                        save_entry(&mut saved, &eng.customers, &t.to);
                    }
                }
                eng.deliver(ev, &mut transfers);
                tally.add(&o);
                let back = match keep {
                    Some(f) => {
                        let (t, back) = f(o);
                        slots[k] = Some(t);
                        back
                    }
                    None => Some(o),
                };
                if let Some(o) = back {
                    eng.recycle(o);
                }
            }
            let outs: Vec<T> = slots.into_iter().flatten().collect();
            (outs, tally.finish(), crossed, saved)
        };
        let work = &work;
        let results: Vec<Part<T>> = if threads == 1 {
            engines
                .iter_mut()
                .zip(parts.iter().zip(&part_who))
                .enumerate()
                .map(|(p, (eng, (evs, whos)))| work(p, eng, evs, whos))
                .collect()
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = engines
                    .iter_mut()
                    .zip(parts.iter().zip(&part_who))
                    .enumerate()
                    .map(|(p, (eng, (evs, whos)))| s.spawn(move || work(p, eng, evs, whos)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        };
        let crossed = results.iter().any(|r| r.2);
        let ir = &self.program.inner.ir;
        let over_budget = ir.rules.iter().enumerate().any(|(ri, r)| {
            let points: Decimal = engines.iter().map(|e| e.gross[ri].0).sum();
            let awards: u64 = engines.iter().map(|e| e.gross[ri].1).sum();
            let before = &initial_budgets[ri];
            let awards_cap = r
                .limits
                .iter()
                .filter_map(|l| match l {
                    LimitIr::Times { n, total: true, .. } => Some(Decimal::from(*n)),
                    _ => None,
                })
                .chain(match r.budget {
                    Some((amount, true)) => Some(amount),
                    _ => None,
                })
                .min();
            let points_cap = match r.budget {
                Some((amount, false)) => Some(amount),
                _ => None,
            };
            points_cap.is_some_and(|cap| before.points + points > cap)
                || awards_cap.is_some_and(|cap| Decimal::from(before.awards + awards) >= cap)
        });
        debug_assert!(
            may_redo || !(crossed || over_budget),
            "the replay must start over, but nothing was saved for it (crossed {crossed}, over budget {over_budget})"
        );
        if crossed || over_budget {
            // Put the initial states back and replay on one thread.
            self.customers = Ids::default();
            for (eng, (_, _, _, saved)) in engines.iter_mut().zip(results) {
                let mut customers = std::mem::take(&mut eng.customers);
                for (id, before) in saved {
                    match before {
                        Some(e) => customers.insert(id, *e),
                        None => customers.remove(&id),
                    };
                }
                self.customers.extend(customers);
            }
            self.budgets = initial_budgets;
            return self.replay_collect(events, keep);
        }
        // The events are no longer needed: freeing them is a fair share of
        // a replay, so it is done on another thread while this one merges.
        // One thread: glibc's allocator takes the lock of the arena a block
        // came from to free it, so two threads freeing the events (made on
        // one) wait on each other; 1M bench3 events took 104 ms to free on
        // one thread and 313 ms on two.
        std::thread::scope(|s| {
            s.spawn(move || drop(events));
            // Merge: customers, budgets (sum of deltas), clock, outcomes in input order.
            let mut merged_budgets = initial_budgets.clone();
            for eng in &engines {
                for (m, (b, init)) in merged_budgets
                    .iter_mut()
                    .zip(eng.budgets.iter().zip(&initial_budgets))
                {
                    m.points += b.points - init.points;
                    m.awards += b.awards - init.awards;
                }
            }
            for eng in &engines {
                for (g, e) in self.gross.iter_mut().zip(&eng.gross) {
                    g.0 += e.0;
                    g.1 += e.1;
                }
            }
            let mut clock = self.clock;
            self.customers
                .reserve(engines.iter().map(|e| e.customers.len()).sum());
            for eng in engines {
                clock = match (clock, eng.clock) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                self.customers.extend(eng.customers);
            }
            self.budgets = merged_budgets;
            self.clock = clock;
            let mut stats = ReplayStats {
                parallel: threads > 1,
                ..ReplayStats::default()
            };
            let mut iters = Vec::with_capacity(threads);
            for (outs, s, _, _) in results {
                stats.merge(s);
                iters.push(outs.into_iter());
            }
            let outs: Vec<T> = if keep.is_some() {
                order
                    .iter()
                    .filter_map(|&p| iters[p as usize].next())
                    .collect()
            } else {
                Vec::new()
            };
            stats.sort(&self.program);
            (outs, stats)
        })
    }

    /// Replay on this thread, keeping `keep` of each outcome (see
    /// `replay_parts`).
    fn replay_collect<T>(
        &mut self,
        events: Vec<Event>,
        keep: Keep<'_, T>,
    ) -> (Vec<T>, ReplayStats) {
        let Some(f) = keep else {
            return (Vec::new(), self.replay_owned(events, Some));
        };
        let mut outs = Vec::with_capacity(events.len());
        let stats = self.replay_owned(events, |o| {
            let (t, back) = f(o);
            outs.push(t);
            back
        });
        (outs, stats)
    }

    /// Apply awards and rewards for other customers (referrers).
    fn deliver(&mut self, event: &Event, transfers: &mut Vec<Transfer>) {
        if transfers.is_empty() {
            return;
        }
        for t in transfers.drain(..) {
            let ir = &self.program.inner.ir;
            if !self.customers.contains_key(&t.to) {
                match new_entry(&self.program, &self.names, &self.blank, &t.to) {
                    Ok(e) => {
                        self.customers.insert(t.to.clone(), e);
                    }
                    Err(_) => continue,
                }
            }
            let Some(e) = self.customers.get_mut(&t.to) else {
                continue;
            };
            let rule = &ir.rules[t.rule as usize];
            match &t.effect {
                Effect::Award { kind, points, .. } => {
                    let k = kind_index(ir, kind);
                    credit(
                        ir,
                        &mut e.state,
                        event,
                        &rule.name,
                        rule.expiry,
                        k,
                        *points,
                        &mut LotTimes::default(),
                    );
                }
                Effect::Reward { reward, .. } => e.state.rewards.push(RewardGrant {
                    reward: reward.clone(),
                    at: event.time,
                    event: event.id.clone(),
                }),
                _ => {}
            }
            refresh_view(&self.program, e);
        }
    }

    /// Run the `tier_change` rules for a tier change of customer `id` at
    /// `time` (as the derived event `base`) and apply their effects.
    #[allow(clippy::too_many_arguments)]
    fn tier_change_rules(
        &mut self,
        id: &Arc<str>,
        from: &Option<Arc<str>>,
        to: &Option<Arc<str>>,
        time: DateTime<Utc>,
        base: &str,
        explain: bool,
        transfers: &mut Vec<Transfer>,
    ) -> Option<Outcome> {
        let program = self.program.clone();
        let c: &Compiled = &program.inner;
        let ir = &c.ir;
        let tc = ir.events.iter().position(|e| e.name == "tier_change")?;
        if c.by_event[tc].is_empty() {
            return None;
        }
        let tier_val = |t: &Option<Arc<str>>| match t
            .as_ref()
            .and_then(|n| ir.tiers.iter().position(|x| **x == **n))
        {
            Some(i) => Value::Tier(i as u16),
            None => Value::Null,
        };
        let derived = Event {
            ty: tc as u16,
            type_name: Arc::from("tier_change"),
            id: Arc::from(base),
            customer: id.clone(),
            time,
            local: local_of(ir, time),
            fields: vec![
                Value::Text(base.into()),
                Value::Text((**id).into()),
                Value::DateTime(time),
                tier_val(from),
                tier_val(to),
            ],
            key: ir.event_keys[tc],
        };
        let entry = self.customers.get(id)?;
        let o2 = eval::run_with(
            c,
            &derived,
            &entry.view,
            explain,
            Some(StateCtx {
                customer: &entry.state,
                budgets: &self.budgets,
            }),
            &mut self.buf,
        );
        let entry = self.customers.get_mut(id)?;
        let mut ledger = Vec::new();
        let mut notes = Vec::new();
        commit(
            ir,
            &mut entry.state,
            &mut self.budgets,
            &mut self.gross,
            &derived,
            &o2,
            &self.buf.fired,
            &mut self.earned,
            transfers,
            &mut ledger,
            &mut notes,
        );
        if o2
            .effects
            .iter()
            .any(|e| matches!(e, Effect::SetAttribute { .. }))
        {
            // the profile changed and the view was not rebuilt
            entry.stale = true;
        }
        refresh_view(&self.program, entry);
        let mut o2 = o2;
        o2.ledger.extend(ledger);
        o2.errors.extend(notes);
        Some(o2)
    }

    fn process_one(
        &mut self,
        event: &Event,
        explain: bool,
        transfers: &mut Vec<Transfer>,
    ) -> Outcome {
        // borrowed, not cloned: a clone per event is two atomic operations
        // on a count that every thread of a parallel replay shares
        let program = &self.program;
        let c: &Compiled = &program.inner;
        let ir = &c.ir;
        // an event another program decoded: under this program's index for
        // its type, or refused (before its customer is looked up or made)
        let mut copy = None;
        let event = match fit_event(ir, event, &mut copy) {
            Ok(e) => e,
            Err(reason) => return Outcome::rejected(event, reason),
        };
        let decimals = ir.decimals;
        let id = &event.customer;
        // one hash lookup for the whole event (until a tier change)
        let entry = match self.customers.entry(id.clone()) {
            hash_map::Entry::Occupied(o) => o.into_mut(),
            hash_map::Entry::Vacant(v) => match new_entry(program, &self.names, &self.blank, id) {
                Ok(e) => v.insert(e),
                Err(e) => return Outcome::rejected(event, e.to_string()),
            },
        };
        // Checks that refuse the event leave everything unchanged.
        if entry.state.processed.contains(&event.id) {
            let mut o = Outcome::empty(event);
            o.status = Some(Status::Duplicate);
            return o;
        }
        if let Some(last) = entry.state.last_event_at {
            if event.time < last {
                return Outcome::rejected(
                    event,
                    format!(
                        "late event: {} is before this customer's last event at {}",
                        event.time.to_rfc3339(),
                        last.to_rfc3339()
                    ),
                );
            }
        }
        let ev_name: &str = &event.type_name;
        let field = |name: &str| {
            ir.events[event.ty as usize]
                .field(name)
                .and_then(|s| event.fields.get(s))
        };
        if ev_name == "redemption" {
            let need = match field("points") {
                Some(Value::Num(p)) => *p,
                _ => Decimal::ZERO,
            };
            if need <= Decimal::ZERO {
                return Outcome::rejected(
                    event,
                    "a redemption must spend a positive number of points".into(),
                );
            }
            let avail = ledger::available_at(&entry.state, event.time);
            if avail < need {
                return Outcome::rejected(
                    event,
                    format!("insufficient points: {avail} available, {need} needed"),
                );
            }
        }

        let mut ledger_entries = std::mem::take(&mut self.ledger);
        // before the review in `advance_customer`, so a downgrade at review
        // also runs the `tier_change` rules
        let tier_before = entry.state.tier.clone();
        let st = &mut entry.state;
        advance_customer(
            ir,
            st,
            &mut entry.review,
            id,
            event.time,
            &mut ledger_entries,
        );
        // history includes the current event
        record_history(ir, &self.names, st, event);
        if ev_name == "redemption" {
            let need = match field("points") {
                Some(Value::Num(p)) => *p,
                _ => Decimal::ZERO,
            };
            let reward = match field("reward") {
                Some(Value::Text(r)) => Arc::from(&**r),
                _ => Arc::from(""),
            };
            ledger::redeem(st, need);
            ledger_entries.push(LedgerEntry::Redeemed {
                customer: id.clone(),
                points: need,
                reward,
            });
        }
        if ev_name == "refund" {
            if let (Some(Value::Text(orig)), Some(Value::Num(amount))) =
                (field("original"), field("amount"))
            {
                refund(
                    ir,
                    st,
                    &mut self.budgets,
                    event,
                    orig,
                    *amount,
                    &mut ledger_entries,
                );
            }
        }
        refresh_view(program, entry);
        let mut out = eval::run_with(
            c,
            event,
            &entry.view,
            explain,
            Some(StateCtx {
                customer: &entry.state,
                budgets: &self.budgets,
            }),
            &mut self.buf,
        );
        let profile_before = entry.state.profile.len();
        let mut notes = Vec::new();
        commit(
            ir,
            &mut entry.state,
            &mut self.budgets,
            &mut self.gross,
            event,
            &out,
            &self.buf.fired,
            &mut self.earned,
            transfers,
            &mut ledger_entries,
            &mut notes,
        );
        out.errors.append(&mut notes);
        qualify_tier(ir, &mut entry.state, id, event, &mut ledger_entries);
        if entry.state.profile.len() != profile_before
            || out
                .effects
                .iter()
                .any(|e| matches!(e, Effect::SetAttribute { .. }))
        {
            // `set customer.x` effects: later events must see them
            match view_of(program, &entry.state) {
                Ok(v) => {
                    entry.view = v;
                    entry.stale = false;
                }
                Err(_) => entry.stale = true,
            }
        }
        refresh_view(program, entry);
        // the evaluator reads neither, so they can be set before the
        // `tier_change` rules run
        entry.state.processed.insert(event.id.clone());
        entry.state.last_event_at = Some(event.time);
        // A tier change runs the `tier_change` rules (one level deep).
        if entry.state.tier != tier_before {
            let tier_after = entry.state.tier.clone();
            let base = format!("{}#tier", event.id);
            if let Some(o2) = self.tier_change_rules(
                id,
                &tier_before,
                &tier_after,
                event.time,
                &base,
                explain,
                transfers,
            ) {
                out.effects.extend(o2.effects);
                out.errors.extend(o2.errors);
                ledger_entries.extend(o2.ledger);
                if let (Some(a), Some(b)) = (out.explanation.as_mut(), o2.explanation) {
                    a.extend(b);
                }
                let mut total = out.points + o2.points;
                total.rescale(decimals);
                out.points = total;
            }
        }
        self.clock = Some(self.clock.map_or(event.time, |c| c.max(event.time)));
        out.status = Some(Status::Applied);
        out.ledger = ledger_entries;
        out
    }
}

/// The names every customer's state holds (event types, their tracked
/// fields, point kinds, rules), made once per engine so that all states
/// share them.
#[derive(Clone)]
struct Names {
    /// Per event type: its name and tracked fields.
    events: Vec<(Arc<str>, FieldNames)>,
}

/// The tracked fields of an event type.
type FieldNames = Arc<[Arc<str>]>;

impl Names {
    fn of(ir: &ProgramIr) -> Names {
        let events = ir
            .events
            .iter()
            .enumerate()
            .map(|(ti, e)| {
                let fields: Arc<[Arc<str>]> = ir
                    .tracked
                    .iter()
                    .filter(|(t, _)| *t as usize == ti)
                    .map(|(_, s)| Arc::from(e.fields[*s as usize].name.as_str()))
                    .collect();
                (Arc::from(e.name.as_str()), fields)
            })
            .collect();
        Names { events }
    }
}

/// The history of an event type the customer has had none of.
fn blank_history(name: &Arc<str>, fields: &FieldNames) -> EventHistory {
    EventHistory {
        event: name.clone(),
        total: 0,
        totals: vec![Decimal::ZERO; fields.len()],
        fields: fields.clone(),
        last_at: None,
        prev_at: None,
        days: Vec::new(),
        streak_days: 0,
        streak_day: None,
        streak_weeks: 0,
        streak_week: None,
    }
}

/// Drop the histories after the last event type the customer has had: a
/// state holds `history` up to that type only (most customers have only
/// the first types, purchases above all), and a missing history reads as
/// a blank one. Replayed and restored states are trimmed alike, so they
/// compare equal.
fn trim_history(h: &mut Vec<EventHistory>) {
    let blank = |h: &EventHistory| {
        h.total == 0
            && h.days.is_empty()
            && h.last_at.is_none()
            && h.prev_at.is_none()
            && h.streak_days == 0
            && h.streak_day.is_none()
            && h.streak_weeks == 0
            && h.streak_week.is_none()
            && h.totals.iter().all(Decimal::is_zero)
    };
    trim_tail(h, blank);
}

/// The counters of a rule that has not fired for the customer.
fn blank_counters(r: &crate::ir::RuleIr) -> RuleCounters {
    RuleCounters {
        rule: r.name.clone(),
        fired: 0,
        last_fired: None,
        limits: vec![PeriodCounter::default(); r.limits.len()],
    }
}

/// Drop the counters after the last rule that has fired for the customer
/// (as `trim_history` does for histories): a missing entry reads as a rule
/// that never fired, and a program of many rules costs a customer only
/// the counters up to the last rule it has had.
fn trim_counters(c: &mut Vec<RuleCounters>) {
    let blank = |c: &RuleCounters| {
        c.fired == 0
            && c.last_fired.is_none()
            && c.limits.iter().all(|l| *l == PeriodCounter::default())
    };
    trim_tail(c, blank);
}

/// Drop the entries at the end of `v` that are `blank`, and the room they
/// held.
fn trim_tail<T>(v: &mut Vec<T>, blank: impl Fn(&T) -> bool) {
    let len = v.len();
    while v.last().is_some_and(&blank) {
        v.pop();
    }
    if v.len() < len {
        v.shrink_to_fit();
    }
}

/// Make `v` (entries for a prefix of `of`) reach entry `i`, the new entries
/// made by `blank` from their items of `of`, with no growth room.
fn extend_to<S, T>(v: &mut Vec<T>, i: usize, of: &[S], blank: impl Fn(&S) -> T) {
    let have = v.len();
    if have <= i && i < of.len() {
        v.reserve_exact(i + 1 - have);
        v.extend(of[have..=i].iter().map(blank));
    }
}

/// Rule `ri`'s counters, made (with those of the rules before it) if the
/// state does not hold them yet.
fn counters_mut<'s>(
    ir: &ProgramIr,
    st: &'s mut CustomerState,
    ri: usize,
) -> Option<&'s mut RuleCounters> {
    extend_to(&mut st.counters, ri, &ir.rules, blank_counters);
    st.counters.get_mut(ri)
}

fn new_state(ir: &ProgramIr, names: &Names, id: &str) -> CustomerState {
    align(
        ir,
        names,
        CustomerState {
            id: id.to_string(),
            ..CustomerState::default()
        },
    )
}

/// Make the state's per-event, per-kind, per-rule and per-cap vectors line
/// up with the program (matching by name; unknown entries are dropped).
fn align(ir: &ProgramIr, names: &Names, mut st: CustomerState) -> CustomerState {
    let mut old = std::mem::take(&mut st.history);
    st.history = names
        .events
        .iter()
        .map(|(name, fields)| {
            match old.iter().position(|h| h.event == *name) {
                Some(i) => {
                    let mut h = old.swap_remove(i);
                    // the shared names
                    h.event = name.clone();
                    if h.fields != *fields {
                        // realign sums by field name
                        let pick = |sums: &[Decimal], names: &[Arc<str>]| -> Vec<Decimal> {
                            fields
                                .iter()
                                .map(|f| {
                                    names
                                        .iter()
                                        .position(|n| n == f)
                                        .and_then(|p| sums.get(p).copied())
                                        .unwrap_or_default()
                                })
                                .collect()
                        };
                        h.totals = pick(&h.totals, &h.fields);
                        for b in &mut h.days {
                            b.sums = pick(&b.sums, &h.fields);
                        }
                    }
                    h.fields = fields.clone();
                    h
                }
                None => blank_history(name, fields),
            }
        })
        .collect();
    trim_history(&mut st.history);
    let mut old_points = std::mem::take(&mut st.points_history);
    st.points_history = ir
        .kinds
        .iter()
        .map(|k| match old_points.iter().position(|h| *h.kind == **k) {
            Some(i) => PointsHistory {
                kind: k.clone(),
                ..old_points.swap_remove(i)
            },
            None => PointsHistory {
                kind: k.clone(),
                total: Decimal::ZERO,
                days: Vec::new(),
            },
        })
        .collect();
    let mut old_counters = std::mem::take(&mut st.counters);
    st.counters = ir
        .rules
        .iter()
        .map(|r| {
            let mut c = match old_counters.iter().position(|c| *c.rule == *r.name) {
                Some(i) => RuleCounters {
                    rule: r.name.clone(),
                    ..old_counters.swap_remove(i)
                },
                None => blank_counters(r),
            };
            c.limits.resize(r.limits.len(), PeriodCounter::default());
            c
        })
        .collect();
    trim_counters(&mut st.counters);
    st.caps.resize(ir.caps.len(), PeriodCounter::default());
    let mut kinds: Vec<(Arc<str>, Decimal)> = ir
        .kinds
        .iter()
        .skip(1)
        .map(|k| (k.clone(), Decimal::ZERO))
        .collect();
    for (k, v) in std::mem::take(&mut st.kinds) {
        if let Some(slot) = kinds.iter_mut().find(|(n, _)| *n == k) {
            slot.1 = v;
        }
    }
    st.kinds = kinds;
    // read states hold their vectors' growth room (a lot and a record per
    // earning event)
    st.lots.shrink_to_fit();
    st.awards.shrink_to_fit();
    old.clear();
    ledger::recompute_due(&mut st);
    st
}

/// A new customer's entry: a copy of `blank` with the id set (building it
/// from the program was a large share of a replay's early events).
fn new_entry(
    program: &Program,
    names: &Names,
    blank: &Option<Entry>,
    id: &Arc<str>,
) -> Result<Entry, Error> {
    match blank {
        Some(b) => {
            let mut e = b.clone();
            e.state.id = id.to_string();
            e.view.id = id.clone();
            if let Some(f) = e.view.fields.first_mut() {
                *f = Value::Text(id.clone());
            }
            Ok(e)
        }
        None => {
            let state = new_state(&program.inner.ir, names, id);
            let view = view_of(program, &state)?;
            Ok(Entry::new(state, view))
        }
    }
}

/// The customer as the rules see it.
fn view_of(program: &Program, st: &CustomerState) -> Result<Customer, Error> {
    let mut m = st.profile.clone();
    m.insert("id".into(), st.id.clone().into());
    if let Some(t) = &st.tier {
        m.insert("tier".into(), t.to_string().into());
    }
    m.insert("tags".into(), st.tags.clone().into());
    m.insert("points".into(), st.balances.available.to_string().into());
    m.insert(
        "pending_points".into(),
        st.balances.pending.to_string().into(),
    );
    program.customer_from_value(&serde_json::Value::Object(m))
}

/// Keep the rules' view in step with the state (balances cheaply; the rest
/// when it changed).
fn refresh_view(program: &Program, e: &mut Entry) {
    let ir = &program.inner.ir;
    let tier_now = e
        .state
        .tier
        .as_ref()
        .and_then(|t| ir.tiers.iter().position(|x| **x == **t));
    let tier_view = match e.view.fields.get(CU_TIER) {
        Some(Value::Tier(t)) => Some(*t as usize),
        _ => None,
    };
    let tags_same = match e.view.fields.get(2) {
        Some(Value::List(l)) => {
            l.len() == e.state.tags.len()
                && l.iter()
                    .zip(&e.state.tags)
                    .all(|(a, b)| matches!(a, Value::Text(t) if **t == **b))
        }
        _ => false,
    };
    if tier_now != tier_view || !tags_same {
        // Only the tier changed, to a tier the rebuild would find (as the
        // customer decoder does, ignoring case): set just that field.
        let tier_only = tags_same
            && !e.stale
            && e.view.fields.len() > CU_TIER
            && match (tier_now, &e.state.tier) {
                (Some(i), Some(name)) => {
                    ir.tiers.iter().position(|t| t.eq_ignore_ascii_case(name)) == Some(i)
                }
                _ => false,
            };
        match tier_now {
            Some(i) if tier_only => e.view.fields[CU_TIER] = Value::Tier(i as u16),
            _ => match view_of(program, &e.state) {
                Ok(v) => {
                    e.view = v;
                    e.stale = false;
                }
                Err(_) => e.stale = true,
            },
        }
    }
    if e.view.fields.len() > 4 {
        // in place: assigning a whole `Value` runs the old one's drop
        for (i, d) in [
            (3, e.state.balances.available),
            (4, e.state.balances.pending),
        ] {
            match &mut e.view.fields[i] {
                Value::Num(x) => *x = d,
                v => *v = Value::Num(d),
            }
        }
    }
}

fn advance_customer(
    ir: &ProgramIr,
    st: &mut CustomerState,
    review: &mut ReviewDue,
    id: &Arc<str>,
    now: DateTime<Utc>,
    out: &mut Vec<LedgerEntry>,
) {
    ledger::advance(st, now, id, out, ir.warning.map(|(n, u)| (n, u, ir.tz)));
    // tier review
    let Some(tiering) = &ir.tiering else { return };
    let Some((n, unit, drop_one)) = tiering.review else {
        return;
    };
    for _ in 0..1000 {
        let (Some(cur), Some(since)) = (st.tier.clone(), st.tier_since) else {
            return;
        };
        let due = match *review {
            Some((s, due)) if s == since => due,
            _ => {
                let due = history::add_period(since, ir.tz, n, unit);
                *review = Some((since, due));
                due
            }
        };
        let Some(due) = due else {
            return;
        };
        if due > now {
            return;
        }
        let cur_i = ir.tiers.iter().position(|t| **t == *cur);
        let q = qualified(ir, st, due);
        let new = match (cur_i, q) {
            (Some(c), q) if q.is_none_or(|q| q < c) => {
                if drop_one {
                    if c == 0 {
                        None
                    } else {
                        Some(q.map_or(c - 1, |q| q.max(c - 1)))
                    }
                } else {
                    q
                }
            }
            (c, _) => c,
        };
        let new_name = new.map(|i| ir.tiers[i].clone());
        if new_name != st.tier {
            out.push(LedgerEntry::Tier {
                customer: id.clone(),
                from: st.tier.clone(),
                to: new_name.clone(),
                reason: Arc::from("review"),
            });
            st.tier = new_name;
        }
        st.tier_since = if st.tier.is_some() { Some(due) } else { None };
    }
}

/// The highest tier the customer qualifies for at `at`.
fn qualified(ir: &ProgramIr, st: &CustomerState, at: DateTime<Utc>) -> Option<usize> {
    let tiering = ir.tiering.as_ref()?;
    let today = at.with_timezone(&ir.tz).date_naive();
    let metric = match tiering.metric {
        TierMetricIr::Spend => {
            let sum_of = |name: &str| {
                let ty = ir.events.iter().position(|e| e.name == name)?;
                let slot = ir.events[ty].field("amount")?;
                let pos = ir
                    .tracked
                    .iter()
                    .filter(|(t, _)| *t as usize == ty)
                    .position(|(_, s)| *s as usize == slot)?;
                Some(history::sum(
                    st.history.get(ty)?,
                    pos,
                    today,
                    tiering.window,
                ))
            };
            sum_of("purchase").unwrap_or_default() - sum_of("refund").unwrap_or_default()
        }
        TierMetricIr::Visits => {
            let ty = ir.events.iter().position(|e| e.name == "purchase")?;
            // no history of the type: none of its events
            Decimal::from(
                st.history
                    .get(ty)
                    .map_or(0, |h| history::count(h, today, tiering.window)),
            )
        }
        TierMetricIr::Points(k) => {
            history::points(st.points_history.get(k as usize)?, today, tiering.window)
        }
    };
    tiering
        .thresholds
        .iter()
        .rev()
        .find(|(_, min)| metric >= *min)
        .map(|(t, _)| *t as usize)
}

fn qualify_tier(
    ir: &ProgramIr,
    st: &mut CustomerState,
    id: &Arc<str>,
    event: &Event,
    out: &mut Vec<LedgerEntry>,
) {
    let Some(t) = &ir.tiering else {
        return;
    };
    // spend and visits only grow with purchases
    if matches!(t.metric, TierMetricIr::Spend | TierMetricIr::Visits)
        && &*event.type_name != "purchase"
    {
        return;
    }
    let Some(q) = qualified(ir, st, event.time) else {
        return;
    };
    let cur = st
        .tier
        .as_ref()
        .and_then(|t| ir.tiers.iter().position(|x| **x == **t));
    if cur.is_none_or(|c| q > c) {
        out.push(LedgerEntry::Tier {
            customer: id.clone(),
            from: st.tier.clone(),
            to: Some(ir.tiers[q].clone()),
            reason: Arc::from("qualified"),
        });
        st.tier = Some(ir.tiers[q].clone());
        st.tier_since = Some(event.time);
    }
}

fn record_history(ir: &ProgramIr, names: &Names, st: &mut CustomerState, event: &Event) {
    let ty = event.ty as usize;
    // the histories up to this type (see `trim_history`)
    extend_to(&mut st.history, ty, &names.events, |(name, fields)| {
        blank_history(name, fields)
    });
    let value = |s: u16| match event.fields.get(s as usize) {
        Some(Value::Num(d)) => *d,
        _ => Decimal::ZERO,
    };
    // on the stack for up to 8 tracked fields per event type
    let mut buf = [Decimal::ZERO; 8];
    let mut n = 0;
    let mut spill: Vec<Decimal> = Vec::new();
    for (_, s) in ir.tracked.iter().filter(|(t, _)| *t as usize == ty) {
        if n < buf.len() {
            buf[n] = value(*s);
        } else {
            if spill.is_empty() {
                spill.extend_from_slice(&buf);
            }
            spill.push(value(*s));
        }
        n += 1;
    }
    let values = if spill.is_empty() {
        &buf[..n]
    } else {
        &spill[..]
    };
    if let Some(h) = st.history.get_mut(ty) {
        history::record(
            h,
            event.time,
            event.local.date,
            values,
            ir.retention_days.get(ty).copied().unwrap_or(0),
        );
    }
}

/// When lots earned by the event being committed become available and
/// expire (time-zone arithmetic, so computed once per event).
#[derive(Default)]
struct LotTimes {
    pending: Option<Option<DateTime<Utc>>>,
    expiry: Option<(crate::ast::ExpirySpec, Option<DateTime<Utc>>)>,
}

/// Add points of kind `k` (earned, or negative: deducted) to a customer.
#[allow(clippy::too_many_arguments)]
fn credit(
    ir: &ProgramIr,
    st: &mut CustomerState,
    event: &Event,
    rule: &Arc<str>,
    rule_expiry: Option<crate::ast::ExpirySpec>,
    k: usize,
    points: Decimal,
    times: &mut LotTimes,
) -> Option<u64> {
    let today = event.local.date;
    if let Some(h) = st.points_history.get_mut(k) {
        history::record_points(
            h,
            today,
            points,
            ir.points_retention_days.get(k).copied().unwrap_or(0),
        );
    }
    if k != 0 {
        if let Some(slot) = st.kinds.get_mut(k - 1) {
            slot.1 += points;
        }
        return None;
    }
    if points.is_sign_negative() {
        ledger::reverse(st, -points, &[]);
        return None;
    }
    let spec = rule_expiry.unwrap_or(ir.expiry);
    // lots of one event share their times: compute them once per event
    let pending_until = *times.pending.get_or_insert_with(|| {
        ir.pending
            .and_then(|(n, u)| history::add_period(event.time, ir.tz, n, u))
    });
    let expires_at = match times.expiry {
        Some((s, t)) if s == spec => t,
        _ => {
            let t = history::expiry_of(event.time, ir.tz, spec);
            times.expiry = Some((spec, t));
            t
        }
    };
    // Points of this event with the same times as its newest lot join
    // that lot (see `ledger::earn_into_last`): one lot per event in the
    // common case, instead of one per rule that awarded.
    if let Some(last) = st.lots.last() {
        if last.id + 1 == st.next_lot
            && Arc::ptr_eq(&last.event, &event.id)
            && last.pending_until == pending_until.filter(|p| *p > event.time)
            && last.expires_at == expires_at
            && !last.warned
        {
            let id = last.id;
            ledger::earn_into_last(st, points, event.time);
            return Some(id);
        }
    }
    let lot = Lot {
        id: 0,
        points,
        remaining: points,
        earned_at: event.time,
        pending_until,
        expires_at,
        event: event.id.clone(),
        rule: rule.clone(),
        warned: false,
    };
    ledger::earn(st, lot, event.time);
    Some(st.next_lot - 1)
}

/// The rule named `name`, looked for among the rules that fired first
/// (rule names are unique; effects share the rule's name).
fn rule_index(ir: &ProgramIr, fired: &[u32], name: &Arc<str>) -> Option<usize> {
    fired
        .iter()
        .map(|&i| i as usize)
        .find(|&i| ir.rules.get(i).is_some_and(|r| Arc::ptr_eq(&r.name, name)))
        .or_else(|| ir.rules.iter().position(|r| Arc::ptr_eq(&r.name, name)))
        .or_else(|| ir.rules.iter().position(|r| r.name == *name))
}

/// The index of a point kind (0, the spendable kind, if unknown).
fn kind_index(ir: &ProgramIr, kind: &Arc<str>) -> usize {
    ir.kinds
        .iter()
        .position(|x| Arc::ptr_eq(x, kind))
        .or_else(|| ir.kinds.iter().position(|x| **x == **kind))
        .unwrap_or(0)
}

/// Apply a rule evaluation's effects to the customer's state.
#[allow(clippy::too_many_arguments)]
fn commit(
    ir: &ProgramIr,
    st: &mut CustomerState,
    budgets: &mut [BudgetUse],
    gross: &mut [(Decimal, u64)],
    event: &Event,
    out: &Outcome,
    fired: &[u32],
    earned: &mut Earned,
    transfers: &mut Vec<Transfer>,
    ledger_out: &mut Vec<LedgerEntry>,
    notes: &mut Vec<crate::outcome::RuleError>,
) {
    let today = event.local.date;
    let own = |c: &Arc<str>| Arc::ptr_eq(c, &event.customer) || *c == event.customer;
    let mut times = LotTimes::default();
    earned.lots.clear();
    earned.by_rule.clear();
    earned.kinds.clear();
    let mut record_points = Decimal::ZERO;
    for e in &out.effects {
        match e {
            Effect::Award {
                rule,
                customer,
                kind,
                points,
                ..
            }
            | Effect::Multiply {
                rule,
                customer,
                kind,
                points,
                ..
            } => {
                let Some(ri) = rule_index(ir, fired, rule) else {
                    continue;
                };
                let k = kind_index(ir, kind);
                if !own(customer) {
                    transfers.push(Transfer {
                        to: customer.clone(),
                        effect: e.clone(),
                        rule: ri as u32,
                    });
                    if k == 0 {
                        budgets[ri].points += *points;
                        gross[ri].0 += (*points).max(Decimal::ZERO);
                    }
                    continue;
                }
                if points.is_zero() {
                    continue;
                }
                let r = &ir.rules[ri];
                if let Some(lot) = credit(ir, st, event, &r.name, r.expiry, k, *points, &mut times)
                {
                    if earned.lots.last() != Some(&lot) {
                        earned.lots.push(lot);
                    }
                    add_dec(&mut record_points, *points);
                    match earned.by_rule.iter_mut().find(|(n, _)| *n == ri) {
                        Some((_, p)) => add_dec(p, *points),
                        None => earned.by_rule.push((ri, *points)),
                    }
                } else if k != 0 && points.is_sign_positive() {
                    match earned.kinds.iter_mut().find(|(n, _)| **n == **kind) {
                        Some((_, p)) => *p += *points,
                        None => earned.kinds.push((kind.clone(), *points)),
                    }
                }
                if k == 0 {
                    add_dec(&mut budgets[ri].points, *points);
                    add_dec(&mut gross[ri].0, (*points).max(Decimal::ZERO));
                }
                if points.is_sign_positive() {
                    // rule point caps
                    if let Some(c) = counters_mut(ir, st, ri) {
                        for (li, l) in r.limits.iter().enumerate() {
                            if let LimitIr::Points {
                                kind: lk, period, ..
                            } = l
                            {
                                if *lk as usize == k {
                                    if let Some(pc) = c.limits.get_mut(li) {
                                        roll(pc, *period, today);
                                        add_dec(&mut pc.points, *points);
                                    }
                                }
                            }
                        }
                    }
                    // program caps
                    for (ci, cap) in ir.caps.iter().enumerate() {
                        if cap.kind as usize == k {
                            if let Some(pc) = st.caps.get_mut(ci) {
                                roll(pc, Some(cap.period), today);
                                add_dec(&mut pc.points, *points);
                            }
                        }
                    }
                }
            }
            Effect::Reward {
                rule,
                customer,
                reward,
            } => {
                if own(customer) {
                    st.rewards.push(RewardGrant {
                        reward: reward.clone(),
                        at: event.time,
                        event: event.id.clone(),
                    });
                } else if let Some(ri) = rule_index(ir, fired, rule) {
                    transfers.push(Transfer {
                        to: customer.clone(),
                        effect: e.clone(),
                        rule: ri as u32,
                    });
                }
            }
            Effect::Tier { to, .. } => {
                if st.tier.as_deref() != Some(&**to) {
                    st.tier = Some(to.clone());
                    st.tier_since = Some(event.time);
                }
            }
            Effect::Tag { tag, .. } => {
                if !st.tags.iter().any(|t| **t == **tag) {
                    st.tags.push(tag.to_string());
                }
            }
            Effect::SetAttribute {
                attribute, value, ..
            } => {
                st.profile.insert(attribute.to_string(), value.clone());
            }
            Effect::ExtendExpiry { days, months, .. } => {
                for l in &mut st.lots {
                    if let Some(exp) = l.expires_at {
                        l.expires_at = match (days, months) {
                            (_, Some(m)) => history::add_period(exp, ir.tz, *m, PeriodUnit::Month),
                            (Some(d), _) => history::add_period(exp, ir.tz, *d, PeriodUnit::Day),
                            _ => Some(exp),
                        }
                        .or(Some(exp));
                    }
                }
            }
            Effect::Notify { .. } => {}
            Effect::Redeem {
                rule,
                customer,
                points,
                reward,
            } => {
                if !own(customer) {
                    continue;
                }
                if st.balances.available >= *points {
                    ledger::redeem(st, *points);
                    let reward = reward.clone().unwrap_or_else(|| Arc::from(""));
                    if !reward.is_empty() {
                        st.rewards.push(RewardGrant {
                            reward: reward.clone(),
                            at: event.time,
                            event: event.id.clone(),
                        });
                    }
                    ledger_out.push(LedgerEntry::Redeemed {
                        customer: customer.clone(),
                        points: *points,
                        reward,
                    });
                } else {
                    notes.push(crate::outcome::RuleError {
                        rule: rule.clone(),
                        message: format!(
                            "redeem skipped: {} available, {} needed",
                            st.balances.available, points
                        ),
                    });
                }
            }
        }
    }
    if out
        .effects
        .iter()
        .any(|e| matches!(e, Effect::ExtendExpiry { .. }))
    {
        ledger::recompute_due(st);
    }
    for &ri in fired {
        let ri = ri as usize;
        let r = &ir.rules[ri];
        if let Some(c) = counters_mut(ir, st, ri) {
            c.fired += 1;
            c.last_fired = Some(event.time);
            for (li, l) in r.limits.iter().enumerate() {
                if let LimitIr::Times { period, .. } = l {
                    if let Some(pc) = c.limits.get_mut(li) {
                        roll(pc, *period, today);
                        pc.count += 1;
                    }
                }
            }
        }
        if let Some(b) = budgets.get_mut(ri) {
            b.awards += 1;
        }
        if let Some(g) = gross.get_mut(ri) {
            g.1 += 1;
        }
    }
    if earned.lots.is_empty() || &*event.type_name != "purchase" {
        return;
    }
    let amount = ir.events[event.ty as usize]
        .primary
        .and_then(|p| match event.fields.get(p) {
            Some(Value::Num(d)) => Some(*d),
            _ => None,
        })
        .unwrap_or_default();
    if amount > Decimal::ZERO {
        if st.awards.capacity() == 0 {
            // room for one (as for lots: many customers earn once)
            st.awards.reserve_exact(1);
        }
        st.awards.push(EventAwards {
            event: event.id.clone(),
            amount,
            refunded: Decimal::ZERO,
            points: record_points,
            reversed: Decimal::ZERO,
            lots: SmallVec::from_slice(&earned.lots),
            by_rule: earned
                .by_rule
                .iter()
                .map(|&(ri, p)| (ir.rules[ri].name.clone(), p))
                .collect(),
            kinds: earned.kinds.clone(),
        });
    }
}

fn roll(pc: &mut PeriodCounter, period: Option<PeriodUnit>, today: chrono::NaiveDate) {
    if let Some(p) = period {
        let start = history::period_start(today, p);
        if pc.period != Some(start) {
            *pc = PeriodCounter {
                period: Some(start),
                count: 0,
                points: Decimal::ZERO,
            };
        }
    }
}

/// Reverse the points a refunded purchase earned, in proportion to the
/// amount refunded (cumulative over partial refunds; the last refund
/// reverses exactly what is left). Budgets the awards used are refilled.
fn refund(
    ir: &ProgramIr,
    st: &mut CustomerState,
    budgets: &mut [BudgetUse],
    event: &Event,
    original: &str,
    amount: Decimal,
    out: &mut Vec<LedgerEntry>,
) {
    let Some(i) = st.awards.iter().position(|a| *a.event == *original) else {
        return;
    };
    let rec = &st.awards[i];
    if rec.amount <= Decimal::ZERO || rec.refunded >= rec.amount {
        return;
    }
    let refunded = (rec.refunded + amount.max(Decimal::ZERO)).min(rec.amount);
    let target = if refunded == rec.amount {
        rec.points
    } else {
        round_points(ir, rec.points * refunded / rec.amount)
    };
    let x = (target - rec.reversed).max(Decimal::ZERO);
    let lots = rec.lots.clone();
    let share = |p: Decimal| {
        if rec.points.is_zero() {
            Decimal::ZERO
        } else {
            round_points(ir, p * x / rec.points)
        }
    };
    let refills: Vec<(Arc<str>, Decimal)> = rec
        .by_rule
        .iter()
        .map(|(r, p)| (r.clone(), share(*p)))
        .collect();
    let kind_ratio = if rec.amount.is_zero() {
        Decimal::ZERO
    } else {
        amount.min(rec.amount) / rec.amount
    };
    let kinds: Vec<(Arc<str>, Decimal)> = rec
        .kinds
        .iter()
        .map(|(k, p)| (k.clone(), round_points(ir, *p * kind_ratio)))
        .collect();
    let rec = &mut st.awards[i];
    rec.refunded = refunded;
    rec.reversed += x;
    if !x.is_zero() {
        ledger::reverse(st, x, &lots);
        if let Some(h) = st.points_history.get_mut(0) {
            history::record_points(
                h,
                event.local.date,
                -x,
                ir.points_retention_days.first().copied().unwrap_or(0),
            );
        }
        out.push(LedgerEntry::Reversed {
            customer: event.customer.clone(),
            points: x,
            original: Arc::from(original),
        });
    }
    for (r, p) in refills {
        if let Some(b) = budgets.iter_mut().find(|b| *b.rule == *r) {
            b.points -= p;
        }
    }
    for (k, p) in kinds {
        if let Some(ki) = ir.kinds.iter().position(|x| **x == *k) {
            if let Some(slot) = st.kinds.get_mut(ki.wrapping_sub(1)) {
                slot.1 -= p;
            }
            if let Some(h) = st.points_history.get_mut(ki) {
                history::record_points(
                    h,
                    event.local.date,
                    -p,
                    ir.points_retention_days.get(ki).copied().unwrap_or(0),
                );
            }
        }
    }
}

/// Whether every award or reward a rule sends to another customer goes to
/// one named by a `referred_by` or `referee` field (the event's, or the
/// customer's `referred_by`): the links by which the grouped replays keep
/// customers together. Points sent anywhere else (`to purchase.coupon`,
/// say) may reach a customer of another group, so those replays must keep
/// input order.
fn transfers_follow_links(ir: &ProgramIr) -> bool {
    use crate::ir::{EffectIr, NodeKind};
    ir.rules.iter().all(|r| {
        r.effects.iter().all(|e| {
            let to = match e {
                EffectIr::Award { to, .. } | EffectIr::Grant { to, .. } => to,
                _ => return true,
            };
            let Some(to) = to else { return true };
            match to.kind {
                NodeKind::CustomerField(slot) => ir
                    .customer
                    .get(slot as usize)
                    .is_some_and(|f| f.name == "referred_by"),
                NodeKind::EventField(slot) => ir
                    .events
                    .get(r.event as usize)
                    .and_then(|ev| ev.fields.get(slot as usize))
                    .is_some_and(|f| matches!(f.name.as_str(), "referred_by" | "referee")),
                _ => false,
            }
        })
    })
}

/// The rules with a campaign budget or an `in total` limit: what all
/// customers share, in event order.
fn shared_limits(ir: &ProgramIr) -> impl Iterator<Item = &crate::ir::RuleIr> + '_ {
    ir.rules.iter().filter(|r| {
        r.budget.is_some()
            || r.limits
                .iter()
                .any(|l| matches!(l, LimitIr::Times { total: true, .. }))
    })
}

/// Customers as they were before a partition first changed them (None:
/// new), each once.
type Saved = Vec<(Arc<str>, Option<Box<Entry>>)>;

/// Keep customer `id` as it is now (None: not there); the caller keeps
/// each customer once.
fn save_entry(saved: &mut Saved, customers: &Ids<Entry>, id: &Arc<str>) {
    saved.push((id.clone(), customers.get(id).cloned().map(Box::new)));
}

/// Customers linked by referrals, as sets (by index: one hash lookup per
/// id, no allocation for ids already known).
#[derive(Default)]
struct UnionFind {
    index: Ids<u32>,
    names: Vec<Arc<str>>,
    parent: Vec<u32>,
}

impl UnionFind {
    fn add_arc(&mut self, id: &Arc<str>) -> u32 {
        match self.index.get(&**id) {
            Some(&i) => i,
            None => self.push(id.clone()),
        }
    }
    fn add(&mut self, id: &str) -> u32 {
        match self.index.get(id) {
            Some(&i) => i,
            None => self.push(Arc::from(id)),
        }
    }
    fn push(&mut self, id: Arc<str>) -> u32 {
        let i = self.names.len() as u32;
        self.index.insert(id.clone(), i);
        self.names.push(id);
        self.parent.push(i);
        i
    }
    fn find(&mut self, mut i: u32) -> u32 {
        while self.parent[i as usize] != i {
            // path halving
            let g = self.parent[self.parent[i as usize] as usize];
            self.parent[i as usize] = g;
            i = g;
        }
        i
    }
    fn union(&mut self, a: u32, b: u32) {
        let ra = self.find(a);
        let rb = self.find(b);
        if ra != rb {
            // the smaller id is the root: deterministic
            if self.names[ra as usize] < self.names[rb as usize] {
                self.parent[rb as usize] = ra;
            } else {
                self.parent[ra as usize] = rb;
            }
        }
    }
}

/// The positions of a partition's events, grouped by the referral group of
/// their customer (`root_of`, by customer index), in input order within a
/// group: a stable counting sort.
fn group_order(whos: &[u32], root_of: &[u32], n_ids: usize) -> Vec<u32> {
    // (every customer index has a root; 0 would keep the count consistent)
    let root = |i: u32| root_of.get(i as usize).map_or(0, |&r| r as usize);
    let mut start = vec![0u32; n_ids + 1];
    for &i in whos {
        if let Some(c) = start.get_mut(root(i) + 1) {
            *c += 1;
        }
    }
    for r in 1..start.len() {
        start[r] += start[r - 1];
    }
    let mut order = vec![0u32; whos.len()];
    for (k, &i) in whos.iter().enumerate() {
        if let Some(at) = start.get_mut(root(i)) {
            if let Some(slot) = order.get_mut(*at as usize) {
                *slot = k as u32;
            }
            *at += 1;
        }
    }
    order
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "rule \"A\" on purchase if count of purchases in last 30 days = 2 \
                       award 1 point per $1\n  at most 3 times per customer per month";

    fn names_shared(a: &CustomerState, b: &CustomerState) -> bool {
        a.history.len() == b.history.len()
            && a.history
                .iter()
                .zip(&b.history)
                .all(|(x, y)| Arc::ptr_eq(&x.event, &y.event) && Arc::ptr_eq(&x.fields, &y.fields))
            && a.counters
                .iter()
                .zip(&b.counters)
                .all(|(x, y)| Arc::ptr_eq(&x.rule, &y.rule))
            && a.points_history
                .iter()
                .zip(&b.points_history)
                .all(|(x, y)| Arc::ptr_eq(&x.kind, &y.kind))
    }

    /// New customers, and customers restored from a snapshot, share the
    /// names in their states; the snapshot's JSON is unchanged by it.
    #[test]
    fn states_share_names() {
        let p = Program::compile(SRC).unwrap();
        let mut e = Engine::new(p.clone());
        for (i, c) in ["c1", "c2", "c1"].iter().enumerate() {
            let json = format!(
                r#"{{"type":"purchase","id":"o{i}","customer":"{c}","time":"2025-01-0{}T10:00:00Z","amount":"10"}}"#,
                i + 1
            );
            e.process_json(&json).unwrap();
        }
        let (a, b) = (e.customer("c1").unwrap(), e.customer("c2").unwrap());
        assert!(!a.history.is_empty() && !a.counters.is_empty());
        assert!(names_shared(a, b));
        let json = serde_json::to_string(&e.snapshot()).unwrap();
        let r = Engine::from_snapshot(p, serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(serde_json::to_string(&r.snapshot()).unwrap(), json);
        let (a, b) = (r.customer("c1").unwrap(), r.customer("c2").unwrap());
        assert!(names_shared(a, b));
        assert!(a
            .history
            .iter()
            .any(|h| &*h.event == "purchase" && h.total == 2));
    }

    /// A state holds histories up to the last event type its customer had;
    /// a later type's rules read the missing history as none; a state saved
    /// with a history for every type (as before) restores to the same
    /// trimmed state.
    #[test]
    fn histories_end_at_the_last_type_seen() {
        let src = "rule \"Base\" on purchase award 1 point per $1\n\
                   rule \"First login\" on login if first login award 5 points\n\
                   tiers by visits in last 12 months\n  silver from 2";
        let p = Program::compile(src).unwrap();
        let ty = |name: &str| {
            p.inner
                .ir
                .events
                .iter()
                .position(|e| e.name == name)
                .unwrap()
        };
        assert!(ty("purchase") < ty("login"));
        let mut e = Engine::new(p.clone());
        let ev = |id: &str, ty: &str, day: u32| {
            format!(
                r#"{{"type":"{ty}","id":"{id}","customer":"c1","time":"2025-01-{day:02}T10:00:00Z","amount":"10"}}"#
            )
            .replace(r#","amount":"10""#, if ty == "purchase" { r#","amount":"10""# } else { "" })
        };
        e.process_json(&ev("o1", "purchase", 1)).unwrap();
        assert_eq!(e.customer("c1").unwrap().history.len(), ty("purchase") + 1);
        let o = e.process_json(&ev("o2", "purchase", 2)).unwrap();
        assert_eq!(
            e.customer("c1").unwrap().tier.as_deref(),
            Some("silver"),
            "{o:?}"
        );
        // a type past the end: its history is made as its first event comes
        let o = e.process_json(&ev("l1", "login", 3)).unwrap();
        assert_eq!(o.points, Decimal::from(5));
        let o = e.process_json(&ev("l2", "login", 4)).unwrap();
        assert_eq!(o.points, Decimal::ZERO);
        let st = e.customer("c1").unwrap();
        assert_eq!(st.history.len(), ty("login") + 1);
        // the shape saved before: a history for every type
        let mut full = serde_json::to_value(e.snapshot()).unwrap();
        let mut fresh = Engine::new(p.clone());
        fresh
            .set_customer(&serde_json::json!({"id": "c2"}))
            .unwrap();
        let names: Vec<String> = p.inner.ir.events.iter().map(|e| e.name.clone()).collect();
        let hist = full["customers"][0]["history"].as_array_mut().unwrap();
        let blank = |name: &str| {
            serde_json::json!({"event": name, "total": 0, "fields": [], "totals": [], "days": [],
                               "streak_days": 0, "streak_weeks": 0})
        };
        for n in &names[hist.len()..] {
            hist.push(blank(n));
        }
        assert_eq!(hist.len(), names.len());
        let r = Engine::from_snapshot(p, serde_json::from_value(full).unwrap()).unwrap();
        assert_eq!(r.customer("c1").unwrap(), e.customer("c1").unwrap());
        assert_eq!(
            serde_json::to_string(&r.snapshot()).unwrap(),
            serde_json::to_string(&e.snapshot()).unwrap()
        );
        // a customer with no events has no histories
        assert!(fresh.customer("c2").unwrap().history.is_empty());
    }

    /// A state holds rule counters up to the last rule that fired for its
    /// customer; a limit on a later rule counts from a new entry; a state
    /// saved with counters for every rule restores to the same state.
    #[test]
    fn counters_end_at_the_last_rule_fired() {
        let src = "rule \"Base\" on purchase award 1 point per $1\n\
                   rule \"Big\" on purchase if purchase.amount > $100 award 10 points\n  \
                   at most 2 times per customer per month\n\
                   rule \"Never\" on purchase if purchase.amount > $100000 award 1 point";
        let p = Program::compile(src).unwrap();
        let mut e = Engine::new(p.clone());
        let mut buy = |id: &str, day: u32, amount: u32| {
            e.process_json(&format!(
                r#"{{"type":"purchase","id":"{id}","customer":"c1","time":"2025-01-{day:02}T10:00:00Z","amount":"{amount}"}}"#
            ))
            .unwrap()
            .points
        };
        assert_eq!(buy("o1", 1, 10), Decimal::from(10));
        assert_eq!(buy("o2", 2, 200), Decimal::from(210));
        assert_eq!(buy("o3", 3, 200), Decimal::from(210));
        // the limit, counted in the entry made at o2
        assert_eq!(buy("o4", 4, 200), Decimal::from(200));
        let st = e.customer("c1").unwrap();
        let fired: Vec<(&str, u64)> = st.counters.iter().map(|c| (&*c.rule, c.fired)).collect();
        assert_eq!(fired, [("Base", 4), ("Big", 2)]);
        // the shape saved before: counters for every rule
        let mut full = serde_json::to_value(e.snapshot()).unwrap();
        full["customers"][0]["counters"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"rule": "Never", "fired": 0, "limits": []}));
        let r = Engine::from_snapshot(p, serde_json::from_value(full).unwrap()).unwrap();
        assert_eq!(r.customer("c1").unwrap(), e.customer("c1").unwrap());
        let mut fresh = Engine::new(r.program().clone());
        fresh
            .set_customer(&serde_json::json!({"id": "c2"}))
            .unwrap();
        assert!(fresh.customer("c2").unwrap().counters.is_empty());
    }

    /// Recycled outcome vectors start empty: outcomes of `replay_with`
    /// (which hands each outcome's vectors to the next event) equal those
    /// of `process` on an engine that keeps every outcome.
    #[test]
    fn recycled_vectors_start_empty() {
        let p = Program::compile(
            "points are pending for 1 day\nrule \"A\" on purchase award 1 point per $1",
        )
        .unwrap();
        let evs: Vec<Event> = (0..6)
            .map(|i| {
                p.event_from_json(&format!(
                    r#"{{"type":"purchase","id":"o{i}","customer":"c{}","time":"2025-01-{:02}T10:00:00Z","amount":"10"}}"#,
                    i % 2,
                    1 + 2 * i
                ))
                .unwrap()
            })
            .collect();
        let mut kept = Engine::new(p.clone());
        let want: Vec<String> = evs
            .iter()
            .map(|e| kept.process(e).to_json_string())
            .collect();
        assert!(want.iter().filter(|o| o.contains("released")).count() >= 4);
        let mut e = Engine::new(p);
        let mut got = Vec::new();
        e.replay_with(evs, |o| got.push(o.to_json_string()));
        assert_eq!(got, want);
    }

    /// Linked customers share a set whose root is the smallest id,
    /// whatever the order of the links.
    #[test]
    fn union_find_roots() {
        let mut uf = UnionFind::default();
        let ids: Vec<u32> = ["d", "b", "c", "a", "e"]
            .iter()
            .map(|s| uf.add(s))
            .collect();
        uf.union(ids[0], ids[1]); // d-b
        uf.union(ids[2], ids[0]); // c-d
        uf.union(ids[4], ids[4]); // e alone
        let root = |uf: &mut UnionFind, i: u32| {
            let r = uf.find(i);
            uf.names[r as usize].to_string()
        };
        for &i in &ids[..3] {
            assert_eq!(root(&mut uf, i), "b");
        }
        assert_eq!(root(&mut uf, ids[3]), "a");
        assert_eq!(root(&mut uf, ids[4]), "e");
        uf.union(ids[2], ids[3]);
        for &i in &ids[..4] {
            assert_eq!(root(&mut uf, i), "a");
        }
        assert_eq!(uf.add("c"), ids[2], "known ids keep their index");
    }
}
