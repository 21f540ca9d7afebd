"""Metrics against hand-computed values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from nextblock.evaluation import metrics, perceptual

RATE_HZ = 48000


def test_concealed_mask_adds_the_recovery_block_after_each_run():
    lost = np.array([0, 1, 1, 0, 0, 1, 0, 1], dtype=bool)
    assert metrics.concealed_block_mask(lost).astype(int).tolist() == [0, 1, 1, 1, 0, 1, 1, 1]
    assert metrics.concealed_block_mask(lost, include_recovery=False).tolist() == lost.tolist()
    samples = metrics.concealed_sample_mask(np.array([0, 1, 0], bool), 2, 5)
    assert samples.astype(int).tolist() == [0, 0, 1, 1, 1]


def test_snr_hand_computed():
    ref = np.array([1.0, 1.0, 1.0, 1.0])
    est = np.array([1.0, 1.0, 0.0, 0.0])
    assert metrics.snr_db(ref, est) == pytest.approx(10 * math.log10(4 / 2))
    assert metrics.snr_db(ref, est, np.array([0, 0, 1, 1], bool)) == pytest.approx(0.0)
    assert metrics.snr_db(ref, 0.9 * ref) == pytest.approx(20.0)  # error 0.1 -> 20 dB
    assert metrics.snr_db(ref, ref) == math.inf
    assert metrics.energy_sums([3.0, 4.0], [3.0, 0.0]) == (25.0, 16.0)
    assert metrics.snr_from_energies(25.0, 16.0) == pytest.approx(10 * math.log10(25 / 16))
    with pytest.raises(ValueError, match="differ in length"):
        metrics.snr_db([1.0, 2.0], [1.0])


def test_log_power_spectrogram_of_a_full_scale_sine_peaks_at_minus_6_db():
    n_fft = 512
    bin_index = 32  # exactly on a bin: 3 kHz at 48 kHz
    t = np.arange(4 * n_fft)
    sine = np.sin(2 * np.pi * bin_index * t / n_fft)
    spectrum_db = metrics.log_power_spectrogram_db(sine, n_fft=n_fft, hop_length=128)
    assert spectrum_db.shape == (n_fft // 2 + 1, (4 * n_fft - n_fft) // 128 + 1)
    np.testing.assert_allclose(spectrum_db[bin_index], 20 * math.log10(0.5), atol=1e-6)  # A²/4


def test_lsd_hand_computed():
    rng = np.random.default_rng(0)
    ref = 0.1 * rng.standard_normal(4096)
    assert metrics.lsd_db(ref, ref) == 0.0
    # every bin 6.02 dB louder (white noise stays far above the -100 dB floor in nearly all bins)
    frames = metrics.lsd_frames_db(ref, 2 * ref)
    assert np.median(frames) == pytest.approx(20 * math.log10(2), abs=1e-9)


def test_frames_touching_a_mask():
    mask = np.zeros(2048, dtype=bool)
    mask[600] = True
    touched = metrics.frames_touching(mask, n_fft=512, hop_length=128)
    # frames start at 0, 128, ...; sample 600 lies in those starting at 128, 256, 384, 512
    assert np.flatnonzero(touched).tolist() == [1, 2, 3, 4]
    ref = np.random.default_rng(1).standard_normal(2048)
    est = ref.copy()
    est[600] = 0.0
    assert metrics.lsd_frames_db(ref, est, mask).shape == (4,)


def test_thd_n_hand_computed():
    t = np.arange(RATE_HZ) / RATE_HZ
    ref = np.sin(2 * np.pi * 1000 * t)
    est = 0.5 * ref + 0.005 * np.sin(2 * np.pi * 3000 * t)  # 1 % third harmonic, any gain
    assert metrics.thd_n_db(ref, est) == pytest.approx(-40.0, abs=0.01)
    assert metrics.thd_n_db(ref, ref) == -math.inf or metrics.thd_n_db(ref, ref) < -200
    assert math.isnan(metrics.thd_n_db(np.zeros(10), np.ones(10)))


def test_perceptual_metrics_return_none_with_a_warning_when_unavailable(monkeypatch):
    def broken():
        raise ImportError("no module named visqol")

    monkeypatch.setattr(perceptual, "_visqol_api", broken)
    monkeypatch.setattr(perceptual, "_plcmos_model", broken)
    monkeypatch.setattr(perceptual, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert perceptual.visqol_mos(np.zeros(100), np.zeros(100), RATE_HZ) is None
        assert perceptual.plcmos_mos(np.zeros(100), RATE_HZ) is None
    assert {type(w.message) for w in caught} == {perceptual.MetricUnavailableWarning}
    assert any("ViSQOL unavailable" in str(w.message) for w in caught)


def test_plcmos_scores_clean_speech_above_chopped_speech():
    if not perceptual.plcmos_available():
        pytest.skip("speechmos/onnxruntime not installed: PLCMOS unavailable")
    from nextblock.evaluation.audio import load_audio
    from nextblock.evaluation.clips import SPEECH_CLIP, ClipUnavailable, debian_clip

    try:
        path = debian_clip(*SPEECH_CLIP)
    except ClipUnavailable as error:
        pytest.skip(f"no real speech clip: {error}")
    speech = load_audio(path, 16000)[0]
    chopped = speech.copy().reshape(-1)
    blocks = chopped[: chopped.shape[0] // 160 * 160].reshape(-1, 160)
    blocks[::4] = 0.0  # 25 % of 10 ms frames dropped
    clean_score = perceptual.plcmos_mos(speech, 16000)
    chopped_score = perceptual.plcmos_mos(blocks.reshape(-1), 16000)
    assert 1.0 <= chopped_score < clean_score <= 5.0
    assert perceptual.plcmos_mos(speech, 16000) == clean_score  # seeded rater embeddings
