#!/usr/bin/env bash
# Fine-tune the shipped model on chained (burst) contexts: nextblock-default 3.0.0 -> 3.1.0 -> 3.2.0.
#
# During a burst of lost blocks every lost block is predicted afresh from what was played, so the
# context ends with the model's own earlier predictions; 3.0.0 never saw such contexts in training.
# Three rounds, each starting from the previous round's weights (round 1: the 3.0.0 weights,
# $BASE_WEIGHTS) on the recipe's data (scripts/train_default_model.sh: same folders, rates, group
# weights and loss), with a share of the contexts ending in chained predictions
# (nextblock.model.chained: 64/128/256-sample blocks, burst lengths geometric as Gilbert's with
# 1/0.25 = 4 blocks on average, at most 768 samples) made by the model of the round before:
#   round 1: chains by 3.0.0 ($BASE_MODEL), 40 % of the windows, Adam 5e-4 cosine, 6 epochs
#   round 2: chains by round 1,             40 %,                  3e-4,          6 epochs
#   round 3: chains by round 2,             50 %,                  3e-4,          6 epochs  -> 3.1.0
#   round 4: chains by round 3 (3.1.0),     50 %,                  3e-4,          6 epochs  -> 3.2.0
#            (the shipped round 4 was the first to see the music inside ufoai-music's and
#            nexuiz-music's .pk3 archives, unpacked by `nextblock dataset fetch --debian`; a rerun
#            of this script gives every round that data)
# Then the guess_weight is chosen with the harness on a validation set cut like the held-out one
# from validation-split recordings ($CACHE/validation-v3, written here once):
# python -m nextblock.model.guess_blend (3.2.0: 0, i.e. the network's output as it is).
# The windows are read 768 samples longer than the recipe's (their own cache file, ~1.6 GB).
# About 8-9 min per round on the 2-core CPU, one TensorFlow thread, niced (~5 GB of memory).
#
# Usage: scripts/finetune_chained_model.sh     (RUN_DIR=runs/chained; then scripts/model_card_tables.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
. scripts/python_env.sh   # PY: the venv's python (scripts/setup.sh), else ${PYTHON:-python3}
export OPENBLAS_NUM_THREADS=1
CACHE="${NEXTBLOCK_CACHE:-$HOME/.cache/nextblock}"
RUN_DIR="${RUN_DIR:-runs/chained}"
BASE_MODEL="${BASE_MODEL:-models/nextblock-default.tflite}"
BASE_WEIGHTS="${BASE_WEIGHTS:-models/nextblock-default.weights.h5}"
VERSION="${VERSION:-3.2.0}"
mkdir -p "$RUN_DIR"
cp "$BASE_MODEL" "$RUN_DIR/round0.tflite"
cp "$BASE_WEIGHTS" "$RUN_DIR/round0.weights.h5"

. scripts/training_recipe.sh  # ROOTS: the data; RECIPE: the shipped model's training arguments

round() {  # round N SHARE LEARNING_RATE
  local n=$1 share=$2 lr=$3 prev=$(($1 - 1))
  local init="$RUN_DIR/round$prev.weights.h5"
  [ "$prev" -gt 0 ] && init="$RUN_DIR/round$prev/best.weights.h5"
  nice "$PY" -m nextblock.train --audio "${ROOTS[@]}" --run-dir "$RUN_DIR/round$n" "${RECIPE[@]}" \
    --epochs 6 --train-examples 200000 \
    --init-weights "$init" --chained-share "$share" --chained-model "$RUN_DIR/round$prev.tflite" --learning-rate "$lr"
  nice "$PY" -m nextblock.export --run-dir "$RUN_DIR/round$n" --output "$RUN_DIR/round$n.tflite" --guess-weight 0.25 \
    --name nextblock-default --model-version "$VERSION"
}
round 1 0.4 5e-4
round 2 0.4 3e-4
round 3 0.5 3e-4
round 4 0.5 3e-4

# the guess_weight, on a validation set (validation-split recordings, categories as the held-out set)
V="$CACHE/validation-v3"
. scripts/category_sets.sh
if [ ! -f "$V/instruments/heldout.json" ]; then
  write_category_set validation "$V"
fi
"$PY" -m nextblock.model.guess_blend "$RUN_DIR/round4.tflite" --validation "$V" --json "$RUN_DIR/guess_blend.json"
WEIGHT="$("$PY" -c "import json, sys; print(json.load(open(sys.argv[1]))['best_guess_weight'])" "$RUN_DIR/guess_blend.json")"
nice "$PY" -m nextblock.export --run-dir "$RUN_DIR/round4" --output models/nextblock-default.tflite --float16 \
  --guess-weight "$WEIGHT" --name nextblock-default --model-version "$VERSION"
cp "$RUN_DIR/round4/best.weights.h5" models/nextblock-default.weights.h5
