#!/usr/bin/env bash
# Train, export and score the two-sided NextBlock model (models/nextblock-twosided.tflite): the
# shipped causal model fine-tuned to correct a two-sided guess. The first block of each training
# continuation is lost and the block after it arrived; the guess channels hold the gap filled by
# least-squares AR(128) interpolation fused with the causal model's prediction of the gap (the
# runtime's safety-net replacement), then that block (python -m nextblock.train --two-sided
# --two-sided-prior; nextblock.features.twosided.two_sided_guess). 40 % of the contexts end with the
# causal model's own predictions (a burst before the gap: with one block of look-ahead the gap a
# burst leaves is its last block).
#
# GUESS=full (default) corrects the full fusion NextBlock plays without a network (AR(256), the
# prior fading over the gap); GUESS=fast the cheap one (LSAR(128), Levinson; --two-sided-guess).
# The model is exported into $RUN_DIR and scored on the validation set against the full fusion;
# it ships (models/nextblock-twosided.tflite, which TwoSidedFill.shipped() then finds) only by hand,
# when it beats the fusion in SNR and LSD.
#
# Usage:  scripts/train_two_sided_model.sh          (RUN_DIR=runs/two-sided-net EPOCHS=6 TRAIN_EXAMPLES=200000 GUESS=full)
#   another round from a two-sided run's weights, with a heavier spectral loss:
#   RUN_DIR=runs/ts2 BASE_WEIGHTS=runs/ts1/train/best.weights.h5 EPOCHS=3 LEARNING_RATE=3e-4 \
#     TRAIN_ARGS="--spectral-weight 0.6" scripts/train_two_sided_model.sh
# Interrupted? Run it again: training resumes from $RUN_DIR/backup (Keras BackupAndRestore).
# Runs niced, one TensorFlow thread (~10 min of features and chains, ~8 min of training per
# 6 epochs on a quiet 2-core machine; ~9 GB of memory).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
. scripts/python_env.sh   # PY: the venv's python (scripts/setup.sh), else ${PYTHON:-python3}
export OPENBLAS_NUM_THREADS=1
CACHE="${NEXTBLOCK_CACHE:-$HOME/.cache/nextblock}"
RUN_DIR="${RUN_DIR:-runs/two-sided-net}"
EPOCHS="${EPOCHS:-6}"
TRAIN_EXAMPLES="${TRAIN_EXAMPLES:-200000}"
VERSION="${VERSION:-1.0.0}"
GUESS="${GUESS:-full}"
LEARNING_RATE="${LEARNING_RATE:-1e-3}"
read -r -a TRAIN_ARGS <<< "${TRAIN_ARGS:-}"   # more nextblock.train arguments, after the recipe's (they win)
BASE_MODEL="${BASE_MODEL:-models/nextblock-default.tflite}"
BASE_WEIGHTS="${BASE_WEIGHTS:-models/nextblock-default.weights.h5}"
mkdir -p "$RUN_DIR"
[ -f "$RUN_DIR/base.tflite" ] || cp "$BASE_MODEL" "$RUN_DIR/base.tflite"
[ -f "$RUN_DIR/base.weights.h5" ] || cp "$BASE_WEIGHTS" "$RUN_DIR/base.weights.h5"

. scripts/training_recipe.sh  # ROOTS: the data; RECIPE: the shipped model's training arguments

nice "$PY" -m nextblock.train --audio "${ROOTS[@]}" --run-dir "$RUN_DIR/train" "${RECIPE[@]}" \
  --lpc-order 384 --lpc-burg-samples 1024 --two-sided --two-sided-prior "$RUN_DIR/base.tflite" \
  --epochs "$EPOCHS" --train-examples "$TRAIN_EXAMPLES" --init-weights "$RUN_DIR/base.weights.h5" \
  --two-sided-guess "$GUESS" --chained-share 0.4 --chained-model "$RUN_DIR/base.tflite" \
  --learning-rate "$LEARNING_RATE" "${TRAIN_ARGS[@]}"

# validation recordings by category (never the test split): the network at each guess weight (the
# share of its guess blended into its output, metadata guess_weight) against the full fusion
VALIDATION="$CACHE/validation-v3"
if [ ! -f "$VALIDATION/instruments/heldout.json" ]; then
  . scripts/category_sets.sh
  write_category_set validation "$VALIDATION"
fi
for w in ${GUESS_WEIGHTS:-0 0.5}; do
  model="$RUN_DIR/nextblock-twosided-w$w.tflite"
  nice "$PY" -m nextblock.export --run-dir "$RUN_DIR/train" --output "$model" \
    --guess-weight "$w" --name nextblock-twosided --model-version "$VERSION"
  nice "$PY" -m nextblock.evaluate "$VALIDATION" --by-folder --no-visqol --quiet --lookahead-blocks 1 \
    --concealer nextblock --concealer nextblock-fusion --two-sided-model "$model" \
    --loss bernoulli:0.05 --json "$RUN_DIR/validation-w$w.json"
done
echo "ship one only if its nextblock rows beat nextblock-fusion in SNR and LSD: cp MODEL models/nextblock-twosided.tflite"

