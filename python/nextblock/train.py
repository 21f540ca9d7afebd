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


def run(args: argparse.Namespace) -> int:
    """Train as ``args`` (:func:`nextblock.commands.train.build_parser`) say; returns the exit status."""
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
    from nextblock.commands.train import main

    sys.exit(main(prog="python -m nextblock.train"))
