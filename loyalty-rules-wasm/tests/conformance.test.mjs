// Runs the shared conformance corpus (conformance/*.json at the repo root)
// against the Node build of the wasm package, with the matching rules of
// docs/API-CONTRACT.md.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { REPO, loadPackage, programText, subsetMismatches } from "./helpers.mjs";

const lr = loadPackage();
const DIR = path.join(REPO, "conformance");
const files = fs.existsSync(DIR)
  ? fs.readdirSync(DIR).filter((f) => f.endsWith(".json")).sort()
  : [];

test("the conformance corpus is not empty", { skip: process.env.LOYALTY_ALLOW_EMPTY_CORPUS === "1" && files.length === 0 }, () => {
  assert.ok(files.length > 0, `no conformance/*.json cases found in ${DIR}`);
});

for (const file of files) {
  const text = fs.readFileSync(path.join(DIR, file), "utf8");
  let c;
  try {
    c = JSON.parse(text);
  } catch (e) {
    test(file, () => assert.fail(`invalid JSON: ${e.message}`));
    continue;
  }
  test(`${file}: ${c.description ?? ""}`, () => {
    const source = programText(c.program);
    const problems = [];
    const diags = lr.check(source);
    // the binding's UTF-16 offsets must denote the same text as the core's byte offsets
    for (const d of diags) {
      const start = Buffer.byteLength(source.slice(0, d.from));
      const end = Buffer.byteLength(source.slice(0, d.to));
      if (start !== d.start || end !== d.end) {
        problems.push(`UTF-16 span ${d.from}..${d.to} is bytes ${start}..${end}, core says ${d.start}..${d.end}`);
      }
    }

    if (c.expect_diagnostics) {
      problems.push(...subsetMismatchesList(c.expect_diagnostics, diags));
    } else if (diags.length) {
      problems.push(`expected a clean check, got: ${JSON.stringify(diags.map(strip))}`);
    }

    const steps = c.steps ?? [];
    if (steps.length) {
      const compiled = lr.compile(source);
      if (!compiled.ok) {
        problems.push(`compile failed: ${JSON.stringify(compiled.error)}`);
      } else {
        const program = compiled.program;
        try {
          steps.forEach((step, i) => {
            const customer = step.customer ?? c.customer ?? {};
            const res = step.explain ? program.explain(step.event, customer) : program.evaluate(step.event, customer);
            const where = `steps[${i}]`;
            if (step.expect_error) {
              if (res.ok) problems.push(`${where}: expected an error, got outcome ${JSON.stringify(res.outcome)}`);
              else problems.push(...subsetMismatches(step.expect_error, res.error, `${where}.error`, true));
            }
            if (step.expect) {
              if (!res.ok) problems.push(`${where}: expected an outcome, got error ${JSON.stringify(res.error)}`);
              else problems.push(...subsetMismatches(step.expect, res.outcome, `${where}.outcome`));
            }
            if (!step.expect && !step.expect_error && !res.ok) {
              problems.push(`${where}: unexpected error ${JSON.stringify(res.error)}`);
            }
          });
        } finally {
          program.free();
        }
      }
    }
    assert.deepEqual(problems, [], `${file}\n${problems.join("\n")}`);
  });
}

function strip(d) {
  const { severity, kind, message, hint, line, column } = d;
  return { severity, kind, message, hint, line, column };
}

/** expect_diagnostics: every diagnostic, in order, each a subset match. */
function subsetMismatchesList(expected, actual) {
  if (expected.length !== actual.length) {
    return [`expected ${expected.length} diagnostics, got ${actual.length}: ${JSON.stringify(actual.map(strip))}`];
  }
  return expected.flatMap((e, i) => subsetMismatches(e, actual[i], `diagnostics[${i}]`, true));
}
