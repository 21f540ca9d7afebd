"""Choosing ``guess_weight`` on validation windows (nextblock.model.guess_blend)."""

from __future__ import annotations

import numpy as np
import pytest
from nextblock.model import default_model_path
from nextblock.model.guess_blend import best_weight, blend_scores, lsd_db, model_horizons, snr_db


@pytest.fixture(scope="module")
def shipped():
    try:
        return str(default_model_path())
    except FileNotFoundError as error:
        pytest.skip(f"SKIPPED LOUDLY: no shipped model ({error})")


def _contexts(n: int, samples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples)
    freqs = rng.uniform(0.005, 0.2, size=(n, 1))
    tone = 0.3 * np.sin(2 * np.pi * freqs * t + rng.uniform(0, 6, size=(n, 1)))
    return (tone + 0.01 * rng.standard_normal((n, samples))).astype(np.float32)


def test_the_runner_blends_linearly_so_two_predictions_score_every_weight(shipped):
    from nextblock.model.runner import BlockPredictor

    predictor = BlockPredictor(shipped, warm_up=False)
    contexts = _contexts(6, predictor.context_samples)
    net, guess = model_horizons(shipped, contexts)
    assert not np.allclose(net, guess, atol=1e-3)  # the weight matters
    for weight in (0.25, 0.6):
        predictor.guess_weight = np.float32(weight)
        direct = predictor.predict_horizon(contexts)
        np.testing.assert_allclose(direct, net + np.float32(weight) * (guess - net), atol=2e-5)


def test_scores_prefer_the_prediction_that_matches_the_target():
    rng = np.random.default_rng(3)
    targets = rng.standard_normal((50, 256)).astype(np.float32)
    exact = targets.copy()
    noisy = targets + 0.5 * rng.standard_normal(targets.shape).astype(np.float32)
    rows = blend_scores(noisy, exact, targets, [0.0, 0.5, 1.0])
    assert [r["guess_weight"] for r in rows] == [0.0, 0.5, 1.0]
    assert rows[0]["first_snr_db"] < rows[1]["first_snr_db"] < rows[2]["first_snr_db"]
    assert rows[0]["first_lsd_db"] > rows[2]["first_lsd_db"]
    assert best_weight(rows) == 1.0
    assert best_weight(blend_scores(exact, noisy, targets, [0.0, 1.0])) == 0.0


def test_snr_and_lsd_of_known_signals():
    t = np.ones((2, 128), np.float32)
    half = 0.5 * t
    np.testing.assert_allclose(snr_db(t, half), 10 * np.log10(4.0), rtol=1e-6)  # error is half the signal
    assert np.all(snr_db(t, t) == 60.0)  # clipped, not infinite
    noise = np.random.default_rng(0).standard_normal((3, 128))
    np.testing.assert_allclose(lsd_db(noise, noise), 0.0, atol=1e-9)
    np.testing.assert_allclose(lsd_db(noise, 0.5 * noise), 20 * np.log10(2.0), rtol=1e-3)  # 6 dB in every bin
