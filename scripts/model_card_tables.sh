#!/usr/bin/env bash
# Regenerates every number of models/MODEL_CARD.md into $OUT (default runs/model-card):
#
#   1. the held-out set by category (test-split recordings only, never trained on), once:
#      $NEXTBLOCK_CACHE/heldout-v3/{speech,singing,music,instruments}/ and a ViSQOL subset of two
#      files per category in heldout-v3-visqol/
#   2. python -m nextblock.evaluate --by-folder at 48 kHz x {64, 128, 256} and 44.1 kHz x 128, 5 %
#      Bernoulli and Gilbert 0.02,0.25 bursts, every concealer in ONE run per configuration (same
#      loss masks): zeros, JackTrip's Burg, the AR(128) baseline, NextBlock ($MODEL) and its network
#      alone (nextblock-net: without the long-term guess)
#      -> eval-RATE-FRAMES.json; the float16 variant at 48 kHz x 128 -> fp16-48000-128.json
#   3. ViSQOL (audio mode) on the subset at 48 kHz x 128 -> visqol-48000-128.json
#   4. bench/model_latency.py --all-frames (every block size against its budget) -> latency.txt
#   5. the model's metadata (parameters, MACs, training) -> metadata.json
#   6. tables.md: python -m nextblock.evaluation.tables over 2 and 3 (scores by category and the
#      issue's targets), with the date and the machine it ran on
#
# Usage: scripts/model_card_tables.sh            (about 25 min on the 2-core CI machine class)
#   MODEL=models/other.tflite OUT=runs/other scripts/model_card_tables.sh
#   SKIP_VISQOL=1 / SKIP_LATENCY=1 skip steps 3 / 4; ONLY_LATENCY=1 reruns step 4 (on a quieter
#   machine) and 6 on the results already in $OUT.
#   PREVIOUS=FILE also scores an earlier model where it serves (48 kHz x 128), e.g. 2.0.0:
#     git show a7817b0:models/nextblock-default.tflite > /tmp/v2.tflite; PREVIOUS=/tmp/v2.tflite ...
#   PREVIOUS_EVERY=1 scores $PREVIOUS at every configuration instead (a model from 3.0 on serves them all),
#     e.g. the 3.1.0 card against 3.0.0:
#     git show 56dae76:models/nextblock-default.tflite > /tmp/v3.tflite; PREVIOUS=/tmp/v3.tflite PREVIOUS_EVERY=1 ...
#   ALSO="LABEL=FILE" also scores another model at 48 kHz x 128 (an ablation), e.g. the loss A/B:
#     ALSO="3.0.0 earlier loss=runs/cand/burgm.tflite" (train it with the recipe minus
#     --spectral-weight/--phase-weight/--spectral-fft-sizes, export with --guess-weight 0.25)
#   ONLY_LATENCY=1 SKIP_LATENCY=1 only rewrites tables.md from the results in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
. scripts/python_env.sh   # PY: the venv's python (scripts/setup.sh), else ${PYTHON:-python3}
export OPENBLAS_NUM_THREADS=1
CACHE="${NEXTBLOCK_CACHE:-$HOME/.cache/nextblock}"
OUT="${OUT:-runs/model-card}"
MODEL="${MODEL:-models/nextblock-default.tflite}"
FP16="${FP16:-${MODEL%.tflite}-fp16.tflite}"
HELDOUT="$CACHE/heldout-v3"
SUBSET="$CACHE/heldout-v3-visqol"
LOSSES=(--loss bernoulli:0.05 --loss gilbert:0.02,0.25)
mkdir -p "$OUT"

if [ -z "${ONLY_LATENCY:-}" ]; then
# 1. held-out set by category (skipped when present)
. scripts/category_sets.sh
if [ ! -f "$HELDOUT/instruments/heldout.json" ]; then
  write_category_set test "$HELDOUT"
fi
for pair in speech/fillets-ng-data-0 speech/klettres-data-0 singing/choir-0 singing/choir-1 music/colobot-common-sounds-0 \
            music/wesnoth-1.16-music-0 instruments/hydrogen-drumkits-0 instruments/piano-0; do
  mkdir -p "$SUBSET/$(dirname "$pair")"
  ln -sfn "$HELDOUT/$pair.wav" "$SUBSET/$pair.wav"
done

# 2. every configuration, every concealer in one run
for cfg in 48000:64 48000:128 48000:256 44100:128; do
  rate=${cfg%:*} fpp=${cfg#*:}
  nice "$PY" -m nextblock.evaluate "$HELDOUT" --by-folder --sample-rate "$rate" --fpp "$fpp" "${LOSSES[@]}" --no-visqol --quiet \
    --concealer zeros --concealer burg --concealer ar128 --concealer nextblock --concealer nextblock-net --model "$MODEL" \
    --json "$OUT/eval-$rate-$fpp.json" > "$OUT/eval-$rate-$fpp.md"
  if [ -n "${PREVIOUS:-}" ] && [ -n "${PREVIOUS_EVERY:-}" ]; then
    nice "$PY" -m nextblock.evaluate "$HELDOUT" --by-folder --sample-rate "$rate" --fpp "$fpp" "${LOSSES[@]}" --no-visqol \
      --quiet --concealer nextblock --model "$PREVIOUS" --json "$OUT/previous-$rate-$fpp.json" > "$OUT/previous-$rate-$fpp.md"
  fi
done
if [ -f "$FP16" ]; then
  nice "$PY" -m nextblock.evaluate "$HELDOUT" --by-folder "${LOSSES[@]}" --no-visqol --quiet --concealer nextblock \
    --model "$FP16" --json "$OUT/fp16-48000-128.json" > "$OUT/fp16-48000-128.md"
fi

if [ -n "${PREVIOUS:-}" ] && [ -z "${PREVIOUS_EVERY:-}" ]; then
  nice "$PY" -m nextblock.evaluate "$HELDOUT" --by-folder "${LOSSES[@]}" --no-visqol --quiet --concealer nextblock \
    --model "$PREVIOUS" --json "$OUT/previous-48000-128.json" > "$OUT/previous-48000-128.md"
fi

if [ -n "${ALSO:-}" ]; then
  nice "$PY" -m nextblock.evaluate "$HELDOUT" --by-folder "${LOSSES[@]}" --no-visqol --quiet --concealer nextblock \
    --model "${ALSO#*=}" --json "$OUT/also-48000-128.json" > "$OUT/also-48000-128.md"
fi

# 3. ViSQOL on the subset
if [ -z "${SKIP_VISQOL:-}" ]; then
  nice "$PY" -m nextblock.evaluate "$SUBSET" --by-folder "${LOSSES[@]}" --quiet \
    --concealer burg --concealer ar128 --concealer nextblock --concealer nextblock-net --model "$MODEL" \
    --json "$OUT/visqol-48000-128.json" > "$OUT/visqol-48000-128.md"
fi

fi  # ONLY_LATENCY

# 4. latency per block size (rate-independent: the model works on samples)
if [ -z "${SKIP_LATENCY:-}" ]; then
  LATENCY_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "$LATENCY_LOAD" > "$OUT/latency-load.txt"
  "$PY" bench/model_latency.py --model "$MODEL" --all-frames --iterations 5000 > "$OUT/latency.txt"
fi

# 5. model facts
"$PY" -m nextblock.export --show "$MODEL" > "$OUT/metadata.json"

# 6. the tables, dated, with the machine
{
  echo "Generated $(date -u +%Y-%m-%dT%H:%MZ) by scripts/model_card_tables.sh on $(nproc) cores of" \
       "$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/Mem:/{print $2}') GiB;" \
       "model $MODEL (sha256 $(sha256sum "$MODEL" | cut -c1-16))."
  if [ -f "$OUT/latency.txt" ]; then
    echo "Latency measured at load average ${LATENCY_LOAD:-$(cat "$OUT/latency-load.txt" 2>/dev/null)}."
  fi
  echo
  echo "## Held-out scores by category (all concealers in one run per configuration)"
  echo
  PREVIOUS_LABEL="nextblock $("$PY" -c "import sys; from nextblock.model.metadata import read_metadata; print(read_metadata(sys.argv[1])['model_version'])" "${PREVIOUS:-$MODEL}") (previous)"
  PREVIOUS_ARGS=()
  if [ -n "${PREVIOUS:-}" ]; then
    for f in "$OUT"/previous-*.json; do PREVIOUS_ARGS+=("$PREVIOUS_LABEL=$f"); done
  fi
  "$PY" -m nextblock.evaluation.tables "$OUT"/eval-*.json \
    ${PREVIOUS_ARGS[@]+"${PREVIOUS_ARGS[@]}"} ${ALSO:+"${ALSO%%=*}=$OUT/also-48000-128.json"}
  if [ -f "$OUT/fp16-48000-128.json" ]; then
    echo "## float16 weights, 48 kHz x 128"
    echo
    "$PY" -m nextblock.evaluation.tables --no-targets "nextblock fp16=$OUT/fp16-48000-128.json"
  fi
  if [ -f "$OUT/visqol-48000-128.json" ]; then
    echo "## ViSQOL subset (2 files per category), 48 kHz x 128"
    echo
    "$PY" -m nextblock.evaluation.tables "$OUT/visqol-48000-128.json"
  fi
  if [ -f "$OUT/latency.txt" ]; then
    echo "## Latency (bench/model_latency.py --all-frames)"
    echo
    echo '```'
    head -n -1 "$OUT/latency.txt"
    echo '```'
  fi
} > "$OUT/tables.md"
echo "wrote $OUT/tables.md"
