"""NextBlock's JackTrip bridge (third_party/jacktrip_patch/src/NextBlockBridge.cpp) built with
AddressSanitizer and UndefinedBehaviorSanitizer, outside JackTrip (a stub AudioInterface).

Runs the bridge micro-benchmark (bench/jacktrip_patch.py's program) for a few thousand blocks:
receive + publish, replacement taken, cross-fade, miss, plus its self-checks of the hardened
paths (a NaN or 1e9 replacement is refused and logged, a valid one taken, a peer restart keeps
sequence numbers moving forward). Needs only g++ with the sanitizer runtimes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PATCH = REPO / "third_party" / "jacktrip_patch"


@pytest.fixture(scope="module")
def bridge_bench_asan(tmp_path_factory) -> Path:
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.fail("g++ is missing (scripts/setup.sh installs it)")
    exe = tmp_path_factory.mktemp("bridge") / "bridge_bench_asan"
    build = subprocess.run(
        [cxx, "-std=c++17", "-O1", "-g", "-pthread", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
         "-fno-sanitize-recover=all", f"-I{PATCH / 'bench' / 'stub'}", f"-I{PATCH / 'src'}", f"-I{REPO / 'csrc'}",
         str(PATCH / "bench" / "bridge_bench.cpp"), str(PATCH / "bench" / "bridge_bench_convert.cpp"),
         str(PATCH / "src" / "NextBlockBridge.cpp"), "-o", str(exe), "-lrt"],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    return exe


@pytest.mark.parametrize("frames, channels", [(128, 2), (32, 1), (1024, 8)])
def test_bridge_under_sanitizers(bridge_bench_asan, frames, channels):
    run = subprocess.run([str(bridge_bench_asan), str(frames), str(channels), "2000"], capture_output=True, text=True,
                         timeout=300, env={"ASAN_OPTIONS": "detect_leaks=1", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "runtime error" not in run.stderr and "AddressSanitizer" not in run.stderr, run.stderr[-3000:]
    result = json.loads([line for line in run.stdout.splitlines() if line.startswith("{")][-1])
    assert (result["frames"], result["channels"]) == (frames, channels)
    # the log thread printed what the real-time threads recorded
    assert "refused replacement for seq 5000003" in run.stderr
    assert "jumped back" in run.stderr
    assert "now has the peer's blocks" in run.stdout, "re-sized to the peer's block size"
