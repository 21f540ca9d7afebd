#!/usr/bin/env bash
# Prepare .device/ for scripts/train_on_gpu.sh on a lent GPU machine (which reaches no network and
# takes at most 64 MiB with the working tree):
#   .device/corpus/       the shipped model's data (scripts/training_recipe.sh: every group, choir x3,
#                         instrument renders x0.25, random rates) packed by python -m nextblock.model.corpus:
#                         ~4,000 s of training and 400 s of validation excerpts, ~50 MB of Ogg Vorbis
#   .device/whl/          keras, namex, optree, soundfile, cffi, pycparser wheels for its Python ($PY_VERSION)
#   .device/eigen.tar.xz  Eigen's headers (the C++ core's FFT; apt-get install libeigen3-dev here)
# .device/ is ignored through .git/info/exclude; name it in the device run's carry.
# Usage: scripts/pack_gpu_inputs.sh   (TRAIN_SECONDS=4000 PY_VERSION=3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
. scripts/python_env.sh   # PY: the venv's python (scripts/setup.sh), else ${PYTHON:-python3}
CACHE="${NEXTBLOCK_CACHE:-$HOME/.cache/nextblock}"
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
. scripts/training_recipe.sh
[ -d .device/corpus ] || "$PY" -m nextblock.model.corpus .device/corpus --audio "${ROOTS[@]}" \
  --group-weight choir=3 --group-weight strings=0.25 --group-weight organ=0.25 --group-weight piano=0.25 \
  --group-weight flute=0.25 --group-weight brass=0.25 --train-seconds "${TRAIN_SECONDS:-4000}" --validation-seconds 400
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "${PY_VERSION:-3.12}" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .device/whl "keras==$("$PY" -c 'import keras; print(keras.__version__)')" \
  namex optree soundfile cffi pycparser
tar -cJf .device/eigen.tar.xz -C / usr/include/eigen3 usr/share/eigen3/cmake
du -sh .device
