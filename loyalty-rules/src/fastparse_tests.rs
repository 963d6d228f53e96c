//! The fast path against pest: it must accept the repository's programs, and
//! whenever it accepts anything (mutants of them included) pest must agree.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::parse as fast;
use crate::error::Sink;
use crate::parser::{assert_same_as_pest, parse_pest};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo().join(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every program kept in the repository, with where it came from.
fn repo_programs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dir in ["examples", "benches/inputs", "fuzz/programs"] {
        for p in files(dir, "rules") {
            out.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
    for p in files("conformance", "json") {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let text = match &v["program"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(lines) => lines
                .iter()
                .map(|l| l.as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n"),
            _ => continue,
        };
        out.push((p.display().to_string(), text));
    }
    let samples = std::fs::read_to_string(repo().join("examples/editor/samples.js")).unwrap();
    for (i, chunk) in samples.split("source: `").skip(1).enumerate() {
        let text = chunk.split('`').next().unwrap_or_default();
        out.push((format!("examples/editor/samples.js #{i}"), text.to_string()));
    }
    for doc in ["docs/LANGUAGE.md", "README.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        let mut lines = text.lines().enumerate();
        while let Some((n, l)) = lines.next() {
            if l.trim() == "```rules" || l.trim() == "```example" {
                let block: Vec<&str> = lines
                    .by_ref()
                    .map(|(_, l)| l)
                    .take_while(|l| !l.starts_with("```"))
                    .collect();
                out.push((format!("{doc}:{}", n + 1), block.join("\n")));
            }
        }
    }
    out
}

/// The soundness rule: when the fast path accepts, pest accepts with no
/// diagnostics and builds the same tree, spans included.
fn assert_sound(source: &str) -> bool {
    fast(source, None)
        .map(|f| assert_same_as_pest(source, &f))
        .is_some()
}

#[test]
fn accepts_every_valid_program_in_the_repository() {
    let mut declined = Vec::new();
    let mut valid = 0;
    for (name, source) in repo_programs() {
        let mut sink = Sink::new(&source);
        let pest_ok = parse_pest(&source, &mut sink).is_some() && sink.diags.is_empty();
        if !pest_ok {
            assert!(
                fast(&source, None).is_none(),
                "{name}: pest rejects, fast accepts"
            );
            continue;
        }
        valid += 1;
        if !assert_sound(&source) {
            declined.push(name);
        }
    }
    eprintln!("{valid} valid programs, {} declined", declined.len());
    assert!(valid > 50, "only {valid} programs found");
    assert!(
        declined.is_empty(),
        "the fast path declines {} of {valid} valid programs: {declined:#?}",
        declined.len()
    );
}

#[test]
fn quirks_agree_with_pest() {
    for source in [
        "IF Purchase > $1,000 THEN Award 100 Points",
        "if referral successful then award 50 points and notify \"thanks\"",
        "IF purchase.amount >= $1,000.50 and not not x THEN award 1 point, tag \"a\"",
        "rule \"a\" on purchase if once > none award 1 point",
        "rule \"a\" on purchase if notify is set award 1 point",
        "rule \"a\"\n  on purchase # c\n  if x is # comment\n not 5 # c\n  award 1 point # c\n",
        "rule \"a\" on purchase if x is not in [1, 2,] award 1 point",
        "rule \"a\" on purchase if (a + b) * -c > -(5) award 1 point",
        "rule \"a\" on purchase if - - 5 = 5 award 1 point",
        "rule \"a\" on purchase if status points earned this month > 5 award 1 point",
        "rule \"a\" on purchase if points earned in last 0 days > 5 award 1 point",
        "rule \"a\" on purchase if d = 2026-02-30 award 1 point",
        "rule \"a\" priority 5, on purchase award 1 point",
        "rule \"a\" at most 500000 points per customer per day award 1 point",
        "rule \"a\" at most 5 times per customer every 2 hours award 1 point",
        "\u{FEFF}rule \"a\" award 1 point",
        "rule \"a\"\u{FEFF} award 1 point",
        "rule \"a\\\n\" award 1 point",
        "rule \"a\" award 1,0000 points",
        "rule \"a\" if 12:30 < 1:05:07 award 1 point",
    ] {
        assert_sound(source);
    }
}

/// `in best group` / `in exclusive group` end a filter in the fast path
/// as in the grammar (`cmp_start`): accepted, the same tree as pest's.
#[test]
fn a_group_clause_ends_a_filter() {
    for source in [
        "rule \"r\" on refund deduct 5 points for each item in refund.items where item.gift\n  in best group \"g\"",
        "rule \"r\" on purchase if any item in purchase.items where item.gift in exclusive group \"g\" award 3 points",
        "rule \"r\" on purchase award 2 points for each item in purchase.items where item.sku in [\"a\"] in best group \"g\"",
    ] {
        assert!(assert_sound(source), "the fast path declines {source}");
    }
}

/// Tokens and characters a mutation can insert.
const PIECES: &[&str] = &[
    " ",
    "\n",
    "#",
    "\"",
    "\"s\"",
    "\u{FEFF}",
    "\\",
    "€",
    "1,000",
    "2026-01-01",
    "12:30",
];
/// Punctuation and words a mutation can insert, space-separated.
const WORDS: &str = ", . ( ) [ ] : ? - + * / = > < ! % $ 1 0 if then and or not is in of as \
    per for each every where has points point award bonus at most once times none no any count \
    sum days since last earned rule on set to tier between x purchase amount";

fn piece(i: usize) -> &'static str {
    match PIECES.get(i) {
        Some(p) => p,
        None => {
            let words: Vec<&'static str> = WORDS.split_whitespace().collect();
            words[(i - PIECES.len()) % words.len()]
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    DeleteChar(usize),
    DeleteToken(usize),
    Insert(usize, usize),
    SwapTokens(usize, usize),
    Upper(usize),
    Duplicate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteChar),
        any::<usize>().prop_map(Mutation::DeleteToken),
        (any::<usize>(), 0..PIECES.len() + 80).prop_map(|(a, b)| Mutation::Insert(a, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapTokens(a, b)),
        any::<usize>().prop_map(Mutation::Upper),
        any::<usize>().prop_map(Mutation::Duplicate),
    ]
}

/// Byte ranges of the whitespace-separated tokens.
fn tokens(s: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(st)) => {
                out.push((st, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(st) = start {
        out.push((st, s.len()));
    }
    out
}

fn char_boundary(s: &str, i: usize) -> usize {
    let mut i = i % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(s: &str, m: &Mutation) -> String {
    let toks = tokens(s);
    let mut out = s.to_string();
    match *m {
        Mutation::DeleteChar(i) => {
            let i = char_boundary(s, i);
            if let Some(c) = s[i..].chars().next() {
                out.replace_range(i..i + c.len_utf8(), "");
            }
        }
        Mutation::DeleteToken(i) if !toks.is_empty() => {
            let (a, b) = toks[i % toks.len()];
            out.replace_range(a..b, "");
        }
        Mutation::Insert(i, p) => {
            let i = char_boundary(s, i);
            out.insert_str(i, piece(p));
        }
        Mutation::SwapTokens(i, j) if !toks.is_empty() => {
            let (mut x, mut y) = (toks[i % toks.len()], toks[j % toks.len()]);
            if x.0 > y.0 {
                std::mem::swap(&mut x, &mut y);
            }
            if x.1 <= y.0 {
                out = format!(
                    "{}{}{}{}{}",
                    &s[..x.0],
                    &s[y.0..y.1],
                    &s[x.1..y.0],
                    &s[x.0..x.1],
                    &s[y.1..]
                );
            }
        }
        Mutation::Upper(i) if !toks.is_empty() => {
            let (a, b) = toks[i % toks.len()];
            out.replace_range(a..b, &s[a..b].to_ascii_uppercase());
        }
        Mutation::Duplicate(i) if !toks.is_empty() => {
            let (a, b) = toks[i % toks.len()];
            out.insert_str(b, &format!(" {}", &s[a..b]));
        }
        _ => {}
    }
    out
}

/// Small programs: the mutants stay cheap and the mutations hit often.
fn corpus() -> Vec<String> {
    let mut out: Vec<String> = repo_programs()
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| s.len() < 1500)
        .collect();
    // Rules cut out of the big programs, one at a time.
    for (_, s) in repo_programs() {
        for part in s.split("\nrule ").skip(1) {
            out.push(format!("rule {part}"));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn mutants_are_sound(
        pick in any::<usize>(),
        ms in proptest::collection::vec(mutation(), 1..4),
    ) {
        thread_local! {
            static CORPUS: Vec<String> = corpus();
        }
        let source = CORPUS.with(|c| c[pick % c.len()].clone());
        let mutant = ms.iter().fold(source, |s, m| apply(&s, m));
        let accepted = assert_sound(&mutant);
        if std::env::var("FASTPARSE_STATS").is_ok() {
            let mut sink = Sink::new(&mutant);
            let pest_ok = parse_pest(&mutant, &mut sink).is_some() && sink.diags.is_empty();
            eprintln!("STAT {} {}", accepted, pest_ok);
        }
    }
}
