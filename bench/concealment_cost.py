"""What each concealment costs on the CPU, in one run: JackTrip's own C++ Burg vs NextBlock's model.

* **JackTrip's Burg** – ``BurgAlgorithm`` cut from JackTrip 2.7.2's ``src/Regulator.{h,cpp}`` (the
  cached source, never stored in this repository), compiled with ``g++ -O3`` like JackTrip's
  release build into a driver that trains on the Regulator's history
  (``jacktrip_history_packets(fpp)`` packets) and predicts two packets, as the Regulator does **per
  channel, only when a packet is missing**;
* **NextBlock** – ``BlockPredictor.predict`` of the shipped model (LiteRT, one thread) on one
  channel's context, which ``nextblock attach`` runs **for every received block** (a loss is not
  known in advance).

Prints median and p99 µs per call and the CPU share of one core each costs at a loss rate
(``--loss-percent``), for one channel; the last line is one JSON object.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=python python bench/concealment_cost.py
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=python python bench/concealment_cost.py --fpp 128 --calls 3000 --loss-percent 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DRIVER = r"""
#include <cfloat>
#include <chrono>
#include <iostream>
#include <vector>
using std::cout; using std::endl;
{declaration}
{methods}
int main() {{
  int size, fpp, calls; std::cin >> size >> fpp >> calls;
  std::vector<float> history(size);
  for (int i = 0; i < size; i++) std::cin >> history[i];
  std::vector<float> tail(size + 2 * fpp), coeffs(size - 1);
  BurgAlgorithm ba(size);
  for (int k = 0; k < calls; k++) {{
    for (int i = 0; i < size; i++) tail[i] = history[i];
    auto t0 = std::chrono::steady_clock::now();
    ba.train(coeffs, tail, size);
    ba.predict(coeffs, tail, size + 2 * fpp);
    auto t1 = std::chrono::steady_clock::now();
    cout << std::chrono::duration<double, std::micro>(t1 - t0).count() << '\n';
  }}
}}
"""


def jacktrip_source_dir() -> Path:
    from nextblock.jackio.patched_build import find_jacktrip_source

    src = find_jacktrip_source()
    if src is None:
        from nextblock.jackio.patched_build import missing_source_message

        raise SystemExit(f"bench/concealment_cost.py: {missing_source_message()}")
    return src


def build_burg_driver(src: Path, folder: Path) -> Path:
    header = (src / "src" / "Regulator.h").read_text()
    body = (src / "src" / "Regulator.cpp").read_text()
    declaration = re.search(r"^class BurgAlgorithm\b.*?^};", header, re.S | re.M)
    methods = re.search(r"^BurgAlgorithm::BurgAlgorithm.*?(?=^//\*{10})", body, re.S | re.M)
    if not declaration or not methods:
        raise SystemExit(f"bench/concealment_cost.py: no BurgAlgorithm in {src}/src/Regulator.*")
    cpp = folder / "burg_driver.cpp"
    cpp.write_text(DRIVER.format(declaration=declaration.group(0), methods=methods.group(0)))
    binary = folder / "burg_driver"
    subprocess.run(["g++", "-O3", "-std=c++17", "-o", str(binary), str(cpp)], check=True, capture_output=True)
    return binary


def music_like(n: int, rate: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    tone = sum(
        a * np.sin(2 * np.pi * f * t + p) for a, f, p in [(0.4, 220.0, 0.0), (0.2, 660.0, 1.0), (0.1, 1650.0, 2.0)]
    )
    return (tone + 0.01 * rng.standard_normal(n)).astype(np.float32)


def summary(us: np.ndarray) -> dict:
    return {
        "median_us": round(float(np.median(us)), 1),
        "p99_us": round(float(np.percentile(us, 99)), 1),
        "calls": int(len(us)),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--fpp", type=int, default=128, help="frames per packet (the shipped model: 128)")
    p.add_argument("--rate", type=int, default=48000)
    p.add_argument("--calls", type=int, default=3000, help="timed calls of each (default 3000)")
    p.add_argument("--loss-percent", type=float, default=5.0, help="loss rate for the CPU-share column (default 5)")
    p.add_argument("--model", help="NextBlock model (default: the shipped one)")
    a = p.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from nextblock.concealers.burg import jacktrip_history_packets
    from nextblock.model.runner import BlockPredictor

    period_us = 1e6 * a.fpp / a.rate
    size = jacktrip_history_packets(a.fpp) * a.fpp
    history = music_like(size, a.rate)
    with tempfile.TemporaryDirectory() as tmp:
        binary = build_burg_driver(jacktrip_source_dir(), Path(tmp))
        out = subprocess.run(
            [str(binary)],
            input=f"{size} {a.fpp} {a.calls}\n" + " ".join(map(str, history)),
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        ).stdout
    burg = np.array([float(x) for x in out.split()])[10:]
    predictor = BlockPredictor(a.model, num_threads=1)
    signal = music_like(predictor.context_samples + a.calls * a.fpp, a.rate, seed=1)
    nb = np.empty(a.calls)
    for k in range(a.calls):
        context = signal[None, k * a.fpp : k * a.fpp + predictor.context_samples]
        t0 = time.perf_counter()
        predictor.predict(context)
        nb[k] = (time.perf_counter() - t0) * 1e6
    nb = nb[10:]
    result = {
        "fpp": a.fpp,
        "period_us": round(period_us, 1),
        "loss_percent": a.loss_percent,
        "jacktrip_burg": {
            **summary(burg),
            "runs": "per channel, per lost packet",
            "cpu_share_percent": round(100 * float(np.median(burg)) * a.loss_percent / 100 / period_us, 3),
        },
        "nextblock": {
            **summary(nb),
            "runs": "per channel, per received block",
            "model": str(predictor.model_path) if hasattr(predictor, "model_path") else a.model or "shipped",
            "cpu_share_percent": round(100 * float(np.median(nb)) / period_us, 2),
        },
    }
    result["ratio_per_call"] = round(result["nextblock"]["median_us"] / result["jacktrip_burg"]["median_us"], 2)
    result["ratio_cpu"] = round(
        result["nextblock"]["cpu_share_percent"] / result["jacktrip_burg"]["cpu_share_percent"], 1
    )
    print(f"one channel, {a.fpp} frames at {a.rate} Hz (period {period_us:.0f} µs), {a.calls} calls each")
    print(f"{'':<26}{'median µs':>10}{'p99 µs':>9}{'  runs':<34}{'CPU of 1 core'}")
    for name, key in (("JackTrip's C++ Burg", "jacktrip_burg"), ("NextBlock model (LiteRT)", "nextblock")):
        r = result[key]
        share = f"{r['cpu_share_percent']:.3g} %" + (f" at {a.loss_percent:g} % loss" if key == "jacktrip_burg" else "")
        print(f"{name:<26}{r['median_us']:>10.1f}{r['p99_us']:>9.1f}{'  ' + r['runs']:<34}{share}")
    print(
        f"NextBlock / Burg: {result['ratio_per_call']}x per call, {result['ratio_cpu']}x the CPU at "
        f"{a.loss_percent:g} % loss"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
