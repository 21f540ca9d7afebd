# Sourced by the training scripts: ROOTS=(every allowed Debian package folder that holds audio, and
# every music21 render program) under $CACHE. avldrums and the GM soundfonts hold only SF2 files.
ROOTS=()
for dir in "$CACHE"/debian/extracted/*/; do
  case "$(basename "$dir")" in avldrums.lv2-soundfont|fluid-soundfont-gm|musescore-general-soundfont) continue ;; esac
  ROOTS+=("${dir%/}")
done
for dir in "$CACHE"/rendered/music21/*/; do ROOTS+=("${dir%/}"); done
