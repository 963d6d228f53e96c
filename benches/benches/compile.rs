//! Parse + check + compile (`Program::compile`) of generated programs with
//! 10, 100, 1,000 and 10,000 rules, and of the hand-written 20-rule program.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use loyalty_rules::Program;
use loyalty_rules_benches::{generate_program, input};
use std::hint::black_box;

fn compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    for n in [10usize, 100, 1_000, 10_000] {
        let src = generate_program(n);
        g.throughput(Throughput::Elements(n as u64));
        if n >= 1_000 {
            g.sample_size(10);
        }
        g.bench_with_input(BenchmarkId::new("generated", n), &src, |b, src| {
            b.iter(|| Program::compile(black_box(src)).unwrap())
        });
    }
    let src = input("program-20.rules");
    g.throughput(Throughput::Elements(20));
    g.sample_size(100);
    g.bench_function("program-20", |b| {
        b.iter(|| Program::compile(black_box(&src)).unwrap())
    });
    // `check` alone (what an editor runs on every keystroke).
    g.bench_function("check/program-20", |b| {
        b.iter(|| loyalty_rules::check(black_box(&src)))
    });
    g.finish();
}

criterion_group!(benches, compile);
criterion_main!(benches);
