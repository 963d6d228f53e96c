//! Syntax tree -> checked IR: names resolved to slots, types checked,
//! contradictions found. Every problem is reported; checking goes on after
//! an error so a program with three mistakes gets three diagnostics.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use rust_decimal::Decimal;

use crate::ast::*;
use crate::error::{did_you_mean, ErrorKind, Sink};
use crate::ir::*;
use crate::limits;
use crate::schema::*;

/// `s.to_ascii_lowercase()`, allocating only when `s` has capitals (names
/// are looked up far more often than they are written with capitals).
fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

pub(crate) fn check(prog: &Program, sink: &mut Sink<'_>) -> Option<ProgramIr> {
    let mut c = Checker {
        sink,
        ir: ProgramIr {
            name: None,
            currency: Currency::from_code("USD")?,
            tz: crate::tz::Tz::UTC,
            decimals: 0,
            rounding: RoundingMode::Down,
            events: Cow::Borrowed(builtin_events()),
            customer: Cow::Borrowed(customer_fields()),
            item: Cow::Borrowed(item_fields()),
            tiers: Vec::new(),
            rewards: Vec::new(),
            kinds: vec![Arc::from("points")],
            groups: Vec::new(),
            rules: Vec::new(),
            expiry: ExpirySpec::Never,
            pending: None,
            warning: None,
            caps: Vec::new(),
            tiering: None,
            tracked: Vec::new(),
            retention_days: Vec::new(),
            points_retention_days: Vec::new(),
            event_keys: Vec::new(),
            customer_key: 0,
        },
        locals: Vec::new(),
        event: None,
        seen_settings: HashMap::new(),
        group_index: HashMap::new(),
        group_mode: Vec::new(),
    };
    // Declarations first, so rules may come before or after them.
    for item in &prog.items {
        c.declaration(item);
    }
    c.ir.retention_days = vec![0; c.ir.events.len()];
    c.ir.points_retention_days = vec![0; c.ir.kinds.len()];
    for item in &prog.items {
        c.state_setting(item);
    }
    let rules: Vec<&Rule> = prog
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Rule(r) => Some(r),
            _ => None,
        })
        .collect();
    if rules.len() > limits::MAX_RULES {
        c.sink.error(
            ErrorKind::Limit,
            rules[limits::MAX_RULES].span,
            format!("a program may have at most {} rules", limits::MAX_RULES),
            Some("split the program".into()),
        );
        return None;
    }
    let mut names: HashMap<RuleKey<'_>, Span> = HashMap::with_capacity(rules.len());
    c.ir.rules.reserve_exact(rules.len());
    let mut pending_multiply: Vec<(usize, usize, Name)> = Vec::new();
    for r in rules {
        let name = match (&r.name, &r.trigger) {
            (Some(n), _) => Cow::Borrowed(n.text.as_str()),
            _ => Cow::Owned(oneliner_name(c.sink.source, r.span)),
        };
        let name_span = r.name.as_ref().map_or(r.span, |n| n.span);
        let key = match &r.name {
            Some(n) => RuleKey::new(n.text.as_str()),
            None => RuleKey::Lower(name.to_lowercase()),
        };
        match names.entry(key) {
            Entry::Occupied(prev) => {
                let (line, _) = crate::error::line_col(c.sink.source, prev.get().start as usize);
                c.sink.error(
                    ErrorKind::Duplicate,
                    name_span,
                    format!("there is already a rule named \"{name}\""),
                    Some(format!(
                        "the first one is on line {line}; give each rule its own name"
                    )),
                );
            }
            Entry::Vacant(v) => {
                v.insert(name_span);
            }
        }
        if let Some(ir) = c.rule(r, &name, &mut pending_multiply) {
            if let Some((g, best)) = ir.group {
                let g = g as usize;
                if c.group_mode.len() <= g {
                    c.group_mode.resize(g + 1, None);
                }
                c.group_mode[g].get_or_insert(best);
            }
            c.ir.rules.push(ir);
        }
    }
    // `multiply points of rule "x"` refers to rules by name (ignoring ASCII
    // case; the first rule of that name).
    let mut by_name: HashMap<String, usize> = HashMap::new();
    if !pending_multiply.is_empty() {
        for (i, r) in c.ir.rules.iter().enumerate() {
            by_name.entry(lower(&r.name).into_owned()).or_insert(i);
        }
    }
    for (rule_idx, effect_idx, target) in pending_multiply {
        let found = by_name.get(&*lower(&target.text)).copied();
        match found {
            Some(t) => {
                if let Some(EffectIr::Multiply { rule, .. }) =
                    c.ir.rules
                        .get_mut(rule_idx)
                        .and_then(|r| r.effects.get_mut(effect_idx))
                {
                    *rule = Some(t as u32);
                }
            }
            None => {
                let hint = did_you_mean(&target.text, c.ir.rules.iter().map(|r| &*r.name));
                c.sink.error(
                    ErrorKind::UnknownName,
                    target.span,
                    format!("there is no rule named \"{}\"", target.text),
                    hint,
                );
            }
        }
    }
    if c.sink.has_errors() {
        None
    } else {
        Some(c.ir)
    }
}

/// A rule name as the duplicate check compares names: by their
/// `str::to_lowercase`. An ASCII name's is its ASCII lower case, which is
/// compared and hashed byte by byte instead of being made.
enum RuleKey<'a> {
    Ascii(&'a str),
    Lower(String),
}

impl<'a> RuleKey<'a> {
    fn new(name: &'a str) -> RuleKey<'a> {
        if name.is_ascii() {
            RuleKey::Ascii(name)
        } else {
            RuleKey::Lower(name.to_lowercase())
        }
    }

    /// The bytes, and whether their ASCII letters are still to be lowered.
    fn parts(&self) -> (&[u8], bool) {
        match self {
            RuleKey::Ascii(s) => (s.as_bytes(), true),
            RuleKey::Lower(s) => (s.as_bytes(), false),
        }
    }
}

fn lowered(b: u8, lower: bool) -> u8 {
    if lower {
        b.to_ascii_lowercase()
    } else {
        b
    }
}

impl PartialEq for RuleKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        let ((a, la), (b, lb)) = (self.parts(), other.parts());
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(&x, &y)| lowered(x, la) == lowered(y, lb))
    }
}

impl Eq for RuleKey<'_> {}

impl std::hash::Hash for RuleKey<'_> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        // The lower-case bytes in pieces: the same hash as in one piece.
        let (s, lower) = self.parts();
        let mut buf = [0u8; 64];
        for piece in s.chunks(buf.len()) {
            let out = &mut buf[..piece.len()];
            for (o, &c) in out.iter_mut().zip(piece) {
                *o = lowered(c, lower);
            }
            h.write(out);
        }
        h.write_u8(0xff);
    }
}

/// A one-liner is named by its own text, whitespace collapsed.
fn oneliner_name(source: &str, span: Span) -> String {
    source[span.start as usize..span.end as usize]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

struct Checker<'a, 's> {
    sink: &'a mut Sink<'s>,
    ir: ProgramIr,
    /// Loop variables in scope: (name, element type).
    locals: Vec<(String, Ty)>,
    /// The current rule's event.
    event: Option<u16>,
    seen_settings: HashMap<&'static str, Span>,
    /// `ir.groups` by name in ASCII lower case (names compare ignoring
    /// ASCII case), so that a rule finds its group without a scan.
    group_index: HashMap<String, u16>,
    /// For each group, whether its first checked rule made it a best group.
    group_mode: Vec<Option<bool>>,
}

/// A checked expression plus whether it is a bare number literal (which
/// may stand for money: `purchase > 100`).
struct Checked {
    node: Node,
    num_literal: bool,
}

fn err_node(span: Span) -> Node {
    Node::new(NodeKind::Const(Value::Null), Ty::Error, span)
}

impl Checker<'_, '_> {
    fn once(&mut self, key: &'static str, span: Span) -> bool {
        if let Some(prev) = self.seen_settings.get(key) {
            let (line, _) = crate::error::line_col(self.sink.source, prev.start as usize);
            self.sink.error(
                ErrorKind::Duplicate,
                span,
                format!("`{key}` is set twice"),
                Some(format!("it is already set on line {line}")),
            );
            false
        } else {
            self.seen_settings.insert(key, span);
            true
        }
    }

    fn declaration(&mut self, item: &Item) {
        match item {
            Item::Header(n) => {
                if self.once("program", n.span) {
                    self.ir.name = Some(n.text.to_string());
                }
            }
            Item::Currency(n) => {
                if !self.once("currency", n.span) {
                    return;
                }
                match Currency::from_code(&n.text) {
                    Some(c) => self.ir.currency = c,
                    None => self.sink.error(
                        ErrorKind::InvalidSetting,
                        n.span,
                        format!("`{}` is not a currency code", n.text),
                        Some("use a three-letter ISO 4217 code such as USD, EUR or GBP".into()),
                    ),
                }
            }
            Item::Timezone(n) => {
                if !self.once("timezone", n.span) {
                    return;
                }
                match n.text.parse::<crate::tz::Tz>() {
                    Ok(tz) => self.ir.tz = tz,
                    Err(_) => {
                        let hint = did_you_mean(&n.text, crate::tz::Tz::names())
                            .or_else(|| Some("use an IANA time zone name such as \"America/New_York\" or \"UTC\"".into()));
                        self.sink.error(
                            ErrorKind::InvalidSetting,
                            n.span,
                            format!("unknown time zone \"{}\"", n.text),
                            hint,
                        )
                    }
                }
            }
            Item::Rounding {
                decimals,
                mode,
                span,
            } => {
                if self.once("points rounding", *span) {
                    self.ir.decimals = *decimals;
                    self.ir.rounding = *mode;
                }
            }
            Item::CustomerDecl(fields) => {
                for fd in fields {
                    if let Some(mut def) = self.field_decl(fd) {
                        // a customer record may predate the attribute: all are optional
                        def.optional = true;
                        if self
                            .ir
                            .customer
                            .iter()
                            .any(|f| f.name.eq_ignore_ascii_case(&def.name))
                        {
                            self.sink.error(
                                ErrorKind::Duplicate,
                                fd.name.span,
                                format!("the customer already has a field `{}`", def.name),
                                None,
                            );
                        } else {
                            self.ir.customer.to_mut().push(def);
                        }
                    }
                }
            }
            Item::EventDecl { name, fields } => {
                let lname = lower(&name.text);
                let idx = match self.ir.events.iter().position(|e| e.name == lname) {
                    Some(i) => i,
                    None => {
                        if Calendar::from_name(&lname).is_some()
                            || lname == "customer"
                            || lname == "event"
                            || lname == "item"
                        {
                            self.sink.error(
                                ErrorKind::Duplicate,
                                name.span,
                                format!(
                                    "`{}` is a built-in name and cannot be an event",
                                    name.text
                                ),
                                None,
                            );
                            return;
                        }
                        self.ir.events.to_mut().push(EventSchema {
                            name: lname.into_owned(),
                            fields: vec![
                                FieldDef {
                                    name: "id".into(),
                                    ty: Ty::Text,
                                    optional: false,
                                    default: None,
                                },
                                FieldDef {
                                    name: "customer".into(),
                                    ty: Ty::Text,
                                    optional: false,
                                    default: None,
                                },
                                FieldDef {
                                    name: "time".into(),
                                    ty: Ty::DateTime,
                                    optional: false,
                                    default: None,
                                },
                            ],
                            primary: None,
                        });
                        self.ir.events.len() - 1
                    }
                };
                for fd in fields {
                    if let Some(def) = self.field_decl(fd) {
                        if self.ir.events[idx].field(&def.name).is_some() {
                            self.sink.error(
                                ErrorKind::Duplicate,
                                fd.name.span,
                                format!("event `{}` already has a field `{}`", name.text, def.name),
                                None,
                            );
                        } else {
                            self.ir.events.to_mut()[idx].fields.push(def);
                        }
                    }
                }
            }
            Item::Tiers(names) => {
                if let Some(first) = names.first() {
                    if !self.once("tiers", first.span) {
                        return;
                    }
                }
                for n in names {
                    if self
                        .ir
                        .tiers
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(&n.text))
                    {
                        self.sink.error(
                            ErrorKind::Duplicate,
                            n.span,
                            format!("tier `{}` is listed twice", n.text),
                            None,
                        );
                    } else {
                        self.ir.tiers.push(Arc::from(n.text.to_ascii_lowercase()));
                    }
                }
            }
            Item::Rewards(names) => {
                for n in names {
                    if self.ir.rewards.iter().any(|t| **t == *n.text) {
                        self.sink.error(
                            ErrorKind::Duplicate,
                            n.span,
                            format!("reward \"{}\" is declared twice", n.text),
                            None,
                        );
                    } else {
                        self.ir.rewards.push(Arc::from(n.text.as_str()));
                    }
                }
            }
            Item::PointKinds(names) => {
                for n in names {
                    let l = lower(&n.text);
                    if self.ir.kinds.iter().any(|k| **k == *l) {
                        self.sink.error(
                            ErrorKind::Duplicate,
                            n.span,
                            format!("point kind `{}` is declared twice", n.text),
                            None,
                        );
                    } else {
                        self.ir.kinds.push(Arc::from(l));
                    }
                }
            }
            Item::Rule(_)
            | Item::Expiry(..)
            | Item::Pending(..)
            | Item::ExpiryWarning(..)
            | Item::ProgramCap { .. }
            | Item::TierQualification { .. } => {}
        }
    }

    /// Settings that refer to events and kinds (after all declarations).
    fn state_setting(&mut self, item: &Item) {
        match item {
            Item::Expiry(e, span) if self.once("points expire", *span) => {
                self.ir.expiry = *e;
            }
            Item::ExpiryWarning(n, u, span) if self.once("warn before points expire", *span) => {
                self.ir.warning = Some((*n, *u));
            }
            Item::Pending(n, u, span) if self.once("points are pending", *span) => {
                self.ir.pending = Some((*n, *u));
            }
            Item::ProgramCap {
                points,
                kind,
                period,
                span,
            } => {
                let kind = self.kind(kind);
                let text: Arc<str> = Arc::from(self.text(*span));
                self.ir.caps.push(ProgramCapIr {
                    kind,
                    points: *points,
                    period: *period,
                    text,
                });
            }
            Item::TierQualification {
                metric,
                window,
                thresholds,
                review,
                span,
            } => {
                if !self.once("tiers", *span) {
                    return;
                }
                let metric = match metric {
                    TierMetric::Spend => {
                        let purchase = self
                            .ir
                            .events
                            .iter()
                            .position(|e| e.name == "purchase")
                            .unwrap_or(0) as u16;
                        let refund = self
                            .ir
                            .events
                            .iter()
                            .position(|e| e.name == "refund")
                            .unwrap_or(0) as u16;
                        let slot = self.ir.events[purchase as usize]
                            .field("amount")
                            .unwrap_or(0) as u16;
                        let rslot =
                            self.ir.events[refund as usize].field("amount").unwrap_or(0) as u16;
                        self.track(purchase, slot, *window);
                        self.track(refund, rslot, *window);
                        TierMetricIr::Spend
                    }
                    TierMetric::Visits => {
                        let purchase = self
                            .ir
                            .events
                            .iter()
                            .position(|e| e.name == "purchase")
                            .unwrap_or(0);
                        self.retain(purchase, *window);
                        TierMetricIr::Visits
                    }
                    TierMetric::Points(k) => {
                        let k = self.kind(k);
                        let d = window_days(*window);
                        let r = &mut self.ir.points_retention_days[k as usize];
                        *r = (*r).max(d);
                        TierMetricIr::Points(k)
                    }
                };
                let mut out: Vec<(u16, Decimal)> = Vec::new();
                for (name, min, money) in thresholds {
                    if *money != (metric == TierMetricIr::Spend) {
                        self.sink.error(
                            ErrorKind::TypeMismatch,
                            name.span,
                            if *money {
                                "this tier is qualified by a count, not money"
                            } else {
                                "tiers by spend need amounts like `$500`"
                            },
                            None,
                        );
                    }
                    if let Some((_, prev)) = out.last() {
                        if min <= prev {
                            self.sink.error(
                                ErrorKind::InvalidRule,
                                name.span,
                                "list tiers from lowest to highest threshold",
                                None,
                            );
                        }
                    }
                    let l = lower(&name.text);
                    if self.ir.tiers.iter().any(|t| **t == *l) {
                        self.sink.error(
                            ErrorKind::Duplicate,
                            name.span,
                            format!("tier `{}` is listed twice", name.text),
                            Some("tiers with thresholds replace the `tiers a, b` list".into()),
                        );
                        continue;
                    }
                    self.ir.tiers.push(Arc::from(l));
                    out.push(((self.ir.tiers.len() - 1) as u16, *min));
                }
                self.ir.tiering = Some(TieringIr {
                    metric,
                    window: *window,
                    thresholds: out,
                    review: *review,
                });
            }
            _ => {}
        }
    }

    /// Keep history for this event type long enough for `window`.
    fn retain(&mut self, ty: usize, window: Window) {
        let d = window_days(window);
        if let Some(r) = self.ir.retention_days.get_mut(ty) {
            *r = (*r).max(d);
        }
    }

    fn track(&mut self, ty: u16, slot: u16, window: Window) -> u16 {
        self.retain(ty as usize, window);
        match self
            .ir
            .tracked
            .iter()
            .position(|&(t, f)| t == ty && f == slot)
        {
            Some(i) => i as u16,
            None => {
                self.ir.tracked.push((ty, slot));
                (self.ir.tracked.len() - 1) as u16
            }
        }
    }

    fn field_decl(&mut self, fd: &FieldDecl) -> Option<FieldDef> {
        let Some(ty) = Ty::from_decl(&fd.ty.text) else {
            let hint = did_you_mean(&fd.ty.text, Ty::DECL_NAMES.iter().copied())
                .or_else(|| Some(format!("types are {}", Ty::DECL_NAMES.join(", "))));
            self.sink.error(
                ErrorKind::UnknownType,
                fd.ty.span,
                format!("unknown type `{}`", fd.ty.text),
                hint,
            );
            return None;
        };
        let ty = if fd.list {
            match Elem::of(ty) {
                Some(e) => Ty::List(e),
                None => {
                    self.sink.error(
                        ErrorKind::UnknownType,
                        fd.ty.span,
                        format!("lists of {} are not supported", ty.name()),
                        None,
                    );
                    return None;
                }
            }
        } else {
            ty
        };
        Some(FieldDef {
            name: fd.name.text.to_ascii_lowercase(),
            ty,
            optional: fd.optional || fd.list,
            default: if fd.list {
                Some(Value::List(Vec::new()))
            } else {
                None
            },
        })
    }

    fn find_event(&mut self, n: &Name) -> Option<u16> {
        let l = lower(&n.text);
        let l = match &*l {
            "membership_renewal" | "renew" => "renewal",
            "order" => "purchase",
            "return" => "refund",
            l => l,
        };
        if let Some(i) = self.ir.events.iter().position(|e| e.name == l) {
            return Some(i as u16);
        }
        let hint = did_you_mean(&n.text, self.ir.events.iter().map(|e| e.name.as_str()))
            .or_else(|| Some("declare it with `event <name> has <field>: <type>`".into()));
        self.sink.error(
            ErrorKind::UnknownEvent,
            n.span,
            format!("unknown event `{}`", n.text),
            hint,
        );
        None
    }

    fn rule(
        &mut self,
        r: &Rule,
        name: &str,
        pending: &mut Vec<(usize, usize, Name)>,
    ) -> Option<RuleIr> {
        let rule_idx = self.ir.rules.len();
        self.event = None;
        self.locals.clear();
        // The rule's conditions, and-ed from the left as they come.
        let mut conds: Option<Node> = None;
        let mut on: Option<Span> = None;
        // The event: from `on`, a one-liner head, or inferred from the fields used.
        for c in &r.clauses {
            if let Clause::On(n) = c {
                if on.is_some() {
                    self.sink.error(
                        ErrorKind::InvalidRule,
                        n.span,
                        "a rule reacts to one event; `on` is given twice",
                        Some("write a separate rule for each event".into()),
                    );
                    continue;
                }
                on = Some(n.span);
                self.event = Some(self.find_event(n)?);
            }
        }
        match r.trigger.as_deref() {
            Some(Trigger::Head {
                event,
                word,
                cmp,
                rest,
            }) => {
                let ev = self.find_event(event)?;
                self.event = Some(ev);
                let schema = self.ir.events[ev as usize].clone();
                let subject = match word {
                    Some(w) => match schema.field(&w.text) {
                        Some(slot) => {
                            let fdef = &schema.fields[slot];
                            Some(Node::new(
                                NodeKind::EventField(slot as u16),
                                fdef.ty,
                                w.span,
                            ))
                        }
                        None => {
                            let hint = did_you_mean(
                                &w.text,
                                schema.fields.iter().map(|f| f.name.as_str()),
                            );
                            self.sink.error(
                                ErrorKind::UnknownField,
                                w.span,
                                format!("unknown field `{}` on `{}`", w.text, schema.name),
                                hint,
                            );
                            return None;
                        }
                    },
                    None => None,
                };
                match (subject, cmp) {
                    (Some(s), None) => {
                        if s.ty != Ty::Bool {
                            self.sink.error(
                                ErrorKind::TypeMismatch,
                                s.span,
                                format!(
                                    "`{}` is {}, not yes/no; compare it with something",
                                    &self.sink.source[s.span.start as usize..s.span.end as usize],
                                    s.ty.name()
                                ),
                                None,
                            );
                        }
                        and_into(&mut conds, s);
                    }
                    (subject, Some((op, rhs))) => {
                        let subject = match subject {
                            Some(s) => s,
                            None => {
                                match schema.primary {
                                    Some(p) => Node::new(
                                        NodeKind::EventField(p as u16),
                                        schema.fields[p].ty,
                                        event.span,
                                    ),
                                    None => {
                                        self.sink.error(ErrorKind::TypeMismatch, event.span, format!("event `{}` has no amount to compare", schema.name), Some(format!("compare one of its fields, e.g. `{}.<field> > ...`", schema.name)));
                                        return None;
                                    }
                                }
                            }
                        };
                        let lhs = Checked {
                            node: subject,
                            num_literal: false,
                        };
                        let rhs = self.expr_expect(rhs, Some(lhs.node.ty));
                        let span = lhs.node.span.to(rhs.node.span);
                        and_into(&mut conds, self.compare(*op, lhs, rhs, span));
                    }
                    (None, None) => {}
                }
                if let Some(rest) = rest {
                    let n = self.cond(rest);
                    and_into(&mut conds, n);
                }
            }
            Some(Trigger::Expr(e)) => {
                if self.event.is_none() {
                    self.event = self.infer_event(e);
                    if self.event.is_none() {
                        self.sink.error(ErrorKind::InvalidRule, e.span, "cannot tell which event this rule reacts to", Some("start with the event, as in `IF purchase > $100 THEN ...`, or write `rule \"name\" on <event> ...`".into()));
                        return None;
                    }
                }
                let n = self.cond(e);
                and_into(&mut conds, n);
            }
            None => {}
        }
        if self.event.is_none() {
            // full form without `on`: infer from the conditions
            for c in &r.clauses {
                if let Clause::If(e) = c {
                    if let Some(ev) = self.infer_event(e) {
                        self.event = Some(ev);
                        break;
                    }
                }
            }
            if self.event.is_none() {
                self.sink.error(
                    ErrorKind::InvalidRule,
                    r.name.as_ref().map_or(r.span, |n| n.span),
                    "this rule does not say which event it reacts to",
                    Some("add `on purchase` (or another event) after the rule name".into()),
                );
                return None;
            }
        }
        let event = self.event?;
        let mut active = (None, None);
        let mut priority = 0i64;
        let mut group = None;
        let mut stop = false;
        let mut effects = Vec::new();
        // `active`, `group`, `priority` already written in this rule.
        let mut seen = [false; 3];
        let mut is_multiplier = false;
        let mut has_award = false;
        let mut limits = Vec::new();
        let mut budget = None;
        let mut expiry = None;
        for c in &r.clauses {
            match c {
                Clause::On(_) => {}
                Clause::If(e) => {
                    let n = self.cond(e);
                    and_into(&mut conds, n);
                }
                Clause::Active { from, to, span } => {
                    if std::mem::replace(&mut seen[0], true) {
                        self.sink.error(
                            ErrorKind::InvalidRule,
                            *span,
                            "`active` is given twice",
                            None,
                        );
                    }
                    if let (Some(f), Some(t)) = (from, to) {
                        if f > t {
                            self.sink.error(
                                ErrorKind::Contradiction,
                                *span,
                                format!("the rule is never active: {f} is after {t}"),
                                Some("swap the dates".into()),
                            );
                        }
                    }
                    active = (*from, *to);
                }
                Clause::Group { best, name } => {
                    if std::mem::replace(&mut seen[1], true) {
                        self.sink.error(
                            ErrorKind::InvalidRule,
                            name.span,
                            "a rule can be in one group only",
                            None,
                        );
                    }
                    let key = lower(&name.text);
                    let idx = match self.group_index.get(&*key) {
                        Some(&i) => i as usize,
                        None => {
                            self.ir.groups.push(Arc::from(name.text.as_str()));
                            let i = self.ir.groups.len() - 1;
                            self.group_index.insert(key.into_owned(), i as u16);
                            i
                        }
                    };
                    // All members of a group must agree on its mode (the
                    // first checked member's).
                    if let Some(&Some(mode)) = self.group_mode.get(idx) {
                        if mode != *best {
                            self.sink.error(
                                ErrorKind::InvalidRule,
                                name.span,
                                format!(
                                    "group \"{}\" is used both as an exclusive and as a best group",
                                    name.text
                                ),
                                Some("use one kind of group per name".into()),
                            );
                        }
                    }
                    group = Some((idx as u16, *best));
                }
                Clause::Priority(p, span) => {
                    if std::mem::replace(&mut seen[2], true) {
                        self.sink.error(
                            ErrorKind::InvalidRule,
                            *span,
                            "`priority` is given twice",
                            None,
                        );
                    }
                    priority = *p;
                }
                Clause::Stop(_) => stop = true,
                Clause::Limit(l) => match l {
                    Limit::Times {
                        n,
                        total,
                        period,
                        every,
                        span,
                    } => {
                        if *n == 0 {
                            self.sink.error(
                                ErrorKind::Contradiction,
                                *span,
                                "a rule limited to 0 times never fires",
                                None,
                            );
                        }
                        if *total && (period.is_some() || every.is_some()) {
                            self.sink.error(ErrorKind::InvalidRule, *span, "a limit `in total` counts across all customers for the whole campaign; it has no period", Some("use `budget N awards` or drop `in total`".into()));
                        }
                        let every = every.map(|(k, u)| {
                            i64::from(k)
                                * match u {
                                    SpanUnit::Hour => 3600,
                                    SpanUnit::Day => 86_400,
                                    SpanUnit::Week => 604_800,
                                }
                        });
                        limits.push(LimitIr::Times {
                            n: *n,
                            total: *total,
                            period: *period,
                            every,
                            text: Arc::from(self.text(*span)),
                        });
                    }
                    Limit::Points {
                        points,
                        kind,
                        period,
                        span,
                    } => {
                        let kind = self.kind(kind);
                        limits.push(LimitIr::Points {
                            points: *points,
                            kind,
                            period: *period,
                            text: Arc::from(self.text(*span)),
                        });
                    }
                },
                Clause::Budget {
                    amount,
                    awards,
                    span,
                } => {
                    if budget.replace((*amount, *awards)).is_some() {
                        self.sink.error(
                            ErrorKind::InvalidRule,
                            *span,
                            "`budget` is given twice",
                            None,
                        );
                    }
                }
                Clause::Expiry(e, span) => {
                    if expiry.replace(*e).is_some() {
                        self.sink.error(
                            ErrorKind::InvalidRule,
                            *span,
                            "`points expire` is given twice",
                            None,
                        );
                    }
                }
                Clause::Effect(eff) => {
                    if let EffectKind::Multiply {
                        rule: Some(target), ..
                    } = &eff.kind
                    {
                        pending.push((rule_idx, effects.len(), target.clone()));
                    }
                    if matches!(eff.kind, EffectKind::Multiply { .. }) {
                        is_multiplier = true;
                    } else if matches!(eff.kind, EffectKind::Award { .. }) {
                        has_award = true;
                    }
                    if let Some(e) = self.effect(eff) {
                        effects.push(e);
                    }
                }
            }
        }
        if effects.is_empty() && !self.sink.has_errors() {
            self.sink.error(
                ErrorKind::InvalidRule,
                r.name.as_ref().map_or(r.span, |n| n.span),
                "this rule has no effect",
                Some("add an effect such as `award 100 points`".into()),
            );
        }
        if is_multiplier && has_award {
            self.sink.error(
                ErrorKind::InvalidRule,
                r.name.as_ref().map_or(r.span, |n| n.span),
                "a rule cannot both award points and multiply them",
                Some("put the multiplier in a rule of its own".into()),
            );
        }
        self.contradictions(conds.as_ref());
        let cond = conds;
        Some(RuleIr {
            name: Arc::from(name),
            event,
            cond,
            active,
            priority,
            group,
            stop,
            effects,
            span: r.span,
            limits,
            budget,
            expiry,
            pred: None,
        })
    }

    /// The single event whose fields an expression uses, if any.
    fn infer_event(&mut self, e: &Expr) -> Option<u16> {
        let mut found: Option<u16> = None;
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            match &e.kind {
                ExprKind::Field(base, _) => {
                    if let ExprKind::Name(n) = &base.kind {
                        let l = lower(n);
                        if let Some(i) = self.ir.events.iter().position(|ev| ev.name == l) {
                            found.get_or_insert(i as u16);
                        }
                    }
                    stack.push(base);
                }
                ExprKind::Name(n) => {
                    let l = lower(n);
                    if let Some(i) = self.ir.events.iter().position(|ev| ev.name == l) {
                        found.get_or_insert(i as u16);
                    }
                }
                other => walk_children(other, &mut stack),
            }
        }
        found
    }

    fn cond(&mut self, e: &Expr) -> Node {
        let c = self.expr(e);
        if c.node.ty != Ty::Bool && c.node.ty != Ty::Error {
            self.sink.error(
                ErrorKind::TypeMismatch,
                e.span,
                format!(
                    "a condition must be yes or no, but this is {}",
                    c.node.ty.name()
                ),
                Some("compare it with something, e.g. `> 10` or `is \"gold\"`".into()),
            );
            return err_node(e.span);
        }
        c.node
    }

    fn expr(&mut self, e: &Expr) -> Checked {
        self.expr_expect(e, None)
    }

    fn text(&self, span: Span) -> &str {
        self.sink
            .source
            .get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }

    fn mismatch(&mut self, span: Span, msg: String, hint: Option<String>) -> Checked {
        self.sink.error(ErrorKind::TypeMismatch, span, msg, hint);
        Checked {
            node: err_node(span),
            num_literal: false,
        }
    }

    /// `expected` resolves bare words: a tier name where a tier is expected,
    /// a weekday where a weekday is expected.
    fn expr_expect(&mut self, e: &Expr, expected: Option<Ty>) -> Checked {
        let span = e.span;
        let k = |kind, ty| Checked {
            node: Node::new(kind, ty, span),
            num_literal: false,
        };
        match &e.kind {
            ExprKind::Number(v) => Checked {
                node: Node::new(NodeKind::Const(Value::Num(*v)), Ty::Number, span),
                num_literal: true,
            },
            ExprKind::Percent(v) => k(
                NodeKind::Const(Value::Num(*v / Decimal::ONE_HUNDRED)),
                Ty::Number,
            ),
            ExprKind::Money(v, sign) => {
                if self.ir.currency.sign != Some(*sign) {
                    self.sink.error(
                        ErrorKind::TypeMismatch,
                        span,
                        format!(
                            "`{sign}` amounts do not match the program's currency {}",
                            self.ir.currency.code()
                        ),
                        Some(match self.ir.currency.sign {
                            Some(s) => format!("write `{s}{v}`"),
                            None => "write the amount as a plain number".into(),
                        }),
                    );
                }
                k(NodeKind::Const(Value::Num(*v)), Ty::Money)
            }
            ExprKind::Str(s) => k(NodeKind::Const(Value::Text(s.as_str().into())), Ty::Text),
            ExprKind::Bool(b) => k(NodeKind::Const(Value::Bool(*b)), Ty::Bool),
            ExprKind::Date(d) => k(NodeKind::Const(Value::Date(*d)), Ty::Date),
            ExprKind::Time(t) => k(NodeKind::Const(Value::Time(*t)), Ty::Time),
            ExprKind::Name(n) => self.name(n, span, expected),
            ExprKind::Field(base, field) => self.field(base, field, span),
            ExprKind::List(items) => {
                let mut nodes = Vec::new();
                let mut elem: Option<Ty> = None;
                let mut lits = Vec::new();
                for it in items {
                    let c = self.expr_expect(it, expected.or(elem));
                    lits.push(c.num_literal);
                    nodes.push(c.node);
                    if elem.is_none() && !c.num_literal {
                        elem = Some(nodes.last().map_or(Ty::Error, |n| n.ty));
                    }
                }
                let elem_ty = elem.or(expected).unwrap_or(if nodes.is_empty() {
                    Ty::Text
                } else {
                    Ty::Number
                });
                let mut values = Vec::new();
                for (n, lit) in nodes.iter().zip(lits) {
                    let ok = n.ty == elem_ty || n.ty == Ty::Error || (lit && elem_ty == Ty::Money);
                    if !ok {
                        self.sink.error(
                            ErrorKind::TypeMismatch,
                            n.span,
                            format!("this list mixes {} and {}", elem_ty.name(), n.ty.name()),
                            None,
                        );
                    }
                    match &n.kind {
                        NodeKind::Const(v) => values.push(v.clone()),
                        _ => {
                            self.sink.error(
                                ErrorKind::InvalidRule,
                                n.span,
                                "list elements must be fixed values",
                                None,
                            );
                        }
                    }
                }
                match Elem::of(elem_ty) {
                    Some(el) => k(NodeKind::Const(Value::List(values)), Ty::List(el)),
                    None if elem_ty == Ty::Tier
                        || elem_ty == Ty::Weekday
                        || elem_ty == Ty::Bool
                        || elem_ty == Ty::Time =>
                    {
                        // lists of tiers/weekdays are only used with `in`
                        Checked {
                            node: Node::new(NodeKind::Const(Value::List(values)), elem_ty, span),
                            num_literal: false,
                        }
                    }
                    None => k(NodeKind::Const(Value::List(values)), Ty::Error),
                }
            }
            ExprKind::Neg(inner) => {
                let c = self.expr(inner);
                if !matches!(c.node.ty, Ty::Number | Ty::Money | Ty::Error) {
                    return self.mismatch(
                        span,
                        format!("cannot negate {}", c.node.ty.name()),
                        None,
                    );
                }
                let ty = c.node.ty;
                Checked {
                    node: Node::new(NodeKind::Neg(Box::new(c.node)), ty, span),
                    num_literal: c.num_literal,
                }
            }
            ExprKind::Not(inner) => {
                let n = self.cond(inner);
                k(NodeKind::Not(Box::new(n)), Ty::Bool)
            }
            ExprKind::And(ab) | ExprKind::Or(ab) => {
                let a = self.cond(&ab[0]);
                let b = self.cond(&ab[1]);
                let kind = if matches!(e.kind, ExprKind::And(..)) {
                    NodeKind::And(Box::new([a, b]))
                } else {
                    NodeKind::Or(Box::new([a, b]))
                };
                k(kind, Ty::Bool)
            }
            ExprKind::Arith(op, a, b) => {
                let a = self.expr(a);
                let b = self.expr(b);
                self.arith(*op, a, b, span)
            }
            ExprKind::Cmp(op, ab) => {
                let (a, b) = self.pair(&ab[0], &ab[1]);
                let node = self.compare(*op, a, b, span);
                Checked {
                    node,
                    num_literal: false,
                }
            }
            ExprKind::TextTest(op, neg, a, b) => {
                let a_c = self.expr(a);
                let b_c = self.expr_expect(b, Some(Ty::Text));
                let ok = match (a_c.node.ty, b_c.node.ty) {
                    (Ty::Error, _) | (_, Ty::Error) => true,
                    (Ty::Text, Ty::Text) => true,
                    (Ty::List(Elem::Text), Ty::Text) if *op == TextOp::Contains => true,
                    _ => false,
                };
                if !ok {
                    return self.mismatch(
                        span,
                        format!(
                            "`{}` needs text, but got {} and {}",
                            op.words(),
                            a_c.node.ty.name(),
                            b_c.node.ty.name()
                        ),
                        None,
                    );
                }
                if a_c.node.ty.is_list() {
                    // `tags contains "x"` is membership
                    return k(
                        NodeKind::ListContains(*neg, Box::new(a_c.node), Box::new(b_c.node)),
                        Ty::Bool,
                    );
                }
                k(
                    NodeKind::TextTest(*op, *neg, Box::new(a_c.node), Box::new(b_c.node)),
                    Ty::Bool,
                )
            }
            ExprKind::In(neg, a, b) => {
                let a_c = self.expr(a);
                let b_c = self.expr_expect(b, Some(a_c.node.ty));
                let ok = match (a_c.node.ty, b_c.node.ty) {
                    (Ty::Error, _) | (_, Ty::Error) => true,
                    (x, Ty::List(el)) => x == el.ty() || (a_c.num_literal && el == Elem::Money),
                    (x, y) => x == y && is_list_of_symbol(&b_c.node),
                };
                if !ok {
                    return self.mismatch(
                        span,
                        format!(
                            "cannot look for {} in {}",
                            a_c.node.ty.name(),
                            b_c.node.ty.name()
                        ),
                        Some("`in` needs a list of the same type, like `in [\"a\", \"b\"]`".into()),
                    );
                }
                k(
                    NodeKind::In(*neg, Box::new(a_c.node), Box::new(b_c.node)),
                    Ty::Bool,
                )
            }
            ExprKind::Between(neg, v, lo, hi) => {
                let v_c = self.expr(v);
                let lo_c = self.expr_expect(lo, Some(v_c.node.ty));
                let hi_c = self.expr_expect(hi, Some(v_c.node.ty));
                let ty = v_c.node.ty;
                for c in [&lo_c, &hi_c] {
                    if !self.comparable(ty, c, true) {
                        return self.mismatch(
                            c.node.span,
                            format!("cannot compare {} with {}", ty.name(), c.node.ty.name()),
                            None,
                        );
                    }
                }
                if let (NodeKind::Const(l), NodeKind::Const(h)) = (&lo_c.node.kind, &hi_c.node.kind)
                {
                    if crate::eval::cmp_values(l, h) == Some(std::cmp::Ordering::Greater) {
                        self.sink.error(
                            ErrorKind::Contradiction,
                            span,
                            "this range is empty: the first bound is above the second",
                            Some("write the smaller value first".into()),
                        );
                    }
                }
                k(
                    NodeKind::Between(
                        *neg,
                        Box::new(v_c.node),
                        Box::new(lo_c.node),
                        Box::new(hi_c.node),
                    ),
                    Ty::Bool,
                )
            }
            ExprKind::IsSet(neg, v) => {
                let v = self.expr(v);
                k(NodeKind::IsSet(*neg, Box::new(v.node)), Ty::Bool)
            }
            ExprKind::If(c, t, f) => {
                let c = self.cond(c);
                let t = self.expr(t);
                let f = self.expr(f);
                let (t, f, ty) = self.unify(t, f, span);
                k(NodeKind::If(Box::new(c), Box::new(t), Box::new(f)), ty)
            }
            ExprKind::Call(name, args) => self.call(name, args, span),
            ExprKind::History(h) => self.history(h, span),
            ExprKind::Of(f, arg) => {
                let a = self.expr(arg);
                let want_date = !matches!(f, OfFn::Hour);
                let ok = match a.node.ty {
                    Ty::Error => true,
                    Ty::Date => want_date,
                    Ty::DateTime => true,
                    Ty::Time => matches!(f, OfFn::Hour),
                    _ => false,
                };
                if !ok {
                    return self.mismatch(
                        arg.span,
                        format!("expected a date here, but this is {}", a.node.ty.name()),
                        None,
                    );
                }
                let ty = match f {
                    OfFn::Anniversary => Ty::Date,
                    OfFn::Weekday => Ty::Weekday,
                    _ => Ty::Number,
                };
                k(NodeKind::Of(*f, Box::new(a.node)), ty)
            }
            ExprKind::Quant(q, var, list, body) => {
                let Some((depth, list_node)) = self.bind(var, list) else {
                    return Checked {
                        node: err_node(span),
                        num_literal: false,
                    };
                };
                let body = self.cond(body);
                self.locals.pop();
                k(
                    NodeKind::Quant(*q, depth, Box::new(list_node), Box::new(body)),
                    Ty::Bool,
                )
            }
            ExprKind::Agg {
                agg,
                value,
                var,
                list,
                filter,
            } => {
                let Some((depth, list_node)) = self.bind(var, list) else {
                    return Checked {
                        node: err_node(span),
                        num_literal: false,
                    };
                };
                let filter = filter.as_ref().map(|f| self.cond(f));
                let value = value.as_ref().map(|v| self.expr(v));
                self.locals.pop();
                let ty = match (&value, agg) {
                    (None, _) => Ty::Number,
                    (Some(v), _) => {
                        let ok = match agg {
                            Agg::Sum => matches!(v.node.ty, Ty::Number | Ty::Money | Ty::Error),
                            _ => matches!(v.node.ty, Ty::Number | Ty::Money | Ty::Date | Ty::Error),
                        };
                        if !ok {
                            return self.mismatch(
                                v.node.span,
                                format!("cannot add up {}", v.node.ty.name()),
                                None,
                            );
                        }
                        v.node.ty
                    }
                };
                k(
                    NodeKind::Agg {
                        agg: *agg,
                        depth,
                        list: Box::new(list_node),
                        value: value.map(|v| Box::new(v.node)),
                        filter: filter.map(Box::new),
                    },
                    ty,
                )
            }
        }
    }

    /// Check a list and push its loop variable.
    fn bind(&mut self, var: &Name, list: &Expr) -> Option<(u8, Node)> {
        let l = self.expr(list);
        let elem = match l.node.ty {
            Ty::List(el) => el.ty(),
            Ty::Error => Ty::Error,
            other => {
                self.sink.error(
                    ErrorKind::TypeMismatch,
                    list.span,
                    format!("expected a list here, but this is {}", other.name()),
                    Some("for a basket write `purchase.items`".into()),
                );
                return None;
            }
        };
        if self.locals.len() >= 8 {
            self.sink.error(
                ErrorKind::Limit,
                var.span,
                "at most 8 nested loops over lists",
                None,
            );
            return None;
        }
        let depth = self.locals.len() as u8;
        self.locals.push((var.text.to_ascii_lowercase(), elem));
        Some((depth, l.node))
    }

    fn pair(&mut self, a: &Expr, b: &Expr) -> (Checked, Checked) {
        // Resolve a bare word on one side from the other side's type.
        if self.is_free_word(a) && !self.is_free_word(b) {
            let b = self.expr(b);
            let a = self.expr_expect(a, Some(b.node.ty));
            (a, b)
        } else {
            let a = self.expr(a);
            let b = self.expr_expect(b, Some(a.node.ty));
            (a, b)
        }
    }

    fn is_free_word(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Name(n) => {
                let l = lower(n);
                !self.locals.iter().any(|(v, _)| *v == l)
                    && Calendar::from_name(&l).is_none()
                    && !self.ir.events.iter().any(|ev| ev.name == l)
            }
            _ => false,
        }
    }

    fn comparable(&self, ty: Ty, other: &Checked, ordered: bool) -> bool {
        let o = other.node.ty;
        if ty == Ty::Error || o == Ty::Error {
            return true;
        }
        if ty == o {
            return !ordered || !matches!(ty, Ty::Bool | Ty::Text | Ty::List(_) | Ty::Item);
        }
        ty == Ty::Money && o == Ty::Number && other.num_literal
    }

    fn compare(&mut self, op: CmpOp, a: Checked, b: Checked, span: Span) -> Node {
        let ordered = !matches!(op, CmpOp::Eq | CmpOp::Ne);
        let (ta, tb) = (a.node.ty, b.node.ty);
        let ok = self.comparable(ta, &b, ordered) || self.comparable(tb, &a, ordered);
        if !ok {
            let hint = match (ta, tb) {
                (Ty::Money, Ty::Number) | (Ty::Number, Ty::Money) => {
                    Some("money compares with money: write the amount like `$100`".into())
                }
                (Ty::Text, Ty::Text) | (Ty::Bool, Ty::Bool) => Some(format!(
                    "{} can only be compared with `=` or `is`",
                    ta.name()
                )),
                (Ty::DateTime, Ty::Date) | (Ty::Date, Ty::DateTime) => {
                    Some("compare the event's local `date`, or use `date of ...`".into())
                }
                _ => None,
            };
            let msg = if ta == tb {
                format!("{} cannot be compared with `{}`", ta.name(), op.symbol())
            } else {
                format!(
                    "cannot compare {} (`{}`) with {} (`{}`)",
                    ta.name(),
                    self.text(a.node.span),
                    tb.name(),
                    self.text(b.node.span)
                )
            };
            self.sink.error(ErrorKind::TypeMismatch, span, msg, hint);
            return err_node(span);
        }
        Node::new(
            NodeKind::Cmp(op, Box::new([a.node, b.node])),
            Ty::Bool,
            span,
        )
    }

    fn arith(&mut self, op: ArithOp, a: Checked, b: Checked, span: Span) -> Checked {
        use Ty::*;
        let (ta, tb) = (a.node.ty, b.node.ty);
        let lit = a.num_literal && b.num_literal;
        let ty = match (op, ta, tb) {
            (_, Error, _) | (_, _, Error) => Error,
            (_, Number, Number) => Number,
            (ArithOp::Add | ArithOp::Sub, Money, Money) => Money,
            (ArithOp::Add | ArithOp::Sub, Money, Number) if b.num_literal => Money,
            (ArithOp::Add | ArithOp::Sub, Number, Money) if a.num_literal => Money,
            (ArithOp::Mul, Money, Number) | (ArithOp::Mul, Number, Money) => Money,
            (ArithOp::Div, Money, Number) => Money,
            (ArithOp::Div, Money, Money) => Number,
            _ => {
                let hint = match (ta, tb) {
                    (Money, Number) | (Number, Money) => Some(
                        "to turn money into a number divide by a unit, e.g. `purchase.amount / $1`"
                            .into(),
                    ),
                    _ => None,
                };
                return self.mismatch(
                    span,
                    format!("cannot {} {} and {}", arith_word(op), ta.name(), tb.name()),
                    hint,
                );
            }
        };
        Checked {
            node: Node::new(
                NodeKind::Arith(op, Box::new(a.node), Box::new(b.node)),
                ty,
                span,
            ),
            num_literal: lit,
        }
    }

    fn unify(&mut self, a: Checked, b: Checked, span: Span) -> (Node, Node, Ty) {
        let (ta, tb) = (a.node.ty, b.node.ty);
        if ta == tb || tb == Ty::Error {
            return (a.node, b.node, ta);
        }
        if ta == Ty::Error {
            return (a.node, b.node, tb);
        }
        if ta == Ty::Money && b.num_literal {
            return (a.node, b.node, Ty::Money);
        }
        if tb == Ty::Money && a.num_literal {
            return (a.node, b.node, Ty::Money);
        }
        self.sink.error(
            ErrorKind::TypeMismatch,
            span,
            format!(
                "both branches must have the same type, but they are {} and {}",
                ta.name(),
                tb.name()
            ),
            None,
        );
        (a.node, b.node, Ty::Error)
    }

    fn event_by_name(&mut self, n: &Name) -> Option<u16> {
        // `purchases` is the plural of `purchase`
        let l = lower(&n.text);
        let singular = l
            .strip_suffix("es")
            .filter(|s| self.ir.events.iter().any(|e| e.name == *s))
            .or_else(|| {
                l.strip_suffix('s')
                    .filter(|s| self.ir.events.iter().any(|e| e.name == *s))
            })
            .map(str::to_string);
        let name = Name {
            text: singular.unwrap_or_else(|| l.into_owned()).into(),
            span: n.span,
        };
        self.find_event(&name)
    }

    fn history(&mut self, h: &History, span: Span) -> Checked {
        let k = |kind, ty| Checked {
            node: Node::new(NodeKind::History(kind), ty, span),
            num_literal: false,
        };
        let bad = Checked {
            node: err_node(span),
            num_literal: false,
        };
        match h {
            History::Count(ev, w) => {
                let Some(ty) = self.event_by_name(ev) else {
                    return bad;
                };
                self.retain(ty as usize, *w);
                k(HistIr::Count { ty, window: *w }, Ty::Number)
            }
            History::Sum(path, w) => {
                let c = self.expr(path);
                let NodeKind::EventField(slot) = c.node.kind else {
                    if c.node.ty != Ty::Error {
                        self.sink.error(
                            ErrorKind::TypeMismatch,
                            path.span,
                            "history sums take an event field, like `purchase.amount`",
                            None,
                        );
                    }
                    return bad;
                };
                if !matches!(c.node.ty, Ty::Money | Ty::Number) {
                    return self.mismatch(
                        path.span,
                        format!("cannot add up {}", c.node.ty.name()),
                        None,
                    );
                }
                // the field's event: the root of the path
                let ExprKind::Field(root, _) = &path.kind else {
                    return bad;
                };
                let ExprKind::Name(root) = &root.kind else {
                    return bad;
                };
                let ty = if root.eq_ignore_ascii_case("event") {
                    self.event.unwrap_or(0)
                } else {
                    match self
                        .ir
                        .events
                        .iter()
                        .position(|e| e.name.eq_ignore_ascii_case(root))
                    {
                        Some(t) => t as u16,
                        None => return bad,
                    }
                };
                let idx = self.track(ty, slot, *w);
                k(HistIr::Sum { idx, window: *w }, c.node.ty)
            }
            History::Points(kind, w) => {
                let kind = self.kind(kind);
                let d = window_days(*w);
                let r = &mut self.ir.points_retention_days[kind as usize];
                *r = (*r).max(d);
                k(HistIr::Points { kind, window: *w }, Ty::Number)
            }
            History::First(ev) => match self.event_by_name(ev) {
                Some(ty) => k(HistIr::First(ty), Ty::Bool),
                None => bad,
            },
            History::Streak(weeks, ev) => match self.event_by_name(ev) {
                Some(ty) => k(HistIr::Streak { ty, weeks: *weeks }, Ty::Number),
                None => bad,
            },
            History::DaysSinceLast(ev) => match self.event_by_name(ev) {
                Some(ty) => k(HistIr::DaysSinceLast(ty), Ty::Number),
                None => bad,
            },
        }
    }

    fn call(&mut self, name: &Name, args: &[Expr], span: Span) -> Checked {
        let f = match &*lower(&name.text) {
            "min" => Func::Min,
            "max" => Func::Max,
            "round" => Func::Round,
            "floor" => Func::Floor,
            "ceil" | "ceiling" => Func::Ceil,
            "abs" => Func::Abs,
            _ => {
                let hint =
                    did_you_mean(&name.text, ["min", "max", "round", "floor", "ceil", "abs"]);
                self.sink.error(
                    ErrorKind::UnknownFunction,
                    name.span,
                    format!("unknown function `{}`", name.text),
                    hint.or_else(|| {
                        Some("functions are min, max, round, floor, ceil and abs".into())
                    }),
                );
                return Checked {
                    node: err_node(span),
                    num_literal: false,
                };
            }
        };
        let arity = match f {
            Func::Min | Func::Max => 2..=usize::MAX,
            Func::Round => 1..=2,
            _ => 1..=1,
        };
        if !arity.contains(&args.len()) {
            let hint = if args.len() == 1 && matches!(f, Func::Min | Func::Max) {
                Some(
                    "`100,200` reads as one number; put a space after the comma: `min(100, 200)`"
                        .into(),
                )
            } else {
                None
            };
            return self.mismatch(
                span,
                format!(
                    "`{}` takes {} value{}, not {}",
                    name.text,
                    if arity.start() == arity.end() {
                        arity.start().to_string()
                    } else {
                        format!("at least {}", arity.start())
                    },
                    if *arity.start() == 1 && arity.start() == arity.end() {
                        ""
                    } else {
                        "s"
                    },
                    args.len()
                ),
                hint,
            );
        }
        let mut nodes: Vec<Checked> = args.iter().map(|a| self.expr(a)).collect();
        let mut ty = Ty::Number;
        let mut all_lit = true;
        for c in &nodes {
            if !c.num_literal {
                all_lit = false;
                if c.node.ty == Ty::Money {
                    ty = Ty::Money;
                }
            }
        }
        for (i, c) in nodes.iter().enumerate() {
            let ok = match (f, i) {
                (Func::Round, 1) => c.node.ty == Ty::Number,
                _ => {
                    c.node.ty == ty || c.node.ty == Ty::Error || (ty == Ty::Money && c.num_literal)
                }
            };
            if !ok {
                let sp = c.node.span;
                let msg = format!(
                    "`{}` got {} where {} was expected",
                    name.text,
                    c.node.ty.name(),
                    ty.name()
                );
                return self.mismatch(sp, msg, None);
            }
        }
        let nodes: Vec<Node> = nodes.drain(..).map(|c| c.node).collect();
        Checked {
            node: Node::new(NodeKind::Call(f, nodes), ty, span),
            num_literal: all_lit,
        }
    }

    fn name(&mut self, n: &str, span: Span, expected: Option<Ty>) -> Checked {
        let l = lower(n);
        let k = |kind, ty| Checked {
            node: Node::new(kind, ty, span),
            num_literal: false,
        };
        if let Some(depth) = self.locals.iter().rposition(|(v, _)| *v == l) {
            let ty = self.locals[depth].1;
            return k(NodeKind::Local(depth as u8, None), ty);
        }
        if let Some(c) = Calendar::from_name(&l) {
            return k(NodeKind::Calendar(c), c.ty());
        }
        if let Some(ev) = self.event {
            let schema = &self.ir.events[ev as usize];
            if schema.name == l {
                if let Some(p) = schema.primary {
                    return k(NodeKind::EventField(p as u16), schema.fields[p].ty);
                }
            }
        }
        match expected {
            Some(Ty::Tier) => {
                if let Some(i) = self.ir.tiers.iter().position(|t| **t == *l) {
                    return k(NodeKind::Const(Value::Tier(i as u16)), Ty::Tier);
                }
                let hint = did_you_mean(n, self.ir.tiers.iter().map(|t| &**t)).or_else(|| {
                    Some(if self.ir.tiers.is_empty() {
                        "declare tiers with `tiers bronze, silver, gold`".into()
                    } else {
                        format!("tiers are {}", self.ir.tiers.join(", "))
                    })
                });
                self.sink.error(
                    ErrorKind::UnknownTier,
                    span,
                    format!("unknown tier `{n}`"),
                    hint,
                );
                return Checked {
                    node: err_node(span),
                    num_literal: false,
                };
            }
            Some(Ty::Weekday) => {
                if let Some(d) = weekday_from_name(&l) {
                    return k(NodeKind::Const(Value::Weekday(d)), Ty::Weekday);
                }
                let hint = did_you_mean(n, WEEKDAYS);
                self.sink.error(
                    ErrorKind::UnknownName,
                    span,
                    format!("`{n}` is not a day of the week"),
                    hint,
                );
                return Checked {
                    node: err_node(span),
                    num_literal: false,
                };
            }
            Some(Ty::Error) => {
                return Checked {
                    node: err_node(span),
                    num_literal: false,
                }
            }
            _ => {}
        }
        if l == "customer" {
            return self.mismatch(
                span,
                "`customer` is a record; name one of its fields, like `customer.tier`".into(),
                None,
            );
        }
        let mut candidates: Vec<&str> = Calendar::NAMES.to_vec();
        candidates.extend(self.locals.iter().map(|(v, _)| v.as_str()));
        if let Some(ev) = self.event {
            candidates.push(&self.ir.events[ev as usize].name);
        }
        let hint = did_you_mean(n, candidates.iter().copied()).or_else(|| {
            if let Some(ev) = self.event {
                let schema = &self.ir.events[ev as usize];
                if schema.field(&l).is_some() {
                    return Some(format!(
                        "fields are written with their event: `{}.{}`",
                        schema.name, l
                    ));
                }
            }
            if self.ir.customer.iter().any(|f| f.name == l) {
                return Some(format!("write `customer.{l}`"));
            }
            Some("text is written in quotes: \"like this\"".into())
        });
        self.sink.error(
            ErrorKind::UnknownName,
            span,
            format!("unknown name `{n}`"),
            hint,
        );
        Checked {
            node: err_node(span),
            num_literal: false,
        }
    }

    fn field(&mut self, base: &Expr, field: &Name, span: Span) -> Checked {
        let k = |kind, ty| Checked {
            node: Node::new(kind, ty, span),
            num_literal: false,
        };
        let fname = lower(&field.text);
        let ExprKind::Name(root) = &base.kind else {
            let b = self.expr(base);
            if b.node.ty == Ty::Error {
                return b;
            }
            return self.mismatch(
                field.span,
                format!("{} has no field `{}`", b.node.ty.name(), field.text),
                None,
            );
        };
        let root_l = lower(root);
        // loop variable
        if let Some(depth) = self.locals.iter().rposition(|(v, _)| *v == root_l) {
            let ty = self.locals[depth].1;
            if ty == Ty::Error {
                return Checked {
                    node: err_node(span),
                    num_literal: false,
                };
            }
            if ty != Ty::Item {
                return self.mismatch(
                    field.span,
                    format!("`{root}` is {} and has no fields", ty.name()),
                    None,
                );
            }
            return match self.ir.item.iter().position(|f| f.name == fname) {
                Some(slot) => k(
                    NodeKind::Local(depth as u8, Some(slot as u16)),
                    self.ir.item[slot].ty,
                ),
                None => {
                    let hint =
                        did_you_mean(&field.text, self.ir.item.iter().map(|f| f.name.as_str()));
                    self.sink.error(
                        ErrorKind::UnknownField,
                        field.span,
                        format!("unknown field `{}` on a basket item", field.text),
                        hint,
                    );
                    Checked {
                        node: err_node(span),
                        num_literal: false,
                    }
                }
            };
        }
        if root_l == "customer" {
            return match self.ir.customer.iter().position(|f| f.name == fname) {
                Some(slot) => k(
                    NodeKind::CustomerField(slot as u16),
                    self.ir.customer[slot].ty,
                ),
                None => {
                    let hint = did_you_mean(
                        &field.text,
                        self.ir.customer.iter().map(|f| f.name.as_str()),
                    )
                    .or_else(|| Some("declare it with `customer has <name>: <type>`".into()));
                    self.sink.error(
                        ErrorKind::UnknownField,
                        field.span,
                        format!("unknown field `{}` on `customer`", field.text),
                        hint,
                    );
                    Checked {
                        node: err_node(span),
                        num_literal: false,
                    }
                }
            };
        }
        let ev_idx = if root_l == "event" {
            self.event
        } else {
            self.ir
                .events
                .iter()
                .position(|e| e.name == root_l)
                .map(|i| i as u16)
        };
        let Some(ev_idx) = ev_idx else {
            let mut cands: Vec<&str> = self.ir.events.iter().map(|e| e.name.as_str()).collect();
            cands.push("customer");
            cands.extend(self.locals.iter().map(|(v, _)| v.as_str()));
            let hint = did_you_mean(root, cands.iter().copied());
            self.sink.error(
                ErrorKind::UnknownName,
                base.span,
                format!("unknown name `{root}`"),
                hint,
            );
            return Checked {
                node: err_node(span),
                num_literal: false,
            };
        };
        if let Some(cur) = self.event {
            if cur != ev_idx {
                let cur_name = self.ir.events[cur as usize].name.clone();
                self.sink.error(
                    ErrorKind::UnknownField,
                    base.span,
                    format!(
                        "this rule reacts to `{cur_name}`, so `{root}` fields are not available"
                    ),
                    Some(format!(
                        "use `{cur_name}.<field>`, or write a separate rule `on {root_l}`"
                    )),
                );
                return Checked {
                    node: err_node(span),
                    num_literal: false,
                };
            }
        }
        let schema = &self.ir.events[ev_idx as usize];
        match schema.field(&fname) {
            Some(slot) => k(NodeKind::EventField(slot as u16), schema.fields[slot].ty),
            None => {
                let hint = did_you_mean(&field.text, schema.fields.iter().map(|f| f.name.as_str()))
                    .or_else(|| {
                        Some(format!(
                            "`{}` has {}",
                            schema.name,
                            schema
                                .fields
                                .iter()
                                .map(|f| format!("`{}`", f.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    });
                let name = schema.name.clone();
                self.sink.error(
                    ErrorKind::UnknownField,
                    field.span,
                    format!("unknown field `{}` on `{}`", field.text, name),
                    hint,
                );
                Checked {
                    node: err_node(span),
                    num_literal: false,
                }
            }
        }
    }

    fn number_node(&mut self, e: &Expr, what: &str) -> Node {
        let c = self.expr(e);
        match c.node.ty {
            Ty::Number | Ty::Error => c.node,
            other => {
                let hint = if other == Ty::Money {
                    Some("points are a number; turn money into one with a rate, e.g. `award 1 point per $1`".into())
                } else {
                    None
                };
                self.sink.error(
                    ErrorKind::TypeMismatch,
                    e.span,
                    format!("{what} must be a number, but this is {}", other.name()),
                    hint,
                );
                err_node(e.span)
            }
        }
    }

    fn money_or_number(&mut self, e: &Expr, what: &str) -> Node {
        let c = self.expr(e);
        match c.node.ty {
            Ty::Number | Ty::Money | Ty::Error => c.node,
            other => {
                self.sink.error(
                    ErrorKind::TypeMismatch,
                    e.span,
                    format!(
                        "{what} must be money or a number, but this is {}",
                        other.name()
                    ),
                    None,
                );
                err_node(e.span)
            }
        }
    }

    /// A declared reward by name (any case), or an `unknown_reward` error.
    fn reward(&mut self, name: &Name) -> Option<Arc<str>> {
        let found = self
            .ir
            .rewards
            .iter()
            .find(|r| r.eq_ignore_ascii_case(&name.text))
            .cloned();
        if found.is_none() {
            let hint = did_you_mean(&name.text, self.ir.rewards.iter().map(|r| &**r))
                .or_else(|| Some(format!("declare it with `rewards \"{}\"`", name.text)));
            self.sink.error(
                ErrorKind::UnknownReward,
                name.span,
                format!("unknown reward \"{}\"", name.text),
                hint,
            );
        }
        found
    }

    fn target(&mut self, to: &Option<Expr>) -> Option<Node> {
        let to = to.as_ref()?;
        let c = self.expr(to);
        if !matches!(c.node.ty, Ty::Text | Ty::Error) {
            self.sink.error(
                ErrorKind::TypeMismatch,
                to.span,
                format!(
                    "points go to a customer id (text), but this is {}",
                    c.node.ty.name()
                ),
                Some("for example `to customer.referred_by`".into()),
            );
        }
        Some(c.node)
    }

    fn kind(&mut self, kind: &Option<Name>) -> u16 {
        let Some(k) = kind else { return 0 };
        let l = lower(&k.text);
        if let Some(i) = self.ir.kinds.iter().position(|x| **x == *l) {
            return i as u16;
        }
        let hint = did_you_mean(&k.text, self.ir.kinds.iter().map(|x| &**x))
            .or_else(|| Some(format!("declare it with `points kinds {l}`")));
        self.sink.error(
            ErrorKind::UnknownName,
            k.span,
            format!("unknown point kind `{}`", k.text),
            hint,
        );
        0
    }

    fn effect(&mut self, eff: &Effect) -> Option<EffectIr> {
        Some(match &eff.kind {
            EffectKind::Award {
                deduct,
                amount,
                kind,
                to,
                ..
            } => {
                let kind = self.kind(kind);
                let amount = match amount {
                    Amount::Fixed(e) => AmountIr::Fixed(self.number_node(e, "the points")),
                    Amount::Percent { pct, of, .. } => {
                        let base = self.money_or_number(of, "the base of a percentage");
                        AmountIr::Percent(*pct / Decimal::ONE_HUNDRED, base)
                    }
                    Amount::Rate {
                        points,
                        mode,
                        unit,
                        of,
                    } => {
                        let points = self.number_node(points, "the points");
                        let unit_c = self.expr(unit);
                        let of_node = match of {
                            Some(o) => self.expr(o).node,
                            None => {
                                let ev = &self.ir.events[self.event? as usize];
                                match ev.primary {
                                    Some(p) => Node::new(
                                        NodeKind::EventField(p as u16),
                                        ev.fields[p].ty,
                                        unit.span,
                                    ),
                                    None => {
                                        let name = ev.name.clone();
                                        self.sink.error(ErrorKind::InvalidRule, unit.span, format!("event `{name}` has no amount; say what is measured"), Some(format!("e.g. `per 100 of {name}.<field>`")));
                                        return None;
                                    }
                                }
                            }
                        };
                        let ok = match (of_node.ty, unit_c.node.ty) {
                            (Ty::Error, _) | (_, Ty::Error) => true,
                            (a, b) if a == b => matches!(a, Ty::Money | Ty::Number),
                            (Ty::Money, Ty::Number) => unit_c.num_literal,
                            _ => false,
                        };
                        if !ok {
                            self.sink.error(ErrorKind::TypeMismatch, unit.span.to(of_node.span), format!("the unit ({}) and what is measured ({}) must have the same type", unit_c.node.ty.name(), of_node.ty.name()), Some("for money write the unit like `$1`".into()));
                        }
                        AmountIr::Rate {
                            points,
                            every: *mode == RateMode::Every,
                            unit: unit_c.node,
                            of: of_node,
                        }
                    }
                    Amount::Each {
                        points,
                        var,
                        list,
                        filter,
                    } => {
                        let points = self.number_node(points, "the points");
                        let (depth, list_node) = self.bind(var, list)?;
                        let filter = filter.as_ref().map(|f| self.cond(f));
                        self.locals.pop();
                        AmountIr::Each {
                            points,
                            depth,
                            list: list_node,
                            filter,
                        }
                    }
                };
                let to = self.target(to);
                EffectIr::Award {
                    deduct: *deduct,
                    kind,
                    amount,
                    to,
                }
            }
            EffectKind::Multiply { kind, factor, .. } => {
                let kind = self.kind(kind);
                let factor = self.number_node(factor, "the multiplier");
                if let NodeKind::Const(Value::Num(v)) = &factor.kind {
                    if v.is_sign_negative() {
                        self.sink.error(
                            ErrorKind::InvalidRule,
                            factor.span,
                            "a multiplier cannot be negative",
                            None,
                        );
                    }
                }
                EffectIr::Multiply {
                    kind,
                    rule: None,
                    factor,
                }
            }
            EffectKind::Grant { reward, to } => {
                let r = self.reward(reward)?;
                let to = self.target(to);
                EffectIr::Grant { reward: r, to }
            }
            EffectKind::SetTier(t) => {
                let l = lower(&t.text);
                match self.ir.tiers.iter().position(|x| **x == *l) {
                    Some(i) => EffectIr::SetTier(i as u16),
                    None => {
                        let hint = did_you_mean(&t.text, self.ir.tiers.iter().map(|x| &**x))
                            .or_else(|| {
                                Some("declare tiers with `tiers bronze, silver, gold`".into())
                            });
                        self.sink.error(
                            ErrorKind::UnknownTier,
                            t.span,
                            format!("unknown tier `{}`", t.text),
                            hint,
                        );
                        return None;
                    }
                }
            }
            EffectKind::SetAttr { target, value } => {
                let t = self.expr(target);
                let NodeKind::CustomerField(slot) = t.node.kind else {
                    if t.node.ty != Ty::Error {
                        self.sink.error(
                            ErrorKind::InvalidRule,
                            target.span,
                            "only customer attributes can be set",
                            Some("write `set customer.<attribute> to <value>`".into()),
                        );
                    }
                    return None;
                };
                let slot = slot as usize;
                if slot < customer_fields().len() {
                    self.sink.error(
                        ErrorKind::InvalidRule,
                        target.span,
                        format!(
                            "`customer.{}` is managed by the engine and cannot be set",
                            self.ir.customer[slot].name
                        ),
                        Some("declare your own attribute with `customer has`".into()),
                    );
                    return None;
                }
                let ty = self.ir.customer[slot].ty;
                let v = self.expr_expect(value, Some(ty));
                if v.node.ty != ty && v.node.ty != Ty::Error && !(ty == Ty::Money && v.num_literal)
                {
                    self.sink.error(
                        ErrorKind::TypeMismatch,
                        value.span,
                        format!(
                            "`customer.{}` is {}, but this is {}",
                            self.ir.customer[slot].name,
                            ty.name(),
                            v.node.ty.name()
                        ),
                        None,
                    );
                }
                EffectIr::SetAttr {
                    attr: Arc::from(self.ir.customer[slot].name.as_str()),
                    value: v.node,
                }
            }
            EffectKind::Tag(t) => EffectIr::Tag(Arc::from(t.text.as_str())),
            EffectKind::Redeem { points, reward } => {
                let points = self.number_node(points, "the points to redeem");
                let reward = match reward {
                    None => None,
                    Some(r) => Some(self.reward(r)?),
                };
                EffectIr::Redeem { points, reward }
            }
            EffectKind::Notify(m) => EffectIr::Notify(Arc::from(m.text.as_str())),
            EffectKind::ExtendExpiry { amount, months } => EffectIr::Extend {
                amount: *amount,
                months: *months,
            },
        })
    }

    /// Cheap contradiction detection over the top-level conjuncts of a rule:
    /// the same value bounded by constants into an empty range, or equal to
    /// two different constants.
    fn contradictions(&mut self, conds: Option<&Node>) {
        // One comparison alone contradicts nothing.
        if !conds.is_some_and(|n| matches!(n.kind, NodeKind::And(_))) {
            return;
        }
        // key -> (lower bound, upper bound, equals), each with the span that set it
        type Bound = Option<(Value, bool, Span)>;
        type Fact = (Subject, Bound, Bound, Option<(Value, Span)>);
        let mut facts: Vec<Fact> = Vec::new();
        // The `and` operands from the left, down the left spine with the
        // right operands kept for later: a condition without `and` needs
        // no stack.
        let mut stack: Vec<&Node> = Vec::new();
        let mut next = conds;
        while let Some(mut n) = next.take().or_else(|| stack.pop()) {
            while let NodeKind::And(ab) = &n.kind {
                stack.push(&ab[1]);
                n = &ab[0];
            }
            let (op, subj, val) = match &n.kind {
                NodeKind::Cmp(op, ab) => {
                    let [a, b] = &**ab;
                    match (&a.kind, &b.kind) {
                        (_, NodeKind::Const(v)) if is_subject(a) => (*op, a, v.clone()),
                        (NodeKind::Const(v), _) if is_subject(b) => (flip(*op), b, v.clone()),
                        _ => continue,
                    }
                }
                _ => continue,
            };
            let Some(key) = Subject::of(subj) else {
                continue;
            };
            let idx = match facts.iter().position(|f| f.0 == key) {
                Some(i) => i,
                None => {
                    facts.push((key, None, None, None));
                    facts.len() - 1
                }
            };
            let f = &mut facts[idx];
            let mut conflict: Option<Span> = None;
            let cmp = crate::eval::cmp_values;
            use std::cmp::Ordering::*;
            match op {
                CmpOp::Eq => {
                    if let Some((v, s)) = &f.3 {
                        if cmp(v, &val) != Some(Equal) {
                            conflict = Some(*s);
                        }
                    }
                    if let Some((lo, incl, s)) = &f.1 {
                        let o = cmp(&val, lo);
                        if o == Some(Less) || (!incl && o == Some(Equal)) {
                            conflict = Some(*s);
                        }
                    }
                    if let Some((hi, incl, s)) = &f.2 {
                        let o = cmp(&val, hi);
                        if o == Some(Greater) || (!incl && o == Some(Equal)) {
                            conflict = Some(*s);
                        }
                    }
                    f.3 = Some((val.clone(), n.span));
                }
                CmpOp::Gt | CmpOp::Ge | CmpOp::Lt | CmpOp::Le => {
                    let lower = matches!(op, CmpOp::Gt | CmpOp::Ge);
                    let incl = matches!(op, CmpOp::Ge | CmpOp::Le);
                    if lower {
                        if f.1
                            .as_ref()
                            .is_none_or(|(v, _, _)| cmp(&val, v) == Some(Greater))
                        {
                            f.1 = Some((val.clone(), incl, n.span));
                        }
                    } else if f
                        .2
                        .as_ref()
                        .is_none_or(|(v, _, _)| cmp(&val, v) == Some(Less))
                    {
                        f.2 = Some((val.clone(), incl, n.span));
                    }
                    if let (Some((lo, li, ls)), Some((hi, hi_incl, hs))) = (&f.1, &f.2) {
                        let o = cmp(lo, hi);
                        if o == Some(Greater) || (o == Some(Equal) && !(*li && *hi_incl)) {
                            conflict = Some(if lower { *hs } else { *ls });
                        }
                    }
                    if let Some((v, s)) = &f.3 {
                        let o = cmp(v, &val);
                        let bad = match op {
                            CmpOp::Gt => o != Some(Greater),
                            CmpOp::Ge => o == Some(Less),
                            CmpOp::Lt => o != Some(Less),
                            _ => o == Some(Greater),
                        };
                        if bad && o.is_some() {
                            conflict = Some(*s);
                        }
                    }
                }
                CmpOp::Ne => {}
            }
            if let Some(other) = conflict {
                let (line, _) = crate::error::line_col(self.sink.source, other.start as usize);
                let other_text = self.text(other).to_string();
                self.sink.error(
                    ErrorKind::Contradiction,
                    n.span,
                    format!("this condition can never be true together with `{other_text}`"),
                    Some(format!(
                        "the other condition is on line {line}; did you mean `or`?"
                    )),
                );
            }
        }
    }
}

/// How many days of daily history a window needs.
pub(crate) fn window_days(w: Window) -> u32 {
    match w {
        Window::Ever => 0,
        Window::Today => 1,
        Window::Last(n, u) => match u {
            PeriodUnit::Day => n,
            PeriodUnit::Week => n.saturating_mul(7),
            PeriodUnit::Month => n.saturating_mul(31),
            PeriodUnit::Year => n.saturating_mul(366),
        },
        Window::This(u) => match u {
            PeriodUnit::Day => 1,
            PeriodUnit::Week => 7,
            PeriodUnit::Month => 31,
            PeriodUnit::Year => 366,
        },
    }
}

/// `acc and n` (`n` when there is nothing yet).
fn and_into(acc: &mut Option<Node>, n: Node) {
    *acc = Some(match acc.take() {
        None => n,
        Some(a) => {
            let span = a.span.to(n.span);
            Node::new(NodeKind::And(Box::new([a, n])), Ty::Bool, span)
        }
    });
}

fn is_subject(n: &Node) -> bool {
    Subject::of(n).is_some()
}

/// What a comparison in `contradictions` is about: a field, a calendar
/// value or a loop variable (equal when the nodes are the same read).
#[derive(Clone, Copy, PartialEq)]
enum Subject {
    Event(u16),
    Customer(u16),
    Calendar(Calendar),
    Local(u8, Option<u16>),
}

impl Subject {
    fn of(n: &Node) -> Option<Subject> {
        Some(match n.kind {
            NodeKind::EventField(f) => Subject::Event(f),
            NodeKind::CustomerField(f) => Subject::Customer(f),
            NodeKind::Calendar(c) => Subject::Calendar(c),
            NodeKind::Local(d, f) => Subject::Local(d, f),
            _ => return None,
        })
    }
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        o => o,
    }
}

fn is_list_of_symbol(n: &Node) -> bool {
    matches!(n.kind, NodeKind::Const(Value::List(_)))
}

impl Ty {
    fn is_list(self) -> bool {
        matches!(self, Ty::List(_))
    }
}

fn arith_word(op: ArithOp) -> &'static str {
    match op {
        ArithOp::Add => "add",
        ArithOp::Sub => "subtract",
        ArithOp::Mul => "multiply",
        ArithOp::Div => "divide",
    }
}

/// Push the direct sub-expressions of `e` (used by walks that must not recurse).
pub(crate) fn walk_children<'e>(e: &'e ExprKind, out: &mut Vec<&'e Expr>) {
    match e {
        ExprKind::Number(_)
        | ExprKind::Money(..)
        | ExprKind::Percent(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::Date(_)
        | ExprKind::Time(_)
        | ExprKind::Name(_) => {}
        ExprKind::Field(b, _) => out.push(b),
        ExprKind::History(History::Sum(p, _)) => out.push(p),
        ExprKind::History(_) => {}
        ExprKind::List(v) | ExprKind::Call(_, v) => out.extend(v.iter()),
        ExprKind::Neg(a) | ExprKind::Not(a) | ExprKind::IsSet(_, a) | ExprKind::Of(_, a) => {
            out.push(a)
        }
        ExprKind::And(ab) | ExprKind::Or(ab) | ExprKind::Cmp(_, ab) => out.extend(ab.iter()),
        ExprKind::Arith(_, a, b)
        | ExprKind::TextTest(_, _, a, b)
        | ExprKind::In(_, a, b)
        | ExprKind::Quant(_, _, a, b) => {
            out.push(a);
            out.push(b);
        }
        ExprKind::Between(_, a, b, c) | ExprKind::If(a, b, c) => {
            out.push(a);
            out.push(b);
            out.push(c);
        }
        ExprKind::Agg {
            value,
            list,
            filter,
            ..
        } => {
            out.push(list);
            if let Some(v) = value {
                out.push(v);
            }
            if let Some(f) = filter {
                out.push(f);
            }
        }
    }
}
