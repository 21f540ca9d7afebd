"""Train NextBlock networks on an accelerator: Keras on JAX, a packed corpus, a time budget.

``python -m nextblock.train`` (TensorFlow, tf.distribute) trains the shipped models on CPUs for
a fixed number of epochs over a fixed set of windows. This entry point is for a GPU machine lent
for a few minutes, with no TensorFlow and no Debian cache:

* the audio is a corpus packed beforehand by :func:`nextblock.model.corpus.pack_corpus`
  (Ogg Vorbis excerpts, tens of MB), cut into fresh windows here;
* features (Burg guess included) are computed by worker processes with the same
  :class:`~nextblock.features.spectral.SpectralCodec` the runtime uses, then live on the device;
* chained (burst) contexts as in :mod:`nextblock.model.chained`, made by a Keras weights file
  (e.g. ``models/nextblock-default.weights.h5``) run on the device;
* several architectures train *in turn* in one process (one copy of the data), each for its
  share of ``--minutes``; the learning rate follows a cosine over the steps that fit, measured
  after compilation; a sign flip per example doubles the data (the task is odd-symmetric);
* every run directory holds what ``python -m nextblock.export --run-dir`` reads
  (``config.json``, ``best.weights.h5`` by validation loss, ``last.weights.h5``, ``history.csv``).

Example (on the GPU machine, after ``pip install keras``)::

    KERAS_BACKEND=jax python -m nextblock.train_jax --corpus corpus --minutes 6 \\
        --run w32b4=32x4@models/nextblock-default.weights.h5 --run w48b6=48x6 --out runs

The loss is :func:`nextblock.model.losses.make_loss` (``keras.ops``), the network
:func:`nextblock.model.architecture.build_model`: the same code as CPU training.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from .argtypes import int_list
from .features.config import FeatureConfig

#: the shipped model's features (3.4.0: Burg AR(384) on the last 1024 samples; scripts/training_recipe.sh
#: with scripts/finetune_high_order_guess.sh's --lpc-order/--lpc-burg-samples), so that a run starting
#: from models/nextblock-default.weights.h5 continues the guess those weights were trained on
DEFAULT_FEATURES = FeatureConfig(128, 1024, 48000, 2, 128, 384, 1024)
#: the feature channels that change sign with the audio (re, im of the context and of the guess)
SIGNED_CHANNELS = (0, 1, 3, 4)
#: most rows per network call when making chains (calls are padded to a power of two: few shapes to compile)
PREDICT_ROWS = 16384


@dataclass(frozen=True)
class RunSpec:
    """One network to train: ``NAME=WIDTHxBLOCKS[@INIT.weights.h5]``."""

    name: str
    width: int
    blocks: int
    init_weights: str | None = None

    @classmethod
    def parse(cls, text: str) -> RunSpec:
        try:
            name, rest = text.split("=", 1)
            shape, _, init = rest.partition("@")
            width, blocks = (int(v) for v in shape.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME=WIDTHxBLOCKS[@INIT.weights.h5], got {text!r}") from None
        if not name or width <= 0 or blocks <= 0:
            raise argparse.ArgumentTypeError(f"expected NAME=WIDTHxBLOCKS[@INIT.weights.h5], got {text!r}")
        return cls(name, width, blocks, init or None)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m nextblock.train_jax",
        description="Train one or more NextBlock networks on an accelerator (Keras on JAX) for a fixed time, "
        "from a packed corpus (nextblock.model.corpus). Each run's folder can be exported with "
        "python -m nextblock.export --run-dir.",
        epilog="Example: KERAS_BACKEND=jax python -m nextblock.train_jax --corpus corpus --minutes 6 "
        "--run w32b4=32x4@models/nextblock-default.weights.h5 --run w48b6=48x6 --out runs",
    )
    p.add_argument("--corpus", required=True, help="folder with corpus.json (pack_corpus)")
    p.add_argument(
        "--run",
        action="append",
        type=RunSpec.parse,
        required=True,
        metavar="NAME=WxB[@H5]",
        help="a network: trunk width x residual blocks, optionally starting from Keras weights; repeatable",
    )
    p.add_argument("--out", default="runs", help="parent of the run folders (default %(default)s)")
    p.add_argument(
        "--minutes", type=float, default=5.0, help="training time for all runs together (default %(default)s)"
    )
    p.add_argument(
        "--train-windows",
        type=int,
        default=1_000_000,
        help="training windows cut from the corpus (default %(default)s)",
    )
    p.add_argument("--validation-windows", type=int, default=16_384, help="validation windows (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=512, help="batch size (default %(default)s)")
    p.add_argument("--learning-rate", type=float, default=2e-3, help="peak Adam learning rate (default %(default)s)")
    p.add_argument(
        "--init-learning-rate",
        type=float,
        default=1e-3,
        help="peak learning rate of runs that start from weights (default %(default)s)",
    )
    p.add_argument(
        "--chained-share", type=float, default=0.4, help="share of windows with chained contexts (default %(default)s)"
    )
    p.add_argument("--chained-weights", metavar="H5", help="Keras weights (32x4) that make the chains; none: no chains")
    p.add_argument("--spectral-weight", type=float, default=0.3, help="(default %(default)s)")
    p.add_argument("--phase-weight", type=float, default=0.2, help="(default %(default)s)")
    p.add_argument(
        "--spectral-fft-sizes",
        type=int_list,
        default=[32, 64, 128, 256],
        metavar="N[,N...]",
        help="STFT frame lengths of the loss (default 32,64,128,256)",
    )
    p.add_argument(
        "--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1), help="feature processes (default: CPUs - 1)"
    )
    p.add_argument("--chunk-steps", type=int, default=200, help="steps per compiled loop call (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default %(default)s)")
    return p.parse_args(argv)


# ---------------------------------------------------------------- features in worker processes
def _encode_chunk(contexts: np.ndarray, features: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from .features.spectral import SpectralCodec

    return SpectralCodec(FeatureConfig.from_dict(features)).encode_with_guess(contexts)


class ParallelCodec:
    """``SpectralCodec.encode_with_guess`` over many rows, split across worker processes."""

    def __init__(self, config: FeatureConfig, workers: int):
        self.config = config
        self.workers = workers
        # forkserver: workers never inherit the accelerator's runtime
        self.pool = ProcessPoolExecutor(workers, mp_context=get_context("forkserver"))

    def encode(self, contexts: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(n, context_samples)`` → features ``(n, bins, channels)``, scale ``(n,)``, guess ``(n, output_samples)``."""
        parts = [contexts[i : i + chunk] for i in range(0, contexts.shape[0], chunk)]
        results = list(self.pool.map(_encode_chunk, parts, [self.config.to_dict()] * len(parts)))
        return tuple(np.concatenate([r[k] for r in results]) for k in range(3))

    def close(self) -> None:
        self.pool.shutdown()


def keras_horizon_predictor(
    weights: str, config: FeatureConfig, codec: ParallelCodec, width: int = 32, blocks: int = 4
):
    """A :data:`nextblock.model.chained.HorizonPredictor` running Keras weights as the runtime does
    (encode → network → :meth:`SpectralCodec.decode_joined` with guess weight 0 and the boundary ramp)."""
    from .features.continuity import boundary_ramp, default_ramp_samples
    from .features.spectral import SpectralCodec
    from .model.architecture import ArchitectureConfig, build_model

    model = build_model(config, ArchitectureConfig(width, blocks), depthwise_taps=True)
    model.load_weights(weights)
    plain = SpectralCodec(config)
    ramp = boundary_ramp(default_ramp_samples(config.lpc_order))

    def predict(contexts: np.ndarray) -> np.ndarray:
        features, scale, guess = codec.encode(contexts)
        spectrum = []
        for i in range(0, features.shape[0], PREDICT_ROWS):
            part = features[i : i + PREDICT_ROWS]
            rows = min(PREDICT_ROWS, 1 << (part.shape[0] - 1).bit_length())  # powers of two: few compilations
            padded = np.zeros((rows,) + part.shape[1:], np.float32)
            padded[: part.shape[0]] = part
            spectrum.append(np.asarray(model.predict_on_batch(padded))[: part.shape[0]])
        spectrum = np.concatenate(spectrum)
        return plain.decode_joined(spectrum, scale, contexts, guess, 0.0, ramp).reshape(contexts.shape[0], -1)

    return predict


def make_arrays(
    corpus: str,
    split: str,
    count: int,
    config: FeatureConfig,
    codec: ParallelCodec,
    chained_share: float,
    chain_predictor,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(n, bins, channels)`` and RMS-unit targets ``(n, output_samples)`` of one split."""
    from .model.chained import chain_windows
    from .model.corpus import corpus_windows

    history = 768 if chain_predictor is not None and chained_share > 0 else 0
    t0 = time.time()
    windows = corpus_windows(corpus, split, count, config, history_samples=history, seed=seed)
    print(f"{split}: {windows.shape[0]} windows ({time.time() - t0:.0f} s)", flush=True)
    if history:
        t0 = time.time()
        windows, depth = chain_windows(
            windows,
            config,
            chain_predictor,
            chained_share,
            np.random.default_rng([seed, 13]),
            max_chain_samples=history,
        )
        print(f"{split}: {int(np.count_nonzero(depth))} chained contexts ({time.time() - t0:.0f} s)", flush=True)
    t0 = time.time()
    features, scale, _ = codec.encode(np.ascontiguousarray(windows[:, : config.context_samples]))
    targets = (windows[:, config.context_samples :] / scale[:, None]).astype(np.float32)
    print(f"{split}: features {features.shape} ({time.time() - t0:.0f} s)", flush=True)
    return features, targets


# ---------------------------------------------------------------- training
class Trainer:
    """One network's state and jitted steps (Keras ``stateless_call`` + ``stateless_apply``)."""

    def __init__(self, spec: RunSpec, config: FeatureConfig, args: argparse.Namespace, out_dir: Path):
        import jax
        import keras

        from .features.spectral import SpectralCodec
        from .model.architecture import ArchitectureConfig, build_model
        from .model.losses import make_loss, make_snr_metric

        self.spec = spec
        self.arch = ArchitectureConfig(spec.width, spec.blocks)
        self.model = build_model(config, self.arch, depthwise_taps=True)
        if spec.init_weights:
            self.model.load_weights(spec.init_weights)
        self.peak_lr = args.init_learning_rate if spec.init_weights else args.learning_rate
        self.optimizer = keras.optimizers.Adam(self.peak_lr, clipnorm=1.0)
        self.optimizer.build(self.model.trainable_variables)
        self.lr_index = next(i for i, v in enumerate(self.optimizer.variables) if v is self.optimizer._learning_rate)
        loss_fn = make_loss(
            config,
            spectral_weight=args.spectral_weight,
            phase_weight=args.phase_weight,
            fft_sizes=tuple(args.spectral_fft_sizes),
        )
        snr_fn = make_snr_metric(config)
        self.state = (
            [v.value for v in self.model.trainable_variables],
            [v.value for v in self.model.non_trainable_variables],
            [v.value for v in self.optimizer.variables],
        )
        self.step = 0
        self.out_dir = out_dir / spec.name
        self.history: list[dict] = []
        self.best = (float("inf"), None)
        self.config, self.args = config, args
        model, optimizer, batch, lr_index = self.model, self.optimizer, args.batch_size, self.lr_index

        def compute_loss(tv, ntv, x, y):
            pred, ntv = model.stateless_call(tv, ntv, x, training=True)
            return keras.ops.mean(loss_fn(y, pred)), ntv

        grad_fn = jax.value_and_grad(compute_loss, has_aux=True)
        signed = np.zeros(SpectralCodec(config).feature_channels, np.float32)  # 1: the channel flips with the audio
        signed[list(SIGNED_CHANNELS)] = 1.0

        def run_steps(state, key, x_all, y_all, first_step, total_steps, n_steps):
            def body(i, carry):
                tv, ntv, ov, key, loss_sum = carry
                key, k_idx, k_sign = jax.random.split(key, 3)
                idx = jax.random.randint(k_idx, (batch,), 0, x_all.shape[0])
                flip = jax.random.rademacher(k_sign, (batch,), dtype=np.float32)
                channel_sign = 1.0 + signed * (flip[:, None, None] - 1.0)  # -1 on signed channels where flipped
                x = x_all[idx] * channel_sign
                y = y_all[idx] * flip[:, None]
                progress = jax.numpy.minimum((first_step + i) / total_steps, 1.0)
                lr = self.peak_lr * (0.05 + 0.95 * 0.5 * (1.0 + jax.numpy.cos(np.pi * progress)))
                ov = list(ov)
                ov[lr_index] = lr.astype(ov[lr_index].dtype)
                (loss, ntv), grads = grad_fn(tv, ntv, x, y)
                tv, ov = optimizer.stateless_apply(ov, grads, tv)
                return tv, ntv, ov, key, loss_sum + loss

            tv, ntv, ov = state
            tv, ntv, ov, key, loss_sum = jax.lax.fori_loop(0, n_steps, body, (tv, ntv, ov, key, 0.0))
            return (tv, ntv, ov), key, loss_sum / n_steps

        def evaluate(state, x, y):
            tv, ntv, _ = state
            pred, _ = model.stateless_call(tv, ntv, x, training=False)
            return keras.ops.mean(loss_fn(y, pred)), keras.ops.mean(snr_fn(y, pred))

        self._run_steps = jax.jit(run_steps, static_argnums=(6,))
        self._evaluate = jax.jit(evaluate)

    def train(self, key, x, y, total_steps: int, n_steps: int):
        self.state, key, loss = self._run_steps(self.state, key, x, y, self.step, total_steps, n_steps)
        self.step += n_steps
        return key, float(loss)

    def validate(self, x, y, chunk: int = 4096) -> tuple[float, float]:
        """Mean loss and first-block SNR (dB) over all of ``x``/``y`` (chunks of ``chunk`` rows)."""
        losses, snrs, weights = [], [], []
        for i in range(0, x.shape[0], chunk):
            loss, snr = self._evaluate(self.state, x[i : i + chunk], y[i : i + chunk])
            losses.append(float(loss))
            snrs.append(float(snr))
            weights.append(min(chunk, x.shape[0] - i))
        return float(np.average(losses, weights=weights)), float(np.average(snrs, weights=weights))

    def _assign(self, state) -> None:
        tv, ntv, _ = state
        for v, value in zip(self.model.trainable_variables, tv, strict=True):
            v.assign(value)
        for v, value in zip(self.model.non_trainable_variables, ntv, strict=True):
            v.assign(value)

    def record(self, train_loss: float, val_loss: float, val_snr: float, seconds: float) -> None:
        import jax

        row = {
            "step": self.step,
            "seconds": round(seconds, 1),
            "loss": train_loss,
            "val_loss": val_loss,
            "val_snr_db": val_snr,
        }
        self.history.append(row)
        if val_loss < self.best[0]:
            self.best = (val_loss, jax.device_get(self.state))
            if self.step:  # kept on disk at once: a run stopped from outside keeps its best model
                self.out_dir.mkdir(parents=True, exist_ok=True)
                self._assign(self.best[1])
                self.model.save_weights(str(self.out_dir / "best.weights.h5"))
        print(
            f"{self.spec.name}: step {self.step} loss {train_loss:.4f} val_loss {val_loss:.4f} "
            f"val_snr {val_snr:.2f} dB",
            flush=True,
        )

    def save(self, training: dict, final: bool = True) -> None:
        """Write config.json and history.csv; with ``final``, also last and best weights."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if final:
            self._assign(self.state)
            self.model.save_weights(str(self.out_dir / "last.weights.h5"))
            if self.best[1] is not None:
                self._assign(self.best[1])
            self.model.save_weights(str(self.out_dir / "best.weights.h5"))
        if self.history:
            with open(self.out_dir / "history.csv", "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(self.history[0]))
                writer.writeheader()
                writer.writerows(self.history)
        config = {
            "features": self.config.to_dict(),
            "architecture": self.arch.to_dict(),
            "training": dict(
                training, init_weights=self.spec.init_weights, learning_rate=self.peak_lr, steps=self.step
            ),
            "result": {
                "parameters": int(self.model.count_params()),
                "best_val_loss": self.best[0],
                "train_seconds": self.history[-1]["seconds"] if self.history else 0,
            },
        }
        (self.out_dir / "config.json").write_text(json.dumps(config, indent=2))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.environ.get("KERAS_BACKEND", "jax") != "jax":
        print("error: nextblock.train_jax needs KERAS_BACKEND=jax (or unset)", file=sys.stderr)
        return 2
    os.environ["KERAS_BACKEND"] = "jax"
    from .model.corpus import read_corpus

    try:
        manifest = read_corpus(args.corpus)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    config = DEFAULT_FEATURES
    codec = ParallelCodec(config, args.workers)  # before JAX starts its threads
    import jax
    import keras

    keras.utils.set_random_seed(args.seed)
    print(f"devices: {jax.devices()}; {args.workers} feature workers", flush=True)
    t_start = time.time()
    chain = keras_horizon_predictor(args.chained_weights, config, codec) if args.chained_weights else None
    train_x, train_y = make_arrays(
        args.corpus, "train", args.train_windows, config, codec, args.chained_share, chain, args.seed
    )
    val_x, val_y = make_arrays(
        args.corpus, "validation", args.validation_windows, config, codec, args.chained_share, chain, args.seed + 1
    )
    codec.close()
    train_x, train_y = jax.device_put(train_x), jax.device_put(train_y)
    val_x, val_y = jax.device_put(val_x), jax.device_put(val_y)
    print(f"data ready in {time.time() - t_start:.0f} s", flush=True)

    out = Path(args.out)
    trainers = [Trainer(spec, config, args, out) for spec in args.run]
    key = jax.random.PRNGKey(args.seed)
    chunk = args.chunk_steps
    for trainer in trainers:  # where each run starts (an initialised run: its starting model's score)
        trainer.record(float("nan"), *trainer.validate(val_x, val_y), 0.0)
    # compile and measure: one chunk each to compile, one timed
    rates = []
    for trainer in trainers:
        t0 = time.time()
        key, loss = trainer.train(key, train_x, train_y, 10**9, chunk)
        t1 = time.time()
        key, loss = trainer.train(key, train_x, train_y, 10**9, chunk)
        rates.append(chunk / (time.time() - t1))
        print(
            f"{trainer.spec.name}: compiled in {t1 - t0:.0f} s, {rates[-1]:.0f} steps/s "
            f"({rates[-1] * args.batch_size:.0f} windows/s)",
            flush=True,
        )
    budget_s = args.minutes * 60.0  # for training proper (data and compilation come on top)
    share_s = budget_s / len(trainers)
    totals = [max(4 * chunk, int(rate * share_s * 0.9)) for rate in rates]
    for trainer, total in zip(trainers, totals, strict=True):
        trainer.step = 0  # the cosine restarts from the peak over the planned steps
        print(f"{trainer.spec.name}: {total} steps planned ({total * args.batch_size / 1e6:.1f} M windows)", flush=True)
    training = {
        "corpus": str(args.corpus),
        "corpus_excerpts": len(manifest["excerpts"]),
        "train_rates_hz": manifest.get("rates_hz"),
        "group_weight": sorted(manifest.get("group_weights", {}).items()),
        "train_windows": int(train_x.shape[0]),
        "validation_windows": int(val_x.shape[0]),
        "batch_size": args.batch_size,
        "spectral_weight": args.spectral_weight,
        "phase_weight": args.phase_weight,
        "spectral_fft_sizes": list(args.spectral_fft_sizes),
        "chained_share": args.chained_share if args.chained_weights else 0.0,
        "chained_weights": args.chained_weights,
        "seed": args.seed,
        "backend": "jax",
        "device": str(jax.devices()[0]),
    }
    for trainer in trainers:
        trainer.save(training, final=False)
    t_train = time.time()
    last_val = [0.0] * len(trainers)
    while True:
        active = [i for i, t in enumerate(trainers) if t.step < totals[i]]
        if not active:
            break
        for i in active:
            trainer = trainers[i]
            n = min(chunk * 5, totals[i] - trainer.step)
            key, loss = trainer.train(key, train_x, train_y, totals[i], n)
            if time.time() - last_val[i] > 20 or trainer.step >= totals[i]:
                val_loss, val_snr = trainer.validate(val_x, val_y)
                trainer.record(loss, val_loss, val_snr, time.time() - t_train)
                trainer.save(training, final=False)
                last_val[i] = time.time()
        if time.time() - t_train > budget_s * 1.15:
            print("time budget exceeded: stopping early", flush=True)
            break
    for trainer in trainers:
        trainer.save(training)
        print(f"{trainer.spec.name}: best val_loss {trainer.best[0]:.4f}, saved to {trainer.out_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
