//! Runs every example of docs/LANGUAGE.md: ```rules blocks must compile
//! cleanly and match the ```example after them; ```rules,fails blocks must
//! produce the ```diagnostic after them.

use std::path::Path;

use loyalty_rules::Program;
use serde_json::Value;

struct Block {
    lang: String,
    body: String,
    line: usize,
}

fn blocks(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut cur: Option<Block> = None;
    for (i, line) in doc.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("```") {
            match cur.take() {
                Some(b) => out.push(b),
                None => {
                    cur = Some(Block {
                        lang: rest.trim().to_string(),
                        body: String::new(),
                        line: i + 1,
                    })
                }
            }
        } else if let Some(b) = cur.as_mut() {
            b.body.push_str(line);
            b.body.push('\n');
        }
    }
    out
}

fn subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| subset(v, av))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| subset(x, y))
        }
        (e, a) => e == a,
    }
}

#[test]
fn reference_examples_run() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/LANGUAGE.md"))
            .unwrap();
    let bs = blocks(&doc);
    let mut failures = Vec::new();
    let mut programs = 0;
    let mut examples = 0;
    for (i, b) in bs.iter().enumerate() {
        let next = bs.get(i + 1);
        match b.lang.as_str() {
            "rules" => {
                programs += 1;
                let diags = loyalty_rules::check(&b.body);
                if !diags.is_empty() {
                    failures.push(format!(
                        "line {}: program has diagnostics:\n{}",
                        b.line,
                        diags.iter().map(|d| d.render(&b.body)).collect::<String>()
                    ));
                    continue;
                }
                let program = Program::compile(&b.body).unwrap();
                let Some(ex) = next.filter(|n| n.lang == "example") else {
                    continue;
                };
                examples += 1;
                let ex: Value = serde_json::from_str(&ex.body)
                    .unwrap_or_else(|e| panic!("line {}: {e}", ex.line));
                let customer = program
                    .customer_from_value(
                        ex.get("customer")
                            .unwrap_or(&serde_json::json!({"id": "c1"})),
                    )
                    .unwrap();
                let event = match program.event_from_value(&ex["event"]) {
                    Ok(e) => e,
                    Err(e) => {
                        failures.push(format!("line {}: bad event: {e}", b.line));
                        continue;
                    }
                };
                let out = if ex["explain"] == Value::Bool(true) {
                    program.explain(&event, &customer)
                } else {
                    program.evaluate(&event, &customer)
                };
                let actual = serde_json::to_value(&out).unwrap();
                if !subset(&ex["expect"], &actual) {
                    failures.push(format!(
                        "line {}: expected {}\n  got {}",
                        b.line, ex["expect"], actual
                    ));
                }
            }
            "rules,fails" => {
                programs += 1;
                let diags = serde_json::to_value(loyalty_rules::check(&b.body)).unwrap();
                let want: Value =
                    serde_json::from_str(&next.expect("a ```diagnostic block follows").body)
                        .unwrap();
                let ok = diags
                    .as_array()
                    .is_some_and(|d| d.iter().any(|x| subset(&want, x)));
                if !ok {
                    failures.push(format!(
                        "line {}: expected a diagnostic {want}, got {diags}",
                        b.line
                    ));
                }
            }
            _ => {}
        }
    }
    assert!(programs >= 10, "only {programs} programs found");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    println!("{programs} reference programs, {examples} examples ok");
}
