// Shared helpers: loading the Node build and the conformance matching rules.
import { createRequire } from "node:module";
import path from "node:path";
import fs from "node:fs";
import { fileURLToPath } from "node:url";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const CRATE_DIR = path.resolve(HERE, "..");
export const REPO = path.resolve(CRATE_DIR, "..");
export const PKG_NODE = path.join(CRATE_DIR, "pkg", "node", "loyalty_rules_wasm.js");
export const EDITOR_DIR = path.join(REPO, "examples", "editor");
export const ARTIFACTS = process.env.LOYALTY_ARTIFACTS_DIR ?? path.join(HERE, "artifacts");

export function loadPackage() {
  if (!fs.existsSync(PKG_NODE)) {
    throw new Error(`${PKG_NODE} is missing: run bash loyalty-rules-wasm/build.sh first`);
  }
  return createRequire(import.meta.url)(PKG_NODE);
}

/** Program text of a corpus case: a string or an array of lines joined with "\n". */
export function programText(p) {
  return Array.isArray(p) ? p.join("\n") : p;
}

const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Subset match, as loyalty-rules/tests/conformance.rs `matches` does it (and
 * docs/API-CONTRACT.md describes): every key of an expected object must be in
 * the actual object with a matching value; arrays must have the same length
 * and match element by element; scalars compare exactly. A key `<field>_contains`
 * is a substring test of `<field>` (at any level).
 * Returns a list of mismatch descriptions (empty = match).
 */
export function subsetMismatches(expected, actual, where = "$") {
  const out = [];
  if (isObj(expected) && isObj(actual)) {
    for (const [k, v] of Object.entries(expected)) {
      if (k.endsWith("_contains")) {
        const field = k.slice(0, -"_contains".length);
        const got = typeof actual[field] === "string" ? actual[field] : "";
        const want = typeof v === "string" ? v : "";
        if (!got.includes(want)) out.push(`${where}.${field}: ${JSON.stringify(got)} does not contain ${JSON.stringify(want)}`);
        continue;
      }
      if (!Object.prototype.hasOwnProperty.call(actual, k)) {
        out.push(`${where}.${k}: missing (expected ${JSON.stringify(v)})`);
        continue;
      }
      out.push(...subsetMismatches(v, actual[k], `${where}.${k}`));
    }
    return out;
  }
  if (Array.isArray(expected) && Array.isArray(actual)) {
    if (expected.length !== actual.length) {
      return [`${where}: expected ${expected.length} elements, got ${actual.length}: ${JSON.stringify(actual)}`];
    }
    expected.forEach((e, i) => out.push(...subsetMismatches(e, actual[i], `${where}[${i}]`)));
    return out;
  }
  if (!sameJson(expected, actual)) {
    out.push(`${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
  return out;
}

/** Exact equality of JSON values (the fallback arm of the Rust matcher). */
function sameJson(a, b) {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}
function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (isObj(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  return v;
}
