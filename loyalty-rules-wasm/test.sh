#!/usr/bin/env bash
# Runs the Node tests (node --test) against the built package:
#   conformance.test.mjs  the shared corpus conformance/*.json (matching rules of docs/API-CONTRACT.md)
#   api.test.mjs          API behaviour: UTF-16 ranges, errors as data, fuzzing for panics
#   types.test.mjs        the TypeScript declarations (tsc --strict)
#   e2e.test.mjs          the editor page in headless Debian Chromium (playwright-core),
#                         with screenshots and per-keystroke timings in tests/artifacts/
# Also runs the binding's Rust unit tests (UTF-8 <-> UTF-16 offset mapping) natively.
# Needs: setup.sh, then build.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

[[ -f pkg/node/loyalty_rules_wasm.js ]] || { echo "[test.sh] pkg/ missing: run build.sh first" >&2; exit 1; }
[[ -d tests/node_modules ]] || { echo "[test.sh] tests/node_modules missing: run setup.sh (npm ci)" >&2; exit 1; }

echo "[test.sh] cargo test (offset mapping, native)" >&2
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HERE/../target}" cargo test --quiet --manifest-path "$HERE/Cargo.toml" --lib utf16

mkdir -p tests/artifacts
cd tests
node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination=artifacts/results.tap \
  conformance.test.mjs api.test.mjs types.test.mjs e2e.test.mjs
