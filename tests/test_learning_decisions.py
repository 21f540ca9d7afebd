"""The learner's publish/keep/reset/fall-back decisions, with scores injected (no TensorFlow, fast).

The scoring functions are replaced by a table {model: snr_db}, so each test states exactly which
model is better on the held-back window and checks what the learner does about it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nextblock.features.config import FeatureConfig
from nextblock.learning import learner as learner_module
from nextblock.learning.learner import CurrentModel, LearnerSettings, OnlineLearner
from nextblock.learning.publish import Publisher, read_current, verify_published
from nextblock.learning.stream import ArrayStream
from nextblock.learning.validate import Score

RATE = 48000


class FakeTuner:
    """Stands in for FineTuner: weights are one array whose value names the model."""

    def __init__(self, value: float):
        self.weights = [np.full(3, value, np.float32)]
        self.model = "keras-model"

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [w.copy() for w in weights]

    def weights_bytes(self):
        return self.weights[0].tobytes()


@pytest.fixture
def scores(monkeypatch):
    """``scores[key] = snr_db``; keys: a model file's name, "keras" (the candidate's pre-check),
    "export" (the exported candidate)."""
    table: dict[str, float] = {}

    def by_file(path, windows, config, num_threads=1):
        name = Path(path).name
        return Score(table["export" if name == "candidate.tflite" else name], windows.shape[0], 1.0)

    monkeypatch.setattr(learner_module, "score_model_file", by_file)
    monkeypatch.setattr(
        learner_module, "score_keras", lambda tuner, windows, config: Score(table["keras"], windows.shape[0], 1.0)
    )
    return table


def make_learner(tmp_path, fallback_margin_db=None):
    start = tmp_path / "start.tflite"
    start.write_bytes(b"TFL3-start")
    audio = 0.1 * np.random.default_rng(0).standard_normal(8 * RATE).astype(np.float32)
    exports = []

    def export(model, path):
        exports.append(path)
        Path(path).write_bytes(b"TFL3-candidate-%d" % len(exports))

    learner = OnlineLearner(
        [ArrayStream(audio, RATE, chunk_samples=8 * RATE)],
        FakeTuner(0.0),
        FeatureConfig(),
        CurrentModel(start, None),
        Publisher(tmp_path / "live"),
        export,
        LearnerSettings(
            replay_seconds=6,
            holdout_seconds=2,
            max_validation_windows=50,
            min_gain_db=0.1,
            fallback_margin_db=fallback_margin_db,
        ),
        log=lambda line: None,
        update_log_path=tmp_path / "updates.jsonl",
        baseline=start,
        baseline_weights=[np.full(3, -1.0, np.float32)],
    )
    learner.ingest()
    return learner, exports


def test_a_better_candidate_is_exported_scored_through_litert_and_published(tmp_path, scores):
    learner, exports = make_learner(tmp_path)
    scores.update({"start.tflite": 1.0, "keras": 2.0, "export": 1.8})
    record = learner.validate()
    assert record.published and record.version == 1 and record.parent_version is None
    assert record.gain_db == pytest.approx(0.8), "the published gain is the LiteRT one, not Keras'"
    published = read_current(tmp_path / "live")
    assert verify_published(published) == b"TFL3-candidate-1"
    assert published.record["validation"]["snr_db_previous"] == 1.0
    assert learner.current.version == 1
    # the next candidate is compared with v1 now
    scores.update({"model-v1.tflite": 1.8, "keras": 2.5, "export": 2.6})
    assert learner.validate().version == 2
    assert read_current(tmp_path / "live").record["parent_version"] == 1
    lines = (tmp_path / "updates.jsonl").read_text().splitlines()
    assert [json.loads(line)["version"] for line in lines] == [1, 2]


def test_the_export_is_skipped_when_the_keras_pre_check_fails(tmp_path, scores):
    learner, exports = make_learner(tmp_path)
    scores.update({"start.tflite": 1.0, "keras": 1.05, "export": 9.0})
    record = learner.validate()
    assert not record.published and not exports and read_current(tmp_path / "live") is None


def test_litert_has_the_last_word(tmp_path, scores):
    learner, exports = make_learner(tmp_path)
    scores.update({"start.tflite": 1.0, "keras": 2.0, "export": 1.05})  # Keras says yes, LiteRT says no
    record = learner.validate()
    assert exports and not record.published and read_current(tmp_path / "live") is None


def test_a_candidate_that_drifted_far_is_reset_to_the_clients_model(tmp_path, scores):
    learner, _ = make_learner(tmp_path)
    learner.finetuner.set_weights([np.full(3, 7.0, np.float32)])  # drifted
    scores.update({"start.tflite": 4.0, "keras": 0.5})  # 3.5 dB worse > revert_after_db (3)
    record = learner.validate()
    assert not record.published and "reset" in record.reason
    assert learner.finetuner.weights[0][0] == 0.0, "back to the weights of the model the clients run"


def test_fallback_republishes_the_starting_model_when_it_is_clearly_better(tmp_path, scores):
    learner, _ = make_learner(tmp_path, fallback_margin_db=0.5)
    scores.update({"start.tflite": 1.0, "keras": 2.0, "export": 2.0})
    assert learner.validate().version == 1  # a specialised v1
    learner.finetuner.set_weights([np.full(3, 5.0, np.float32)])
    scores.update({"model-v1.tflite": 0.2, "keras": 0.3, "start.tflite": 1.0})  # the character changed
    record = learner.validate()
    assert record.published and record.version == 2 and "starting model" in record.reason
    assert verify_published(read_current(tmp_path / "live")) == b"TFL3-start"
    assert learner.finetuner.weights[0][0] == -1.0, "the candidate restarts from the starting model"
    assert learner.stats.fallbacks == 1


@pytest.mark.parametrize("margin, start_db", [(None, 3.0), (0.5, 0.6)])
def test_no_fallback_when_disabled_or_within_the_margin(tmp_path, scores, margin, start_db):
    learner, _ = make_learner(tmp_path, fallback_margin_db=margin)
    scores.update({"start.tflite": 1.0, "keras": 2.0, "export": 2.0})
    learner.validate()
    scores.update({"model-v1.tflite": 0.2, "keras": 0.3, "start.tflite": start_db})
    record = learner.validate()
    assert not record.published and learner.stats.fallbacks == 0
