#!/usr/bin/env bash
# CI smoke run: each fuzz target for a short time (default 50 s) from the
# committed seeds plus the saved regressions. Fails on the first crash.
#   fuzz/smoke.sh            # every target, 50 s each
#   SECONDS_PER_TARGET=10 fuzz/smoke.sh compile evaluate
set -euo pipefail
cd "$(dirname "$0")"
secs="${SECONDS_PER_TARGET:-50}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(compile evaluate format_roundtrip completions)
toolchain="${FUZZ_TOOLCHAIN:-+nightly}"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo $toolchain fuzz build   # every target, with debug assertions
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "regressions/$t"
    echo "== fuzz $t for ${secs}s"
    # Saved crashes first: they must not crash any more.
    if compgen -G "regressions/$t/*" >/dev/null; then
        cargo $toolchain fuzz run "$t" regressions/"$t"/*
    fi
    cargo $toolchain fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
