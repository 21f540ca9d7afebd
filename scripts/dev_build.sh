#!/usr/bin/env bash
# Builds the C++ extension nextblock._core in place (python/nextblock/_core*.so) for development:
# afterwards `PYTHONPATH=python python -c "import nextblock._core"` works without pip install.
# Usage: scripts/dev_build.sh [-DNEXTBLOCK_ASAN=ON]
set -euo pipefail
cd "$(dirname "$0")/.."
build=build/dev
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v python3)" "$@" >/dev/null
cmake --build "$build"
for so in "$build"/_core*.so; do cp "$so" "python/nextblock/.$(basename "$so").tmp" && mv -f "python/nextblock/.$(basename "$so").tmp" "python/nextblock/$(basename "$so")"; done  # rename: never rewrite a loaded .so in place
echo "built $(ls python/nextblock/_core*.so)"
