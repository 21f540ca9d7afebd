"""The Keras network and its loss (training side; needs TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TensorFlow (training extra) is not installed")

from nextblock.features import FeatureConfig, SpectralCodec
from nextblock.model.architecture import ArchitectureConfig, build_model, count_macs
from nextblock.model.losses import make_loss, make_snr_metric, spectrum_to_waveform


@pytest.fixture(scope="module")
def default_model():
    return build_model(FeatureConfig(), ArchitectureConfig())


def test_default_model_shapes_size_and_cost(default_model):
    assert tuple(default_model.input.shape) == (None, 513, 3)
    assert tuple(default_model.output.shape) == (None, 129, 2)
    assert 5_000 < default_model.count_params() < 300_000
    assert count_macs(default_model) < 5_000_000  # keeps LiteRT well inside the 250 µs budget


def test_untrained_heads_start_at_silence(default_model):
    features = np.random.default_rng(0).standard_normal((2, 513, 3)).astype(np.float32)
    assert np.allclose(np.asarray(default_model(features)), 0.0)


def test_deep_filter_centre_tap_copies_aligned_bins():
    """Filter weight 1 on the centre tap: output bin k must equal input bin stride*k."""
    cfg = FeatureConfig()
    model = build_model(cfg, ArchitectureConfig(width=8, blocks=1))
    layer = model.get_layer("filter_weights")
    kernel, bias = layer.get_weights()
    bias[layer.filters // 4] = 1.0  # real part of the centre tap (taps // 2)
    layer.set_weights([np.zeros_like(kernel), bias])
    features = np.random.default_rng(1).standard_normal((1, cfg.input_bins, 3)).astype(np.float32)
    out = np.asarray(model(features))[0]
    np.testing.assert_allclose(out, features[0, :: cfg.bin_stride, :2], atol=1e-5)


def test_loss_is_zero_for_a_perfect_prediction_and_snr_metric_sees_it():
    import tensorflow as tf

    cfg = FeatureConfig()
    codec = SpectralCodec(cfg)
    rng = np.random.default_rng(2)
    target = rng.standard_normal((4, cfg.output_samples)).astype(np.float32)
    spectrum = np.fft.rfft(target, axis=-1) / codec.output_gain
    perfect = np.stack([spectrum.real, spectrum.imag], -1).astype(np.float32)
    np.testing.assert_allclose(np.asarray(spectrum_to_waveform(tf.constant(perfect), cfg)), target, atol=1e-4)
    loss = make_loss(cfg)
    assert float(tf.reduce_mean(loss(target, perfect))) < 1e-3
    assert float(tf.reduce_mean(loss(target, np.zeros_like(perfect)))) > 0.5
    assert float(tf.reduce_mean(make_snr_metric(cfg)(target, perfect))) > 40.0


def test_untrained_lpc_model_plays_the_lpc_guess():
    """With an LPC guess in the features the untrained model outputs exactly that guess (gain 1,
    the other heads at zero); the input has 5 channels."""
    cfg = FeatureConfig(lpc_order=32)
    model = build_model(cfg, ArchitectureConfig(width=8, blocks=1))
    assert tuple(model.input.shape) == (None, 513, 5)
    rng = np.random.default_rng(5)
    t = np.arange(1024) / 48000
    context = (np.sin(2 * np.pi * 700 * t) + 0.1 * rng.standard_normal(1024)).astype(np.float32)
    features, _ = SpectralCodec(cfg).encode(context[None])
    out = np.asarray(model(features))[0]
    np.testing.assert_allclose(out, features[0, :: cfg.bin_stride, 3:], atol=1e-6)
    assert np.abs(out).max() > 0.1


def test_phase_term_sees_a_phase_error_that_the_log_magnitude_term_does_not():
    """A partial continued at the right level but half a period late: the log-magnitude STFT
    term barely moves, the complex (phase-aware) term grows with its weight."""
    import tensorflow as tf

    cfg = FeatureConfig()
    codec = SpectralCodec(cfg)
    n = np.arange(cfg.output_samples)
    target = np.sin(2 * np.pi * 16 * n / cfg.output_samples)[None].astype(np.float32)
    late = -target  # a bin-centred partial, phase flipped: same magnitude everywhere
    spectrum = np.fft.rfft(late, axis=-1) / codec.output_gain
    predicted = tf.constant(np.stack([spectrum.real, spectrum.imag], -1).astype(np.float32))

    def term(**weights):
        return float(tf.reduce_mean(make_loss(cfg, **weights)(target, predicted)))

    magnitude_only = term(spectral_weight=1.0) - term(spectral_weight=0.0)
    with_phase = term(spectral_weight=0.0, phase_weight=1.0) - term(spectral_weight=0.0)
    assert magnitude_only < 0.05 and with_phase > 0.3
    assert abs(term(spectral_weight=0.0, phase_weight=2.0) - term(spectral_weight=0.0) - 2 * with_phase) < 1e-4


def test_loss_matches_a_numpy_reference():
    """The ``keras.ops`` loss (any backend) against numpy: weighted MSE + log-magnitude and complex
    STFT terms over Hann-windowed frames with a half-frame hop and no padding."""
    cfg = FeatureConfig()
    codec = SpectralCodec(cfg)
    rng = np.random.default_rng(7)
    target = rng.standard_normal((3, cfg.output_samples)).astype(np.float32)
    predicted = rng.standard_normal((3, cfg.output_bins, 2)).astype(np.float32)
    sizes, spectral, phase, floor = (32, 128), 0.3, 0.2, 1e-3
    got = np.asarray(
        make_loss(cfg, spectral_weight=spectral, phase_weight=phase, fft_sizes=sizes, log_floor=floor)(
            target, predicted
        )
    )

    wave = np.fft.irfft((predicted[..., 0] + 1j * predicted[..., 1]) * codec.output_gain, n=cfg.output_samples)
    weights = np.full(cfg.output_samples, 0.5)
    weights[: cfg.frames_per_block] = 1.0
    want = np.mean((wave - target) ** 2 * weights / weights.mean(), axis=-1)
    for size in sizes:
        starts = range(0, cfg.output_samples - size + 1, size // 2)
        hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size)
        t = np.fft.rfft(np.stack([target[:, s : s + size] for s in starts], 1) * hann)
        p = np.fft.rfft(np.stack([wave[:, s : s + size] for s in starts], 1) * hann)
        want += (
            spectral / len(sizes) * np.mean(np.abs(np.log(np.abs(t) + floor) - np.log(np.abs(p) + floor)), axis=(1, 2))
        )
        want += phase / len(sizes) * np.mean(np.abs((t - p).real) + np.abs((t - p).imag), axis=(1, 2))
    np.testing.assert_allclose(got, want, rtol=2e-4)


def test_tap_depthwise_model_has_the_same_weights_and_output(tmp_path):
    """``build_model(depthwise_taps=True)`` (what nextblock.train_jax trains) loads and writes the
    plain model's weights and computes the same spectrum and MACs."""
    cfg = FeatureConfig(lpc_order=32)
    arch = ArchitectureConfig(width=8, blocks=2)
    plain = build_model(cfg, arch)
    rng = np.random.default_rng(9)
    plain.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.1 for w in plain.get_weights()])
    plain.save_weights(str(tmp_path / "plain.weights.h5"))
    taps = build_model(cfg, arch, depthwise_taps=True)
    taps.load_weights(str(tmp_path / "plain.weights.h5"))
    features = rng.standard_normal((3, cfg.input_bins, 5)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(taps(features)), np.asarray(plain(features)), rtol=1e-5, atol=1e-5)
    assert count_macs(taps) == count_macs(plain)
    taps.save_weights(str(tmp_path / "taps.weights.h5"))
    again = build_model(cfg, arch)
    again.load_weights(str(tmp_path / "taps.weights.h5"))
    np.testing.assert_array_equal(np.asarray(again(features)), np.asarray(plain(features)))


def test_first_block_only_loss_ignores_what_follows_the_first_block():
    """A two-sided network's loss (train --two-sided): an error only after the first block's STFT
    frames costs nothing, the same error in the first block costs as usual."""
    tf = pytest.importorskip("tensorflow")

    cfg = FeatureConfig()
    codec = SpectralCodec(cfg)
    rng = np.random.default_rng(3)
    target = (0.3 * rng.standard_normal((1, cfg.output_samples))).astype(np.float32)

    def as_spectrum(waveform):
        spectrum = np.fft.rfft(waveform, axis=-1) / codec.output_gain
        return tf.constant(np.stack([spectrum.real, spectrum.imag], -1).astype(np.float32))

    late, early = target.copy(), target.copy()
    late[:, -32:] += 0.5  # after every frame that starts in the first block (sizes up to 128)
    early[:, :32] += 0.5
    kwargs = dict(spectral_weight=0.3, phase_weight=0.2, fft_sizes=(32, 64, 128))
    gap_only = make_loss(cfg, first_block_only=True, **kwargs)
    both = make_loss(cfg, **kwargs)
    exact = float(tf.reduce_mean(gap_only(target, as_spectrum(target))))
    assert abs(float(tf.reduce_mean(gap_only(target, as_spectrum(late)))) - exact) < 1e-4
    assert float(tf.reduce_mean(both(target, as_spectrum(late)))) > exact + 0.01
    assert float(tf.reduce_mean(gap_only(target, as_spectrum(early)))) > exact + 0.01
