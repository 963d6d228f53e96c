#!/usr/bin/env bash
# Install what the build and the tests need on a fresh Debian machine with a
# Rust toolchain (idempotent): rustfmt/clippy, the WASM toolchain and
# Chromium (loyalty-rules-wasm/setup.sh), Python's venv module, and nightly +
# cargo-fuzz for the fuzz smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "a Rust toolchain (rustup) is required" >&2; exit 1; }
rustup component add rustfmt clippy >/dev/null 2>&1 || true
bash loyalty-rules-wasm/setup.sh
python3 -c "import venv" 2>/dev/null || { apt-get update && apt-get install -y python3-venv; }
# The fuzz smoke run (.ci/run) needs a nightly toolchain and cargo-fuzz.
rustup toolchain list 2>/dev/null | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
