//! Prints the hot-path evaluation time of a program for one event:
//! cargo run --release -p loyalty-rules --example eval_speed -- PROGRAM EVENT.json CUSTOMER.json [ITERATIONS]
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 4 {
        eprintln!("usage: eval_speed PROGRAM EVENT.json CUSTOMER.json");
        std::process::exit(2);
    }
    let read = |p: &str| std::fs::read_to_string(p).expect("readable file");
    let program = loyalty_rules::Program::compile(&read(&a[1])).unwrap_or_else(|e| panic!("{e:#}"));
    let event = program.event_from_json(&read(&a[2])).expect("event");
    let customer = program.customer_from_json(&read(&a[3])).expect("customer");
    let n: u32 = a.get(4).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let mut points = rust_decimal::Decimal::ZERO;
    let t = Instant::now();
    for _ in 0..n {
        points += program
            .evaluate(black_box(&event), black_box(&customer))
            .points;
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    println!("evaluate: {ns:.0} ns per event (points {points})");
    let mut matched = 0usize;
    let t = Instant::now();
    for _ in 0..n {
        // black_box: the event and customer are the same each time, so the
        // work must not be hoisted out of the loop
        matched += program
            .matching_rules(black_box(&event), black_box(&customer))
            .count();
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    println!("matching_rules: {ns:.0} ns per event ({matched} matches)");
}
