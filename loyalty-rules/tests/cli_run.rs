//! `loyalty-rules run` on one thread (events streamed), two (lines decoded
//! on the second while the first replays, streaming) and three (every
//! line decoded first, on the threads, then the partitioned replay): the
//! same summary, invalid lines listed in line order; as does the default
//! (two threads on a machine with two CPUs).
#![cfg(feature = "cli")]

use std::process::Command;

/// `threads` None: the default.
fn run(
    program: &std::path::Path,
    events: &std::path::Path,
    threads: Option<usize>,
) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loyalty-rules"));
    cmd.arg("run").arg(program).arg(events).arg("--json");
    if let Some(t) = threads {
        cmd.args(["--threads", &t.to_string()]);
    }
    let out = cmd.output().expect("running the CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON summary");
    // whether a part ran in parallel is the only difference allowed
    v.as_object_mut().unwrap().remove("parallel");
    v
}

#[test]
fn run_gives_one_summary_on_any_number_of_threads() {
    let dir = std::env::temp_dir().join(format!("lr-cli-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.join("p.rules");
    std::fs::write(
        &program,
        "rule \"Base\" on purchase award 1 point per $1\nrule \"Big\" on purchase if purchase.amount > $40 award 5 points\n",
    )
    .unwrap();
    let mut lines = Vec::new();
    for i in 0..3000 {
        lines.push(match i % 500 {
            // bad lines spread over the file (and so over the threads' parts)
            7 => format!(r#"{{"type":"purchase","id":"o{i}","customer":"c{}","time":"2026-01-01T00:00:00Z","amount":"lots"}}"#, i % 37),
            8 => "not json".to_string(),
            9 => String::new(),
            _ => format!(
                r#"{{"type":"purchase","id":"o{}","customer":"c{}","time":"2026-01-{:02}T{:02}:00:00Z","amount":"{}.50"}}"#,
                // the last 100 rows repeat the first 100: duplicates
                i % 2900,
                i % 2900 % 37,
                1 + i % 2900 / 120,
                i % 24,
                i % 60
            ),
        });
    }
    let events = dir.join("events.jsonl");
    std::fs::write(&events, lines.join("\n")).unwrap();
    let one = run(&program, &events, Some(1));
    assert_eq!(one["invalid"], 12);
    let errors: Vec<String> = one["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    let numbered: Vec<usize> = errors
        .iter()
        .map(|e| e["line ".len()..e.find(':').unwrap()].parse().unwrap())
        .collect();
    let mut sorted = numbered.clone();
    sorted.sort_unstable();
    assert_eq!(numbered, sorted, "errors in line order");
    assert_eq!(numbered.first(), Some(&8));
    assert!(one["duplicates"].as_u64().unwrap() > 0);
    for threads in [Some(2), Some(3), None] {
        assert_eq!(run(&program, &events, threads), one, "{threads:?} threads");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A reader that stops reading (`loyalty-rules eval ... | head -1`) ends
/// the CLI quietly with status 141, as `SIGPIPE` ends other tools; it used
/// to panic with "failed printing to stdout: Broken pipe".
#[test]
fn closed_output_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = std::env::temp_dir().join(format!("lr-cli-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.join("p.rules");
    std::fs::write(&program, "rule \"Base\" on purchase award 1 point per $1\n").unwrap();
    // far more output than a pipe buffers, so the CLI is still writing
    // when the reader goes away
    let lines: Vec<String> = (0..20_000)
        .map(|i| {
            format!(
                r#"{{"type":"purchase","id":"o{i}","customer":"c{}","time":"2026-01-01T00:00:00Z","amount":"{}.50"}}"#,
                i % 97,
                i % 300
            )
        })
        .collect();
    let events = dir.join("events.jsonl");
    std::fs::write(&events, lines.join("\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_loyalty-rules"))
        .arg("eval")
        .arg(&program)
        .arg("--event")
        .arg(&events)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the CLI");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"event\":\"o0\""), "{first}");
    // (the reader is dropped here: the pipe is closed)
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}
