//! Text that parses -> format -> parses again to the same syntax tree (spans
//! ignored), and formatting the formatted text changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(ast) = loyalty_rules::parse(source) else {
        return;
    };
    let formatted = loyalty_rules::format(source).expect("parse succeeded, so format must too");
    assert_eq!(formatted, loyalty_rules::format_ast(&ast));
    let reparsed = match loyalty_rules::parse(&formatted) {
        Ok(a) => a,
        Err(e) => panic!(
            "formatted text does not parse: {}\n--- formatted ---\n{formatted}",
            e.render()
        ),
    };
    assert_eq!(
        ast, reparsed,
        "formatting changed the syntax tree\n--- formatted ---\n{formatted}"
    );
    let twice = loyalty_rules::format(&formatted).expect("formatted text formats");
    assert_eq!(formatted, twice, "formatting is not idempotent");
});
