# Sourced by scripts/model_card_tables.sh (the held-out set, split "test") and
# scripts/finetune_chained_model.sh (the validation set, split "validation"): one definition of the
# evaluation sets by category, so both are cut from the same folders in the same way.
#
#   write_category_set SPLIT OUT   excerpts of SPLIT recordings into OUT/{speech,singing,music,instruments}/
#                                  (python -m nextblock.model.heldout; needs $CACHE)
write_category_set() {
  local split=$1 out=$2
  local E="$CACHE/debian/extracted" R="$CACHE/rendered/music21"
  local H=("${PY:-python3}" -m nextblock.model.heldout --split "$split")
  "${H[@]}" --out "$out/speech" --per-group 2 \
    --audio "$E/fillets-ng-data" "$E/fillets-ng-data-cs" "$E/fillets-ng-data-nl" "$E/klettres-data"
  "${H[@]}" --out "$out/singing" --per-group 6 --audio "$R/choir"
  "${H[@]}" --out "$out/music" --per-group 1 --audio "$E/ufoai-music" "$E/warzone2100-music" \
    "$E/wesnoth-1.16-music" "$E/nexuiz-music" "$E/colobot-common-sounds" "$E/singularity-music" "$E/freedroidrpg-data" \
    "$E/openclonk-data" "$E/planetblupi-music-ogg" "$E/supertuxkart-data"
  "${H[@]}" --out "$out/instruments" --per-group 2 --audio "$E/hydrogen-drumkits" \
    "$E/sonic-pi-samples" "$R/strings" "$R/organ" "$R/piano" "$R/flute" "$R/brass"
}
