#!/usr/bin/env bash
# Regenerate python/nextblock/_core.pyi, the typed face of the C++ extension, from the built module
# with the pybind11-stubgen pinned in pyproject.toml's test extra; then check it with mypy.stubtest
# (as tests/test_stubs.py does). Run after changing a binding in csrc/ and rebuilding:
#   .venv/bin/python -m pip install -e . --no-deps --no-build-isolation && scripts/stubs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=$(command -v "${PYTHON:-$REPO/.venv/bin/python}")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$PY" -m pybind11_stubgen nextblock._core --exit-code -o "$out"
cp "$out/nextblock/_core.pyi" python/nextblock/_core.pyi
echo "[stubs] wrote python/nextblock/_core.pyi"
# stubtest imports nextblock from the environment: run it outside the tree so the editable install answers
(cd "$out" && "$PY" -m mypy.stubtest nextblock._core --allowlist "$REPO/scripts/stubs.allowlist")
