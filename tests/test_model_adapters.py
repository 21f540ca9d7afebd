"""The stream adapters (:mod:`nextblock.model.adapters`) play what ``StreamPredictor`` played.

``tests/data/stream_reference.npz`` holds what the one-class ``StreamPredictor`` (before the
adapters) played with the shipped model on a fixed input, at eight geometries: reused predictions
at 16-64 frames, the long-term guess in and out of a burst, a context jump, the Burg guess past
the horizon and chaining (``tests/record_stream_reference.py`` made it). The stacked adapters
must play the same samples, bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from record_stream_reference import CASES, play

REFERENCE = Path(__file__).parent / "data" / "stream_reference.npz"


@pytest.fixture(scope="module")
def model():
    from nextblock.model import default_model_path
    from nextblock.model.runner import BlockPredictor

    return BlockPredictor(default_model_path())


def _make(m, frames, rate, refresh, beyond, long_term):
    from nextblock.model.stream import stream_predictor

    return stream_predictor(m, frames, rate, min_refresh_samples=refresh, beyond_horizon=beyond, long_term=long_term)


@pytest.mark.parametrize(
    "index", range(len(CASES)), ids=[f"{c[0]}f-{c[1]}hz-refresh{c[2]}-lt{int(c[3])}-{c[4]}" for c in CASES]
)
def test_the_adapters_play_what_the_stream_predictor_played(model, index):
    expected = np.load(REFERENCE)[f"case{index}"]
    played = play(_make, model, CASES[index])
    assert played.shape == expected.shape
    np.testing.assert_array_equal(played, expected)


def test_attachs_stack_plays_the_same_samples_through_the_batch_buckets(model):
    """attach's path (fit_to_stream, one interpreter per bucket, padded rows) at 128 frames."""
    from nextblock.runtime.batching import BucketedPredictor
    from nextblock.runtime.predictors import fit_to_stream

    case = CASES[3]  # 128 frames, 48 kHz, reuse 64, long-term guess: what attach runs
    bucketed = BucketedPredictor(lambda: fit_to_stream(model, 128, 48000), max_rows=4)
    played = play(lambda *a: bucketed, model, case)
    np.testing.assert_array_equal(played, np.load(REFERENCE)["case3"])


def test_each_adapter_does_one_job_and_forwards_the_rest(model):
    from nextblock.model.adapters import HorizonBlocks, LongTermBlend, ReusePrediction
    from nextblock.model.stream import stream_predictor

    stack = stream_predictor(model, 32, 48000, min_refresh_samples=64)
    assert isinstance(stack, LongTermBlend) and isinstance(stack.inner, ReusePrediction)
    assert isinstance(stack.inner.inner, HorizonBlocks) and stack.inner.inner.inner is model
    assert stack.model is model and stack.calls == 1 and stack.model_context_samples == model.context_samples
    assert "32 frames at 48000 Hz" in stack.describe()
    assert not isinstance(stream_predictor(model, 256, 48000, min_refresh_samples=64).inner, ReusePrediction)
    bare = stream_predictor(model, 512, 48000, long_term=False)
    assert isinstance(bare, HorizonBlocks) and bare.beyond_horizon == "guess"
    with pytest.raises(ValueError, match="one model call"):
        ReusePrediction(bare, 64)
