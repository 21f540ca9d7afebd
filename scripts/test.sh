#!/usr/bin/env bash
# The test suite (the README's test command). Extra arguments go to pytest, e.g. -k shm.
# It runs in the virtual environment scripts/setup.sh makes (.venv; scripts/python_env.sh); on a
# machine that has not run scripts/setup.sh with the test extras yet, it runs it first.
# With CI=true (as .ci/run sets) a test that skips for something setup provides fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1
. scripts/python_env.sh
if ! nb_use_venv || ! "$PY" -c "import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ('pytest', 'hypothesis', 'tensorflow', 'music21', 'ai_edge_litert', 'nextblock')))" 2>/dev/null; then
  echo "[test] the test extras are not installed in $NB_VENV yet: running scripts/setup.sh first"
  scripts/setup.sh
  nb_use_venv
fi
exec "$PY" -m pytest -ra "$@"
