//! Replay throughput with state (issue 6): `Engine::replay`,
//! `Engine::replay_parallel` and `Engine::replay_parallel_totals` over a year of events for the retail example
//! program (`examples/retail/program.rules`: 21 rules with history
//! windows, limits, caps, tiers, pending points, expiry, refunds,
//! redemptions, referrals and a Black Friday budget).
//!
//! Events: `retail_events(1_000_000, 50_000)` (see `src/lib.rs`), decoded
//! once before measuring; or the JSON Lines file named by
//! `LOYALTY_REPLAY_EVENTS` (e.g. from `examples/retail/generate.py`).
//! `LOYALTY_REPLAY_N` changes the number of generated events.
//! Each iteration replays every event into a fresh engine; throughput is in
//! events per second.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use loyalty_rules::{Engine, Event, Program};
use loyalty_rules_benches::retail_events;

fn events(program: &Program) -> Vec<Event> {
    let lines: Vec<String> = match std::env::var("LOYALTY_REPLAY_EVENTS") {
        Ok(path) => std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
            .lines()
            .map(str::to_string)
            .collect(),
        Err(_) => {
            let n = std::env::var("LOYALTY_REPLAY_N")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1_000_000);
            retail_events(n, 50_000)
        }
    };
    lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            program
                .event_from_json(l)
                .unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .collect()
}

fn replay(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/retail/program.rules"
    );
    let program = Program::compile(&std::fs::read_to_string(path).unwrap()).unwrap();
    let events = events(&program);
    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("retail/1-thread", |b| {
        b.iter_batched(
            || (Engine::new(program.clone()), events.clone()),
            |(mut engine, evs)| {
                let stats = engine.replay(evs);
                (engine, stats)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("retail/parallel-2", |b| {
        b.iter_batched(
            || (Engine::new(program.clone()), events.clone()),
            |(mut engine, evs)| {
                let (outs, stats) = engine.replay_parallel(evs, 2);
                assert!(stats.parallel);
                (engine, outs)
            },
            BatchSize::PerIteration,
        )
    });
    // the same without keeping the outcomes
    g.bench_function("retail/parallel-2-totals", |b| {
        b.iter_batched(
            || (Engine::new(program.clone()), events.clone()),
            |(mut engine, evs)| {
                let stats = engine.replay_parallel_totals(evs, 2);
                assert!(stats.parallel);
                engine
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
