//! Property: for generated programs, `format` is stable and re-parses to
//! the same program (spans aside).

use loyalty_rules::{format, parse};
use proptest::prelude::*;

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("purchase.amount".to_string()),
        Just("purchase.shipping".to_string()),
        Just("customer.points".to_string()),
        Just("hour".to_string()),
        (0u32..5000).prop_map(|n| n.to_string()),
        (0u32..500, 0u32..100).prop_map(|(a, b)| format!("${a}.{b:02}")),
        (1u32..100).prop_map(|n| format!("{n}%")),
        Just("count of item in purchase.items where item.quantity > 2".to_string()),
        Just("sum of item.total for each item in purchase.items".to_string()),
        Just("days since customer.joined".to_string()),
        Just("min(1, purchase.amount / $1)".to_string()),
    ]
}

fn arith() -> impl Strategy<Value = String> {
    leaf().prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop_oneof![Just("+"), Just("-"), Just("*"), Just("/")],
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("-{a}")),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| format!("(if purchase.amount > $5 then {a} else {b})")),
        ]
    })
}

fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            arith(),
            prop_oneof![
                Just(">"),
                Just(">="),
                Just("<"),
                Just("<="),
                Just("="),
                Just("!=")
            ],
            arith()
        )
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        Just("purchase.store is set".to_string()),
        Just("purchase.store is not set".to_string()),
        Just("customer.tier is gold".to_string()),
        Just("customer.tier >= silver".to_string()),
        Just("weekday in [Monday, Tue]".to_string()),
        Just("purchase.channel in [\"app\", \"web\"]".to_string()),
        Just("purchase.channel not in [\"kiosk\"]".to_string()),
        Just("purchase.store starts with \"1\"".to_string()),
        Just("purchase.coupon matches \"WELCOME-*\"".to_string()),
        Just("time is between 17:00 and 19:30".to_string()),
        Just("date is not between 2026-12-01 and 2026-12-24".to_string()),
        Just("any item in purchase.items where item.category = \"coffee\"".to_string()),
        Just(
            "every item in purchase.items where (item.price > $1 and not item.discounted)"
                .to_string()
        ),
        Just("no item in purchase.items where \"gift\" in item.labels".to_string()),
        Just("date = anniversary of customer.birthday".to_string()),
    ]
}

fn cond() -> impl Strategy<Value = String> {
    atom().prop_recursive(3, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
            inner.clone().prop_map(|a| format!("not ({a})")),
            inner.clone().prop_map(|a| format!("({a})")),
        ]
    })
}

fn effect() -> impl Strategy<Value = String> {
    prop_oneof![
        arith().prop_map(|a| format!("award {a} points")),
        (1u32..10, 1u32..50).prop_map(|(a, b)| format!("award {a} points per ${b}")),
        (1u32..10, 1u32..50).prop_map(|(a, b)| format!("award {a} points for every ${b} of purchase.amount - purchase.tax")),
        (1u32..50).prop_map(|p| format!("award {p}% of purchase.amount")),
        (1u32..10).prop_map(|p| format!("award {p} status points for each item in purchase.items where item.category = \"coffee\"")),
        Just("deduct 5 points".to_string()),
        Just("grant reward \"free coffee\"".to_string()),
        Just("grant reward \"free coffee\" to customer.referred_by".to_string()),
        Just("set tier gold".to_string()),
        Just("set tier to gold".to_string()),
        Just("set tier = gold".to_string()),
        Just("set tier = 5".to_string()),
        Just("tag customer \"vip\"".to_string()),
        Just("notify \"Thanks, \\\"friend\\\"\"".to_string()),
        Just("extend expiry by 3 months".to_string()),
        Just("set customer.segment to \"big\"".to_string()),
    ]
}

fn rule() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            cond(),
            prop::collection::vec(effect(), 1..3),
            any::<bool>(),
            -5i32..5,
            0u8..3
        )
            .prop_map(|(c, effs, stop, prio, group)| {
                let mut r = format!("rule \"R\"\n  on purchase\n  if {c}\n  priority {prio}\n");
                match group {
                    1 => r.push_str("  in exclusive group \"g\"\n"),
                    2 => r.push_str("  in best group \"h\"\n"),
                    _ => {}
                }
                for e in effs {
                    r.push_str(&format!("  {e}\n"));
                }
                if stop {
                    r.push_str("  stop processing\n");
                }
                r
            }),
        (arith(), effect()).prop_map(|(a, e)| format!("IF Purchase > {a} THEN {e}\n")),
        effect().prop_map(|e| format!("If Referral Successful Then {e}\n")),
        (cond(), effect()).prop_map(|(c, e)| format!("if {c} then {e}\n")),
        Just("rule \"M\" on purchase multiply points of rule \"R\" by 1.5\n".to_string()),
    ]
}

fn program() -> impl Strategy<Value = String> {
    prop::collection::vec(rule(), 1..4).prop_map(|rules| {
        let mut p = String::from(
            "program \"P\"\ncurrency USD\ntimezone \"Europe/Paris\"\npoints have 2 decimals, rounded half even\n\
             customer has\n  segment: text\n\ntiers silver, gold\nrewards \"free coffee\"\npoints kinds status\n\n",
        );
        for r in rules {
            p.push_str(&r);
            p.push('\n');
        }
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn format_is_stable_and_reparses(src in program()) {
        let original = parse(&src).map_err(|e| TestCaseError::fail(format!("{e:#}\n{src}")))?;
        let once = format(&src).unwrap();
        let reparsed = parse(&once).map_err(|e| TestCaseError::fail(format!("formatted text does not parse: {e:#}\n{once}")))?;
        prop_assert_eq!(&original, &reparsed, "formatted:\n{}", once);
        let twice = format(&once).unwrap();
        prop_assert_eq!(once, twice);
    }
}

#[test]
fn format_canonicalises_case_and_layout() {
    let src = "IF   Purchase>$100   THEN Award 100 Points\nrule \"x\" ON purchase IF purchase.amount>1 AND NOT purchase.store IS SET award 2";
    assert_eq!(
        format(src).unwrap(),
        "if Purchase > $100 then award 100 points\n\nrule \"x\"\n  on purchase\n  if purchase.amount > 1 and not purchase.store is set\n  award 2 points\n"
    );
}

/// Fuzz finding `format_roundtrip/formatted-tree-differs-1`: `set tier = gold`
/// was read as setting an attribute named `tier`, which the formatter printed
/// as `set tier to gold`, a tier change. All three spellings are one tier
/// change now, in both parsers, and an attribute target that is not a tier
/// name keeps its meaning through formatting.
#[test]
fn set_tier_spellings_are_one_effect_and_survive_formatting() {
    let rule = |e: &str| format!("tiers silver, gold\nrule \"R\" on purchase {e}\n");
    let plain = parse(&rule("set tier gold")).unwrap();
    for spelling in ["set tier to gold", "set tier = gold", "SET Tier = gold"] {
        let src = rule(spelling);
        let ast = parse(&src).unwrap();
        assert_eq!(ast, plain, "{spelling}");
        let once = format(&src).unwrap();
        assert!(once.contains("  set tier gold\n"), "{once}");
        assert_eq!(parse(&once).unwrap(), ast);
    }
    // A number is not a tier name: that stays an attribute assignment, and
    // formatting keeps it one.
    let src = rule("set tier = 5");
    let once = format(&src).unwrap();
    assert_eq!(parse(&once).unwrap(), parse(&src).unwrap(), "{once}");
}

/// Fuzz finding `format_roundtrip`: `IF Review THEN Award first` awards a
/// name, `first`, which the formatter printed as `award first points`; that
/// reads as `first points` (the customer's first `points` event). A name
/// that is also a construct's first word is printed in brackets.
#[test]
fn a_name_that_starts_a_construct_keeps_its_meaning_through_formatting() {
    for src in [
        "IF Review THEN Award first",
        "IF Review THEN Award days",
        "rule \"r\" on purchase if month > 3 award 1 point",
    ] {
        let ast = parse(src).unwrap();
        let once = format(src).unwrap();
        assert_eq!(parse(&once).unwrap(), ast, "{once}");
        assert_eq!(format(&once).unwrap(), once);
    }
    assert_eq!(
        format("IF Review THEN Award first").unwrap(),
        "if Review then award (first) points\n"
    );
}

/// Fuzz finding `format_roundtrip` (session 6): a chain of 35 `else if`
/// parses, but the formatter bracketed every `if` in an else branch, and 35
/// nested brackets pass the nesting limit, so the formatted text did not
/// parse. An `if` that is a whole else branch ends where the enclosing one
/// ends, so it is printed without brackets, as written; an `if` inside a
/// larger else branch keeps them.
#[test]
fn else_if_chains_format_without_brackets() {
    let chain = format!(
        "rule \"r\" on purchase award {}1 points\n",
        "if purchase.amount > $5 then 2 else ".repeat(35)
    );
    let ast = parse(&chain).unwrap();
    let once = format(&chain).unwrap();
    // one pair, around the whole amount (it is followed by `points`)
    assert_eq!(once.matches('(').count(), 1, "{once}");
    assert_eq!(parse(&once).unwrap(), ast, "{once}");
    assert_eq!(format(&once).unwrap(), once);
    for src in [
        "rule \"r\" on purchase award if purchase.amount > $5 then 2 else (if purchase.amount > $1 then 1 else 0) + 1 points",
        "rule \"r\" on purchase award (if purchase.amount > $5 then 2 else if purchase.amount > $1 then 1 else 0) * 2 points",
        "rule \"r\" on purchase award if purchase.amount > $5 then (if weekday is Monday then 3 else 2) else 1 points",
    ] {
        let ast = parse(src).unwrap();
        let once = format(src).unwrap();
        assert_eq!(parse(&once).unwrap(), ast, "{once}");
        assert_eq!(format(&once).unwrap(), once);
    }
}

/// Fuzz finding `format_roundtrip` (session 10): `... where item.gift best
/// group "g"` parses (the `in` of a group clause is optional), and the
/// formatter prints the group clause as `in best group "g"` on the next
/// line; a filter read `in` as the start of a comparison (`x in ...`), which
/// must be complete, so the formatted text did not parse. `in best group`
/// and `in exclusive group` now end a filter in both parsers, after a bare
/// filter, a comparison, or a quantifier's filter in a condition.
#[test]
fn a_group_clause_after_a_filter_survives_formatting() {
    for src in [
        "rule \"r\"\n  on refund\n  deduct 5 points for each item in refund.items where item.gift best group \"g\"",
        "rule \"r\" on refund deduct 5 points for each item in refund.items where item.gift\n  in best group \"g\"",
        "rule \"r\" on purchase award 1 point for each item in purchase.items where item.gift in exclusive group \"g\"",
        "rule \"r\" on purchase if any item in purchase.items where item.gift in best group \"g\" award 3 points",
        "rule \"r\" on purchase award 2 points for each item in purchase.items where item.sku in [\"a\", \"b\"] in best group \"g\"",
    ] {
        let ast = parse(src).unwrap_or_else(|e| panic!("{e:#}\n{src}"));
        let once = format(src).unwrap();
        assert!(once.contains("in ") && once.contains(" group \"g\""), "{once}");
        assert_eq!(parse(&once).unwrap_or_else(|e| panic!("{e:#}\n{once}")), ast, "{once}");
        assert_eq!(format(&once).unwrap(), once);
    }
    // `in` followed by anything else is still a comparison in a filter
    assert!(parse("rule \"r\" on purchase award 1 point for each item in purchase.items where item.sku in best").is_err());
    // the fuzz input itself
    let found = include_str!("../../fuzz/regressions/format_roundtrip/filter-then-in-group-clause");
    let ast = parse(found).unwrap();
    let once = format(found).unwrap();
    assert_eq!(
        parse(&once).unwrap_or_else(|e| panic!("{e:#}\n{once}")),
        ast
    );
}
