"""NextBlock's JackTrip bridge (third_party/jacktrip_patch/src/NextBlockBridge.cpp) built with
AddressSanitizer and UndefinedBehaviorSanitizer, outside JackTrip (a stub AudioInterface).

Runs the bridge micro-benchmark (bench/jacktrip_patch.py's program) for a few thousand blocks:
receive + publish, replacement taken, cross-fade, miss, plus its self-checks of the hardened
paths (a NaN or 1e9 replacement is refused and logged, a valid one taken, a peer restart keeps
sequence numbers moving forward). Needs only g++ with the sanitizer runtimes.

Then the bridge on JackTrip's threads (bench/bridge_threads.cpp there) under ThreadSanitizer and
under ASan/UBSan, once per buffer strategy's hook sequence (the Regulator's, the JitterBuffer's,
the ring buffer's, as jacktrip-2.7.2-nextblock.patch calls them): the receive hook and the audio
hook on two threads, the bridge's service thread re-making the segment at the peer's block size
mid-run, and a consumer process sleeping on both futex words and posting replacements. Any
sanitizer report fails.
"""

from __future__ import annotations

import json
import os
import re
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
        [
            cxx,
            "-std=c++17",
            "-O1",
            "-g",
            "-pthread",
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all",
            f"-I{PATCH / 'bench' / 'stub'}",
            f"-I{PATCH / 'src'}",
            f"-I{REPO / 'csrc'}",
            str(PATCH / "bench" / "bridge_bench.cpp"),
            str(PATCH / "bench" / "bridge_bench_convert.cpp"),
            str(PATCH / "src" / "NextBlockBridge.cpp"),
            "-o",
            str(exe),
            "-lrt",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    return exe


@pytest.mark.parametrize("frames, channels", [(128, 2), (32, 1), (1024, 8)])
def test_bridge_under_sanitizers(bridge_bench_asan, frames, channels):
    run = subprocess.run(
        [str(bridge_bench_asan), str(frames), str(channels), "2000"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"ASAN_OPTIONS": "detect_leaks=1", "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "runtime error" not in run.stderr and "AddressSanitizer" not in run.stderr, run.stderr[-3000:]
    result = json.loads([line for line in run.stdout.splitlines() if line.startswith("{")][-1])
    assert (result["frames"], result["channels"]) == (frames, channels)
    # the log thread printed what the real-time threads recorded
    assert "refused replacement for seq 5000003" in run.stderr
    assert "jumped back" in run.stderr
    assert "now has the peer's blocks" in run.stdout, "re-sized to the peer's block size"


def _build_threads(tmp_path_factory, sanitizer: str) -> Path:
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.fail("g++ is missing (scripts/setup.sh installs it)")
    exe = tmp_path_factory.mktemp("bridge_threads") / "bridge_threads"
    extra = ["-Wno-tsan"] if sanitizer == "thread" else ["-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
    build = subprocess.run(
        [
            cxx,
            "-std=c++17",
            "-O1",
            "-g",
            "-pthread",
            f"-fsanitize={sanitizer}",
            *extra,
            f"-I{PATCH / 'bench' / 'stub'}",
            f"-I{PATCH / 'src'}",
            f"-I{REPO / 'csrc'}",
            str(PATCH / "bench" / "bridge_threads.cpp"),
            str(PATCH / "bench" / "bridge_bench_convert.cpp"),
            str(PATCH / "src" / "NextBlockBridge.cpp"),
            "-o",
            str(exe),
            "-lrt",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    return exe


@pytest.fixture(scope="module")
def bridge_threads_tsan(tmp_path_factory) -> Path:
    return _build_threads(tmp_path_factory, "thread")


@pytest.fixture(scope="module")
def bridge_threads_asan(tmp_path_factory) -> Path:
    return _build_threads(tmp_path_factory, "address,undefined")


def _run_threads(exe: Path, strategy: str) -> subprocess.CompletedProcess:
    cmd = [str(exe), strategy, "128", "2", "3000"]
    env = {"TSAN_OPTIONS": "halt_on_error=1:exitcode=66", "ASAN_OPTIONS": "detect_leaks=1", "PATH": "/usr/bin:/bin"}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    if "unexpected memory mapping" in run.stderr and shutil.which("setarch"):  # TSan vs this kernel's ASLR
        run = subprocess.run(
            ["setarch", os.uname().machine, "-R", *cmd], capture_output=True, text=True, timeout=300, env=env
        )
    return run


@pytest.mark.slow
@pytest.mark.parametrize("sanitizer", ["thread", "address,undefined"])
@pytest.mark.parametrize("strategy", ["regulator", "jitterbuffer", "ringbuffer"])
def test_bridge_threads_under_sanitizers(request, sanitizer, strategy):
    exe = request.getfixturevalue("bridge_threads_tsan" if sanitizer == "thread" else "bridge_threads_asan")
    run = _run_threads(exe, strategy)
    assert "ThreadSanitizer" not in run.stderr, run.stderr[-8000:]
    assert "AddressSanitizer" not in run.stderr and "runtime error" not in run.stderr, run.stderr[-4000:]
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    result = json.loads([line for line in run.stdout.splitlines() if line.startswith("{")][-1])
    assert result["strategy"] == strategy and result["consumer_exit"] == 0
    # the segment was re-made at the peer's block size while both hooks ran
    assert result["final_frames"] == 256 and "now has the peer's blocks" in run.stdout
    assert result["replacements_taken"] > 10, result
    attaches, blocks, wakes, missing_wakes = (
        int(v)
        for v in re.search(
            r"consumer: (\d+) attaches, (\d+) blocks, .* (\d+) wakes, (\d+) missing wakes", run.stdout
        ).groups()
    )
    # the consumer followed the re-made segment and was woken by both threads
    assert attaches >= 2 and blocks > 1000 and wakes > 100 and missing_wakes > 0, run.stdout
