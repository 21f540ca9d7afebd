"""Choose a model's ``guess_weight`` (the share of the Burg guess blended into its output) on
*validation* windows, and compare exported models on the same windows.

The runner's decode is linear in the blend: for weight ``w`` the horizon is
``p(w) = p(0) + w · (p(1) − p(0))`` (the 64-sample cross-fade from the guess is the same for every
``w``), so two predictions per window score every weight.

Scores, one-shot from the *true* context (no chaining), mean over windows:

* ``first_snr_db``: SNR of the first 128 samples (the block a 128-frame stream plays);
* ``horizon_snr_db``: SNR of the whole horizon (256 samples);
* ``first_lsd_db``: log-spectral distance of the first 128 samples (Hann, 512-point FFT).

The weight shipped is the one with the best ``first_snr_db`` (the harness's main score).

Usage::

    python -m nextblock.model.guess_blend runs/w48b6.tflite models/nextblock-default.tflite \\
        --audio ~/.cache/nextblock/debian/extracted/* ~/.cache/nextblock/rendered/music21/*
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np

#: samples scored as the "first block"
FIRST_BLOCK_SAMPLES = 128
#: FFT size of the log-spectral distance
LSD_FFT_SIZE = 512
#: per-window SNRs are clipped to this range (dB) before averaging (a silent target has none)
SNR_CLIP_DB = (-30.0, 60.0)


def snr_db(target: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Per-row SNR in dB, clipped to :data:`SNR_CLIP_DB`. ``(n, samples)`` × 2 → ``(n,)``."""
    signal = np.sum(np.square(target, dtype=np.float64), axis=1)
    error = np.sum(np.square(target - prediction, dtype=np.float64), axis=1)
    return np.clip(10.0 * np.log10((signal + 1e-12) / (error + 1e-12)), *SNR_CLIP_DB)


def lsd_db(target: np.ndarray, prediction: np.ndarray, fft_size: int = LSD_FFT_SIZE) -> np.ndarray:
    """Per-row log-spectral distance in dB (Hann window, zero-padded ``fft_size``-point FFT; the
    floor is 80 dB below the target's mean power). ``(n, samples)`` × 2 → ``(n,)``."""
    window = np.hanning(target.shape[1] + 2)[1:-1]
    t = np.abs(np.fft.rfft(target * window, fft_size)) ** 2
    p = np.abs(np.fft.rfft(prediction * window, fft_size)) ** 2
    floor = 1e-8 * np.mean(t, axis=1, keepdims=True) + 1e-20
    diff = 10.0 * np.log10(t + floor) - 10.0 * np.log10(p + floor)
    return np.sqrt(np.mean(np.square(diff), axis=1))


def blend_scores(horizon_net: np.ndarray, horizon_guess: np.ndarray, targets: np.ndarray,
                 weights: Sequence[float]) -> list[dict[str, float]]:
    """Scores of every blend weight.

    Parameters
    ----------
    horizon_net, horizon_guess:
        ``(n, horizon_samples)`` the model's horizon with ``guess_weight`` 0 and 1.
    targets:
        ``(n, horizon_samples)`` the true continuation.
    weights:
        Blend weights to score.

    Returns
    -------
    list of dict
        Per weight: ``guess_weight``, ``first_snr_db``, ``horizon_snr_db``, ``first_lsd_db``.
    """
    first = slice(0, FIRST_BLOCK_SAMPLES)
    rows = []
    for w in weights:
        blended = horizon_net + np.float32(w) * (horizon_guess - horizon_net)
        rows.append({
            "guess_weight": float(w),
            "first_snr_db": float(np.mean(snr_db(targets[:, first], blended[:, first]))),
            "horizon_snr_db": float(np.mean(snr_db(targets, blended))),
            "first_lsd_db": float(np.mean(lsd_db(targets[:, first], blended[:, first]))),
        })
    return rows


def model_horizons(model_path: str, contexts: np.ndarray, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The model's horizon with ``guess_weight`` 0 and 1 for every context.
    ``(n, context_samples)`` → two ``(n, horizon_samples)`` float32 arrays."""
    from .runner import BlockPredictor

    predictor = BlockPredictor(model_path, warm_up=False)
    out = []
    for weight in (0.0, 1.0):
        predictor.guess_weight = np.float32(weight)
        parts = [predictor.predict_horizon(contexts[i:i + batch]) for i in range(0, contexts.shape[0], batch)]
        out.append(np.concatenate(parts))
    return out[0], out[1]


def best_weight(rows: list[dict[str, float]]) -> float:
    """The weight with the highest ``first_snr_db``."""
    return max(rows, key=lambda r: r["first_snr_db"])["guess_weight"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m nextblock.model.guess_blend",
        description="Score exported models on validation windows (true contexts, one-shot) for every "
                    "guess_weight, and name the weight to export each with (best first-block SNR).",
        epilog="The windows come from the validation split (hash of each file's path, as in training) of --audio; "
               "use the training recipe's --train-rates-hz and --group-weight so they are drawn like the "
               "training windows. Export with: python -m nextblock.export --guess-weight W.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("models", nargs="+", help="exported .tflite models (all with the same context)")
    p.add_argument("--audio", nargs="+", required=True, metavar="DIR", help="audio folders (the training roots)")
    p.add_argument("--examples", type=int, default=3000, help="validation windows")
    p.add_argument("--weights", default="0,0.25,0.5,0.75,1", help="guess weights to score, comma-separated")
    p.add_argument("--train-rates-hz", default="32000,44100,44100,48000,48000,88200,96000",
                   help="rates the files are resampled to (drawn per file)")
    p.add_argument("--group-weight", action="append", default=[], metavar="GROUP=W", help="as in nextblock.train")
    p.add_argument("--max-files-per-group", type=int, default=400)
    p.add_argument("--excerpt-seconds", type=float, default=8.0)
    p.add_argument("--seed", type=int, default=1, help="window sampling seed")
    p.add_argument("--json", help="also write the scores here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from .data import windows_from_audio
    from .runner import BlockPredictor

    try:
        weights = [float(w) for w in args.weights.split(",")]
        group_weights = {g: float(w) for g, w in (item.split("=", 1) for item in args.group_weight)}
        rates = tuple(int(r) for r in args.train_rates_hz.split(",")) if args.train_rates_hz else None
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configs = {path: BlockPredictor(path, warm_up=False).config for path in args.models}
    config = configs[args.models[0]]
    mismatched = [p for p, c in configs.items() if (c.context_samples, c.output_samples)
                  != (config.context_samples, config.output_samples)]
    if mismatched:
        print(f"error: {', '.join(mismatched)}: another context or horizon than {args.models[0]}", file=sys.stderr)
        return 2
    windows = windows_from_audio(args.audio, config, {"validation": args.examples}, seed=args.seed,
                                 max_files_per_group=args.max_files_per_group, excerpt_seconds=args.excerpt_seconds,
                                 sample_rates_hz=rates, group_weights=group_weights or None)["validation"]
    if windows.shape[0] == 0:
        print("error: no validation windows under --audio", file=sys.stderr)
        return 2
    contexts = np.ascontiguousarray(windows[:, :config.context_samples])
    targets = windows[:, config.context_samples:config.context_samples + config.output_samples]
    report = {}
    print(f"{windows.shape[0]} validation windows (seed {args.seed})")
    print("| model | guess_weight | first-block SNR dB | 256-sample SNR dB | first-block LSD dB |")
    print("| --- | --- | --- | --- | --- |")
    for path in args.models:
        net, guess = model_horizons(path, contexts)
        rows = blend_scores(net, guess, targets, weights)
        report[path] = {"rows": rows, "best_guess_weight": best_weight(rows)}
        for r in rows:
            mark = " ←" if r["guess_weight"] == report[path]["best_guess_weight"] else ""
            print(f"| {path} | {r['guess_weight']:g}{mark} | {r['first_snr_db']:.3f} | {r['horizon_snr_db']:.3f} "
                  f"| {r['first_lsd_db']:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"examples": int(windows.shape[0]), "seed": args.seed, "models": report}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
