#!/usr/bin/env bash
# Sets up everything (Debian packages, Python package, patched JackTrip when its source can be
# had) and runs the demo end to end on the built-in defaults. Extra arguments go to the demo,
# e.g. scripts/demo.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec python3 -m nextblock.demo "$@"
