// Programs shared by the API, e2e and performance tests.

/** A rule with non-ASCII text before a misspelt field (`amout`). */
export const MISSPELT = [
  'rule "Café €5 bonus"',
  "  on purchase",
  "  if purchase.amout > $100",
  "  award 100 points",
  "",
].join("\n");

/** A 50-rule program of the kind a campaign manager keeps live. */
export function fiftyRules() {
  const head = [
    'program "Benchmark"',
    "currency USD",
    'timezone "America/New_York"',
    "tiers: member, silver, gold",
    'rewards: "free coffee", "birthday cake"',
    "",
  ];
  const rules = [];
  for (let i = 0; i < 50; i++) {
    const name = `rule "Campaign ${i + 1} – Café ${i}"`;
    switch (i % 5) {
      case 0:
        rules.push(`${name}\n  on purchase\n  if purchase.amount > $${i * 2}\n  award ${i + 1} points`);
        break;
      case 1:
        rules.push(`${name}\n  on purchase\n  if any item in purchase.items where item.category = "cat${i}"\n  award bonus ${i} points`);
        break;
      case 2:
        rules.push(`${name}\n  on purchase\n  if customer.tier is gold and purchase.amount >= $${i}\n  award 1 point per $1 of purchase.amount`);
        break;
      case 3:
        rules.push(`${name}\n  on purchase\n  if purchase.store = "Store ${i}" or purchase.channel = "app"\n  tag customer with "tag${i}"`);
        break;
      default:
        rules.push(`${name}\n  on purchase\n  if purchase.amount between $${i} and $${i + 100}\n  award 10% of purchase.amount as points`);
    }
  }
  return head.join("\n") + "\n" + rules.join("\n\n") + "\n";
}

export const PURCHASE_120 = {
  type: "purchase", id: "o-1002", customer: "c1", time: "2026-11-24T10:00:00Z", amount: "120.00",
  channel: "app",
  items: [{ sku: "A", category: "cat1", price: "60.00", quantity: 2 }],
};
export const GOLD = { id: "c1", tier: "gold" };
