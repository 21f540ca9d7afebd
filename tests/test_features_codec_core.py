"""The C++ codec path (csrc/nextblock/codec.hpp) against the numpy reference it replaced.

``SpectralCodec.encode_with_guess`` and ``BlockPredictor.predict`` run the arithmetic between the
FFTs in the C++ core; ``encode_reference`` / ``predict_reference`` keep the numpy code. Both must
give the same features and predictions to float32 rounding, on any batch shape, on silence and on
awkward input.
"""

import numpy as np
import pytest

from nextblock import _core
from nextblock.features.config import FeatureConfig
from nextblock.features.continuity import boundary_ramp
from nextblock.features.spectral import SpectralCodec


def _contexts(rows: int, samples: int, seed: int = 0) -> np.ndarray:
    """``(rows, samples)`` float32: partials at random pitches and levels plus noise; row 1 silent."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 48000.0
    out = np.empty((rows, samples), np.float32)
    for r in range(rows):
        level = 10.0 ** rng.uniform(-3, -0.3)
        partials = sum(np.sin(2 * np.pi * rng.uniform(80, 4000) * t + rng.uniform(0, 6)) / (k + 1) for k in range(4))
        out[r] = level * (partials + 0.1 * rng.standard_normal(samples))
    out[min(1, rows - 1)] = 0.0
    return out


@pytest.mark.parametrize(
    "config",
    [
        FeatureConfig(),
        FeatureConfig(lpc_order=128, lpc_burg_samples=768),
        FeatureConfig(frames_per_block=64, context_samples=512, lpc_order=32, lpc_burg_samples=256),
    ],
    ids=["no-guess", "burg128", "burg32-512"],
)
def test_cpp_encode_equals_the_numpy_reference(config):
    codec = SpectralCodec(config)
    context = _contexts(6, config.context_samples).reshape(2, 3, config.context_samples)  # any leading shape
    features, scale, guess = codec.encode_with_guess(context)
    ref_features, ref_scale, ref_guess = codec.encode_reference(context)
    assert features.shape == ref_features.shape == (2, 3, config.input_bins, codec.feature_channels)
    assert features.dtype == np.float32 and scale.shape == (2, 3)
    np.testing.assert_allclose(scale, ref_scale, rtol=1e-5)
    np.testing.assert_allclose(features, ref_features, rtol=1e-4, atol=1e-5)
    if config.lpc_order:
        np.testing.assert_array_equal(guess, ref_guess)  # the same Burg kernel on the same samples
        assert np.all(features[0, 1, :, 3:] == 0.0), "silence gets no guess"
    else:
        assert guess is None and ref_guess is None


def test_autocorrelation_guess_models_keep_the_numpy_path():
    codec = SpectralCodec(FeatureConfig(lpc_order=32))
    context = _contexts(2, 1024)
    for got, want in zip(codec.encode_with_guess(context), codec.encode_reference(context), strict=True):
        np.testing.assert_array_equal(got, want)


def test_cpp_predict_equals_the_numpy_reference_on_the_shipped_model():
    from nextblock.model.runner import BlockPredictor

    predictor = BlockPredictor(None)
    for channels in (1, 2, 5):
        context = _contexts(channels, predictor.context_samples, seed=channels)
        fast = predictor.predict(context).copy()
        reference = predictor.predict_reference(context)
        assert fast.shape == reference.shape == (channels, predictor.outputs_blocks, predictor.frames_per_block)
        peak = float(np.abs(reference).max())
        np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-5 * peak)
    awkward = _contexts(2, predictor.context_samples)
    awkward[0, 100] = np.nan
    awkward[1, -1] = np.inf
    out = predictor.predict(awkward)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(
        out, predictor.predict_reference(awkward), rtol=0, atol=1e-5 * max(1e-3, float(np.abs(out).max()))
    )


def _core_codec(lpc_order: int = 128) -> tuple[SpectralCodec, _core.CodecCore]:
    codec = SpectralCodec(FeatureConfig(lpc_order=lpc_order, lpc_burg_samples=768 if lpc_order else 0))
    return codec, codec.core


def test_decode_is_the_inverse_fft_at_the_context_level():
    """A network output of rfft(y) / output_gain decodes to y times the context's scale (no guess,
    no join): scaling and the FFT convention match numpy's irfft."""
    codec, core = _core_codec(0)
    rng = np.random.default_rng(4)
    y = rng.standard_normal((2, 256)).astype(np.float32)
    spectrum = np.fft.rfft(y, axis=-1) / codec.output_gain
    net_out = np.stack([spectrum.real, spectrum.imag], axis=-1).astype(np.float32)
    scale = np.array([1.0, 0.25], np.float32)
    out, zeroed = core.decode(net_out, scale, None, 0.0, None, np.zeros((2, 1024), np.float32))
    assert zeroed == 0 and out.shape == (2, 256) and out.dtype == np.float32
    np.testing.assert_allclose(out, y * scale[:, None], rtol=0, atol=1e-5)
    np.testing.assert_allclose(out, codec.decode(net_out, scale).reshape(2, 256), rtol=0, atol=1e-6)


def test_decode_zeroes_only_a_non_finite_row_and_starts_on_the_guess():
    codec, core = _core_codec(128)
    rng = np.random.default_rng(2)
    net_out = rng.standard_normal((3, 129, 2)).astype(np.float32)
    net_out[1, 7, 0] = np.inf
    guess = rng.standard_normal((3, 256)).astype(np.float32)
    context = rng.standard_normal((3, 1024)).astype(np.float32)
    scale = np.array([0.5, 1.0, 2.0], np.float32)
    ramp = boundary_ramp(64)
    out, zeroed = core.decode(net_out, scale, guess, 0.25, ramp, context)
    assert zeroed == 1
    assert np.all(out[1] == 0.0)
    expected = codec.decode(net_out[[0, 2]], scale[[0, 2]]).reshape(2, 256)
    expected += np.float32(0.25) * (guess[[0, 2]] - expected)
    expected[:, :64] += ramp * (guess[[0, 2], :64] - expected[:, :64])
    np.testing.assert_allclose(out[[0, 2]], expected, rtol=0, atol=1e-5)
    assert out[0, 0] == pytest.approx(guess[0, 0])


def test_decode_without_a_guess_pulls_the_start_onto_the_context():
    codec, core = _core_codec(0)
    net_out = np.zeros((1, 129, 2), np.float32)
    net_out[0, 0, 0] = 0.5 / codec.output_gain * 256  # DC: every sample 0.5
    context = np.zeros((1, 1024), np.float32)
    context[0, -3:] = [0.0, 0.1, 0.2]  # the linear extrapolation continues at 0.3
    out, zeroed = core.decode(net_out, np.ones(1, np.float32), None, 0.0, boundary_ramp(32), context)
    assert zeroed == 0
    assert out[0, 0] == pytest.approx(0.3)
    np.testing.assert_allclose(out[0, 32:], 0.5, rtol=1e-5)


def test_core_codec_refuses_bad_shapes_and_geometry():
    codec, core = _core_codec(128)
    with pytest.raises(ValueError, match="context"):
        core.encode(np.zeros((2, 1000), np.float32))
    with pytest.raises(ValueError, match="net_out"):
        core.decode(
            np.zeros((2, 128, 2), np.float32), np.ones(2, np.float32), None, 0.0, None, np.zeros((2, 1024), np.float32)
        )
    with pytest.raises(ValueError, match="guess"):
        core.decode(
            np.zeros((2, 129, 2), np.float32),
            np.ones(2, np.float32),
            np.zeros((2, 100), np.float32),
            0.0,
            None,
            np.zeros((2, 1024), np.float32),
        )
    with pytest.raises(ValueError, match="burg_samples"):
        _core.CodecCore(1024, 256, 4, 128, 100, codec._scaled_window, 1e-5, 1e-3, 4.0, 1e-12, 128.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_all_finite_finds_one_bad_sample_anywhere(bad):
    rng = np.random.default_rng(5)
    context = rng.standard_normal((3, 1024)).astype(np.float32)
    assert _core.all_finite(context) and _core.all_finite(context[:, ::2])  # strided: checked on a copy
    for row, col in [(0, 0), (1, 517), (2, 1023)]:
        poisoned = context.copy()
        poisoned[row, col] = bad
        assert not _core.all_finite(poisoned)
    assert _core.all_finite(np.float32([3.4e38, -3.4e38]))  # large is not infinite
