#!/usr/bin/env bash
# Train NextBlock networks on a lent GPU machine (no TensorFlow, no network there) with
# python -m nextblock.train_jax, from what scripts/pack_gpu_inputs.sh put into .device/:
#   .device/corpus/       the packed training corpus (nextblock.model.corpus, ~50 MB of Ogg Vorbis)
#   .device/whl/          keras, namex, optree, soundfile, cffi, pycparser wheels for its Python
#   .device/eigen.tar.xz  Eigen's headers (the C++ core's FFT), unpacked into / there
# It builds the C++ core there, trains for $MINUTES (all runs together; data and compilation come
# on top: ~1 min, plus ~3 min for chains of 300,000 windows), and leaves $OUT/runs.tgz (one folder per run: config.json, best/last weights,
# history.csv, for `python -m nextblock.export --run-dir`) and $OUT/train.log.
# Usage (device run, carry .device):  MINUTES=4.5 bash scripts/train_on_gpu.sh --run a=32x4 --run b=48x6 ...
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-out/gpu}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 KERAS_BACKEND=jax OPENBLAS_NUM_THREADS=1 TF_CPP_MIN_LOG_LEVEL=2
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .device/whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/python"
[ -d /usr/include/eigen3 ] || tar -xJf .device/eigen.tar.xz -C /
cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" \
  -DPython_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build build/gpu >/dev/null
cp build/gpu/_core*.so python/nextblock/
nvidia-smi -L || true
# a hard stop ($STOP_S): best weights, config and history are on disk as training goes
status=0
timeout "${STOP_S:-3600}" python3 -m nextblock.train_jax --corpus .device/corpus --out /tmp/runs --minutes "${MINUTES:-4.5}" \
  "$@" > >(tee "$OUT/train.log") 2>&1 || status=$?
tar -czf "$OUT/runs.tgz" -C /tmp runs
exit "$status"
