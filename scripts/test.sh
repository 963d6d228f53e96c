#!/usr/bin/env bash
# Every test of the project. Run scripts/setup.sh once first on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== Rust: unit, conformance, reference, property and doc tests"
cargo test --workspace
if [ -x loyalty-rules-wasm/test.sh ] || [ -f loyalty-rules-wasm/test.sh ]; then
  echo "== WASM: build, node conformance tests, browser end-to-end test"
  bash loyalty-rules-wasm/build.sh
  bash loyalty-rules-wasm/test.sh
fi
