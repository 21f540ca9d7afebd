#!/usr/bin/env bash
# Train, export and benchmark the shipped default NextBlock model (models/nextblock-default.tflite).
#
# Steps (each skippable by what already exists):
#   1. fetch + unpack the allowed Debian packages into $NEXTBLOCK_CACHE/debian (DEVELOPERS.md)
#   2. write the held-out evaluation excerpts (test-split recordings only) to $NEXTBLOCK_CACHE/heldout
#   3. python -m nextblock.train   (resumes if RUN_DIR has a backup)
#   4. python -m nextblock.export  -> models/nextblock-default.tflite (+ -fp16 variant)
#   5. bench/model_latency.py and python -m nextblock.evaluate on the held-out excerpts
#
# Usage:  scripts/train_default_model.sh [extra nextblock.train arguments]
#   RUN_DIR=runs/default EPOCHS=8 TRAIN_EXAMPLES=100000 scripts/train_default_model.sh
# Runs niced: CPU is shared. About 35 min on 2 cores for the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
export OPENBLAS_NUM_THREADS=1
CACHE="${NEXTBLOCK_CACHE:-$HOME/.cache/nextblock}"
RUN_DIR="${RUN_DIR:-runs/default}"
EPOCHS="${EPOCHS:-8}"
TRAIN_EXAMPLES="${TRAIN_EXAMPLES:-100000}"
PACKAGES="fillets-ng-data-cs fillets-ng-data-nl klettres-data colobot-common-sounds singularity-music planetblupi-music-ogg
          warzone2100-music wesnoth-1.16-music nexuiz-music sonic-pi-samples hydrogen-drumkits"

mkdir -p "$CACHE/debian/debs" "$CACHE/debian/extracted"
for pkg in $PACKAGES; do
  [ -d "$CACHE/debian/extracted/$pkg" ] && continue
  (cd "$CACHE/debian/debs" && ls "${pkg}"_*.deb >/dev/null 2>&1 || apt-get download "$pkg")
  dpkg-deb -x "$(ls "$CACHE/debian/debs/${pkg}"_*.deb | head -1)" "$CACHE/debian/extracted/$pkg.tmp"
  mv "$CACHE/debian/extracted/$pkg.tmp" "$CACHE/debian/extracted/$pkg"
done

[ -f "$CACHE/heldout/heldout.json" ] || nice python -m nextblock.model.heldout --out "$CACHE/heldout"

nice python -m nextblock.train --run-dir "$RUN_DIR" --epochs "$EPOCHS" --train-examples "$TRAIN_EXAMPLES" "$@"
nice python -m nextblock.export --run-dir "$RUN_DIR" --output models/nextblock-default.tflite --float16
python bench/model_latency.py --model models/nextblock-default.tflite
nice python -m nextblock.evaluate "$CACHE/heldout" --loss bernoulli:0.05 --loss gilbert:0.02,0.25 \
  --concealer zeros --concealer repeat --concealer burg --concealer nextblock \
  --model models/nextblock-default.tflite --no-visqol --report "$RUN_DIR/evaluation.md" --json "$RUN_DIR/evaluation.json"
