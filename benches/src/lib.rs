//! Shared helpers for the benchmarks and the allocation test: reading the
//! inputs in `benches/inputs/` and generating programs of any size.

use std::fmt::Write as _;
use std::path::PathBuf;

/// The text of `benches/inputs/<name>`.
pub fn input(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("inputs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

const CATEGORIES: &[&str] = &[
    "coffee", "tea", "pastry", "sandwich", "merch", "beans", "juice", "snack",
];
const WEEKDAYS: &[&str] = &[
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const TIERS: &[&str] = &["member", "silver", "gold", "platinum"];

/// A program with `rules` rules, a realistic mixture of what loyalty
/// programs contain: spend thresholds, basket conditions (`any`/`count`/`sum`
/// over items), calendar conditions and campaign windows, tier conditions,
/// exclusive and best-of groups, multipliers, and rules for other events.
/// Deterministic: the same `rules` gives the same text.
pub fn generate_program(rules: usize) -> String {
    let mut s = String::with_capacity(rules * 120 + 512);
    s.push_str("program \"Generated\"\ncurrency USD\ntimezone \"America/New_York\"\n");
    s.push_str("tiers member, silver, gold, platinum\n");
    s.push_str("rewards \"free coffee\", \"free shipping\", \"birthday cake\"\n");
    s.push_str("points kinds status\n");
    s.push_str("customer has\n  segment: text\n  visits: number\n\n");
    for i in 0..rules {
        let cat = CATEGORIES[i % CATEGORIES.len()];
        let day = WEEKDAYS[i % WEEKDAYS.len()];
        let tier = TIERS[i % TIERS.len()];
        let amount = 10 + (i * 7) % 190;
        let pts = 5 + (i * 3) % 45;
        let _ = writeln!(
            s,
            "rule \"R{i} {}\"",
            [
                "threshold",
                "basket",
                "calendar",
                "tier",
                "group",
                "multiplier",
                "campaign",
                "other"
            ][i % 8]
        );
        match i % 16 {
            0 => {
                let _ = write!(
                    s,
                    "  on purchase\n  if purchase.amount > ${amount}\n  award {pts} points\n"
                );
            }
            1 => {
                let _ = write!(s, "  on purchase\n  if any item in purchase.items where item.category = \"{cat}\"\n  award {pts} points\n");
            }
            2 => {
                let _ = write!(s, "  on purchase\n  if weekday is {day} and purchase.amount >= ${amount}\n  award bonus {pts} points\n");
            }
            3 => {
                let _ = write!(s, "  on purchase\n  if customer.tier in [gold, platinum] and purchase.amount > ${amount}\n  award 2 points per $1 of purchase.amount\n");
            }
            4 => {
                let _ = write!(s, "  on purchase\n  in exclusive group \"welcome {}\"\n  if purchase.amount >= ${amount} and purchase.channel = \"app\"\n  award {pts} points\n", i / 64);
            }
            5 => {
                let _ = write!(s, "  on purchase\n  if customer.tier is {tier} and purchase.amount >= ${amount}\n  multiply points by 1.5\n");
            }
            6 => {
                let _ = write!(s, "  on purchase\n  active from 2026-{:02}-01 to 2026-{:02}-28\n  if purchase.amount > ${amount}\n  award 10% of purchase.amount as points\n", 1 + i % 12, 1 + i % 12);
            }
            7 => {
                let _ = write!(
                    s,
                    "  on review\n  if review.rating >= {}\n  award {pts} points\n",
                    1 + i % 5
                );
            }
            8 => {
                let _ = write!(s, "  on purchase\n  if count of item in purchase.items where item.quantity >= 2 >= {}\n  award {pts} points\n", 2 + i % 3);
            }
            9 => {
                let _ = write!(s, "  on purchase\n  if sum of item.total for each item in purchase.items where item.category = \"{cat}\" > ${amount}\n  grant \"free shipping\"\n");
            }
            10 => {
                let _ = write!(s, "  on purchase\n  if hour between {} and {} and purchase.store starts with \"Airport\"\n  award {pts} status points\n", i % 12, 12 + i % 12);
            }
            11 => {
                let _ = write!(s, "  on purchase\n  in best group \"weekend {}\"\n  if weekday in [Saturday, Sunday] and purchase.amount >= ${amount}\n  award {pts} points\n", i / 64);
            }
            12 => {
                let _ = write!(s, "  on purchase\n  priority {}\n  if purchase.amount > ${amount} and not (purchase.coupon is set)\n  award 1 point for every $10 of purchase.amount\n", i % 5);
            }
            13 => {
                let _ = write!(s, "  on refund\n  deduct 1 point per $1 of refund.amount\n");
            }
            14 => {
                let _ = write!(s, "  on purchase\n  if any item in purchase.items where item.category = \"{cat}\" and customer.visits > {}\n  award {pts} points for each item in purchase.items where item.category = \"{cat}\"\n", i % 20);
            }
            _ => {
                let _ = write!(s, "  on signup\n  if signup.channel = \"app\"\n  award {pts} points\n  tag customer with \"app signup\"\n");
            }
        }
        s.push('\n');
    }
    s
}

/// A deterministic year of retail events for `examples/retail/program.rules`
/// as JSON lines, in time order: `n` events over 2026 for `customers`
/// customers (each starts with a signup, a tenth of them referred by an
/// earlier one), then about 55% purchases with 1-4 basket lines, 25% logins,
/// 7% reviews, 4% refunds of the customer's latest purchase, 4%
/// redemptions, 3% referrals and 2% birthdays. A smaller cousin of
/// `examples/retail/generate.py` (which is Python and takes a minute and a
/// half for a million events), for the replay bench.
pub fn retail_events(n: usize, customers: u32) -> Vec<String> {
    const CATS: &[(&str, &str)] = &[
        ("grocery", "GRO"),
        ("apparel", "APP"),
        ("home", "HOM"),
        ("beauty", "BEA"),
        ("electronics", "ELE"),
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rng = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m.max(1)
    };
    let start = 1_767_225_600i64; // 2026-01-01T00:00:00Z
    let step = (365 * 86_400) as f64 / n.max(1) as f64;
    let mut signed = vec![false; customers as usize];
    let mut last_purchase: Vec<Option<(usize, u64)>> = vec![None; customers as usize];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = start + (i as f64 * step) as i64;
        let time = rfc3339_utc(t);
        let k = rng(u64::from(customers)) as usize;
        let c = format!("c{k}");
        let id = format!("e{i}");
        let head = format!(r#""id": "{id}", "customer": "{c}", "time": "{time}""#);
        if !signed[k] {
            signed[k] = true;
            let referred = if k > 0 && rng(10) == 0 {
                format!(r#", "referred_by": "c{}""#, rng(k as u64))
            } else {
                String::new()
            };
            out.push(format!(
                r#"{{"type": "signup", {head}, "channel": "app"{referred}}}"#
            ));
            continue;
        }
        let r = rng(100);
        let line = match r {
            0..=54 => {
                let lines = 1 + rng(4);
                let mut items = Vec::new();
                let mut total = 0u64;
                for _ in 0..lines {
                    let (cat, code) = CATS[rng(CATS.len() as u64) as usize];
                    let cents = if cat == "electronics" {
                        5_000 + rng(90_000)
                    } else {
                        200 + rng(12_000)
                    };
                    let q = 1 + rng(3);
                    total += cents * q;
                    items.push(format!(
                        r#"{{"sku": "{code}-{}", "category": "{cat}", "price": "{}.{:02}", "quantity": {q}}}"#,
                        rng(500),
                        cents / 100,
                        cents % 100
                    ));
                }
                last_purchase[k] = Some((i, total));
                format!(
                    r#"{{"type": "purchase", {head}, "amount": "{}.{:02}", "shipping": "0.00", "items": [{}], "channel": "web"}}"#,
                    total / 100,
                    total % 100,
                    items.join(", ")
                )
            }
            55..=79 => format!(r#"{{"type": "login", {head}}}"#),
            80..=86 => format!(r#"{{"type": "review", {head}, "rating": {}}}"#, 1 + rng(5)),
            87..=90 => match last_purchase[k].take() {
                Some((orig, total)) => {
                    let part = total / (1 + rng(3));
                    format!(
                        r#"{{"type": "refund", {head}, "amount": "{}.{:02}", "original": "e{orig}"}}"#,
                        part / 100,
                        part % 100
                    )
                }
                None => format!(r#"{{"type": "login", {head}}}"#),
            },
            91..=94 => format!(
                r#"{{"type": "redemption", {head}, "reward": "voucher", "points": {}}}"#,
                500 * (1 + rng(5))
            ),
            95..=97 => format!(
                r#"{{"type": "referral", {head}, "successful": {}}}"#,
                rng(3) > 0
            ),
            _ => format!(r#"{{"type": "birthday", {head}}}"#),
        };
        out.push(line);
    }
    out
}

/// `t` (seconds since 1970, UTC) as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339_utc(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // civil from days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_programs_compile() {
        for n in [1, 16, 100, 1000] {
            let src = super::generate_program(n);
            let p =
                loyalty_rules::Program::compile(&src).unwrap_or_else(|e| panic!("{}", e.render()));
            assert_eq!(p.rule_names().count(), n);
        }
    }

    #[test]
    fn inputs_compile() {
        for name in ["program-20.rules", "peer-simple.rules", "peer-nested.rules"] {
            let src = super::input(name);
            if let Err(e) = loyalty_rules::Program::compile(&src) {
                panic!("{name}: {}", e.render());
            }
        }
    }
}
