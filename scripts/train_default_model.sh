#!/usr/bin/env bash
# Train, export and benchmark the shipped default NextBlock model (models/nextblock-default.tflite).
#
# Steps (each skipped when its output already exists):
#   1. fetch + unpack every allowed Debian package (DEVELOPERS.md) into $NEXTBLOCK_CACHE/debian
#   2. render 72 music21 corpus pieces (48 Bach chorales, 24 Palestrina movements; choir, strings,
#      organ, piano, flute, brass through fluid-soundfont-gm) into $NEXTBLOCK_CACHE/rendered/music21
#   3. write the held-out evaluation excerpts (test-split recordings only) to $NEXTBLOCK_CACHE/heldout-all
#      (2 per package) and heldout-renders (2 from the renders)
#   4. python -m nextblock.train   (resumes if RUN_DIR has a backup)
#   5. python -m nextblock.export  -> models/nextblock-default.tflite (+ -fp16 variant)
#   6. bench/model_latency.py and python -m nextblock.evaluate on the held-out excerpts
#
# Usage:  scripts/train_default_model.sh [extra nextblock.train arguments]
#   RUN_DIR=runs/default EPOCHS=14 TRAIN_EXAMPLES=250000 scripts/train_default_model.sh
# Runs niced: about 30 min on 2 cores (training ~17 min, one TensorFlow thread as the shipped run;
# ~13 GB of memory at 250 K windows: run one training at a time). The shipped run: docs/notes/model.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
export OPENBLAS_NUM_THREADS=1
CACHE="${NEXTBLOCK_CACHE:-$HOME/.cache/nextblock}"
RUN_DIR="${RUN_DIR:-runs/default}"
EPOCHS="${EPOCHS:-14}"
TRAIN_EXAMPLES="${TRAIN_EXAMPLES:-250000}"

python -m nextblock.dataset fetch --debian --quiet
python - <<'PY'
from nextblock.dataset.cache import cache_root
from nextblock.dataset.render import corpus_sample, render_pieces

by_program = {}
for piece, program in corpus_sample():
    by_program.setdefault(program, []).append(piece)
for program, pieces in by_program.items():
    results = render_pieces(cache_root(), pieces, program=program, show_progress=False)
    print(f"music21 {program}: " + ", ".join(f"{s} {sum(r.status == s for r in results)}" for s in ("rendered", "cached", "failed")))
PY

# every package with audio (avldrums and the GM soundfont hold only SF2 files) + the renders as one group
ROOTS=()
for dir in "$CACHE"/debian/extracted/*/; do
  case "$(basename "$dir")" in avldrums.lv2-soundfont|fluid-soundfont-gm|musescore-general-soundfont) continue ;; esac
  ROOTS+=("${dir%/}")
done
ROOTS+=("$CACHE/rendered/music21")

[ -f "$CACHE/heldout-all/heldout.json" ] || nice python -m nextblock.model.heldout --out "$CACHE/heldout-all" --per-group 2
[ -f "$CACHE/heldout-renders/heldout.json" ] || \
  nice python -m nextblock.model.heldout --audio "$CACHE/rendered/music21" --out "$CACHE/heldout-renders" --per-group 2

nice python -m nextblock.train --audio "${ROOTS[@]}" --run-dir "$RUN_DIR" --width 32 --blocks 4 --lpc-order 32 --threads 1 \
  --epochs "$EPOCHS" --train-examples "$TRAIN_EXAMPLES" --validation-examples 8000 \
  --max-files-per-group 400 --excerpt-seconds 8 "$@"
nice python -m nextblock.export --run-dir "$RUN_DIR" --output models/nextblock-default.tflite --float16
cp "$RUN_DIR/best.weights.h5" models/nextblock-default.weights.h5   # the online learner starts from these
python bench/model_latency.py --model models/nextblock-default.tflite
nice python -m nextblock.evaluate "$CACHE/heldout-all" "$CACHE/heldout-renders" --loss bernoulli:0.05 --loss gilbert:0.02,0.25 \
  --concealer zeros --concealer repeat --concealer burg --concealer nextblock \
  --model models/nextblock-default.tflite --no-visqol --report "$RUN_DIR/evaluation.md" --json "$RUN_DIR/evaluation.json"
