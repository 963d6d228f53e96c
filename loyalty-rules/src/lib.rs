//! # loyalty-rules
//!
//! An embeddable rules engine for loyalty programs. Marketers write rules in
//! a small, forgiving language; the engine checks them against typed
//! customer events, compiles them, and evaluates events deterministically,
//! explaining every decision.
//!
//! ```
//! use loyalty_rules::Program;
//!
//! let program = Program::compile("IF Purchase > $100 THEN Award 100 Points")?;
//! let customer = program.customer_from_json(r#"{"id": "c1"}"#)?;
//! let event = program.event_from_json(
//!     r#"{"type": "purchase", "id": "o-1", "customer": "c1",
//!         "time": "2026-11-24T18:30:00Z", "amount": "120.00"}"#,
//! )?;
//! let outcome = program.evaluate(&event, &customer);
//! assert_eq!(outcome.points.to_string(), "100");
//! # Ok::<(), loyalty_rules::Error>(())
//! ```
//!
//! Mistakes in a program are reported all at once, each with a line, a
//! column, a source snippet and a hint:
//!
//! ```
//! let err = loyalty_rules::Program::compile(
//!     "rule \"Big\"\n  on purchase\n  if purchase.amout > $100\n  award 10 points",
//! ).unwrap_err();
//! let d = &err.diagnostics()[0];
//! assert_eq!((d.line, d.column), (3, 15));
//! assert_eq!(d.hint.as_deref(), Some("did you mean `amount`?"));
//! ```
//!
//! The language is described in `docs/LANGUAGE.md`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(not(feature = "unstable"))]
mod ast;
/// The syntax tree (unstable; for tests, fuzzing and tools).
#[cfg(feature = "unstable")]
pub mod ast;
mod check;
mod codec;
mod compile;
mod complete;
mod engine;
mod error;
mod eval;
mod format;
mod history;
mod index;
mod input;
mod ir;
mod ledger;
mod limits;
mod outcome;
mod parser;
mod pred;
mod schema;
mod state;
#[cfg(not(feature = "unstable"))]
mod tz;
/// Time zones (unstable; for tests and tools).
#[cfg(feature = "unstable")]
pub mod tz;

use std::sync::Arc;

pub use complete::Completion;
pub use engine::{Engine, ReplayStats};
pub use error::{Diagnostic, Error, ErrorKind, Severity};
pub use input::{Customer, Event, EventBuilder};
pub use outcome::{
    Capped, Effect, Explanation, LedgerEntry, Outcome, RuleError, SeenValue, Status,
};
/// The inline vector of [`EventAwards`]' lots and rules (the `smallvec` crate's).
pub use state::SmallVec;
pub use state::{
    Balances, BudgetUse, CustomerState, DayBucket, EventAwards, EventHistory, EventIds, Lot,
    PeriodCounter, PointsHistory, RewardGrant, RuleCounters, Snapshot,
};

use error::Sink;

/// A compiled program: immutable, `Send + Sync`, cheap to clone and share
/// across threads.
#[derive(Clone, Debug)]
pub struct Program {
    inner: Arc<compile::Compiled>,
}

impl Program {
    /// Parse, check and compile a program. On failure the error carries
    /// every diagnostic.
    pub fn compile(source: &str) -> Result<Program, Error> {
        match check_and_compile(source) {
            (_, Some(program)) => Ok(program),
            (diagnostics, None) => Err(Error::from_diagnostics(diagnostics, source)),
        }
    }

    /// The program's name (`program "..."`), if it has one.
    pub fn name(&self) -> Option<&str> {
        self.inner.ir.name.as_deref()
    }

    /// The source the program was compiled from.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The names of the program's rules, in source order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.inner.ir.rules.iter().map(|r| &*r.name)
    }

    /// How many decimals the program's points carry (`points have N
    /// decimals, ...`; 0 for whole points, the default). Every points
    /// figure the engine gives has exactly this scale, so a host can pick
    /// an exact column type ahead (an integer for 0, a decimal of this
    /// scale otherwise).
    ///
    /// ```
    /// use loyalty_rules::Program;
    /// let p = Program::compile(
    ///     "points have 2 decimals, rounded half even\nIF Purchase > $100 THEN Award 1.5 Points",
    /// )?;
    /// assert_eq!(p.points_decimals(), 2);
    /// let whole = Program::compile("IF Purchase > $100 THEN Award 100 Points")?;
    /// assert_eq!(whole.points_decimals(), 0);
    /// # Ok::<(), loyalty_rules::Error>(())
    /// ```
    pub fn points_decimals(&self) -> u32 {
        self.inner.ir.decimals
    }

    /// Decode an event from JSON text (`{"type": "purchase", "id": ..., "customer": ...,
    /// "time": ..., <fields>}`) and check it against the program's schema.
    pub fn event_from_json(&self, json: &str) -> Result<Event, Error> {
        let v = input::parse_json(json, ErrorKind::InvalidEvent)?;
        self.event_from_value(&v)
    }

    /// Decode an event from a JSON value.
    pub fn event_from_value(&self, value: &serde_json::Value) -> Result<Event, Error> {
        input::event_from_value(&self.inner.ir, value)
    }

    /// Decode a customer profile from JSON text (`{"id": ..., "tier": ..., <attributes>}`).
    pub fn customer_from_json(&self, json: &str) -> Result<Customer, Error> {
        let v = input::parse_json(json, ErrorKind::InvalidCustomer)?;
        self.customer_from_value(&v)
    }

    /// Decode a customer profile from a JSON value.
    pub fn customer_from_value(&self, value: &serde_json::Value) -> Result<Customer, Error> {
        input::customer_from_value(&self.inner.ir, value)
    }

    /// Evaluate an event for a customer. Nothing is changed: this is a dry
    /// run whose outcome lists the effects to apply.
    pub fn evaluate(&self, event: &Event, customer: &Customer) -> Outcome {
        eval::run(&self.inner, event, customer, false)
    }

    /// Like [`evaluate`](Self::evaluate), with an explanation of every rule.
    pub fn explain(&self, event: &Event, customer: &Customer) -> Outcome {
        eval::run(&self.inner, event, customer, true)
    }

    /// The names of the rules for `event`'s type whose dates and condition
    /// hold, in evaluation order: which campaigns the event qualifies for.
    /// Nothing else is computed (no effects, groups, limits or outcome; use
    /// [`evaluate`](Self::evaluate) for those) and nothing is allocated. A
    /// rule whose condition fails with an error does not match.
    #[inline]
    pub fn matching_rules<'a>(
        &'a self,
        event: &'a Event,
        customer: &'a Customer,
    ) -> impl Iterator<Item = &'a str> + 'a {
        eval::matching(&self.inner, event, customer)
    }
}

/// Check a program and return every diagnostic (errors and warnings), in
/// source order. An empty list means the program compiles cleanly.
pub fn check(source: &str) -> Vec<Diagnostic> {
    let mut sink = Sink::new(source);
    if let Some(ast) = parser::parse(source, &mut sink) {
        let _ = check::check(&ast, &mut sink);
    }
    sink.sorted()
}

/// Check and compile in one pass, for editors that want both on every
/// keystroke: every diagnostic (errors and warnings, in source order, as
/// [`check`] returns them) and, when none is an error, the compiled program
/// (as [`Program::compile`] returns it). The source is parsed once.
pub fn check_and_compile(source: &str) -> (Vec<Diagnostic>, Option<Program>) {
    let mut sink = Sink::new(source);
    // One copy of the source, shared by the tree's names and the program.
    let shared: Arc<str> = Arc::from(source);
    let ir = parser::parse_shared(&shared, &mut sink).and_then(|a| check::check(&a, &mut sink));
    let program = match ir {
        Some(ir) if !sink.has_errors() => Some(Program {
            inner: Arc::new(compile::Compiled::new(ir, shared)),
        }),
        _ => None,
    };
    (sink.sorted(), program)
}

/// Format a program in the canonical style. The result parses to the same
/// program, and formatting it again changes nothing.
pub fn format(source: &str) -> Result<String, Error> {
    let mut sink = Sink::new(source);
    match parser::parse(source, &mut sink) {
        Some(ast) if !sink.has_errors() => Ok(format::format(&ast)),
        _ => Err(Error::from_diagnostics(sink.sorted(), source)),
    }
}

/// Names that fit at byte offset `offset` of `source`, for autocompletion:
/// fields after `purchase.` or `customer.`, tiers, rewards, events, keywords.
/// Works on programs that do not compile yet.
pub fn completions(source: &str, offset: usize) -> Vec<Completion> {
    complete::completions(source, offset)
}

/// Parse a program into its syntax tree (unstable).
#[cfg(feature = "unstable")]
pub fn parse(source: &str) -> Result<ast::Program, Error> {
    let mut sink = Sink::new(source);
    match parser::parse(source, &mut sink) {
        Some(ast) if !sink.has_errors() => Ok(ast),
        _ => Err(Error::from_diagnostics(sink.sorted(), source)),
    }
}

/// Format a syntax tree (unstable).
#[cfg(feature = "unstable")]
pub fn format_ast(program: &ast::Program) -> String {
    format::format(program)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn check_and_compile_agrees_with_check_and_compile() {
        let clean = "IF Purchase > $100 THEN Award 100 Points";
        let (diags, program) = check_and_compile(clean);
        assert_eq!(diags, check(clean));
        let program = program.expect("a clean program compiles");
        assert_eq!(
            program.rule_names().collect::<Vec<_>>(),
            Program::compile(clean)
                .unwrap()
                .rule_names()
                .collect::<Vec<_>>()
        );
        assert_eq!(program.source(), clean);

        let broken = "rule \"Big\"\n  on purchase\n  if purchase.amout > $100\n  award 10 points\n\nrule \"x\"\n  on purchse\n  award 1 point";
        let (diags, program) = check_and_compile(broken);
        assert!(program.is_none());
        assert_eq!(diags, check(broken));
        assert_eq!(diags, Program::compile(broken).unwrap_err().diagnostics());
        assert!(diags.len() >= 2, "{diags:?}");

        let (diags, program) = check_and_compile("rule");
        assert!(program.is_none());
        assert_eq!(diags, check("rule"));
        assert!(!diags.is_empty());
    }

    #[test]
    fn program_is_send_sync() {
        assert_send_sync::<Program>();
        assert_send_sync::<Event>();
        assert_send_sync::<Customer>();
    }
}
