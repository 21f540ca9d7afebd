"""The online learner end to end on real audio whose character changes (speech, then guitar).

A tiny NextBlock network (the real architecture, 2 blocks of width 16) is trained briefly on
speech and exported through LiteRT: that is "the model the clients run". The learner then
hears speech followed by guitar and must publish updates that predict the newest, held-back
guitar better than the starting model – scored through LiteRT as a client runs them.

Needs TensorFlow and the Debian packages klettres-data + sonic-pi-samples unpacked in the cache
(see nextblock.learning.scenario); skipped otherwise. About a minute on two cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("tensorflow", reason="the learner fine-tunes with TensorFlow (pip install tensorflow-cpu)")

from nextblock.features.config import FeatureConfig  # noqa: E402
from nextblock.learning import scenario  # noqa: E402
from nextblock.learning.publish import read_current, verify_published  # noqa: E402

RATE = 48000
TINY = {"width": 16, "blocks": 2}
REPO = Path(__file__).resolve().parents[1]


def _material_or_skip():
    try:
        for kind in ("speech", "guitar"):
            scenario.material_files(kind, "stream")
    except scenario.MaterialMissing as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def speech_model(tmp_path_factory):
    """A tiny model trained ~150 steps on speech, exported: ``(tflite_path, weights_path)``."""
    _material_or_skip()
    from nextblock.learning.priority import limit_threads

    limit_threads(1, 1)
    import keras

    from nextblock.learning.examples import LiveExampleBuilder
    from nextblock.learning.finetune import FineTuner
    from nextblock.learning.model_io import TFLiteExporter, build_keras_model
    from nextblock.learning.replay import ReplayBuffer

    keras.utils.set_random_seed(0)
    features = FeatureConfig()
    model = build_keras_model(features, TINY)
    tuner = FineTuner(model, features, learning_rate=1e-3)
    speech = scenario.load_kind("speech", 20, RATE, seed=1)
    buffer = ReplayBuffer(
        speech.shape[0], RATE, features.context_samples + features.output_samples, features.context_samples
    )
    buffer.add("speech", speech)
    builder = LiveExampleBuilder(buffer, features, seed=1)
    for _ in range(150):
        tuner.train_step(*builder.batch(32))
    folder = tmp_path_factory.mktemp("speech-model")
    TFLiteExporter(features, TINY)(model, folder / "speech.tflite")
    model.save_weights(str(folder / "speech.weights.h5"))
    return folder / "speech.tflite", folder / "speech.weights.h5"


def _learner(model_dir, speech_model, audio, learning_rate=1e-3, **settings):
    from nextblock.learning.finetune import FineTuner
    from nextblock.learning.learner import LearnerSettings, OnlineLearner
    from nextblock.learning.model_io import TFLiteExporter, build_keras_model, resolve_starting_point
    from nextblock.learning.publish import Publisher
    from nextblock.learning.stream import ArrayStream

    start = resolve_starting_point(model_dir, speech_model[0])
    assert start.weights == speech_model[1], "the weights next to the model are found"
    model = build_keras_model(start.features, start.architecture, start.weights)
    defaults = dict(
        replay_seconds=20,
        holdout_seconds=3,
        batch_size=32,
        validate_every_s=None,
        validate_every_steps=40,
        max_cpu=1.0,
        max_chunks_per_ingest=1,
        max_validation_windows=300,
    )
    defaults.update(settings)
    lines = []
    learner = OnlineLearner(
        [ArrayStream(audio, RATE, chunk_samples=int(0.15 * RATE), name="speech+guitar")],
        FineTuner(model, start.features, learning_rate=learning_rate),
        start.features,
        start.current,
        Publisher(model_dir),
        TFLiteExporter(start.features, start.architecture),
        LearnerSettings(**defaults),
        log=lines.append,
        update_log_path=Path(model_dir) / "updates.jsonl",
        baseline=speech_model[0],
    )
    return learner, lines


def test_learner_publishes_a_model_that_predicts_the_new_instrument_better(tmp_path, speech_model):
    audio, spans = scenario.changing_stream([("speech", 5), ("guitar", 20)], RATE)
    learner, lines = _learner(tmp_path / "live", speech_model, audio)
    stats = learner.run()
    assert stats.samples_ingested == audio.shape[1], "the whole stream was played to the learner"
    assert stats.steps >= 100
    assert stats.published >= 1, "\n".join(lines)

    published = read_current(tmp_path / "live")
    verify_published(published)  # size and SHA-256 match current.json
    assert published.version == stats.published
    records = [json.loads(line) for line in (tmp_path / "live" / "updates.jsonl").read_text().splitlines()]
    assert len(records) == stats.validations and sum(r["published"] for r in records) == stats.published
    for record in records:
        if record["published"]:
            assert record["gain_db"] >= 0.1 and record["snr_db_candidate"] > record["snr_db_previous"]
    assert published.record["parent_version"] == (published.version - 1 or None)

    # the decisive check, through LiteRT: on the held-back guitar, a published update beats the
    # starting (speech) model clearly (scored at a validation after it was published, or when published)
    over_start = [r["snr_db_candidate"] - r["snr_db_baseline"] for r in records if r["published"]]
    over_start += [r["snr_db_previous"] - r["snr_db_baseline"] for r in records if r["parent_version"] is not None]
    assert max(over_start) > 1.0, f"published models vs the starting model (dB): {over_start}\n" + "\n".join(lines)


def test_a_candidate_that_is_not_better_is_never_published(tmp_path, speech_model):
    audio, _ = scenario.changing_stream([("guitar", 8)], RATE)
    # learning rate 0: the candidate stays identical to the model the clients run (gain 0 dB)
    learner, lines = _learner(tmp_path / "live", speech_model, audio, learning_rate=0.0, validate_every_steps=15)
    stats = learner.run()
    assert stats.validations >= 2, "\n".join(lines)
    assert stats.published == 0 and read_current(tmp_path / "live") is None
    # the quick pre-check scores the candidate in Keras against the clients' model in LiteRT: the two
    # runtimes differ by a few hundredths of a dB on identical weights, below the 0.1 dB publish bar
    assert all(abs(r.gain_db) < 0.1 for r in stats.updates), [r.gain_db for r in stats.updates]


def test_cli_learns_from_a_live_segment_and_publishes(tmp_path, speech_model, segment_name):
    """``python -m nextblock.learn`` as a separate process, reading a producer's segment."""
    from nextblock.capture import Producer

    audio, _ = scenario.changing_stream([("guitar", 30)], RATE)
    frames = 128
    blocks = audio[0, : audio.shape[1] // frames * frames].reshape(-1, frames, 1)
    model_dir = tmp_path / "live"
    log = tmp_path / "updates.jsonl"
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"), TF_CPP_MIN_LOG_LEVEL="3")
    with Producer(segment_name, RATE, frames, 1, block_ring_slots=4096) as producer:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nextblock.learn",
                "--segment",
                segment_name,
                "--model",
                str(speech_model[0]),
                "--model-dir",
                str(model_dir),
                "--learning-rate",
                "1e-3",
                "--replay-seconds",
                "20",
                "--holdout-seconds",
                "3",
                "--validate-every-s",
                "6",
                "--max-cpu",
                "1",
                "--nice",
                "0",
                "--max-seconds",
                "40",
                "--update-log",
                str(log),
                "--validation-windows",
                "200",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        stop = threading.Event()
        worst_publish_s = []

        def produce():  # ~2x real time, like a busy server; never waits for the learner
            seq, period = 0, frames / RATE / 2
            next_t = time.monotonic()
            while not stop.is_set():
                t0 = time.perf_counter()
                producer.publish_block(seq, blocks[seq % blocks.shape[0]])
                worst_publish_s.append(time.perf_counter() - t0)
                seq += 1
                next_t += period
                time.sleep(max(0.0, next_t - time.monotonic()))

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        try:
            out, _ = proc.communicate(timeout=150)
        finally:
            stop.set()
            thread.join()
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, out
    assert "learn: stopped after" in out, out
    published = read_current(model_dir)
    assert published is not None, out
    verify_published(published)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(r["published"] and r["gain_db"] >= 0.1 for r in records), out
    assert max(worst_publish_s) < 0.05, "the producer was never blocked"
    assert (model_dir / "learner-state" / f"model-v{published.version}.weights.h5").is_file(), "resumable state"
