"""Microseconds per block for every concealer, in one run.

Each concealer plays a synthetic music-like signal (three partials and noise) where every
``--every``-th block is lost, so the concealment always starts from a history of real audio;
every ``process`` call is timed (wall clock, and the thread's CPU time, which is less disturbed
by other processes on a busy machine). Reported per concealer: median and 99th percentile of
the lost blocks (the concealment cost, comparable with JackTrip's per-glitch PLC time) and of
the arrived blocks.

Run it on a quiet machine with one BLAS thread::

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=python python bench/concealers.py
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=python python bench/concealers.py --fpp 64 --lost-blocks 2000 \\
        --concealer burg --concealer nextblock --model model.tflite --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from nextblock.concealers import ConcealerUnavailable, available_concealers, make_concealer


def music_like(n_samples: int, sample_rate_hz: int, seed: int = 0) -> np.ndarray:
    """Three decaying partials over noise, shape ``(n_samples,)``, float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / sample_rate_hz
    tone = sum(
        a * np.sin(2 * np.pi * f * t + p) for a, f, p in [(0.4, 220.0, 0.0), (0.2, 660.0, 1.0), (0.1, 1650.0, 2.0)]
    )
    envelope = 0.6 + 0.4 * np.cos(2 * np.pi * 1.5 * t)
    return (tone * envelope + 0.01 * rng.standard_normal(n_samples)).astype(np.float32)


def bench_concealer(
    name: str,
    frames_per_block: int,
    sample_rate_hz: int,
    lost_blocks: int,
    every_blocks: int,
    model_path: str | None = None,
) -> dict:
    """Time one concealer; returns a dict of µs statistics (lost and arrived blocks)."""
    n_blocks = lost_blocks * every_blocks
    audio = music_like(n_blocks * frames_per_block, sample_rate_hz)
    lost = (np.arange(n_blocks) % every_blocks) == every_blocks - 1
    lost[: 2 * every_blocks] = False  # warm-up: let every concealer fill its history
    concealer = make_concealer(name, frames_per_block, sample_rate_hz, model_path)
    blocks = audio.reshape(n_blocks, frames_per_block)
    wall_us = np.empty(n_blocks)
    cpu_us = np.empty(n_blocks)
    for index in range(n_blocks):
        block = None if lost[index] else blocks[index]
        wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
        concealer.process(block)
        cpu_us[index] = (time.thread_time_ns() - cpu) / 1000.0
        wall_us[index] = (time.perf_counter_ns() - wall) / 1000.0
    stats = {"concealer": name, "fpp": frames_per_block, "sample_rate": sample_rate_hz, "lost_blocks": int(lost.sum())}
    for label, mask in [("lost", lost), ("arrived", ~lost)]:
        stats[f"us_per_{label}_block_median"] = float(np.median(wall_us[mask]))
        stats[f"us_per_{label}_block_p99"] = float(np.percentile(wall_us[mask], 99))
        stats[f"cpu_us_per_{label}_block_median"] = float(np.median(cpu_us[mask]))
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="µs per block per concealer (median, p99) in one run.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--fpp", type=int, default=128, help="frames per block (default: 128)")
    parser.add_argument("--sample-rate", type=int, default=48000, help="Hz (default: 48000)")
    parser.add_argument("--lost-blocks", type=int, default=500, help="lost blocks timed per concealer (default: 500)")
    parser.add_argument("--every", type=int, default=4, help="one block in EVERY is lost (default: 4)")
    parser.add_argument(
        "--concealer",
        action="append",
        choices=available_concealers(),
        help="repeatable (default: all of them, NextBlock with the shipped model)",
    )
    parser.add_argument("--model", help="model for the nextblock concealer")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        print("note: set OPENBLAS_NUM_THREADS=1 for audio-path timings", file=sys.stderr)
    rows = []
    for name in tqdm(args.concealer or available_concealers(), desc="concealers", leave=False):
        try:
            rows.append(bench_concealer(name, args.fpp, args.sample_rate, args.lost_blocks, args.every, args.model))
        except ConcealerUnavailable as error:
            print(f"error: {error} – skipped", file=sys.stderr)
    print(
        f"{args.fpp} frames, {args.sample_rate} Hz, 1-minute load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print("| concealer | µs/lost block median | p99 | CPU µs/lost block median | µs/arrived block median | p99 |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['concealer']} | {row['us_per_lost_block_median']:.1f} | {row['us_per_lost_block_p99']:.1f} | {row['cpu_us_per_lost_block_median']:.1f} | {row['us_per_arrived_block_median']:.1f} | {row['us_per_arrived_block_p99']:.1f} |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"results": rows, "load_average_1min": os.getloadavg()[0]}, handle, indent=2)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
