"""FFT pre-/post-processing (nextblock.features): shapes, invariances, exact round trips."""

from __future__ import annotations

import numpy as np
import pytest
from nextblock.features import FeatureConfig, SpectralCodec, analysis_window


def test_config_derived_sizes():
    cfg = FeatureConfig()
    assert (cfg.output_samples, cfg.input_bins, cfg.output_bins, cfg.bin_stride) == (256, 513, 129, 4)
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("kwargs", [{"frames_per_block": 0}, {"context_samples": 1000},
                                    {"outputs_blocks": 0}, {"window_fall_samples": 600}])
def test_config_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        FeatureConfig(**kwargs)


def test_window_is_asymmetric_positive_and_peaks_before_the_newest_sample():
    w = analysis_window(1024, 128)
    assert w.shape == (1024,) and w.dtype == np.float32
    assert np.all(w > 0) and w.max() <= 1.0
    assert 1024 - 128 - 2 <= int(np.argmax(w)) <= 1024 - 128
    assert w[-1] < 0.05 and w[0] < 0.01
    assert w[-64] > w[64]  # the recent end weighs more than the old end at the same distance
    with pytest.raises(ValueError):
        analysis_window(1024, 512)


def test_encode_shapes_and_level_invariance():
    codec = SpectralCodec(FeatureConfig())
    rng = np.random.default_rng(0)
    context = rng.standard_normal((3, 1024)).astype(np.float32)
    features, scale = codec.encode(context)
    assert features.shape == (3, 513, 3) and features.dtype == np.float32
    assert scale.shape == (3,)
    loud, loud_scale = codec.encode(100.0 * context)
    np.testing.assert_allclose(loud, features, atol=1e-4)
    np.testing.assert_allclose(loud_scale, 100.0 * scale, rtol=1e-4)


def test_encode_sinusoid_peaks_at_its_amplitude_in_rms_units():
    cfg = FeatureConfig()
    codec = SpectralCodec(cfg)
    n = np.arange(cfg.context_samples)
    bin_index = 40  # exactly on a bin: 40 * 48000 / 1024 = 1875 Hz
    context = np.sin(2 * np.pi * bin_index * n / cfg.context_samples).astype(np.float32)
    features, scale = codec.encode(context)
    magnitude = np.hypot(features[:, 0], features[:, 1])
    assert int(np.argmax(magnitude)) == bin_index
    assert magnitude[bin_index] == pytest.approx(1.0 / scale, rel=0.02)  # amplitude 1 in RMS units


def test_decode_inverts_the_output_spectrum_exactly():
    cfg = FeatureConfig()
    codec = SpectralCodec(cfg)
    rng = np.random.default_rng(1)
    waveform = rng.standard_normal((2, cfg.output_samples)).astype(np.float32)
    spectrum = np.fft.rfft(waveform, axis=-1) / codec.output_gain
    packed = np.stack([spectrum.real, spectrum.imag], axis=-1).astype(np.float32)
    scale = np.array([0.5, 2.0], np.float32)
    blocks = codec.decode(packed, scale)
    assert blocks.shape == (2, 2, 128) and blocks.dtype == np.float32
    np.testing.assert_allclose(blocks.reshape(2, -1), waveform * scale[:, None], atol=1e-5)


def test_silence_encodes_to_zero_and_wrong_lengths_are_refused():
    codec = SpectralCodec(FeatureConfig())
    features, _scale = codec.encode(np.zeros((1, 1024), np.float32))
    assert np.all(np.isfinite(features)) and np.allclose(features[..., :2], 0.0)
    with pytest.raises(ValueError, match="1024"):
        codec.encode(np.zeros((1, 1000), np.float32))
    with pytest.raises(ValueError, match="129"):
        codec.decode(np.zeros((1, 128, 2), np.float32), np.ones(1, np.float32))


def test_boundary_match_removes_the_step_and_leaves_the_rest():
    from nextblock.features.continuity import boundary_ramp, match_boundary

    ramp = boundary_ramp(32)
    assert ramp[0] == 1.0 and ramp.shape == (32,) and np.all(np.diff(ramp) <= 0)
    context = np.array([[0.0, 0.1, 0.2]], np.float32)  # a ramp: next sample expected at 0.3
    prediction = np.full((1, 256), -0.5, np.float32)
    original = prediction.copy()
    match_boundary(prediction, context, ramp)
    assert prediction[0, 0] == pytest.approx(0.3)
    np.testing.assert_array_equal(prediction[0, 32:], original[0, 32:])
    assert np.max(np.abs(np.diff(prediction[0]))) < 0.8 * 4 / 32  # a smooth raised-cosine glide, no step
