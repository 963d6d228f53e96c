#!/usr/bin/env bash
# Build and test the Python package, as CI does:
#   1. a venv in loyalty-rules-py/.venv (created once; reused)
#   2. pip install ./loyalty-rules-py[test]  (maturin build backend, abi3 wheel)
#   3. mypy stubtest of loyalty_rules._native against _native.pyi
#   4. mypy --strict on the facade and the tests' public use
#   5. pytest (conformance corpus, API, tables, Hypothesis properties)
# Environment: PYTHON (default python3), CARGO_TARGET_DIR (default: the
# workspace target/, so the core is not rebuilt), PYTEST_ARGS.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="$HERE/.venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[py/test.sh] creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
"$VPY" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true

echo "[py/test.sh] pip install ./loyalty-rules-py[test]" >&2
# --no-build-isolation would reuse an installed maturin; keep isolation so
# the documented install is what is tested.
(cd "$ROOT" && "$VPY" -m pip install --quiet --force-reinstall --no-deps ./loyalty-rules-py \
   && "$VPY" -m pip install --quiet "./loyalty-rules-py[test]")

echo "[py/test.sh] stubtest" >&2
(cd "$HERE" && "$VPY" -m mypy.stubtest loyalty_rules._native --allowlist "$HERE/stubtest-allowlist.txt")

echo "[py/test.sh] mypy --strict (facade)" >&2
(cd "$HERE" && "$VPY" -m mypy --strict -p loyalty_rules --python-executable "$VPY" >/dev/null \
   || "$VPY" -m mypy --strict -p loyalty_rules --python-executable "$VPY")

echo "[py/test.sh] pytest" >&2
# run from tests/ so `import loyalty_rules` is the installed package, not python/
cd "$HERE/tests"
"$VPY" -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-} .
