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

/// Rules whose conditions start with direct tests of each kind the rule loop
/// checks before the full predicate (numbers, tiers, text equality, set and
/// unset fields, weekdays, hours, text patterns, a basket that must not be
/// empty), some followed by a test that is not direct.
const GUARDED: &str = r#"
tiers member, silver, gold, platinum
customer has
  segment: text
rule "Amount" on purchase if purchase.amount >= $20 award 1 point
rule "Tier then amount" on purchase if customer.tier is gold and purchase.amount < $50 award 2 points
rule "Not tier" on purchase if customer.tier not in [gold, platinum] and purchase.channel = "app" award 3 points
rule "Channel" on purchase if purchase.channel != "web" award 4 points
rule "Coupon" on purchase if purchase.coupon is set and purchase.amount > $10 award 5 points
rule "No coupon" on purchase if purchase.coupon is not set award 6 points
rule "Weekday" on purchase if weekday in [Monday, Friday] and any item in purchase.items where item.category = "coffee" award 7 points
rule "Hour" on purchase if hour between 6 and 9 award 8 points
rule "Store" on purchase if purchase.store starts with "Air" and count of item in purchase.items where item.quantity >= 2 >= 1 award 9 points
rule "Segment" on purchase if customer.segment = "vip" or purchase.amount > $90 award 10 points
rule "Ratio" on purchase if purchase.amount > $0 and purchase.amount / 0 > 1 award 11 points
rule "Weekend" in best group "w" on purchase if weekday in [Saturday, Sunday] award 12 points
rule "Weekend big" in best group "w" on purchase if weekday in [Saturday, Sunday] and purchase.amount >= $40 award 30 points
rule "Tier pick" in exclusive group "t" on purchase if customer.tier is silver award 13 points
rule "Tier pick 2" in exclusive group "t" on purchase if customer.tier in [silver, gold] award 14 points
rule "Few merch" on purchase if count of item in purchase.items where item.category = "merch" < 2 award 15 points
rule "Basket first" on purchase if any item in purchase.items where item.quantity >= 2 and purchase.amount > $5 award 16 points
rule "Coffee spend" on purchase if sum of item.price for each item in purchase.items where item.category = "coffee" >= $4 award 17 points
rule "No sum" on purchase if sum of item.price for each item in purchase.items <= $4.50 award 18 points
"#;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]
    /// `evaluate` skips rules by their leading direct tests; `explain` runs
    /// every rule in full. They must agree on everything but the
    /// explanation, and `matching_rules` must list exactly the rules whose
    /// condition held in the explanation (none is stopped here).
    #[test]
    fn fast_paths_agree_with_the_full_evaluation(
        cents in 0u32..12_000,
        day in 1u32..=28,
        hour in 0u32..24,
        channel in proptest::sample::select(vec!["app", "web", "kiosk"]),
        store in proptest::sample::select(vec!["Airport T2", "Downtown", "air"]),
        coupon in proptest::option::of(proptest::sample::select(vec!["X1", ""])),
        items in proptest::collection::vec(
            (proptest::sample::select(vec!["coffee", "merch", "pastry"]), 0u32..4), 0..4),
        tier in proptest::option::of(proptest::sample::select(vec!["member", "silver", "gold", "platinum"])),
        segment in proptest::option::of(proptest::sample::select(vec!["vip", "regular"])),
        program in proptest::sample::select(vec![0usize, 1]),
    ) {
        let source = if program == 0 { GUARDED.to_string() } else { read("benches/inputs/program-20.rules") };
        let program = Program::compile(&source).unwrap();
        let items: Vec<String> = items
            .iter()
            .map(|(c, q)| format!(r#"{{"category": "{c}", "price": "4.50", "quantity": {q}}}"#))
            .collect();
        let coupon = coupon.map_or(String::new(), |c| format!(r#", "coupon": "{c}""#));
        let event = format!(
            r#"{{"type": "purchase", "id": "e", "customer": "c1", "time": "2026-11-{day:02}T{hour:02}:15:00Z",
               "amount": "{}.{:02}", "store": "{store}", "channel": "{channel}", "items": [{}]{coupon}}}"#,
            cents / 100, cents % 100, items.join(", "));
        let mut customer = String::from(r#"{"id": "c1""#);
        if let Some(t) = tier { customer += &format!(r#", "tier": "{t}""#); }
        if let Some(s) = segment { customer += &format!(r#", "segment": "{s}""#); }
        customer += "}";
        let event = program.event_from_json(&event).unwrap();
        let customer = program.customer_from_json(&customer).unwrap();

        let fast = program.evaluate(&event, &customer);
        let mut full = program.explain(&event, &customer);
        let explained = full.explanation.take().unwrap();
        proptest::prop_assert_eq!(&fast, &full);

        let matched: Vec<&str> = program.matching_rules(&event, &customer).collect();
        for e in &explained {
            let is_matched = matched.contains(&&*e.rule);
            match (e.fired, e.reason.as_deref()) {
                (true, _) => proptest::prop_assert!(is_matched, "fired {} not matched", e.rule),
                (false, Some("group")) => {}
                (false, why) => proptest::prop_assert!(!is_matched, "{} matched but {:?}", e.rule, why),
            }
        }
    }
}

/// More rules for one event type than one chunk of the matcher holds (256):
/// the matches of every chunk come out, in evaluation order (priority, then
/// source order), and `evaluate` fires exactly those rules.
#[test]
fn matching_rules_beyond_one_chunk() {
    let mut src = String::from("program \"Many\"\n");
    for i in 0..600 {
        // every third rule matches an amount of $50; every 100th goes first
        let threshold = if i % 3 == 0 { 10 } else { 90 };
        let priority = if i % 100 == 7 { " priority 5" } else { "" };
        src.push_str(&format!(
            "rule \"r{i}\" on purchase{priority} if purchase.amount > ${threshold} award 1 point\n"
        ));
    }
    let program = Program::compile(&src).unwrap_or_else(|e| panic!("{e:#}"));
    let event = program
        .event_from_json(
            r#"{"type":"purchase","id":"o1","customer":"c1","time":"2026-11-24T10:00:00Z","amount":"50.00"}"#,
        )
        .unwrap();
    let customer = program.customer_from_json(r#"{"id":"c1"}"#).unwrap();
    let got: Vec<&str> = program.matching_rules(&event, &customer).collect();
    let mut want: Vec<String> = (0..600)
        .filter(|i| i % 3 == 0 && i % 100 == 7)
        .map(|i| format!("r{i}"))
        .collect();
    want.extend(
        (0..600)
            .filter(|i| i % 3 == 0 && i % 100 != 7)
            .map(|i| format!("r{i}")),
    );
    assert_eq!(got, want);
    assert_eq!(got.len(), 200);
    let fired = program.evaluate(&event, &customer);
    assert_eq!(fired.points.to_string(), "200");
}
