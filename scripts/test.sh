#!/usr/bin/env bash
# The test suite (the README's test command). Extra arguments go to pytest, e.g. -k shm.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1
exec python3 -m pytest -ra "$@"
