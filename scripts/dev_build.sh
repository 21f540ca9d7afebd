#!/usr/bin/env bash
# Builds the C++ extension nextblock._core in place (python/nextblock/_core*.so) for development:
# afterwards `PYTHONPATH=python .venv/bin/python -c "import nextblock._core"` works without pip install.
# Usage: scripts/dev_build.sh [-DNEXTBLOCK_ASAN=ON]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/python_env.sh   # PY: the venv's python (scripts/setup.sh), else ${PYTHON:-python3}
build=build/dev
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v "$PY")" "$@" >/dev/null
cmake --build "$build"
for so in "$build"/_core*.so; do cp "$so" "python/nextblock/.$(basename "$so").tmp" && mv -f "python/nextblock/.$(basename "$so").tmp" "python/nextblock/$(basename "$so")"; done  # rename: never rewrite a loaded .so in place
echo "built $(ls python/nextblock/_core*.so)"
