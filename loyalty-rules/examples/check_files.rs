//! Times `check` + `Program::compile` over many program files (for example
//! a fuzz corpus, mostly malformed text) and prints the total and the
//! slowest files: the cost of diagnostics on bad input, which a browser
//! editor pays on every keystroke.
//!
//! cargo run --release -p loyalty-rules --example check_files -- FILE...
use std::io::Write;
use std::time::Instant;

fn main() {
    let mut timings = Vec::new();
    for path in std::env::args().skip(1) {
        let Ok(source) = std::fs::read_to_string(&path) else {
            continue; // not UTF-8, or unreadable
        };
        let t = Instant::now();
        let diagnostics = loyalty_rules::check(&source);
        let _ = loyalty_rules::Program::compile(&source);
        let micros = t.elapsed().as_micros();
        let limit = diagnostics
            .iter()
            .any(|d| d.kind == loyalty_rules::ErrorKind::Limit);
        timings.push((micros, limit, path));
    }
    timings.sort();
    let total: u128 = timings.iter().map(|t| t.0).sum();
    let limited: Vec<_> = timings.iter().filter(|t| t.1).collect();
    // errors writing (a closed pipe, as with `| head`) are ignored
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{} files: {:.1} ms in all; {} got a limit diagnostic ({:.1} ms)",
        timings.len(),
        total as f64 / 1000.0,
        limited.len(),
        limited.iter().map(|t| t.0).sum::<u128>() as f64 / 1000.0
    );
    for (micros, limit, path) in timings.iter().rev().take(5) {
        let note = if *limit { " (limit)" } else { "" };
        let _ = writeln!(out, "{micros:>8} µs{note} {path}");
    }
}
