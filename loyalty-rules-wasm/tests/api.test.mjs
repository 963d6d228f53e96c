// The package's API from Node: diagnostics as data with UTF-16 ranges,
// format, compile/evaluate/explain, completions, and no exceptions for user
// mistakes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadPackage } from "./helpers.mjs";
import { MISSPELT, PURCHASE_120, GOLD, fiftyRules } from "./fixtures.mjs";
import { PROGRAMS, CUSTOMERS, EVENTS } from "../../examples/editor/samples.js";

const lr = loadPackage();
const bytes = (s) => Buffer.byteLength(s, "utf8");

test("version", () => {
  assert.match(lr.version(), /^\d+\.\d+\.\d+/);
});

test("every editor sample program checks clean, formats idempotently and evaluates every sample event", () => {
  for (const p of PROGRAMS) {
    assert.deepEqual(lr.check(p.source), [], p.name);
    const f = lr.format(p.source);
    assert.equal(f.ok, true, p.name);
    assert.deepEqual(lr.format(f.formatted), f, `${p.name}: format is idempotent`);
    const c = lr.compile(p.source);
    assert.equal(c.ok, true, p.name);
    for (const e of EVENTS) {
      const r = c.program.explain(e.value, CUSTOMERS[1].value);
      assert.equal(r.ok, true, `${p.name} / ${e.name}: ${JSON.stringify(r.error)}`);
      assert.equal(typeof r.outcome.points, "string");
    }
    c.program.free();
  }
});

test("diagnostic ranges are UTF-16 offsets, correct after non-ASCII text", () => {
  // é (2 bytes, 1 unit), € (3 bytes, 1 unit), 😀 (4 bytes, 2 units, 1 scalar)
  const src = [
    'rule "Café €5 bonus 😀"',
    "  on purchase",
    '  if purchase.store = "Café 😀" and purchase.amout > $5',
    "  award 5 points",
    "",
  ].join("\n");
  const diags = lr.check(src);
  assert.equal(diags.length, 1);
  const d = diags[0];
  assert.equal(d.severity, "error");
  assert.equal(d.kind, "unknown_field");
  assert.match(d.message, /amout/);
  assert.match(d.hint, /amount/);
  const at = src.indexOf("amout");
  assert.equal(src.slice(d.from, d.to), "amout");
  assert.equal(d.from, at);
  assert.equal(d.to, at + 5);
  // the core's byte offsets are kept, and differ here
  assert.equal(d.start, bytes(src.slice(0, at)));
  assert.equal(d.end, d.start + 5);
  assert.notEqual(d.start, d.from);
  // line/column as the core counts them: column in Unicode scalar values
  const line3 = src.split("\n")[2];
  assert.equal(d.line, 3);
  assert.equal(d.column, [...line3.slice(0, line3.indexOf("amout"))].length + 1);
  assert.notEqual(d.column, line3.indexOf("amout") + 1); // the emoji is 2 UTF-16 units, 1 scalar
  assert.equal(d.end_line, 3);
  assert.equal(d.end_column, d.column + 5);
});

test("the editor's misspelt-field program: one error at 3:15 with a hint", () => {
  const [d, ...rest] = lr.check(MISSPELT);
  assert.deepEqual(rest, []);
  assert.equal(MISSPELT.slice(d.from, d.to), "amout");
  assert.deepEqual([d.line, d.column, d.kind, d.hint], [3, 15, "unknown_field", "did you mean `amount`?"]);
});

test("compile errors are data: every diagnostic, with UTF-16 ranges", () => {
  const src = 'rule "Ünïcödé"\n  on purchse\n  if purchase.amout > $5\n  award 5 points\n';
  const r = lr.compile(src);
  assert.equal(r.ok, false);
  assert.equal(typeof r.error.kind, "string");
  assert.equal(typeof r.error.message, "string");
  assert.ok(r.error.diagnostics.length >= 1);
  assert.deepEqual(r.error.diagnostics, lr.check(src));
  for (const d of r.error.diagnostics) {
    assert.equal(bytes(src.slice(0, d.from)), d.start);
    assert.equal(bytes(src.slice(0, d.to)), d.end);
  }
});

test("checkAndCompile: check's diagnostics and compile's program from one call", () => {
  const broken = lr.checkAndCompile(MISSPELT);
  assert.deepEqual(broken.diagnostics, lr.check(MISSPELT));
  assert.equal(broken.diagnostics[0].kind, "unknown_field");
  assert.equal(broken.program, null);

  const fixed = MISSPELT.replace("amout", "amount");
  const ok = lr.checkAndCompile(fixed);
  assert.deepEqual(ok.diagnostics, []);
  assert.ok(ok.program, "a clean program compiles");
  const event = { type: "purchase", id: "o-1", customer: "c1", time: "2026-11-24T10:00:00Z", amount: "120.00" };
  const viaCompile = lr.compile(fixed).program.explain(event, { id: "c1" });
  assert.deepEqual(ok.program.explain(event, { id: "c1" }), viaCompile);
  assert.equal(viaCompile.outcome.points, "100");
  ok.program.free();
});

test("syntax errors are data", () => {
  for (const src of ["rule", 'rule "x" award', "IF THEN", "((((", '"unterminated', "award 5 points to"]) {
    const diags = lr.check(src);
    assert.ok(Array.isArray(diags), src);
    assert.ok(diags.length > 0, `${src} should not check clean`);
    for (const d of diags) {
      assert.ok(d.from >= 0 && d.from <= d.to && d.to <= src.length, JSON.stringify(d));
    }
    assert.equal(lr.compile(src).ok, false);
    assert.equal(lr.format(src).ok, false);
  }
});

test("compile once, evaluate and explain many events", () => {
  const c = lr.compile(PROGRAMS[0].source);
  assert.equal(c.ok, true);
  const p = c.program;
  const plain = p.evaluate(PURCHASE_120, GOLD);
  assert.equal(plain.ok, true);
  assert.equal(plain.outcome.explanation, undefined);
  assert.equal(plain.outcome.event, "o-1002");
  assert.equal(plain.outcome.customer, "c1");
  assert.equal(plain.outcome.event_type, "purchase");
  const ex = p.explain(PURCHASE_120, GOLD);
  assert.equal(ex.ok, true);
  assert.equal(ex.outcome.points, plain.outcome.points);
  assert.deepEqual(ex.outcome.effects, plain.outcome.effects);
  const src = PROGRAMS[0].source;
  // one entry per rule that listens to purchases (the birthday rule does not)
  assert.deepEqual(ex.outcome.explanation.map((x) => x.rule),
    ["Base earn", "Gold earns double", "Big basket bonus", "Pastry lover", "Café €5 bonus"]);
  for (const x of ex.outcome.explanation) {
    assert.equal(typeof x.fired, "boolean");
    assert.equal(bytes(src.slice(0, x.from)), x.start);
    assert.equal(bytes(src.slice(0, x.to)), x.end);
  }
  // spans after non-ASCII text are right in UTF-16: a fired rule points at
  // the rule, a rule that did not fire at its deciding condition
  for (const x of ex.outcome.explanation) {
    if (x.fired) assert.ok(src.slice(x.from, x.to).startsWith(`rule "${x.rule}"`), JSON.stringify(x));
    else assert.equal(src.slice(x.from, x.to), x.condition, JSON.stringify(x));
  }
  const cafe = ex.outcome.explanation.find((x) => x.rule === "Café €5 bonus");
  assert.equal(cafe.fired, false);
  assert.equal(cafe.condition, 'purchase.store = "Café Olé"');
  assert.notEqual(cafe.from, cafe.start);
  // JSON text and objects give the same result
  assert.deepEqual(p.explain(JSON.stringify(PURCHASE_120), JSON.stringify(GOLD)), ex);
  // matchingRules: the rules whose condition holds, in evaluation order,
  // whether or not they changed the outcome
  const m = p.matchingRules(PURCHASE_120, GOLD);
  assert.equal(m.ok, true);
  assert.deepEqual(m.rules, ex.outcome.explanation.filter((x) => x.fired).map((x) => x.rule));
  p.free();
});

test("decimal values are strings", () => {
  const c = lr.compile("rule \"r\"\n  on purchase\n  award 10% of purchase.amount as points\n");
  assert.equal(c.ok, true, JSON.stringify(c.error));
  const r = c.program.evaluate({ ...PURCHASE_120, amount: "33.30" }, { id: "c1" });
  assert.equal(r.ok, true);
  assert.equal(typeof r.outcome.points, "string");
  assert.equal(typeof r.outcome.effects[0].points, "string");
});

test("bad events and customers are returned as errors, not thrown", () => {
  const { program } = lr.compile(PROGRAMS[0].source);
  const cases = [
    ["{not json", GOLD, "invalid_event"],
    [{ type: "purchase" }, GOLD, "invalid_event"],
    [{ ...PURCHASE_120, amount: "lots" }, GOLD, "invalid_event"],
    [{ ...PURCHASE_120, type: "teleport" }, GOLD, "invalid_event"],
    [undefined, GOLD, "invalid_event"],
    [null, GOLD, "invalid_event"],
    [PURCHASE_120, "[]", "invalid_customer"],
    [PURCHASE_120, 42, "invalid_customer"],
    [PURCHASE_120, undefined, "invalid_customer"],
    [PURCHASE_120, { id: "c1", tier: "diamond" }, "invalid_customer"],
  ];
  for (const [ev, cu, kind] of cases) {
    for (const method of ["evaluate", "explain", "matchingRules"]) {
      const r = program[method](ev, cu);
      assert.equal(r.ok, false, `${JSON.stringify(ev)} / ${JSON.stringify(cu)}`);
      assert.equal(r.error.kind, kind, JSON.stringify(r.error));
      assert.equal(typeof r.error.message, "string");
      assert.deepEqual(r.error.diagnostics, []);
    }
  }
  const missing = program.evaluate({ type: "purchase" }, GOLD);
  assert.equal(missing.error.field, "id");
  program.free();
});

test("completions: fields after `purchase.`, events after `on`, keywords at the top, with UTF-16 offsets", () => {
  const src = 'rule "Café €5 😀"\n  on purchase\n  if purchase.';
  const fields = lr.completions(src, src.length);
  const labels = fields.map((c) => c.label);
  for (const f of ["amount", "items", "store"]) assert.ok(labels.includes(f), `${f} in ${labels}`);
  assert.ok(fields.every((c) => typeof c.kind === "string"));
  assert.equal(fields.find((c) => c.label === "amount").kind, "field");

  const src2 = 'rule "Café"\n  on ';
  const events = lr.completions(src2, src2.length).filter((c) => c.kind === "event").map((c) => c.label);
  assert.ok(events.includes("purchase") && events.includes("birthday"), String(events));

  const top = lr.completions("", 0);
  assert.ok(top.some((c) => c.kind === "keyword" && c.label === "rule"));

  const prog = 'tiers: silver, gold\nrewards: "free coffee"\nrule "x"\n  on purchase\n  ';
  const all = lr.completions(prog, prog.length);
  assert.ok(all.some((c) => c.kind === "tier" && c.label === "gold") || all.some((c) => c.kind === "keyword"), JSON.stringify(all));
  // offsets past the end or inside a surrogate pair are clamped, not thrown
  assert.ok(Array.isArray(lr.completions(src, 10_000)));
  assert.ok(Array.isArray(lr.completions(src, src.indexOf("😀") + 1)));
});

test("a 50-rule program checks clean and evaluates", () => {
  const src = fiftyRules();
  assert.deepEqual(lr.check(src), []);
  const c = lr.compile(src);
  const r = c.program.explain(PURCHASE_120, GOLD);
  assert.equal(r.ok, true);
  assert.equal(r.outcome.explanation.length, 50);
  c.program.free();
});

test("nothing throws or panics on mangled input (fuzz, 2000 edited programs)", () => {
  // deterministic PRNG
  let seed = 12345;
  const rnd = (n) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  const pieces = ["rule", " ", "\n", '"', "é", "€", "😀", "$", "%", "(", ")", "[", "]", ".", ",", ":", "if", "then",
    "award", "points", "per", "of", "on", "purchase", "amount", "9999999999999999999999999999999", "\t", "#", "\\",
    "\uFEFF", "\u0000", "\uD800", "any", "where", "item", "in", "and", "or", "not", "-", "*", "/", ">", "=", "<"];
  const bases = [...PROGRAMS.map((p) => p.source), MISSPELT, fiftyRules()];
  let compiled = 0;
  let last = "";
  process.on("exit", (code) => { if (code) console.error("last fuzz input:", JSON.stringify(last)); });
  for (let k = 0; k < 2000; k++) {
    let s = bases[rnd(bases.length)];
    const edits = 1 + rnd(4);
    for (let e = 0; e < edits; e++) {
      const at = rnd(s.length + 1);
      if (rnd(2)) s = s.slice(0, at) + pieces[rnd(pieces.length)] + s.slice(at);
      else s = s.slice(0, at) + s.slice(at + 1 + rnd(8));
    }
    last = s;
    const diags = lr.check(s);
    for (const d of diags) assert.ok(d.from <= d.to && d.to <= s.length);
    lr.format(s);
    lr.completions(s, rnd(s.length + 2));
    const c = lr.compile(s);
    const both = lr.checkAndCompile(s);
    assert.deepEqual(both.diagnostics, diags);
    assert.equal(both.program !== null, c.ok);
    both.program?.free();
    if (c.ok) {
      compiled++;
      for (const e of EVENTS) c.program.explain(e.value, CUSTOMERS[rnd(CUSTOMERS.length)].value);
      c.program.free();
    } else {
      assert.deepEqual(c.error.diagnostics, diags);
    }
  }
  assert.ok(compiled > 0);
});

test("huge and deeply nested programs hit limits as diagnostics", () => {
  const deep = 'rule "x" on purchase if ' + "(".repeat(5000) + "1" + ")".repeat(5000) + " award 1 points";
  const d1 = lr.check(deep);
  assert.ok(Array.isArray(d1));
  const big = fiftyRules().repeat(40);
  const d2 = lr.check(big);
  assert.ok(Array.isArray(d2));
});
