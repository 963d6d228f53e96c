//! Evaluating one event: the hot path (event and customer decoded once),
//! the same with decoding the event from JSON each time, and `explain`.
//! Against the hand-written 20-rule program and a generated 200-rule one.

use criterion::{criterion_group, criterion_main, Criterion};
use loyalty_rules::Program;
use loyalty_rules_benches::{generate_program, input};
use std::hint::black_box;

fn evaluate(c: &mut Criterion) {
    let programs = [
        ("20", Program::compile(&input("program-20.rules")).unwrap()),
        ("200", Program::compile(&generate_program(200)).unwrap()),
    ];
    let customer_json = input("customer.json");
    let events = [
        ("nofire", input("event-nofire.json")),
        ("fire", input("event-fire.json")),
    ];

    let mut g = c.benchmark_group("evaluate");
    for (size, program) in &programs {
        let customer = program.customer_from_json(&customer_json).unwrap();
        for (kind, json) in &events {
            let event = program.event_from_json(json).unwrap();
            g.bench_function(format!("{size}-rules/{kind}/hot"), |b| {
                b.iter(|| program.evaluate(black_box(&event), black_box(&customer)))
            });
            g.bench_function(format!("{size}-rules/{kind}/with-json-decode"), |b| {
                b.iter(|| {
                    let event = program.event_from_json(black_box(json)).unwrap();
                    program.evaluate(&event, black_box(&customer))
                })
            });
            g.bench_function(format!("{size}-rules/{kind}/explain"), |b| {
                b.iter(|| program.explain(black_box(&event), black_box(&customer)))
            });
        }
        // Decoding alone, for reference.
        g.bench_function(format!("{size}-rules/decode-event-only"), |b| {
            b.iter(|| program.event_from_json(black_box(&events[1].1)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
