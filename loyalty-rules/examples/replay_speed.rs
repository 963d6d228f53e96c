//! Prints replay throughput for a program and a JSON Lines event file:
//! decoding, sequential replay with state, and parallel replay.
//!
//! cargo run --release -p loyalty-rules --example replay_speed -- PROGRAM EVENTS.jsonl [THREADS]

use std::io::BufRead;
use std::time::Instant;

use loyalty_rules::{Engine, Program};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: replay_speed PROGRAM EVENTS.jsonl [THREADS]");
        std::process::exit(2);
    }
    let threads: usize = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(2);
    let src = std::fs::read_to_string(&args[1]).expect("program");
    let program = Program::compile(&src).unwrap_or_else(|e| panic!("{e:#}"));
    let file = std::fs::File::open(&args[2]).expect("events");
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .map(|l| l.expect("line"))
        .collect();

    let t = Instant::now();
    let events: Vec<_> = lines
        .iter()
        .filter_map(|l| program.event_from_json(l).ok())
        .collect();
    let decode = t.elapsed().as_secs_f64();
    let n = events.len() as f64;
    println!(
        "decode JSON:        {:>10.0} events/s ({} events)",
        n / decode,
        events.len()
    );

    let mut engine = Engine::new(program.clone());
    let t = Instant::now();
    let stats = engine.replay(events.clone());
    let seq = t.elapsed().as_secs_f64();
    println!(
        "replay, 1 thread:   {:>10.0} events/s ({} applied)",
        n / seq,
        stats.applied
    );

    let mut engine = Engine::new(program);
    let t = Instant::now();
    let (_, stats) = engine.replay_parallel(events, threads);
    let par = t.elapsed().as_secs_f64();
    println!(
        "replay, {threads} threads:  {:>10.0} events/s (parallel: {}, speed-up {:.2}x)",
        n / par,
        stats.parallel,
        seq / par
    );
}
