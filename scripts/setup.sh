#!/usr/bin/env bash
# Installs everything NextBlock needs on a fresh Debian machine (non-interactive, idempotent):
# Debian packages (JACK, JackTrip, build tools), the Python package with its C++ extension and
# its training/evaluation/test extras, and — when JackTrip's source can be had — the patched
# JackTrip build (~10 min on 2 cores the first time; the release tarball is found at
# ../shared/jacktrip/jacktrip-2.7.2.tar.gz beside the repository, $NEXTBLOCK_JACKTRIP_TARBALL, or
# JackTrip's source tree at $JACKTRIP_SOURCE_DIR). Run as root (or with sudo available).
#
#   scripts/setup.sh                              # everything
#   NEXTBLOCK_SKIP_APT=1 scripts/setup.sh         # Python side (and JackTrip build) only
#   NEXTBLOCK_SKIP_JACKTRIP=1 scripts/setup.sh    # everything but the patched JackTrip build (and its build deps)
#   NEXTBLOCK_EXTRAS=eval scripts/setup.sh        # only these pip extras (the demo needs none; eval adds ViSQOL)
#
# With CI=true (.ci/run) a patched JackTrip that cannot be had stops setup with an error: the
# tests would otherwise fail on it later, far from the cause.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if [ -z "${NEXTBLOCK_SKIP_APT:-}" ]; then
  say "Debian packages (JACK, JackTrip, build tools)"
  echo "jackd2 jackd/tweak_rt_limits boolean false" | $SUDO debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # the packages after the "# building the patched JackTrip" line are needed only to build it
  if [ -n "${NEXTBLOCK_SKIP_JACKTRIP:-}" ]; then
    pkgs=$(sed '/^# building the patched JackTrip/,$d' scripts/apt-packages.txt | grep -v '^#')
  else
    pkgs=$(grep -v '^#' scripts/apt-packages.txt)
  fi
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi

PY="${PYTHON:-python3}"
say "Python package nextblock (C++ extension via scikit-build-core) with extras [${NEXTBLOCK_EXTRAS:-train,eval,test,dataset-render}]"
"$PY" -m pip install -q --upgrade pip >/dev/null
# NEXTBLOCK_EXTRAS: the optional parts (default all: training needs TensorFlow, the tests need all)
"$PY" -m pip install -q -e ".[${NEXTBLOCK_EXTRAS:-train,eval,test,dataset-render}]"
"$PY" -m pip install -q --no-deps "tinysoundfont>=0.3"   # its pyaudio dependency is only for live playback
# The same extension in place too (python/nextblock/_core*.so, git-ignored): child processes that
# the tests, the demo and the benches start with PYTHONPATH=python then import this very tree.
# the build requirements in the environment too: dev_build.sh's CMake finds pybind11 through it,
# and the console-script test installs the package with --no-build-isolation
"$PY" -m pip install -q "pybind11>=2.12" "scikit-build-core>=0.10"
scripts/dev_build.sh >/dev/null

if [ -n "${NEXTBLOCK_SKIP_JACKTRIP:-}" ]; then
  say "patched JackTrip: not built now (NEXTBLOCK_SKIP_JACKTRIP); later: nextblock build-jacktrip"
elif [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ]; then
  say "Patched JackTrip 2.7.2 (CI: required; ~10 min on 2 cores the first time)"
  if ! "$PY" -m nextblock.jackio.patched_build --strict; then
    echo "[setup] ERROR: CI needs the patched JackTrip and it could not be had (see above)." >&2
    exit 1
  fi
else
  say "Patched JackTrip 2.7.2 (~10 min on 2 cores the first time; needs JackTrip's release tarball or source)"
  "$PY" -m nextblock.jackio.patched_build || say "patched JackTrip not built (see above): the demo runs NextBlock on the stand-in producer"
fi
say "done"
