//! Source text -> syntax tree. `Rule` and `Pair` never leave this file.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use pest::Parser as _;
use rust_decimal::Decimal;

use crate::ast::*;
use crate::error::{ErrorKind, Sink};
use crate::limits;

#[path = "fastparse.rs"]
mod fastparse;

pub(crate) use fastparse::is_lead_word;

#[derive(pest_derive::Parser)]
#[grammar = "../../grammar/loyalty.pest"]
struct Grammar;

/// Parse a program, reporting problems into `sink`. Returns `None` when the
/// text does not parse.
pub(crate) fn parse(source: &str, sink: &mut Sink<'_>) -> Option<Program> {
    parse_in(source, None, sink)
}

/// [`parse`] of `source`, whose names share `source` (no copy of it).
pub(crate) fn parse_shared(source: &Arc<str>, sink: &mut Sink<'_>) -> Option<Program> {
    parse_in(source, Some(source), sink)
}

fn parse_in(source: &str, shared: Option<&Arc<str>>, sink: &mut Sink<'_>) -> Option<Program> {
    if source.len() > limits::MAX_SOURCE_BYTES {
        sink.error(
            ErrorKind::Limit,
            Span::new(0, 0),
            format!(
                "program is {} bytes; the limit is {} bytes",
                source.len(),
                limits::MAX_SOURCE_BYTES
            ),
            Some("split the program into several smaller ones".into()),
        );
        return None;
    }
    if let Some((at, depth)) = nesting_too_deep(source) {
        sink.error(
            ErrorKind::Limit,
            Span::new(at, at + 1),
            format!(
                "conditions are nested {depth} levels deep here; the limit is {}",
                limits::MAX_NESTING
            ),
            Some("flatten the condition, or split it over several rules".into()),
        );
        return None;
    }
    if let Some(program) = fastparse::parse(source, shared) {
        if cfg!(debug_assertions) {
            assert_same_as_pest(source, &program);
        }
        return Some(program);
    }
    parse_pest(source, sink)
}

/// Debug builds: the fast path's tree must be exactly pest's (spans
/// included: `Span`'s `PartialEq` ignores them, `Debug` does not), and pest
/// must have nothing to say about the program.
pub(crate) fn assert_same_as_pest(source: &str, fast: &Program) {
    let mut sink = Sink::new(source);
    let slow = parse_pest(source, &mut sink);
    assert!(
        sink.diags.is_empty(),
        "fast path accepted a program pest reports on: {:?}\n{source}",
        sink.diags
    );
    // Compact `{:?}`: the pretty form costs a fuzzer a fifth of its time.
    let (slow, fast) = (slow.map(|p| format!("{p:?}")), format!("{fast:?}"));
    assert!(
        slow.as_deref() == Some(fast.as_str()),
        "fast path and pest disagree on:\n{source}\n--- pest ---\n{slow:?}\n--- fast ---\n{fast}"
    );
}

/// The pest parser and the pairs-to-tree builder: the specification, and
/// the only source of syntax diagnostics. `parse` checks the limits first.
pub(crate) fn parse_pest(source: &str, sink: &mut Sink<'_>) -> Option<Program> {
    // A PEG backtracks, and an ordered choice that reads the same text
    // twice makes nested input exponential (found by fuzzing: 89 bytes of
    // `IF(IF (` took 13 s while `IF (` was tried both as `if` and as a
    // call). Four such choices are gone (`IF (`, `sum of (`, `where x <=
    // (`, `where x - if ...`); none of the `compile` fuzzer's corpus uses up
    // the budget now, but pest's call limit still bounds the work of any
    // that would. A clean program needs a few dozen rule calls per byte.
    let calls = limits::PARSER_CALLS_FLOOR
        .saturating_add(source.len().saturating_mul(limits::PARSER_CALLS_PER_BYTE));
    parse_pest_within(source, sink, calls)
}

/// [`parse_pest`] with a budget of `calls` grammar-rule calls.
fn parse_pest_within(source: &str, sink: &mut Sink<'_>, calls: usize) -> Option<Program> {
    let parsed = {
        let _turn = PEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
        pest::set_call_limit(std::num::NonZeroUsize::new(calls));
        Grammar::parse(Rule::program, source)
    };
    let pairs = match parsed {
        Ok(p) => p,
        Err(e) if matches!(&e.variant, ErrorVariant::CustomError { message } if message == "call limit reached") =>
        {
            sink.error(
                ErrorKind::Limit,
                Span::new(0, 0),
                "the program is too complex to parse: brackets or conditions nest in a way that takes too long to read".to_string(),
                Some("check for unbalanced or needless parentheses, or split the condition".into()),
            );
            return None;
        }
        Err(e) => {
            report_syntax_error(source, e, sink);
            return None;
        }
    };
    let mut b = Builder {
        sink,
        depth_error: false,
    };
    let mut items = Vec::new();
    for pair in pairs.into_iter().next()?.into_inner() {
        if pair.as_rule() == Rule::EOI {
            break;
        }
        if let Some(item) = b.item(pair) {
            items.push(item);
        }
    }
    if b.depth_error {
        return None;
    }
    Some(Program { items })
}

/// pest's call limit is one process-wide setting, read when a parse starts,
/// so pest parses take turns: each runs with exactly its own budget. (Clean
/// programs take the fast path and never wait here; pest runs for programs
/// with errors, where the limit keeps each turn short.)
static PEST_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A cheap lexical bound on how deeply the grammar will recurse: brackets
/// plus the keywords that open a nested condition (`where`, `has`, `else`,
/// `of`) within one rule. Rejecting deep input before pest sees it keeps the
/// recursive-descent parser (and everything after it) off the end of the stack.
fn nesting_too_deep(source: &str) -> Option<(usize, usize)> {
    use fastparse::IDENT_CHAR;
    /// What a byte starts.
    #[derive(Clone, Copy)]
    enum Class {
        /// Nothing this counts.
        Other,
        Quote,
        Comment,
        Open,
        Close,
        Word,
    }
    const CLASS: [Class; 256] = {
        let mut t = [Class::Other; 256];
        let mut c = 0;
        while c < 256 {
            let b = c as u8;
            t[c] = match b {
                b'"' => Class::Quote,
                b'#' => Class::Comment,
                b'(' | b'[' => Class::Open,
                b')' | b']' => Class::Close,
                _ if b.is_ascii_alphabetic() || b == b'_' => Class::Word,
                _ => Class::Other,
            };
            c += 1;
        }
        t
    };
    let bytes = source.as_bytes();
    let mut i = 0;
    let mut brackets = 0usize;
    let mut keywords = 0usize;
    while let Some(&c) = bytes.get(i) {
        match CLASS[usize::from(c)] {
            Class::Other => {}
            Class::Quote => {
                i += 1;
                while let Some(&b) = bytes.get(i) {
                    match b {
                        b'"' | b'\n' => break,
                        b'\\' => i += 2,
                        _ => i += 1,
                    }
                }
            }
            Class::Comment => {
                while bytes.get(i).is_some_and(|&b| b != b'\n') {
                    i += 1;
                }
            }
            Class::Open => {
                brackets += 1;
                if brackets + keywords > limits::MAX_NESTING {
                    return Some((i, brackets + keywords));
                }
            }
            Class::Close => brackets = brackets.saturating_sub(1),
            Class::Word => {
                let start = i;
                i += 1;
                while bytes.get(i).is_some_and(|&b| IDENT_CHAR[usize::from(b)]) {
                    i += 1;
                }
                let w = &bytes[start..i];
                // Only a word of two to five letters can be one of these:
                // its length and first letter pick the one to compare.
                let is = |k: &[u8]| w.eq_ignore_ascii_case(k);
                let (resets, nests) = match (w.len(), c | 0x20) {
                    (2, b'o') => (false, is(b"of")),
                    (3, b'h') => (false, is(b"has")),
                    (4, b'r') => (is(b"rule"), false),
                    (4, b't') => (is(b"then"), false),
                    (4, b'e') => (false, is(b"else")),
                    (5, b'w') => (false, is(b"where")),
                    _ => (false, false),
                };
                if resets {
                    keywords = 0;
                } else if nests {
                    keywords += 1;
                    if brackets + keywords > limits::MAX_NESTING {
                        return Some((start, brackets + keywords));
                    }
                }
                continue;
            }
        }
        i += 1;
    }
    None
}

/// The grammar's operator-precedence levels, from `or` down to `postfix`.
fn is_precedence_level(r: Rule) -> bool {
    matches!(
        r,
        Rule::or_expr
            | Rule::and_expr
            | Rule::not_expr
            | Rule::not_expr_f
            | Rule::cmp_expr
            | Rule::cmp_expr_f
            | Rule::additive
            | Rule::multiplicative
            | Rule::unary
            | Rule::postfix
    )
}

fn rule_name(r: &Rule) -> Option<&'static str> {
    Some(match r {
        Rule::EOI => "end of input",
        Rule::word | Rule::ident => "a name",
        Rule::keyword => "a keyword",
        Rule::number | Rule::integer | Rule::signed_int => "a number",
        Rule::percent => "a percentage",
        Rule::money => "an amount of money like `$100`",
        Rule::date => "a date like `2026-12-01`",
        Rule::time_of_day => "a time like `17:00`",
        Rule::string => "a quoted text like \"gold\"",
        Rule::program => "a program",
        Rule::header => "`program \"name\"`",
        Rule::rule => "`rule \"name\"`",
        Rule::oneliner => "`IF ... THEN ...`",
        r if is_precedence_level(*r) || matches!(r, Rule::expr | Rule::filter) => {
            "a value or condition"
        }
        Rule::cmp_op | Rule::cmp_binop => "a comparison like `>` or `is`",
        Rule::add_op | Rule::mul_op => "an operator",
        Rule::kw_then => "`then`",
        Rule::kw_points => "`points`",
        Rule::kw_of => "`of`",
        Rule::kw_in => "`in`",
        Rule::kw_and => "`and`",
        Rule::kw_or => "`or`",
        Rule::kw_else => "`else`",
        Rule::kw_by => "`by`",
        Rule::kw_to => "`to`",
        Rule::kw_where => "`where`",
        Rule::kw_has => "`has`",
        Rule::kw_rounded => "`rounded`",
        Rule::kw_group => "`group`",
        Rule::kw_expiry => "`expiry`",
        Rule::award | Rule::deduct => "an award",
        Rule::field_decl => "a field like `rating: number`",
        Rule::type_ref => "a type",
        Rule::trigger_head => "an event name",
        _ => return None,
    })
}

fn report_syntax_error(source: &str, e: pest::error::Error<Rule>, sink: &mut Sink<'_>) {
    let (start, end) = match e.location {
        InputLocation::Pos(p) => (p, p),
        InputLocation::Span((s, e)) => (s, e),
    };
    // Point at the whole offending word, not just its first byte.
    let rest = &source[start.min(source.len())..];
    let word_len: usize = rest
        .chars()
        .enumerate()
        .take_while(|(i, c)| *i == 0 || (!c.is_whitespace() && *i < 40))
        .map(|(_, c)| c.len_utf8())
        .sum();
    let end = end.max(start + word_len);
    let found = if rest.is_empty() {
        "end of the program".to_string()
    } else {
        format!("`{}`", &source[start..end.min(source.len())])
    };
    let mut expected: Vec<&str> = Vec::new();
    if let ErrorVariant::ParsingError { positives, .. } = &e.variant {
        for p in positives {
            if let Some(n) = rule_name(p) {
                if !expected.contains(&n) {
                    expected.push(n);
                }
            }
        }
    }
    let message = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("unexpected {found}; expected {}", join_or(&expected))
    };
    let hint = syntax_hint(source, start);
    sink.error(ErrorKind::Syntax, Span::new(start, end), message, hint);
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

fn syntax_hint(source: &str, at: usize) -> Option<String> {
    let line_start = source[..at.min(source.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line_end = source[at.min(source.len())..]
        .find('\n')
        .map_or(source.len(), |i| at + i);
    let line = source[line_start..line_end].to_ascii_lowercase();
    if line.starts_with("if ") && !line.contains(" then ") {
        return Some("a one-line rule reads `IF <condition> THEN <effect>`".into());
    }
    if line.contains("where") && (line.contains(" and ") || line.contains(" or ")) {
        return Some(
            "`where` takes one comparison; put several in brackets: `where (a and b)`".into(),
        );
    }
    if line.contains('\'') {
        return Some("text is written in double quotes: \"like this\"".into());
    }
    if line.trim_start().starts_with("award") || line.trim_start().starts_with("deduct") {
        return Some(
            "awards read `award 100 points`, `award 1 point per $1`, or `award 10% of purchase.amount`"
                .into(),
        );
    }
    None
}

struct Builder<'a, 's> {
    sink: &'a mut Sink<'s>,
    depth_error: bool,
}

/// The pair's span without the whitespace and comments that pest counts
/// into a rule when it looks past its end.
fn span_of(p: &Pair<'_, Rule>) -> Span {
    let start = p.as_span().start();
    Span::new(start, start + trimmed_len(p.as_str()))
}

fn trimmed_len(text: &str) -> usize {
    let mut t = text.trim_end();
    loop {
        let line_start = t.rfind('\n').map_or(0, |i| i + 1);
        match comment_start(&t[line_start..]) {
            Some(c) => t = t[..line_start + c].trim_end(),
            None => return t.len(),
        }
    }
}

/// Byte offset of a `#` comment in one line, ignoring `#` inside strings.
fn comment_start(line: &str) -> Option<usize> {
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_str => escaped = true,
            '"' => in_str = !in_str,
            '#' if !in_str => return Some(i),
            _ => {}
        }
    }
    None
}

fn name_of(p: &Pair<'_, Rule>) -> Name {
    Name {
        text: p.as_str().into(),
        span: span_of(p),
    }
}

fn unquote(p: Pair<'_, Rule>) -> Name {
    let span = span_of(&p);
    Name {
        text: unquote_span(span, p.get_input()).into(),
        span,
    }
}

pub(crate) fn parse_number(text: &str) -> Option<Decimal> {
    if !text.contains(',') {
        return Decimal::from_str(text).ok();
    }
    let clean: String = text.chars().filter(|c| *c != ',').collect();
    Decimal::from_str(&clean).ok()
}

impl Builder<'_, '_> {
    fn bad_literal(&mut self, p: &Pair<'_, Rule>, what: &str) {
        self.sink.error(
            ErrorKind::Syntax,
            span_of(p),
            format!("`{}` is not a valid {what}", p.as_str()),
            None,
        );
    }

    fn item(&mut self, p: Pair<'_, Rule>) -> Option<Item> {
        let span = span_of(&p);
        let kind = p.as_rule();
        let mut inner = p.into_inner();
        Some(match kind {
            Rule::header => Item::Header(unquote(inner.find(|x| x.as_rule() == Rule::string)?)),
            Rule::currency_setting => {
                Item::Currency(name_of(&inner.find(|x| x.as_rule() == Rule::word)?))
            }
            Rule::timezone_setting => {
                Item::Timezone(unquote(inner.find(|x| x.as_rule() == Rule::string)?))
            }
            Rule::rounding_setting => {
                let mut decimals = 0;
                let mut mode = RoundingMode::Down;
                for x in inner {
                    match x.as_rule() {
                        Rule::precision => {
                            if let Some(n) = x.into_inner().find(|y| y.as_rule() == Rule::integer) {
                                match n.as_str().parse::<u32>() {
                                    Ok(d) if d <= 8 => decimals = d,
                                    _ => self.sink.error(
                                        ErrorKind::InvalidSetting,
                                        span_of(&n),
                                        "points can have at most 8 decimals",
                                        None,
                                    ),
                                }
                            }
                        }
                        Rule::rounding_mode => {
                            mode = match x.into_inner().next().map(|y| y.as_rule()) {
                                Some(Rule::round_half_even) => RoundingMode::HalfEven,
                                Some(Rule::round_half_up) => RoundingMode::HalfUp,
                                Some(Rule::round_up) => RoundingMode::Up,
                                _ => RoundingMode::Down,
                            }
                        }
                        _ => {}
                    }
                }
                Item::Rounding {
                    decimals,
                    mode,
                    span,
                }
            }
            Rule::customer_decl => Item::CustomerDecl(
                inner
                    .filter(|x| x.as_rule() == Rule::field_decl)
                    .filter_map(|x| self.field_decl(x))
                    .collect(),
            ),
            Rule::event_decl => {
                let name = name_of(
                    &inner
                        .next()
                        .filter(|x| x.as_rule() == Rule::kw_event)
                        .and_then(|_| inner.next())?,
                );
                let fields = inner
                    .filter(|x| x.as_rule() == Rule::field_decl)
                    .filter_map(|x| self.field_decl(x))
                    .collect();
                Item::EventDecl { name, fields }
            }
            Rule::tiers_decl => Item::Tiers(
                inner
                    .filter(|x| x.as_rule() == Rule::word)
                    .map(|x| name_of(&x))
                    .collect(),
            ),
            Rule::rewards_decl => Item::Rewards(
                inner
                    .filter(|x| x.as_rule() == Rule::string)
                    .map(unquote)
                    .collect(),
            ),
            Rule::expiry_setting => Item::Expiry(
                self.expiry(inner.find(|x| x.as_rule() == Rule::expiry_spec)?)?,
                span,
            ),
            Rule::warning_setting => {
                let (n, unit) = self.count_unit(inner)?;
                Item::ExpiryWarning(n, unit, span)
            }
            Rule::pending_setting => {
                let (n, unit) = self.count_unit(inner)?;
                Item::Pending(n, unit, span)
            }
            Rule::program_cap => {
                let mut points = Decimal::ZERO;
                let mut kind = None;
                let mut period = PeriodUnit::Month;
                for x in inner {
                    match x.as_rule() {
                        Rule::number => points = self.decimal(&x)?,
                        Rule::point_kind => kind = x.into_inner().next().map(|y| name_of(&y)),
                        Rule::per_period => period = period_unit(x.into_inner().last()?),
                        _ => {}
                    }
                }
                Item::ProgramCap {
                    points,
                    kind,
                    period,
                    span,
                }
            }
            Rule::tier_qualification => {
                let mut metric = TierMetric::Spend;
                let mut window = Window::Ever;
                let mut thresholds = Vec::new();
                let mut review = None;
                for x in inner {
                    match x.as_rule() {
                        Rule::tier_metric => {
                            let m = x.into_inner().next()?;
                            metric = match m.as_rule() {
                                Rule::visits_metric => TierMetric::Visits,
                                Rule::points_metric => TierMetric::Points(
                                    m.into_inner()
                                        .find(|y| y.as_rule() == Rule::point_kind)
                                        .and_then(|k| k.into_inner().next())
                                        .map(|y| name_of(&y)),
                                ),
                                _ => TierMetric::Spend,
                            }
                        }
                        Rule::window => window = self.window(x)?,
                        Rule::tier_threshold => {
                            let mut it = x.into_inner();
                            let name = name_of(&it.next()?);
                            let v =
                                it.find(|y| matches!(y.as_rule(), Rule::money | Rule::number))?;
                            let money = v.as_rule() == Rule::money;
                            let text = v.as_str().trim_start_matches(['$', '€', '£']);
                            let Some(amount) = parse_number(text) else {
                                self.bad_literal(&v, "amount");
                                return None;
                            };
                            thresholds.push((name, amount, money));
                        }
                        Rule::tier_review => {
                            let mut n = 12;
                            let mut unit = PeriodUnit::Month;
                            let mut drop_one = false;
                            for y in x.into_inner() {
                                match y.as_rule() {
                                    Rule::integer => n = self.small_int(&y)?,
                                    Rule::period_unit => unit = period_unit(y),
                                    Rule::kw_drop => drop_one = true,
                                    _ => {}
                                }
                            }
                            review = Some((n, unit, drop_one));
                        }
                        _ => {}
                    }
                }
                Item::TierQualification {
                    metric,
                    window,
                    thresholds,
                    review,
                    span,
                }
            }
            Rule::kinds_decl => Item::PointKinds(
                inner
                    .filter(|x| x.as_rule() == Rule::word)
                    .map(|x| name_of(&x))
                    .collect(),
            ),
            Rule::rule => {
                let mut name = None;
                let mut clauses = Vec::new();
                for x in inner {
                    match x.as_rule() {
                        Rule::string => name = Some(unquote(x)),
                        Rule::kw_rule => {}
                        _ => {
                            if let Some(c) = self.clause(x) {
                                clauses.push(c);
                            }
                        }
                    }
                }
                Item::Rule(Rule_ {
                    name,
                    trigger: None,
                    clauses,
                    span,
                })
            }
            Rule::oneliner => {
                let mut trigger = None;
                let mut clauses = Vec::new();
                for x in inner {
                    match x.as_rule() {
                        Rule::kw_if | Rule::kw_then | Rule::kw_and => {}
                        Rule::trigger_head => trigger = Some(self.trigger_head(x)?),
                        Rule::expr => trigger = Some(Trigger::Expr(self.expr(x)?)),
                        _ => {
                            if let Some(c) = self.clause(x) {
                                clauses.push(c);
                            }
                        }
                    }
                }
                Item::Rule(Rule_ {
                    name: None,
                    trigger: trigger.map(Box::new),
                    clauses,
                    span,
                })
            }
            _ => return None,
        })
    }

    fn field_decl(&mut self, p: Pair<'_, Rule>) -> Option<FieldDecl> {
        let mut inner = p.into_inner();
        let name = name_of(&inner.next()?);
        let ty_pair = inner.next()?;
        let mut list = false;
        let mut optional = false;
        let mut ty = None;
        for t in ty_pair.into_inner() {
            match t.as_rule() {
                Rule::list_type => {
                    list = true;
                    ty = t
                        .into_inner()
                        .find(|y| y.as_rule() == Rule::word)
                        .map(|y| name_of(&y));
                }
                Rule::word => ty = Some(name_of(&t)),
                Rule::optional_mark => optional = true,
                _ => {}
            }
        }
        Some(FieldDecl {
            name,
            ty: ty?,
            list,
            optional,
        })
    }

    fn trigger_head(&mut self, p: Pair<'_, Rule>) -> Option<Trigger> {
        let mut event = None;
        let mut word = None;
        let mut cmp = None;
        let mut rest = None;
        for x in p.into_inner() {
            match x.as_rule() {
                Rule::ident => event = Some(name_of(&x)),
                Rule::trigger_word => word = x.into_inner().next().map(|y| name_of(&y)),
                Rule::trigger_cmp => {
                    let mut it = x.into_inner();
                    let op = cmp_op(it.next()?);
                    let rhs = self.expr(it.next()?)?;
                    cmp = Some((op, rhs));
                }
                Rule::trigger_rest => {
                    rest = Some(self.expr(x.into_inner().find(|y| y.as_rule() == Rule::expr)?)?)
                }
                _ => {}
            }
        }
        Some(Trigger::Head {
            event: event?,
            word,
            cmp,
            rest,
        })
    }

    fn clause(&mut self, p: Pair<'_, Rule>) -> Option<Clause> {
        let span = span_of(&p);
        let kind = p.as_rule();
        let mut inner = p.into_inner();
        Some(match kind {
            Rule::on_clause => Clause::On(name_of(&inner.last()?)),
            Rule::if_clause => Clause::If(self.expr(inner.last()?)?),
            Rule::active_clause => {
                let mut from = None;
                let mut to = None;
                let mut until = false;
                let mut seen_to = false;
                for x in inner {
                    match x.as_rule() {
                        Rule::kw_until => until = true,
                        Rule::kw_to => seen_to = true,
                        Rule::date => {
                            let d = self.date(&x)?;
                            if until || seen_to {
                                to = Some(d)
                            } else {
                                from = Some(d)
                            }
                        }
                        _ => {}
                    }
                }
                Clause::Active { from, to, span }
            }
            Rule::group_clause => {
                let mut best = false;
                let mut name = None;
                for x in inner {
                    match x.as_rule() {
                        Rule::group_mode => {
                            best = x.into_inner().next().map(|y| y.as_rule()) == Some(Rule::kw_best)
                        }
                        Rule::string => name = Some(unquote(x)),
                        _ => {}
                    }
                }
                Clause::Group { best, name: name? }
            }
            Rule::priority_clause => {
                let n = inner.find(|x| x.as_rule() == Rule::signed_int)?;
                match n.as_str().parse::<i64>() {
                    Ok(v) if v.abs() <= 1_000_000_000 => Clause::Priority(v, span),
                    _ => {
                        self.sink.error(
                            ErrorKind::InvalidRule,
                            span_of(&n),
                            "priority must be between -1000000000 and 1000000000",
                            None,
                        );
                        return None;
                    }
                }
            }
            Rule::stop_clause => Clause::Stop(span),
            Rule::limit_clause => {
                let l = inner.next()?;
                let is_times = l.as_rule() == Rule::times_limit;
                let mut n = 1u32;
                let mut total = false;
                let mut period = None;
                let mut every = None;
                let mut points = Decimal::ZERO;
                let mut kind = None;
                for x in l.into_inner() {
                    match x.as_rule() {
                        Rule::integer => n = self.small_int(&x)?,
                        Rule::number => points = self.decimal(&x)?,
                        Rule::in_total => total = true,
                        Rule::per_period => period = Some(period_unit(x.into_inner().last()?)),
                        Rule::every_span => {
                            let mut it = x.into_inner();
                            let k = self.small_int(&it.find(|y| y.as_rule() == Rule::integer)?)?;
                            let u = match it
                                .find(|y| y.as_rule() == Rule::span_unit)?
                                .into_inner()
                                .next()?
                                .as_rule()
                            {
                                Rule::kw_hours => SpanUnit::Hour,
                                Rule::kw_weeks => SpanUnit::Week,
                                _ => SpanUnit::Day,
                            };
                            every = Some((k, u));
                        }
                        Rule::point_kind => kind = x.into_inner().next().map(|y| name_of(&y)),
                        _ => {}
                    }
                }
                Clause::Limit(if is_times {
                    Limit::Times {
                        n,
                        total,
                        period,
                        every,
                        span,
                    }
                } else {
                    Limit::Points {
                        points,
                        kind,
                        period,
                        span,
                    }
                })
            }
            Rule::budget_clause => {
                let mut amount = Decimal::ZERO;
                let mut awards = false;
                for x in inner {
                    match x.as_rule() {
                        Rule::number => amount = self.decimal(&x)?,
                        Rule::kw_awards => awards = true,
                        _ => {}
                    }
                }
                Clause::Budget {
                    amount,
                    awards,
                    span,
                }
            }
            Rule::rule_expiry => Clause::Expiry(
                self.expiry(inner.find(|x| x.as_rule() == Rule::expiry_spec)?)?,
                span,
            ),
            _ => Clause::Effect(Box::new(self.effect(kind, inner, span)?)),
        })
    }

    fn effect(
        &mut self,
        kind: Rule,
        inner: pest::iterators::Pairs<'_, Rule>,
        span: Span,
    ) -> Option<Effect> {
        let effect_kind = match kind {
            Rule::award | Rule::deduct => {
                let deduct = kind == Rule::deduct;
                let mut bonus = false;
                let mut amount = None;
                let mut kind = None;
                let mut to = None;
                for x in inner {
                    match x.as_rule() {
                        Rule::kw_bonus => bonus = true,
                        Rule::target => to = Some(self.expr(x.into_inner().last()?)?),
                        Rule::percent_amount
                        | Rule::rate_amount
                        | Rule::each_amount
                        | Rule::fixed_amount => {
                            let (a, k) = self.amount(x)?;
                            amount = Some(a);
                            kind = k;
                        }
                        _ => {}
                    }
                }
                EffectKind::Award {
                    deduct,
                    bonus,
                    amount: amount?,
                    kind,
                    to,
                }
            }
            Rule::multiply => {
                let mut kind = None;
                let mut rule_name = None;
                let mut factor = None;
                for x in inner {
                    match x.as_rule() {
                        Rule::point_kind => kind = x.into_inner().next().map(|y| name_of(&y)),
                        Rule::string => rule_name = Some(unquote(x)),
                        Rule::additive => factor = Some(self.expr(x)?),
                        _ => {}
                    }
                }
                EffectKind::Multiply {
                    kind,
                    rule: rule_name,
                    factor: factor?,
                }
            }
            Rule::grant => {
                let mut reward = None;
                let mut to = None;
                for x in inner {
                    match x.as_rule() {
                        Rule::string => reward = Some(unquote(x)),
                        Rule::target => to = Some(self.expr(x.into_inner().last()?)?),
                        _ => {}
                    }
                }
                EffectKind::Grant {
                    reward: reward?,
                    to,
                }
            }
            Rule::set_tier => EffectKind::SetTier(name_of(&inner.last()?)),
            Rule::set_attr => {
                let mut exprs =
                    inner.filter(|x| matches!(x.as_rule(), Rule::postfix | Rule::additive));
                let target = self.expr(exprs.next()?)?;
                let value = self.expr(exprs.next()?)?;
                EffectKind::SetAttr { target, value }
            }
            Rule::tag_effect => EffectKind::Tag(unquote(inner.last()?)),
            Rule::redeem => {
                let mut points = None;
                let mut reward = None;
                for x in inner {
                    match x.as_rule() {
                        Rule::additive => points = Some(self.expr(x)?),
                        Rule::string => reward = Some(unquote(x)),
                        _ => {}
                    }
                }
                EffectKind::Redeem {
                    points: points?,
                    reward,
                }
            }
            Rule::notify => EffectKind::Notify(unquote(inner.last()?)),
            Rule::extend_expiry => {
                let mut amount = 0;
                let mut months = false;
                for x in inner {
                    match x.as_rule() {
                        Rule::integer => match x.as_str().parse::<u32>() {
                            Ok(v) if v <= 3650 => amount = v,
                            _ => {
                                self.sink.error(
                                    ErrorKind::InvalidRule,
                                    span_of(&x),
                                    "expiry can be extended by at most 3650 days or months",
                                    None,
                                );
                                return None;
                            }
                        },
                        Rule::kw_months => months = true,
                        _ => {}
                    }
                }
                EffectKind::ExtendExpiry { amount, months }
            }
            _ => return None,
        };
        Some(Effect {
            kind: effect_kind,
            span,
        })
    }

    fn amount(&mut self, p: Pair<'_, Rule>) -> Option<(Amount, Option<Name>)> {
        let amount_rule = p.as_rule();
        let mut kind = None;
        let mut exprs = Vec::new();
        let mut pct = None;
        let mut mode = RateMode::Per;
        let mut var = None;
        let mut filter = None;
        let mut list = None;
        for x in p.into_inner() {
            match x.as_rule() {
                Rule::point_kind => kind = x.into_inner().next().map(|y| name_of(&y)),
                Rule::percent => {
                    let t = x.as_str().trim_end_matches('%');
                    match parse_number(t) {
                        Some(v) => pct = Some((v, span_of(&x))),
                        None => {
                            self.bad_literal(&x, "percentage");
                            return None;
                        }
                    }
                }
                Rule::rate_mode
                    if x.clone().into_inner().next().map(|y| y.as_rule())
                        == Some(Rule::every_mode) =>
                {
                    mode = RateMode::Every;
                }
                Rule::word => var = Some(name_of(&x)),
                Rule::postfix => list = Some(self.expr(x)?),
                Rule::filter => filter = Some(self.expr(x)?),
                Rule::additive => exprs.push(self.expr(x)?),
                _ => {}
            }
        }
        let mut exprs = exprs.into_iter();
        let amount = match amount_rule {
            Rule::percent_amount => {
                let (pct, pct_span) = pct?;
                Amount::Percent {
                    pct,
                    pct_span,
                    of: exprs.next()?,
                }
            }
            Rule::rate_amount => Amount::Rate {
                points: exprs.next()?,
                mode,
                unit: exprs.next()?,
                of: exprs.next(),
            },
            Rule::each_amount => Amount::Each {
                points: exprs.next()?,
                var: var?,
                list: list?,
                filter,
            },
            _ => Amount::Fixed(exprs.next()?),
        };
        Some((amount, kind))
    }

    fn small_int(&mut self, p: &Pair<'_, Rule>) -> Option<u32> {
        match p.as_str().parse::<u32>() {
            Ok(v) if v <= 100_000 => Some(v),
            _ => {
                self.sink.error(
                    ErrorKind::Syntax,
                    span_of(p),
                    format!("`{}` is too large here", p.as_str()),
                    None,
                );
                None
            }
        }
    }

    /// The `N days|weeks|months|years` inside a setting, window or expiry.
    fn count_unit(&mut self, pairs: pest::iterators::Pairs<'_, Rule>) -> Option<(u32, PeriodUnit)> {
        let mut n = None;
        let mut unit = None;
        for x in pairs {
            match x.as_rule() {
                Rule::integer => n = Some(self.small_int(&x)?),
                Rule::period_unit => unit = Some(period_unit(x)),
                _ => {}
            }
        }
        Some((n?, unit?))
    }

    fn decimal(&mut self, p: &Pair<'_, Rule>) -> Option<Decimal> {
        match parse_number(p.as_str()) {
            Some(v) => Some(v),
            None => {
                self.bad_literal(p, "number");
                None
            }
        }
    }

    fn window(&mut self, p: Pair<'_, Rule>) -> Option<Window> {
        let span = span_of(&p);
        let w = p.into_inner().next()?;
        Some(match w.as_rule() {
            Rule::kw_ever => Window::Ever,
            Rule::kw_today => Window::Today,
            Rule::window_this => Window::This(period_unit(w.into_inner().last()?)),
            _ => {
                let (n, unit) = self.count_unit(w.into_inner())?;
                if n == 0 {
                    self.sink.error(
                        ErrorKind::InvalidRule,
                        span,
                        "a window must be at least 1 long",
                        None,
                    );
                    return None;
                }
                Window::Last(n, unit)
            }
        })
    }

    fn expiry(&mut self, p: Pair<'_, Rule>) -> Option<ExpirySpec> {
        let e = p.into_inner().next()?;
        Some(match e.as_rule() {
            Rule::kw_never => ExpirySpec::Never,
            Rule::expiry_end => ExpirySpec::EndOf(period_unit(
                e.into_inner().find(|x| x.as_rule() == Rule::period_unit)?,
            )),
            _ => {
                let (n, unit) = self.count_unit(e.into_inner())?;
                ExpirySpec::After(n, unit)
            }
        })
    }

    fn date(&mut self, p: &Pair<'_, Rule>) -> Option<NaiveDate> {
        match NaiveDate::parse_from_str(p.as_str(), "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                self.bad_literal(p, "date");
                None
            }
        }
    }

    fn check_depth(&mut self, e: &Expr, depth: usize) -> bool {
        if depth > limits::MAX_EXPR_DEPTH {
            if !self.depth_error {
                self.sink.error(
                    ErrorKind::Limit,
                    e.span,
                    format!(
                        "this expression is nested more than {} levels deep",
                        limits::MAX_EXPR_DEPTH
                    ),
                    Some("split it into smaller conditions or rules".into()),
                );
            }
            self.depth_error = true;
            return false;
        }
        true
    }

    /// Build an expression. Chains (`a + b + c`) are folded left; the tree
    /// depth is tracked so no later recursive pass can overflow the stack.
    fn expr(&mut self, p: Pair<'_, Rule>) -> Option<Expr> {
        self.expr_d(p).map(|(e, _)| e)
    }

    fn expr_d(&mut self, p: Pair<'_, Rule>) -> Option<(Expr, usize)> {
        // Skip the precedence levels that only wrap one child without
        // recursing: a bracket costs one frame instead of ten, which keeps
        // the 32 levels of nesting allowed well inside small stacks
        // (test threads, WebAssembly).
        let mut p = p;
        loop {
            let single = match p.as_rule() {
                Rule::expr | Rule::filter | Rule::paren => true,
                r if is_precedence_level(r) => p.clone().into_inner().nth(1).is_none(),
                _ => false,
            };
            if !single {
                break;
            }
            p = p.into_inner().next()?;
        }
        let span = span_of(&p);
        let kind = p.as_rule();
        let mut inner = p.into_inner();
        let b = Box::new;
        let r = match kind {
            Rule::expr | Rule::filter | Rule::paren => return self.expr_d(inner.next()?),
            Rule::or_expr | Rule::and_expr => {
                let (mut acc, mut d) = self.expr_d(inner.next()?)?;
                while let Some(op) = inner.next() {
                    let (rhs, rd) = self.expr_d(inner.next()?)?;
                    let sp = acc.span.to(rhs.span);
                    let _ = op;
                    acc = Expr::new(
                        if kind == Rule::or_expr {
                            ExprKind::Or(Box::new([acc, rhs]))
                        } else {
                            ExprKind::And(Box::new([acc, rhs]))
                        },
                        sp,
                    );
                    d = d.max(rd) + 1;
                    if !self.check_depth(&acc, d) {
                        return None;
                    }
                }
                (acc, d)
            }
            Rule::not_expr | Rule::not_expr_f => {
                let parts: Vec<_> = inner.collect();
                let nots = parts.iter().filter(|x| x.as_rule() == Rule::not_op).count();
                let (mut e, mut d) = self.expr_d(parts.last()?.clone())?;
                // `not not x` is `x`; keep one `not` when the count is odd.
                if nots % 2 == 1 {
                    e = Expr::new(ExprKind::Not(b(e)), span);
                    d += 1;
                }
                (e, d)
            }
            Rule::cmp_expr | Rule::cmp_expr_f => {
                let (lhs, ld) = self.expr_d(inner.next()?)?;
                let Some(tail) = inner.next() else {
                    return Some((lhs, ld));
                };
                let tail_rule = tail.as_rule();
                let parts: Vec<_> = tail.into_inner().collect();
                let negated = parts.iter().any(|x| x.as_rule() == Rule::negation);
                let mut operands = Vec::new();
                let mut depth = ld;
                for x in parts.iter().filter(|x| x.as_rule() == Rule::additive) {
                    let (e, d) = self.expr_d(x.clone())?;
                    depth = depth.max(d);
                    operands.push(e);
                }
                let mut ops = operands.into_iter();
                let kind = match tail_rule {
                    Rule::between_op => {
                        ExprKind::Between(negated, b(lhs), b(ops.next()?), b(ops.next()?))
                    }
                    Rule::set_op => ExprKind::IsSet(negated, b(lhs)),
                    Rule::in_op => ExprKind::In(negated, b(lhs), b(ops.next()?)),
                    Rule::text_op => {
                        let verb = parts.iter().find(|x| x.as_rule() == Rule::text_verb)?;
                        let op = match verb.clone().into_inner().next()?.as_rule() {
                            Rule::kw_contains => TextOp::Contains,
                            Rule::kw_starts => TextOp::StartsWith,
                            Rule::kw_ends => TextOp::EndsWith,
                            _ => TextOp::Matches,
                        };
                        ExprKind::TextTest(op, negated, b(lhs), b(ops.next()?))
                    }
                    _ => {
                        let op =
                            cmp_op(parts.iter().find(|x| x.as_rule() == Rule::cmp_op)?.clone());
                        ExprKind::Cmp(op, Box::new([lhs, ops.next()?]))
                    }
                };
                (Expr::new(kind, span), depth + 1)
            }
            Rule::additive | Rule::multiplicative => {
                let (mut acc, mut d) = self.expr_d(inner.next()?)?;
                while let Some(op) = inner.next() {
                    let (rhs, rd) = self.expr_d(inner.next()?)?;
                    let op = match op.as_str() {
                        "+" => ArithOp::Add,
                        "-" => ArithOp::Sub,
                        "*" => ArithOp::Mul,
                        _ => ArithOp::Div,
                    };
                    let sp = acc.span.to(rhs.span);
                    acc = Expr::new(ExprKind::Arith(op, b(acc), b(rhs)), sp);
                    d = d.max(rd) + 1;
                    if !self.check_depth(&acc, d) {
                        return None;
                    }
                }
                (acc, d)
            }
            Rule::unary => {
                let parts: Vec<_> = inner.collect();
                let negs = parts.iter().filter(|x| x.as_rule() == Rule::neg_op).count();
                let (mut e, mut d) = self.expr_d(parts.last()?.clone())?;
                if negs % 2 == 1 {
                    // Fold `-<literal>` into the literal.
                    e = match e.kind {
                        ExprKind::Number(v) => Expr::new(ExprKind::Number(-v), span),
                        ExprKind::Money(v, c) => Expr::new(ExprKind::Money(-v, c), span),
                        ExprKind::Percent(v) => Expr::new(ExprKind::Percent(-v), span),
                        kind => {
                            d += 1;
                            Expr::new(ExprKind::Neg(b(Expr::new(kind, e.span))), span)
                        }
                    };
                }
                (e, d)
            }
            Rule::postfix => {
                let (mut acc, mut d) = self.expr_d(inner.next()?)?;
                for f in inner {
                    let sp = acc.span.to(span_of(&f));
                    acc = Expr::new(ExprKind::Field(b(acc), name_of(&f)), sp);
                    d += 1;
                    if !self.check_depth(&acc, d) {
                        return None;
                    }
                }
                (acc, d)
            }
            Rule::number => match parse_number(inner_text(&span, self.sink.source)) {
                Some(v) => (Expr::new(ExprKind::Number(v), span), 1),
                None => {
                    self.sink
                        .error(ErrorKind::Syntax, span, "number is too large", None);
                    return None;
                }
            },
            Rule::percent => {
                let t = inner_text(&span, self.sink.source).trim_end_matches('%');
                match parse_number(t) {
                    Some(v) => (Expr::new(ExprKind::Percent(v), span), 1),
                    None => {
                        self.sink
                            .error(ErrorKind::Syntax, span, "number is too large", None);
                        return None;
                    }
                }
            }
            Rule::money => {
                let t = inner_text(&span, self.sink.source);
                let sign = t.chars().next()?;
                match parse_number(&t[sign.len_utf8()..]) {
                    Some(v) => (Expr::new(ExprKind::Money(v, sign), span), 1),
                    None => {
                        self.sink
                            .error(ErrorKind::Syntax, span, "amount is too large", None);
                        return None;
                    }
                }
            }
            Rule::string => {
                let n = unquote_span(span, self.sink.source);
                (Expr::new(ExprKind::Str(n.into()), span), 1)
            }
            Rule::bool_lit => {
                let t = inner_text(&span, self.sink.source).eq_ignore_ascii_case("true");
                (Expr::new(ExprKind::Bool(t), span), 1)
            }
            Rule::date => {
                let t = inner_text(&span, self.sink.source);
                match NaiveDate::parse_from_str(t, "%Y-%m-%d") {
                    Ok(d) => (Expr::new(ExprKind::Date(d), span), 1),
                    Err(_) => {
                        self.sink.error(
                            ErrorKind::Syntax,
                            span,
                            format!("`{t}` is not a valid date"),
                            None,
                        );
                        return None;
                    }
                }
            }
            Rule::time_of_day => {
                let t = inner_text(&span, self.sink.source);
                let parsed = NaiveTime::parse_from_str(t, "%H:%M:%S")
                    .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"));
                match parsed {
                    Ok(v) => (Expr::new(ExprKind::Time(v), span), 1),
                    Err(_) => {
                        self.sink.error(
                            ErrorKind::Syntax,
                            span,
                            format!("`{t}` is not a valid time of day"),
                            Some("times are written 24-hour, like `17:30`".into()),
                        );
                        return None;
                    }
                }
            }
            Rule::ident | Rule::word => (
                Expr::new(
                    ExprKind::Name(inner_text(&span, self.sink.source).into()),
                    span,
                ),
                1,
            ),
            Rule::list_lit => {
                let mut items = Vec::new();
                let mut d = 0;
                for x in inner {
                    let (e, ed) = self.expr_d(x)?;
                    d = d.max(ed);
                    items.push(e);
                }
                (Expr::new(ExprKind::List(items), span), d + 1)
            }
            Rule::if_expr => {
                let parts: Vec<_> = inner
                    .filter(|x| matches!(x.as_rule(), Rule::expr | Rule::additive))
                    .collect();
                let mut es = Vec::new();
                let mut d = 0;
                for x in parts {
                    let (e, ed) = self.expr_d(x)?;
                    d = d.max(ed);
                    es.push(e);
                }
                let mut es = es.into_iter();
                let (c, t, e) = (es.next()?, es.next()?, es.next()?);
                (Expr::new(ExprKind::If(b(c), b(t), b(e)), span), d + 1)
            }
            Rule::quantifier => {
                let q = match inner.next()?.into_inner().next()?.as_rule() {
                    Rule::kw_any => Quant::Any,
                    Rule::kw_all | Rule::kw_every => Quant::All,
                    _ => Quant::None,
                };
                let var = name_of(&inner.next()?);
                let mut list = None;
                let mut body = None;
                let mut d = 0;
                for x in inner {
                    match x.as_rule() {
                        Rule::postfix => {
                            let (e, ed) = self.expr_d(x)?;
                            d = d.max(ed);
                            list = Some(e);
                        }
                        Rule::filter => {
                            let (e, ed) = self.expr_d(x)?;
                            d = d.max(ed);
                            body = Some(e);
                        }
                        _ => {}
                    }
                }
                (
                    Expr::new(ExprKind::Quant(q, var, b(list?), b(body?)), span),
                    d + 1,
                )
            }
            Rule::aggregate => {
                let a = inner.next()?;
                let count = a.as_rule() == Rule::count_agg;
                let mut agg = Agg::Count;
                let mut value = None;
                let mut var = None;
                let mut list = None;
                let mut filter = None;
                let mut d = 0;
                for x in a.into_inner() {
                    match x.as_rule() {
                        Rule::agg_kind => {
                            agg = match x.into_inner().next()?.as_rule() {
                                Rule::kw_sum => Agg::Sum,
                                Rule::kw_min => Agg::Min,
                                _ => Agg::Max,
                            }
                        }
                        Rule::word => var = Some(name_of(&x)),
                        Rule::additive | Rule::postfix | Rule::filter => {
                            let r = x.as_rule();
                            let (e, ed) = self.expr_d(x)?;
                            d = d.max(ed);
                            match r {
                                Rule::additive => value = Some(b(e)),
                                Rule::postfix => list = Some(b(e)),
                                _ => filter = Some(b(e)),
                            }
                        }
                        _ => {}
                    }
                }
                if count {
                    agg = Agg::Count;
                    value = None;
                }
                (
                    Expr::new(
                        ExprKind::Agg {
                            agg,
                            value,
                            var: var?,
                            list: list?,
                            filter,
                        },
                        span,
                    ),
                    d + 1,
                )
            }
            Rule::history => {
                let h = inner.next()?;
                let hk = h.as_rule();
                let mut parts: Vec<Pair<'_, Rule>> = h.into_inner().collect();
                let window_pair = parts
                    .iter()
                    .position(|x| x.as_rule() == Rule::window)
                    .map(|i| parts.remove(i));
                let window = match window_pair {
                    Some(w) => self.window(w)?,
                    None => Window::Ever,
                };
                let word = parts
                    .iter()
                    .rev()
                    .find(|x| x.as_rule() == Rule::word)
                    .map(name_of);
                let hist = match hk {
                    Rule::hist_count => History::Count(word?, window),
                    Rule::hist_sum => {
                        let path = parts.into_iter().find(|x| x.as_rule() == Rule::postfix)?;
                        History::Sum(b(self.expr(path)?), window)
                    }
                    Rule::hist_points => History::Points(
                        parts
                            .into_iter()
                            .find(|x| x.as_rule() == Rule::point_kind)
                            .and_then(|k| k.into_inner().next())
                            .map(|y| name_of(&y)),
                        window,
                    ),
                    Rule::first_event => History::First(word?),
                    Rule::streak => {
                        History::Streak(parts.iter().any(|x| x.as_rule() == Rule::kw_weeks), word?)
                    }
                    _ => History::DaysSinceLast(word?),
                };
                (Expr::new(ExprKind::History(hist), span), 2)
            }
            Rule::of_call => {
                let f = match inner.next()?.into_inner().next()?.as_rule() {
                    Rule::kw_anniversary => OfFn::Anniversary,
                    Rule::kw_months => OfFn::Month,
                    Rule::kw_year => OfFn::Year,
                    Rule::kw_weekday => OfFn::Weekday,
                    Rule::kw_day => OfFn::Day,
                    _ => OfFn::Hour,
                };
                let (arg, d) = self.expr_d(inner.find(|x| x.as_rule() == Rule::postfix)?)?;
                (Expr::new(ExprKind::Of(f, b(arg)), span), d + 1)
            }
            Rule::days_since => {
                let mut f = OfFn::DaysSince;
                let mut arg = None;
                for x in inner {
                    match x.as_rule() {
                        Rule::kw_until => f = OfFn::DaysUntil,
                        Rule::postfix => arg = Some(self.expr_d(x)?),
                        _ => {}
                    }
                }
                let (arg, d) = arg?;
                (Expr::new(ExprKind::Of(f, b(arg)), span), d + 1)
            }
            Rule::call => {
                let name = name_of(&inner.next()?);
                let mut args = Vec::new();
                let mut d = 0;
                for x in inner {
                    let (e, ed) = self.expr_d(x)?;
                    d = d.max(ed);
                    args.push(e);
                }
                (Expr::new(ExprKind::Call(name, args), span), d + 1)
            }
            _ => return None,
        };
        if !self.check_depth(&r.0, r.1) {
            return None;
        }
        Some(r)
    }
}

fn inner_text<'s>(span: &Span, source: &'s str) -> &'s str {
    &source[span.start as usize..span.end as usize]
}

pub(crate) fn unquote_span(span: Span, source: &str) -> String {
    let raw = inner_text(&span, source);
    let inner = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    if !inner.contains('\\') {
        return inner.to_string();
    }
    let mut text = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => text.push('\n'),
                Some('t') => text.push('\t'),
                Some(other) => text.push(other),
                None => {}
            }
        } else {
            text.push(c);
        }
    }
    text
}

fn cmp_op(p: Pair<'_, Rule>) -> CmpOp {
    let t = p.as_str().to_ascii_lowercase();
    let t: Vec<&str> = t.split_whitespace().collect();
    match t.as_slice() {
        [">="] => CmpOp::Ge,
        ["<="] => CmpOp::Le,
        ["!="] | ["is", "not"] => CmpOp::Ne,
        [">"] => CmpOp::Gt,
        ["<"] => CmpOp::Lt,
        _ => CmpOp::Eq,
    }
}

type Rule_ = crate::ast::Rule;

fn period_unit(p: Pair<'_, Rule>) -> PeriodUnit {
    match p.into_inner().next().map(|x| x.as_rule()) {
        Some(Rule::kw_weeks) => PeriodUnit::Week,
        Some(Rule::kw_months) => PeriodUnit::Month,
        Some(Rule::kw_years) => PeriodUnit::Year,
        _ => PeriodUnit::Day,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The call budget is what stops a parse that backtracks too much: a
    /// text with a syntax error gets that syntax error within the normal
    /// budget, and only the limit diagnostic (no syntax error) within a
    /// tiny one.
    #[test]
    fn a_parse_over_its_call_budget_gets_the_limit_diagnostic() {
        let src = "rule \"x\" on purchase if (purchase.amount > $10 award 1 point\n";
        let mut sink = Sink::new(src);
        assert!(parse_pest(src, &mut sink).is_none());
        assert_eq!(sink.diags.len(), 1);
        assert_eq!(sink.diags[0].kind, ErrorKind::Syntax, "{:?}", sink.diags);

        let mut sink = Sink::new(src);
        assert!(parse_pest_within(src, &mut sink, 50).is_none());
        assert_eq!(sink.diags.len(), 1, "{:?}", sink.diags);
        assert_eq!(sink.diags[0].kind, ErrorKind::Limit);
        assert!(sink.diags[0].message.contains("too complex"));
        assert!(sink.diags[0].hint.is_some());
    }
}
