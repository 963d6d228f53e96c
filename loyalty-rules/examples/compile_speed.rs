//! Prints how long parse + check + compile takes per rule:
//! cargo run --release -p loyalty-rules --example compile_speed -- PROGRAM [REPEAT]
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 2 {
        eprintln!("usage: compile_speed PROGRAM [REPEAT]");
        std::process::exit(2);
    }
    let src = std::fs::read_to_string(&a[1]).expect("readable program");
    let n: u32 = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let program = loyalty_rules::Program::compile(&src).unwrap_or_else(|e| panic!("{e:#}"));
    let rules = program.rule_names().count().max(1);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(loyalty_rules::Program::compile(&src).is_ok());
    }
    let per = t.elapsed().as_nanos() as f64 / f64::from(n);
    println!(
        "compile: {:.1} us per program, {:.2} us per rule ({rules} rules, {} bytes)",
        per / 1e3,
        per / 1e3 / rules as f64,
        src.len()
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(loyalty_rules::parse(&src).is_ok());
    }
    let per = t.elapsed().as_nanos() as f64 / f64::from(n);
    println!("parse only: {:.1} us per program", per / 1e3);
}
