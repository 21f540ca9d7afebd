#!/usr/bin/env bash
# Sets up NextBlock (Debian packages, the Python package) and runs the demo end to end: JackTrip's
# default concealment, the Regulator's Burg and NextBlock, side by side on a recording the model
# never trained on. The patched JackTrip is used when it is already built; otherwise the demo runs
# NextBlock on the stand-in producer and says how to get the real thing (`--build-jacktrip` here
# builds it first, ~10 min on 2 cores). Extra arguments go to the demo: scripts/demo.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/python_env.sh   # PY: the venv's python once setup has made it (.venv), else ${PYTHON:-python3}
demo='import sys; from nextblock.commands.demo import main; sys.exit(main(sys.argv[1:], prog="scripts/demo.sh"))'
for a in "$@"; do
  case "$a" in -h|--help) PYTHONPATH=python exec "$PY" -c "$demo" --help ;; esac
done
start=$(date +%s)
# what the demo needs (ViSQOL from the eval extra; no TensorFlow); with --build-jacktrip also the
# patched JackTrip's build dependencies and the build itself
skip=1
for a in "$@"; do [ "$a" = --build-jacktrip ] && skip=""; done
NEXTBLOCK_SKIP_JACKTRIP=$skip NEXTBLOCK_EXTRAS="${NEXTBLOCK_EXTRAS:-eval}" scripts/setup.sh
echo "[demo] setup took $(( $(date +%s) - start )) s"
nb_use_venv
exec "$PY" -c "$demo" "$@"
