//! Prints how fast customer states are saved and loaded: the per-partition
//! path of a distributed back-test (prior states in, new states out) and a
//! service restoring a snapshot.
//!
//! cargo run --release -p loyalty-rules --example state_io_speed -- PROGRAM EVENTS.jsonl
//!
//! Replays the events, then times: writing every customer's state as JSON
//! (one text per customer, as the Python `states_table()` does), parsing
//! those texts back into `CustomerState`s, and `Engine::from_snapshot` of
//! the parsed states. Prints states per second, MB per second of JSON,
//! the bytes of JSON per customer, and the heap memory the restored engine
//! holds (counted by a wrapper around the system allocator). A replayed
//! engine's own size is printed first, for comparison.
//!
//! With `STATE_IO_FLOOR=1` it also times serde_json's tokenizer alone over
//! the same texts (parsing into `serde::de::IgnoredAny`), the floor of any
//! typed parse.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use loyalty_rules::{CustomerState, Engine, Program, Snapshot};

/// The system allocator, counting the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes allocated and not freed, in MB.
fn live_mb() -> f64 {
    LIVE.load(Ordering::Relaxed) as f64 / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: state_io_speed PROGRAM EVENTS.jsonl [REPEAT]");
        std::process::exit(2);
    }
    let repeat: usize = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(3);
    let src = std::fs::read_to_string(&args[1]).expect("program");
    let program = Program::compile(&src).unwrap_or_else(|e| panic!("{e:#}"));
    let before = live_mb();
    let file = std::fs::File::open(&args[2]).expect("events");
    let events: Vec<_> = std::io::BufReader::new(file)
        .lines()
        .filter_map(|l| program.event_from_json(&l.expect("line")).ok())
        .collect();
    let mut engine = Engine::new(program.clone());
    engine.replay(events); // consumed: freed as they are replayed
    let replayed = live_mb() - before;
    let snap = engine.snapshot();
    let n = snap.customers.len();
    drop(engine);
    println!(
        "{n} customers; the replayed engine holds {replayed:.0} MB ({:.0} bytes/customer)",
        replayed * 1e6 / n as f64
    );

    for round in 0..repeat {
        // write: each state into one reused buffer, then onto the end of
        // one text (as an Arrow string column is built)
        let t = Instant::now();
        let mut all = String::new();
        let mut ends = Vec::with_capacity(n);
        let mut buf = Vec::new();
        for s in &snap.customers {
            buf.clear();
            serde_json::to_writer(&mut buf, s).expect("state JSON");
            all.push_str(std::str::from_utf8(&buf).expect("UTF-8"));
            ends.push(all.len());
        }
        let write = t.elapsed().as_secs_f64();
        let bytes = all.len();
        // parse
        let before = live_mb();
        let t = Instant::now();
        let mut start = 0;
        let states: Vec<CustomerState> = ends
            .iter()
            .map(|&end| {
                let s = serde_json::from_str(&all[start..end]).expect("parse");
                start = end;
                s
            })
            .collect();
        let parse = t.elapsed().as_secs_f64();
        if std::env::var_os("STATE_IO_FLOOR").is_some() {
            // the JSON tokenizer alone, for comparison
            let t = Instant::now();
            let mut start = 0;
            for &end in &ends {
                let _: serde::de::IgnoredAny =
                    serde_json::from_str(&all[start..end]).expect("parse");
                start = end;
            }
            println!("  tokenize only {:.3} s", t.elapsed().as_secs_f64());
        }
        assert_eq!(states.len(), n);
        // restore
        let t = Instant::now();
        let restored = Engine::from_snapshot(
            program.clone(),
            Snapshot {
                customers: states,
                budgets: snap.budgets.clone(),
                clock: snap.clock,
            },
        )
        .expect("restore");
        let restore = t.elapsed().as_secs_f64();
        // what the restored engine holds (the parsed states moved into it)
        let held = live_mb() - before;
        let t = Instant::now();
        drop(restored);
        let free = t.elapsed().as_secs_f64();
        drop(all);
        let mb = bytes as f64 / 1e6;
        println!(
            "round {round}: JSON {:.0} bytes/customer | write {:.3} s ({:.0} states/s, {:.0} MB/s) | parse {:.3} s ({:.0} states/s, {:.0} MB/s) | from_snapshot {:.3} s ({:.0} states/s) | drop {:.3} s | restored engine holds {:.0} MB ({:.0} bytes/customer)",
            bytes as f64 / n as f64,
            write,
            n as f64 / write,
            mb / write,
            parse,
            n as f64 / parse,
            mb / parse,
            restore,
            n as f64 / restore,
            free,
            held,
            held * 1e6 / n as f64
        );
    }
}
