#!/usr/bin/env bash
# The main job: build the CLI, check every example program and evaluate it
# against its sample events (examples/<name>/program.rules + events.jsonl
# [+ customer.json]). Works on a fresh machine with a Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p loyalty-rules
bin=target/release/loyalty-rules
for dir in examples/*/; do
  prog="$dir/program.rules"
  [ -f "$prog" ] || continue
  echo "== $prog"
  "$bin" check "$prog"
  if [ -f "$dir/events.jsonl" ]; then
    args=(eval "$prog" --event "$dir/events.jsonl" --explain)
    [ -f "$dir/customer.json" ] && args+=(--customer "$dir/customer.json")
    "$bin" "${args[@]}"
  fi
done
echo "== stateful replay of examples/retail/events.jsonl"
"$bin" run examples/retail/program.rules examples/retail/events.jsonl
