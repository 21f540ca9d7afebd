"""The two-sided network: its guess, its features, training and export with ``--two-sided``, and
the runtime wrapper (:class:`nextblock.model.two_sided.TwoSidedPredictor`, :class:`TwoSidedFill`)."""

from __future__ import annotations

import numpy as np
import pytest

from nextblock.features.config import FeatureConfig
from nextblock.features.spectral import SpectralCodec
from nextblock.features.twosided import FAST_GUESS, FULL_GUESS, GUESS_RECIPES, GuessRecipe, fill_gap, two_sided_guess


def tones(samples: int, rows: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples)
    x = sum(
        rng.uniform(0.1, 0.3, (rows, 1)) * np.sin(rng.uniform(0.01, 0.5, (rows, 1)) * t + rng.uniform(0, 6, (rows, 1)))
        for _ in range(3)
    )
    return (x + 0.01 * rng.standard_normal((rows, samples))).astype(np.float32)


def test_given_guess_features_equal_the_codecs_own_when_given_its_own_guess():
    codec = SpectralCodec(FeatureConfig(128, 1024, 48000, 2, 128, 384, 1024))
    context = tones(1024, rows=3)
    features, scale, guess = codec.encode_with_guess(context)
    given, given_scale = codec.encode_given_guess(context, guess)
    np.testing.assert_array_equal(given_scale, scale)
    np.testing.assert_allclose(given, features, atol=1e-6)
    with pytest.raises(ValueError, match="guess has shape"):
        codec.encode_given_guess(context, guess[:, :100])
    with pytest.raises(ValueError, match="no guess channels"):
        SpectralCodec(FeatureConfig(128, 1024)).encode_given_guess(context, guess)


def test_two_sided_guess_is_the_lsar_fill_then_the_samples_that_arrived():
    x = tones(1024 + 256)
    guess = two_sided_guess(x[:, :1024], x[:, 1152:], 128, 256)
    assert guess.shape == (2, 256) and guess.dtype == np.float32
    np.testing.assert_array_equal(guess[:, 128:], x[:, 1152:])
    fill, _ = fill_gap(x[:, :1024], x[:, 1152:], 128, order=128, prior_weight=0.0, prior_fade=0.0, levinson=True)
    np.testing.assert_array_equal(guess[:, :128], fill)
    err = np.sum((guess[:, :128] - x[:, 1024:1152]) ** 2) / np.sum(x[:, 1024:1152] ** 2)
    assert err < 0.01  # three tones: LSAR interpolates them almost exactly
    with pytest.raises(ValueError, match="needs 128 future samples"):
        two_sided_guess(x[:, :1024], x[:, 1152:1200], 128, 256)


def test_the_full_recipe_is_the_fusion_nextblock_plays_and_survives_the_metadata():
    """``--two-sided-guess full``: the network corrects exactly what fill_gap fills by default
    (AR(256), the prior fading over the gap); a model file's metadata gives the recipe back, and a
    file from before recipes were recorded reads as the fast one at its own order and weight."""
    x = tones(1024 + 256)
    prior = (0.9 * x[:, 1024:1152]).astype(np.float32)
    guess = two_sided_guess(x[:, :1024], x[:, 1152:], 128, 256, prior, recipe=FULL_GUESS)
    fill, _ = fill_gap(x[:, :1024], x[:, 1152:], 128, prior)
    np.testing.assert_array_equal(guess[:, :128], fill)
    fast = two_sided_guess(x[:, :1024], x[:, 1152:], 128, 256, prior, recipe=FAST_GUESS)
    assert not np.array_equal(fast[:, :128], fill)
    for recipe in GUESS_RECIPES.values():
        assert GuessRecipe.from_metadata({"gap_samples": 128, **recipe.metadata()}) == recipe
    old = GuessRecipe.from_metadata({"gap_samples": 128, "guess": "fusion", "guess_order": 128, "prior_weight": 0.3})
    assert old == FAST_GUESS


def _train_tiny(tmp_path_factory, *extra: str):
    pytest.importorskip("tensorflow", reason="TensorFlow (training extra) is not installed")
    import soundfile as sf

    from nextblock.commands import export, train

    root = tmp_path_factory.mktemp("two-sided")
    audio = root / "audio" / "tones"
    audio.mkdir(parents=True)
    for i in range(30):
        sf.write(str(audio / f"take{i:02d}.wav"), tones(48000, rows=1, seed=i)[0], 48000)
    mp = pytest.MonkeyPatch()
    mp.setenv("NEXTBLOCK_CACHE", str(root / "cache"))
    try:
        assert (
            train.main(
                [
                    "--audio",
                    str(audio.parent),
                    "--run-dir",
                    str(root / "run"),
                    "--two-sided",
                    "--lpc-order",
                    "32",
                    "--lpc-burg-samples",
                    "512",
                    "--width",
                    "8",
                    "--blocks",
                    "1",
                    "--epochs",
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
                    *extra,
                ]
            )
            == 0
        )
    finally:
        mp.undo()
    out = root / "tiny-twosided.tflite"
    assert export.main(["--run-dir", str(root / "run"), "--output", str(out), "--model-version", "0.1"]) == 0
    return out


@pytest.fixture(scope="module")
def tiny_two_sided_model(tmp_path_factory):
    """A two-sided model (plain LSAR guess) trained for one epoch on synthetic tones, exported."""
    return _train_tiny(tmp_path_factory)


@pytest.fixture(scope="module")
def tiny_fused_model(tmp_path_factory):
    """The same with the guess fused with the shipped causal model's prediction (--two-sided-prior)."""
    from nextblock.model import default_model_path

    return _train_tiny(tmp_path_factory, "--two-sided-prior", str(default_model_path()))


def test_export_says_the_model_is_two_sided_and_the_predictor_fills_between_both_sides(tiny_two_sided_model):
    from nextblock.model.metadata import read_metadata
    from nextblock.model.two_sided import TwoSidedPredictor

    md = read_metadata(tiny_two_sided_model)
    assert md["two_sided"] == {
        "gap_samples": 128,
        "guess": "lsar",
        "guess_recipe": "fast",
        "guess_order": 128,
        "prior_weight": 0.0,
        "prior_fade": 0.0,
        "levinson": True,
    }
    assert md["training"]["two_sided"] is True
    predictor = TwoSidedPredictor(tiny_two_sided_model)
    assert (predictor.gap_samples, predictor.future_samples, predictor.past_samples) == (128, 128, 1024)
    x = tones(1024 + 256)
    fill = predictor.fill(x[:, :1024], x[:, 1152:])
    guess = two_sided_guess(x[:, :1024], x[:, 1152:], 128, 256)
    assert fill.shape == (2, 128) and np.isfinite(fill).all()
    # it starts as the guess (which continues the past) and ends as it (which meets the future)
    np.testing.assert_allclose(fill[:, 0], guess[:, 0], atol=1e-6)
    np.testing.assert_allclose(fill[:, -1], guess[:, 127], atol=1e-6)
    with pytest.raises(ValueError, match="needs 1024 past and 128 future"):
        predictor.fill(x[:, :1000], x[:, 1152:])


def test_a_causal_model_is_refused_as_two_sided_and_the_fill_falls_back_to_the_fusion(tiny_two_sided_model):
    from nextblock.model import default_model_path
    from nextblock.model.metadata import ModelFileError
    from nextblock.model.two_sided import TwoSidedFill, TwoSidedPredictor

    with pytest.raises(ModelFileError, match="not a two-sided model"):
        TwoSidedPredictor(default_model_path())
    fill = TwoSidedFill(TwoSidedPredictor(tiny_two_sided_model))
    x = tones(1024 + 512)
    assert fill.uses_network(1024, 128, 128) and not fill.uses_network(1024, 64, 128)
    assert not fill.uses_network(1024, 256, 256) and not fill.uses_network(512, 128, 128)
    out = fill(x[:, :1024], x[:, 1152:1280], 128)
    out_wide = fill(x[:, :1024], x[:, 1280:], 256)  # a two-block gap: the fusion's
    assert (fill.network_fills, fill.fusion_fills) == (1, 1)
    assert out.shape == (2, 128) and out_wide.shape == (2, 256)
    np.testing.assert_array_equal(out_wide, fill_gap(x[:, :1024], x[:, 1280:], 256)[0])
    assert TwoSidedFill(None).uses_network(1024, 128, 128) is False


def test_a_model_trained_on_the_fused_guess_needs_the_causal_prediction(tiny_fused_model):
    from nextblock.model.metadata import read_metadata
    from nextblock.model.two_sided import TwoSidedFill, TwoSidedPredictor

    md = read_metadata(tiny_fused_model)
    assert md["two_sided"]["guess"] == "fusion" and md["two_sided"]["prior_weight"] > 0
    predictor = TwoSidedPredictor(tiny_fused_model)
    assert predictor.needs_prior
    x = tones(1024 + 256)
    with pytest.raises(ValueError, match="give the causal prediction as prior"):
        predictor.fill(x[:, :1024], x[:, 1152:])
    prior = x[:, 1024:1152] + 0.01
    fill = predictor.fill(x[:, :1024], x[:, 1152:], prior)
    guess = two_sided_guess(x[:, :1024], x[:, 1152:], 128, 256, prior, prior_weight=md["two_sided"]["prior_weight"])
    np.testing.assert_allclose(fill[:, -1], guess[:, 127], atol=1e-6)
    both = TwoSidedFill(predictor)
    both(x[:, :1024], x[:, 1152:], 128)  # no prior: the fusion's, not the network's
    both(x[:, :1024], x[:, 1152:], 128, prior)
    assert (both.network_fills, both.fusion_fills) == (1, 1)
