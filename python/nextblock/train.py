"""``python -m nextblock.train``: train the NextBlock network (see ``--help``).

Pipeline: windows (context + continuation) from audio folders or the packaged shards, split by
recording → features with the runtime's own FFT pre-processing → ``tf.data`` → Keras ``fit``
under a ``tf.distribute`` strategy, with a tqdm bar, per-epoch checkpoints and automatic resume.
Everything a later export needs lands in ``--run-dir``:

* ``config.json``        feature sizes, architecture, training arguments, split file lists
* ``best.weights.h5``    weights with the best validation loss (what ``nextblock.export`` uses)
* ``last.weights.h5``    weights after the latest epoch
* ``backup/``            Keras ``BackupAndRestore`` state: rerun the same command to resume
* ``history.csv``        per-epoch loss and ``snr_db`` (train and validation)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .argtypes import group_weight, int_list

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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring and ``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m nextblock.train",
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
    args = p.parse_args(argv)
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


def default_audio_roots() -> list[str]:
    """Every package folder in ``$NEXTBLOCK_CACHE/debian/extracted`` (error if there are none)."""
    from .model.audio_files import cache_extracted_dir

    extracted = cache_extracted_dir()
    roots = sorted(str(p) for p in extracted.iterdir() if p.is_dir()) if extracted.is_dir() else []
    if not roots:
        raise SystemExit(
            f"error: no --audio/--data given and nothing unpacked in {extracted} "
            "(run python -m nextblock.dataset, or pass --audio DIR)"
        )
    return roots


def load_windows(args, features) -> dict:
    """Windows per split from ``--data`` or ``--audio`` (cached under the run dir's parent cache)."""
    from .model.audio_files import cache_extracted_dir
    from .model.data import windows_from_audio, windows_from_shards

    wanted = {"train": args.train_examples, "validation": args.validation_examples}
    if args.data:
        if args.chained_share:
            raise ValueError("--chained-share needs --audio (the shards hold windows without the extra history)")
        return windows_from_shards(args.data, features, wanted, seed=args.seed, show_progress=not args.quiet)
    roots = args.audio or default_audio_roots()
    cache_dir = cache_extracted_dir().parent.parent / "windows"
    return windows_from_audio(
        roots,
        features,
        wanted,
        seed=args.seed,
        max_files_per_group=args.max_files_per_group,
        excerpt_seconds=args.excerpt_seconds,
        cache_dir=cache_dir,
        show_progress=not args.quiet,
        sample_rates_hz=tuple(args.train_rates_hz or ()) or None,
        group_weights=dict(args.group_weight) or None,
        history_samples=args.chained_max_samples if args.chained_share else 0,
    )


def check_run_dir(run_dir: Path, config: dict) -> None:
    """Refuse to resume a run dir whose features/architecture differ from this command's."""
    path = run_dir / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        for key in ("features", "architecture"):
            if old.get(key) != config[key]:
                raise SystemExit(f"error: {run_dir} holds a run with different {key}; choose another --run-dir")


def resume_epoch(run_dir: Path, model, steps_per_epoch: int) -> int:
    """Where to continue a finished run that is asked for more epochs.

    An *interrupted* run resumes through Keras' ``BackupAndRestore`` (``<run-dir>/backup``,
    exact: weights, optimizer, epoch). A run that *completed* (backup removed) and is started
    again with a larger ``--epochs`` continues from ``last.weights.h5`` at the epoch after the
    last row of ``history.csv``, with the learning-rate schedule advanced to that step (Adam's
    moments start afresh). Returns the epoch to start at (0 for a new run).
    """
    history, last = run_dir / "history.csv", run_dir / "last.weights.h5"
    if (run_dir / "backup").exists() or not history.is_file() or not last.is_file():
        return 0
    rows = [line for line in history.read_text().splitlines()[1:] if line.strip()]
    if not rows:
        return 0
    model.load_weights(str(last))
    model.optimizer.iterations.assign(len(rows) * steps_per_epoch)
    print(f"continuing {run_dir} after epoch {len(rows)} (from last.weights.h5)", flush=True)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .features.config import FeatureConfig
    from .model.architecture import ArchitectureConfig

    try:
        features = FeatureConfig(
            args.frames_per_block,
            args.context_samples,
            args.sample_rate_hz,
            2,
            args.window_fall_samples,
            args.lpc_order,
            args.lpc_burg_samples,
        )
        arch = ArchitectureConfig(args.width, args.blocks, args.kernel_bins, args.filter_taps)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir)
    config = {
        "features": features.to_dict(),
        "architecture": arch.to_dict(),
        "training": {k: v for k, v in vars(args).items() if k not in ("quiet",)},
    }
    check_run_dir(run_dir, config)

    import keras
    import numpy as np
    import tensorflow as tf

    from .features.twosided import GUESS_RECIPES
    from .model.architecture import build_model
    from .model.callbacks import make_tqdm_callback
    from .model.data import make_dataset, two_sided_arrays, windows_to_arrays
    from .model.distribute import make_strategy
    from .model.losses import make_loss, make_snr_metric

    if args.threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already running in this process (e.g. under pytest)
            print("note: --threads ignored, TensorFlow was already initialised in this process", file=sys.stderr)
    keras.utils.set_random_seed(args.seed)

    t0 = time.time()
    try:
        windows = load_windows(args, features)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from .model.examples import MAX_TARGET_GAIN, predictable

    for split in windows:  # onsets after silence: unpredictable, and they swamp the loss (also in cached windows)
        keep = predictable(windows[split], features.context_samples, features.output_samples)
        print(
            f"{split}: dropped {int(np.count_nonzero(~keep))} of {keep.shape[0]} windows whose continuation is "
            f"over {MAX_TARGET_GAIN:g}x louder than their context",
            flush=True,
        )
        windows[split] = windows[split][keep]
    if windows["train"].shape[0] < args.batch_size or windows["validation"].shape[0] == 0:
        print(
            f"error: too little audio: {windows['train'].shape[0]} training and "
            f"{windows['validation'].shape[0]} validation windows",
            file=sys.stderr,
        )
        return 2
    if args.chained_share:
        from .model.chained import chain_windows, make_chain_predictor

        t_chain = time.time()
        predictor = make_chain_predictor(args.chained_model, features)
        for i, split in enumerate(("train", "validation")):
            windows[split], depth = chain_windows(
                windows[split],
                features,
                predictor,
                args.chained_share,
                np.random.default_rng([args.seed, 13, i]),
                block_sizes=tuple(args.chained_block_sizes),
                max_chain_samples=args.chained_max_samples,
            )
            print(
                f"chained {split}: {int(np.count_nonzero(depth))} of {depth.shape[0]} contexts end with "
                f"predictions (mean {depth[depth > 0].mean() if depth.any() else 0:.0f} samples)",
                flush=True,
            )
        print(f"chained contexts made by {args.chained_model} in {time.time() - t_chain:.0f} s", flush=True)
    if args.two_sided and features.lpc_order <= 0:
        print("error: --two-sided needs guess channels (--lpc-order > 0)", file=sys.stderr)
        return 2
    if args.two_sided:

        def to_arrays(w, f):
            return two_sided_arrays(w, f, prior_model=args.two_sided_prior, recipe=GUESS_RECIPES[args.two_sided_guess])
    else:
        to_arrays = windows_to_arrays
    t_arrays = time.time()
    train_x, train_y = to_arrays(windows["train"], features)
    val_x, val_y = to_arrays(windows["validation"], features)
    print(f"features{' (two-sided guesses)' if args.two_sided else ''} in {time.time() - t_arrays:.0f} s", flush=True)
    del windows
    print(
        f"data: {train_x.shape[0]} training / {val_x.shape[0]} validation windows ({time.time() - t0:.0f} s)",
        flush=True,
    )

    strategy = make_strategy(args.strategy)
    steps = train_x.shape[0] // args.batch_size
    with strategy.scope():
        model = build_model(features, arch)
        if args.init_weights:
            model.load_weights(args.init_weights)
            print(f"starting from {args.init_weights}", flush=True)
        schedule = keras.optimizers.schedules.CosineDecay(
            args.learning_rate, decay_steps=steps * args.epochs, alpha=0.05
        )
        model.compile(
            optimizer=keras.optimizers.Adam(schedule, clipnorm=1.0),
            loss=make_loss(
                features,
                spectral_weight=args.spectral_weight,
                log_floor=args.spectral_floor,
                phase_weight=args.phase_weight,
                fft_sizes=tuple(args.spectral_fft_sizes),
                first_block_only=args.two_sided,
            ),
            metrics=[make_snr_metric(features)],
        )
    print(
        f"model: {model.count_params()} parameters, strategy {type(strategy).__name__} "
        f"({strategy.num_replicas_in_sync} replica(s))",
        flush=True,
    )

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        keras.callbacks.ModelCheckpoint(str(run_dir / "best.weights.h5"), save_best_only=True, save_weights_only=True),
        keras.callbacks.ModelCheckpoint(str(run_dir / "last.weights.h5"), save_weights_only=True),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
    ]
    if not args.quiet:
        callbacks.append(make_tqdm_callback(steps, args.epochs))
    initial_epoch = resume_epoch(run_dir, model, steps)
    if initial_epoch >= args.epochs:
        print(f"{run_dir} already has {initial_epoch} epochs (--epochs {args.epochs}); nothing to do")
        return 0
    t1 = time.time()
    model.fit(
        x=make_dataset(train_x, train_y, args.batch_size, shuffle=True, seed=args.seed),
        initial_epoch=initial_epoch,
        validation_data=make_dataset(val_x, val_y, args.batch_size, shuffle=False),
        epochs=args.epochs,
        callbacks=callbacks,
        verbose=0,
    )
    elapsed = time.time() - t1
    config["result"] = {
        "train_seconds": round(elapsed, 1),
        "parameters": int(model.count_params()),
        "train_windows": int(train_x.shape[0]),
        "validation_windows": int(val_x.shape[0]),
    }
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    print(f"done in {elapsed / 60:.1f} min; export with: python -m nextblock.export --run-dir {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
