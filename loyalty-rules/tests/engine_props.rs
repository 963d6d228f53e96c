//! Property tests of the engine over random event streams and programs.

use loyalty_rules::{Engine, Event, Program, ReplayStats, Snapshot, Status};
use proptest::prelude::*;

const RULES: &[&str] = &[
    "rule \"Base\" on purchase award 1 point per $1",
    "rule \"Half\" on purchase award 1 point per $2 of purchase.amount",
    "rule \"Third\" on purchase if count of purchases in last 30 days = 3 award 50 points",
    "rule \"Capped\" on purchase award 40 points\n  at most 100 points per customer per week",
    "rule \"Once a day\" on login award 5 points\n  at most once per customer per day",
    "rule \"Cooldown\" on login award 3 points\n  at most once every 6 hours",
    "rule \"Gold double\" on purchase if customer.tier is gold multiply points by 2",
    "rule \"Penalty\" on refund deduct 5 points",
    "rule \"Referrer\" on purchase if customer.referred_by is set award 7 points to customer.referred_by",
    "rule \"Status\" on purchase award 1 status point per $1",
    "rule \"Review\" on review if review.rating >= 4 award 10 points\n  at most 3 times per customer per month",
    "rule \"Welcome gold\" on tier_change if tier_change.to is gold award 20 points",
    "rule \"Launch\" on purchase award 10 points\n  budget 250 points",
    "rule \"Few logins\" on login award 2 points\n  at most 8 times in total",
    "rule \"Promo\" on review award 4 points\n  budget 5 awards",
    "rule \"Flash\" on purchase award 5 points\n  active from 2026-02-01 to 2026-02-20\n  budget 12 points",
];

const HEADERS: &[&str] = &[
    "",
    "points are pending for 7 days\n",
    "points expire 60 days after earning\n",
    "points expire at end of month\npoints are pending for 2 days\n",
];

fn program(header: usize, rules: &[bool]) -> Program {
    let mut src = String::from(HEADERS[header % HEADERS.len()]);
    src.push_str("points kinds status\nat most 400 points per customer per month\n");
    src.push_str("tiers by spend in last 90 days\n  silver from $100\n  gold from $300\n  review every 3 months, drop one tier at most\n");
    for (r, on) in RULES.iter().zip(rules) {
        if *on {
            src.push_str(r);
            src.push('\n');
        }
    }
    src.push_str("rule \"Always\" on purchase award 1 point\n");
    Program::compile(&src).unwrap_or_else(|e| panic!("{e:#}\n{src}"))
}

#[derive(Clone, Debug)]
struct Ev {
    kind: u8,
    customer: u8,
    hours: u32,
    amount: u32,
    target: u8,
}

fn ev_strategy() -> impl Strategy<Value = Ev> {
    (0u8..6, 0u8..5, 0u32..200, 1u32..300, 0u8..20).prop_map(
        |(kind, customer, hours, amount, target)| Ev {
            kind,
            customer,
            hours,
            amount,
            target,
        },
    )
}

/// Build a time-ordered JSON stream; refunds and redemptions refer to
/// earlier events of the same customer.
fn events(p: &Program, raw: &[Ev]) -> Vec<Event> {
    let mut t = 1_767_225_600i64; // 2026-01-01
    let mut out = Vec::new();
    let mut purchases: Vec<(u8, String, u32)> = Vec::new();
    for (i, e) in raw.iter().enumerate() {
        t += i64::from(e.hours) * 3600;
        let time = chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();
        let c = format!("c{}", e.customer);
        let id = format!("e{i}");
        let json = match e.kind {
            0 | 1 => {
                purchases.push((e.customer, id.clone(), e.amount));
                serde_json::json!({"type": "purchase", "id": id, "customer": c, "time": time, "amount": format!("{}.{:02}", e.amount, e.target)})
            }
            2 => serde_json::json!({"type": "login", "id": id, "customer": c, "time": time}),
            3 => {
                serde_json::json!({"type": "review", "id": id, "customer": c, "time": time, "rating": e.target % 6})
            }
            4 => {
                let mine: Vec<_> = purchases.iter().filter(|p| p.0 == e.customer).collect();
                match mine.get(e.target as usize % mine.len().max(1)) {
                    Some((_, orig, amount)) => {
                        serde_json::json!({"type": "refund", "id": id, "customer": c, "time": time,
                        "amount": (amount * u32::from(e.target % 4 + 1) / 4).max(1).to_string(), "original": orig})
                    }
                    None => {
                        serde_json::json!({"type": "login", "id": id, "customer": c, "time": time})
                    }
                }
            }
            _ => {
                serde_json::json!({"type": "redemption", "id": id, "customer": c, "time": time, "reward": "mug", "points": (e.amount / 3).max(1)})
            }
        };
        out.push(p.event_from_value(&json).unwrap());
    }
    out
}

fn setup(p: &Program) -> Engine {
    let mut e = Engine::new(p.clone());
    // c1 and c2 were referred by c0; c4 by c3
    for (id, by) in [("c1", "c0"), ("c2", "c0"), ("c4", "c3")] {
        e.set_customer(&serde_json::json!({"id": id, "referred_by": by}))
            .unwrap();
    }
    e
}

/// Replay in input order from `setup`: the engine, each outcome as JSON,
/// the totals.
fn sequential(p: &Program, evs: &[Event]) -> (Engine, Vec<String>, ReplayStats) {
    let mut seq = setup(p);
    let mut out = Vec::new();
    let stats = seq.replay_with(evs.to_vec(), |o| out.push(o.to_json_string()));
    (seq, out, stats)
}

fn state_json(e: &Engine) -> String {
    serde_json::to_string(&e.snapshot()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn ledger_invariants_hold(header in 0usize..4, rules in prop::collection::vec(any::<bool>(), RULES.len()), raw in prop::collection::vec(ev_strategy(), 1..60)) {
        let p = program(header, &rules);
        let evs = events(&p, &raw);
        let has_refunds = raw.iter().any(|e| e.kind == 4);
        let mut e = setup(&p);
        for ev in &evs {
            let o = e.process(ev);
            prop_assert!(o.status.is_some());
            for id in e.customer_ids() {
                let b = &e.customer(id).unwrap().balances;
                prop_assert_eq!(b.lifetime_earned, b.available + b.pending + b.redeemed + b.expired + b.reversed, "{}: {:?}", id, b);
                prop_assert!(b.pending >= rust_decimal::Decimal::ZERO);
                if !has_refunds {
                    prop_assert!(b.available >= rust_decimal::Decimal::ZERO, "negative balance without refunds: {:?}", b);
                }
            }
        }
    }

    #[test]
    fn duplicates_change_nothing(rules in prop::collection::vec(any::<bool>(), RULES.len()), raw in prop::collection::vec(ev_strategy(), 1..40)) {
        let p = program(1, &rules);
        let evs = events(&p, &raw);
        let mut once = setup(&p);
        let first = once.replay(evs.clone());
        let mut twice = setup(&p);
        let doubled: Vec<Event> = evs.iter().flat_map(|e| [e.clone(), e.clone()]).collect();
        let stats = twice.replay(doubled);
        // rejected events leave no trace, so their repeats are rejected again
        prop_assert_eq!(stats.duplicates, first.applied);
        prop_assert_eq!(stats.rejected, 2 * first.rejected);
        prop_assert_eq!(state_json(&once), state_json(&twice));
        // the whole stream again: all duplicates
        let again = twice.replay(evs.clone());
        prop_assert_eq!(again.duplicates, first.applied);
        prop_assert_eq!(state_json(&once), state_json(&twice));
    }

    #[test]
    fn parallel_equals_sequential(header in 0usize..4, rules in prop::collection::vec(any::<bool>(), RULES.len()), raw in prop::collection::vec(ev_strategy(), 2..60)) {
        let p = program(header, &rules);
        let evs = events(&p, &raw);
        let (seq, seq_out, seq_stats) = sequential(&p, &evs);
        // (one thread: the partitioned replay's grouping by referral group
        // without parallelism)
        for threads in [1usize, 3] {
            let mut par = setup(&p);
            let (par_out, par_stats) = par.replay_parallel(evs.clone(), threads);
            let par_out: Vec<String> = par_out.iter().map(|o| o.to_json_string()).collect();
            prop_assert_eq!(&seq_out, &par_out);
            prop_assert_eq!(state_json(&seq), state_json(&par));
            // the same totals, but for whether a part ran in parallel
            let mut same = par_stats.clone();
            same.parallel = seq_stats.parallel;
            prop_assert_eq!(&seq_stats, &same);
            if threads == 1 {
                prop_assert!(!par_stats.parallel);
            }
            // without keeping the outcomes: the same states and totals
            let mut totals = setup(&p);
            let tot_stats = totals.replay_parallel_totals(events(&p, &raw), threads);
            prop_assert_eq!(state_json(&seq), state_json(&totals));
            prop_assert_eq!(&par_stats, &tot_stats);
            // keeping a function of each outcome: its results in input order
            let mut mapped = setup(&p);
            let (lines, map_stats) =
                mapped.replay_parallel_map(events(&p, &raw), threads, |o| o.to_json_string());
            prop_assert_eq!(&seq_out, &lines);
            prop_assert_eq!(state_json(&seq), state_json(&mapped));
            prop_assert_eq!(&par_stats, &map_stats);
        }
    }

    #[test]
    fn chunked_replay_equals_sequential(header in 0usize..4, rules in prop::collection::vec(any::<bool>(), RULES.len()), raw in prop::collection::vec(ev_strategy(), 1..60), size in 1usize..9) {
        let p = program(header, &rules);
        let evs = events(&p, &raw);
        let (seq, seq_out, seq_stats) = sequential(&p, &evs);
        let mut chunked = setup(&p);
        let mut out = Vec::new();
        let mut spent = Vec::new();
        let chunks: Vec<Vec<Event>> = evs.chunks(size).map(|c| c.to_vec()).collect();
        let stats = chunked.replay_chunks(chunks, |o| out.push(o.to_json_string()), |c| {
            spent.extend(c.iter().map(|e| e.id().to_string()))
        });
        prop_assert_eq!(&seq_out, &out);
        prop_assert_eq!(state_json(&seq), state_json(&chunked));
        prop_assert_eq!(&seq_stats, &stats);
        // every chunk handed back, in order, with its events
        let ids: Vec<String> = evs.iter().map(|e| e.id().to_string()).collect();
        prop_assert_eq!(ids, spent);
        // the chunks made on a second thread: the same again
        let mut made = setup(&p);
        let mut out = Vec::new();
        let mut pending = evs.chunks(size).map(|c| c.to_vec());
        let stats = made.replay_made(
            |v| match pending.next() {
                Some(c) => {
                    v.extend(c);
                    true
                }
                None => false,
            },
            |o| out.push(o.to_json_string()),
        );
        prop_assert_eq!(&seq_out, &out);
        prop_assert_eq!(state_json(&seq), state_json(&made));
        prop_assert_eq!(&seq_stats, &stats);
    }

    #[test]
    fn replay_order_gives_input_order_results(header in 0usize..4, rules in prop::collection::vec(any::<bool>(), RULES.len()), raw in prop::collection::vec(ev_strategy(), 2..60)) {
        let p = program(header, &rules);
        let evs = events(&p, &raw);
        let (seq, seq_out, seq_stats) = sequential(&p, &evs);
        let fresh = setup(&p);
        let customers: Vec<&str> = evs.iter().map(|e| e.customer()).collect();
        // budgets and `in total` limits: rules 12-15
        let shared = rules[12..16].iter().any(|&on| on);
        let Some(order) = fresh.replay_order(&customers, |_| [None, None]) else {
            prop_assert!(shared, "no order although nothing is shared");
            return Ok(());
        };
        prop_assert!(!shared, "an order although budgets or `in total` limits are shared");
        // a permutation, each customer's events in input order
        let mut seen = vec![false; evs.len()];
        for &k in &order {
            prop_assert!(!std::mem::replace(&mut seen[k as usize], true));
        }
        prop_assert!(seen.iter().all(|&s| s));
        let mut grouped = fresh;
        let mut out: Vec<Option<String>> = vec![None; evs.len()];
        let mut at = order.iter();
        let stats = grouped.replay_with(order.iter().map(|&k| evs[k as usize].clone()), |o| {
            if let Some(&k) = at.next() {
                out[k as usize] = Some(o.to_json_string());
            }
        });
        let out: Vec<String> = out.into_iter().flatten().collect();
        prop_assert_eq!(&seq_out, &out);
        prop_assert_eq!(state_json(&seq), state_json(&grouped));
        prop_assert_eq!(&seq_stats, &stats);
    }

    #[test]
    fn snapshot_restore_continue(rules in prop::collection::vec(any::<bool>(), RULES.len()), raw in prop::collection::vec(ev_strategy(), 2..60), cut in 0usize..60) {
        let p = program(2, &rules);
        let evs = events(&p, &raw);
        let cut = cut % evs.len();
        let mut straight = setup(&p);
        let mut straight_out = Vec::new();
        straight.replay_with(evs.clone(), |o| straight_out.push(o.to_json_string()));
        let mut first = setup(&p);
        let mut out = Vec::new();
        first.replay_with(evs[..cut].to_vec(), |o| out.push(o.to_json_string()));
        let json = state_json(&first);
        let snap: Snapshot = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&serde_json::to_string(&snap).unwrap(), &json, "JSON round trip is exact");
        let mut restored = Engine::from_snapshot(p.clone(), snap).unwrap();
        restored.replay_with(evs[cut..].to_vec(), |o| out.push(o.to_json_string()));
        prop_assert_eq!(straight_out, out);
        prop_assert_eq!(state_json(&straight), state_json(&restored));
    }
}

#[test]
fn parallel_replay_uses_threads_when_it_can() {
    let p = program(0, &[true; 12]);
    let raw: Vec<Ev> = (0..50)
        .map(|i| Ev {
            kind: (i % 3) as u8,
            customer: (i % 5) as u8,
            hours: 5,
            amount: 20,
            target: 1,
        })
        .collect();
    let evs = events(&p, &raw);
    let mut e = setup(&p);
    let (_, stats) = e.replay_parallel(evs, 2);
    assert!(stats.parallel);
    let budget =
        Program::compile("rule \"B\" on purchase award 1 point\n  budget 10 points").unwrap();
    let mut e = Engine::new(budget.clone());
    let evs = events(&budget, &raw);
    let (_, stats) = e.replay_parallel(evs, 2);
    assert!(
        !stats.parallel,
        "a budget that runs out is spent in event order: one thread"
    );
    // a budget that cannot run out in this replay: parallel, same result
    let budget = Program::compile(
        "rule \"B\" on purchase award 1 point\n  budget 1000 points\n  at most 40 times in total",
    )
    .unwrap();
    let evs = events(&budget, &raw);
    let mut seq = Engine::new(budget.clone());
    let mut seq_out = Vec::new();
    seq.replay_with(evs.clone(), |o| seq_out.push(o.to_json_string()));
    let mut par = Engine::new(budget);
    let (par_out, stats) = par.replay_parallel(evs, 2);
    assert!(stats.parallel, "budget far from used up: parallel");
    let par_out: Vec<String> = par_out.iter().map(|o| o.to_json_string()).collect();
    assert_eq!(seq_out, par_out);
    assert_eq!(state_json(&seq), state_json(&par));
}

/// `replay_order` groups a customer with whoever its events' `referred_by`
/// names: a sign-up's referral award reaches the referrer before the
/// referrer's later redemption, as in input order. Without the link the
/// order differs, and so does the outcome (the test can fail).
#[test]
fn replay_order_follows_referral_fields() {
    let p = Program::compile(
        "rule \"Referral\" on signup if signup.referred_by is set award 50 points to signup.referred_by",
    )
    .unwrap();
    let ev = |v: serde_json::Value| p.event_from_value(&v).unwrap();
    let evs = [
        ev(
            serde_json::json!({"type": "redemption", "id": "r0", "customer": "a", "time": "2026-01-01T09:00:00Z", "reward": "pen", "points": 50}),
        ),
        ev(
            serde_json::json!({"type": "signup", "id": "s1", "customer": "b", "time": "2026-01-01T10:00:00Z", "referred_by": "a"}),
        ),
        ev(
            serde_json::json!({"type": "redemption", "id": "r1", "customer": "a", "time": "2026-01-01T11:00:00Z", "reward": "mug", "points": 50}),
        ),
    ];
    let customers: Vec<&str> = evs.iter().map(|e| e.customer()).collect();
    let refs = [None, Some("a"), None];
    let run = |order: &[u32]| {
        let mut e = Engine::new(p.clone());
        let mut out = vec![String::new(); evs.len()];
        let mut at = order.iter();
        e.replay_with(order.iter().map(|&k| evs[k as usize].clone()), |o| {
            if let Some(&k) = at.next() {
                out[k as usize] = format!("{:?}", o.status);
            }
        });
        (out, state_json(&e))
    };
    let input = run(&[0, 1, 2]);
    assert_eq!(
        input.0,
        ["Some(Rejected)", "Some(Applied)", "Some(Applied)"]
    );
    let linked = Engine::new(p.clone())
        .replay_order(&customers, |k| [refs[k], None])
        .unwrap();
    assert_eq!(run(&linked), input);
    // without the link, `a`'s events run together, before `b`'s sign-up
    let unlinked = Engine::new(p.clone())
        .replay_order(&customers, |_| [None, None])
        .unwrap();
    assert_eq!(unlinked, [0, 2, 1]);
    assert_ne!(run(&unlinked).0, input.0);
}

/// Points sent to a customer named by a field other than `referred_by` /
/// `referee` (here a purchase's `coupon`) link nobody: the grouped replays
/// must then keep input order, or the gift would arrive after the
/// redemption that needs it.
#[test]
fn awards_to_unlinked_customers_keep_input_order() {
    let p =
        Program::compile("rule \"Gift\" on purchase award 10 points to purchase.coupon").unwrap();
    let ev = |v: serde_json::Value| p.event_from_value(&v).unwrap();
    let evs = vec![
        ev(
            serde_json::json!({"type": "login", "id": "l0", "customer": "b", "time": "2026-01-01T09:00:00Z"}),
        ),
        ev(
            serde_json::json!({"type": "purchase", "id": "p1", "customer": "a", "time": "2026-01-01T10:00:00Z", "amount": "5", "coupon": "b"}),
        ),
        ev(
            serde_json::json!({"type": "redemption", "id": "r2", "customer": "b", "time": "2026-01-01T11:00:00Z", "reward": "pen", "points": 10}),
        ),
    ];
    let (seq, seq_out, _) = {
        let mut e = Engine::new(p.clone());
        let mut out = Vec::new();
        let s = e.replay_with(evs.clone(), |o| out.push(o.to_json_string()));
        (e, out, s)
    };
    assert!(seq_out[2].contains("\"applied\""), "{}", seq_out[2]);
    for threads in [1usize, 2] {
        let mut par = Engine::new(p.clone());
        let (outs, _) = par.replay_parallel(evs.clone(), threads);
        let outs: Vec<String> = outs.iter().map(|o| o.to_json_string()).collect();
        assert_eq!(outs, seq_out, "{threads} threads");
        assert_eq!(state_json(&par), state_json(&seq));
    }
    let customers: Vec<&str> = evs.iter().map(|e| e.customer()).collect();
    assert_eq!(
        Engine::new(p.clone()).replay_order(&customers, |_| [None, None]),
        None
    );
}

/// An event or customer decoded by one program and given to another (a
/// program swapped in while events were in flight): used when the other
/// program decodes its type the same way, even under another index for
/// the type; otherwise refused with a reason, changing nothing. Before,
/// the event was read under the other program's type of the same index.
#[test]
fn events_of_another_program_are_refitted_or_refused() {
    let a = Program::compile(
        "event visit has\n  store: text\nevent scan has\n  code: text\n\
         rule \"v\" on visit award 5 points\nrule \"base\" on purchase award 1 point per $1\n",
    )
    .unwrap();
    // `visit` declared second here, `scan` with another field, and a tier
    let b = Program::compile(
        "tiers bronze, gold\nevent scan has\n  code: text\n  bonus: number\nevent visit has\n  store: text\n\
         rule \"s\" on scan award scan.bonus points\n\
         rule \"v\" on visit if visit.store = \"x\" award 7 points\n\
         rule \"base\" on purchase award 2 points per $1\n",
    )
    .unwrap();
    let plain = Program::compile("rule \"base\" on purchase award 1 point per $1\n").unwrap();
    let visit =
        r#"{"type":"visit","id":"e1","customer":"c1","time":"2026-01-01T00:00:00Z","store":"x"}"#;
    let scan =
        r#"{"type":"scan","id":"e2","customer":"c2","time":"2026-01-01T00:00:00Z","code":"q"}"#;
    let buy = r#"{"type":"purchase","id":"e3","customer":"c3","time":"2026-01-01T00:00:00Z","amount":"10.00"}"#;

    // the same layout under another index: as if `b` had decoded it
    let from_a = a.event_from_json(visit).unwrap();
    let from_b = b.event_from_json(visit).unwrap();
    let (mut ea, mut eb) = (Engine::new(b.clone()), Engine::new(b.clone()));
    let (oa, ob) = (ea.process(&from_a), eb.process(&from_b));
    assert_eq!(oa.points.to_string(), "7");
    assert_eq!(oa.to_json_string(), ob.to_json_string());
    assert_eq!(ea.snapshot(), eb.snapshot());
    let cust = b.customer_from_json(r#"{"id":"c1"}"#).unwrap();
    assert_eq!(
        b.evaluate(&from_a, &cust).to_json_string(),
        b.evaluate(&from_b, &cust).to_json_string()
    );
    assert_eq!(
        b.matching_rules(&from_a, &cust).collect::<Vec<_>>(),
        vec!["v"]
    );
    // a built-in type: the tier `b` adds does not matter to purchases
    let o = eb.process(&a.event_from_json(buy).unwrap());
    assert_eq!(
        (o.status, o.points.to_string()),
        (Some(Status::Applied), "20".into())
    );

    // `scan` has other fields in `b`: refused, and no customer is made
    let s = a.event_from_json(scan).unwrap();
    let o = eb.process(&s);
    assert_eq!(o.status, Some(Status::Rejected));
    let reason = o.reason.unwrap();
    assert!(reason.contains("`scan` events differ"), "{reason}");
    assert!(eb.customer("c2").is_none());
    let o = b.evaluate(&s, &cust);
    assert_eq!(o.status, Some(Status::Rejected));
    assert!(o.effects.is_empty());
    assert_eq!(b.matching_rules(&s, &cust).count(), 0);

    // a type the program does not have
    let mut ep = Engine::new(plain.clone());
    let before = ep.snapshot();
    let o = ep.process(&from_a);
    assert_eq!(o.status, Some(Status::Rejected));
    assert!(o.reason.unwrap().contains("no `visit` events"));
    assert_eq!(ep.snapshot(), before);
    let stats = ep.replay(vec![from_a.clone(), plain.event_from_json(buy).unwrap()]);
    assert_eq!((stats.applied, stats.rejected), (1, 1));

    // another time zone: the event's local date would differ
    let paris = Program::compile(
        "timezone \"Europe/Paris\"\nrule \"base\" on purchase award 1 point per $1\n",
    )
    .unwrap();
    let o = Engine::new(paris).process(&a.event_from_json(buy).unwrap());
    assert_eq!(o.status, Some(Status::Rejected));
    assert!(o.reason.unwrap().contains("`purchase` events differ"));

    // customers: `b`'s tiers differ from `a`'s
    let o = a.evaluate(&a.event_from_json(buy).unwrap(), &cust);
    assert_eq!(o.status, Some(Status::Rejected));
    assert!(o
        .reason
        .unwrap()
        .contains("customer was decoded by another program"));
    let same = plain.customer_from_json(r#"{"id":"c3"}"#).unwrap();
    let o = a.evaluate(&a.event_from_json(buy).unwrap(), &same);
    assert_eq!((o.status, o.points.to_string()), (None, "10".into()));
}
