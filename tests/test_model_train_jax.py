"""Training on an accelerator: python -m nextblock.train_jax (Keras on JAX), here on the CPU.

The run is small (a few hundred windows, seconds of training): it checks the whole path a GPU
machine runs — packed corpus → windows → chains made by Keras weights → features in worker
processes → jitted training of two networks in turn → run folders that
``python -m nextblock.export`` (TensorFlow) turns into a model the runtime loads.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from resources import needs

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "models" / "nextblock-default.weights.h5"


def _run(args, **kw):
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        OPENBLAS_NUM_THREADS="1",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=str(REPO / "python") + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    return subprocess.run(
        [sys.executable, "-m", "nextblock.train_jax", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=kw.get("timeout", 600),
        check=False,
    )


def test_bad_arguments_are_refused_with_a_reason(tmp_path):
    result = _run(["--corpus", str(tmp_path), "--run", "a=wide"])
    assert result.returncode == 2 and "NAME=WIDTHxBLOCKS" in result.stderr
    result = _run(["--corpus", str(tmp_path), "--run", "a=8x1"])
    assert result.returncode == 2 and "no corpus.json" in result.stderr


def _corpus(root: Path) -> Path:
    import soundfile as sf

    from nextblock.model.corpus import pack_corpus

    rng = np.random.default_rng(2)
    folder = root / "tones"
    folder.mkdir()
    for i in range(24):
        t = np.arange(48000) / 48000
        chord = sum(
            0.2 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (196 + 7 * i, 293 + 5 * i, 440 + 3 * i)
        )
        sf.write(
            str(folder / f"chord{i}.wav"), (chord + 0.01 * rng.standard_normal(t.shape[0])).astype(np.float32), 48000
        )
    pack_corpus(
        [str(folder)],
        root / "corpus",
        {"train": 12.0, "validation": 4.0},
        (48000,),
        excerpt_seconds=1.0,
        show_progress=False,
    )
    return root / "corpus"


def test_two_networks_train_and_export(tmp_path):
    try:
        import jax  # noqa: F401 - only whether it is installed
    except ImportError:
        needs("jax", "pip install -e .[train] (nextblock.train_jax trains with Keras on JAX)")
    corpus = _corpus(tmp_path)
    runs = tmp_path / "runs"
    result = _run(
        [
            "--corpus",
            str(corpus),
            "--out",
            str(runs),
            "--minutes",
            "0.05",
            "--train-windows",
            "600",
            "--validation-windows",
            "200",
            "--batch-size",
            "32",
            "--chunk-steps",
            "2",
            "--workers",
            "1",
            "--run",
            f"init=32x4@{WEIGHTS}",
            "--run",
            "small=8x1",
            "--chained-weights",
            str(WEIGHTS),
            "--chained-share",
            "0.3",
        ]
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "chained contexts" in result.stdout
    for name, width, blocks in (("init", 32, 4), ("small", 8, 1)):
        run = runs / name
        assert {p.name for p in run.iterdir()} >= {"config.json", "best.weights.h5", "last.weights.h5", "history.csv"}
        config = json.loads((run / "config.json").read_text())
        assert config["architecture"]["width"] == width and config["architecture"]["blocks"] == blocks
        assert config["training"]["backend"] == "jax" and config["training"]["steps"] > 0
        rows = list(csv.DictReader((run / "history.csv").open()))
        assert rows[0]["step"] == "0" and int(rows[-1]["step"]) > 0
        assert all(math.isfinite(float(r["val_loss"])) for r in rows)

    # TensorFlow side: the JAX-trained weights export and run like any run folder
    from nextblock.commands.export import main as export_main
    from nextblock.model.runner import BlockPredictor

    out = tmp_path / "small.tflite"
    assert (
        export_main(["--run-dir", str(runs / "small"), "--output", str(out), "--name", "t", "--model-version", "0.0.1"])
        == 0
    )
    predictor = BlockPredictor(out, warm_up=False)
    context = (0.1 * np.sin(np.arange(1024) * 0.05)).astype(np.float32)[None, :]
    assert np.isfinite(predictor.predict(context)).all()
    assert predictor.metadata["sample_rates_hz"] == [48000]
