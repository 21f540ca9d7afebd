"""Multi-process stress of the shared-memory protocol.

* Python: a producer process at the real block rate (375 blocks/s: 128 frames at 48 kHz) with
  random gaps in the sequence numbers; the consumer checks that no block or event is lost,
  duplicated or torn, and that every replacement it posted in time arrives intact.
* C++ under AddressSanitizer + UBSan: a producer lapping the ring as fast as it can while the
  consumer reads and hammers the replacement slots (csrc/tests/shm_stress.cpp).
* C++ under ThreadSanitizer (and ASan/UBSan): the producer on two threads as in JackTrip (receive:
  publish_block; audio: take_replacement, post_event, note_playout under a lock, flush_wakes after
  it) against a consumer process sleeping on both futex words, so that both threads wake it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from nextblock.capture import Consumer, EventKind, Outcome, Producer

REPO = Path(__file__).resolve().parents[1]
FRAMES, CHANNELS, RATE_HZ = 128, 2, 48000
BLOCK_PERIOD_S = FRAMES / RATE_HZ


def block_of(seq: int) -> np.ndarray:
    f = np.arange(FRAMES, dtype=np.float32)[:, None] / 1024.0
    c = np.arange(CHANNELS, dtype=np.float32)[None, :] / 8192.0
    return (np.float32(seq % 4096) + f + c).astype(np.float32)


def replacement_of(seq: int) -> np.ndarray:
    # in [-1, 1] (the producer refuses anything else) and exact in float32
    return (
        np.full((2, FRAMES, CHANNELS), -float(seq % 4096) / 8192.0, np.float32)
        + np.arange(FRAMES, dtype=np.float32)[None, :, None] / 2.0**20
    )


def _producer(name: str, n_blocks: int, seed: int, ready, results) -> None:
    """Plays JackTrip: publishes received blocks at the block rate; where a seq is missing it
    takes the posted replacement (as the audio thread would) and posts an underrun event."""
    rng = np.random.default_rng(seed)
    p = Producer(name, RATE_HZ, FRAMES, CHANNELS)
    ready.set()
    published, underruns, used, torn = [], [], 0, 0
    seq = 0
    start = time.monotonic()
    for i in range(n_blocks):
        if rng.random() < 0.05:  # a lost packet: the audio thread must play something for it
            rep = p.take_replacement(seq)
            if rep is not None:
                used += 1
                if not np.array_equal(rep, replacement_of(seq)):
                    torn += 1
            p.post_event(EventKind.UNDERRUN, seq, Outcome.REPLACEMENT if rep is not None else Outcome.FALLBACK)
            underruns.append(seq)
        else:
            p.publish_block(seq, block_of(seq), gap_ns=0)
            published.append(seq)
        seq += 1
        delay = start + (i + 1) * BLOCK_PERIOD_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    time.sleep(0.2)
    results.put(dict(published=published, underruns=underruns, used=used, torn=torn))
    time.sleep(0.3)
    p.close()


@pytest.mark.slow
def test_real_rate_stream_with_gaps_loses_nothing(segment_name):
    n_blocks = 1125  # 3 s at 375 blocks/s
    ctx = mp.get_context("fork")
    ready, results = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_producer, args=(segment_name, n_blocks, 7, ready, results))
    proc.start()
    try:
        assert ready.wait(10)
        c = Consumer(segment_name, post_replacements=True)
        seen_seqs, next_index, events_seen = [], 0, []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            written = c.wait_for_blocks(next_index, 0.5)
            if written > next_index:
                batch = c.read_blocks(next_index, written - next_index)
                assert batch.skipped == 0, "a reader keeping up must never be lapped"
                assert batch.first_index == next_index
                for seq, samples in zip(batch.seq.tolist(), batch.samples, strict=True):
                    np.testing.assert_array_equal(samples, block_of(seq), err_msg=f"torn block {seq}")
                seen_seqs += batch.seq.tolist()
                next_index += len(batch.seq)
                # post the replacement for every block that could come next
                newest = int(batch.seq[-1])
                for ahead in (1, 2):
                    c.post_replacement(newest + ahead, replacement_of(newest + ahead))
            events, skipped = c.read_events(len(events_seen))
            assert skipped == 0
            events_seen += events
            if c.producer_closed or (written == next_index and not proc.is_alive()):
                break
        report = results.get(timeout=10)
        events, _ = c.read_events(len(events_seen))
        events_seen += events
        c.close()
    finally:
        proc.join(10)
    assert seen_seqs == report["published"], "every published block read once, in order"
    assert [e.seq for e in events_seen] == report["underruns"], "one event per underrun, in order"
    assert all(e.kind == EventKind.UNDERRUN for e in events_seen)
    assert report["torn"] == 0
    assert len(report["underruns"]) > 20
    # a replacement was posted for the seq after every received block: almost every underrun used one
    # (bursts of two lost in a row may still be covered by the +2 post)
    assert report["used"] >= 0.9 * len(report["underruns"])
    assert sum(e.outcome == Outcome.REPLACEMENT for e in events_seen) == report["used"]


@pytest.mark.slow
def test_cpp_stress_under_address_sanitizer(tmp_path):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler (g++) to build the sanitizer stress test")
    binary = tmp_path / "shm_stress_asan"
    build = subprocess.run(
        [
            cxx,
            "-std=c++17",
            "-O1",
            "-g",
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all",
            f"-I{REPO / 'csrc'}",
            str(REPO / "csrc/tests/shm_stress.cpp"),
            "-o",
            str(binary),
            "-lrt",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if build.returncode != 0 and "libasan" in build.stderr:
        pytest.skip(f"AddressSanitizer runtime missing: {build.stderr.strip()[:200]}")
    assert build.returncode == 0, build.stderr
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([str(binary), "60000"], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "OK" in run.stdout
    assert "ERROR: AddressSanitizer" not in run.stderr
    # a process scribbling over the whole segment (random bytes, and well-formed replacements
    # with NaN / Inf / 1e9 / denormals in them) while the producer runs: no crash, no sanitizer
    # report, only valid replacements played, poisoned ones refused
    run = subprocess.run(
        [str(binary), "hostile", "100000", "20261128"], capture_output=True, text=True, timeout=300, env=env
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "runtime error" not in run.stderr and "ERROR: AddressSanitizer" not in run.stderr, run.stderr
    taken, refused = (int(v) for v in re.search(r"(\d+) replacements taken, (\d+) refused, 0 bad", run.stdout).groups())
    assert taken > 100 and refused > 100, run.stdout


def run_under_tsan(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Runs a ThreadSanitizer binary; once more without address-space randomisation when this
    kernel's mmap randomisation is more than TSan's shadow memory allows."""
    env = {"TSAN_OPTIONS": "halt_on_error=1:exitcode=66", "PATH": "/usr/bin:/bin"}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if "unexpected memory mapping" in run.stderr and shutil.which("setarch"):
        run = subprocess.run(
            ["setarch", os.uname().machine, "-R", *cmd], capture_output=True, text=True, timeout=timeout, env=env
        )
    return run


@pytest.mark.slow
@pytest.mark.parametrize("sanitizer", ["thread", "address,undefined"])
def test_cpp_two_producer_threads_under_sanitizer(tmp_path, sanitizer):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.fail("no C++ compiler (g++): scripts/setup.sh installs it")
    binary = tmp_path / "shm_stress_threads"
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
            f"-I{REPO / 'csrc'}",
            str(REPO / "csrc/tests/shm_stress.cpp"),
            "-o",
            str(binary),
            "-lrt",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    run = run_under_tsan([str(binary), "threads", "4000"], timeout=300)
    assert "ThreadSanitizer" not in run.stderr and "AddressSanitizer" not in run.stderr, run.stderr[-6000:]
    assert "runtime error" not in run.stderr, run.stderr[-3000:]
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    taken, wrong, wakes = (
        int(v) for v in re.search(r"(\d+) replacements taken, (\d+) wrong, (\d+) wakes", run.stdout).groups()
    )
    consumer_wakes, missing_wakes = (
        int(v) for v in re.search(r"(\d+) wakes, (\d+) missing wakes", run.stdout).groups()
    )
    # both threads' wake paths ran while the other thread was running (the race TSan looks for)
    assert taken > 50 and wrong == 0 and wakes > 100 and missing_wakes > 0, run.stdout
    assert consumer_wakes <= wakes, run.stdout
