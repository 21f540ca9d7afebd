"""The long-term (pattern-matching) guess: C++ kernel against its numpy reference (exact where the
best lag is unique, as good where several are), the gate, bursts, and its blend into the stream
predictor and the live loop's context."""

from __future__ import annotations

import numpy as np
import pytest

from nextblock.features.pattern import (
    DECAY_PER_128_SAMPLES,
    FADE_IN_SAMPLES,
    HISTORY_SAMPLES,
    LongTermGuess,
    blend_long_term,
    reference_long_term_guess,
    reference_match,
)


def voice(n: int, period: float = 211.3, seed: int = 0, noise: float = 0.0005, glide: float = 0.01) -> np.ndarray:
    """A voiced-vowel stand-in: a pulse train of decaying resonances whose period glides up by
    ``glide`` (relative) over 4096 samples — so the newest period matches best, as in a real
    voice — plus a little noise. ``(n,)`` float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    periods = period * (1.0 + glide * (t - (n - 512)) / 4096.0)
    phase = np.cumsum(1.0 / periods) % 1.0
    x = np.exp(-6.0 * phase) * np.sin(2 * np.pi * 3.0 * phase) + 0.4 * np.exp(-9.0 * phase) * np.sin(
        2 * np.pi * 7.0 * phase
    )
    return (0.3 * x + noise * rng.standard_normal(n)).astype(np.float32)


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    e = ref.astype(np.float64) - est
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum(e * e)))


def test_a_voiced_sound_is_continued_by_its_last_period_as_the_reference_does():
    signal = voice(HISTORY_SAMPLES + 512)
    history, future = signal[:HISTORY_SAMPLES], signal[HISTORY_SAMPLES : HISTORY_SAMPLES + 256]
    guess, weight = LongTermGuess().guess(history[None], 0, 256)
    ref_guess, ref_weight = reference_long_term_guess(history, 0, 256)
    assert weight.shape == (1,) and guess.shape == (1, 256) and guess.dtype == np.float32
    lag, _ = reference_match(history, HISTORY_SAMPLES)
    periods = lag / 211.3
    assert periods > 0.9 and abs(periods - round(periods)) < 0.05  # a whole number of periods
    # the coarse-to-fine search finds a match as good as the exhaustive one (on a near-periodic
    # signal several lags are equally good; which one is found differs by noise only)
    assert snr_db(future, guess[0]) > snr_db(future, ref_guess) - 6.0
    assert weight[0] == pytest.approx(ref_weight, abs=0.1)
    assert weight[0] == 1.0  # the copy beats a linear guess on its own last samples by > 6 dB
    assert snr_db(future, guess[0]) > 15.0 and snr_db(future, ref_guess) > 15.0


@pytest.mark.parametrize("seed", [1, 2])
def test_noise_gets_no_weight_and_silence_or_nan_give_nothing(seed):
    rng = np.random.default_rng(seed)
    lt = LongTermGuess()
    noise = (0.1 * rng.standard_normal((1, HISTORY_SAMPLES))).astype(np.float32)
    _, weight = lt.guess(noise, 0, 256)
    assert weight[0] < 0.2  # a copy of noise is no better than a linear guess
    silent = np.zeros((1, HISTORY_SAMPLES), np.float32)
    broken = voice(HISTORY_SAMPLES)[None].copy()
    broken[0, 100] = np.nan
    for history in (silent, broken):
        guess, weight = lt.guess(history, 0, 256)
        assert weight[0] == 0.0 and not np.any(guess)


def test_in_a_burst_the_kernel_matches_before_the_concealed_samples_and_continues_past_them():
    """What a burst already played (here: garbage) is not matched: the kernel's guess for block k
    of a burst is the burst-start guess continued k blocks, at the burst start's weight."""
    from nextblock import _core
    from nextblock.features import pattern

    signal = voice(HISTORY_SAMPLES + 1024, seed=3)
    kernel = _core.LongTermPredictor(
        HISTORY_SAMPLES,
        pattern.TEMPLATE_SAMPLES,
        pattern.MIN_LAG_SAMPLES,
        pattern.BACKCAST_SAMPLES,
        pattern.GATE_AR_ORDER,
        pattern.GATE_AR_SAMPLES,
        pattern.MAX_GAIN,
        pattern.GATE_LO_DB,
        pattern.GATE_HI_DB,
        1e-12,
        pattern.WRAP_FRACTION,
        pattern.WRAP_MAX_SAMPLES,
    )
    concealed = 256
    start = signal[None, :HISTORY_SAMPLES].copy()
    start[0, :concealed] = 0.0  # what the later history no longer holds
    whole, w0 = kernel.predict(start, np.array([0]), 3 * 128)
    history = signal[None, concealed : HISTORY_SAMPLES + concealed].copy()
    history[0, -concealed:] = np.random.default_rng(0).standard_normal(concealed).astype(np.float32)  # what we played
    later, w2 = kernel.predict(history, np.array([concealed]), 128)
    assert w0[0] > 0.5 and w2[0] == pytest.approx(w0[0], rel=1e-6)
    np.testing.assert_allclose(later[0], whole[0, concealed : concealed + 128], atol=1e-5)
    truth = signal[HISTORY_SAMPLES + concealed : HISTORY_SAMPLES + concealed + 128]
    ref, ref_w = reference_long_term_guess(history[0], concealed, 128)
    assert ref_w == pytest.approx(w2[0] * DECAY_PER_128_SAMPLES**2, abs=0.1)
    assert snr_db(truth, later[0]) > 10.0
    # the shipped guess decays the weight per concealed 128 samples (0: a burst's first block only)
    guess, weight = LongTermGuess().guess(np.concatenate([start, history]), np.array([0, concealed]), 128)
    assert weight[0] == pytest.approx(w0[0], rel=1e-6)
    assert weight[1] == pytest.approx(w0[0] * DECAY_PER_128_SAMPLES**2, rel=1e-5)
    if DECAY_PER_128_SAMPLES == 0.0:
        assert not np.any(guess[1])
    else:
        np.testing.assert_allclose(guess[1], later[0], atol=1e-6)


def test_the_repeated_period_joins_the_next_repetition_without_a_step():
    """A 200-sample period on a slow drift: the last period's end and its start differ by the drift
    over a period (a step of 0.02, twice the largest sample-to-sample change of the sine). Repeated
    as is, the guess steps at every wrap; with the quarter-period cross-fade (the shipped setting,
    which the numpy reference shares) it moves no faster than the history does."""
    from nextblock import _core
    from nextblock.features import pattern

    t = np.arange(HISTORY_SAMPLES, dtype=np.float64)
    history = (0.3 * np.sin(2 * np.pi * t / 200.0) + 1e-4 * t - 0.2).astype(np.float32)[None]
    history_step = float(np.max(np.abs(np.diff(history[0, -600:]))))

    def kernel(wrap_fraction):  # the gate always open: the guess itself is under test
        return _core.LongTermPredictor(
            HISTORY_SAMPLES,
            pattern.TEMPLATE_SAMPLES,
            pattern.MIN_LAG_SAMPLES,
            pattern.BACKCAST_SAMPLES,
            pattern.GATE_AR_ORDER,
            pattern.GATE_AR_SAMPLES,
            pattern.MAX_GAIN,
            -100.0,
            -99.0,
            1e-12,
            wrap_fraction,
            pattern.WRAP_MAX_SAMPLES,
        )

    plain, w = kernel(0.0).predict(history, np.array([0]), 512)
    smooth, w_smooth = kernel(pattern.WRAP_FRACTION).predict(history, np.array([0]), 512)
    assert w[0] == 1.0 and w_smooth[0] == 1.0
    assert np.max(np.abs(np.diff(plain[0]))) > 1.8 * history_step  # the step at the wrap
    assert np.max(np.abs(np.diff(smooth[0]))) < 1.2 * history_step
    ref, _ = reference_long_term_guess(history[0], 0, 512)  # (its own gate opens half-way here)
    assert np.any(ref)
    np.testing.assert_allclose(smooth[0], ref, atol=1e-4)
    with pytest.raises(ValueError, match="wrap_fraction"):
        _core.LongTermPredictor(HISTORY_SAMPLES, 256, 32, 128, 32, 512, 1.5, 0.0, 6.0, 1e-12, 1.0, 64)


def test_the_kernel_finds_the_exhaustive_searchs_lag_where_one_lag_is_best():
    """A burst of low-passed noise repeated once, 1000 samples later, in quieter noise: only one
    lag matches; the kernel's guess is then the reference's to float rounding."""
    import scipy.signal

    rng = np.random.default_rng(7)
    history = (0.01 * rng.standard_normal(HISTORY_SAMPLES)).astype(np.float32)
    burst = (0.5 * scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(700)) / 2.3).astype(np.float32)
    history[HISTORY_SAMPLES - 1700 : HISTORY_SAMPLES - 1000] += burst
    history[HISTORY_SAMPLES - 700 :] += burst
    lag, _ = reference_match(history, HISTORY_SAMPLES)
    assert lag == 1000
    guess, _ = LongTermGuess().guess(history[None], 0, 256)
    ref_guess, _ = reference_long_term_guess(history, 0, 256)
    if np.any(ref_guess):
        np.testing.assert_allclose(guess[0], ref_guess, atol=1e-5)


def test_bad_shapes_are_refused():
    lt = LongTermGuess()
    with pytest.raises(ValueError, match="history must have shape"):
        lt.guess(np.zeros((1, 1024), np.float32), 0, 256)
    with pytest.raises(ValueError, match="concealed_samples must not be negative"):
        lt.guess(np.zeros((2, HISTORY_SAMPLES), np.float32), np.array([-1, 0]), 256)
    with pytest.raises(ValueError, match="concealed_samples must not be negative"):
        lt.guess(np.zeros((2, HISTORY_SAMPLES), np.float32), -128, 256)
    with pytest.raises(ValueError, match=r"one int or have shape \(2,\)"):
        lt.guess(np.zeros((2, HISTORY_SAMPLES), np.float32), np.array([0, 0, 0]), 256)
    with pytest.raises(ValueError, match="skip must not be negative"):
        lt._core.predict(np.zeros((1, HISTORY_SAMPLES), np.float32), np.array([-1]), 256)
    from nextblock import _core

    with pytest.raises(ValueError, match="history too short"):
        _core.LongTermPredictor(512, 256, 32, 128, 32, 512, 1.5, 0.0, 6.0, 1e-12, 0.25, 64)


def test_the_blend_fades_the_guess_in_at_a_bursts_start_only():
    prediction = np.zeros((3, 256), np.float32)
    guess = np.ones((3, 256), np.float32)
    out = blend_long_term(prediction, guess, np.array([1.0, 0.5, 0.0]), np.array([0, 128, 0]))
    assert out is prediction
    assert out[0, 0] < 0.05 and out[0, FADE_IN_SAMPLES - 1] > 0.95 and np.all(out[0, FADE_IN_SAMPLES:] == 1.0)
    np.testing.assert_allclose(out[1], 0.5)  # inside a burst: no fade, the weight throughout
    assert not np.any(out[2])


class Silent:
    """A stand-in model that predicts silence (3.x metadata: any block size and rate)."""

    def __init__(self):
        self.context_samples, self.horizon_samples = 1024, 256
        self.model_version, self.name = "silent", "silent"
        self.metadata = {
            "frames_per_block": 128,
            "outputs_blocks": 2,
            "sample_rate_hz": 48000,
            "sample_rates_hz": [32000, 44100, 48000, 88200, 96000],
            "model_version": "silent",
        }

    def predict_horizon(self, context):
        assert context.shape[1] == 1024
        return np.zeros((context.shape[0], 256), np.float32)


def test_the_stream_predictor_blends_the_long_term_guess_into_the_models_blocks():
    from nextblock.model.stream import stream_predictor

    signal = voice(HISTORY_SAMPLES + 256, seed=5)
    context = np.stack([signal[:HISTORY_SAMPLES], np.zeros(HISTORY_SAMPLES, np.float32)])
    with_lt = stream_predictor(Silent(), 128, 48000)
    assert with_lt.context_samples == HISTORY_SAMPLES and with_lt.model_context_samples == 1024
    out = with_lt.predict(context)
    assert out.shape == (2, 2, 128)
    assert snr_db(signal[HISTORY_SAMPLES + FADE_IN_SAMPLES :], out[0].reshape(-1)[FADE_IN_SAMPLES:]) > 10.0
    assert not np.any(out[1])  # silence stays silence
    net_only = stream_predictor(Silent(), 128, 48000, long_term=False)
    assert net_only.context_samples == 1024 and not np.any(net_only.predict(context[:, -1024:]))
    with pytest.raises(ValueError, match="4096 samples"):
        with_lt.predict(context[:, -1024:])


def test_the_ring_counts_the_concealed_blocks_before_a_seq():
    from nextblock.runtime.context import ContextRing

    ring = ContextRing(1, 128, slots=64)
    block = np.ones((128, 1), np.float32)
    for seq in range(10):
        ring.put_received(seq, block)
    assert ring.concealed_samples_before(10, 32) == 0
    ring.put_predicted(10, np.zeros((1, 128), np.float32))
    ring.put_predicted(11, np.zeros((1, 128), np.float32))
    assert ring.concealed_samples_before(12, 32) == 256
    assert ring.concealed_samples_before(13, 32) == 384  # block 12 is not there yet either
    assert ring.concealed_samples_before(12, 1) == 128  # capped
    ring.put_received(11, block)
    assert ring.concealed_samples_before(12, 32) == 0


def test_the_bucketed_predictor_passes_concealed_samples_on_and_pads_with_zero():
    from nextblock.runtime.batching import BucketedPredictor

    seen = []

    class Member:
        frames_per_block, context_samples, sample_rate_hz, model_version = 128, 64, 48000, "x"
        takes_concealed_samples = True

        def predict(self, context, concealed_samples=None):
            seen.append(None if concealed_samples is None else np.array(concealed_samples))
            return np.zeros((context.shape[0], 2, 128), np.float32)

    bucketed = BucketedPredictor(Member, max_rows=4)
    assert bucketed.takes_concealed_samples
    bucketed.predict(np.zeros((3, 64), np.float32), np.array([0, 256, 128]))
    np.testing.assert_array_equal(seen[-1], [0, 256, 128, 0])
    bucketed.predict(np.zeros((2, 64), np.float32))
    assert seen[-1] is None


def test_the_one_call_blend_is_the_guess_blended_in_as_blend_long_term_does():
    """``LongTermGuess.blend_into`` (the live path: one C++ call) gives what ``guess`` followed by
    ``blend_long_term`` gives: a voiced row outside a burst (faded in), the same row inside one
    (the decay), silence (weight 0, untouched), all in one call, in place."""
    rng = np.random.default_rng(3)
    signal = voice(HISTORY_SAMPLES + 512)
    history = np.stack(
        [signal[:HISTORY_SAMPLES], signal[256 : HISTORY_SAMPLES + 256], np.zeros(HISTORY_SAMPLES, np.float32)]
    )
    concealed = np.array([0, 256, 0])
    prediction = (0.05 * rng.standard_normal((3, 256))).astype(np.float32)
    guess, weight = LongTermGuess().guess(history, concealed, 256)
    expected = blend_long_term(prediction.copy(), guess, weight, concealed)
    blended = prediction.copy()
    got = LongTermGuess().blend_into(history, concealed, blended)
    np.testing.assert_allclose(got, weight, rtol=1e-12)
    assert weight[0] == 1.0 and weight[2] == 0.0
    np.testing.assert_allclose(blended, expected, atol=1e-6)
    assert not np.array_equal(blended[0], prediction[0])  # (the guess went in)
    np.testing.assert_array_equal(blended[2], prediction[2])  # silence: untouched
    # in place or not at all: a copy made by a conversion would lose the blend silently
    for bad in (prediction.astype(np.float64), np.asfortranarray(np.repeat(prediction, 2, axis=0))[::2]):
        with pytest.raises(ValueError, match="prediction must be"):
            LongTermGuess().blend_into(history, concealed, bad)
    frozen = prediction.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="prediction must be"):
        LongTermGuess().blend_into(history, concealed, frozen)
