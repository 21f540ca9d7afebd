#!/usr/bin/env bash
# The two-sided concealment tables (issue 28) on the held-out set by category (test-split
# recordings only, scripts/category_sets.sh; written once into $NEXTBLOCK_CACHE/heldout-v3):
# for 48 kHz x {64, 128, 256} and 44.1 kHz x 128, Bernoulli 5 % and Gilbert 0.02,0.25, one run with
# one block of look-ahead (--lookahead-blocks 1) scoring JackTrip's Burg, AR(128), the two-sided
# classical baselines (lsar, ar-blend) and NextBlock (two-sided where the next block is in hand),
# and one causal run of NextBlock (--lookahead-blocks 0, the product before look-ahead) on the same
# loss masks. JSON per run into $OUT (default runs/two-sided), then one table (tables.md).
#
# Usage: scripts/two_sided_tables.sh            (about 30 min on the 2-core CI machine class)
#   CONFIGS="48000:128" OUT=/tmp/ts scripts/two_sided_tables.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
. scripts/python_env.sh   # PY: the venv's python (scripts/setup.sh), else ${PYTHON:-python3}
export OPENBLAS_NUM_THREADS=1
CACHE="${NEXTBLOCK_CACHE:-$HOME/.cache/nextblock}"
OUT="${OUT:-runs/two-sided}"
HELDOUT="$CACHE/heldout-v3"
CONFIGS="${CONFIGS:-48000:128 48000:64 48000:256 44100:128}"
LOSSES=(--loss bernoulli:0.05 --loss gilbert:0.02,0.25)
mkdir -p "$OUT"
if [ ! -f "$HELDOUT/instruments/heldout.json" ]; then
  . scripts/category_sets.sh
  write_category_set test "$HELDOUT"
fi
for config in $CONFIGS; do
  rate=${config%%:*} frames=${config##*:}
  common=("$HELDOUT" --by-folder --no-visqol --quiet --sample-rate "$rate" --fpp "$frames" "${LOSSES[@]}")
  "$PY" -m nextblock.evaluate "${common[@]}" --lookahead-blocks 1 --concealer burg --concealer ar128 \
    --concealer lsar --concealer ar-blend --concealer nextblock --json "$OUT/lookahead1-$rate-$frames.json" >/dev/null
  "$PY" -m nextblock.evaluate "${common[@]}" --lookahead-blocks 0 --concealer nextblock \
    --json "$OUT/causal-$rate-$frames.json" >/dev/null
  echo "[two-sided] $rate Hz x $frames frames done"
done
"$PY" - "$OUT" <<'PY' > "$OUT/tables.md"
import glob, json, os, platform, sys, datetime
out = sys.argv[1]
print(f"Two-sided concealment, held-out set by category ({datetime.date.today()}, {platform.node()}, "
      f"{os.cpu_count()} cores): pooled SNR dB / LSD dB on the lost blocks and the block after each run.\n")
for path in sorted(glob.glob(f"{out}/lookahead1-*.json")):
    rows = json.load(open(path))["results"]
    causal = json.load(open(path.replace("lookahead1-", "causal-")))["results"]
    rate, frames = os.path.basename(path)[len("lookahead1-"):-5].split("-")
    for loss in dict.fromkeys(r["loss"] for r in rows):
        print(f"### {rate} Hz x {frames} frames, {loss}\n")
        names = list(dict.fromkeys(r["concealer"] for r in rows))
        print("| category | causal NextBlock | " + " | ".join(names) + " | NextBlock - causal | NextBlock - best classical two-sided |")
        print("|---" * (len(names) + 4) + "|")
        for group in dict.fromkeys(r["group"] for r in rows):
            cell = {r["concealer"]: r for r in rows if r["group"] == group and r["loss"] == loss}
            base = next(r for r in causal if r["group"] == group and r["loss"] == loss)
            fmt = lambda r: f"{r['snr_db']:.2f} / {r['lsd_db']:.2f}"
            nb = cell["nextblock"]["snr_db"]
            best = max(cell[n]["snr_db"] for n in ("lsar", "ar-blend"))
            print(f"| {group} | {fmt(base)} | " + " | ".join(fmt(cell[n]) for n in names)
                  + f" | {nb - base['snr_db']:+.2f} | {nb - best:+.2f} |")
        print()
PY
echo "[two-sided] tables: $OUT/tables.md"
