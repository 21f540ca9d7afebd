"""Runtime side: metadata in the .tflite, BlockPredictor (LiteRT), NextBlockConcealer.

A tiny "pass-through" network is built and exported once per module: its deep filter copies
input bin ``stride*k`` to output bin ``k``. For a sinusoid centred on output bin ``k`` that bin
of the prediction is exactly the continuation's (amplitude and phase; neighbouring bins get the
analysis window's leakage, which a trained filter removes). That makes the whole chain (window,
gains, FFT alignment, irfft, scaling) testable against a known answer. The shipped default model gets its own checks when present.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from nextblock.model import default_model_path
from nextblock.model.metadata import METADATA_FORMAT, ModelFileError, embed_metadata, read_metadata

CONTEXT_SAMPLES = 512
FRAMES = 128


def _metadata(**overrides):
    md = {
        "format": METADATA_FORMAT,
        "name": "passthrough",
        "model_version": "0.test",
        "frames_per_block": FRAMES,
        "context_samples": CONTEXT_SAMPLES,
        "sample_rate_hz": 48000,
        "outputs_blocks": 2,
        "window_fall_samples": 64,
        "boundary_ramp_samples": 0,
        "channels_layout": "mono, per channel",
        "feature": "test",
        "created": "2026-01-01T00:00:00Z",
    }
    md.update(overrides)
    return md


@pytest.fixture(scope="module")
def passthrough_tflite(tmp_path_factory):
    """(path, raw tflite bytes without metadata) of the pass-through network."""
    pytest.importorskip("tensorflow", reason="TensorFlow is needed to build the test model")
    from nextblock.export import convert
    from nextblock.features import FeatureConfig
    from nextblock.model.architecture import ArchitectureConfig, build_model

    cfg = FeatureConfig(frames_per_block=FRAMES, context_samples=CONTEXT_SAMPLES, window_fall_samples=64)
    model = build_model(cfg, ArchitectureConfig(width=8, blocks=1))
    layer = model.get_layer("filter_weights")
    kernel, bias = layer.get_weights()
    bias[layer.filters // 4] = 1.0  # real part of the centre tap
    layer.set_weights([np.zeros_like(kernel), bias])
    raw = convert(model)
    path = tmp_path_factory.mktemp("models") / "passthrough.tflite"
    path.write_bytes(embed_metadata(raw, _metadata()))
    return path, raw


def _sine(freq_bin_of_output: int, samples: int, amplitude: float = 0.3, phase: float = 0.7):
    n = np.arange(samples)
    return (amplitude * np.cos(2 * np.pi * freq_bin_of_output * n / (2 * FRAMES) + phase)).astype(np.float32)


# ----------------------------------------------------------------------------- metadata
def test_metadata_round_trips_through_the_flatbuffer(passthrough_tflite):
    path, _ = passthrough_tflite
    md = read_metadata(path)
    assert md == _metadata()


def test_metadata_errors_are_one_line_reasons(tmp_path, passthrough_tflite):
    _, raw = passthrough_tflite
    with pytest.raises(FileNotFoundError):
        read_metadata(tmp_path / "none.tflite")
    (tmp_path / "text.tflite").write_text("hello, not a model")
    with pytest.raises(ModelFileError, match="not a TFLite"):
        read_metadata(tmp_path / "text.tflite")
    (tmp_path / "bare.tflite").write_bytes(raw)
    with pytest.raises(ModelFileError, match="no NextBlock metadata"):
        read_metadata(tmp_path / "bare.tflite")
    (tmp_path / "bare.tflite.json").write_text(json.dumps(_metadata()))
    assert read_metadata(tmp_path / "bare.tflite")["context_samples"] == CONTEXT_SAMPLES  # sidecar fallback
    with pytest.raises(ModelFileError, match="lacks the field 'sample_rate_hz'"):
        bad = _metadata()
        del bad["sample_rate_hz"]
        embed_metadata(raw, bad)
    with pytest.raises(ModelFileError, match="format"):
        embed_metadata(raw, _metadata(format="nextblock-model/99"))
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(embed_metadata(raw, _metadata())[:200])
    with pytest.raises(ModelFileError):
        read_metadata(truncated)


# ----------------------------------------------------------------------------- runner
def test_predictor_reads_its_metadata_and_predicts_shapes(passthrough_tflite):
    from nextblock.model.runner import BlockPredictor

    p = BlockPredictor(passthrough_tflite[0])
    assert (p.frames_per_block, p.context_samples, p.sample_rate_hz, p.outputs_blocks) == (
        FRAMES,
        CONTEXT_SAMPLES,
        48000,
        2,
    )
    assert p.model_version == "0.test" and p.name == "passthrough"
    out = p.predict(np.zeros((3, CONTEXT_SAMPLES), np.float32))
    assert out.shape == (3, 2, FRAMES) and out.dtype == np.float32 and np.all(out == 0)
    with pytest.raises(ValueError, match="512"):
        p.predict(np.zeros((1, 100), np.float32))


def test_passthrough_continues_a_bin_centred_sinusoid(passthrough_tflite):
    from nextblock.model.runner import BlockPredictor

    p = BlockPredictor(passthrough_tflite[0])
    for k in (3, 10, 40):
        signal = _sine(k, CONTEXT_SAMPLES + 2 * FRAMES, amplitude=0.3, phase=0.7)
        predicted = p.predict(signal[None, :CONTEXT_SAMPLES])[0].reshape(-1)
        got, want = np.fft.rfft(predicted)[k], np.fft.rfft(signal[CONTEXT_SAMPLES:])[k]
        assert abs(got - want) < 0.02 * abs(want), k


def test_channels_are_independent_and_outputs_finite(passthrough_tflite):
    from nextblock.model.runner import BlockPredictor

    p = BlockPredictor(passthrough_tflite[0])
    rng = np.random.default_rng(0)
    contexts = (rng.standard_normal((2, CONTEXT_SAMPLES)) * [[0.01], [1.0]]).astype(np.float32)
    both = p.predict(contexts)
    np.testing.assert_allclose(both[1], p.predict(contexts[1:])[0], rtol=1e-4, atol=1e-6)
    contexts[0, 5] = np.nan
    assert np.all(np.isfinite(p.predict(contexts)))


def test_concealer_plays_the_prediction_on_loss(passthrough_tflite):
    """The network alone (``nextblock-net``: the long-term guess is tested in test_features_pattern.py)."""
    from nextblock.concealers.nextblock import NextBlockConcealer, NextBlockNetConcealer

    concealer = NextBlockNetConcealer(FRAMES, 48000, model_path=passthrough_tflite[0])
    signal = _sine(6, CONTEXT_SAMPLES + 4 * FRAMES)
    blocks = signal.reshape(-1, FRAMES)
    for block in blocks[:-2]:
        concealer.process(block)
    guess = concealer.process(None)
    np.testing.assert_allclose(guess, concealer.history[-FRAMES:])  # what was played is now history
    # the concealer's guess is its predictor's first block for the pre-loss history
    expected = concealer.predictor.predict(signal[None, 2 * FRAMES : 2 * FRAMES + CONTEXT_SAMPLES])[0, 0]
    np.testing.assert_allclose(guess, expected, atol=1e-6)
    assert np.sum(guess**2) > 0.1 * np.sum(blocks[-2] ** 2)
    with pytest.raises(ValueError, match="frame"):
        NextBlockConcealer(256, 48000, model_path=passthrough_tflite[0])
    with pytest.raises(ValueError, match="Hz"):
        NextBlockConcealer(FRAMES, 44100, model_path=passthrough_tflite[0])


# ----------------------------------------------------------------------------- shipped model
@pytest.fixture(scope="module")
def shipped():
    try:
        return default_model_path()
    except FileNotFoundError:
        pytest.skip("no shipped model in models/ (run scripts/train_default_model.sh)")


def test_shipped_model_metadata(shipped):
    md = read_metadata(shipped)
    assert md["frames_per_block"] == 128 and md["sample_rate_hz"] == 48000 and md["outputs_blocks"] == 2
    assert md["channels_layout"] == "mono, per channel"
    assert shipped.stat().st_size < 4 * 1024 * 1024


def test_shipped_model_predicts_a_steady_tone_better_than_repeat(shipped):
    from nextblock.model.runner import BlockPredictor

    p = BlockPredictor(shipped)
    n = np.arange(p.context_samples + p.frames_per_block)
    signal = (0.2 * np.sin(2 * np.pi * 441.0 * n / 48000) + 0.1 * np.sin(2 * np.pi * 1234.5 * n / 48000)).astype(
        np.float32
    )
    truth = signal[p.context_samples :]
    guess = p.predict(signal[None, : p.context_samples])[0, 0]
    repeat = signal[p.context_samples - p.frames_per_block : p.context_samples]

    def snr(x):
        return 10 * np.log10(np.sum(truth**2) / np.sum((x - truth) ** 2))

    assert snr(guess) > 3.0
    assert snr(guess) > snr(repeat) + 5.0


@pytest.mark.parametrize("frames, rate", [(64, 48000), (256, 48000), (128, 44100), (480, 96000), (16, 32000)])
def test_shipped_model_serves_every_configuration(shipped, frames, rate):
    """The shipped model's metadata lists the five rates, and it continues a steady tone at other
    block sizes and rates far better than repeating the last block (two blocks, cut or chained)."""
    from nextblock.model.runner import BlockPredictor
    from nextblock.model.stream import stream_predictor

    assert read_metadata(shipped)["sample_rates_hz"] == [32000, 44100, 48000, 88200, 96000]
    stream = stream_predictor(BlockPredictor(shipped), frames, rate)
    n = np.arange(stream.context_samples + 2 * frames)
    signal = (0.2 * np.sin(2 * np.pi * 441.0 * n / rate) + 0.1 * np.sin(2 * np.pi * 1234.5 * n / rate)).astype(
        np.float32
    )
    truth = signal[stream.context_samples :]
    guess = stream.predict(signal[None, : stream.context_samples])[0].reshape(-1)
    last = signal[stream.context_samples - frames : stream.context_samples]
    repeat = np.concatenate([last, last])

    def snr(x):
        return 10 * np.log10(np.sum(truth**2) / np.sum((x - truth) ** 2))

    assert snr(guess) > 10.0 and snr(guess) > snr(repeat) + 10.0
