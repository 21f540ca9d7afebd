#!/usr/bin/env bash
# Every live figure of the README and docs/results.md from one command: runs the live benchmarks
# with the shipped model and runtime (bench/e2e.py: every loss pattern x seeds 1-3, the stock
# Regulator against NextBlock on the Regulator, the default JitterBuffer and the ring buffer, the lossless pipeline as the
# ceiling; bench/attach.py: the runtime's CPU against JackTrip's Burg built -O3), their JSON into
# $OUT (default runs/results, git-ignored), then writes docs/results.md and the README's table
# (between <!-- results:begin --> and <!-- results:end -->) from that JSON (bench/results_page.py).
#
# Usage: scripts/results.sh            (seeds 1-3, 60-s runs: about 2 h on the 2-core CI machine class)
#        scripts/results.sh --quick    (one seed, 10-s runs, 5 % and bursts: about 10 min)
#        scripts/results.sh --page     (only rewrite the page and the table from $OUT)
#        scripts/results.sh --seeds 1 2 --seconds 30   (other arguments go to bench/results.py run)
#        MAX_XRUNS=20 MAX_SLIPS=2 scripts/results.sh --page   (a busy machine: count runs with up to
#            that many xruns / timing slips in the means; the page states the tolerance; default 0)
# Needs the patched JackTrip (scripts/setup.sh or nextblock build-jacktrip) and root for the
# real-time scheduling the live benchmarks use; run it on a quiet machine: the page states the load.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/python_env.sh   # PY: the venv's python (scripts/setup.sh), else ${PYTHON:-python3}
export OPENBLAS_NUM_THREADS=1
OUT="${OUT:-runs/results}"
case "${1:-}" in -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
if [ "${1:-}" != "--page" ]; then
  "$PY" bench/results.py run --out "$OUT" "$@"
fi
"$PY" bench/results.py page --results "$OUT" --max-slips "${MAX_SLIPS:-0}" --max-xruns "${MAX_XRUNS:-0}"
