#!/usr/bin/env bash
# Apply the tree's formatting with the tools pinned in pyproject.toml's test extra (what
# tests/test_style.py checks): ruff's safe fixes (import order, pyupgrade, unused imports),
# ruff format, and clang-format on the tracked C++ of csrc/ and third_party/jacktrip_patch/
# (each folder's .clang-format). Purely mechanical: commit its result on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(dirname "$(command -v "${PYTHON:-.venv/bin/python}")")
"$BIN/ruff" check --fix --quiet . || true  # what it cannot fix, tests/test_style.py names
"$BIN/ruff" format --quiet .
git ls-files -- csrc third_party/jacktrip_patch | grep -E '\.(cpp|hpp|h|cc)$' | xargs "$BIN/clang-format" -i
git status --short
