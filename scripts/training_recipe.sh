# Sourced by the training scripts (train_default_model.sh, finetune_chained_model.sh), which must
# agree on the shipped model's data and recipe (a fine-tune keeps its features and architecture):
#   ROOTS   every allowed Debian package folder that holds audio (avldrums and the GM soundfonts
#           hold only SF2 files) and every music21 render program, under $CACHE
#   RECIPE  the nextblock.train arguments of the shipped model: architecture, Burg guess, rates,
#           group weights, loss, data sizes
ROOTS=()
for dir in "$CACHE"/debian/extracted/*/; do
  case "$(basename "$dir")" in avldrums.lv2-soundfont|fluid-soundfont-gm|musescore-general-soundfont) continue ;; esac
  ROOTS+=("${dir%/}")
done
for dir in "$CACHE"/rendered/music21/*/; do ROOTS+=("${dir%/}"); done

RECIPE=(--width 32 --blocks 4 --threads 1
  --lpc-order 128 --lpc-burg-samples 768
  --train-rates-hz 32000,44100,44100,48000,48000,88200,96000
  --group-weight choir=3 --group-weight strings=0.25 --group-weight organ=0.25 --group-weight piano=0.25
  --group-weight flute=0.25 --group-weight brass=0.25
  --spectral-weight 0.3 --phase-weight 0.2 --spectral-fft-sizes 32,64,128,256
  --validation-examples 8000 --max-files-per-group 400 --excerpt-seconds 8 --quiet)
