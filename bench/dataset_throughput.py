"""Packaging throughput of ``python -m nextblock.dataset package``, in audio-hours per minute.

Takes real recordings from Debian packages already extracted in the cache (fetching them if
needed), packages up to ``--hours`` of audio into a scratch folder ``--runs`` times, and
compares with a baseline measured in the same run: decoding the same files with soundfile
only (no resampling, cutting, hashing or writing). Prints median and p99 over runs, the
ratio package/decode, and, as the last line, one JSON object.

Examples::

    PYTHONPATH=python python bench/dataset_throughput.py
    PYTHONPATH=python python bench/dataset_throughput.py --packages singularity-music --hours 1 --runs 3
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from nextblock.dataset.cache import cache_root
from nextblock.dataset.debian import DebianFetchError, ensure_package
from nextblock.dataset.manifest import STATUS_OK
from nextblock.dataset.package import PackageSettings, package_dataset
from nextblock.dataset.sort_stems import probe_rows, sort_debian


def select_rows(packages: list[str], hours: float):
    """Probe the packages' audio files and keep the first ``hours`` of readable audio (sorted by id)."""
    rows, _ = sort_debian(cache_root(), packages)
    rows = [r for r in probe_rows(rows, show_progress=False) if r.status == STATUS_OK]
    chosen, total_s = [], 0.0
    for row in sorted(rows, key=lambda r: r.stem_id):
        if total_s >= hours * 3600:
            break
        chosen.append(row)
        total_s += row.duration_s
    return chosen, total_s


def decode_only(rows) -> float:
    """Baseline: wall seconds to decode every file with soundfile."""
    started = time.perf_counter()
    for row in rows:
        sf.read(row.path, dtype="float32", always_2d=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--packages",
        nargs="+",
        default=["singularity-music", "sonic-pi-samples"],
        help="Debian packages to draw recordings from (default: singularity-music sonic-pi-samples)",
    )
    parser.add_argument("--hours", type=float, default=0.5, help="audio to package per run (default: 0.5 h)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (default: 3)")
    args = parser.parse_args()
    for package in args.packages:
        try:
            ensure_package(cache_root(), package)
        except DebianFetchError as error:
            print(f"dataset_throughput: error: {error}", file=sys.stderr)
            return 2
    rows, audio_s = select_rows(args.packages, args.hours)
    if not rows:
        print("dataset_throughput: error: no readable audio in the chosen packages", file=sys.stderr)
        return 2
    audio_h = audio_s / 3600
    print(f"{len(rows)} recordings, {audio_h:.3f} audio-hours from {', '.join(args.packages)}")
    package_rates, decode_rates = [], []
    for run in range(args.runs):
        decode_s = decode_only(rows)
        scratch = Path(tempfile.mkdtemp(prefix="nextblock-bench-"))
        try:
            result = package_dataset(rows, scratch / "ds", PackageSettings(), show_progress=False)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        package_rates.append(audio_h / (result.wall_s / 60))
        decode_rates.append(audio_h / (decode_s / 60))
        examples = sum(result.examples.values())
        print(
            f"run {run + 1}: package {result.wall_s:.1f} s ({package_rates[-1]:.2f} audio-h/min, {examples} examples); "
            f"decode-only {decode_s:.1f} s ({decode_rates[-1]:.2f} audio-h/min)"
        )
    median_package, p99_package = float(np.median(package_rates)), float(np.percentile(package_rates, 1))
    median_decode = float(np.median(decode_rates))
    print(
        f"package: median {median_package:.2f} audio-h/min, p99 (slowest 1%) {p99_package:.2f}; "
        f"decode-only baseline median {median_decode:.2f}; ratio package/decode {median_package / median_decode:.3f}"
    )
    print(
        json.dumps(
            {
                "benchmark": "dataset_throughput",
                "audio_hours": round(audio_h, 4),
                "recordings": len(rows),
                "runs": args.runs,
                "package_audio_hours_per_min_median": round(median_package, 3),
                "package_audio_hours_per_min_p99": round(p99_package, 3),
                "decode_only_audio_hours_per_min_median": round(median_decode, 3),
                "ratio_package_over_decode": round(median_package / median_decode, 4),
                "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
