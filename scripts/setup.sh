#!/usr/bin/env bash
# Install what the tests need on a fresh Debian machine (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "a Rust toolchain (rustup) is required" >&2; exit 1; }
rustup component add rustfmt clippy >/dev/null 2>&1 || true
if [ -f loyalty-rules-wasm/setup.sh ]; then
  bash loyalty-rules-wasm/setup.sh
fi
