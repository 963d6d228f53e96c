//! Prints replay throughput for a program and a JSON Lines event file:
//! decoding, sequential replay with state, the partitioned replay on one
//! thread (each referral group's events together), and parallel replay
//! (without and with the outcomes kept; skipped if THREADS is 1).
//!
//! cargo run --release -p loyalty-rules --example replay_speed -- PROGRAM EVENTS.jsonl [THREADS]
//!
//! Each figure is given twice: per second of wall-clock time, and per second
//! of CPU time used by the process (user + system, from /proc on Linux),
//! which is steadier on a machine shared with other jobs. For the parallel
//! replay the CPU figure is per core.

use std::io::BufRead;
use std::time::Instant;

use loyalty_rules::{Engine, Program};

/// CPU seconds used by this process so far (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // fields after the command name (which is in parentheses)
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 11 and 12 here
    (ticks(11) + ticks(12)) / 100.0
}

struct Clock {
    wall: Instant,
    cpu: f64,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu: cpu_seconds(),
        }
    }
    /// (wall seconds, CPU seconds)
    fn stop(&self) -> (f64, f64) {
        (self.wall.elapsed().as_secs_f64(), cpu_seconds() - self.cpu)
    }
}

fn rate(n: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        n / secs
    } else {
        f64::NAN
    }
}

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

    let t = Clock::start();
    let events: Vec<_> = lines
        .iter()
        .filter_map(|l| program.event_from_json(l).ok())
        .collect();
    let (wall, cpu) = t.stop();
    let n = events.len() as f64;
    println!(
        "decode JSON:        {:>10.0} events/s, {:>10.0} per CPU-second ({} events)",
        rate(n, wall),
        rate(n, cpu),
        events.len()
    );

    // the copy is made before the clock starts
    let copy = events.clone();
    let mut engine = Engine::new(program.clone());
    let t = Clock::start();
    let stats = engine.replay(copy);
    let (seq, cpu) = t.stop();
    println!(
        "replay, 1 thread:   {:>10.0} events/s, {:>10.0} per CPU-second ({} applied)",
        rate(n, seq),
        rate(n, cpu),
        stats.applied
    );
    let seq_applied = stats.applied;
    drop(engine);

    // one thread, each referral group's events together (see
    // `Engine::replay_parallel`)
    let copy = events.clone();
    let mut engine = Engine::new(program.clone());
    let t = Clock::start();
    let stats = engine.replay_parallel_totals(copy, 1);
    let (grouped, cpu) = t.stop();
    println!(
        "grouped, 1 thread:  {:>10.0} events/s, {:>10.0} per CPU-second ({:.2}x the replay in order)",
        rate(n, grouped),
        rate(n, cpu),
        seq / grouped
    );
    assert_eq!(stats.applied, seq_applied, "the same events applied");
    drop(engine);
    if threads < 2 {
        // `replay_speed PROGRAM EVENTS 1` runs the sequential replay only
        // (what the callgrind measurements in benches/README.md collect)
        return;
    }

    let copy = events.clone();
    let mut engine = Engine::new(program.clone());
    let t = Clock::start();
    let stats = engine.replay_parallel_totals(copy, threads);
    let (par, cpu) = t.stop();
    println!(
        "replay, {threads} threads:  {:>10.0} events/s, {:>10.0} per CPU-second (parallel: {}, speed-up {:.2}x)",
        rate(n, par),
        rate(n, cpu),
        stats.parallel,
        seq / par
    );
    drop(engine);

    // as above, also keeping every outcome (what the CLI's --out needs)
    let mut engine = Engine::new(program);
    let t = Clock::start();
    let (outs, stats) = engine.replay_parallel(events, threads);
    drop(outs);
    let (par, cpu) = t.stop();
    println!(
        "  with outcomes:    {:>10.0} events/s, {:>10.0} per CPU-second (parallel: {}, speed-up {:.2}x)",
        rate(n, par),
        rate(n, cpu),
        stats.parallel,
        seq / par
    );
}
