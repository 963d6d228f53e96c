#!/usr/bin/env bash
# Every test of the project. Run scripts/setup.sh once first on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== Rust: unit, conformance, reference, property, allocation and doc tests"
cargo test -p loyalty-rules
cargo test --release -p loyalty-rules --test alloc
echo "== WASM: build, Node conformance/API/type tests, browser end-to-end test"
bash loyalty-rules-wasm/build.sh
bash loyalty-rules-wasm/test.sh
echo "== Python: install the package, stubtest, mypy, pytest (incl. the conformance corpus)"
bash loyalty-rules-py/test.sh
