#!/usr/bin/env python3
"""Microseconds per block of the NextBlock predictor (LiteRT, one thread), with baselines.

Times the full ``BlockPredictor.predict`` (RMS normalisation, window, rfft, LiteRT invoke, irfft)
for one block of one channel (or ``--channels``), after a warm-up, and in the same run:

* ``fft-only``  – numpy rfft of the context + irfft of the output (the floor of the pipeline),
* ``repeat``    – copying the last block (what JackTrip's wavetable mode costs),
* ``burg``      – ``nextblock.concealers`` Burg baseline's ``predict`` (when that module exists),
* ``ar128``     – the order-128 Burg AR baseline's ``predict`` (C++ kernel, 10 blocks of history),
* ``two-sided`` – the gap filled from both sides as attach fills it
  (:class:`nextblock.model.two_sided.TwoSidedFill`: the shipped two-sided network correcting
  LSAR(128) fused with the causal prediction, else the fusion alone), one block of gap and one
  block after it: what re-posting a replacement costs once the block after the loss arrived;
  ``two-sided-path`` – the causal prediction and that fill together (the two-sided path of a lost
  block, against the same 250 µs p99 budget); ``two-sided-fusion`` – the fusion alone
  (:func:`nextblock.features.twosided.fill_gap`: Burg AR(256), the least-squares interpolation
  with the causal prediction as a fading prior); ``two-sided-fast`` – the fill attach falls back to when
  that one would be late (``TwoSidedFill.fast``: AR(128), constant prior weight, a Levinson solve);
  ``lsar`` – the LSAR baseline's fill (AR(128), no prior),
* with ``--breakdown``: ``encode`` (RMS, window, rfft, log-magnitude, LPC guess: one C++ call for
  Burg-guess models), ``invoke`` (LiteRT alone) and ``decode`` (irfft, level, guess blend, join)
  separately, and ``cold``: the whole ``predict`` after a 2.5 ms sleep (one block period at 128
  frames and 48 kHz: what a live prediction pays, its caches and clocks gone cold),
* with ``--frames`` (or ``--all-frames``): the model serving streams of other block sizes
  (``nextblock@B``: :func:`~nextblock.model.stream.stream_predictor`, one call of the model's
  256-sample horizon while two blocks fit, chained calls above 128 frames) and ``ar128@B``, each
  against its budget :func:`~nextblock.model.stream.latency_budget_us` (250 µs p99 up to 128
  frames, proportional to the block above). The cost does not depend on the sample rate (the
  model works on samples), so one row serves every rate.

Prints a table, then as the LAST line one JSON object (``median_us``/``p99_us`` per candidate,
the budget check against 250 µs p99 and the model's metadata) for CI to parse.

examples:
  python bench/model_latency.py                       # shipped default model
  python bench/model_latency.py --model /tmp/x.tflite --iterations 20000
  python bench/model_latency.py --channels 2 --no-burg
  python bench/model_latency.py --breakdown
  python bench/model_latency.py --all-frames --iterations 3000      # every block size, vs its budget
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the audio path's setting, before numpy loads

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

BUDGET_P99_US = 250.0
#: the sleep before a --breakdown "cold" call: one period of 128 frames at 48 kHz, less a little
COLD_SLEEP_S = 0.0025
#: the block sizes of --all-frames (JackTrip's powers of two and the Opus tools' 2.5/5/10 ms at 48 kHz)
ALL_FRAMES = (16, 32, 64, 120, 128, 240, 256, 320, 480, 512, 1024)


def time_calls(fn, iterations: int, warmup: int = 200, exclude_s: float = 0.0) -> np.ndarray:
    """Run ``fn()`` ``warmup + iterations`` times; return the last ``iterations`` durations in µs.

    ``exclude_s``: ``fn`` starts by sleeping this long (a cold call); the sleep is not counted."""
    for _ in range(warmup):
        fn()
    durations = np.empty(iterations, np.float64)
    for i in range(iterations):
        start = time.perf_counter_ns()
        fn()
        durations[i] = (time.perf_counter_ns() - start) / 1e3
    if exclude_s:
        durations = np.maximum(durations - _measured_sleep_us(exclude_s), 0.0)
    return durations


def _measured_sleep_us(seconds: float, repeats: int = 50) -> float:
    """Median wall time of ``time.sleep(seconds)`` in µs (what a cold call's timing subtracts)."""
    taken = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        time.sleep(seconds)
        taken.append((time.perf_counter_ns() - start) / 1e3)
    return float(np.median(taken))


def summarize(durations_us: np.ndarray) -> dict:
    """Median / p90 / p99 / max in µs (rounded to 0.1)."""
    return {
        k: round(float(v), 1)
        for k, v in (
            ("median_us", np.median(durations_us)),
            ("p90_us", np.percentile(durations_us, 90)),
            ("p99_us", np.percentile(durations_us, 99)),
            ("max_us", durations_us.max()),
        )
    }


def realistic_context(channels: int, samples: int, sample_rate_hz: int) -> np.ndarray:
    """``(channels, samples)`` float32: a few partials plus a little noise (not silence)."""
    rng = np.random.default_rng(0)
    t = np.arange(samples) / sample_rate_hz
    tone = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (220.0, 440.0, 660.0, 1320.0))
    return (tone + 0.01 * rng.standard_normal((channels, samples))).astype(np.float32)


def time_stream(predictor, frames: int, channels: int, iterations: int) -> dict:
    """Time the model serving ``frames``-frame blocks (and the AR(128) baseline at that size).

    Returns ``{"nextblock": summary, "ar128": summary, "calls": model calls per prediction,
    "budget_p99_us": float}``; skips ``nextblock`` (``None``) when the model cannot serve it.
    """
    from nextblock.concealers import make_concealer
    from nextblock.model.stream import latency_budget_us, stream_predictor

    rate = max(predictor.metadata.get("sample_rates_hz") or [predictor.sample_rate_hz])
    out = {"budget_p99_us": latency_budget_us(frames), "calls": None, "nextblock": None}
    try:
        stream = stream_predictor(predictor, frames, int(rate))
    except ValueError:
        pass
    else:
        context = realistic_context(channels, stream.context_samples, 48000)
        out["calls"] = stream.calls
        out["nextblock"] = summarize(time_calls(lambda: stream.predict(context), iterations))
    ar = make_concealer("ar128", frames, 48000)
    ar.history[:] = realistic_context(1, ar.history_samples, 48000)[0]
    out["ar128"] = summarize(time_calls(ar.predict, max(200, iterations // 4), warmup=20))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=__doc__.split("examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help=".tflite to time (default: the shipped default model)")
    p.add_argument("--iterations", type=int, default=5000, help="timed calls per candidate (default %(default)s)")
    p.add_argument("--channels", type=int, default=1, help="channels per predict call (default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="LiteRT threads (default %(default)s)")
    p.add_argument("--no-burg", action="store_true", help="skip the Burg baseline")
    p.add_argument("--breakdown", action="store_true", help="also time encode / LiteRT invoke / decode separately")
    p.add_argument(
        "--frames",
        type=lambda t: [int(v) for v in t.split(",")],
        default=[],
        help="also time streams of these block sizes, e.g. 64,256,1024",
    )
    p.add_argument("--all-frames", action="store_true", help="--frames " + ",".join(map(str, ALL_FRAMES)))
    args = p.parse_args(argv)
    if args.iterations <= 0 or args.channels <= 0:
        p.error("--iterations and --channels must be positive")

    from nextblock.model.runner import BlockPredictor

    try:
        predictor = BlockPredictor(args.model, num_threads=args.threads)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cfg = predictor.config
    context = realistic_context(args.channels, cfg.context_samples, cfg.sample_rate_hz)
    spectrum = np.zeros((args.channels, cfg.output_bins), np.complex64)
    results = {
        "nextblock": summarize(time_calls(lambda: predictor.predict(context), args.iterations)),
        "fft-only": summarize(
            time_calls(
                lambda: np.fft.irfft(
                    np.fft.rfft(context * predictor.codec.window, axis=-1)[:, :0].sum() + spectrum,
                    n=cfg.output_samples,
                    axis=-1,
                ),
                args.iterations,
            )
        ),
        "repeat": summarize(
            time_calls(lambda: np.repeat(context[:, None, -cfg.frames_per_block :], 2, axis=1), args.iterations)
        ),
    }
    from nextblock.features.twosided import BASELINE_ORDER, fill_gap

    block = cfg.frames_per_block
    stretch = realistic_context(args.channels, 4096 + 2 * block, cfg.sample_rate_hz)
    past, future = stretch[:, :4096], stretch[:, 4096 + block :]  # a block of gap between them
    last = np.ascontiguousarray(past[:, -cfg.context_samples :])
    prior = predictor.predict(last).reshape(args.channels, -1)[:, :block]
    from nextblock.model.two_sided import TwoSidedFill

    fill = TwoSidedFill.shipped()
    print(
        f"two-sided fill: {'network ' + fill.network.model.name if fill.network is not None else 'fusion (no two-sided model)'}",
        file=sys.stderr,
    )
    results["two-sided"] = summarize(time_calls(lambda: fill(past, future, block, prior), args.iterations))
    results["two-sided-path"] = summarize(
        time_calls(
            lambda: fill(past, future, block, predictor.predict(last).reshape(args.channels, -1)[:, :block]),
            args.iterations,
        )
    )
    results["two-sided-fusion"] = summarize(time_calls(lambda: fill_gap(past, future, block, prior), args.iterations))
    results["two-sided-fast"] = summarize(time_calls(lambda: fill.fast(past, future, block, prior), args.iterations))
    results["lsar"] = summarize(
        time_calls(lambda: fill_gap(past, future, block, order=BASELINE_ORDER, prior_weight=0.0), args.iterations)
    )
    if args.breakdown:
        features, scale = predictor.codec.encode(context)
        interpreter = predictor._interpreter
        interpreter.set_tensor(predictor._input_index, features)
        interpreter.invoke()
        output = interpreter.get_tensor(predictor._output_index)
        results["encode"] = summarize(time_calls(lambda: predictor.codec.encode(context), args.iterations))
        results["invoke"] = summarize(time_calls(interpreter.invoke, args.iterations))
        _, _, guess = predictor.codec.encode_with_guess(context)
        results["decode"] = summarize(
            time_calls(
                lambda: predictor.codec.decode_joined(
                    output, scale, context, guess, predictor.guess_weight, predictor._ramp
                ),
                args.iterations,
            )
        )
        results["cold"] = summarize(
            time_calls(
                lambda: (time.sleep(COLD_SLEEP_S), predictor.predict(context)),
                max(200, args.iterations // 10),
                warmup=20,
                exclude_s=COLD_SLEEP_S,
            )
        )
    if not args.no_burg:
        try:
            from nextblock.concealers import make_concealer

            burg = make_concealer("burg", cfg.frames_per_block, cfg.sample_rate_hz)
            n = min(burg.history.shape[0], context.shape[1])
            burg.history[-n:] = context[0, -n:]
            results["burg"] = summarize(time_calls(burg.predict, max(200, args.iterations // 10), warmup=20))
        except Exception as err:  # noqa: BLE001 - the baseline is another module's; its absence must not fail the bench
            print(f"(burg baseline skipped: {err})", file=sys.stderr)

    per_frames = {}
    for frames in ALL_FRAMES if args.all_frames else args.frames:
        per_frames[frames] = time_stream(predictor, frames, args.channels, max(500, args.iterations // 4))
        results.update(
            {f"{name}@{frames}": r for name, r in per_frames[frames].items() if name in ("nextblock", "ar128")}
        )

    print(
        f"{'candidate':<12} {'median µs':>10} {'p90 µs':>8} {'p99 µs':>8} {'max µs':>9}   "
        f"({args.channels} channel(s), {args.threads} thread(s), model {predictor.name} v{predictor.model_version})"
    )
    for name, r in results.items():
        if r is None:
            print(f"{name:<12} {'(model cannot serve this block size)':>38}")
            continue
        print(f"{name:<12} {r['median_us']:>10} {r['p90_us']:>8} {r['p99_us']:>8} {r['max_us']:>9}")
    for frames, r in per_frames.items():
        if r["nextblock"] is not None:
            verdict = "within" if r["nextblock"]["p99_us"] <= r["budget_p99_us"] * args.channels else "OVER"
            print(
                f"{frames:>5} frames: {r['calls']} model call(s), p99 {r['nextblock']['p99_us']} µs, "
                f"budget {r['budget_p99_us']:.0f} µs per channel: {verdict}"
            )
    summary = {
        "bench": "model_latency",
        "model": predictor.name,
        "model_version": predictor.model_version,
        "frames_per_block": cfg.frames_per_block,
        "context_samples": cfg.context_samples,
        "channels": args.channels,
        "threads": args.threads,
        "iterations": args.iterations,
        "budget_p99_us": BUDGET_P99_US,
        "within_budget": results["nextblock"]["p99_us"] <= BUDGET_P99_US * args.channels,
        "median_us": results["nextblock"]["median_us"],
        "p99_us": results["nextblock"]["p99_us"],
        "two_sided_path_within_budget": results["two-sided-path"]["p99_us"] <= BUDGET_P99_US * args.channels,
        "two_sided_fill": "network" if fill.network is not None else "fusion",
        "candidates": results,
        "per_frames": {
            str(f): {
                "budget_p99_us": r["budget_p99_us"],
                "calls": r["calls"],
                "within_budget": None
                if r["nextblock"] is None
                else r["nextblock"]["p99_us"] <= r["budget_p99_us"] * args.channels,
            }
            for f, r in per_frames.items()
        },
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
