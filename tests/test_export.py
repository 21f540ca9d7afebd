"""End to end: `nextblock.train` (a few steps) → resume → `nextblock.export` → LiteRT ≈ Keras."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TensorFlow (training extra) is not installed")

TINY = [
    "--context-samples",
    "512",
    "--window-fall-samples",
    "64",
    "--width",
    "8",
    "--blocks",
    "1",
    "--train-examples",
    "256",
    "--validation-examples",
    "64",
    "--batch-size",
    "64",
    "--quiet",
    "--threads",
    "1",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run dir trained for 1 epoch, then resumed to 2, on synthetic tones + noise."""
    import soundfile as sf

    from nextblock.commands import train

    root = tmp_path_factory.mktemp("export")
    audio_dir = root / "audio" / "tones"
    audio_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 48000
    for i in range(30):  # enough recordings that the hash split gives every split some
        tone = sum(rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) for _ in range(3))
        sf.write(
            str(audio_dir / f"take{i:02d}.wav"), (tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32), 48000
        )
    mp = pytest.MonkeyPatch()
    mp.setenv("NEXTBLOCK_CACHE", str(root / "cache"))
    run_dir = root / "run"
    try:
        assert train.main(["--audio", str(audio_dir.parent), "--run-dir", str(run_dir), "--epochs", "1", *TINY]) == 0
        assert train.main(["--audio", str(audio_dir.parent), "--run-dir", str(run_dir), "--epochs", "2", *TINY]) == 0
    finally:
        mp.undo()
    return run_dir


def test_training_writes_checkpoints_and_resumes(tiny_run):
    assert (tiny_run / "best.weights.h5").is_file() and (tiny_run / "last.weights.h5").is_file()
    with open(tiny_run / "history.csv") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [0, 1]  # the second command resumed at epoch 2 instead of starting over


def test_training_refuses_a_run_dir_with_other_sizes(tiny_run):
    from nextblock.commands import train

    with pytest.raises(SystemExit, match="different"):
        train.main(["--audio", str(tiny_run), "--run-dir", str(tiny_run), *TINY, "--width", "16"])


def test_export_matches_keras_and_embeds_metadata(tiny_run, tmp_path):
    from nextblock import export
    from nextblock.commands import export as export_command
    from nextblock.features import SpectralCodec
    from nextblock.model.metadata import read_metadata
    from nextblock.model.runner import BlockPredictor

    out = tmp_path / "tiny.tflite"
    assert (
        export_command.main(
            [
                "--run-dir",
                str(tiny_run),
                "--output",
                str(out),
                "--float16",
                "--model-version",
                "9.9",
                "--boundary-ramp-samples",
                "0",
            ]
        )
        == 0
    )
    md = read_metadata(out)
    assert (md["frames_per_block"], md["context_samples"], md["sample_rate_hz"], md["outputs_blocks"]) == (
        128,
        512,
        48000,
        2,
    )
    assert md["boundary_ramp_samples"] == 0  # so LiteRT output is comparable with the bare Keras model
    assert md["model_version"] == "9.9" and md["channels_layout"] == "mono, per channel" and md["parameters"] > 0
    assert read_metadata(tmp_path / "tiny-fp16.tflite")["precision"] == "float16 weights"

    model, _, features = export.load_run(tiny_run, "best")
    rng = np.random.default_rng(1)
    context = (0.2 * rng.standard_normal((3, 512))).astype(np.float32)
    codec = SpectralCodec(features)
    inputs, scale = codec.encode(context)
    keras_blocks = codec.decode(np.asarray(model(inputs)), scale)
    for path, tolerance in ((out, 1e-4), (tmp_path / "tiny-fp16.tflite", 2e-2)):
        litert_blocks = BlockPredictor(path).predict(context)
        assert np.max(np.abs(litert_blocks - keras_blocks)) <= tolerance * max(1.0, np.max(np.abs(keras_blocks)))


def test_export_cli_errors(tmp_path, capsys):
    from nextblock.commands import export

    assert export.main(["--run-dir", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err
    assert export.main(["--show", str(tmp_path / "missing.tflite")]) == 2
