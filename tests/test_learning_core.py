"""Unit tests of the online learner's parts that need no model: replay buffer, sources, duty cycle, publishing."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest

from nextblock.learning.priority import DutyCycle
from nextblock.learning.publish import (
    CURRENT_FILE,
    PUBLISHED_FORMAT,
    Publisher,
    read_current,
    sha256_hex,
    verify_published,
)
from nextblock.learning.replay import ReplayBuffer
from nextblock.learning.stream import ArrayStream, LiveStream, SharedMemoryStream

VALIDATION = {"snr_db_candidate": 5.0, "snr_db_previous": 4.0, "gain_db": 1.0, "window_s": 3.0}


# ---------------------------------------------------------------------------- replay buffer
def ramp_buffer(capacity=1000, holdout=100, window=20, context=16):
    return ReplayBuffer(capacity, holdout, window, context, min_context_rms=0.0)


def test_replay_buffer_keeps_only_the_newest_capacity_samples():
    buf = ramp_buffer()
    for start in range(0, 2500, 300):  # chunks that wrap the ring several times
        buf.add("t", np.arange(start, start + 300, dtype=np.float32))
    assert buf.total_samples("t") == 2700
    np.testing.assert_array_equal(buf.read("t", 1700, 1000), np.arange(1700, 2700, dtype=np.float32))
    with pytest.raises(IndexError):
        buf.read("t", 1699, 10)
    assert buf.stored_samples() == 1000


def test_replay_buffer_accepts_a_chunk_longer_than_its_capacity():
    buf = ramp_buffer()
    buf.add("t", np.arange(5000, dtype=np.float32))
    np.testing.assert_array_equal(buf.read("t", 4000, 1000), np.arange(4000, 5000, dtype=np.float32))


def test_training_windows_never_touch_the_held_back_window_nor_span_breaks():
    buf = ramp_buffer()
    buf.add("t", np.arange(1000, dtype=np.float32) + 1, breaks=())
    buf.add("t", np.arange(1000, 1500, dtype=np.float32) + 1, breaks=(200,))  # break before sample 1200
    rng = np.random.default_rng(0)
    windows = buf.sample_windows(500, rng)
    assert windows.shape == (500, 20)
    assert windows.max() <= 1500 - 100, "a training window reached into the held-back window"
    assert windows.min() >= 500 + 1, "a training window reached older than the capacity"
    assert np.all(np.diff(windows, axis=1) == 1), "every window is consecutive audio (no break inside)"
    assert not np.any((windows[:, 0] < 1201) & (windows[:, -1] >= 1201)), "a window spans the break"


def test_holdout_windows_predict_only_the_newest_audio():
    buf = ramp_buffer()
    buf.add("a", np.arange(1000, dtype=np.float32) + 1)
    buf.add("b", -np.arange(1000, dtype=np.float32) - 1)
    windows = buf.holdout_windows(hop_samples=4)
    continuations = np.abs(windows[:, 16:])
    assert continuations.min() >= 900 + 1, "every predicted sample lies in the newest 100"
    assert windows.shape[0] == 2 * len(range(900, 1000 - 4 + 1, 4))
    assert buf.holdout_windows(4, max_windows=7).shape == (7, 20)


def test_silent_audio_gives_no_training_windows():
    buf = ReplayBuffer(1000, 100, 20, 16)  # default min_context_rms
    buf.add("t", np.zeros(1000, np.float32))
    assert buf.sample_windows(10, np.random.default_rng(0)).shape == (0, 20)
    assert buf.holdout_windows(4).shape == (0, 20)


def test_replay_buffer_rejects_a_capacity_that_cannot_train():
    with pytest.raises(ValueError, match="replay-seconds"):
        ReplayBuffer(120, 100, 20, 16)


# ---------------------------------------------------------------------------- sources
def test_array_stream_delivers_everything_in_order():
    audio = np.arange(2 * 1000, dtype=np.float32).reshape(2, 1000)
    stream = ArrayStream(audio, 48000, chunk_samples=300)
    assert isinstance(stream, LiveStream)
    chunks = []
    while (chunk := stream.read(0.0)) is not None:
        chunks.append(chunk.samples)
    assert [c.shape[1] for c in chunks] == [300, 300, 300, 100]
    np.testing.assert_array_equal(np.concatenate(chunks, axis=1), audio)
    assert stream.finished


def test_array_stream_paced_in_real_time_does_not_run_ahead():
    stream = ArrayStream(np.zeros(48000, np.float32), 48000, chunk_samples=48000, realtime_factor=1.0)
    first = stream.read(0.0)
    time.sleep(0.1)
    chunk = stream.read(0.0)
    got = (0 if first is None else first.samples.shape[1]) + chunk.samples.shape[1]
    assert 2400 <= got <= 48000 * 0.5, f"{got} samples available after ~0.1 s at 1x"


def block_of(seq, frames=128, channels=2):
    return np.full((frames, channels), seq % 1000, np.float32) + np.arange(channels, dtype=np.float32) / 10


def test_shared_memory_stream_reads_blocks_in_order_with_breaks_at_lost_packets(segment_name):
    from nextblock.capture import Producer

    with Producer(segment_name, 48000, 128, 2, block_ring_slots=64) as producer:
        stream = SharedMemoryStream(segment_name, start="now")
        for seq in (0, 1, 2, 5, 6):  # 3 and 4 were lost in the network
            producer.publish_block(seq, block_of(seq))
        chunk = stream.read(0.5)
        assert chunk.samples.shape == (2, 5 * 128)
        np.testing.assert_array_equal(chunk.samples[0, ::128], [0, 1, 2, 5, 6])
        np.testing.assert_allclose(chunk.samples[1, ::128], np.array([0, 1, 2, 5, 6]) + 0.1, rtol=1e-6)
        assert chunk.breaks == (0, 3 * 128), "a break before the first chunk and where 3 and 4 are missing"
        assert chunk.lost_blocks == 2
        assert stream.read(0.01) is None
        for seq in (7, 8):
            producer.publish_block(seq, block_of(seq))
        follow = stream.read(0.5)
        assert follow.breaks == () and follow.lost_blocks == 0, "a continuing chunk has no break"
        np.testing.assert_array_equal(follow.samples[0, ::128], [7, 8])
        stream.close()


def test_a_slow_learner_skips_overwritten_blocks_and_never_blocks_the_producer(segment_name):
    """The learner is a second, non-posting reader: it never takes the poster role, and a learner
    that stalls only loses blocks (reported as skipped) – the producer publishes at full speed."""
    from nextblock.capture import Consumer, Producer

    with Producer(segment_name, 48000, 128, 2, block_ring_slots=64) as producer:
        stream = SharedMemoryStream(segment_name, start="now")
        # the predictor can still claim the poster role while the learner is attached
        with Consumer(segment_name, post_replacements=True) as predictor:
            assert predictor.is_poster
        durations = []
        stalled = threading.Event()

        def produce():
            for seq in range(2000):
                t0 = time.perf_counter()
                producer.publish_block(seq, block_of(seq))
                durations.append(time.perf_counter() - t0)
            stalled.set()

        thread = threading.Thread(target=produce)
        thread.start()
        thread.join(timeout=30)
        assert stalled.is_set()
        # the learner did not read at all meanwhile (stalled in a training step)
        assert max(durations) < 0.05, f"publish_block took {max(durations) * 1e3:.1f} ms"
        chunk = stream.read(0.1)
        n_read = chunk.samples.shape[1] // 128
        assert 32 <= n_read <= 64
        assert chunk.skipped_blocks + n_read == 2000, "everything the ring overwrote is reported as skipped"
        assert chunk.breaks[0] == 0
        np.testing.assert_array_equal(chunk.samples[0, ::128], np.arange(2000 - n_read, 2000) % 1000)
        counters = producer.counters()
        assert counters["blocks_written"] == 2000
        assert counters.get("replacements_posted", 0) == 0, "the learner never posts"
        stream.close()


# ---------------------------------------------------------------------------- duty cycle
def test_duty_cycle_sleeps_in_proportion_to_work():
    slept = []
    duty = DutyCycle(0.25, sleep=slept.append)
    assert duty.pause_for(0.1) == pytest.approx(0.3)
    with duty:
        time.sleep(0.02)
    assert slept and slept[0] == pytest.approx(3 * duty.busy_s, rel=1e-6)
    with pytest.raises(ValueError):
        DutyCycle(0.0)


# ---------------------------------------------------------------------------- publishing
def test_publishing_is_versioned_checksummed_and_in_the_documented_format(tmp_path):
    publisher = Publisher(tmp_path, keep=2)
    first = publisher.publish(b"TFL3-first", VALIDATION, parent_version=None, state_files={".weights.h5": b"w1"})
    second = publisher.publish(b"TFL3-second", VALIDATION, parent_version=first.version)
    assert (first.version, second.version) == (1, 2)
    record = json.loads((tmp_path / CURRENT_FILE).read_text())
    assert set(record) == {
        "format",
        "version",
        "file",
        "sha256",
        "bytes",
        "created_unix_s",
        "validation",
        "parent_version",
    }
    assert record["format"] == PUBLISHED_FORMAT
    assert record["file"] == "model-v2.tflite" and record["parent_version"] == 1
    assert record["sha256"] == sha256_hex(b"TFL3-second") and record["bytes"] == len(b"TFL3-second")
    assert set(record["validation"]) == {"snr_db_candidate", "snr_db_previous", "gain_db", "window_s"}
    assert verify_published(read_current(tmp_path)) == b"TFL3-second"
    assert (tmp_path / "learner-state" / "model-v1.weights.h5").read_bytes() == b"w1"
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left behind"


def test_old_versions_are_pruned_but_the_current_one_is_kept(tmp_path):
    publisher = Publisher(tmp_path, keep=2)
    for i in range(5):
        publisher.publish(f"model {i}".encode(), VALIDATION, parent_version=i or None)
    assert sorted(p.name for p in tmp_path.glob("model-v*.tflite")) == ["model-v4.tflite", "model-v5.tflite"]
    # a new publisher (a restarted learner) continues the version numbers
    assert Publisher(tmp_path).publish(b"again", VALIDATION, parent_version=5).version == 6


def test_a_corrupted_published_model_is_detected(tmp_path):
    published = Publisher(tmp_path).publish(b"TFL3-model-bytes", VALIDATION, parent_version=None)
    published.path.write_bytes(b"TFL3-model-bytez")
    with pytest.raises(ValueError, match="SHA-256"):
        verify_published(read_current(tmp_path))
    (tmp_path / CURRENT_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_current(tmp_path)


def test_concurrent_publishers_never_reuse_a_version(tmp_path):
    versions = []
    lock = threading.Lock()

    def publish_some():
        publisher = Publisher(tmp_path, keep=50)
        for _ in range(5):
            v = publisher.publish(os.urandom(64), VALIDATION, parent_version=None).version
            with lock:
                versions.append(v)

    threads = [threading.Thread(target=publish_some) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions) == list(range(1, 21))
    assert read_current(tmp_path).version == 20 or read_current(tmp_path).version in versions


# ---------------------------------------------------------------------------- command line and model lookup
def _learn_cli(*args):
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "python"))
    return subprocess.run(
        [sys.executable, "-m", "nextblock.learn", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_cli_help_teaches_with_examples():
    result = _learn_cli("--help")
    assert result.returncode == 0
    assert "--jacktrip-pid" in result.stdout and "examples:" in result.stdout and "--max-cpu" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "at least one --jacktrip-pid"),
        (("--jacktrip-pid", "1", "--replay-seconds", "3", "--holdout-seconds", "5"), "--replay-seconds must exceed"),
        (("--jacktrip-pid", "1", "--max-cpu", "2"), "--max-cpu must be in"),
    ],
)
def test_cli_usage_errors_are_one_line_and_exit_2(args, message):
    result = _learn_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_cli_refuses_a_process_without_a_segment():
    result = _learn_cli("--jacktrip-pid", "99999999")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: no process with PID 99999999")
    assert len(result.stderr.strip().splitlines()) == 1


def test_keras_weights_are_found_for_published_and_shipped_models(tmp_path):
    from nextblock.learning.learner import CurrentModel
    from nextblock.learning.model_io import StartingModelError, resolve_keras_weights

    shipped = tmp_path / "nextblock-default.tflite"
    shipped.write_bytes(b"TFL3")
    with pytest.raises(StartingModelError, match="--init-weights"):
        resolve_keras_weights(CurrentModel(shipped, None), tmp_path / "live", None)
    sibling = tmp_path / "nextblock-default.weights.h5"
    sibling.write_bytes(b"w")
    assert resolve_keras_weights(CurrentModel(shipped, None), tmp_path / "live", None) == sibling
    explicit = tmp_path / "best.weights.h5"
    explicit.write_bytes(b"w")
    assert resolve_keras_weights(CurrentModel(shipped, None), tmp_path / "live", explicit) == explicit
    # a version the learner published: its own state comes first
    state = tmp_path / "live" / "learner-state"
    state.mkdir(parents=True)
    (state / "model-v3.weights.h5").write_bytes(b"w3")
    published = CurrentModel(tmp_path / "live" / "model-v3.tflite", 3)
    assert resolve_keras_weights(published, tmp_path / "live", explicit) == state / "model-v3.weights.h5"


def test_published_candidates_keep_the_starting_models_guess_weight(tmp_path):
    """A candidate is played (and scored) with the same blend of the Burg guess as the model it
    would replace: the exporter writes the starting model's guess_weight into every candidate."""
    pytest.importorskip("tensorflow", reason="the learner exports Keras models (pip install tensorflow-cpu)")
    from nextblock.features.config import FeatureConfig
    from nextblock.learning.model_io import TFLiteExporter, build_keras_model
    from nextblock.model.metadata import read_metadata

    features = FeatureConfig(lpc_order=16)
    tiny = {"width": 8, "blocks": 1}
    model = build_keras_model(features, tiny)
    TFLiteExporter(features, tiny, guess_weight=0.3)(model, tmp_path / "blend.tflite")
    TFLiteExporter(features, tiny)(model, tmp_path / "plain.tflite")
    assert read_metadata(tmp_path / "blend.tflite")["guess_weight"] == pytest.approx(0.3)
    assert read_metadata(tmp_path / "plain.tflite")["guess_weight"] == 0.0
