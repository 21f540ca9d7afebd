#!/usr/bin/env bash
# Installs everything NextBlock needs on a fresh Debian machine (non-interactive, idempotent):
# Debian packages (JACK, JackTrip, build tools), the Python package with its C++ extension and
# its training/evaluation/test extras, and — when JackTrip's source can be had — the patched
# JackTrip build. Run as root (or with sudo available).
#
#   scripts/setup.sh            # everything
#   NEXTBLOCK_SKIP_APT=1 scripts/setup.sh   # Python side only
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
  # shellcheck disable=SC2046
  $SUDO apt-get install -y -qq --no-install-recommends $(grep -v '^#' scripts/apt-packages.txt | tr '\n' ' ') >/dev/null
fi

PY="${PYTHON:-python3}"
say "Python package nextblock (C++ extension via scikit-build-core) with extras"
"$PY" -m pip install -q --upgrade pip >/dev/null
"$PY" -m pip install -q -e ".[train,eval,test,dataset-render]"
"$PY" -m pip install -q --no-deps "tinysoundfont>=0.3"   # its pyaudio dependency is only for live playback
# The same extension in place too (python/nextblock/_core*.so, git-ignored): child processes that
# the tests, the demo and the benches start with PYTHONPATH=python then import this very tree.
scripts/dev_build.sh >/dev/null

say "Patched JackTrip 2.7.2 (needs JackTrip's source: JACKTRIP_SOURCE_DIR, the cache, or the release tarball)"
"$PY" -m nextblock.jackio.patched_build || say "patched JackTrip not built (see above): the demo and tests use stock JackTrip"
say "done"
