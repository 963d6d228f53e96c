// Ready-made programs, customers and events for the editor.

export const PROGRAMS = [
  {
    name: "Coffee club",
    source: `program "Bean & Leaf Coffee Club"
currency USD
timezone "America/New_York"

tiers: member, silver, gold
rewards: "free coffee", "birthday cake"

rule "Base earn"
  on purchase
  award 1 point per $1 of purchase.amount

rule "Gold earns double"
  on purchase
  if customer.tier is gold
  multiply points by 2

rule "Big basket bonus"
  on purchase
  if purchase.amount > $100
  award bonus 50 points

rule "Pastry lover"
  on purchase
  if any item in purchase.items where item.category = "pastry"
  tag customer with "pastry lover"

rule "Café €5 bonus"
  on purchase
  if purchase.store = "Café Olé"
  award 5 points

rule "Birthday treat"
  on birthday
  grant "birthday cake"
  notify "Happy birthday! A cake is waiting for you."
`,
  },
  {
    name: "One-liners",
    source: `# The shortest form: one rule per line.
IF Purchase > $100 THEN Award 100 Points
IF Review THEN Award 20 Points
IF Signup THEN Award 50 Points and Tag "new member"
`,
  },
  {
    name: "Tiers and rewards",
    source: `program "Fashion rewards"
currency EUR
timezone "Europe/Paris"

tiers: bronze, silver, gold

rule "Welcome"
  on signup
  award 100 points
  set tier to bronze

rule "Spend and earn"
  on purchase
  award 2 points per €1 of purchase.amount

rule "Shoe week"
  on purchase
  active from 2026-11-23 to 2026-11-30
  award 10% of purchase.amount as points

rule "Refunds take points back"
  on refund
  deduct 2 points per €1 of refund.amount
`,
  },
];

export const CUSTOMERS = [
  {
    name: "Gold member",
    value: { id: "c1", tier: "gold", points: "1200", birthday: "1990-11-27", joined: "2023-03-01", tags: ["newsletter"] },
  },
  {
    name: "New member",
    value: { id: "c2" },
  },
  {
    name: "Silver member",
    value: { id: "c3", tier: "silver", points: "350", joined: "2025-06-15" },
  },
];

export const EVENTS = [
  {
    name: "Purchase $42.50",
    value: {
      type: "purchase", id: "o-1001", customer: "c1", time: "2026-11-27T09:30:00Z",
      amount: "42.50", store: "Café Olé",
      items: [
        { sku: "LAT-12", name: "Oat latte", category: "coffee", price: "4.50", quantity: 2 },
        { sku: "CRO-1", name: "Almond croissant", category: "pastry", price: "3.75" },
      ],
    },
  },
  {
    name: "Purchase $120",
    value: { type: "purchase", id: "o-1002", customer: "c1", time: "2026-11-24T10:00:00Z", amount: "120.00" },
  },
  {
    name: "Birthday",
    value: { type: "birthday", id: "b-1", customer: "c1", time: "2026-11-27T08:00:00Z" },
  },
  {
    name: "Review (5 stars)",
    value: { type: "review", id: "r-1", customer: "c2", time: "2026-11-27T12:00:00Z", rating: 5, product: "Oat latte" },
  },
  {
    name: "Signup",
    value: { type: "signup", id: "s-1", customer: "c2", time: "2026-11-27T12:00:00Z", channel: "app" },
  },
  {
    name: "Refund €30",
    value: { type: "refund", id: "rf-1", customer: "c3", time: "2026-11-27T12:00:00Z", amount: "30.00" },
  },
];
