#!/usr/bin/env python3
"""Shared-memory wake and post-to-visible latency, with the other core busy.

A producer process publishes blocks at JackTrip's rate (128 frames at 48 kHz: 375 blocks/s).
The consumer (this process) sleeps in ``Consumer.wait_for_blocks`` (futex) and measures

* **wake latency**: block published (``arrival_ns`` stamped just before ``publish_block``) →
  consumer running again with the new block count in hand;
* **post-to-visible latency**: consumer ``post_replacement`` returns → the producer (polling as
  JackTrip's audio thread would, briefly) sees the replacement via ``take_replacement``.

Baseline in the same run: the same producer/consumer pair woken through a pipe (``os.write`` /
blocking ``os.read``), the plain OS primitive. A third process spins on the other core
(``--no-load`` to skip it). Both processes run SCHED_FIFO like JackTrip's audio threads and the
run holds a PM-QoS CPU latency request of 0 µs, as ``nextblock.attach`` does (``--sched other``,
``--no-pm-qos`` to measure without). The last line is one JSON object.

Usage::

    python bench/shm_latency.py                 # 10 s per phase
    python bench/shm_latency.py --seconds 3 --no-load
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import time

import numpy as np

from nextblock.capture import Consumer, Producer, monotonic_ns
from nextblock.capture.realtime import hold_cpu_dma_latency, set_realtime_priority

FRAMES, CHANNELS, RATE_HZ = 128, 2, 48000
PERIOD_S = FRAMES / RATE_HZ


def _spin_normal(stop) -> None:
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))  # the load is an ordinary process
    _spin(stop)


def _spin(stop) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100000):
            x += 1


def _producer(name, n_blocks, mode, wake_w, ready, out, rt) -> None:
    if rt:
        set_realtime_priority(70)
    p = Producer(name, RATE_HZ, FRAMES, CHANNELS)
    block = np.zeros((FRAMES, CHANNELS), np.float32)
    ready.set()
    time.sleep(0.2)
    seen_ns = np.zeros(n_blocks, np.int64)
    start = time.monotonic()
    for seq in range(n_blocks):
        t = monotonic_ns()
        p.publish_block(seq, block, arrival_ns=t)
        if mode == "pipe":
            os.write(wake_w, b"x")
        # poll briefly (≤ 1.5 ms) for the consumer's replacement for seq + 1
        deadline = t + 1_500_000
        while monotonic_ns() < deadline:
            if p.take_replacement(seq + 1) is not None:
                seen_ns[seq] = monotonic_ns()
                break
        delay = start + (seq + 1) * PERIOD_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    out.put(seen_ns)
    time.sleep(0.2)
    p.close()


def run_phase(mode: str, seconds: float, rt: bool) -> dict:
    ctx = mp.get_context("fork")
    n_blocks = int(seconds / PERIOD_S)
    name = f"/nextblock-bench-{os.getpid()}-{mode}"
    wake_r, wake_w = os.pipe()
    ready, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_producer, args=(name, n_blocks, mode, wake_w, ready, out, rt))
    proc.start()
    ready.wait(10)
    c = Consumer(name, post_replacements=True)
    rep = np.zeros((2, FRAMES, CHANNELS), np.float32)
    wake_ns = np.zeros(n_blocks, np.int64)
    posted_ns = np.zeros(n_blocks, np.int64)
    count = 0
    while count < n_blocks:
        if mode == "futex":
            now_count = c.wait_for_blocks(count, 1.0)
        else:
            os.read(wake_r, 1)
            now_count = c.blocks_written
        t_wake = monotonic_ns()
        if now_count <= count:
            if not proc.is_alive():
                break
            continue
        batch = c.read_blocks(now_count - 1, 1)
        seq = int(batch.seq[0])
        wake_ns[seq] = t_wake - int(batch.arrival_ns[0])
        c.post_replacement(seq + 1, rep)
        posted_ns[seq] = monotonic_ns()
        count = now_count
    seen = out.get(timeout=30)
    proc.join(10)
    c.close()
    os.close(wake_r)
    os.close(wake_w)
    ok = (wake_ns > 0) & (seen > 0) & (posted_ns > 0)
    wake_us = wake_ns[wake_ns > 0] / 1e3
    visible_us = np.maximum(seen[ok] - posted_ns[ok], 0) / 1e3
    return {
        "mode": mode,
        "blocks": n_blocks,
        "wake_us": stats(wake_us),
        "post_to_visible_us": stats(visible_us),
        "replacements_seen_share": float(ok.sum() / max(1, n_blocks - 1)),
    }


def stats(x_us: np.ndarray) -> dict:
    if len(x_us) == 0:
        return {"p50": None, "p99": None, "p999": None, "max": None, "n": 0}
    return {
        "p50": float(np.percentile(x_us, 50)),
        "p99": float(np.percentile(x_us, 99)),
        "p999": float(np.percentile(x_us, 99.9)),
        "max": float(x_us.max()),
        "n": int(len(x_us)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each phase (default 10)")
    ap.add_argument("--no-load", action="store_true", help="do not keep the other core busy")
    ap.add_argument(
        "--sched",
        choices=["fifo", "other"],
        default="fifo",
        help="scheduling of producer and consumer: SCHED_FIFO as JackTrip's audio threads (default; "
        "falls back to 'other' when not permitted) or the normal time-sharing class",
    )
    ap.add_argument(
        "--no-pm-qos",
        action="store_true",
        help="do not hold /dev/cpu_dma_latency at 0 µs (what nextblock.attach does by default)",
    )
    args = ap.parse_args()
    pm_qos = contextlib.ExitStack()
    pm_qos_held = False if args.no_pm_qos else pm_qos.enter_context(hold_cpu_dma_latency(0))
    rt = args.sched == "fifo" and set_realtime_priority(60)
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    spinner = None if args.no_load else ctx.Process(target=_spin_normal, args=(stop,), daemon=True)
    if spinner:
        spinner.start()
    try:
        futex = run_phase("futex", args.seconds, rt)
        pipe = run_phase("pipe", args.seconds, rt)
    finally:
        stop.set()
        if spinner:
            spinner.join(5)
        pm_qos.close()
    print(
        f"{'phase':<8} {'wake p50':>9} {'p99':>9} {'p99.9':>9} {'max':>9}   {'post→visible p50':>17} {'p99':>9}  (µs)"
    )
    for r in (futex, pipe):
        w, v = r["wake_us"], r["post_to_visible_us"]
        print(
            f"{r['mode']:<8} {w['p50']:9.1f} {w['p99']:9.1f} {w['p999']:9.1f} {w['max']:9.1f}   {v['p50']:17.2f} {v['p99']:9.2f}"
        )
    result = {
        "bench": "shm_latency",
        "other_core_busy": not args.no_load,
        "sched": "fifo" if rt else "other",
        "pm_qos_cpu_dma_latency_0": bool(pm_qos_held),
        "seconds_per_phase": args.seconds,
        "p50_us": futex["wake_us"]["p50"],
        "p99_us": futex["wake_us"]["p99"],
        "p999_us": futex["wake_us"]["p999"],
        "post_to_visible_p50_us": futex["post_to_visible_us"]["p50"],
        "post_to_visible_p99_us": futex["post_to_visible_us"]["p99"],
        "post_to_visible_p999_us": futex["post_to_visible_us"]["p999"],
        "baseline_pipe_p50_us": pipe["wake_us"]["p50"],
        "baseline_pipe_p99_us": pipe["wake_us"]["p99"],
        "p99_ratio_vs_pipe": futex["wake_us"]["p99"] / pipe["wake_us"]["p99"],
        "target_p99_us": 100.0,
        "meets_target": futex["wake_us"]["p99"] <= 100.0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
