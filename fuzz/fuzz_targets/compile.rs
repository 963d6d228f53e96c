//! Arbitrary UTF-8 text through `check` and `Program::compile`: never panics,
//! and the two agree on whether the program has errors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loyalty_rules::{Program, Severity};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let diagnostics = loyalty_rules::check(source);
    let has_errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
    for d in &diagnostics {
        // Offsets must be inside the source and on char boundaries.
        assert!(
            d.start <= d.end && d.end <= source.len(),
            "bad span {}..{}",
            d.start,
            d.end
        );
        assert!(source.is_char_boundary(d.start) && source.is_char_boundary(d.end));
        let _ = d.render(source);
    }
    match Program::compile(source) {
        Ok(program) => {
            assert!(
                !has_errors,
                "compile succeeded but check reported errors: {diagnostics:?}"
            );
            let _ = program.rule_names().count();
        }
        Err(err) => {
            assert!(
                has_errors,
                "compile failed but check reported no errors: {err}"
            );
            let _ = err.render();
            let _ = err.to_json();
        }
    }
});
