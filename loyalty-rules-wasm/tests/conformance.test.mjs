// Runs the shared conformance corpus (conformance/*.json at the repo root)
// against the Node build of the wasm package, step for step as the Rust
// runner does (loyalty-rules/tests/conformance.rs), with the matching rules
// of docs/API-CONTRACT.md.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { REPO, loadPackage, programText, subsetMismatches } from "./helpers.mjs";

const lr = loadPackage();
const DIR = path.join(REPO, "conformance");
const files = fs.existsSync(DIR) ? fs.readdirSync(DIR).filter((f) => f.endsWith(".json")).sort() : [];

test("the conformance corpus is not empty", { skip: process.env.LOYALTY_ALLOW_EMPTY_CORPUS === "1" && files.length === 0 }, () => {
  assert.ok(files.length > 0, `no conformance/*.json cases found in ${DIR}`);
});

for (const file of files) {
  let c;
  try {
    c = JSON.parse(fs.readFileSync(path.join(DIR, file), "utf8"));
  } catch (e) {
    test(file, () => assert.fail(`invalid JSON: ${e.message}`));
    continue;
  }
  test(`${file}: ${c.description ?? ""}`, () => {
    const errors = runCase(c);
    assert.deepEqual(errors, [], `${file}\n  ${errors.join("\n  ")}`);
  });
}

function runCase(c) {
  const source = programText(c.program);
  const errors = [];
  const diags = lr.check(source);
  // the binding's UTF-16 offsets denote the same text as the core's byte offsets
  for (const d of diags) {
    const start = Buffer.byteLength(source.slice(0, d.from));
    const end = Buffer.byteLength(source.slice(0, d.to));
    if (start !== d.start || end !== d.end) {
      errors.push(`UTF-16 span ${d.from}..${d.to} is bytes ${start}..${end}, core says ${d.start}..${d.end}`);
    }
  }
  if (c.expect_diagnostics !== undefined) {
    errors.push(...subsetMismatches(c.expect_diagnostics, diags, "diagnostics"));
    const compiled = lr.compile(source);
    if (compiled.ok) {
      compiled.program.free();
      if (diags.some((d) => d.severity === "error")) errors.push("compile() succeeded although check() reported errors");
    }
    return errors;
  }
  if (diags.length) {
    errors.push(`unexpected diagnostics: ${JSON.stringify(diags)}`);
    return errors;
  }
  const compiled = lr.compile(source);
  if (!compiled.ok) {
    errors.push(`does not compile: ${JSON.stringify(compiled.error)}`);
    return errors;
  }
  const program = compiled.program;
  try {
    if (c.mode === "engine") runEngineCase(program, c, errors);
    else runSteps(program, c, errors);
  } finally {
    program.free();
  }
  return errors;
}

function runSteps(program, c, errors) {
  const defaultCustomer = c.customer ?? { id: "c1" };
  (c.steps ?? []).forEach((step, i) => {
    const at = `steps[${i}]`;
    const customer = step.customer ?? defaultCustomer;
    const run = (p) => (step.explain ? p.explain(step.event, customer) : p.evaluate(step.event, customer));
    const res = run(program);
    if (!res.ok) {
      if (step.expect_error !== undefined) errors.push(...subsetMismatches(step.expect_error, res.error, `${at}.error`));
      else errors.push(`${at}: ${res.error.kind}: ${res.error.message}`);
      return;
    }
    if (step.expect_error !== undefined) {
      errors.push(`${at}: expected an error, got none`);
      return;
    }
    errors.push(...subsetMismatches(step.expect ?? null, res.outcome, at));
    if (step.expect_matching !== undefined) {
      const m = program.matchingRules(step.event, customer);
      if (!m.ok) errors.push(`${at}.matching: ${m.error.kind}: ${m.error.message}`);
      else errors.push(...subsetMismatches(step.expect_matching, m.rules, `${at}.matching`));
    }
    // a dry run: evaluating again gives the same outcome
    if (JSON.stringify(run(program).outcome) !== JSON.stringify(res.outcome)) errors.push(`${at}: second evaluation differs`);
  });
}

function runEngineCase(program, c, errors) {
  const engine = new lr.Engine(program);
  try {
    for (const cu of c.customers ?? []) {
      const r = engine.setCustomer(cu);
      if (!r.ok) {
        errors.push(`customer ${JSON.stringify(cu)}: ${r.error.message}`);
        return;
      }
    }
    (c.steps ?? []).forEach((step, i) => {
      const at = `steps[${i}]`;
      if (step.advance_to !== undefined) {
        const r = engine.advanceTo(step.advance_to);
        if (!r.ok) throw new Error(`${at}: advance_to: ${r.error.message}`);
        if (step.expect_ledger !== undefined) errors.push(...subsetMismatches(step.expect_ledger, r.ledger, `${at}.ledger`));
      } else {
        if (step.explain) {
          // a preview explains and changes nothing
          const before = JSON.stringify(engine.snapshot());
          const p = engine.preview(step.event);
          if (!p.ok) {
            if (step.expect_error !== undefined) errors.push(...subsetMismatches(step.expect_error, p.error, `${at}.error`));
            else errors.push(`${at}: bad event: ${p.error.message}`);
            return;
          }
          if (step.expect_preview !== undefined) errors.push(...subsetMismatches(step.expect_preview, p.outcome, `${at}.preview`));
          if (JSON.stringify(engine.snapshot()) !== before) errors.push(`${at}: preview changed state`);
        }
        const r = engine.process(step.event);
        if (!r.ok) {
          if (step.expect_error !== undefined) errors.push(...subsetMismatches(step.expect_error, r.error, `${at}.error`));
          else errors.push(`${at}: bad event: ${r.error.message}`);
          return;
        }
        if (step.expect !== undefined) errors.push(...subsetMismatches(step.expect, r.outcome, at));
      }
      checkCustomer(engine, step, at, errors);
    });
  } finally {
    engine.free();
  }
}

function checkCustomer(engine, step, at, errors) {
  const exp = step.expect_customer;
  if (exp === undefined) return;
  const id = typeof exp.id === "string" ? exp.id : "c1";
  const st = engine.customer(id);
  if (!st) {
    errors.push(`${at}: no customer ${id}`);
    return;
  }
  errors.push(...subsetMismatches(exp, st, `${at}.customer`));
}
