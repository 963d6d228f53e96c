//! Arbitrary bytes as an event and a customer, decoded and evaluated against
//! a few fixed programs (compiled once) that between them handle every event
//! type. Never panics.
//!
//! Input layout: the first line is the event JSON, the rest the customer
//! JSON. When the customer does not decode, a default customer is used so
//! that every decodable event is still evaluated.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use loyalty_rules::{Customer, Program};

const SOURCES: &[&str] = &[
    include_str!("../programs/everything.rules"),
    include_str!("../programs/coffee-club.rules"),
    include_str!("../programs/one-liners.rules"),
    include_str!("../programs/tiers-and-rewards.rules"),
    include_str!("../programs/settings-and-oneliners.rules"),
];

/// Default customers, richest first: each program takes the first it accepts
/// (unknown attributes and tiers are errors).
const DEFAULT_CUSTOMERS: &[&str] = &[
    r#"{"id": "c1", "tier": "gold", "points": "1200", "birthday": "1990-11-27",
        "joined": "2023-03-01", "tags": ["newsletter"], "segment": "regular", "visits": 3,
        "favourite_stores": ["Mall"], "vip": true}"#,
    r#"{"id": "c1", "tier": "gold", "points": "1200", "birthday": "1990-11-27",
        "joined": "2023-03-01", "tags": ["newsletter"]}"#,
    r#"{"id": "c1", "points": "1200", "birthday": "1990-11-27", "joined": "2023-03-01"}"#,
    r#"{"id": "c1"}"#,
];

static PROGRAMS: LazyLock<Vec<(Program, Customer)>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|src| {
            let p =
                Program::compile(src).unwrap_or_else(|e| panic!("fixed program: {}", e.render()));
            let c = DEFAULT_CUSTOMERS
                .iter()
                .find_map(|j| p.customer_from_json(j).ok())
                .expect("a default customer");
            (p, c)
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (event_json, customer_json) = text.split_once('\n').unwrap_or((text, ""));
    for (program, default_customer) in PROGRAMS.iter() {
        let customer = match program.customer_from_json(customer_json) {
            Ok(c) => c,
            Err(e) => {
                let _ = e.to_json();
                default_customer.clone()
            }
        };
        let event = match program.event_from_json(event_json) {
            Ok(e) => e,
            Err(e) => {
                let _ = e.to_json();
                continue;
            }
        };
        let plain = program.evaluate(&event, &customer);
        let explained = program.explain(&event, &customer);
        // explain() only adds the explanation: the decisions are the same
        // (evaluate skips rules by their guards, explain runs every rule).
        assert_eq!(plain.points, explained.points, "evaluate and explain disagree on points");
        assert_eq!(plain.effects, explained.effects, "evaluate and explain disagree on effects");
        assert_eq!(plain.errors, explained.errors, "evaluate and explain disagree on errors");
        // matching_rules lists every rule that fired and none whose dates or
        // condition failed
        let matched: Vec<&str> = program.matching_rules(&event, &customer).collect();
        for e in explained.explanation.iter().flatten() {
            let is_matched = matched.contains(&&*e.rule);
            if e.fired {
                assert!(is_matched, "rule {} fired but is not matched", e.rule);
            }
            if matches!(e.reason.as_deref(), Some("condition_failed" | "inactive")) {
                assert!(!is_matched, "rule {} is matched but {:?}", e.rule, e.reason);
            }
        }
        let _ = explained.to_json_string();
    }
});
