//! Clauses a rule may have once, and rule names a program may use once,
//! are reported on their second use (and only there).

#[test]
fn second_uses_are_reported() {
    let src = "rule \"a\"\n  on purchase\n  active from 2026-01-01\n  active until 2026-02-01\n  in best group \"g\"\n  in exclusive group \"h\"\n  priority 1\n  priority 2\n  award 1 point\n\nrule \"A\"\n  on purchase\n  award 1 point\n";
    let diags = loyalty_rules::check(src);
    let at = |needle: &str| {
        let hits: Vec<_> = diags
            .iter()
            .filter(|d| d.message.contains(needle))
            .map(|d| d.line)
            .collect();
        assert_eq!(hits.len(), 1, "{needle}: {diags:#?}");
        hits[0]
    };
    assert_eq!(at("`active` is given twice"), 4);
    assert_eq!(at("one group only"), 6);
    assert_eq!(at("priority"), 8);
    assert_eq!(at("there is already a rule named \"A\""), 11);
    assert_eq!(diags.len(), 4, "{diags:#?}");
}
