"""``nextblock train``: the command line of :mod:`nextblock.train` (options, help, exit status).

Parsing imports no TensorFlow: :func:`nextblock.train.run` does, after the arguments are checked."""

from __future__ import annotations

import argparse

from nextblock.argtypes import group_weight, int_list

EPILOG = """\
examples:
  # train the default model on every package unpacked in the cache (~/.cache/nextblock/debian/extracted)
  python -m nextblock.train --run-dir runs/default

  # train on the packaged dataset written by `python -m nextblock.dataset`
  python -m nextblock.train --data ~/.cache/nextblock/shards --run-dir runs/shards

  # a quick smoke run on one folder of audio
  python -m nextblock.train --audio ~/music --epochs 1 --train-examples 2000 --run-dir /tmp/nb-smoke

  # interrupted? run the same command again: it resumes from --run-dir/backup.
  # finished but want more epochs? rerun with a larger --epochs: it continues from last.weights.h5.
  # then export:  python -m nextblock.export --run-dir runs/default

Splits are by recording: with --audio a file's split (train 80% / validation 10% / test 10%)
comes from a hash of its path, so no recording straddles two splits and the test files are never
seen in training. On a cluster set TF_CONFIG (multi-worker) or expose several GPUs; --strategy auto
picks MultiWorkerMirrored / Mirrored accordingly (one device otherwise).
"""


def build_parser(prog: str = "nextblock train") -> argparse.ArgumentParser:
    """The command line (see ``--help``)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train the NextBlock 1D-CNN block predictor.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("data (default: every package in $NEXTBLOCK_CACHE/debian/extracted)")
    src.add_argument("--audio", nargs="+", metavar="DIR", help="folders of audio files (each is a group, balanced)")
    src.add_argument("--data", metavar="DIR", help="packaged dataset (manifest.json, nextblock-shards/1)")
    src.add_argument(
        "--train-examples", type=int, default=100_000, help="training windows per epoch (default %(default)s)"
    )
    src.add_argument("--validation-examples", type=int, default=8_000, help="validation windows (default %(default)s)")
    src.add_argument(
        "--max-files-per-group", type=int, default=120, help="files read per folder and split (default %(default)s)"
    )
    src.add_argument("--excerpt-seconds", type=float, default=12.0, help="seconds read per file (default %(default)s)")
    src.add_argument(
        "--train-rates-hz",
        type=int_list,
        metavar="HZ[,HZ...]",
        help="resample each file to one of these rates, drawn per file (a repeated rate is drawn more "
        "often): one model for every stream rate, e.g. 32000,44100,44100,48000,48000,88200,96000 "
        "(default: --sample-rate-hz only)",
    )
    src.add_argument(
        "--group-weight",
        action="append",
        default=[],
        type=group_weight,
        metavar="GROUP=W",
        help="relative share of windows of the audio folder named GROUP (default 1), repeatable, "
        "e.g. --group-weight choir=3",
    )
    feat = p.add_argument_group("features")
    feat.add_argument("--frames-per-block", type=int, default=128, help="samples per block (default %(default)s)")
    feat.add_argument(
        "--context-samples", type=int, default=1024, help="context length in samples (default %(default)s)"
    )
    feat.add_argument("--sample-rate-hz", type=int, default=48000, help="sample rate (default %(default)s)")
    feat.add_argument(
        "--window-fall-samples", type=int, default=128, help="analysis window's fall (default %(default)s)"
    )
    feat.add_argument(
        "--lpc-order",
        type=int,
        default=32,
        help="order of the linear-prediction guess the network corrects, 0 = none (default %(default)s)",
    )
    feat.add_argument(
        "--lpc-burg-samples",
        type=int,
        default=0,
        help="fit the guess by Burg's method to the context's last N samples (0: autocorrelation of "
        "the windowed context; 3.0 models: --lpc-order 128 --lpc-burg-samples 768) (default %(default)s)",
    )
    arch = p.add_argument_group("architecture")
    arch.add_argument("--width", type=int, default=32, help="trunk channels (default %(default)s)")
    arch.add_argument("--blocks", type=int, default=4, help="residual blocks (default %(default)s)")
    arch.add_argument("--kernel-bins", type=int, default=9, help="depthwise kernel in bins (default %(default)s)")
    arch.add_argument("--filter-taps", type=int, default=9, help="deep-filter taps, odd (default %(default)s)")
    tr = p.add_argument_group("training")
    tr.add_argument("--run-dir", default="runs/default", help="checkpoints, config and logs (default %(default)s)")
    tr.add_argument("--epochs", type=int, default=8, help="epochs (default %(default)s)")
    tr.add_argument("--batch-size", type=int, default=128, help="global batch size (default %(default)s)")
    tr.add_argument(
        "--learning-rate", type=float, default=2e-3, help="peak Adam learning rate, cosine decay (default %(default)s)"
    )
    tr.add_argument(
        "--spectral-weight",
        type=float,
        default=0.1,
        help="weight of the multi-resolution STFT loss (default %(default)s)",
    )
    tr.add_argument(
        "--spectral-floor",
        type=float,
        default=1e-3,
        help="magnitude floor in the spectral loss's logs, RMS units (default %(default)s)",
    )
    tr.add_argument(
        "--phase-weight",
        type=float,
        default=0.0,
        help="weight of the complex (phase-aware) multi-resolution STFT loss (default %(default)s)",
    )
    tr.add_argument(
        "--spectral-fft-sizes",
        type=int_list,
        default=[32, 64, 128],
        metavar="N[,N...]",
        help="STFT frame lengths of the spectral and phase terms, each <= the output (default 32,64,128)",
    )
    tr.add_argument(
        "--init-weights",
        metavar="H5",
        help="start from these Keras weights (fine-tuning, e.g. models/nextblock-default.weights.h5; "
        "same features and architecture) instead of a random initialisation",
    )
    ch = p.add_argument_group("chained (burst) training: contexts that end with the model's own predictions")
    ch.add_argument(
        "--chained-share",
        type=float,
        default=0.0,
        help="share of training and validation windows whose context ends with chained predictions, "
        "as during a burst of losses (0 = off, default %(default)s)",
    )
    ch.add_argument(
        "--chained-max-samples",
        type=int,
        default=768,
        help="at most this many samples of a context are predictions (windows are read that much "
        "longer) (default %(default)s)",
    )
    ch.add_argument(
        "--chained-model",
        metavar="TFLITE",
        default="guess",
        help="what makes the predictions: an exported model (e.g. models/nextblock-default.tflite, "
        "run as the harness runs it) or 'guess' (the Burg AR guess alone) (default %(default)s)",
    )
    ch.add_argument(
        "--chained-block-sizes",
        type=int_list,
        default=[64, 128, 256],
        metavar="N[,N...]",
        help="block sizes a chain is made of, one drawn per window (default 64,128,256)",
    )
    tr.add_argument(
        "--two-sided",
        action="store_true",
        help="train a two-sided network: the first block of each continuation is lost and the block "
        "after it arrived; the guess channels hold the gap filled by least-squares AR "
        "interpolation, then that block (nextblock.features.twosided.two_sided_guess); the loss "
        "scores the lost block (and the STFT frames across its end)",
    )
    tr.add_argument(
        "--two-sided-prior",
        metavar="TFLITE",
        help="with --two-sided: fuse that interpolation with this causal model's prediction of the gap "
        "(e.g. models/nextblock-default.tflite), as the runtime fuses the causal replacement it "
        "posted; without it, plain LSAR",
    )
    tr.add_argument(
        "--two-sided-guess",
        choices=("fast", "full"),
        default="fast",
        help="with --two-sided: the interpolation the network corrects (nextblock.features.twosided): "
        "fast = LSAR(128), the prior at a constant 0.3, Levinson solve (~85 µs a channel); full = the "
        "fusion NextBlock plays without a network, AR(256), the prior at 1 fading over the gap "
        "(~3x the time, ~0.15 dB better); default %(default)s",
    )
    tr.add_argument(
        "--seed", type=int, default=0, help="seed for data sampling, shuffling and initialisation (default %(default)s)"
    )
    tr.add_argument(
        "--strategy",
        default="auto",
        choices=("auto", "one", "mirrored", "multiworker"),
        help="tf.distribute strategy (default %(default)s)",
    )
    tr.add_argument(
        "--threads", type=int, default=0, help="TensorFlow intra-op threads, 0 = TF's choice (default %(default)s)"
    )
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _checked(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """``args``, after the checks argparse cannot make (``p.error``: exit status 2)."""
    if args.audio and args.data:
        p.error("give either --audio or --data, not both")
    if not 0.0 <= args.chained_share <= 1.0:
        p.error("--chained-share must be between 0 and 1")
    if args.chained_share and args.chained_max_samples < min(args.chained_block_sizes):
        p.error("--chained-max-samples must hold at least one of --chained-block-sizes")
    for name in ("train_examples", "validation_examples", "epochs", "batch_size"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    return args


def main(argv: list[str] | None = None, prog: str = "nextblock train") -> int:
    """Entry point; returns the exit status."""
    p = build_parser(prog)
    args = _checked(p, p.parse_args(argv))
    from nextblock import train

    return train.run(args)
