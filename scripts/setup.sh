#!/usr/bin/env bash
# Installs everything NextBlock needs on a fresh Debian machine (non-interactive, idempotent):
# Debian packages (JACK, JackTrip, build tools, python3-venv/-dev), a virtual environment .venv
# with the Python package, its C++ extension and its training/evaluation/test extras (never into
# the system's Python: Debian's is externally managed, PEP 668), and — when JackTrip's source can be had — the patched
# JackTrip build (~10 min on 2 cores the first time; the release tarball is found at
# ../shared/jacktrip/jacktrip-2.7.2.tar.gz beside the repository, $NEXTBLOCK_JACKTRIP_TARBALL, or
# JackTrip's source tree at $JACKTRIP_SOURCE_DIR). Run as root (or with sudo available).
#
#   scripts/setup.sh                              # everything
#   NEXTBLOCK_SKIP_APT=1 scripts/setup.sh         # Python side (and JackTrip build) only
#   NEXTBLOCK_SKIP_JACKTRIP=1 scripts/setup.sh    # everything but the patched JackTrip build (and its build deps)
#   NEXTBLOCK_EXTRAS=eval scripts/setup.sh        # only these pip extras (the demo needs none; eval adds ViSQOL)
#   PYTHON=python3.12 scripts/setup.sh            # the venv from this interpreter (default: python3 on PATH)
#   NEXTBLOCK_VENV=~/venvs/nb scripts/setup.sh    # the venv there instead of .venv
#   NEXTBLOCK_SETUP_ONLY=venv scripts/setup.sh    # stop after the venv and its build tools (no extras, no build)
#
# Afterwards `source .venv/bin/activate` puts `nextblock` and the venv's python3 on PATH; the
# scripts (test.sh, demo.sh, the benches' scripts) use the venv without it (scripts/python_env.sh).
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

# ---- the virtual environment: .venv (or $NEXTBLOCK_VENV) from ${PYTHON:-python3}
. scripts/python_env.sh
BASE="${PYTHON:-python3}"
if ! command -v "$BASE" >/dev/null; then
  echo "[setup] ERROR: no $BASE on PATH: install Debian's python3 (apt-get install python3 python3-venv python3-dev) or set PYTHON" >&2
  exit 1
fi
base_version=$("$BASE" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if nb_use_venv && [ -n "${PYTHON:-}" ] && [ "$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "$base_version" ]; then
  say "virtual environment $NB_VENV: Python $("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])') there, PYTHON=$PYTHON is $base_version: making it again"
  rm -rf "$NB_VENV"
  unset VIRTUAL_ENV
fi
if ! nb_use_venv; then
  say "virtual environment $NB_VENV from $("$BASE" -c 'import sys; print(sys.executable)') (Python $base_version)"
  if [ -e "$NB_VENV" ] && [ ! -f "$NB_VENV/pyvenv.cfg" ] && [ -n "$(ls -A "$NB_VENV")" ]; then
    echo "[setup] ERROR: $NB_VENV exists and is not a virtual environment: move it away or set NEXTBLOCK_VENV" >&2
    exit 1
  fi
  rm -rf "$NB_VENV"   # a broken one (its interpreter gone)
  if ! "$BASE" -m venv "$NB_VENV"; then
    echo "[setup] ERROR: $BASE cannot make a virtual environment: on Debian/Ubuntu apt-get install python3-venv" \
         "(scripts/setup.sh does, without NEXTBLOCK_SKIP_APT)" >&2
    exit 1
  fi
  nb_use_venv
fi
# every pip below installs into the venv, never into a system Python
if ! "$PY" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
  echo "[setup] ERROR: $PY is not a virtual environment's interpreter; refusing to pip install into it" >&2
  exit 1
fi
"$PY" -m pip install -q --upgrade pip >/dev/null
# the build requirements in the environment too: dev_build.sh's CMake finds pybind11 through it,
# and the console-script test installs the package with --no-build-isolation
"$PY" -m pip install -q "pybind11>=2.12" "scikit-build-core>=0.10"
if [ "${NEXTBLOCK_SETUP_ONLY:-}" = venv ]; then
  say "done (NEXTBLOCK_SETUP_ONLY=venv: the venv $NB_VENV and its build tools only; activate it: source $NB_VENV/bin/activate)"
  exit 0
fi

# NEXTBLOCK_EXTRAS: the optional parts (default all: training needs TensorFlow, the tests need all);
# building the patched JackTrip adds [jacktrip] (PyYAML, Jinja2 and meson: JackTrip's meson build runs a
# Python helper with the python3 first on PATH, the venv's)
extras="${NEXTBLOCK_EXTRAS-train,eval,test,dataset-render}"
if [ -z "${NEXTBLOCK_SKIP_JACKTRIP:-}" ]; then extras="${extras:+$extras,}jacktrip"; fi
say "Python package nextblock (C++ extension via scikit-build-core) into $NB_VENV with extras [$extras]"
"$PY" -m pip install -q -e ".${extras:+[$extras]}"
"$PY" -m pip install -q --no-deps "tinysoundfont>=0.3"   # its pyaudio dependency is only for live playback
# The same extension in place too (python/nextblock/_core*.so, git-ignored): child processes that
# the tests, the demo and the benches start with PYTHONPATH=python then import this very tree.
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
say "done: activate the environment with  source ${NB_VENV#$PWD/}/bin/activate  (then nextblock --help)"
