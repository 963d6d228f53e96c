#!/usr/bin/env bash
# Idempotent setup of what build.sh and test.sh need on a fresh Debian machine
# (or any machine with rustup's wasm32 target: then only the apt part for
# chromium is used and the Debian Rust packages are skipped).
#
#   - Debian's rustc-web, cargo-web, rust-web-src, lld (only if rustup has no
#     wasm32-unknown-unknown target), chromium for the browser test
#   - wasm-bindgen-cli 0.2.130 (cargo install, only if not already that version)
#   - npm ci in loyalty-rules-wasm/tests (playwright-core, binaryen's wasm-opt, typescript)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WASM_BINDGEN_VERSION=0.2.130
log() { printf '[setup.sh] %s\n' "$*" >&2; }

SUDO=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi


# --- apt packages ---
if command -v apt-get >/dev/null 2>&1; then
  want=()
  debian_rust=(rustc-web cargo-web rust-web-src lld)
  debian_ok=1
  for p in "${debian_rust[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || debian_ok=0
  done
  # rustup's nightly with the target and std's sources builds std for size
  # (build.sh's first choice); where rustup cannot add them (some machines),
  # Debian's Rust with its std sources does the same.
  have_nightly_wasm=0
  if command -v rustup >/dev/null 2>&1 &&
     { rustup toolchain list 2>/dev/null | grep -q '^nightly' ||
       rustup toolchain install nightly --profile minimal >/dev/null 2>&1; } &&
     rustup target add wasm32-unknown-unknown --toolchain nightly >/dev/null 2>&1 &&
     rustup component add rust-src --toolchain nightly >/dev/null 2>&1; then
    have_nightly_wasm=1
    log "wasm toolchain: rustup nightly with wasm32-unknown-unknown and rust-src"
  fi
  if [[ $have_nightly_wasm == 0 && $debian_ok == 0 ]]; then
    want+=("${debian_rust[@]}")
  fi
  command -v chromium >/dev/null 2>&1 || [[ -x /usr/bin/chromium ]] || want+=(chromium)
  command -v gzip >/dev/null 2>&1 || want+=(gzip)
  missing=()
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
  else
    log "apt packages present"
  fi
else
  log "no apt-get: install chromium and a wasm32 Rust toolchain yourself"
fi

# --- wasm-bindgen-cli ---
current=""
if command -v wasm-bindgen >/dev/null 2>&1; then current="$(wasm-bindgen --version | awk '{print $2}')"
elif [[ -x "$HOME/.cargo/bin/wasm-bindgen" ]]; then current="$("$HOME/.cargo/bin/wasm-bindgen" --version | awk '{print $2}')"
fi
if [[ "$current" != "$WASM_BINDGEN_VERSION" ]]; then
  log "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (was: ${current:-none}); takes several minutes"
  # --locked first; the lock file of 0.2.130 pins webpki-roots 1.0.11, which
  # some crates.io mirrors lack, so fall back to a fresh resolution.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked ||
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
else
  log "wasm-bindgen-cli $current present"
fi

# --- node test dependencies ---
command -v node >/dev/null 2>&1 || { log "node is required (>= 20)"; exit 1; }
( cd "$HERE/tests" && npm ci --no-audit --no-fund --loglevel=error )
log "done"
