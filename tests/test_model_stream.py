"""Any block size and rate from a fixed-horizon model: cutting, chaining, support and choice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nextblock.model import default_model_path
from nextblock.model.metadata import embed_metadata, read_metadata
from nextblock.model.stream import (
    calls_per_prediction,
    choose_model,
    latency_budget_us,
    stream_predictor,
    stream_support,
)

RATES = [32000, 44100, 48000, 88200, 96000]


class SineContinuer:
    """A stand-in model that continues one sinusoid exactly (the recursion
    ``x[n] = 2 cos(w) x[n-1] - x[n-2]``), with a 256-sample horizon: what any correct cutting and
    chaining of its output must reproduce is the true continuation."""

    def __init__(self, w: float, horizon: int = 256, context: int = 1024):
        self.w, self.horizon_samples, self.context_samples = w, horizon, context
        self.model_version, self.name = "sine", "sine"
        self.metadata = {
            "frames_per_block": 128,
            "outputs_blocks": 2,
            "sample_rate_hz": 48000,
            "sample_rates_hz": RATES,
            "model_version": "sine",
        }
        self.calls = 0

    def predict_horizon(self, context: np.ndarray) -> np.ndarray:
        assert context.shape[1] == self.context_samples
        self.calls += 1
        out = np.zeros((context.shape[0], self.horizon_samples + 2))
        out[:, 0], out[:, 1] = context[:, -2], context[:, -1]
        for n in range(2, out.shape[1]):
            out[:, n] = 2 * np.cos(self.w) * out[:, n - 1] - out[:, n - 2]
        return out[:, 2:].astype(np.float32)


@pytest.mark.parametrize("frames", [16, 32, 64, 120, 128, 240, 256, 320, 480, 512, 1024])
def test_two_blocks_of_any_size_are_the_true_continuation(frames):
    w = 2 * np.pi * 441 / 44100
    n = np.arange(1024 + 2 * frames)
    signal = np.stack([np.sin(w * n), 0.5 * np.cos(w * n)]).astype(np.float32)  # two channels
    model = SineContinuer(w)
    stream = stream_predictor(model, frames, 44100, long_term=False)
    out = stream.predict(signal[:, :1024])
    assert out.shape == (2, 2, frames) and out.dtype == np.float32
    np.testing.assert_allclose(out.reshape(2, -1), signal[:, 1024:], atol=2e-3)
    assert model.calls == calls_per_prediction(256, frames) == max(1, -(-2 * frames // 256))
    assert f"{frames} frames at 44100 Hz" in stream.describe()


def test_a_model_before_3_0_serves_only_its_own_block_size_and_rate():
    old = {"frames_per_block": 128, "outputs_blocks": 2, "sample_rate_hz": 48000, "model_version": "2.0.0"}
    assert stream_support(old, 128, 48000) is None
    assert "128-frame blocks only" in stream_support(old, 256, 48000)
    assert "trained at 48000 Hz" in stream_support(old, 128, 44100)
    new = dict(old, sample_rates_hz=RATES)
    assert all(stream_support(new, f, r) is None for f in (16, 120, 1024) for r in RATES)
    assert "16 to 1024" in stream_support(new, 2048, 48000)
    assert "22050" in stream_support(new, 128, 22050)
    with pytest.raises(ValueError, match="22050"):
        stream_predictor(SineContinuer(0.1), 128, 22050)


def test_the_latency_budget_scales_with_the_block_above_128_frames():
    assert [latency_budget_us(f) for f in (16, 128, 240, 1024)] == [250.0, 250.0, 468.75, 2000.0]


def _with_metadata(tmp_path, file_stem, **changes):
    """The shipped model's network with its metadata as a single-configuration model's (no
    ``sample_rates_hz``/``horizon_samples``), then ``changes`` applied."""
    source = default_model_path()
    metadata = {k: v for k, v in read_metadata(source).items() if k not in ("sample_rates_hz", "horizon_samples")}
    metadata.update(changes)
    path = tmp_path / f"{file_stem}.tflite"
    path.write_bytes(embed_metadata(source.read_bytes(), metadata))
    return path


def test_choose_model_takes_the_one_that_serves_the_stream_and_says_why(tmp_path):
    exact = _with_metadata(tmp_path, "exact", name="exact", model_version="2.0.0")
    family = _with_metadata(tmp_path, "family", name="family", model_version="3.0.0", sample_rates_hz=RATES)
    long = _with_metadata(
        tmp_path, "long", name="long", model_version="3.0.0", sample_rates_hz=RATES, horizon_samples=1024
    )
    path, why = choose_model([exact, family], 128, 48000)
    assert path == exact and "exact 2.0.0" in why and "1 call(s)" in why  # a tie: the first listed wins
    assert choose_model([family, exact], 128, 48000)[0] == family
    path, why = choose_model([exact, family], 256, 44100)
    assert path == family and "256 frames at 44100 Hz: 2 call(s)" in why
    path, _ = choose_model([exact, family, long], 512, 48000)
    assert path == long  # 1 call of 1024 samples beats 4 of 256
    with pytest.raises(ValueError, match="no model serves 128 frames at 22050 Hz"):
        choose_model([exact, family], 128, 22050)


def test_the_runtime_fits_a_real_model_to_the_stream(tmp_path):
    from nextblock.runtime.errors import IncompatibleModel
    from nextblock.runtime.predictors import fit_to_stream, load_model_predictor

    family = _with_metadata(tmp_path, "family", sample_rates_hz=RATES)
    predictor = fit_to_stream(load_model_predictor(family), 240, 44100)
    rng = np.random.default_rng(0)
    out = predictor.predict((0.1 * rng.standard_normal((2, predictor.context_samples))).astype(np.float32))
    assert out.shape == (2, 2, 240) and np.all(np.isfinite(out))
    # a Burg-guess model: one call, the guess past its 256-sample horizon
    assert predictor.calls == 1 and predictor.beyond_horizon == "guess"
    assert fit_to_stream(predictor, 240, 44100) is predictor
    with pytest.raises(IncompatibleModel, match="cannot serve this stream"):
        fit_to_stream(load_model_predictor(_with_metadata(tmp_path, "single")), 240, 44100)
    json.dumps(predictor.metadata)  # the metadata stays plain JSON


@pytest.mark.parametrize("frames, calls_per_4_blocks", [(16, 1), (32, 2), (64, 4), (128, 4)])
def test_short_blocks_reuse_a_prediction_while_the_stream_moves_on(frames, calls_per_4_blocks):
    """With min_refresh_samples=64 the model runs once per 64 samples of stream below 64 frames,
    and what is served is still the true continuation (the cached prediction, cut further on)."""
    w = 2 * np.pi * 700 / 48000
    n = np.arange(1024 + 64 * frames)
    signal = np.sin(w * n).astype(np.float32)[None]
    model = SineContinuer(w)
    stream = stream_predictor(model, frames, 48000, min_refresh_samples=64, long_term=False)
    for block in range(4 * (64 // min(frames, 64))):
        end = 1024 + block * frames
        out = stream.predict(signal[:, end - 1024 : end])
        np.testing.assert_allclose(out.reshape(1, -1), signal[:, end : end + 2 * frames], atol=2e-3)
    assert model.calls == stream.model_calls == 4 * (64 // min(frames, 64)) * calls_per_4_blocks // 4
    # a context that is not the cached one moved on (a jump, another stream) is predicted afresh
    before = model.calls
    stream.predict(signal[:, 5:1029])
    assert model.calls == before + 1


def test_a_throw_away_prediction_keeps_the_reused_prediction_and_the_counts():
    """keep_warm runs the model (that is its point) but the stream's cached prediction, its offset
    and the counters stay as they were: the next block is still served from the cache, exactly."""
    w = 2 * np.pi * 700 / 48000
    frames = 16
    signal = np.sin(w * np.arange(1024 + 8 * frames)).astype(np.float32)[None]
    model = SineContinuer(w)
    stream = stream_predictor(model, frames, 48000, min_refresh_samples=64, long_term=False)
    stream.predict(signal[:, :1024])
    calls, model_calls = model.calls, stream.model_calls
    stream.keep_warm(np.random.default_rng(0).standard_normal((1, 1024)).astype(np.float32))
    assert model.calls == calls + 1, "the model ran"
    assert stream.model_calls == model_calls
    out = stream.predict(signal[:, frames : 1024 + frames])
    assert model.calls == calls + 1, "served from the cached prediction, as without the throw-away one"
    np.testing.assert_allclose(out.reshape(1, -1), signal[:, 1024 + frames : 1024 + 3 * frames], atol=2e-3)


def test_guess_weight_one_plays_the_linear_guess(tmp_path):
    """Metadata guess_weight blends the LPC guess into the network's output: at 1 the runner
    plays exactly the guess the codec computed, at 0 the network (models before 3.0)."""
    from nextblock.model.runner import BlockPredictor

    rng = np.random.default_rng(4)
    n = np.arange(1024)
    context = (np.sin(2 * np.pi * 600 * n / 48000) + 0.05 * rng.standard_normal(1024)).astype(np.float32)[None]
    full = BlockPredictor(_with_metadata(tmp_path, "guess", guess_weight=1.0))
    none = BlockPredictor(_with_metadata(tmp_path, "net", guess_weight=0.0))
    _, _, guess = full.codec.encode_with_guess(context)
    np.testing.assert_allclose(full.predict_horizon(context), guess, atol=1e-5)
    assert np.max(np.abs(none.predict_horizon(context) - guess)) > 1e-3


class BurgOnly:
    """A stand-in model that predicts exactly its own Burg guess (metadata and config of a 3.0 model)."""

    def __init__(self):
        from nextblock.features import FeatureConfig

        self.config = FeatureConfig(lpc_order=128, lpc_burg_samples=768)
        self.context_samples, self.horizon_samples = 1024, 256
        self.model_version, self.name = "burg", "burg"
        self.metadata = {
            "frames_per_block": 128,
            "outputs_blocks": 2,
            "sample_rate_hz": 48000,
            "sample_rates_hz": RATES,
            "model_version": "burg",
        }

    def predict_horizon(self, context):
        from nextblock.features.lpc import burg_continuation

        return burg_continuation(context[:, -768:], 128, 256)


@pytest.mark.parametrize("frames", [240, 512, 1024])
def test_past_the_horizon_the_burg_guess_continues_with_one_model_call(frames):
    from nextblock.features.lpc import burg_continuation

    rng = np.random.default_rng(6)
    context = (np.sin(np.arange(1024) / 9.0) + 0.1 * rng.standard_normal(1024)).astype(np.float32)[None]
    stream = stream_predictor(BurgOnly(), frames, 48000, long_term=False)
    assert stream.beyond_horizon == "guess" and stream.calls == 1
    out = stream.predict(context)
    np.testing.assert_allclose(out.reshape(1, -1), burg_continuation(context[:, -768:], 128, 2 * frames), atol=1e-5)
    assert stream.model_calls == 1
    chained = stream_predictor(BurgOnly(), frames, 48000, beyond_horizon="chain", long_term=False)
    assert chained.calls == -(-2 * frames // 256)
