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
