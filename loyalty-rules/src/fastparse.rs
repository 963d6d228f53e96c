//! A hand-written fast path for the parser.
//!
//! `grammar/loyalty.pest` stays the language's specification and the only
//! source of syntax diagnostics. This module is a byte-level transcription
//! of the same PEG (same ordered choices, same greedy repetitions, same
//! implicit whitespace and comments between tokens) that builds the
//! `ast::Program` the pest parser plus `parser::Builder` build, spans
//! included. It declines (returns `None`) whenever it is not sure: on any
//! syntax error, and wherever the builder would report a diagnostic or drop
//! a node. The caller then runs the pest path, so every diagnostic stays as
//! it was. The rule is one-directional: when this accepts, pest accepts and
//! builds the same tree with no diagnostics. Debug builds check that on
//! every call (`parser::parse`).

use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use rust_decimal::Decimal;

use crate::ast::*;
use crate::limits;
use crate::parser::{parse_number, unquote_span};

/// Parse `source`, or `None` when the pest path must decide. Names share
/// `shared` (which must be `source`), or a copy of `source` made here.
pub(crate) fn parse(source: &str, shared: Option<&Arc<str>>) -> Option<Program> {
    debug_assert!(shared.is_none_or(|s| **s == *source));
    let mut p = P {
        src: source,
        shared: shared.map_or_else(|| Arc::from(source), Arc::clone),
        b: source.as_bytes(),
        lower: source.as_bytes().to_ascii_lowercase(),
        pos: 0,
        end: 0,
        bail: false,
        wlen: 0,
        fuel: source.len().saturating_mul(4).saturating_add(4096),
    };
    // A byte order mark at the very start is whitespace to pest.
    if p.b.starts_with("\u{FEFF}".as_bytes()) {
        p.pos = 3;
    }
    p.skip();
    let mut items = Vec::new();
    while p.pos < p.b.len() {
        let item = p.item()?;
        if p.bail {
            return None;
        }
        items.push(item);
    }
    if p.bail {
        return None;
    }
    Some(Program { items })
}

/// `a + b` etc., as `fold_left` makes it.
fn arith(op: ArithOp, a: Expr, b: Expr) -> ExprKind {
    ExprKind::Arith(op, Box::new(a), Box::new(b))
}

/// An expression with its tree depth, as the builder counts it.
type E = (Expr, usize);

struct P<'s> {
    src: &'s str,
    /// `src`, shared by the tree's names (`Text::slice`).
    shared: Arc<str>,
    b: &'s [u8],
    /// The source in ASCII lower case, for keywords.
    lower: Vec<u8>,
    /// Start of the next token (whitespace and comments already skipped).
    pos: usize,
    /// End of the last token consumed: where a rule's span ends.
    end: usize,
    /// Set when pest would accept but the builder would complain (or when
    /// this parser is unsure): the whole parse is then declined.
    bail: bool,
    /// Length of the word at `pos` (0: none), kept by `skip`.
    wlen: usize,
    /// Operands left to try: backtracking over nested brackets can retry
    /// the same text exponentially often (found by fuzzing: 89 bytes of
    /// `IF(IF (` took seconds), so the fast path gives up and pest, with
    /// its call limit, decides.
    fuel: usize,
}

/// `a == b` byte by byte: words and keywords are short, and a call to
/// `memcmp` for each comparison cost more than the comparison.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// `ident_char`, by byte: a table is cheaper than two range tests on the
/// scans of every word.
pub(crate) const IDENT_CHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = (c as u8).is_ascii_alphanumeric() || c as u8 == b'_';
        c += 1;
    }
    t
};

fn is_ident_char(c: u8) -> bool {
    IDENT_CHAR[usize::from(c)]
}

/// The first alternative of `alts` that is a prefix of `rest` (lower case)
/// decides (PEG ordered choice); it must then end the word (`!ident_char`).
fn first_alt_ends_word(rest: &[u8], alts: &[&str]) -> bool {
    for a in alts {
        let a = a.as_bytes();
        if rest.len() >= a.len() && same(&rest[..a.len()], a) {
            return rest.len() == a.len();
        }
    }
    false
}

/// The grammar's `keyword` rule applied to a whole word (lower case).
fn is_keyword(w: &[u8]) -> bool {
    let alts: &[&str] = match w[0] {
        b'a' => &["nd", "ward", "ctive", "ny", "ll", "s"],
        b'b' => &["est", "onus", "etween", "y", "udget"],
        b'c' => &["ount", "ontains", "urrency"],
        b'd' => &["educt"],
        b'e' => &["lse", "xtend", "xclusive", "very", "ach", "nds", "ver"],
        b'f' => &["rom", "alse", "or"],
        b'g' => &["ive", "rant"],
        b'h' => &["as"],
        b'i' => &["f", "s", "n"],
        b'l' => &["ast"],
        b'm' => &["ultiply", "atches"],
        b'n' => &["ot", "otify", "o", "one"],
        b'o' => &["r", "f", "n", "nce"],
        b'p' => &["riority", "oints", "oint", "er", "rogram"],
        b'r' => &["ule", "ewards"],
        b's' => &["et", "top", "um", "tarts", "ince"],
        b't' => &["hen", "ag", "o", "rue", "iers", "imezone", "his"],
        b'u' => &["ntil"],
        b'w' => &["hen", "here", "ith"],
        _ => return false,
    };
    first_alt_ends_word(&w[1..], alts)
}

/// The grammar's `lead_word` rule applied to a whole word (lower case).
pub(crate) fn is_lead_word(w: &[u8]) -> bool {
    let Some(&first) = w.first() else {
        return false;
    };
    let alts: &[&str] = match first {
        b'a' => &["nniversary", "ny", "ll"],
        b'c' => &["ount"],
        b'd' => &["ays", "ay"],
        b'e' => &["very"],
        b'f' => &["alse", "irst"],
        b'h' => &["our"],
        b'i' => &["f"],
        b'm' => &["onths", "onth", "in", "ax"],
        b'n' => &["one", "o"],
        b'p' => &["oints", "oint"],
        b's' => &["um", "treak"],
        b't' => &["rue"],
        b'w' => &["eekday"],
        b'y' => &["ear"],
        _ => return false,
    };
    first_alt_ends_word(&w[1..], alts)
}

impl<'s> P<'s> {
    // ------------------------------------------------------------ lexing

    /// `(WHITESPACE | COMMENT)*`
    fn skip(&mut self) {
        let i = self.skip_from(self.pos);
        // U+FEFF is whitespace to pest but not to `str::trim_end`, which the
        // builder uses on spans: leave it to pest.
        if self.b.get(i) == Some(&0xEF) {
            self.bail = true;
        }
        self.pos = i;
        self.wlen = self.scan_word(i);
    }

    /// Where the whitespace and comments from `i` end (U+FEFF not counted).
    fn skip_from(&self, mut i: usize) -> usize {
        let b = self.b;
        while i < b.len() {
            match b[i] {
                b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                b'#' => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                _ => break,
            }
        }
        i
    }

    /// Consume `n` bytes as one token, then the whitespace after it.
    fn take(&mut self, n: usize) {
        self.pos += n;
        self.end = self.pos;
        self.skip();
    }

    /// `words ~ then`
    fn after<T>(&mut self, words: &[&str], then: fn(&mut Self) -> Option<T>) -> Option<T> {
        self.attempt(|p| {
            p.kws(words)?;
            then(p)
        })
    }

    /// The value of the first of `alts` whose keywords follow (consumed).
    fn pick_seq<T: Copy>(&mut self, alts: &[(&[&str], T)]) -> Option<T> {
        alts.iter()
            .find_map(|(words, v)| self.attempt(|p| p.kws(words)).map(|_| *v))
    }

    /// A sequence of keywords.
    fn kws(&mut self, words: &[&str]) -> Option<()> {
        words.iter().all(|w| self.kw(w)).then_some(())
    }

    /// The span of a rule that started at `start` and has just matched.
    fn span_from(&self, start: usize) -> Span {
        Span::new(start, self.end)
    }

    /// Like `attempt`, for a rule whose node takes the rule's span: `f`
    /// returns the node's maker.
    fn spanned<T, M: FnOnce(Span) -> T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Option<M>,
    ) -> Option<T> {
        let start = self.pos;
        self.attempt(f).map(|make| make(self.span_from(start)))
    }

    fn save(&self) -> (usize, usize, usize) {
        (self.pos, self.end, self.wlen)
    }

    fn restore(&mut self, s: (usize, usize, usize)) {
        (self.pos, self.end, self.wlen) = s;
    }

    /// Run `f`; on failure, put the position back (PEG backtracking).
    fn attempt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let s = self.save();
        let r = f(self);
        if r.is_none() {
            self.restore(s);
        }
        r
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// A literal punctuation byte.
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.take(1);
            true
        } else {
            false
        }
    }

    /// Length of the word (`(ASCII_ALPHA | "_") ~ ident_char*`) at `i`.
    fn scan_word(&self, i: usize) -> usize {
        let b = self.b;
        if i >= b.len() || !(b[i].is_ascii_alphabetic() || b[i] == b'_') {
            return 0;
        }
        let mut j = i + 1;
        while j < b.len() && is_ident_char(b[j]) {
            j += 1;
        }
        j - i
    }

    /// Where the token after the word at `pos` starts (a peek: nothing is
    /// consumed).
    fn after_word(&self) -> usize {
        self.skip_from(self.pos + self.wlen)
    }

    /// The word at `pos`, in lower case.
    fn lower_word(&self) -> &[u8] {
        &self.lower[self.pos..self.pos + self.wlen]
    }

    /// Length of the word at `pos` (0: none).
    fn word_len(&self) -> usize {
        self.wlen
    }

    /// The keyword `lit` (case-insensitive, not followed by an ident char).
    /// Inlined: most calls are a length test that fails.
    #[inline]
    fn kw(&mut self, lit: &str) -> bool {
        let n = self.word_len();
        if n == lit.len() && same(self.lower_word(), lit.as_bytes()) {
            self.take(n);
            true
        } else {
            false
        }
    }

    /// Whether the word at `pos` is one of `alts`, without consuming it.
    #[inline]
    fn at_kw(&self, alts: &[&str]) -> bool {
        let n = self.word_len();
        let w = self.lower_word();
        n > 0 && alts.iter().any(|a| same(w, a.as_bytes()))
    }

    #[inline]
    fn kw_any(&mut self, alts: &[&str]) -> bool {
        if self.at_kw(alts) {
            let n = self.word_len();
            self.take(n);
            true
        } else {
            false
        }
    }

    /// The value of the first of `alts` whose keyword is the word at `pos`
    /// (consumed): an ordered choice of keywords.
    fn pick<T: Copy>(&mut self, alts: &[(&str, T)]) -> Option<T> {
        let n = self.word_len();
        let w = self.lower_word();
        let v = alts.iter().find(|(k, _)| n > 0 && same(w, k.as_bytes()))?.1;
        self.take(n);
        Some(v)
    }

    fn name_at(&self, start: usize, n: usize) -> Name {
        Name {
            text: Text::slice(&self.shared, start, start + n),
            span: Span::new(start, start + n),
        }
    }

    /// `word`
    fn word(&mut self) -> Option<Name> {
        let n = self.word_len();
        if n == 0 {
            return None;
        }
        let name = self.name_at(self.pos, n);
        self.take(n);
        Some(name)
    }

    /// `ident = !keyword ~ word`
    fn ident(&mut self) -> Option<Name> {
        let n = self.word_len();
        if n == 0 || is_keyword(self.lower_word()) {
            return None;
        }
        self.word()
    }

    fn digits_at(&self, i: usize) -> usize {
        let mut j = i;
        while j < self.b.len() && self.b[j].is_ascii_digit() {
            j += 1;
        }
        j - i
    }

    fn is_digit_at(&self, i: usize) -> bool {
        self.b.get(i).is_some_and(u8::is_ascii_digit)
    }

    fn ident_char_at(&self, i: usize) -> bool {
        self.b.get(i).is_some_and(|c| is_ident_char(*c))
    }

    /// Length of `number_text` at `i`.
    fn number_text_at(&self, i: usize) -> Option<usize> {
        let b = self.b;
        // grouped = ASCII_DIGIT{1,3} ~ ("," ~ ASCII_DIGIT{3} ~ !ASCII_DIGIT)+
        let lead = self.digits_at(i).min(3);
        if lead == 0 {
            return None;
        }
        let mut j = i + lead;
        let mut groups = 0;
        while j + 4 <= b.len()
            && b[j] == b','
            && b[j + 1..j + 4].iter().all(u8::is_ascii_digit)
            && !self.is_digit_at(j + 4)
        {
            j += 4;
            groups += 1;
        }
        if groups == 0 {
            j = i + self.digits_at(i);
        }
        // ("." ~ digits)?
        if b.get(j) == Some(&b'.') {
            let d = self.digits_at(j + 1);
            if d > 0 {
                j += 1 + d;
            }
        }
        Some(j - i)
    }

    /// `number = number_text ~ !ident_char`
    fn number_len(&self) -> Option<usize> {
        let n = self.number_text_at(self.pos)?;
        (!self.ident_char_at(self.pos + n)).then_some(n)
    }

    /// `integer = ASCII_DIGIT+ ~ !ident_char`
    fn integer_len(&self) -> Option<usize> {
        let n = self.digits_at(self.pos);
        (n > 0 && !self.ident_char_at(self.pos + n)).then_some(n)
    }

    /// `integer`, as the builder's `small_int` reads it.
    fn small_int(&mut self) -> Option<u32> {
        let t = self.integer_text()?;
        Some(self.small_value(t))
    }

    /// The builder's `small_int` check on an integer's text.
    fn small_value(&mut self, t: &str) -> u32 {
        match t.parse::<u32>() {
            Ok(v) if v <= 100_000 => v,
            _ => {
                self.bail = true;
                0
            }
        }
    }

    /// `integer` as text.
    fn integer_text(&mut self) -> Option<&'s str> {
        let n = self.integer_len()?;
        let t = &self.src[self.pos..self.pos + n];
        self.take(n);
        Some(t)
    }

    fn decimal(&mut self, text: &str) -> Decimal {
        match parse_number(text) {
            Some(v) => v,
            None => {
                self.bail = true;
                Decimal::ZERO
            }
        }
    }

    /// `number` as a decimal.
    fn number(&mut self) -> Option<Decimal> {
        let n = self.number_len()?;
        let v = self.decimal(&self.src[self.pos..self.pos + n]);
        self.take(n);
        Some(v)
    }

    /// `string`, unquoted.
    fn string(&mut self) -> Option<Name> {
        let b = self.b;
        let start = self.pos;
        if b.get(start) != Some(&b'"') {
            return None;
        }
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            match b.get(i)? {
                b'"' => break,
                b'\n' => return None,
                b'\\' => {
                    escaped = true;
                    // A line break inside a string confuses the builder's
                    // line-based span trimming: leave it to pest.
                    match b.get(i + 1)? {
                        b'\n' | b'\r' => {
                            self.bail = true;
                            return None;
                        }
                        _ => i += 2,
                    }
                }
                _ => i += 1,
            }
        }
        let span = Span::new(start, i + 1);
        let text = if escaped {
            unquote_span(span, self.src).into()
        } else {
            Text::slice(&self.shared, start + 1, i)
        };
        self.take(i + 1 - start);
        Some(Name { text, span })
    }

    /// `currency_sign`: its char and byte length.
    fn currency_sign(&self) -> Option<(char, usize)> {
        let rest = &self.b[self.pos..];
        if rest.starts_with(b"$") {
            Some(('$', 1))
        } else if rest.starts_with("€".as_bytes()) {
            Some(('€', 3))
        } else if rest.starts_with("£".as_bytes()) {
            Some(('£', 2))
        } else {
            None
        }
    }

    /// `money = currency_sign ~ number_text`: the sign, the number's text
    /// and the whole length.
    fn money_len(&self) -> Option<(char, usize, usize)> {
        let (sign, sl) = self.currency_sign()?;
        let n = self.number_text_at(self.pos + sl)?;
        Some((sign, sl, sl + n))
    }

    /// `date`
    fn date_len(&self) -> Option<usize> {
        let b = &self.b[self.pos..];
        let ok = b.len() >= 10
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[5..7].iter().all(u8::is_ascii_digit)
            && b[7] == b'-'
            && b[8..10].iter().all(u8::is_ascii_digit)
            && !self.ident_char_at(self.pos + 10);
        ok.then_some(10)
    }

    fn date_value(&mut self, n: usize) -> NaiveDate {
        match NaiveDate::parse_from_str(&self.src[self.pos..self.pos + n], "%Y-%m-%d") {
            Ok(d) => d,
            Err(_) => {
                self.bail = true;
                NaiveDate::default()
            }
        }
    }

    /// `date` as a value.
    fn date(&mut self) -> Option<NaiveDate> {
        let n = self.date_len()?;
        let d = self.date_value(n);
        self.take(n);
        Some(d)
    }

    /// `time_of_day`
    fn time_len(&self) -> Option<usize> {
        let i = self.pos;
        let h = self.digits_at(i).min(2);
        if h == 0 {
            return None;
        }
        let mut j = i + h;
        let two_digits = |k: usize| self.is_digit_at(k) && self.is_digit_at(k + 1);
        if self.b.get(j) != Some(&b':') || !two_digits(j + 1) {
            return None;
        }
        j += 3;
        if self.b.get(j) == Some(&b':') && two_digits(j + 1) {
            j += 3;
        }
        (!self.ident_char_at(j)).then_some(j - i)
    }

    fn depth_ok(&mut self, d: usize) -> bool {
        if d > limits::MAX_EXPR_DEPTH {
            self.bail = true;
            false
        } else {
            true
        }
    }

    // ------------------------------------------------------------ items

    fn item(&mut self) -> Option<Item> {
        let n = self.word_len();
        if n == 0 {
            return None;
        }
        match self.lower[self.pos] {
            b'r' => self.rule().or_else(|| self.rewards_decl()),
            b'p' => self
                .header()
                .or_else(|| self.rounding_setting())
                .or_else(|| self.expiry_setting())
                .or_else(|| self.pending_setting())
                .or_else(|| self.kinds_decl()),
            b'c' => self.currency_setting().or_else(|| self.customer_decl()),
            b't' => self
                .timezone_setting()
                .or_else(|| self.tier_qualification())
                .or_else(|| self.tiers_decl()),
            b'w' => self.warning_setting(),
            b'a' => self.program_cap(),
            b'e' => self.event_decl(),
            b'i' => self.oneliner(),
            _ => None,
        }
    }

    fn header(&mut self) -> Option<Item> {
        self.after(&["program"], Self::string).map(Item::Header)
    }

    fn currency_setting(&mut self) -> Option<Item> {
        self.after(&["currency"], Self::word).map(Item::Currency)
    }

    fn timezone_setting(&mut self) -> Option<Item> {
        self.after(&["timezone"], Self::string).map(Item::Timezone)
    }

    fn kw_points(&mut self) -> bool {
        self.kw_any(&["points", "point"])
    }

    /// `rounding_setting = kw_points ~ precision ~ ","? ~ kw_rounded ~ rounding_mode`
    fn rounding_setting(&mut self) -> Option<Item> {
        self.spanned(|p| {
            p.kw_points().then_some(())?;
            let decimals = if p.kw("are") {
                p.kw("whole").then_some(0)?
            } else if p.kw("have") {
                let t = p.integer_text()?;
                p.kw_any(&["decimals", "decimal"]).then_some(())?;
                match t.parse::<u32>() {
                    Ok(d) if d <= 8 => d,
                    _ => {
                        p.bail = true;
                        0
                    }
                }
            } else {
                return None;
            };
            p.eat(b',');
            p.kws(&["rounded"])?;
            let mode = p.pick_seq(&[
                (&["half", "even"], RoundingMode::HalfEven),
                (&["half", "up"], RoundingMode::HalfUp),
                (&["down"], RoundingMode::Down),
                (&["up"], RoundingMode::Up),
            ])?;
            Some(move |span| Item::Rounding {
                decimals,
                mode,
                span,
            })
        })
    }

    /// `expiry_spec = expiry_after | expiry_end | kw_never`
    fn expiry_spec(&mut self) -> Option<ExpirySpec> {
        if let Some(e) = self.attempt(|p| {
            let n = p.small_int()?;
            let u = p.period_unit()?;
            (p.kw("after") && p.kw("earning")).then_some(ExpirySpec::After(n, u))
        }) {
            return Some(e);
        }
        if let Some(e) = self
            .after(&["at", "end", "of"], Self::period_unit)
            .map(ExpirySpec::EndOf)
        {
            return Some(e);
        }
        self.kw("never").then_some(ExpirySpec::Never)
    }

    fn expiry_setting(&mut self) -> Option<Item> {
        self.spanned(|p| {
            (p.kw_points() && p.kw("expire")).then_some(())?;
            let spec = p.expiry_spec()?;
            Some(move |span| Item::Expiry(spec, span))
        })
    }

    fn warning_setting(&mut self) -> Option<Item> {
        self.spanned(|p| {
            p.kws(&["warn"])?;
            let n = p.small_int()?;
            let u = p.period_unit()?;
            (p.kw("before") && p.kw_points() && p.kw("expire")).then_some(())?;
            Some(move |span| Item::ExpiryWarning(n, u, span))
        })
    }

    fn pending_setting(&mut self) -> Option<Item> {
        self.spanned(|p| {
            (p.kw_points() && p.kw("are") && p.kw("pending") && p.kw("for")).then_some(())?;
            let n = p.small_int()?;
            let u = p.period_unit()?;
            Some(move |span| Item::Pending(n, u, span))
        })
    }

    /// `point_kind = ident`
    fn point_kind(&mut self) -> Option<Name> {
        self.ident()
    }

    /// `per_customer = kw_per ~ kw_customer`
    fn per_customer(&mut self) -> bool {
        self.attempt(|p| (p.kw("per") && p.kw("customer")).then_some(()))
            .is_some()
    }

    /// `per_period = kw_per ~ period_unit`
    fn per_period(&mut self) -> Option<PeriodUnit> {
        self.after(&["per"], Self::period_unit)
    }

    /// `program_cap = kw_at ~ kw_most ~ number ~ point_kind? ~ kw_points ~ per_customer? ~ per_period`
    fn program_cap(&mut self) -> Option<Item> {
        self.spanned(|p| {
            p.kws(&["at", "most"])?;
            let points = p.number()?;
            let kind = p.point_kind();
            p.kw_points().then_some(())?;
            p.per_customer();
            let period = p.per_period()?;
            Some(move |span| Item::ProgramCap {
                points,
                kind,
                period,
                span,
            })
        })
    }

    /// `period_unit = kw_daysw | kw_weeks | kw_months | kw_years`
    fn period_unit(&mut self) -> Option<PeriodUnit> {
        self.pick(&[
            ("days", PeriodUnit::Day),
            ("day", PeriodUnit::Day),
            ("weeks", PeriodUnit::Week),
            ("week", PeriodUnit::Week),
            ("months", PeriodUnit::Month),
            ("month", PeriodUnit::Month),
            ("years", PeriodUnit::Year),
            ("year", PeriodUnit::Year),
        ])
    }

    /// `field_decl = word ~ ":" ~ type_ref`
    fn field_decl(&mut self) -> Option<FieldDecl> {
        self.attempt(|p| {
            let name = p.word()?;
            p.eat(b':').then_some(())?;
            // type_ref = (list_type | word) ~ optional_mark?
            let (ty, list) = match p.after(&["list", "of"], Self::word) {
                Some(w) => (w, true),
                None => (p.word()?, false),
            };
            let optional = p.eat(b'?');
            Some(FieldDecl {
                name,
                ty,
                list,
                optional,
            })
        })
    }

    fn field_decls(&mut self) -> Option<Vec<FieldDecl>> {
        let mut fields = vec![self.field_decl()?];
        while let Some(f) = self.field_decl() {
            fields.push(f);
        }
        Some(fields)
    }

    fn customer_decl(&mut self) -> Option<Item> {
        self.after(&["customer", "has"], Self::field_decls)
            .map(Item::CustomerDecl)
    }

    fn event_decl(&mut self) -> Option<Item> {
        self.attempt(|p| {
            p.kws(&["event"])?;
            let name = p.word()?;
            let fields = p
                .attempt(|p| {
                    p.kws(&["has"])?;
                    p.field_decls()
                })
                .unwrap_or_default();
            Some(Item::EventDecl { name, fields })
        })
    }

    /// `window = window_last | window_this | kw_ever | kw_today`
    fn window(&mut self) -> Option<Window> {
        if let Some(w) = self.attempt(|p| {
            p.kws(&["in", "last"])?;
            let n = p.small_int()?;
            let u = p.period_unit()?;
            if n == 0 {
                p.bail = true;
            }
            Some(Window::Last(n, u))
        }) {
            return Some(w);
        }
        if let Some(w) = self.after(&["this"], Self::period_unit).map(Window::This) {
            return Some(w);
        }
        self.pick(&[("ever", Window::Ever), ("today", Window::Today)])
    }

    /// `tier_qualification = kw_tiers ~ kw_by ~ tier_metric ~ window ~ tier_threshold+ ~ tier_review?`
    fn tier_qualification(&mut self) -> Option<Item> {
        self.spanned(|p| {
            p.kws(&["tiers", "by"])?;
            let metric = if p.kw("spend") {
                TierMetric::Spend
            } else if p.kw("visits") {
                TierMetric::Visits
            } else {
                p.attempt(|p| {
                    let kind = p.point_kind();
                    p.kw_points().then_some(TierMetric::Points(kind))
                })?
            };
            let window = p.window()?;
            let mut thresholds = vec![p.tier_threshold()?];
            while let Some(t) = p.tier_threshold() {
                thresholds.push(t);
            }
            let review = p.attempt(|p| {
                p.kws(&["review", "every"])?;
                let n = p.small_int()?;
                let unit = p.period_unit()?;
                let drop_one = p
                    .attempt(|p| {
                        p.eat(b',');
                        (p.kw("drop") && p.kw("one") && p.kw("tier") && p.kw("at") && p.kw("most"))
                            .then_some(())
                    })
                    .is_some();
                Some((n, unit, drop_one))
            });
            Some(move |span| Item::TierQualification {
                metric,
                window,
                thresholds,
                review,
                span,
            })
        })
    }

    /// `tier_threshold = word ~ kw_from ~ (money | number)`
    fn tier_threshold(&mut self) -> Option<(Name, Decimal, bool)> {
        self.attempt(|p| {
            let name = p.word()?;
            p.kws(&["from"])?;
            if let Some((_, sl, n)) = p.money_len() {
                let v = p.decimal(&p.src[p.pos + sl..p.pos + n]);
                p.take(n);
                Some((name, v, true))
            } else {
                Some((name, p.number()?, false))
            }
        })
    }

    /// `word ~ ("," ~ word)*` or the same with strings.
    fn list_of(&mut self, one: fn(&mut Self) -> Option<Name>) -> Option<Vec<Name>> {
        let v = self.comma_list(one);
        (!v.is_empty()).then_some(v)
    }

    fn tiers_decl(&mut self) -> Option<Item> {
        self.attempt(|p| {
            p.kws(&["tiers"])?;
            p.eat(b':');
            Some(Item::Tiers(p.list_of(Self::word)?))
        })
    }

    fn rewards_decl(&mut self) -> Option<Item> {
        self.attempt(|p| {
            p.kws(&["rewards"])?;
            p.eat(b':');
            Some(Item::Rewards(p.list_of(Self::string)?))
        })
    }

    fn kinds_decl(&mut self) -> Option<Item> {
        self.attempt(|p| {
            (p.kw_points() && p.kw("kinds")).then_some(())?;
            p.eat(b':');
            Some(Item::PointKinds(p.list_of(Self::word)?))
        })
    }

    // ------------------------------------------------------------ rules

    /// `rule = kw_rule ~ string ~ rule_clause*`
    fn rule(&mut self) -> Option<Item> {
        self.spanned(|p| {
            p.kws(&["rule"])?;
            let name = p.string()?;
            let mut clauses = Vec::with_capacity(4);
            while let Some(c) = p.clause() {
                clauses.push(c);
            }
            Some(move |span| {
                Item::Rule(Rule {
                    name: Some(name),
                    trigger: None,
                    clauses,
                    span,
                })
            })
        })
    }

    /// `rule_clause`, alternatives in the grammar's order.
    fn clause(&mut self) -> Option<Clause> {
        let n = self.word_len();
        if n == 0 || self.bail {
            return None;
        }
        let first = self.lower[self.pos];
        match first {
            b'o' => {
                if let Some(c) = self.on_clause() {
                    return Some(c);
                }
            }
            b'i' | b'w' => {
                if let Some(c) = self.if_clause() {
                    return Some(c);
                }
            }
            _ => {}
        }
        match first {
            b'a' => {
                if let Some(c) = self.active_clause() {
                    return Some(c);
                }
            }
            b'p' => {
                if let Some(c) = self.priority_clause() {
                    return Some(c);
                }
            }
            b's' => {
                if let Some(c) = self.stop_clause() {
                    return Some(c);
                }
            }
            _ => {}
        }
        if matches!(first, b'i' | b'e' | b'b') {
            if let Some(c) = self.group_clause() {
                return Some(c);
            }
        }
        if matches!(first, b'a' | b'o') {
            if let Some(c) = self.limit_clause() {
                return Some(c);
            }
        }
        if first == b'b' {
            if let Some(c) = self.budget_clause() {
                return Some(c);
            }
        }
        if first == b'p' {
            if let Some(c) = self.spanned(|p| {
                (p.kw_points() && p.kw("expire")).then_some(())?;
                let spec = p.expiry_spec()?;
                Some(move |span| Clause::Expiry(spec, span))
            }) {
                return Some(c);
            }
        }
        self.effect().map(Clause::Effect)
    }

    fn on_clause(&mut self) -> Option<Clause> {
        self.after(&["on"], Self::word).map(Clause::On)
    }

    /// `if_clause = !(kw_if ~ trigger_head) ~ (kw_if | kw_when) ~ expr ~ !kw_then`
    fn if_clause(&mut self) -> Option<Clause> {
        self.attempt(|p| {
            if p.at_kw(&["if"]) {
                let s = p.save();
                p.kw("if");
                let head = p.trigger_head().is_some();
                p.restore(s);
                if head {
                    return None;
                }
            }
            p.kw_any(&["if", "when"]).then_some(())?;
            let (e, _) = p.expr()?;
            if p.at_kw(&["then"]) {
                return None;
            }
            Some(Clause::If(e))
        })
    }

    /// `active_clause = kw_active ~ (kw_from ~ date ~ (kw_to ~ date)? | kw_until ~ date)`
    fn active_clause(&mut self) -> Option<Clause> {
        self.spanned(|p| {
            p.kws(&["active"])?;
            let (from, to) = if let Some(r) = p.attempt(|p| {
                p.kws(&["from"])?;
                let from = p.date()?;
                let to = p.after(&["to"], Self::date);
                Some((Some(from), to))
            }) {
                r
            } else {
                p.kws(&["until"])?;
                (None, Some(p.date()?))
            };
            Some(move |span| Clause::Active { from, to, span })
        })
    }

    /// `group_clause = kw_in? ~ group_mode ~ kw_group ~ string ~ ","?`
    fn group_clause(&mut self) -> Option<Clause> {
        self.attempt(|p| {
            p.kw("in");
            let best = p.pick(&[("exclusive", false), ("best", true)])?;
            p.kws(&["group"])?;
            let name = p.string()?;
            p.eat(b',');
            Some(Clause::Group { best, name })
        })
    }

    /// `priority_clause = kw_priority ~ signed_int ~ ","?`
    fn priority_clause(&mut self) -> Option<Clause> {
        self.attempt(|p| {
            let start = p.pos;
            p.kws(&["priority"])?;
            let i = p.pos;
            let neg = usize::from(p.b.get(i) == Some(&b'-'));
            let d = p.digits_at(i + neg);
            if d == 0 || p.ident_char_at(i + neg + d) {
                return None;
            }
            let v = match p.src[i..i + neg + d].parse::<i64>() {
                Ok(v) if v.abs() <= 1_000_000_000 => v,
                _ => {
                    p.bail = true;
                    0
                }
            };
            p.take(neg + d);
            let span = p.span_from(start);
            p.eat(b',');
            // The builder's span is the clause's, comma included.
            Some(Clause::Priority(v, Span::new(span.start as usize, p.end)))
        })
    }

    /// `stop_clause = kw_stop ~ kw_processing?`
    fn stop_clause(&mut self) -> Option<Clause> {
        let start = self.pos;
        if !self.kw("stop") {
            return None;
        }
        self.kw("processing");
        Some(Clause::Stop(self.span_from(start)))
    }

    /// `limit_clause = times_limit | points_limit`
    fn limit_clause(&mut self) -> Option<Clause> {
        let start = self.pos;
        if let Some(l) = self.attempt(|p| {
            // (kw_at ~ kw_most ~ (kw_once | integer ~ kw_times) | kw_once)
            let n = if let Some(n) = p.attempt(|p| {
                p.kws(&["at", "most"])?;
                if p.kw("once") {
                    return Some(1);
                }
                let t = p.integer_text()?;
                p.kw_any(&["times", "time"]).then_some(())?;
                Some(p.small_value(t))
            }) {
                n
            } else {
                p.kw("once").then_some(1)?
            };
            // (per_customer | in_total)?
            let mut total = false;
            if !p.per_customer() {
                total = p
                    .attempt(|p| (p.kw("in") && p.kw("total")).then_some(()))
                    .is_some();
            }
            // (per_period | every_span)?
            let mut period = None;
            let mut every = None;
            if let Some(u) = p.per_period() {
                period = Some(u);
            } else {
                every = p.attempt(|p| {
                    p.kws(&["every"])?;
                    let k = p.small_int()?;
                    let u = p.pick(&[
                        ("hours", SpanUnit::Hour),
                        ("hour", SpanUnit::Hour),
                        ("days", SpanUnit::Day),
                        ("day", SpanUnit::Day),
                        ("weeks", SpanUnit::Week),
                        ("week", SpanUnit::Week),
                    ])?;
                    Some((k, u))
                });
            }
            Some(Limit::Times {
                n,
                total,
                period,
                every,
                span: p.span_from(start),
            })
        }) {
            return Some(Clause::Limit(l));
        }
        // points_limit = kw_at ~ kw_most ~ number ~ kw_bonus? ~ point_kind? ~ kw_points ~ per_customer? ~ per_period?
        self.attempt(|p| {
            p.kws(&["at", "most"])?;
            let points = p.number()?;
            p.kw("bonus");
            let kind = p.point_kind();
            p.kw_points().then_some(())?;
            p.per_customer();
            let period = p.per_period();
            Some(Clause::Limit(Limit::Points {
                points,
                kind,
                period,
                span: p.span_from(start),
            }))
        })
    }

    /// `budget_clause = kw_budget ~ number ~ (kw_points | kw_awards)`
    fn budget_clause(&mut self) -> Option<Clause> {
        self.spanned(|p| {
            p.kws(&["budget"])?;
            let amount = p.number()?;
            let awards = p.pick(&[
                ("points", false),
                ("point", false),
                ("awards", true),
                ("award", true),
            ])?;
            Some(move |span| Clause::Budget {
                amount,
                awards,
                span,
            })
        })
    }

    // ------------------------------------------------------------ one-liners

    /// `oneliner = kw_if ~ trigger ~ kw_then ~ effect ~ ((kw_and | ",") ~ effect)*`
    fn oneliner(&mut self) -> Option<Item> {
        self.spanned(|p| {
            p.kws(&["if"])?;
            let trigger = match p.trigger_head() {
                Some(t) => t,
                None => Trigger::Expr(p.expr()?.0),
            };
            p.kws(&["then"])?;
            let mut clauses = vec![Clause::Effect(p.effect()?)];
            loop {
                let s = p.save();
                if !(p.kw("and") || p.eat(b',')) {
                    break;
                }
                match p.effect() {
                    Some(e) => clauses.push(Clause::Effect(e)),
                    None => {
                        p.restore(s);
                        break;
                    }
                }
            }
            Some(move |span| {
                Item::Rule(Rule {
                    name: None,
                    trigger: Some(Box::new(trigger)),
                    clauses,
                    span,
                })
            })
        })
    }

    /// `trigger_head = ident ~ trigger_word? ~ trigger_cmp? ~ trigger_rest? ~ &kw_then`
    fn trigger_head(&mut self) -> Option<Trigger> {
        self.attempt(|p| {
            let event = p.ident()?;
            let word = p.ident();
            let cmp = p.attempt(|p| {
                let op = p.cmp_op()?;
                Some((op, p.additive()?.0))
            });
            let rest = p.attempt(|p| {
                p.kws(&["and"])?;
                Some(p.expr()?.0)
            });
            if !p.at_kw(&["then"]) {
                return None;
            }
            Some(Trigger::Head {
                event,
                word,
                cmp,
                rest,
            })
        })
    }

    // ------------------------------------------------------------ effects

    /// `effect`, alternatives in the grammar's order (boxed here, where it
    /// is made, as `Clause::Effect` keeps it: one copy fewer).
    fn effect(&mut self) -> Option<Box<Effect>> {
        let n = self.word_len();
        if n == 0 {
            return None;
        }
        let start = self.pos;
        let kind = match self.lower[self.pos] {
            b'a' => self.attempt(|p| {
                p.kws(&["award"])?;
                p.award(false)
            }),
            b'd' => self.attempt(|p| {
                p.kws(&["deduct"])?;
                p.award(true)
            }),
            b'm' => self.multiply(),
            b'g' => self.attempt(|p| {
                p.kw_any(&["grant", "give"]).then_some(())?;
                p.kw_any(&["reward", "voucher", "coupon"]);
                let reward = p.string()?;
                let to = p.target();
                Some(EffectKind::Grant { reward, to })
            }),
            b's' => self.set_tier().or_else(|| self.set_attr()),
            b't' => self.attempt(|p| {
                p.kws(&["tag"])?;
                p.kw("customer");
                p.kw("with");
                Some(EffectKind::Tag(p.string()?))
            }),
            b'n' => self
                .after(&["notify"], Self::string)
                .map(EffectKind::Notify),
            b'e' => self.extend_expiry(),
            b'r' => self.redeem(),
            _ => None,
        }?;
        Some(Box::new(Effect {
            kind,
            span: self.span_from(start),
        }))
    }

    /// `target = kw_to ~ postfix`
    fn target(&mut self) -> Option<Expr> {
        self.attempt(|p| {
            p.kws(&["to"])?;
            Some(p.postfix()?.0)
        })
    }

    /// The rest of `award = kw_award ~ kw_bonus? ~ amount ~ target?` (or `deduct`).
    fn award(&mut self, deduct: bool) -> Option<EffectKind> {
        let bonus = !deduct && self.kw("bonus");
        let (amount, kind) = self.amount()?;
        let to = self.target();
        Some(EffectKind::Award {
            deduct,
            bonus,
            amount,
            kind,
            to,
        })
    }

    /// `amount = percent_amount | rate_amount | each_amount | fixed_amount`
    fn amount(&mut self) -> Option<(Amount, Option<Name>)> {
        // percent_amount = percent ~ kw_of ~ additive ~ (kw_as? ~ point_kind? ~ kw_points)?
        if let Some(r) = self.attempt(|p| {
            let n = p.number_text_at(p.pos)?;
            if p.b.get(p.pos + n) != Some(&b'%') {
                return None;
            }
            let pct_span = Span::new(p.pos, p.pos + n + 1);
            let pct = p.decimal(&p.src[p.pos..p.pos + n]);
            p.take(n + 1);
            p.kws(&["of"])?;
            let (of, _) = p.additive()?;
            let kind = p
                .attempt(|p| {
                    p.kw("as");
                    let kind = p.point_kind();
                    p.kw_points().then_some(kind)
                })
                .flatten();
            Some((Amount::Percent { pct, pct_span, of }, kind))
        }) {
            return Some(r);
        }
        // The other three start with the same `additive`: parse it once.
        let s = self.save();
        let (points, _) = self.additive()?;
        let after = self.save();
        // rate_amount = additive ~ point_kind? ~ kw_points ~ rate_mode ~ additive ~ (kw_of ~ additive)?
        if let Some((kind, mode, unit, of)) = self.attempt(|p| {
            let kind = p.point_kind();
            p.kw_points().then_some(())?;
            let mode = if p.kw("per") {
                RateMode::Per
            } else if p
                .attempt(|p| (p.kw("for") && p.kw("every")).then_some(()))
                .is_some()
            {
                RateMode::Every
            } else {
                return None;
            };
            let (unit, _) = p.additive()?;
            let of = p.attempt(|p| {
                p.kws(&["of"])?;
                Some(p.additive()?.0)
            });
            Some((kind, mode, unit, of))
        }) {
            return Some((
                Amount::Rate {
                    points,
                    mode,
                    unit,
                    of,
                },
                kind,
            ));
        }
        // each_amount = additive ~ point_kind? ~ kw_points ~ kw_for ~ kw_each ~ word ~ kw_in ~ postfix ~ (kw_where ~ filter)?
        if let Some((kind, var, list, filter)) = self.attempt(|p| {
            let kind = p.point_kind();
            (p.kw_points() && p.kw("for") && p.kw("each")).then_some(())?;
            let var = p.word()?;
            p.kws(&["in"])?;
            let (list, _) = p.postfix()?;
            let filter = p.where_filter().map(|(e, _)| e);
            Some((kind, var, list, filter))
        }) {
            return Some((
                Amount::Each {
                    points,
                    var,
                    list,
                    filter,
                },
                kind,
            ));
        }
        // fixed_amount = additive ~ (point_kind? ~ kw_points)?
        debug_assert_eq!(self.save(), after);
        let _ = s;
        let kind = self
            .attempt(|p| {
                let kind = p.point_kind();
                p.kw_points().then_some(kind)
            })
            .flatten();
        Some((Amount::Fixed(points), kind))
    }

    /// `multiply = kw_multiply ~ point_kind? ~ kw_points ~ (kw_of ~ kw_rule ~ string)? ~ kw_by ~ additive`
    fn multiply(&mut self) -> Option<EffectKind> {
        self.attempt(|p| {
            p.kws(&["multiply"])?;
            let kind = p.point_kind();
            p.kw_points().then_some(())?;
            let rule = p.after(&["of", "rule"], Self::string);
            p.kws(&["by"])?;
            let (factor, _) = p.additive()?;
            Some(EffectKind::Multiply { kind, rule, factor })
        })
    }

    /// `set_tier = kw_set ~ kw_tier ~ (kw_to | "=")? ~ word`
    fn set_tier(&mut self) -> Option<EffectKind> {
        self.attempt(|p| {
            p.kws(&["set", "tier"])?;
            let _ = p.kw("to") || p.eat(b'=');
            Some(EffectKind::SetTier(p.word()?))
        })
    }

    /// `set_attr = kw_set ~ postfix ~ (kw_to | "=") ~ additive`
    fn set_attr(&mut self) -> Option<EffectKind> {
        self.attempt(|p| {
            p.kws(&["set"])?;
            let (target, _) = p.postfix()?;
            (p.kw("to") || p.eat(b'=')).then_some(())?;
            let (value, _) = p.additive()?;
            Some(EffectKind::SetAttr { target, value })
        })
    }

    /// `extend_expiry = kw_extend ~ kw_expiry ~ kw_by ~ integer ~ (kw_months | kw_days)`
    fn extend_expiry(&mut self) -> Option<EffectKind> {
        self.attempt(|p| {
            p.kws(&["extend", "expiry", "by"])?;
            let t = p.integer_text()?;
            let months = p.pick(&[("months", true), ("month", true), ("days", false)])?;
            let amount = match t.parse::<u32>() {
                Ok(v) if v <= 3650 => v,
                _ => {
                    p.bail = true;
                    0
                }
            };
            Some(EffectKind::ExtendExpiry { amount, months })
        })
    }

    /// `redeem = kw_redeem ~ additive ~ kw_points ~ (kw_for ~ kw_reward ~ string)?`
    fn redeem(&mut self) -> Option<EffectKind> {
        self.attempt(|p| {
            p.kws(&["redeem"])?;
            let (points, _) = p.additive()?;
            p.kw_points().then_some(())?;
            let reward = p.attempt(|p| {
                (p.kw("for") && p.kw_any(&["reward", "voucher", "coupon"])).then_some(())?;
                p.string()
            });
            Some(EffectKind::Redeem { points, reward })
        })
    }

    // ------------------------------------------------------------ expressions

    /// `expr = or_expr`; `or_expr = and_expr ~ (kw_or ~ and_expr)*`
    fn expr(&mut self) -> Option<E> {
        self.fold_left(
            |p| p.kw("or").then_some(()),
            Self::and_expr,
            |_, a, b| ExprKind::Or(Box::new([a, b])),
        )
    }

    /// `and_expr = not_expr ~ (kw_and ~ not_expr)*`
    fn and_expr(&mut self) -> Option<E> {
        self.fold_left(
            |p| p.kw("and").then_some(()),
            Self::not_expr,
            |_, a, b| ExprKind::And(Box::new([a, b])),
        )
    }

    /// `next ~ (op ~ next)*`, folded to the left as the builder folds it.
    /// Generic rather than over function pointers: each precedence level
    /// gets its own copy, with direct (inlinable) calls to the level below.
    #[inline]
    fn fold_left<O>(
        &mut self,
        op: impl Fn(&mut Self) -> Option<O>,
        next: impl Fn(&mut Self) -> Option<E>,
        make: impl Fn(O, Expr, Expr) -> ExprKind,
    ) -> Option<E> {
        let (mut acc, mut d) = next(self)?;
        loop {
            let s = self.save();
            let Some(o) = op(self) else {
                break;
            };
            let Some((rhs, rd)) = next(self) else {
                self.restore(s);
                break;
            };
            let sp = acc.span.to(rhs.span);
            acc = Expr::new(make(o, acc, rhs), sp);
            d = d.max(rd) + 1;
            if !self.depth_ok(d) {
                return None;
            }
        }
        Some((acc, d))
    }

    /// `kw_in ~ group_mode` here, without consuming it: the group clause
    /// after a filter, which `cmp_start` does not take for a comparison.
    fn at_group_clause(&mut self) -> bool {
        let s = self.save();
        let r = self.kw("in") && self.at_kw(&["best", "exclusive"]);
        self.restore(s);
        r
    }

    /// `kw_where ~ filter` (`filter = not_expr_f`)
    fn where_filter(&mut self) -> Option<E> {
        self.attempt(|p| {
            p.kw_any(&["where", "has"]).then_some(())?;
            p.not_expr_in(true)
        })
    }

    /// `not_expr = not_op* ~ cmp_expr`
    fn not_expr(&mut self) -> Option<E> {
        self.not_expr_in(false)
    }

    /// `not_expr`, or with `filter` `not_expr_f = not_op* ~ cmp_expr_f`
    fn not_expr_in(&mut self, filter: bool) -> Option<E> {
        self.attempt(|p| {
            let start = p.pos;
            let mut nots = 0;
            while p.kw("not") {
                nots += 1;
            }
            let (e, d) = p.cmp_expr(filter)?;
            if nots % 2 == 1 {
                let d = d + 1;
                if !p.depth_ok(d) {
                    return None;
                }
                Some((Expr::new(ExprKind::Not(Box::new(e)), p.span_from(start)), d))
            } else {
                Some((e, d))
            }
        })
    }

    /// `cmp_expr = additive ~ cmp_tail?`, or with `filter`
    /// `cmp_expr_f = additive ~ !(add_op | mul_op) ~ (cmp_tail | !cmp_start)`: `may_tail` below
    /// is `cmp_start`.
    fn cmp_expr(&mut self, filter: bool) -> Option<E> {
        let start = self.pos;
        let (lhs, ld) = self.additive()?;
        // cmp_expr_f: `!(add_op | mul_op)` after the left-hand side
        if filter && matches!(self.peek(), Some(b'+' | b'-' | b'*' | b'/')) {
            return None;
        }
        // Every tail starts with one of these: most comparisons have none.
        let may_tail = match self.peek() {
            Some(b'<' | b'>' | b'=' | b'!') => true,
            Some(_) => {
                self.at_kw(&[
                    "is", "not", "between", "in", "contains", "starts", "ends", "matches",
                ]) && !self.at_group_clause()
            }
            None => false,
        };
        if !may_tail {
            return Some((lhs, ld));
        }
        let b = Box::new;
        // between_op = kw_is? ~ negation? ~ kw_between ~ additive ~ kw_and ~ additive
        let tail = self
            .attempt(|p| {
                p.kw("is");
                let neg = p.kw("not");
                p.kws(&["between"])?;
                let (lo, d1) = p.additive()?;
                p.kws(&["and"])?;
                let (hi, d2) = p.additive()?;
                Some((Tail::Between(neg, lo, hi), d1.max(d2)))
            })
            // set_op = kw_is ~ negation? ~ kw_set
            .or_else(|| {
                self.attempt(|p| {
                    p.kws(&["is"])?;
                    let neg = p.kw("not");
                    p.kw("set").then_some((Tail::Set(neg), 0))
                })
            })
            // in_op = (kw_is ~ negation? | negation)? ~ kw_in ~ additive
            .or_else(|| {
                self.attempt(|p| {
                    p.kw("is");
                    let neg = p.kw("not");
                    p.kws(&["in"])?;
                    let (x, d) = p.additive()?;
                    Some((Tail::In(neg, x), d))
                })
            })
            // text_op = negation? ~ text_verb ~ additive
            .or_else(|| {
                self.attempt(|p| {
                    let neg = p.kw("not");
                    let op = p.pick_seq(&[
                        (&["contains"], TextOp::Contains),
                        (&["starts", "with"], TextOp::StartsWith),
                        (&["ends", "with"], TextOp::EndsWith),
                        (&["matches"], TextOp::Matches),
                    ])?;
                    let (x, d) = p.additive()?;
                    Some((Tail::Text(op, neg, x), d))
                })
            })
            // cmp_binop = cmp_op ~ additive
            .or_else(|| {
                self.attempt(|p| {
                    let op = p.cmp_op()?;
                    let (x, d) = p.additive()?;
                    Some((Tail::Cmp(op, x), d))
                })
            });
        let Some((tail, td)) = tail else {
            return if filter { None } else { Some((lhs, ld)) };
        };
        let kind = match tail {
            Tail::Between(neg, lo, hi) => ExprKind::Between(neg, b(lhs), b(lo), b(hi)),
            Tail::Set(neg) => ExprKind::IsSet(neg, b(lhs)),
            Tail::In(neg, x) => ExprKind::In(neg, b(lhs), b(x)),
            Tail::Text(op, neg, x) => ExprKind::TextTest(op, neg, b(lhs), b(x)),
            Tail::Cmp(op, x) => ExprKind::Cmp(op, Box::new([lhs, x])),
        };
        let d = ld.max(td) + 1;
        if !self.depth_ok(d) {
            return None;
        }
        Some((Expr::new(kind, self.span_from(start)), d))
    }

    /// `cmp_op = ">=" | "<=" | "!=" | "==" | "=" | ">" | "<" | kw_is ~ kw_not | kw_is`
    fn cmp_op(&mut self) -> Option<CmpOp> {
        let rest = &self.b[self.pos..];
        let (op, n) = if rest.starts_with(b">=") {
            (CmpOp::Ge, 2)
        } else if rest.starts_with(b"<=") {
            (CmpOp::Le, 2)
        } else if rest.starts_with(b"!=") {
            (CmpOp::Ne, 2)
        } else if rest.starts_with(b"==") {
            (CmpOp::Eq, 2)
        } else if rest.starts_with(b"=") {
            (CmpOp::Eq, 1)
        } else if rest.starts_with(b">") {
            (CmpOp::Gt, 1)
        } else if rest.starts_with(b"<") {
            (CmpOp::Lt, 1)
        } else if self.kw("is") {
            let is_end = self.end;
            if self.kw("not") {
                // The builder reads `is not` from the text, which a comment
                // in between would change.
                if self.src[is_end..self.end - 3].contains('#') {
                    self.bail = true;
                }
                return Some(CmpOp::Ne);
            }
            return Some(CmpOp::Eq);
        } else {
            return None;
        };
        self.take(n);
        Some(op)
    }

    /// `additive = multiplicative ~ (add_op ~ multiplicative)*`
    fn additive(&mut self) -> Option<E> {
        let op = |p: &mut Self| p.pick_byte(&[(b'+', ArithOp::Add), (b'-', ArithOp::Sub)]);
        self.fold_left(op, Self::multiplicative, arith)
    }

    /// `multiplicative = unary ~ (mul_op ~ unary)*`
    fn multiplicative(&mut self) -> Option<E> {
        let op = |p: &mut Self| p.pick_byte(&[(b'*', ArithOp::Mul), (b'/', ArithOp::Div)]);
        self.fold_left(op, Self::unary, arith)
    }

    /// The value of the punctuation byte at `pos` (consumed).
    fn pick_byte<T: Copy>(&mut self, alts: &[(u8, T)]) -> Option<T> {
        let c = self.peek()?;
        let v = alts.iter().find(|(k, _)| *k == c)?.1;
        self.take(1);
        Some(v)
    }

    /// `unary = neg_op* ~ postfix`
    fn unary(&mut self) -> Option<E> {
        self.attempt(|p| {
            let start = p.pos;
            let mut negs = 0;
            while p.eat(b'-') {
                negs += 1;
            }
            let (e, mut d) = p.postfix()?;
            if negs % 2 == 0 {
                return Some((e, d));
            }
            let span = p.span_from(start);
            let e = match e.kind {
                ExprKind::Number(v) => Expr::new(ExprKind::Number(-v), span),
                ExprKind::Money(v, c) => Expr::new(ExprKind::Money(-v, c), span),
                ExprKind::Percent(v) => Expr::new(ExprKind::Percent(-v), span),
                kind => {
                    d += 1;
                    Expr::new(ExprKind::Neg(Box::new(Expr::new(kind, e.span))), span)
                }
            };
            if !p.depth_ok(d) {
                return None;
            }
            Some((e, d))
        })
    }

    /// `postfix = primary ~ ("." ~ word)*`
    fn postfix(&mut self) -> Option<E> {
        let (mut acc, mut d) = self.primary()?;
        loop {
            let s = self.save();
            if !self.eat(b'.') {
                break;
            }
            let Some(w) = self.word() else {
                self.restore(s);
                break;
            };
            let sp = acc.span.to(w.span);
            acc = Expr::new(ExprKind::Field(Box::new(acc), w), sp);
            d += 1;
            if !self.depth_ok(d) {
                return None;
            }
        }
        Some((acc, d))
    }

    fn leaf(&mut self, kind: ExprKind, n: usize) -> Option<E> {
        let span = Span::new(self.pos, self.pos + n);
        self.take(n);
        Some((Expr::new(kind, span), 1))
    }

    /// `primary`, alternatives in the grammar's order.
    fn primary(&mut self) -> Option<E> {
        if self.fuel == 0 {
            self.bail = true;
            return None;
        }
        self.fuel -= 1;
        let c = self.peek()?;
        if c.is_ascii_digit() {
            if let Some(n) = self.date_len() {
                let d = self.date_value(n);
                return self.leaf(ExprKind::Date(d), n);
            }
            if let Some(n) = self.time_len() {
                let t = &self.src[self.pos..self.pos + n];
                let v = NaiveTime::parse_from_str(t, "%H:%M:%S")
                    .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"));
                let v = match v {
                    Ok(v) => v,
                    Err(_) => {
                        self.bail = true;
                        NaiveTime::default()
                    }
                };
                return self.leaf(ExprKind::Time(v), n);
            }
        }
        if let Some((sign, sl, n)) = self.money_len() {
            let v = self.decimal(&self.src[self.pos + sl..self.pos + n]);
            return self.leaf(ExprKind::Money(v, sign), n);
        }
        if c.is_ascii_digit() {
            if let Some(n) = self.number_text_at(self.pos) {
                if self.b.get(self.pos + n) == Some(&b'%') {
                    let v = self.decimal(&self.src[self.pos..self.pos + n]);
                    return self.leaf(ExprKind::Percent(v), n + 1);
                }
            }
            if let Some(n) = self.number_len() {
                let v = self.decimal(&self.src[self.pos..self.pos + n]);
                return self.leaf(ExprKind::Number(v), n);
            }
            return None;
        }
        match c {
            b'"' => {
                let s = self.string()?;
                return Some((Expr::new(ExprKind::Str(s.text), s.span), 1));
            }
            b'(' => {
                return self.attempt(|p| {
                    p.eat(b'(');
                    let e = p.expr()?;
                    p.eat(b')').then_some(e)
                });
            }
            b'[' => return self.list_lit(),
            _ => {}
        }
        let n = self.word_len();
        if n == 0 {
            return None;
        }
        if is_lead_word(self.lower_word()) {
            if let Some(e) = self.lead_primary() {
                return Some(e);
            }
        }
        // hist_points | call | ident
        let next = self.after_word();
        let next_is_points = {
            let w = &self.lower[next..next + self.scan_word(next)];
            w == b"points" || w == b"point"
        };
        if (next_is_points || self.at_kw(&["points", "point"])) && self.hist_points().is_some() {
            // The builder drops a bare `hist_points` (it only reads one
            // under `history`): leave that to pest.
            self.bail = true;
            return None;
        }
        if let Some(e) = self.call() {
            return Some(e);
        }
        let start = self.pos;
        let name = self.ident()?;
        Some((
            Expr::new(ExprKind::Name(name.text), self.span_from(start)),
            1,
        ))
    }

    /// `list_lit = "[" ~ (expr ~ ("," ~ expr)*)? ~ ","? ~ "]"`
    fn list_lit(&mut self) -> Option<E> {
        self.attempt(|p| {
            let start = p.pos;
            p.eat(b'[');
            let (items, d) = p.exprs();
            p.eat(b',');
            p.eat(b']').then_some(())?;
            p.node(ExprKind::List(items), start, d + 1)
        })
    }

    /// `(expr ~ ("," ~ expr)*)?` and the deepest depth among them.
    fn exprs(&mut self) -> (Vec<Expr>, usize) {
        let items = self.comma_list(Self::expr);
        let d = items.iter().map(|(_, d)| *d).max().unwrap_or(0);
        (items.into_iter().map(|(e, _)| e).collect(), d)
    }

    /// `(one ~ ("," ~ one)*)?`
    fn comma_list<T>(&mut self, one: fn(&mut Self) -> Option<T>) -> Vec<T> {
        let mut v = Vec::new();
        let Some(first) = one(self) else {
            return v;
        };
        v.push(first);
        loop {
            let s = self.save();
            if !self.eat(b',') {
                break;
            }
            match one(self) {
                Some(x) => v.push(x),
                None => {
                    self.restore(s);
                    break;
                }
            }
        }
        v
    }

    fn node(&mut self, kind: ExprKind, start: usize, d: usize) -> Option<E> {
        if !self.depth_ok(d) {
            return None;
        }
        Some((Expr::new(kind, self.span_from(start)), d))
    }

    /// `bool_lit | if_expr | history | quantifier | aggregate | of_call | days_since | call | ident`
    fn lead_primary(&mut self) -> Option<E> {
        let start = self.pos;
        if self.kw("true") {
            return self.node(ExprKind::Bool(true), start, 1);
        }
        if self.kw("false") {
            return self.node(ExprKind::Bool(false), start, 1);
        }
        // if_expr = kw_if ~ expr ~ kw_then ~ expr ~ kw_else ~ additive
        if let Some(e) = self.attempt(|p| {
            p.kws(&["if"])?;
            let (c, d1) = p.expr()?;
            p.kws(&["then"])?;
            let (t, d2) = p.expr()?;
            p.kws(&["else"])?;
            let (e, d3) = p.additive()?;
            let kind = ExprKind::If(Box::new(c), Box::new(t), Box::new(e));
            p.node(kind, start, d1.max(d2).max(d3) + 1)
        }) {
            return Some(e);
        }
        if let Some(h) = self.history() {
            return self.node(ExprKind::History(h), start, 2);
        }
        // quantifier = quant_kind ~ word ~ kw_in ~ postfix ~ kw_where ~ filter
        if let Some(e) = self.attempt(|p| {
            let q = p.pick(&[
                ("any", Quant::Any),
                ("all", Quant::All),
                ("every", Quant::All),
                ("none", Quant::None),
                ("no", Quant::None),
            ])?;
            let var = p.word()?;
            p.kws(&["in"])?;
            let (list, d1) = p.postfix()?;
            let (body, d2) = p.where_filter()?;
            let kind = ExprKind::Quant(q, var, Box::new(list), Box::new(body));
            p.node(kind, start, d1.max(d2) + 1)
        }) {
            return Some(e);
        }
        if let Some(e) = self.aggregate() {
            return Some(e);
        }
        // of_call = of_fn ~ kw_of ~ postfix
        if let Some(e) = self.attempt(|p| {
            let f = p.pick(&[
                ("anniversary", OfFn::Anniversary),
                ("months", OfFn::Month),
                ("month", OfFn::Month),
                ("year", OfFn::Year),
                ("weekday", OfFn::Weekday),
                ("day", OfFn::Day),
                ("hour", OfFn::Hour),
            ])?;
            p.kws(&["of"])?;
            let (arg, d) = p.postfix()?;
            p.node(ExprKind::Of(f, Box::new(arg)), start, d + 1)
        }) {
            return Some(e);
        }
        // days_since = kw_days ~ (kw_since | kw_until) ~ postfix
        if let Some(e) = self.attempt(|p| {
            p.kws(&["days"])?;
            let f = p.pick(&[("since", OfFn::DaysSince), ("until", OfFn::DaysUntil)])?;
            let (arg, d) = p.postfix()?;
            p.node(ExprKind::Of(f, Box::new(arg)), start, d + 1)
        }) {
            return Some(e);
        }
        if let Some(e) = self.call() {
            return Some(e);
        }
        let name = self.ident()?;
        self.node(ExprKind::Name(name.text), start, 1)
    }

    /// `history = hist_count | hist_sum | hist_points | first_event | streak | days_since_last`
    fn history(&mut self) -> Option<History> {
        // hist_count = kw_count ~ kw_of ~ word ~ window
        if let Some(h) = self.attempt(|p| {
            p.kws(&["count", "of"])?;
            let w = p.word()?;
            Some(History::Count(w, p.window()?))
        }) {
            return Some(h);
        }
        // hist_sum = kw_sum ~ kw_of ~ &(word ~ ("." ~ word)* ~ window) ~ postfix ~ window
        if let Some(h) = self.attempt(|p| {
            p.kws(&["sum", "of"])?;
            p.path_then_window().then_some(())?;
            let (path, _) = p.postfix()?;
            Some(History::Sum(Box::new(path), p.window()?))
        }) {
            return Some(h);
        }
        if let Some(h) = self.hist_points() {
            return Some(h);
        }
        // first_event = kw_first ~ word
        if let Some(h) = self.after(&["first"], Self::word).map(History::First) {
            return Some(h);
        }
        // streak = kw_streak ~ kw_of ~ (kw_daysw | kw_weeks) ~ kw_with ~ word
        if let Some(h) = self.attempt(|p| {
            p.kws(&["streak", "of"])?;
            let weeks = p.pick(&[
                ("days", false),
                ("day", false),
                ("weeks", true),
                ("week", true),
            ])?;
            p.kws(&["with"])?;
            Some(History::Streak(weeks, p.word()?))
        }) {
            return Some(h);
        }
        // days_since_last = kw_days ~ kw_since ~ kw_last ~ word
        self.after(&["days", "since", "last"], Self::word)
            .map(History::DaysSinceLast)
    }

    /// `&(word ~ ("." ~ word)* ~ window)`: a lookahead, consumes nothing.
    fn path_then_window(&mut self) -> bool {
        let s = self.save();
        let mut ok = self.word().is_some();
        if ok {
            loop {
                let dot = self.save();
                if !(self.eat(b'.') && self.word().is_some()) {
                    self.restore(dot);
                    break;
                }
            }
            ok = self.window().is_some();
        }
        self.restore(s);
        ok
    }

    /// `hist_points = point_kind? ~ kw_points ~ kw_earned ~ window`
    fn hist_points(&mut self) -> Option<History> {
        self.attempt(|p| {
            let kind = p.point_kind();
            (p.kw_points() && p.kw("earned")).then_some(())?;
            Some(History::Points(kind, p.window()?))
        })
    }

    /// `aggregate = count_agg | value_agg`
    fn aggregate(&mut self) -> Option<E> {
        let start = self.pos;
        // count_agg = kw_count ~ kw_of ~ word ~ kw_in ~ postfix ~ (kw_where ~ filter)?
        if let Some(e) = self.attempt(|p| {
            p.kws(&["count", "of"])?;
            let var = p.word()?;
            p.kws(&["in"])?;
            let (list, d1) = p.postfix()?;
            let (filter, d2) = match p.where_filter() {
                Some((f, d)) => (Some(Box::new(f)), d),
                None => (None, 0),
            };
            let kind = ExprKind::Agg {
                agg: Agg::Count,
                value: None,
                var,
                list: Box::new(list),
                filter,
            };
            p.node(kind, start, d1.max(d2) + 1)
        }) {
            return Some(e);
        }
        // value_agg = agg_kind ~ kw_of ~ additive ~ kw_for ~ kw_each? ~ word ~ kw_in ~ postfix ~ (kw_where ~ filter)?
        self.attempt(|p| {
            let agg = p.pick(&[("sum", Agg::Sum), ("min", Agg::Min), ("max", Agg::Max)])?;
            p.kws(&["of"])?;
            let (value, d0) = p.additive()?;
            p.kws(&["for"])?;
            p.kw("each");
            let var = p.word()?;
            p.kws(&["in"])?;
            let (list, d1) = p.postfix()?;
            let (filter, d2) = match p.where_filter() {
                Some((f, d)) => (Some(Box::new(f)), d),
                None => (None, 0),
            };
            let kind = ExprKind::Agg {
                agg,
                value: Some(Box::new(value)),
                var,
                list: Box::new(list),
                filter,
            };
            p.node(kind, start, d0.max(d1).max(d2) + 1)
        })
    }

    /// `call = !keyword ~ word ~ "(" ~ (expr ~ ("," ~ expr)*)? ~ ")"`
    fn call(&mut self) -> Option<E> {
        if self.b.get(self.after_word()) != Some(&b'(') || is_keyword(self.lower_word()) {
            return None;
        }
        self.attempt(|p| {
            let start = p.pos;
            let name = p.word()?;
            p.eat(b'(').then_some(())?;
            let (args, d) = p.exprs();
            p.eat(b')').then_some(())?;
            p.node(ExprKind::Call(name, args), start, d + 1)
        })
    }
}

/// A comparison's tail, before it is joined to its left-hand side.
enum Tail {
    Between(bool, Expr, Expr),
    Set(bool),
    In(bool, Expr),
    Text(TextOp, bool, Expr),
    Cmp(CmpOp, Expr),
}

#[cfg(test)]
#[path = "fastparse_tests.rs"]
mod tests;
