//! Counts heap allocations on the evaluation hot path with a counting
//! `#[global_allocator]`. Evaluating the 20-rule program for an event that
//! fires no rule must not allocate at all (after warm-up); when rules fire
//! the counts are printed (`cargo test --test alloc -- --nocapture`).
//!
//! When the zero-allocation check fails, the test prints a backtrace of the
//! first allocation it counted, naming the code that allocated.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Mutex;

use loyalty_rules::Program;

/// The benchmark inputs, shared with `benches/`.
fn input(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../benches/inputs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

struct Counting;

thread_local! {
    /// Count allocations on this thread only (the test harness runs other
    /// threads too).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
    static BYTES: Cell<usize> = const { Cell::new(0) };
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}
static FIRST_BACKTRACE: Mutex<Option<String>> = Mutex::new(None);

impl Counting {
    fn record(size: usize) {
        let _ = COUNTING.try_with(|on| {
            if on.get() && !IN_HOOK.with(Cell::get) {
                COUNT.with(|c| c.set(c.get() + 1));
                BYTES.with(|b| b.set(b.get() + size));
                IN_HOOK.with(|h| h.set(true));
                if let Ok(mut slot) = FIRST_BACKTRACE.try_lock() {
                    if slot.is_none() {
                        *slot = Some(std::backtrace::Backtrace::force_capture().to_string());
                    }
                }
                IN_HOOK.with(|h| h.set(false));
            }
        });
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::record(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::record(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::record(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (count, bytes) made by `f` on this thread, per call, averaged
/// over `runs` calls after three warm-up calls. The first allocation's
/// backtrace is kept.
fn allocations<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, f64, Option<String>) {
    for _ in 0..3 {
        drop(f());
    }
    *FIRST_BACKTRACE.lock().unwrap() = None;
    COUNT.with(|c| c.set(0));
    BYTES.with(|b| b.set(0));
    COUNTING.with(|c| c.set(true));
    for _ in 0..runs {
        drop(std::hint::black_box(f()));
    }
    COUNTING.with(|c| c.set(false));
    let n = COUNT.with(Cell::get) as f64 / runs as f64;
    let b = BYTES.with(Cell::get) as f64 / runs as f64;
    (n, b, FIRST_BACKTRACE.lock().unwrap().take())
}

struct Setup {
    program: Program,
    customer: loyalty_rules::Customer,
    nofire: loyalty_rules::Event,
    fire: loyalty_rules::Event,
}

fn setup() -> Setup {
    let program = Program::compile(&input("program-20.rules")).unwrap();
    let customer = program.customer_from_json(&input("customer.json")).unwrap();
    let nofire = program
        .event_from_json(&input("event-nofire.json"))
        .unwrap();
    let fire = program.event_from_json(&input("event-fire.json")).unwrap();
    Setup {
        program,
        customer,
        nofire,
        fire,
    }
}

#[test]
fn no_rule_fires_no_allocation() {
    let s = setup();
    let outcome = s.program.evaluate(&s.nofire, &s.customer);
    assert!(
        outcome.effects.is_empty() && outcome.errors.is_empty(),
        "the no-fire event fired: {outcome:?}"
    );
    let (n, bytes, bt) = allocations(100, || s.program.evaluate(&s.nofire, &s.customer));
    println!("evaluate, 20 rules, no rule fires: {n} allocations ({bytes} bytes) per event");
    if n != 0.0 {
        panic!(
            "evaluating an event that fires no rule allocated {n} times ({bytes} bytes) per event.\n\
             First allocation:\n{}",
            bt.unwrap_or_default()
        );
    }
}

#[test]
fn report_allocations_when_rules_fire() {
    let s = setup();
    let outcome = s.program.evaluate(&s.fire, &s.customer);
    let fired = outcome.effects.len();
    assert!(fired > 0);
    let (n, bytes, _) = allocations(100, || s.program.evaluate(&s.fire, &s.customer));
    println!("evaluate, 20 rules, {fired} effects: {n} allocations ({bytes} bytes) per event");
    let (n, bytes, _) = allocations(100, || s.program.explain(&s.nofire, &s.customer));
    println!("explain, 20 rules, no rule fires: {n} allocations ({bytes} bytes) per event");
    let (n, bytes, _) = allocations(100, || s.program.explain(&s.fire, &s.customer));
    println!("explain, 20 rules, {fired} effects: {n} allocations ({bytes} bytes) per event");
    let json = input("event-nofire.json");
    let (n, bytes, _) = allocations(100, || s.program.event_from_json(&json).unwrap());
    println!("event_from_json (no-fire event): {n} allocations ({bytes} bytes) per event");
}
