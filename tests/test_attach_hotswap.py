"""Hot-swapping published models (docs/model_publishing.md) while serving a stream."""

from __future__ import annotations

import json
import time

import numpy as np

import helpers_attach as h
from nextblock.capture import monotonic_ns
from nextblock.runtime import HubConfig, ModelWatcher, RepeatPredictor
from test_attach_stream import finish, serve_in_thread


def gain_factory(path: str) -> RepeatPredictor:
    """A test 'model file' format: JSON {"gain": g}; anything else raises (a corrupt model)."""
    with open(path) as f:
        doc = json.load(f)
    return RepeatPredictor(128, 48000, gain=float(doc["gain"]), version=f"gain{doc['gain']}")


def test_models_swap_mid_stream_without_a_missed_deadline_and_corrupt_ones_are_refused(tmp_path, segment_name):
    model_dir = tmp_path / "live"
    model_dir.mkdir()
    watcher = ModelWatcher(model_dir, gain_factory, 128, 48000, channels=2, max_context_samples=8192, poll_s=0.1)
    proc, ready, out = h.start_emulator(
        tmp_path, segment=segment_name, seconds=4.0, loss_rate=0.08, burst_max=2, seed=11
    )
    h.wait_ready(ready, proc)
    thread, loop, _ = serve_in_thread(
        segment_name, RepeatPredictor(128, 48000, gain=0.5), HubConfig(scan_interval_s=0.05), watcher=watcher
    )
    watcher.start()
    try:
        deadline = time.monotonic() + 10
        while not loop.streams:
            assert time.monotonic() < deadline, "the stream was never served"
            time.sleep(0.01)
        (stream,) = loop.streams.values()
        while stream.stats.blocks < 300:  # ~0.8 s of stream with the first model
            time.sleep(0.02)
        for version, expected_rejects, kwargs in ((2, 1, {}), (3, 2, {"truncate_to": 5})):
            # v2: corrupt content with a valid checksum; v3: a truncated upload
            content = b"not json at all" if version == 2 else json.dumps({"gain": 0.25}).encode()
            h.publish(model_dir, version, content, **kwargs)
            deadline = time.monotonic() + 5
            while watcher.rejected < expected_rejects:
                assert time.monotonic() < deadline, f"v{version} was not refused"
                time.sleep(0.02)
        assert loop.stats.model_swaps == 0 and loop.stats.model_version == "repeat"
        swap_requested_ns = monotonic_ns()
        h.publish(model_dir, 4, json.dumps({"gain": 0.25}).encode())
        while loop.stats.model_swaps == 0:
            assert monotonic_ns() - swap_requested_ns < 5e9, "the new model was never swapped in"
            time.sleep(0.01)
        swapped_ns = monotonic_ns()
        finish(proc, thread, loop)
    finally:
        watcher.stop()
    totals, stats = loop.stats, stream.stats
    assert totals.model_version == "v4" and totals.model_swaps == 1 and totals.model_rejects == 2
    misses = stats.miss_times_ns[: min(stats.deadline_misses, len(stats.miss_times_ns))]
    period_ns = 128 / 48000 * 1e9
    # the swap itself (between two batches) costs no deadline: none missed around that instant
    at_swap = misses[np.abs(misses - totals.last_swap_ns) < 3 * period_ns]
    assert len(at_swap) == 0, f"{len(at_swap)} deadline misses at the swap"
    # loading and warming happen off the hot path: not many more misses meanwhile than the
    # background rate explains. Shared CI machines miss deadlines in bursts anyway, so this only
    # catches a loader that stalls the hot path (holding the GIL or the CPU through its load
    # misses every block of it: dozens here)
    loading = (misses > swap_requested_ns) & (misses < swapped_ns)
    background = stats.deadline_misses * (swapped_ns - swap_requested_ns) / 4e9
    assert loading.sum() < 20 or loading.sum() <= 3 * background, (
        f"{loading.sum()} deadline misses while the new model loaded ({stats.deadline_misses} in the whole run)"
    )
    # every replacement is from exactly one model: half (v1) before the swap, a quarter (v4) after
    result = dict(np.load(out))
    blocks, known = h.played_source(result)
    gains = []
    for k in np.flatnonzero(result["outcome"] == 1):
        if known[k - 1] and np.max(np.abs(blocks[k - 1])) > 1e-3:
            ratio = np.max(np.abs(result["taken"][k, 0])) / np.max(np.abs(blocks[k - 1]))
            if ratio > 0:  # 0: chained past a block whose prediction was skipped (overload): silence
                gains.append(round(float(ratio), 4))
    # a prediction decided before block k-1 arrived (the stand-in's arrival thread or attach ran
    # late: a loaded machine) continued a context ending with its own guess, not with what was
    # played: its ratio is neither gain. Rare, and never exactly 0.5 or 0.25 (real audio)
    by_model = [g for g in gains if g in (0.5, 0.25)]
    assert len(by_model) >= 0.8 * len(gains), (
        f"ratios that are neither model's gain: {sorted(set(gains) - {0.5, 0.25})}"
    )
    assert 0.5 in by_model and 0.25 in by_model
    first_quarter = by_model.index(0.25)
    assert all(g == 0.25 for g in by_model[first_quarter:]), "after the swap the old model is never used again"


def test_cli_hot_swaps_a_real_model_and_refuses_a_truncated_one(tmp_path):
    v1, v2 = h.tiny_model(1), h.tiny_model(2)
    model_dir = tmp_path / "live"
    model_dir.mkdir()
    h.publish(model_dir, 1, v1)
    proc, ready, _ = h.start_emulator(tmp_path, seconds=4.0, loss_rate=0.05, out=False)
    h.wait_ready(ready, proc)
    stats_file = tmp_path / "stats.json"
    attach = h.start_attach(
        [
            "--jacktrip-pid",
            str(proc.pid),
            "--model-dir",
            str(model_dir),
            "--once",
            "--json",
            str(stats_file),
            "--stats",
            "0.5",
        ]
    )
    try:
        time.sleep(2.0)
        h.publish(model_dir, 2, v2, truncate_to=1000)  # truncated: refused, v1 kept
        time.sleep(1.0)
        h.publish(model_dir, 3, v2)
        out, err = attach.communicate(timeout=60)
    finally:
        if attach.poll() is None:
            attach.kill()
        proc.communicate(timeout=30)
    assert attach.returncode == 3, err
    assert "refusing published model v2" in err and "truncated" in err
    assert "model=v1" in err and "model=v3" in err
    stats = json.loads(stats_file.read_text())
    assert stats["model_version"] == "v3" and stats["model_swaps"] == 1 and stats["model_rejects"] == 1
    assert stats["posts"] > 500
