#!/usr/bin/env bash
# One-step build of JackTrip with NextBlock's patch (wrapper around the CMake project here).
#   third_party/jacktrip_patch/build.sh [--build-dir DIR] [--source JACKTRIP_SRC] [--stock] [-j N]
# Default build dir: <repo>/build/jacktrip. Result: DIR/bin/jacktrip (and DIR/bin/jacktrip-stock
# with --stock). Source lookup and checks: see CMakeLists.txt.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$repo/build/jacktrip"
args=()
jobs=2
while [ $# -gt 0 ]; do
    case "$1" in
        --build-dir) build="$2"; shift 2 ;;
        --source) args+=("-DJACKTRIP_SOURCE_DIR=$2"); shift 2 ;;
        --stock) args+=("-DNEXTBLOCK_BUILD_STOCK=ON"); shift ;;
        -j) jobs="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
cmake -S "$here" -B "$build" -DNEXTBLOCK_JOBS="$jobs" ${args[@]+"${args[@]}"}
cmake --build "$build"
echo "built: $build/bin/jacktrip"
