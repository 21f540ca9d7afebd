"""``python -m nextblock.export``: turn a training run into a ``.tflite`` with metadata (see ``--help``).

Steps: rebuild the Keras model from ``<run-dir>/config.json`` and load its weights → convert
with the TFLite converter (float32; ``--float16`` also writes a float16-weight variant) → embed
the NextBlock metadata (block size, context, sample rate, channel layout, …) in the flatbuffer →
check that LiteRT reproduces Keras on the run's validation-like inputs → write the file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

FEATURE_DESCRIPTION = (
    "context / RMS x asymmetric sin^2-rise/cos^2-fall window -> rfft -> per bin (re, im, log|X|/4), "
    "and with lpc_order > 0 (re, im) of the rfft of an order-lpc_order LPC continuation on the output bin grid; "
    "network: 1D CNN over frequency bins (stride = context/output bins) with a complex deep-filter head "
    "(+ a complex gain on the LPC guess); "
    "output: rfft (re, im) of the next outputs_blocks*frames_per_block samples, irfft x RMS, "
    "start joined to the context over boundary_ramp_samples (raised cosine: from the LPC guess when "
    "lpc_order > 0, else an offset ramp)"
)


def load_run(run_dir: Path, which: str):
    """Rebuild the Keras model of a run and load its weights. Returns ``(model, config, features)``."""
    from .features.config import FeatureConfig
    from .model.architecture import ArchitectureConfig, build_model

    config_path = run_dir / "config.json"
    weights_path = run_dir / f"{which}.weights.h5"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no config.json (is it a nextblock.train --run-dir?)")
    if not weights_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no {weights_path.name} (did training finish an epoch?)")
    config = json.loads(config_path.read_text())
    features = FeatureConfig.from_dict(config["features"])
    model = build_model(features, ArchitectureConfig.from_dict(config["architecture"]))
    model.load_weights(str(weights_path))
    return model, config, features


def convert(model, float16: bool = False) -> bytes:
    """TFLite flatbuffer of ``model`` (float32, or float16 weights when asked)."""
    import contextlib
    import io

    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its SavedModel signature
        return converter.convert()


def check_inputs(features, count: int = 64):
    """Realistic check inputs: features of sums of random sinusoids plus noise. ``(count, bins, channels)``."""
    import numpy as np

    from .features.spectral import SpectralCodec

    rng = np.random.default_rng(0)
    t = np.arange(features.context_samples) / features.sample_rate_hz
    contexts = np.zeros((count, features.context_samples), np.float32)
    for i in range(count):
        for _ in range(rng.integers(1, 6)):
            contexts[i] += rng.uniform(0.01, 0.3) * np.sin(2 * np.pi * rng.uniform(50, 8000) * t + rng.uniform(0, 6.3))
        contexts[i] += rng.uniform(0, 0.05) * rng.standard_normal(features.context_samples)
    return SpectralCodec(features).encode(contexts)[0]


def max_difference(model, tflite_bytes: bytes, inputs) -> float:
    """Largest |LiteRT − Keras| over ``inputs`` (``(n, bins, channels)``), running LiteRT one row at a time."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    expected = np.asarray(model(inputs, training=False))
    interpreter = Interpreter(model_content=tflite_bytes, num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    worst = 0.0
    for i in range(inputs.shape[0]):
        interpreter.set_tensor(inp, inputs[i : i + 1])
        interpreter.invoke()
        worst = max(worst, float(np.max(np.abs(interpreter.get_tensor(out)[0] - expected[i]))))
    return worst


def build_metadata(
    config: dict,
    features,
    name: str,
    version: str,
    parameters: int,
    macs: int,
    weights: str,
    boundary_ramp_samples: int | None = None,
    guess_weight: float = 0.0,
) -> dict:
    """The metadata dict embedded in the model (required fields + provenance).

    ``boundary_ramp_samples``: ``None`` → :func:`nextblock.features.continuity.default_ramp_samples`.
    """
    from .features.continuity import default_ramp_samples
    from .features.spectral import SpectralCodec
    from .model.metadata import METADATA_FORMAT

    if boundary_ramp_samples is None:
        boundary_ramp_samples = default_ramp_samples(features.lpc_order)
    training = config.get("training", {})
    # a model trained on several rates serves each of them, and any block size (nextblock.model.stream)
    rates = sorted({int(r) for r in (training.get("train_rates_hz") or [])})
    coverage = {"sample_rates_hz": rates, "horizon_samples": features.output_samples} if rates else {}
    # a two-sided network (train --two-sided) says so, with the gap and the guess it was trained on
    two_sided = {}
    if training.get("two_sided"):
        from .features.twosided import GUESS_RECIPES

        fused = bool(training.get("two_sided_prior"))
        recipe = GUESS_RECIPES[training.get("two_sided_guess") or "fast"]
        two_sided = {
            "two_sided": {
                "gap_samples": features.frames_per_block,
                "guess": "fusion" if fused else "lsar",
                **recipe.metadata(),
                # plain LSAR without a prior model: the recipe's prior weight does not apply
                **({} if fused else {"prior_weight": 0.0}),
            }
        }

    return {
        "format": METADATA_FORMAT,
        "name": name,
        "model_version": version,
        "frames_per_block": features.frames_per_block,
        "context_samples": features.context_samples,
        "sample_rate_hz": features.sample_rate_hz,
        "outputs_blocks": features.outputs_blocks,
        "window_fall_samples": features.window_fall_samples,
        "lpc_order": features.lpc_order,
        "lpc_burg_samples": features.lpc_burg_samples,
        "boundary_ramp_samples": boundary_ramp_samples,
        "guess_weight": float(guess_weight),
        "channels_layout": "mono, per channel",
        "input": f"features float32 [channels, {features.input_bins}, {SpectralCodec(features).feature_channels}]",
        "output": f"spectrum float32 [channels, {features.output_bins}, 2]",
        "feature": FEATURE_DESCRIPTION,
        "weights": weights,
        "architecture": config["architecture"],
        "parameters": parameters,
        "macs_per_channel": macs,
        **coverage,
        **two_sided,
        "training": {
            k: training.get(k)
            for k in (
                "epochs",
                "batch_size",
                "learning_rate",
                "spectral_weight",
                "phase_weight",
                "spectral_fft_sizes",
                "train_rates_hz",
                "group_weight",
                "seed",
                "train_examples",
                "two_sided",
                "chained_share",
            )
        },
        "training_result": config.get("result", {}),
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def run(args: argparse.Namespace) -> int:
    """Export (or ``--show``) as ``args`` (:func:`nextblock.commands.export.build_parser`) say; returns the exit status."""
    from .model.metadata import ModelFileError, embed_metadata, read_metadata

    if args.show:
        try:
            print(json.dumps(read_metadata(args.show), indent=2, sort_keys=True))
        except (FileNotFoundError, ModelFileError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tqdm.auto import tqdm

    from .model.architecture import count_macs

    steps = tqdm(total=4, desc="export", unit="step")
    try:
        model, config, features = load_run(Path(args.run_dir), args.weights)
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    steps.update(1)
    output = Path(args.output)
    name = args.name or output.stem
    version = args.model_version or "1." + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M")
    metadata = build_metadata(
        config,
        features,
        name,
        version,
        int(model.count_params()),
        count_macs(model),
        args.weights,
        args.boundary_ramp_samples,
        args.guess_weight,
    )
    variants = [(output, False)] + ([(output.with_name(output.stem + "-fp16.tflite"), True)] if args.float16 else [])
    inputs = check_inputs(features)
    steps.update(1)
    results = []
    for path, half in variants:
        data = convert(model, float16=half)
        difference = max_difference(model, data, inputs)
        tolerance = args.tolerance * (30 if half else 1)
        if difference > tolerance:
            print(
                f"error: {path.name}: LiteRT differs from Keras by {difference:.2e} > {tolerance:.1e}", file=sys.stderr
            )
            return 1
        data = embed_metadata(data, dict(metadata, precision="float16 weights" if half else "float32"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        read_metadata(path)  # round-trip check
        results.append((path, len(data), difference))
    steps.update(2)
    steps.close()
    for path, size, difference in results:
        print(f"wrote {path} ({size / 1024:.0f} KiB, max |LiteRT - Keras| = {difference:.1e})")
    print(f"{metadata['parameters']} parameters, {metadata['macs_per_channel'] / 1e6:.2f} M MACs per channel and block")
    return 0


if __name__ == "__main__":
    from nextblock.commands.export import main

    sys.exit(main(prog="python -m nextblock.export"))
