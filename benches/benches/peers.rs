//! The same two predicates in loyalty-rules, GoRules Zen (`zen-expression`)
//! and CEL (`cel`): a simple one (`amount > 100`) and a nested loyalty-style
//! one (amount > 50 and tier in [gold, platinum] and any item with category
//! coffee and weekday is Tuesday). Each engine compiles its expression once
//! and gets its input already decoded; only evaluation is timed. The
//! predicates are true for the inputs used, and every engine's result is
//! checked once before timing.
//!
//! loyalty-rules is measured twice: `loyalty-rules` evaluates the whole
//! program (one rule) and returns an `Outcome` with the award effect, more
//! work per call than the peers do; `loyalty-rules/matching_rules` answers
//! the same question the peers answer (does the condition hold?).

use criterion::{criterion_group, criterion_main, Criterion};
use loyalty_rules::Program;
use loyalty_rules_benches::input;
use std::hint::black_box;

fn expressions(engine: &str, predicate: &str) -> String {
    input("peer-expressions.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let mut words = l.split_whitespace();
            let (e, p) = (words.next()?, words.next()?);
            let rest: Vec<&str> = words.collect();
            (e == engine && p == predicate).then(|| rest.join(" "))
        })
        .unwrap_or_else(|| panic!("no {engine} {predicate} expression in peer-expressions.txt"))
}

fn peers(c: &mut Criterion) {
    let context: serde_json::Value = serde_json::from_str(&input("peer-context.json")).unwrap();
    let event_json = input("event-fire.json");
    let customer_json = input("customer-peer.json");

    for predicate in ["simple", "nested"] {
        let mut g = c.benchmark_group(format!("peers/{predicate}"));

        // loyalty-rules
        let program = Program::compile(&input(&format!("peer-{predicate}.rules"))).unwrap();
        let event = program.event_from_json(&event_json).unwrap();
        let customer = program.customer_from_json(&customer_json).unwrap();
        assert_eq!(program.evaluate(&event, &customer).points.to_string(), "1");
        g.bench_function("loyalty-rules", |b| {
            b.iter(|| program.evaluate(black_box(&event), black_box(&customer)))
        });
        // the same condition as a boolean, like the peers: does the rule match?
        assert_eq!(program.matching_rules(&event, &customer).count(), 1);
        g.bench_function("loyalty-rules/matching_rules", |b| {
            b.iter(|| {
                program
                    .matching_rules(black_box(&event), black_box(&customer))
                    .next()
                    .is_some()
            })
        });

        // GoRules Zen
        let zen_src = expressions("zen", predicate);
        let zen_expr = zen_expression::Isolate::new()
            .compile_standard(&zen_src)
            .unwrap();
        let zen_ctx = zen_expression::variable::Variable::from(context.clone());
        let mut vm = zen_expression::vm::VM::new();
        let r = zen_expr.evaluate_with(zen_ctx.clone(), &mut vm).unwrap();
        assert_eq!(
            r,
            zen_expression::variable::Variable::Bool(true),
            "zen {predicate}"
        );
        g.bench_function("zen-expression", |b| {
            b.iter(|| {
                zen_expr
                    .evaluate_with(black_box(zen_ctx.clone()), &mut vm)
                    .unwrap()
            })
        });

        // CEL
        let cel_src = expressions("cel", predicate);
        let cel_prog = cel::Program::compile(&cel_src).unwrap();
        let mut cel_ctx = cel::Context::default();
        for (k, v) in context.as_object().unwrap() {
            cel_ctx.add_variable_from_value(k.clone(), cel::to_value(v).unwrap());
        }
        assert_eq!(
            cel_prog.execute(&cel_ctx).unwrap(),
            cel::Value::Bool(true),
            "cel {predicate}"
        );
        g.bench_function("cel", |b| {
            b.iter(|| cel_prog.execute(black_box(&cel_ctx)).unwrap())
        });

        g.finish();
    }
}

criterion_group!(benches, peers);
criterion_main!(benches);
