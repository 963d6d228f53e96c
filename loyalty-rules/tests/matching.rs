//! `Program::matching_rules` agrees with the explanation of a full
//! evaluation: every rule that fired matches, no rule whose dates or
//! condition failed does, and matches come in evaluation order.
use loyalty_rules::Program;

fn read(p: &str) -> String {
    std::fs::read_to_string(format!("{}/../{p}", env!("CARGO_MANIFEST_DIR"))).expect(p)
}

#[test]
fn matching_rules_agree_with_explanations() {
    let program = Program::compile(&read("benches/inputs/program-20.rules")).unwrap();
    let customer = program
        .customer_from_json(&read("benches/inputs/customer.json"))
        .unwrap();
    for (file, expect_some) in [
        ("benches/inputs/event-fire.json", true),
        ("benches/inputs/event-nofire.json", false),
    ] {
        let event = program.event_from_json(&read(file)).unwrap();
        let matched: Vec<&str> = program.matching_rules(&event, &customer).collect();
        let explained = program.explain(&event, &customer).explanation.unwrap();
        // evaluation order: matches are a subsequence of the explanation
        let order: Vec<&str> = explained.iter().map(|e| &*e.rule).collect();
        let mut at = 0;
        for m in &matched {
            at += order[at..].iter().position(|r| r == m).expect("in order") + 1;
        }
        for e in &explained {
            let is_matched = matched.contains(&&*e.rule);
            match (e.fired, e.reason.as_deref()) {
                (true, _) => assert!(is_matched, "{file}: fired {} not matched", e.rule),
                // an exclusive group's later member is not evaluated
                (false, Some("group")) => {}
                (false, why) => {
                    assert!(!is_matched, "{file}: {} matched but {why:?}", e.rule)
                }
            }
        }
        assert_eq!(!matched.is_empty(), expect_some, "{file}: {matched:?}");
    }
}
