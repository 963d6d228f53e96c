//! Compile-time diagnostics: position, hint, rendering, and all errors at once.

use loyalty_rules::{check, ErrorKind, Program, Severity};
use proptest::prelude::*;

fn only(src: &str) -> loyalty_rules::Diagnostic {
    let d = check(src);
    assert_eq!(d.len(), 1, "expected one diagnostic, got {d:#?}");
    d.into_iter().next().unwrap()
}

#[test]
fn misspelt_field_has_position_and_hint() {
    let src = "rule \"Big\"\n  on purchase\n  if purchase.amout > $100\n  award 10 points\n";
    let d = only(src);
    assert_eq!(d.kind, ErrorKind::UnknownField);
    assert_eq!((d.line, d.column, d.end_column), (3, 15, 20));
    assert_eq!(d.message, "unknown field `amout` on `purchase`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `amount`?"));
    let rendered = d.render(src);
    assert!(rendered.contains("program:3:15"), "{rendered}");
    assert!(rendered.contains("^^^^^"), "{rendered}");
    assert!(
        rendered.contains("hint: did you mean `amount`?"),
        "{rendered}"
    );
}

#[test]
fn type_mismatch_money_vs_number() {
    let d = only("rule \"R\"\n  on review\n  if review.rating > $4\n  award 5 points\n");
    assert_eq!(d.kind, ErrorKind::TypeMismatch);
    assert_eq!((d.line, d.column), (3, 6));
    assert!(
        d.message.contains("number") && d.message.contains("money"),
        "{}",
        d.message
    );
    assert!(d.hint.is_some());
}

#[test]
fn syntax_error_position() {
    let d = only("IF purchase > $100 THEN award 100 points\nIF purchase >> 5 THEN award 1\n");
    assert_eq!(d.kind, ErrorKind::Syntax);
    assert_eq!((d.line, d.column), (2, 14));
}

#[test]
fn three_errors_three_diagnostics() {
    let src = "tiers silver, gold\n\
               rule \"A\"\n  on purchase\n  if purchase.amout > $100\n  award 10 points\n\
               rule \"B\"\n  on purchase\n  if customer.tier is glod\n  award 10 points\n\
               rule \"C\"\n  on purchase\n  if purchase.store > 5\n  award 10 points\n";
    let diags = check(src);
    let kinds: Vec<_> = diags.iter().map(|d| (d.kind, d.line)).collect();
    assert_eq!(
        kinds,
        vec![
            (ErrorKind::UnknownField, 4),
            (ErrorKind::UnknownTier, 8),
            (ErrorKind::TypeMismatch, 12)
        ]
    );
    assert_eq!(diags[1].hint.as_deref(), Some("did you mean `gold`?"));
    let err = Program::compile(src).unwrap_err();
    assert_eq!(err.diagnostics().len(), 3);
    assert!(err.to_string().contains("(and 2 more errors)"), "{err}");
    let rendered = format!("{err:#}");
    assert_eq!(rendered.matches("error[").count(), 3, "{rendered}");
}

#[test]
fn unknown_event_reward_and_duplicate_rule() {
    let src = "rewards \"free coffee\"\n\
               IF purchse > 10 THEN award 1\n\
               rule \"X\" on purchase grant reward \"free cofee\"\n\
               rule \"X\" on purchase award 1\n";
    let diags = check(src);
    let kinds: Vec<_> = diags.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ErrorKind::UnknownEvent,
            ErrorKind::UnknownReward,
            ErrorKind::Duplicate
        ]
    );
    assert_eq!(diags[0].hint.as_deref(), Some("did you mean `purchase`?"));
    assert_eq!(
        diags[1].hint.as_deref(),
        Some("did you mean `free coffee`?")
    );
}

#[test]
fn contradictions_are_reported() {
    for (src, line) in [
        ("rule \"R\" on purchase\n  if purchase.amount > 100 and purchase.amount < 50\n  award 1", 2),
        ("rule \"R\" on purchase\n  if weekday is Monday and weekday is Tuesday\n  award 1", 2),
        ("rule \"R\" on purchase\n  if purchase.amount is between $10 and $5\n  award 1", 2),
        ("rule \"R\" on purchase\n  active from 2026-12-24 to 2026-12-01\n  award 1", 2),
    ] {
        let d = only(src);
        assert_eq!((d.kind, d.line), (ErrorKind::Contradiction, line), "{src}");
    }
    // touching bounds are fine
    assert!(check(
        "rule \"R\" on purchase if purchase.amount >= 100 and purchase.amount <= 100 award 1"
    )
    .is_empty());
}

#[test]
fn columns_count_characters_not_bytes() {
    let src = "rule \"Café €5 bonus\" on purchase if purchase.amout > 5 award 1";
    let d = only(src);
    let byte_col = src.find("amout").unwrap();
    assert_eq!(d.start, byte_col);
    assert_eq!(d.column, src[..byte_col].chars().count() + 1);
}

#[test]
fn deep_nesting_is_a_diagnostic_not_a_crash() {
    let deep = format!(
        "IF purchase > {}1{} THEN award 1",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    let d = only(&deep);
    assert_eq!(d.kind, ErrorKind::Limit);
    let chain = format!("IF purchase > 1{} THEN award 1", " + 1".repeat(5000));
    let d = only(&chain);
    assert_eq!(d.kind, ErrorKind::Limit);
    let nots = format!(
        "IF purchase > 1 and {}purchase.amount > 1 THEN award 1",
        "not ".repeat(5001)
    );
    assert!(Program::compile(&nots).is_ok());
}

#[test]
fn warnings_do_not_exist_without_errors() {
    assert!(check("IF Birthday THEN award 5")
        .iter()
        .all(|d| d.severity == Severity::Error));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary text never panics, and every diagnostic points inside it.
    #[test]
    fn arbitrary_text_never_panics(src in "(IF|rule|\"x\"|purchase|\\.|amount|>|\\$1|\\(|\\)|and|not|award|1|points|then|on| |\n|#|é|where|any|item|in|of)*") {
        for d in check(&src) {
            prop_assert!(d.start <= d.end && d.end <= src.len());
            prop_assert!(d.line >= 1 && d.column >= 1);
        }
        let _ = loyalty_rules::format(&src);
        let _ = loyalty_rules::completions(&src, src.len() / 2);
    }
}

#[test]
fn allowed_nesting_fits_a_small_stack() {
    // 31 brackets (the limit is 32) must compile on a 1 MiB stack, like a
    // WebAssembly module's default, even in a debug build.
    let src = format!(
        "IF purchase > {}1{} THEN award 1",
        "(".repeat(31),
        ")".repeat(31)
    );
    let handle = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            Program::compile(&src)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .unwrap();
    assert_eq!(handle.join().unwrap(), Ok(()));
}

#[test]
fn nested_if_brackets_get_a_syntax_error_not_a_limit() {
    // Found by fuzzing (fuzz/regressions/format_roundtrip/): nested `IF(`
    // made the grammar backtrack exponentially (13 s for these 89 bytes;
    // later cut short by pest's call limit with a "too complex" diagnostic)
    // because `IF (` was tried both as an inline `if` and as a call of a
    // function named `IF`. A keyword is never a function name now, so the
    // text is read once and gets an ordinary syntax error. Same for nested
    // `sum of (`, once tried as a history sum and then as an aggregate, and
    // for nested `where x <= (`.
    let ifs =
        "IF(IF (IF(IF (((IFF(IF (IF(IF (((IF ((IF noIFF(IF (IF(IF (((IF ((IF no ((IF n ((IF notq n";
    let sums = format!("rule \"x\" on purchase if {}x", "sum of (".repeat(14));
    // a filter whose comparison does not parse used to end before it, and
    // the enclosing comparison read the same text again
    let filters = format!(
        "rule \"x\" on purchase if {}x",
        "all b in purchase.items where b.price <=(".repeat(14)
    );
    // (session 6, from the `compile` corpus) a filter's arithmetic whose
    // operand does not parse: the enclosing expression read `- if ...` again
    let minus = format!(
        "rule \"x\" on purchase\n{}  award 1 point",
        "  if count of item in purchase.items where item.qua-----# c\n".repeat(14)
    );
    for src in [ifs, sums.as_str(), filters.as_str(), minus.as_str()] {
        let diags = check(src);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].kind, ErrorKind::Syntax, "{diags:?}");
    }
    let d = check("IF (purchase > $10 THEN award 1");
    assert_eq!(d[0].kind, ErrorKind::Syntax, "{d:?}");
    // a comparison after a filter still belongs to the enclosing expression,
    // and a filter's arithmetic is its own
    assert!(check("rule \"x\" on purchase if count of i in purchase.items where i.price > $10 >= 2 award 1 point").is_empty());
    assert!(check("rule \"x\" on purchase if count of i in purchase.items where i.price - $1 > $10 * 2 >= 2 award 1 point").is_empty());
    assert!(check("rule \"x\" on purchase if count of i in purchase.items where i.price * 2 > $10 >= 1 and any i in purchase.items where -i.price < $0 award 1 point").is_empty());
    // a function call and a history sum still parse
    assert!(check("rule \"x\" on purchase if min(purchase.amount, $5) > $1 and sum of purchase.amount in last 30 days > $100 award 1 point").is_empty());
}

#[test]
fn a_large_program_keeps_its_parse_budget_while_small_ones_parse_alongside() {
    // pest's call limit is one process-wide setting; the budget grows with
    // the source, and a small parse on another thread must not shrink a
    // large one's. A program of ~220 KB with a syntax error at its end goes
    // through pest (the fast path declines) and needs more calls than the
    // floor allows a small program (checked: with no per-byte allowance it
    // gets the limit diagnostic).
    let retail = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/retail/program.rules"
    ))
    .unwrap();
    let body: String = retail
        .split("\nrule ")
        .skip(1)
        .map(|r| format!("\nrule {r}"))
        .collect();
    let mut big = retail.clone();
    for i in 0..100 {
        big.push_str(&body.replace("rule \"", &format!("rule \"{i} ")));
    }
    assert!(big.len() > 200_000, "{}", big.len());
    big.push_str("\nrule \"broken\"\n  on purchase\n  if purchase.amount >\n  award 1 point\n");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let small = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let d = check("rule \"x\" on purchase if (purchase.amount > award 1 point");
                assert_eq!(d[0].kind, ErrorKind::Syntax, "{d:?}");
                n += 1;
            }
            n
        })
    };
    for _ in 0..2 {
        let diags = check(&big);
        assert!(!diags.is_empty());
        assert!(
            diags.iter().all(|d| d.kind != ErrorKind::Limit),
            "{:?}",
            &diags[..diags.len().min(3)]
        );
        assert!(
            diags.iter().any(|d| d.kind == ErrorKind::Syntax),
            "{:?}",
            &diags[..diags.len().min(3)]
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(small.join().unwrap() > 0);
}
