//! Runs the shared conformance corpus (`conformance/*.json` at the repo
//! root). The Python and WASM packages run the same files with the same
//! matching rules (see docs/API-CONTRACT.md).

use std::path::{Path, PathBuf};

use loyalty_rules::{Engine, Program};
use serde_json::Value;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance")
}

fn program_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines
            .iter()
            .map(|l| l.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => panic!("`program` must be a string or a list of lines"),
    }
}

/// Subset match: every key of an expected object must match; arrays match
/// element-wise with equal length; scalars compare exactly.
/// `message_contains` / `hint_contains` are substring tests.
fn matches(expected: &Value, actual: &Value, path: &str, errors: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                if let Some(field) = k.strip_suffix("_contains") {
                    let got = a.get(field).and_then(Value::as_str).unwrap_or("");
                    let want = ev.as_str().unwrap_or("");
                    if !got.contains(want) {
                        errors.push(format!("{path}.{field}: {got:?} does not contain {want:?}"));
                    }
                    continue;
                }
                match a.get(k) {
                    Some(av) => matches(ev, av, &format!("{path}.{k}"), errors),
                    None => errors.push(format!("{path}.{k}: missing (expected {ev})")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                errors.push(format!(
                    "{path}: expected {} elements, got {}: {}",
                    e.len(),
                    a.len(),
                    actual
                ));
                return;
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                matches(ev, av, &format!("{path}[{i}]"), errors);
            }
        }
        (e, a) => {
            if e != a {
                errors.push(format!("{path}: expected {e}, got {a}"));
            }
        }
    }
}

fn run_case(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let case: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let source = program_text(&case["program"]);
    let mut errors = Vec::new();
    let diags = serde_json::to_value(loyalty_rules::check(&source)).unwrap();
    match case.get("expect_diagnostics") {
        Some(expected) => {
            matches(expected, &diags, "diagnostics", &mut errors);
            if Program::compile(&source).is_ok()
                && diags
                    .as_array()
                    .is_some_and(|d| d.iter().any(|x| x["severity"] == "error"))
            {
                errors.push("compile() succeeded although check() reported errors".into());
            }
            return errors;
        }
        None => {
            if diags.as_array().is_some_and(|d| !d.is_empty()) {
                errors.push(format!("unexpected diagnostics: {diags}"));
                return errors;
            }
        }
    }
    let program = match Program::compile(&source) {
        Ok(p) => p,
        Err(e) => {
            errors.push(format!("does not compile: {e:#}"));
            return errors;
        }
    };
    if case.get("mode").and_then(Value::as_str) == Some("engine") {
        run_engine_case(program, &case, &mut errors);
        return errors;
    }
    let default_customer = case
        .get("customer")
        .cloned()
        .unwrap_or(serde_json::json!({"id": "c1"}));
    for (i, step) in case["steps"]
        .as_array()
        .expect("`steps` must be a list")
        .iter()
        .enumerate()
    {
        let customer_json = step.get("customer").unwrap_or(&default_customer);
        let customer = match program.customer_from_value(customer_json) {
            Ok(c) => c,
            Err(e) => {
                match step.get("expect_error") {
                    Some(exp) => {
                        matches(exp, &e.to_json(), &format!("steps[{i}].error"), &mut errors)
                    }
                    None => errors.push(format!("steps[{i}]: bad customer: {e}")),
                }
                continue;
            }
        };
        let event = match program.event_from_value(&step["event"]) {
            Ok(e) => e,
            Err(e) => {
                match step.get("expect_error") {
                    Some(exp) => {
                        matches(exp, &e.to_json(), &format!("steps[{i}].error"), &mut errors)
                    }
                    None => errors.push(format!("steps[{i}]: bad event: {e}")),
                }
                continue;
            }
        };
        if step.get("expect_error").is_some() {
            errors.push(format!("steps[{i}]: expected an error, got none"));
            continue;
        }
        let explain = step
            .get("explain")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let outcome = if explain {
            program.explain(&event, &customer)
        } else {
            program.evaluate(&event, &customer)
        };
        let actual = serde_json::to_value(&outcome).unwrap();
        matches(
            &step["expect"],
            &actual,
            &format!("steps[{i}]"),
            &mut errors,
        );
        // `expect_matching`: the names `matching_rules` lists, in order
        if let Some(exp) = step.get("expect_matching") {
            let names: Vec<&str> = program.matching_rules(&event, &customer).collect();
            matches(
                exp,
                &serde_json::json!(names),
                &format!("steps[{i}].matching"),
                &mut errors,
            );
        }
        // a dry run: evaluating again gives the same outcome, byte for byte
        let again = if explain {
            program.explain(&event, &customer)
        } else {
            program.evaluate(&event, &customer)
        };
        if again.to_json_string() != outcome.to_json_string() {
            errors.push(format!("steps[{i}]: second evaluation differs"));
        }
    }
    errors
}

fn run_engine_case(program: Program, case: &Value, errors: &mut Vec<String>) {
    let mut engine = Engine::new(program.clone());
    for c in case
        .get("customers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Err(e) = engine.set_customer(c) {
            errors.push(format!("customer {c}: {e}"));
            return;
        }
    }
    for (i, step) in case["steps"]
        .as_array()
        .expect("`steps` must be a list")
        .iter()
        .enumerate()
    {
        let at = format!("steps[{i}]");
        if let Some(t) = step.get("advance_to") {
            let t = t
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("advance_to is an RFC 3339 time");
            let ledger = serde_json::to_value(engine.advance_to(t)).unwrap();
            if let Some(exp) = step.get("expect_ledger") {
                matches(exp, &ledger, &format!("{at}.ledger"), errors);
            }
        } else {
            let event = match program.event_from_value(&step["event"]) {
                Ok(e) => e,
                Err(e) => {
                    match step.get("expect_error") {
                        Some(exp) => matches(exp, &e.to_json(), &format!("{at}.error"), errors),
                        None => errors.push(format!("{at}: bad event: {e}")),
                    }
                    continue;
                }
            };
            let explain = step
                .get("explain")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if explain {
                // a preview explains and changes nothing
                let before = serde_json::to_string(&engine.snapshot()).unwrap();
                let preview = serde_json::to_value(engine.preview(&event)).unwrap();
                if let Some(exp) = step.get("expect_preview") {
                    matches(exp, &preview, &format!("{at}.preview"), errors);
                }
                assert_eq!(
                    before,
                    serde_json::to_string(&engine.snapshot()).unwrap(),
                    "preview changed state"
                );
            }
            let outcome = serde_json::to_value(engine.process(&event)).unwrap();
            if let Some(exp) = step.get("expect") {
                matches(exp, &outcome, &at, errors);
            }
        }
        if let Some(exp) = step.get("expect_customer") {
            let id = exp.get("id").and_then(Value::as_str).unwrap_or("c1");
            match engine.customer(id) {
                Some(st) => matches(
                    exp,
                    &serde_json::to_value(st).unwrap(),
                    &format!("{at}.customer"),
                    errors,
                ),
                None => errors.push(format!("{at}: no customer {id}")),
            }
            if let Some(st) = engine.customer(id) {
                let b = &st.balances;
                if b.lifetime_earned
                    != b.available + b.pending + b.redeemed + b.expired + b.reversed
                {
                    errors.push(format!("{at}: balance invariant broken: {b:?}"));
                }
            }
        }
    }
}

#[test]
fn conformance_corpus() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("conformance/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no conformance cases found");
    let mut failures = Vec::new();
    for f in &files {
        let errs = run_case(f);
        if !errs.is_empty() {
            failures.push(format!("{}:\n  {}", f.display(), errs.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    println!("{} conformance cases passed", files.len());
}
