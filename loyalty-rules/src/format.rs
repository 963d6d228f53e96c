//! Syntax tree -> canonical source text.
//!
//! Keywords lower case, one clause per line, two-space indent, brackets only
//! where the grammar needs them. `parse(format(p)) == p` for every program.

use std::fmt::Write;

use crate::ast::*;

pub(crate) fn format(p: &Program) -> String {
    let mut out = String::new();
    let mut prev_rule_oneliner = false;
    for (i, item) in p.items.iter().enumerate() {
        let is_oneliner = matches!(item, Item::Rule(r) if r.trigger.is_some());
        let is_setting = matches!(
            item,
            Item::Header(_) | Item::Currency(_) | Item::Timezone(_) | Item::Rounding { .. }
        );
        if i > 0
            && !(is_oneliner && prev_rule_oneliner)
            && !(is_setting
                && matches!(
                    p.items[i - 1],
                    Item::Header(_) | Item::Currency(_) | Item::Timezone(_) | Item::Rounding { .. }
                ))
        {
            out.push('\n');
        }
        prev_rule_oneliner = is_oneliner;
        item_text(&mut out, item);
    }
    out
}

fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn names(ns: &[Name]) -> String {
    ns.iter()
        .map(|n| n.text.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn fields(out: &mut String, fs: &[FieldDecl]) {
    for f in fs {
        let list = if f.list { "list of " } else { "" };
        let opt = if f.optional { "?" } else { "" };
        let _ = writeln!(out, "  {}: {list}{}{opt}", f.name.text, f.ty.text);
    }
}

fn item_text(out: &mut String, item: &Item) {
    match item {
        Item::Header(n) => {
            let _ = writeln!(out, "program {}", quote(&n.text));
        }
        Item::Currency(n) => {
            let _ = writeln!(out, "currency {}", n.text);
        }
        Item::Timezone(n) => {
            let _ = writeln!(out, "timezone {}", quote(&n.text));
        }
        Item::Rounding { decimals, mode, .. } => {
            let prec = if *decimals == 0 {
                "are whole".to_string()
            } else {
                format!("have {decimals} decimals")
            };
            let m = match mode {
                RoundingMode::Down => "down",
                RoundingMode::Up => "up",
                RoundingMode::HalfEven => "half even",
                RoundingMode::HalfUp => "half up",
            };
            let _ = writeln!(out, "points {prec}, rounded {m}");
        }
        Item::CustomerDecl(fs) => {
            out.push_str("customer has\n");
            fields(out, fs);
        }
        Item::EventDecl { name, fields: fs } => {
            if fs.is_empty() {
                let _ = writeln!(out, "event {}", name.text);
            } else {
                let _ = writeln!(out, "event {} has", name.text);
                fields(out, fs);
            }
        }
        Item::Tiers(ns) => {
            let _ = writeln!(out, "tiers {}", names(ns));
        }
        Item::Rewards(ns) => {
            let _ = writeln!(
                out,
                "rewards {}",
                ns.iter()
                    .map(|n| quote(&n.text))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Item::PointKinds(ns) => {
            let _ = writeln!(out, "points kinds {}", names(ns));
        }
        Item::Rule(r) => rule(out, r),
        Item::Expiry(e, _) => {
            let _ = writeln!(out, "points expire {}", expiry(*e));
        }
        Item::ExpiryWarning(n, u, _) => {
            let _ = writeln!(out, "warn {n} {} before points expire", unit(*u));
        }
        Item::Pending(n, u, _) => {
            let _ = writeln!(out, "points are pending for {n} {}", unit(*u));
        }
        Item::ProgramCap {
            points,
            kind,
            period,
            ..
        } => {
            let _ = writeln!(
                out,
                "at most {points} {} per customer per {}",
                kind_points(kind),
                unit1(*period)
            );
        }
        Item::TierQualification {
            metric,
            window: w,
            thresholds,
            review,
            ..
        } => {
            let m = match metric {
                TierMetric::Spend => "spend".to_string(),
                TierMetric::Visits => "visits".to_string(),
                TierMetric::Points(k) => kind_points(k),
            };
            let _ = writeln!(out, "tiers by {m} {}", window(*w));
            for (name, amount, money) in thresholds {
                let v = if *money {
                    format!("${amount}")
                } else {
                    amount.to_string()
                };
                let _ = writeln!(out, "  {} from {v}", name.text);
            }
            if let Some((n, u, drop_one)) = review {
                let d = if *drop_one {
                    ", drop one tier at most"
                } else {
                    ""
                };
                let _ = writeln!(out, "  review every {n} {}{d}", unit(*u));
            }
        }
    }
}

fn unit1(u: PeriodUnit) -> &'static str {
    match u {
        PeriodUnit::Day => "day",
        PeriodUnit::Week => "week",
        PeriodUnit::Month => "month",
        PeriodUnit::Year => "year",
    }
}

fn unit(u: PeriodUnit) -> &'static str {
    match u {
        PeriodUnit::Day => "days",
        PeriodUnit::Week => "weeks",
        PeriodUnit::Month => "months",
        PeriodUnit::Year => "years",
    }
}

fn window(w: Window) -> String {
    match w {
        Window::Ever => "ever".into(),
        Window::Today => "today".into(),
        Window::Last(n, u) => format!("in last {n} {}", unit(u)),
        Window::This(u) => format!("this {}", unit1(u)),
    }
}

fn expiry(e: ExpirySpec) -> String {
    match e {
        ExpirySpec::After(n, u) => format!("{n} {} after earning", unit(u)),
        ExpirySpec::EndOf(u) => format!("at end of {}", unit1(u)),
        ExpirySpec::Never => "never".into(),
    }
}

fn rule(out: &mut String, r: &Rule) {
    if let Some(t) = &r.trigger {
        out.push_str("if ");
        match &**t {
            Trigger::Head {
                event,
                word,
                cmp,
                rest,
            } => {
                out.push_str(&event.text);
                if let Some(w) = word {
                    out.push(' ');
                    out.push_str(&w.text);
                }
                if let Some((op, rhs)) = cmp {
                    let _ = write!(out, " {} {}", op.symbol(), expr_at(rhs, ADD));
                }
                if let Some(rest) = rest {
                    let _ = write!(out, " and {}", expr_at(rest, 0));
                }
            }
            // A condition that starts with a bare word would read back as
            // the `IF <event> ...` head form: bracket it.
            Trigger::Expr(e) if starts_with_name(e) => {
                let _ = write!(out, "({})", expr(e));
            }
            Trigger::Expr(e) => out.push_str(&expr_at(e, 0)),
        }
        out.push_str(" then ");
        let effects: Vec<String> = r
            .clauses
            .iter()
            .filter_map(|c| match c {
                Clause::Effect(e) => Some(effect(e)),
                _ => None,
            })
            .collect();
        out.push_str(&effects.join(" and "));
        out.push('\n');
        return;
    }
    let _ = writeln!(
        out,
        "rule {}",
        quote(r.name.as_ref().map_or("", |n| n.text.as_str()))
    );
    for c in &r.clauses {
        out.push_str("  ");
        match c {
            Clause::On(n) => {
                let _ = write!(out, "on {}", n.text);
            }
            Clause::If(e) => {
                let _ = write!(out, "if {}", expr_at(e, 0));
            }
            Clause::Active { from, to, .. } => match (from, to) {
                (Some(f), Some(t)) => {
                    let _ = write!(out, "active from {f} to {t}");
                }
                (Some(f), None) => {
                    let _ = write!(out, "active from {f}");
                }
                (None, Some(t)) => {
                    let _ = write!(out, "active until {t}");
                }
                (None, None) => {}
            },
            Clause::Group { best, name } => {
                let _ = write!(
                    out,
                    "in {} group {}",
                    if *best { "best" } else { "exclusive" },
                    quote(&name.text)
                );
            }
            Clause::Priority(p, _) => {
                let _ = write!(out, "priority {p}");
            }
            Clause::Stop(_) => out.push_str("stop processing"),
            Clause::Effect(e) => out.push_str(&effect(e)),
            Clause::Limit(Limit::Times {
                n,
                total,
                period,
                every,
                ..
            }) => {
                let times = if *n == 1 {
                    "once".to_string()
                } else {
                    format!("{n} times")
                };
                let scope = if *total { " in total" } else { " per customer" };
                let when = match (period, every) {
                    (Some(p), _) => format!(" per {}", unit1(*p)),
                    (None, Some((k, u))) => format!(
                        " every {k} {}",
                        match u {
                            SpanUnit::Hour => "hours",
                            SpanUnit::Day => "days",
                            SpanUnit::Week => "weeks",
                        }
                    ),
                    _ => String::new(),
                };
                let _ = write!(out, "at most {times}{scope}{when}");
            }
            Clause::Limit(Limit::Points {
                points,
                kind,
                period,
                ..
            }) => {
                let when = match period {
                    Some(p) => format!(" per {}", unit1(*p)),
                    None => String::new(),
                };
                let _ = write!(
                    out,
                    "at most {points} {} per customer{when}",
                    kind_points(kind)
                );
            }
            Clause::Budget { amount, awards, .. } => {
                let _ = write!(
                    out,
                    "budget {amount} {}",
                    if *awards { "awards" } else { "points" }
                );
            }
            Clause::Expiry(e, _) => {
                let _ = write!(out, "points expire {}", expiry(*e));
            }
        }
        out.push('\n');
    }
}

fn starts_with_name(e: &Expr) -> bool {
    let mut cur = e;
    loop {
        cur = match &cur.kind {
            ExprKind::Name(_) => return true,
            ExprKind::And(ab) | ExprKind::Or(ab) | ExprKind::Cmp(_, ab) => &ab[0],
            ExprKind::Arith(_, a, _)
            | ExprKind::TextTest(_, _, a, _)
            | ExprKind::In(_, a, _)
            | ExprKind::Between(_, a, _, _)
            | ExprKind::IsSet(_, a) => a,
            _ => return false,
        }
    }
}

fn kind_points(kind: &Option<Name>) -> String {
    match kind {
        Some(k) => format!("{} points", k.text),
        None => "points".into(),
    }
}

fn to_clause(to: &Option<Expr>) -> String {
    match to {
        Some(t) => format!(" to {}", expr_at(t, POSTFIX)),
        None => String::new(),
    }
}

fn effect(e: &Effect) -> String {
    match &e.kind {
        EffectKind::Award {
            deduct,
            bonus,
            amount,
            kind,
            to,
        } => {
            let verb = if *deduct {
                "deduct"
            } else if *bonus {
                "award bonus"
            } else {
                "award"
            };
            let amt = match amount {
                Amount::Fixed(x) => format!("{} {}", expr_at(x, ADD), kind_points(kind)),
                Amount::Percent { pct, of, .. } => {
                    let k = match kind {
                        Some(k) => format!(" as {} points", k.text),
                        None => String::new(),
                    };
                    format!("{pct}% of {}{k}", expr_at(of, ADD))
                }
                Amount::Rate {
                    points,
                    mode,
                    unit,
                    of,
                } => {
                    let m = match mode {
                        RateMode::Per => "per",
                        RateMode::Every => "for every",
                    };
                    let of = match of {
                        Some(o) => format!(" of {}", expr_at(o, ADD)),
                        None => String::new(),
                    };
                    format!(
                        "{} {} {m} {}{of}",
                        expr_at(points, ADD),
                        kind_points(kind),
                        expr_at(unit, ADD)
                    )
                }
                Amount::Each {
                    points,
                    var,
                    list,
                    filter,
                } => {
                    let f = match filter {
                        Some(f) => format!(" where {}", expr_at(f, NOT)),
                        None => String::new(),
                    };
                    format!(
                        "{} {} for each {} in {}{f}",
                        expr_at(points, ADD),
                        kind_points(kind),
                        var.text,
                        expr_at(list, POSTFIX)
                    )
                }
            };
            format!("{verb} {amt}{}", to_clause(to))
        }
        EffectKind::Multiply { kind, rule, factor } => {
            let r = match rule {
                Some(r) => format!(" of rule {}", quote(&r.text)),
                None => String::new(),
            };
            format!(
                "multiply {}{r} by {}",
                kind_points(kind),
                expr_at(factor, ADD)
            )
        }
        EffectKind::Grant { reward, to } => {
            format!("grant reward {}{}", quote(&reward.text), to_clause(to))
        }
        EffectKind::SetTier(t) => format!("set tier {}", t.text),
        EffectKind::SetAttr { target, value } => {
            format!(
                "set {} to {}",
                expr_at(target, POSTFIX),
                expr_at(value, ADD)
            )
        }
        EffectKind::Tag(t) => format!("tag customer {}", quote(&t.text)),
        EffectKind::Redeem { points, reward } => match reward {
            Some(r) => format!(
                "redeem {} points for reward {}",
                expr_at(points, ADD),
                quote(&r.text)
            ),
            None => format!("redeem {} points", expr_at(points, ADD)),
        },
        EffectKind::Notify(m) => format!("notify {}", quote(&m.text)),
        EffectKind::ExtendExpiry { amount, months } => {
            format!(
                "extend expiry by {amount} {}",
                if *months { "months" } else { "days" }
            )
        }
    }
}

// Binding strength of each position, weakest first.
const OR: u8 = 1;
const AND: u8 = 2;
const NOT: u8 = 3;
const CMP: u8 = 4;
const ADD: u8 = 5;
const MUL: u8 = 6;
const UNARY: u8 = 7;
const POSTFIX: u8 = 8;

fn prec(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Or(..) => OR,
        ExprKind::And(..) => AND,
        ExprKind::Not(..) => NOT,
        ExprKind::Cmp(..)
        | ExprKind::TextTest(..)
        | ExprKind::In(..)
        | ExprKind::Between(..)
        | ExprKind::IsSet(..) => CMP,
        ExprKind::Arith(ArithOp::Add | ArithOp::Sub, ..) => ADD,
        ExprKind::Arith(..) => MUL,
        ExprKind::Neg(_) => UNARY,
        // These end in an open-ended part (`else x`, `where c`), so they
        // are bracketed anywhere but the top of an expression.
        ExprKind::If(..) | ExprKind::Quant(..) | ExprKind::Agg { .. } => 0,
        // A negative literal prints with a leading `-`.
        ExprKind::Number(v) | ExprKind::Money(v, _) | ExprKind::Percent(v)
            if v.is_sign_negative() =>
        {
            UNARY
        }
        _ => POSTFIX,
    }
}

fn expr_at(e: &Expr, min: u8) -> String {
    let s = expr(e);
    if prec(e) < min || (prec(e) == 0 && min > 0) {
        format!("({s})")
    } else {
        s
    }
}

fn not_word(neg: bool) -> &'static str {
    if neg {
        "not "
    } else {
        ""
    }
}

fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Number(v) => v.to_string(),
        ExprKind::Money(v, c) => {
            if v.is_sign_negative() {
                format!("-{c}{}", v.abs())
            } else {
                format!("{c}{v}")
            }
        }
        ExprKind::Percent(v) => format!("{v}%"),
        ExprKind::Str(s) => quote(s),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Date(d) => d.to_string(),
        ExprKind::Time(t) => {
            use chrono::Timelike;
            if t.second() == 0 {
                t.format("%H:%M").to_string()
            } else {
                t.format("%H:%M:%S").to_string()
            }
        }
        // A name that is also the first word of a construct (`first`,
        // `days`, `month`...) could join the word printed after it (`award
        // first points` reads as `first points`, a history lookup):
        // brackets keep it a name.
        ExprKind::Name(n) if crate::parser::is_lead_word(n.to_ascii_lowercase().as_bytes()) => {
            format!("({n})")
        }
        ExprKind::Name(n) => n.to_string(),
        ExprKind::Field(b, f) => format!("{}.{}", expr_at(b, POSTFIX), f.text),
        ExprKind::List(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| expr_at(i, OR))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ExprKind::Neg(a) => format!("-{}", expr_at(a, POSTFIX)),
        ExprKind::Not(a) => format!("not {}", expr_at(a, CMP)),
        ExprKind::And(ab) => format!("{} and {}", expr_at(&ab[0], AND), expr_at(&ab[1], NOT)),
        ExprKind::Or(ab) => format!("{} or {}", expr_at(&ab[0], OR), expr_at(&ab[1], AND)),
        ExprKind::Arith(op, a, b) => {
            let (sym, l, r) = match op {
                ArithOp::Add => ("+", ADD, MUL),
                ArithOp::Sub => ("-", ADD, MUL),
                ArithOp::Mul => ("*", MUL, UNARY),
                ArithOp::Div => ("/", MUL, UNARY),
            };
            format!("{} {sym} {}", expr_at(a, l), expr_at(b, r))
        }
        ExprKind::Cmp(op, ab) => {
            let [a, b] = &**ab;
            format!("{} {} {}", expr_at(a, ADD), op.symbol(), expr_at(b, ADD))
        }
        ExprKind::TextTest(op, neg, a, b) => {
            let w = op.words();
            format!(
                "{} {}{w} {}",
                expr_at(a, ADD),
                not_word(*neg),
                expr_at(b, ADD)
            )
        }
        ExprKind::In(neg, a, b) => format!(
            "{} {}in {}",
            expr_at(a, ADD),
            not_word(*neg),
            expr_at(b, ADD)
        ),
        ExprKind::Between(neg, v, lo, hi) => format!(
            "{} is {}between {} and {}",
            expr_at(v, ADD),
            not_word(*neg),
            expr_at(lo, ADD),
            expr_at(hi, ADD)
        ),
        ExprKind::IsSet(neg, v) => format!("{} is {}set", expr_at(v, ADD), not_word(*neg)),
        ExprKind::If(c, t, f) => format!(
            "if {} then {} else {}",
            expr_at(c, 0),
            expr_at(t, 0),
            // an `if` as the else branch ends where this one ends, so it
            // needs no brackets: `else if` chains print as written (in
            // brackets, a long chain would pass the nesting limit)
            if matches!(f.kind, ExprKind::If(..)) {
                expr(f)
            } else {
                expr_at(f, ADD)
            }
        ),
        ExprKind::Call(n, args) => format!(
            "{}({})",
            n.text,
            args.iter()
                .map(|a| expr_at(a, 0))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ExprKind::Of(f, a) => {
            let w = match f {
                OfFn::Anniversary => "anniversary of",
                OfFn::Month => "month of",
                OfFn::Year => "year of",
                OfFn::Day => "day of",
                OfFn::Weekday => "weekday of",
                OfFn::Hour => "hour of",
                OfFn::DaysSince => "days since",
                OfFn::DaysUntil => "days until",
            };
            format!("{w} {}", expr_at(a, POSTFIX))
        }
        ExprKind::History(h) => match h {
            History::Count(ev, w) => format!("count of {} {}", ev.text, window(*w)),
            History::Sum(path, w) => format!("sum of {} {}", expr_at(path, POSTFIX), window(*w)),
            History::Points(k, w) => format!("{} earned {}", kind_points(k), window(*w)),
            History::First(ev) => format!("first {}", ev.text),
            History::Streak(weeks, ev) => {
                format!(
                    "streak of {} with {}",
                    if *weeks { "weeks" } else { "days" },
                    ev.text
                )
            }
            History::DaysSinceLast(ev) => format!("days since last {}", ev.text),
        },
        ExprKind::Quant(q, var, list, body) => {
            let w = match q {
                Quant::Any => "any",
                Quant::All => "every",
                Quant::None => "no",
            };
            format!(
                "{w} {} in {} where {}",
                var.text,
                expr_at(list, POSTFIX),
                expr_at(body, NOT)
            )
        }
        ExprKind::Agg {
            agg,
            value,
            var,
            list,
            filter,
        } => {
            let f = match filter {
                Some(f) => format!(" where {}", expr_at(f, NOT)),
                None => String::new(),
            };
            match (agg, value) {
                (Agg::Count, _) | (_, None) => {
                    format!("count of {} in {}{f}", var.text, expr_at(list, POSTFIX))
                }
                (a, Some(v)) => {
                    let w = match a {
                        Agg::Sum => "sum",
                        Agg::Min => "min",
                        _ => "max",
                    };
                    format!(
                        "{w} of {} for each {} in {}{f}",
                        expr_at(v, ADD),
                        var.text,
                        expr_at(list, POSTFIX)
                    )
                }
            }
        }
    }
}
