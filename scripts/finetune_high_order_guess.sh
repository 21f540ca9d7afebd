#!/usr/bin/env bash
# Fine-tune the shipped model onto a higher-order Burg guess: 3.2.0 -> 3.3.0 (AR(256)) -> 3.4.0 (AR(384)).
#
# The network corrects a linear-prediction guess whose spectrum is two of its input channels
# (nextblock.features.spectral). Up to 3.2.0 that guess was Burg's AR(128) fitted to the last 768
# samples; the one-shot SNR of the guess alone on the validation recordings (first 128 samples
# after 1,876 random contexts, pooled) rises with the order: AR(128) on 768 samples 2.82 dB,
# AR(256) on 1024 3.88, AR(320) 4.73, AR(384) 5.12, AR(448) 5.37 (docs/tried/model.md). 3.3.0 took
# AR(256) on the last 1024 samples (ORDER=256 from the 3.2.0 weights); 3.4.0 takes AR($ORDER) (the
# default, 384) from the 3.3.0 weights, once the fit's later orders ran in float32 and made order 384
# about as cheap as order 256 had been (csrc/nextblock/lpc.hpp). One round on the recipe's data
# (scripts/training_recipe.sh; the later --lpc-* flags override the recipe's), 50 % chained contexts
# made by the base model, Adam 3e-4 cosine, 6 epochs; guess_weight 0. About 10 min on the 2-core CPU
# (niced, one TensorFlow thread). The network, features layout and loss are unchanged, so the base
# weights are the starting point.
#
# Usage: scripts/finetune_high_order_guess.sh    (then scripts/model_card_tables.sh)
#   ORDER=448 BURG_SAMPLES=1024 VERSION=3.5.0 RUN_DIR=runs/high-order scripts/finetune_high_order_guess.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
. scripts/python_env.sh   # PY: the venv's python (scripts/setup.sh), else ${PYTHON:-python3}
export OPENBLAS_NUM_THREADS=1
CACHE="${NEXTBLOCK_CACHE:-$HOME/.cache/nextblock}"
RUN_DIR="${RUN_DIR:-runs/high-order}"
ORDER="${ORDER:-384}"
BURG_SAMPLES="${BURG_SAMPLES:-1024}"
BASE_MODEL="${BASE_MODEL:-models/nextblock-default.tflite}"
BASE_WEIGHTS="${BASE_WEIGHTS:-models/nextblock-default.weights.h5}"
VERSION="${VERSION:-3.4.0}"
mkdir -p "$RUN_DIR"
cp "$BASE_MODEL" "$RUN_DIR/base.tflite"
cp "$BASE_WEIGHTS" "$RUN_DIR/base.weights.h5"

. scripts/training_recipe.sh  # ROOTS: the data; RECIPE: the shipped model's training arguments

nice "$PY" -m nextblock.train --audio "${ROOTS[@]}" --run-dir "$RUN_DIR/round1" "${RECIPE[@]}" \
  --lpc-order "$ORDER" --lpc-burg-samples "$BURG_SAMPLES" \
  --epochs 6 --train-examples 200000 --init-weights "$RUN_DIR/base.weights.h5" \
  --chained-share 0.5 --chained-model "$RUN_DIR/base.tflite" --learning-rate 3e-4
nice "$PY" -m nextblock.export --run-dir "$RUN_DIR/round1" --output models/nextblock-default.tflite --float16 \
  --guess-weight 0 --name nextblock-default --model-version "$VERSION"
cp "$RUN_DIR/round1/best.weights.h5" models/nextblock-default.weights.h5
