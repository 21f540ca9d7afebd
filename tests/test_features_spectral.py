"""FFT pre-/post-processing (nextblock.features): shapes, invariances, exact round trips."""

from __future__ import annotations

import numpy as np
import pytest

from nextblock.features import FeatureConfig, SpectralCodec, analysis_window


def test_config_derived_sizes():
    cfg = FeatureConfig()
    assert (cfg.output_samples, cfg.input_bins, cfg.output_bins, cfg.bin_stride) == (256, 513, 129, 4)
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "kwargs",
    [
        {"frames_per_block": 0},
        {"context_samples": 1000},
        {"outputs_blocks": 0},
        {"window_fall_samples": 600},
        {"lpc_order": 513},
        {"lpc_order": -1},
    ],
)
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


def test_join_to_context_crossfades_from_the_lpc_guess_when_there_is_one():
    from nextblock.features.continuity import boundary_ramp, default_ramp_samples, join_to_context

    assert default_ramp_samples(32) == 64 and default_ramp_samples(0) == 32
    ramp = boundary_ramp(64)
    context = np.array([[0.0, 0.1, 0.2]], np.float32)
    guess = np.linspace(0.25, -0.2, 256, dtype=np.float32)[None]
    prediction = np.full((1, 256), -0.5, np.float32)
    original = prediction.copy()
    join_to_context(prediction, context, ramp, guess)
    assert prediction[0, 0] == pytest.approx(guess[0, 0])  # starts exactly as the guess
    np.testing.assert_array_equal(prediction[0, 64:], original[0, 64:])  # then the network's output
    middle = prediction[0, 32]
    assert min(guess[0, 32], -0.5) < middle < max(guess[0, 32], -0.5)
    # without a guess: the offset ramp of match_boundary
    plain = original.copy()
    join_to_context(plain, context, boundary_ramp(32))
    assert plain[0, 0] == pytest.approx(0.3)


def test_lpc_guess_sits_on_the_output_bin_grid_and_is_zero_for_silence():
    cfg = FeatureConfig(lpc_order=32)
    codec = SpectralCodec(cfg)
    assert codec.feature_channels == 5 and SpectralCodec(FeatureConfig()).feature_channels == 3
    rng = np.random.default_rng(3)
    context = np.stack([rng.standard_normal(1024), np.zeros(1024)]).astype(np.float32)
    features, _ = codec.encode(context)
    assert features.shape == (2, 513, 5)
    off_grid = np.ones(513, bool)
    off_grid[:: cfg.bin_stride] = False
    assert np.all(features[:, off_grid, 3:] == 0.0)
    assert np.any(features[0, ~off_grid, 3:] != 0.0)
    assert np.all(features[1, :, 3:] == 0.0), "silence gets no guess"
    # the first three channels do not depend on the LPC order (this config takes the numpy path,
    # the one without a guess the C++ one: equal to float32 rounding)
    np.testing.assert_allclose(features[..., :3], SpectralCodec(FeatureConfig()).encode(context)[0], rtol=0, atol=2e-6)


def test_lpc_guess_continues_steady_partials_and_decodes_to_them():
    """Two steady partials: decoding channels 3-4 of the output grid gives their continuation,
    far better than silence (0 dB) and than repeating the last block."""
    cfg = FeatureConfig(lpc_order=32)
    codec = SpectralCodec(cfg)
    rng = np.random.default_rng(4)
    t = np.arange(1024 + cfg.output_samples) / 48000
    signal = (
        0.3 * np.sin(2 * np.pi * 440 * t + 0.3)
        + 0.1 * np.sin(2 * np.pi * 1234 * t + 1.1)
        + 0.001 * rng.standard_normal(t.size)
    ).astype(np.float32)
    context, truth = signal[:1024], signal[1024:]
    features, scale = codec.encode(context)
    guess = codec.decode(np.ascontiguousarray(features[:: cfg.bin_stride, 3:]), scale).reshape(-1)

    def snr_db(estimate):
        return 10 * np.log10(np.sum(truth**2) / np.sum((truth - estimate) ** 2))

    repeat = np.tile(context[-cfg.frames_per_block :], cfg.outputs_blocks)
    assert snr_db(guess) > 6.0, snr_db(guess)  # 8.5 dB here
    assert snr_db(guess) > snr_db(repeat) + 6.0, (snr_db(guess), snr_db(repeat))


def _scipy_lpc_reference(context, windowed, order, n_out, sample_rate_hz=48000):
    """The LPC guess by numpy/scipy, step by step as nextblock.features.lpc documents it."""
    from scipy.linalg import solve_toeplitz
    from scipy.signal import lfilter

    from nextblock.features.lpc import SILENCE_ENERGY, WHITE_NOISE_CORRECTION, lag_window

    out = np.zeros((context.shape[0], n_out))
    for row in range(context.shape[0]):
        power = np.abs(np.fft.rfft(windowed[row].astype(np.float64))) ** 2
        r = np.fft.irfft(power, n=windowed.shape[1])[: order + 1] * lag_window(order, sample_rate_hz)
        if not r[0] > SILENCE_ENERGY:
            continue
        r[0] *= 1.0 + WHITE_NOISE_CORRECTION
        a = np.concatenate(([1.0], solve_toeplitz(r[:-1], -r[1:])))
        past = context[row, ::-1][:order].astype(np.float64)  # newest first
        state = -np.correlate(a[1:], past, "full")[order - 1 :]
        out[row] = lfilter([1.0], a, np.zeros(n_out), zi=state)[0]
    return out


@pytest.mark.parametrize("order", [2, 16, 32])
def test_lpc_kernel_matches_the_scipy_reference(order):
    from nextblock.features.lpc import lpc_continuation
    from nextblock.features.window import analysis_window

    rng = np.random.default_rng(order)
    t = np.arange(1024) / 48000
    context = np.stack(
        [
            0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(1024),
            rng.standard_normal(1024),
            np.zeros(1024),  # silence: zeros
            1e-3 * np.sign(np.sin(2 * np.pi * 97 * t)),  # quiet square wave
        ]
    ).astype(np.float32)
    windowed = (context * analysis_window(1024, 128)).astype(np.float32)
    got = lpc_continuation(context, windowed, order, 256, 48000)
    want = _scipy_lpc_reference(context, windowed, order, 256)
    assert got.shape == (4, 256) and got.dtype == np.float32
    assert np.all(got[2] == 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())


def test_lpc_kernel_rejects_bad_arguments():
    from nextblock import _core
    from nextblock.features.lpc import lag_window

    x = np.zeros((1, 64), np.float32)
    with pytest.raises(ValueError, match="order"):
        _core.lpc_continuation(x, x, 64, 8, lag_window(64, 48000), 0.0, 0.0)
    with pytest.raises(ValueError, match="lag"):
        _core.lpc_continuation(x, x, 4, 8, lag_window(5, 48000), 0.0, 0.0)
    with pytest.raises(ValueError, match="windowed"):
        _core.lpc_continuation(x, np.zeros((2, 64), np.float32), 4, 8, lag_window(4, 48000), 0.0, 0.0)


def test_burg_guess_continues_the_context_from_its_last_samples():
    """Models from 3.0: the guess is Burg's AR(128) on the context's last 768 samples, on the
    output bin grid, and continues a harmonic tone far better than the order-32 autocorrelation guess."""
    from nextblock.concealers.ar import reference_ar_continuation

    n = np.arange(1024 + 256)
    tone = sum(0.5 / k * np.sin(2 * np.pi * 440 * k * n / 48000 + k) for k in range(1, 5))
    tone = (tone + 1e-3 * np.random.default_rng(0).standard_normal(n.size)).astype(np.float32)
    context, future = tone[None, :1024], tone[1024:]
    burg = SpectralCodec(FeatureConfig(lpc_order=128, lpc_burg_samples=768))
    features, scale, guess = burg.encode_with_guess(context)
    np.testing.assert_allclose(guess[0], reference_ar_continuation(tone[256:1024], 128, 256), atol=1e-4)
    assert features.shape == (1, 513, 5) and np.all(features[0, 1::4, 3:] == 0.0)
    _, _, old_guess = SpectralCodec(FeatureConfig(lpc_order=32)).encode_with_guess(context)

    def snr(g):
        return 10 * np.log10(np.sum(future**2) / np.sum((future - g) ** 2))

    assert snr(guess[0]) > 20.0 and snr(guess[0]) > snr(old_guess[0]) + 6.0
    with pytest.raises(ValueError, match="lpc_burg_samples"):
        FeatureConfig(lpc_order=128, lpc_burg_samples=100)


def test_burg_guess_of_a_noiseless_tone_stops_at_the_order_it_needs():
    """A sum of two pure sinusoids is predicted exactly at order 4: the fit stops there instead of
    breaking down (librosa returns NaN for it) and the guess still continues the tone."""
    from nextblock.features.lpc import burg_continuation

    n = np.arange(768 + 256)
    tone = (np.sin(2 * np.pi * 440 * n / 48000) + 0.3 * np.sin(2 * np.pi * 1250 * n / 48000)).astype(np.float32)
    guess = burg_continuation(tone[None, :768], 128, 256)[0]
    future = tone[768:]
    assert 10 * np.log10(np.sum(future**2) / np.sum((future - guess) ** 2)) > 30.0  # 34.7 dB: float32 input


def test_burg_guess_stays_finite_and_bounded_on_awkward_contexts():
    """Onsets after silence, a lone click, a DC step, denormal-level noise and clipping: the
    guess must stay finite and of the context's order of magnitude (a training run once met NaN
    before the fit stopped at a vanishing error or a reflection coefficient of magnitude 1)."""
    rng = np.random.default_rng(3)
    contexts = np.zeros((6, 1024), np.float32)
    contexts[0, 700:] = rng.standard_normal(324)
    contexts[1, 1000] = 1.0
    contexts[2, 512:] = 0.5
    contexts[3] = 1e-20 * rng.standard_normal(1024)
    contexts[4] = np.clip(3 * np.sin(np.arange(1024) / 7.0), -1, 1)
    contexts[5, ::2] = 1.0
    codec = SpectralCodec(FeatureConfig(lpc_order=128, lpc_burg_samples=768))
    features, scale, guess = codec.encode_with_guess(contexts)
    assert np.all(np.isfinite(features)) and np.all(np.isfinite(guess))
    assert np.all(np.max(np.abs(guess), axis=1) <= 100 * np.max(np.abs(contexts), axis=1) + 1e-12)


def test_high_order_burg_guess_keeps_double_precision_on_predictable_sound():
    """A dark, strongly predictable tone (39 partials of 110 Hz through an 8th-order 500-Hz low-pass,
    noise 100 dB down) at orders 256 and 384 on 1024 samples: the C++ guess (double for the first
    orders, float32 after) continues it as librosa's float64 Burg does (~95 dB apart). A lattice in
    float32 from the first order is only 26-29 dB from it (its guess 1.3-1.7 dB worse): round-off at
    the signal's level reaches prediction errors far below it."""
    import scipy.signal

    from nextblock.concealers.ar import reference_ar_continuation
    from nextblock.features.lpc import burg_continuation

    n = np.arange(1024 + 256)
    harmonics = sum(np.sin(2 * np.pi * 110 * k * n / 48000 + k) / k for k in range(1, 40))
    b, a = scipy.signal.butter(8, 500 / 24000)
    noise = 1e-5 * np.random.default_rng(7).standard_normal(n.shape[0])
    tone = (scipy.signal.lfilter(b, a, harmonics) + noise).astype(np.float32)
    for order in (256, 384):
        reference = reference_ar_continuation(tone[:1024], order, 256)
        guess = burg_continuation(tone[None, :1024], order, 256)[0]
        difference_db = 10 * np.log10(np.sum(reference**2) / np.sum((guess - reference) ** 2))
        assert difference_db > 40.0, (
            f"order {order}: the C++ guess is only {difference_db:.1f} dB from the double-precision fit"
        )
