"""HubLoop in-process: streams of one process served together; a client that cannot be served is
refused without stopping the others; the final JSON's shape."""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np

from nextblock.capture import Producer, segment_name_for_stream
from nextblock.runtime import HubConfig, HubLoop, HubStats, RepeatPredictor
from nextblock.runtime.discovery import ProcessStreams

PERIOD_S = 128 / 48000


def test_a_client_with_another_block_size_is_refused_and_the_others_keep_being_served(caplog):
    pid = os.getpid()
    stop = threading.Event()
    stats = HubStats()
    with Producer(segment_name_for_stream(pid, 61002), 48000, 128, 2, stream_name="good", peer_address="10.0.0.1:1") as good:
        loop = HubLoop(ProcessStreams(pid), RepeatPredictor(128, 48000), HubConfig(scan_interval_s=0.05, initial_budget_us=100),
                       stats, stop=stop)
        thread = threading.Thread(target=loop.run, kwargs={"max_wall_s": 10}, daemon=True)
        block = np.full((128, 2), 0.1, np.float32)
        seq = 0
        with caplog.at_level(logging.ERROR, logger="nextblock.attach"):
            thread.start()
            deadline = time.monotonic() + 1.0
            bad = None
            try:
                while time.monotonic() < deadline:
                    good.publish_block(seq, block)
                    good.note_playout(max(0, seq - 2), 1)
                    seq += 1
                    if seq == 60:
                        bad = Producer(segment_name_for_stream(pid, 61003), 48000, 64, 2, stream_name="bad")
                    time.sleep(PERIOD_S)
                assert thread.is_alive(), "a refused client must not stop the loop"
                assert [st.identity["name"] for st in loop.streams.values()] == ["good"]
            finally:
                stop.set()
                thread.join(5)
                if bad is not None:
                    bad.close()
        assert any("not serving" in r.getMessage() and "uses 64" in r.getMessage() for r in caplog.records)
        assert sum("not serving" in r.getMessage() for r in caplog.records) == 1, "logged once"
        loop.close()
    d = stats.to_dict()
    (s,) = d["streams"]
    assert s["name"] == "good" and s["peer"] == "10.0.0.1:1" and s["local_port"] == 0 and s["blocks"] >= seq - 5
    for key in ("name", "peer", "frames_per_block", "sample_rate_hz", "channels", "underruns", "replacements_used",
                "fallbacks", "mode", "predictions", "deadline_miss_share"):
        assert key in s, key
    for key in ("blocks", "underruns", "replacements_used", "fallbacks", "cpu_share", "predictions_per_s", "batches",
                "wakes_per_s", "streams_joined", "streams_left", "modes"):
        assert key in d, key
    assert d["streams_joined"] == 1 and d["streams_left"] == 1


class ConcealedRecorder(RepeatPredictor):
    """A repeat predictor that takes ``concealed_samples`` (as the stream adapters do) and records them."""

    takes_concealed_samples = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.concealed: list[int] = []

    def predict(self, context, concealed_samples=None):
        assert concealed_samples is not None and concealed_samples.shape == (context.shape[0],)
        self.concealed.extend(int(c) for c in concealed_samples)
        return super().predict(context)


def test_the_loop_tells_the_predictor_how_much_of_each_context_it_concealed():
    """In a burst of missing blocks the contexts end with our own earlier guesses: the loop passes
    how many samples that is (0 for the first block of a burst, a block more for each after it)."""
    recorder = ConcealedRecorder(128, 48000, context_samples=1024)
    _serve_one_stream(recorder, HubConfig(scan_interval_s=0.05, initial_budget_us=100), blocks=200,
                      lost=range(120, 124), port=61004, name="burst")  # a burst of 4 lost blocks
    assert recorder.concealed, "nothing was predicted"
    assert 0 in recorder.concealed
    assert max(recorder.concealed) >= 256 and all(c % 128 == 0 for c in recorder.concealed)


class WarmCounter(RepeatPredictor):
    """The repeat stand-in, counting the loop's throw-away predictions (``keep_warm``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.warm_calls = 0

    def keep_warm(self) -> None:
        self.warm_calls += 1


def _serve_one_stream(predictor, config: HubConfig, blocks: int, lost=(), port: int = 61005,
                      name: str = "warm") -> HubStats:
    """One mono stream of ``blocks`` blocks (those in ``lost`` never arrive), played 2 blocks after
    they are published, served by a HubLoop on a thread; its totals."""
    pid = os.getpid()
    stop = threading.Event()
    stats = HubStats()
    with Producer(segment_name_for_stream(pid, port), 48000, 128, 1, stream_name=name) as producer:
        loop = HubLoop(ProcessStreams(pid), predictor, config, stats, stop=stop)
        thread = threading.Thread(target=loop.run, kwargs={"max_wall_s": 10}, daemon=True)
        block = np.full((128, 1), 0.1, np.float32)
        thread.start()
        try:
            for seq in range(blocks):
                if seq not in lost:
                    producer.publish_block(seq, block)
                producer.note_playout(max(0, seq - 2), 1)
                time.sleep(PERIOD_S)
        finally:
            stop.set()
            thread.join(5)
            loop.close()
    return stats


def test_the_loop_keeps_the_path_warm_between_losses_only_when_told_or_when_it_misses():
    """``keep_warm="on"``: a throw-away prediction about every interval while nothing else is
    predicted (every block arrives here); ``"auto"`` with every decision in time: none."""
    on = WarmCounter(128, 48000)
    stats = _serve_one_stream(on, HubConfig(scan_interval_s=0.05, initial_budget_us=100, keep_warm="on",
                                            keep_warm_interval_ms=10.0), blocks=190)
    assert on.warm_calls == stats.to_dict()["warmups"]
    assert 10 <= on.warm_calls <= 60, f"{on.warm_calls} throw-away predictions in about 0.5 s at 10 ms"
    auto = WarmCounter(128, 48000)
    stats = _serve_one_stream(auto, HubConfig(scan_interval_s=0.05, initial_budget_us=100), blocks=190)
    assert auto.warm_calls == 0 and stats.to_dict()["keep_warm_triggers"] == 0
