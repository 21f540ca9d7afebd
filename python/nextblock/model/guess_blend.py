"""Choose a model's ``guess_weight`` (the share of the Burg guess blended into its output) with
the evaluation harness on a *validation* set, never on the held-out one.

For every weight a copy of the model with that ``guess_weight`` in its metadata is scored by
``python -m nextblock.evaluate`` (the same harness, losses and scores as the model card: every lost
block of a burst predicted from what was played, SNR and LSD over the lost blocks and the
cross-fade block after each run of losses) on excerpts of *validation-split* recordings
(``python -m nextblock.model.heldout --split validation``). The weight named is the one with the
best mean SNR over the loss patterns; LSD is reported beside it.

Why the harness and not one-shot predictions on training-style windows: the blend also feeds the
next prediction of a burst. On 2,858 validation windows 3.1.0's one-shot first-block SNR was best
at 0.75 (5.07 dB against 4.98 at 0.25), yet on the held-out set 0.5 cost it 0.15 dB SNR and
0.38 dB LSD under Gilbert bursts for +0.0 dB under isolated losses.

Usage::

    python -m nextblock.model.heldout --split validation --out ~/.cache/nextblock/validation-v3/music \\
        --per-group 1 --audio <music package folders>          # once per category
    python -m nextblock.model.guess_blend runs/new.tflite --validation ~/.cache/nextblock/validation-v3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..packetloss import loss_argument

DEFAULT_WEIGHTS = (0.0, 0.25, 0.5, 0.75)
DEFAULT_LOSSES = ("bernoulli:0.05", "gilbert:0.02,0.25")


def with_guess_weight(model_path: str | Path, weight: float, out_path: str | Path) -> Path:
    """Copy ``model_path`` to ``out_path`` with metadata ``guess_weight`` = ``weight``."""
    from .metadata import embed_metadata, read_metadata

    metadata = dict(read_metadata(model_path))
    metadata["guess_weight"] = float(weight)
    out = Path(out_path)
    out.write_bytes(embed_metadata(Path(model_path).read_bytes(), metadata))
    return out


def score_weights(
    model_path: str | Path,
    validation: Sequence[str | Path],
    weights: Sequence[float],
    losses: Sequence[str] = DEFAULT_LOSSES,
    sample_rate_hz: int = 48000,
    frames_per_block: int = 128,
    seed: int = 1,
) -> list[dict]:
    """Harness scores of ``model_path`` with every weight.

    Returns
    -------
    list of dict
        Per weight: ``guess_weight``, ``snr_db`` and ``lsd_db`` (``{loss: dB}``), ``mean_snr_db``.
    """
    rows = []
    with tempfile.TemporaryDirectory(prefix="nextblock-guess-blend-") as tmp:
        for weight in weights:
            model = with_guess_weight(model_path, weight, Path(tmp) / f"w{weight:g}.tflite")
            out = Path(tmp) / f"w{weight:g}.json"
            command = [
                sys.executable,
                "-m",
                "nextblock.evaluate",
                *map(str, validation),
                "--no-visqol",
                "--quiet",
                "--sample-rate",
                str(sample_rate_hz),
                "--fpp",
                str(frames_per_block),
                "--seed",
                str(seed),
                "--concealer",
                "nextblock",
                "--model",
                str(model),
                "--json",
                str(out),
            ]
            for loss in losses:
                command += ["--loss", loss]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(
                    f"nextblock.evaluate failed for guess_weight {weight:g}: "
                    f"{(done.stderr.strip().splitlines() or ['?'])[-1]}"
                )
            results = [r for r in json.loads(out.read_text())["results"] if r["concealer"] == "nextblock"]
            snr = {r["loss"]: r["snr_db"] for r in results}
            lsd = {r["loss"]: r["lsd_db"] for r in results}
            rows.append(
                {
                    "guess_weight": float(weight),
                    "snr_db": snr,
                    "lsd_db": lsd,
                    "mean_snr_db": sum(snr.values()) / len(snr),
                }
            )
    return rows


def best_weight(rows: Sequence[dict]) -> float:
    """The weight with the highest ``mean_snr_db``."""
    return max(rows, key=lambda r: r["mean_snr_db"])["guess_weight"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m nextblock.model.guess_blend",
        description="Score a model with every guess_weight on a validation set with the evaluation harness "
        "and name the weight to export it with (best mean SNR over the loss patterns).",
        epilog="Make the validation set once with: python -m nextblock.model.heldout --split validation "
        "--out DIR --audio <folders>. Then export with: python -m nextblock.export --guess-weight W.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", help="exported .tflite model")
    p.add_argument(
        "--validation",
        nargs="+",
        required=True,
        metavar="FILE_OR_DIR",
        help="audio of validation-split recordings (never the held-out set)",
    )
    p.add_argument("--weights", default=",".join(f"{w:g}" for w in DEFAULT_WEIGHTS), help="comma-separated")
    p.add_argument(
        "--loss",
        action="append",
        type=loss_argument,
        help=f"loss patterns (nextblock.packetloss; default: {' and '.join(DEFAULT_LOSSES)})",
    )
    p.add_argument("--sample-rate", type=int, default=48000, help="stream rate")
    p.add_argument("--fpp", type=int, default=128, help="frames per block")
    p.add_argument("--seed", type=int, default=1, help="loss-pattern seed")
    p.add_argument("--json", help="also write the scores here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        weights = [float(w) for w in args.weights.split(",")]
    except ValueError as error:
        print(f"error: --weights: {error}", file=sys.stderr)
        return 2
    missing = [v for v in args.validation if not Path(v).exists()]
    if missing:
        print(f"error: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        rows = score_weights(
            args.model, args.validation, weights, args.loss or DEFAULT_LOSSES, args.sample_rate, args.fpp, args.seed
        )
    except (RuntimeError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    best = best_weight(rows)
    losses = list(rows[0]["snr_db"])
    print("| guess_weight | " + " | ".join(f"{loss} SNR / LSD dB" for loss in losses) + " | mean SNR dB |")
    print("| --- | " + " | ".join("---" for _ in losses) + " | --- |")
    for r in rows:
        cells = " | ".join(f"{r['snr_db'][loss]:.2f} / {r['lsd_db'][loss]:.2f}" for loss in losses)
        print(
            f"| {r['guess_weight']:g}{' ←' if r['guess_weight'] == best else ''} | {cells} | {r['mean_snr_db']:.3f} |"
        )
    print(f"best guess_weight: {best:g}  (python -m nextblock.export ... --guess-weight {best:g})")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "best_guess_weight": best, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
