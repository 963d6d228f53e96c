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
 * Subset match (docs/API-CONTRACT.md): every key of an expected object must be
 * in the actual object with a matching value; arrays must have the same length
 * and match element by element; strings, numbers, booleans and null compare
 * exactly. With `special`, the top-level keys `message_contains` and
 * `hint_contains` are substring tests of `message` and `hint`.
 * Returns a list of mismatch descriptions (empty = match).
 */
export function subsetMismatches(expected, actual, where = "$", special = false) {
  const out = [];
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return [`${where}: expected an array, got ${JSON.stringify(actual)}`];
    if (expected.length !== actual.length) {
      out.push(`${where}: expected ${expected.length} elements, got ${actual.length}: ${JSON.stringify(actual)}`);
      return out;
    }
    expected.forEach((e, i) => out.push(...subsetMismatches(e, actual[i], `${where}[${i}]`)));
    return out;
  }
  if (isObj(expected)) {
    if (!isObj(actual)) return [`${where}: expected an object, got ${JSON.stringify(actual)}`];
    for (const [k, v] of Object.entries(expected)) {
      if (special && (k === "message_contains" || k === "hint_contains")) {
        const field = k === "message_contains" ? "message" : "hint";
        const got = actual[field];
        if (typeof got !== "string" || !got.includes(v)) {
          out.push(`${where}.${field}: expected to contain ${JSON.stringify(v)}, got ${JSON.stringify(got)}`);
        }
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
  if (expected !== actual) {
    out.push(`${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
  return out;
}
