#!/usr/bin/env bash
# Train, export and score the shipped default NextBlock model (models/nextblock-default.tflite).
#
# Steps (each skipped when its output already exists):
#   1. fetch + unpack every allowed Debian package (DEVELOPERS.md) into $NEXTBLOCK_CACHE/debian
#   2. render the 72 music21 corpus pieces of nextblock.dataset.render.corpus_sample (48 Bach
#      chorales, 24 Palestrina movements) through fluid-soundfont-gm, each in its round-robin
#      instrument AND as a choir (the sung share, weighted x3 in training) into
#      $NEXTBLOCK_CACHE/rendered/music21/<program>/
#   3. python -m nextblock.train: every package folder and every render program is a group with an
#      equal share of the windows, except choir (x3) and the five instrument render programs (x0.25
#      each); every file resampled to a random rate of 32/44.1/48/88.2/96 kHz (one model for every
#      rate); Burg AR(128) guess on the last 768 samples; log-spectral + phase-aware STFT loss
#   4. python -m nextblock.export -> models/nextblock-default.tflite (+ -fp16 variant), weights copied
#   5. scripts/model_card_tables.sh: held-out set by category, every configuration, latency
# This makes 3.0.0; 3.2.0 is 3.0.0 fine-tuned on chained (burst) contexts in four rounds by
# scripts/finetune_chained_model.sh (run after this one); 3.3.0 is 3.2.0 fine-tuned onto a Burg guess
# of order 256 on 1024 samples and the shipped 3.4.0 is 3.3.0 fine-tuned onto order 384, both by
# scripts/finetune_high_order_guess.sh (run after that: ORDER=256, then the default ORDER=384).
#
# Usage:  scripts/train_default_model.sh [extra nextblock.train arguments]
#   RUN_DIR=runs/default EPOCHS=12 TRAIN_EXAMPLES=200000 scripts/train_default_model.sh
# Runs niced, one TensorFlow thread: about 35 min of training on 2 cores (~9 GB of memory at 200 K
# windows: run one training at a time). The shipped run: docs/notes/model.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
. scripts/python_env.sh   # PY: the venv's python (scripts/setup.sh), else ${PYTHON:-python3}
export OPENBLAS_NUM_THREADS=1
CACHE="${NEXTBLOCK_CACHE:-$HOME/.cache/nextblock}"
RUN_DIR="${RUN_DIR:-runs/default}"
EPOCHS="${EPOCHS:-12}"
TRAIN_EXAMPLES="${TRAIN_EXAMPLES:-200000}"
VERSION="${VERSION:-3.0.0}"

"$PY" -m nextblock.dataset fetch --debian --quiet
"$PY" - <<'PY'
from nextblock.dataset.cache import cache_root
from nextblock.dataset.render import corpus_sample, render_pieces

sample = corpus_sample()
by_program = {}
for piece, program in sample:
    by_program.setdefault(program, []).append(piece)
by_program["choir"] = sorted({piece for piece, _ in sample})  # every piece also sung
for program, pieces in by_program.items():
    results = render_pieces(cache_root(), pieces, program=program, show_progress=False)
    print(f"music21 {program}: " + ", ".join(f"{s} {sum(r.status == s for r in results)}" for s in ("rendered", "cached", "failed")))
PY

. scripts/training_recipe.sh  # ROOTS: the data; RECIPE: the shipped model's training arguments

nice "$PY" -m nextblock.train --audio "${ROOTS[@]}" --run-dir "$RUN_DIR" "${RECIPE[@]}" \
  --epochs "$EPOCHS" --train-examples "$TRAIN_EXAMPLES" "$@"
nice "$PY" -m nextblock.export --run-dir "$RUN_DIR" --output models/nextblock-default.tflite --float16 \
  --name nextblock-default --model-version "$VERSION"
cp "$RUN_DIR/best.weights.h5" models/nextblock-default.weights.h5   # the online learner starts from these
scripts/model_card_tables.sh
