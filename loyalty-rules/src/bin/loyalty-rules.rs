//! The `loyalty-rules` command line: check, format and evaluate programs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use loyalty_rules::{Engine, Event, Program, Severity, Snapshot};

/// `print!` to standard output. A reader that stops reading (`| head`)
/// ends the program quietly with status 141, as tools killed by `SIGPIPE`
/// do, instead of a panic (Rust ignores `SIGPIPE`, so `print!` panics on
/// the broken pipe); another write error ends it with status 2.
macro_rules! out {
    ($($arg:tt)*) => { write_out(format_args!($($arg)*)) };
}

/// `println!` through [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => { write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(2);
    }
}

#[derive(Parser)]
#[command(
    name = "loyalty-rules",
    version,
    about = "Check, format and evaluate loyalty rule programs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Report every problem in a program (exit status 1 if there are errors).
    Check {
        /// The program file.
        file: PathBuf,
        /// Print diagnostics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a program in the canonical format.
    Fmt {
        /// The program file.
        file: PathBuf,
        /// Rewrite the file instead of printing.
        #[arg(long)]
        write: bool,
        /// Exit with status 1 if the file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Evaluate events against a program (a dry run: nothing is stored).
    Eval {
        /// The program file.
        file: PathBuf,
        /// A JSON file with one event, a list of events, or JSON Lines.
        #[arg(long)]
        event: PathBuf,
        /// A JSON file with the customer (default: `{"id": <the event's customer>}`).
        #[arg(long)]
        customer: Option<PathBuf>,
        /// Explain why each rule fired or not.
        #[arg(long)]
        explain: bool,
        /// Print outcomes as JSON (one per line).
        #[arg(long)]
        json: bool,
    },
    /// Replay a JSON Lines event stream with state: ledgers, limits, tiers,
    /// expiry, refunds, duplicates. Prints a summary.
    Run {
        /// The program file.
        file: PathBuf,
        /// Events, one JSON object per line, in time order.
        events: PathBuf,
        /// State to start from (if the file exists) and to save at the end.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Write every outcome here as JSON Lines.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Threads: 1 reads, decodes and replays in turn; 2 decode on one
        /// while the other replays (streaming, in file order); 3 or more
        /// decode every line first, then replay partitioned by customer.
        /// The same results on any number [default: 2, or 1 on a machine
        /// with one CPU]
        #[arg(long)]
        threads: Option<usize>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn compile(path: &Path) -> Result<Program, String> {
    let src = read(path)?;
    Program::compile(&src).map_err(|e| {
        let rendered = e.render_named(&path.display().to_string());
        format!("{} does not compile\n{rendered}", path.display())
    })
}

fn events_in(text: &str) -> Result<Vec<serde_json::Value>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).map_err(|e| format!("events file: {e}"));
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(trimmed) {
        return Ok(vec![v]);
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("events file line {}: {e}", i + 1))
        })
        .collect()
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Check { file, json } => {
            let src = read(&file)?;
            let diags = loyalty_rules::check(&src);
            let errors = diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&diags).map_err(|e| e.to_string())?
                );
            } else {
                for d in &diags {
                    eprint!("{}", d.render_named(&src, &file.display().to_string()));
                }
                if diags.is_empty() {
                    outln!("{}: ok", file.display());
                } else {
                    eprintln!(
                        "{}: {} error(s), {} warning(s)",
                        file.display(),
                        errors,
                        diags.len() - errors
                    );
                }
            }
            Ok(if errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Fmt { file, write, check } => {
            let src = read(&file)?;
            let formatted =
                loyalty_rules::format(&src).map_err(|e| format!("{}\n{}", e, e.render()))?;
            if check {
                if formatted != src {
                    eprintln!("{} is not formatted", file.display());
                    return Ok(ExitCode::from(1));
                }
            } else if write {
                std::fs::write(&file, formatted).map_err(|e| e.to_string())?;
            } else {
                out!("{formatted}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval {
            file,
            event,
            customer,
            explain,
            json,
        } => {
            let program = compile(&file)?;
            let events = events_in(&read(&event)?)?;
            let customer_json = match &customer {
                Some(p) => Some(
                    serde_json::from_str::<serde_json::Value>(&read(p)?)
                        .map_err(|e| format!("customer file: {e}"))?,
                ),
                None => None,
            };
            let mut failed = false;
            for (i, ev_json) in events.iter().enumerate() {
                let ev = match program.event_from_value(ev_json) {
                    Ok(ev) => ev,
                    Err(e) => {
                        eprintln!("event {}: {e}", i + 1);
                        failed = true;
                        continue;
                    }
                };
                let cust_json = customer_json
                    .clone()
                    .unwrap_or_else(|| serde_json::json!({"id": ev.customer()}));
                let cust = program
                    .customer_from_value(&cust_json)
                    .map_err(|e| format!("customer: {e}"))?;
                let out = if explain {
                    program.explain(&ev, &cust)
                } else {
                    program.evaluate(&ev, &cust)
                };
                if json {
                    outln!("{}", out.to_json_string());
                } else {
                    print_human(&out);
                }
            }
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Run {
            file,
            events,
            state,
            out,
            threads,
            json,
        } => run_replay(
            &file,
            &events,
            state.as_deref(),
            out.as_deref(),
            // two when there are two CPUs: the streaming pipeline, 1.4-1.6x
            // one thread's speed in about the same memory
            threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
            }),
            json,
        ),
    }
}

/// Decode numbered JSON lines into events on `threads` threads (a
/// contiguous part each), in line order; lines that do not decode are
/// listed (`line N: error`) in line order.
fn decode_lines(
    program: &Program,
    lines: Vec<(usize, String)>,
    threads: usize,
) -> (Vec<Event>, Vec<String>) {
    let decode = |part: &[(usize, String)]| {
        let mut evs = Vec::with_capacity(part.len());
        let mut bad = Vec::new();
        for (n, line) in part {
            match program.event_from_json(line) {
                Ok(ev) => evs.push(ev),
                Err(e) => bad.push(format!("line {n}: {e}")),
            }
        }
        (evs, bad)
    };
    let size = lines.len().div_ceil(threads.max(1)).max(1);
    let parts: Vec<(Vec<Event>, Vec<String>)> = std::thread::scope(|s| {
        let hs: Vec<_> = lines
            .chunks(size)
            .map(|part| s.spawn(move || decode(part)))
            .collect();
        hs.into_iter()
            // (a panic there is a bug: it goes on here, as on one thread)
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut evs = Vec::with_capacity(lines.len());
    let mut invalid = Vec::new();
    for (e, b) in parts {
        evs.extend(e);
        invalid.extend(b);
    }
    (evs, invalid)
}

fn run_replay(
    file: &Path,
    events: &Path,
    state: Option<&Path>,
    out: Option<&Path>,
    threads: usize,
    json: bool,
) -> Result<ExitCode, String> {
    use std::io::{BufRead, BufReader, BufWriter, Write};
    let program = compile(file)?;
    let mut engine = match state {
        Some(p) if p.exists() => {
            let snap: Snapshot =
                serde_json::from_str(&read(p)?).map_err(|e| format!("state file: {e}"))?;
            Engine::from_snapshot(program, snap).map_err(|e| e.to_string())?
        }
        _ => Engine::new(program),
    };
    let f = std::fs::File::open(events)
        .map_err(|e| format!("cannot open {}: {e}", events.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {elapsed} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if len < 1_000_000 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let reader = BufReader::new(bar.wrap_read(f));
    let mut writer = match out {
        Some(p) => {
            Some(BufWriter::new(std::fs::File::create(p).map_err(|e| {
                format!("cannot create {}: {e}", p.display())
            })?))
        }
        None => None,
    };
    let started = std::time::Instant::now();
    let stats = if threads == 2 {
        // Two threads: lines are read and decoded on the second, a chunk at
        // a time, while this one replays the previous chunk in file order
        // (streaming, as on one thread, in the memory of a few chunks).
        const CHUNK: usize = 4096;
        let program = engine.program().clone();
        let mut lines = reader.lines().enumerate();
        let (mut invalid, mut errors, mut rerr) = (0u64, Vec::new(), None);
        let mut werr = None;
        let mut stats = engine.replay_made(
            |chunk| {
                chunk.reserve(CHUNK);
                while chunk.len() < CHUNK {
                    let Some((i, line)) = lines.next() else {
                        return !chunk.is_empty();
                    };
                    let line = match line {
                        Ok(l) => l,
                        Err(e) => {
                            rerr = Some(format!("reading line {}: {e}", i + 1));
                            return false;
                        }
                    };
                    if line.trim().is_empty() {
                        continue;
                    }
                    match program.event_from_json(&line) {
                        Ok(ev) => chunk.push(ev),
                        Err(e) => {
                            invalid += 1;
                            if errors.len() < 100 {
                                errors.push(format!("line {}: {e}", i + 1));
                            }
                        }
                    }
                }
                true
            },
            |o| {
                if let Some(w) = writer.as_mut() {
                    if let Err(e) = writeln!(w, "{}", o.to_json_string()) {
                        werr.get_or_insert(e.to_string());
                    }
                }
            },
        );
        if let Some(e) = rerr.or(werr) {
            return Err(e);
        }
        stats.invalid = invalid;
        stats.errors = errors;
        stats
    } else if threads > 2 {
        let mut lines = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| e.to_string())?;
            if !line.trim().is_empty() {
                lines.push((i + 1, line));
            }
        }
        let (evs, invalid) = decode_lines(engine.program(), lines, threads);
        let mut stats = match writer.as_mut() {
            Some(w) => {
                // each outcome's JSON line is made on the replay's threads
                // (in input order), instead of keeping every outcome
                let (lines, stats) =
                    engine.replay_parallel_map(evs, threads, |o| o.to_json_string());
                for l in &lines {
                    writeln!(w, "{l}").map_err(|e| e.to_string())?;
                }
                stats
            }
            // no copy of every outcome when none is written
            None => engine.replay_parallel_totals(evs, threads),
        };
        stats.invalid = invalid.len() as u64;
        stats.errors = invalid.into_iter().take(100).collect();
        stats
    } else {
        let mut werr = None;
        let stats = engine
            .replay_jsonl(reader, |o| {
                if let Some(w) = writer.as_mut() {
                    if let Err(e) = writeln!(w, "{}", o.to_json_string()) {
                        werr.get_or_insert(e.to_string());
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        if let Some(e) = werr {
            return Err(e);
        }
        stats
    };
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if let Some(w) = writer.as_mut() {
        w.flush().map_err(|e| e.to_string())?;
    }
    if let Some(p) = state {
        let snap = serde_json::to_string(&engine.snapshot()).map_err(|e| e.to_string())?;
        std::fs::write(p, snap).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&stats).map_err(|e| e.to_string())?
        );
    } else {
        outln!(
            "{} events in {:.2}s ({:.0}/s{}): {} applied, {} duplicates, {} rejected, {} invalid",
            stats.events + stats.invalid,
            secs,
            (stats.events + stats.invalid) as f64 / secs.max(1e-9),
            if stats.parallel { ", parallel" } else { "" },
            stats.applied,
            stats.duplicates,
            stats.rejected,
            stats.invalid
        );
        outln!(
            "points: {} issued, {} deducted, {} redeemed, {} expired, {} reversed; {} customers",
            stats.points_issued,
            stats.points_deducted,
            stats.points_redeemed,
            stats.points_expired,
            stats.points_reversed,
            engine.customer_ids().len()
        );
        for (rule, pts) in &stats.per_rule {
            outln!("  {pts:>12}  {rule}");
        }
        for e in stats.errors.iter().take(10) {
            eprintln!("  ! {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_human(o: &loyalty_rules::Outcome) {
    use loyalty_rules::Effect;
    outln!(
        "{} {} for {}: {} points",
        o.event_type,
        o.event,
        o.customer,
        o.points
    );
    for e in &o.effects {
        let line = match e {
            Effect::Award {
                rule,
                customer,
                kind,
                points,
                capped,
            } => match capped {
                Some(c) => format!(
                    "{points:>8} {kind} to {customer}  ({rule}; capped from {} by `{}`)",
                    c.requested, c.limit
                ),
                None => format!("{points:>8} {kind} to {customer}  ({rule})"),
            },
            Effect::Multiply {
                rule,
                factor,
                points,
                kind,
                ..
            } => format!("{points:>8} {kind} (x{factor})  ({rule})"),
            Effect::Reward {
                rule,
                customer,
                reward,
            } => format!("  reward \"{reward}\" to {customer}  ({rule})"),
            Effect::Tier { rule, from, to, .. } => format!(
                "  tier {} -> {to}  ({rule})",
                from.as_deref().unwrap_or("none")
            ),
            Effect::Tag { rule, tag, .. } => format!("  tag \"{tag}\"  ({rule})"),
            Effect::Redeem {
                rule,
                points,
                reward,
                ..
            } => {
                format!(
                    "  redeem {points} points for \"{}\"  ({rule})",
                    reward.as_deref().unwrap_or("")
                )
            }
            Effect::Notify { rule, message, .. } => format!("  notify \"{message}\"  ({rule})"),
            Effect::SetAttribute {
                rule,
                attribute,
                value,
                ..
            } => format!("  set {attribute} = {value}  ({rule})"),
            Effect::ExtendExpiry {
                rule, days, months, ..
            } => format!(
                "  extend expiry by {}  ({rule})",
                match (days, months) {
                    (_, Some(m)) => format!("{m} months"),
                    (Some(d), _) => format!("{d} days"),
                    _ => String::new(),
                }
            ),
        };
        outln!("  {line}");
    }
    for err in &o.errors {
        outln!("  ! {}: {}", err.rule, err.message);
    }
    if let Some(ex) = &o.explanation {
        for x in ex {
            if x.fired {
                outln!("  [fired]   {} (line {})", x.rule, x.line);
            } else {
                outln!(
                    "  [skipped] {} (line {}:{}): {}",
                    x.rule,
                    x.line,
                    x.column,
                    x.detail
                        .as_deref()
                        .unwrap_or(x.reason.as_deref().unwrap_or(""))
                );
            }
        }
    }
}
