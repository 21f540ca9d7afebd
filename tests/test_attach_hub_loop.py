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
    with Producer(
        segment_name_for_stream(pid, 61002), 48000, 128, 2, stream_name="good", peer_address="10.0.0.1:1"
    ) as good:
        loop = HubLoop(
            ProcessStreams(pid),
            RepeatPredictor(128, 48000),
            HubConfig(scan_interval_s=0.05, initial_budget_us=100),
            stats,
            stop=stop,
        )
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
    for key in (
        "name",
        "peer",
        "frames_per_block",
        "sample_rate_hz",
        "channels",
        "underruns",
        "replacements_used",
        "fallbacks",
        "mode",
        "predictions",
        "deadline_miss_share",
    ):
        assert key in s, key
    for key in (
        "blocks",
        "underruns",
        "replacements_used",
        "fallbacks",
        "cpu_share",
        "predictions_per_s",
        "batches",
        "wakes_per_s",
        "streams_joined",
        "streams_left",
        "modes",
    ):
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
    _serve_one_stream(
        recorder,
        HubConfig(scan_interval_s=0.05, initial_budget_us=100),
        blocks=200,
        lost=range(120, 124),
        port=61004,
        name="burst",
    )  # a burst of 4 lost blocks
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


def _serve_one_stream(
    predictor, config: HubConfig, blocks: int, lost=(), port: int = 61005, name: str = "warm"
) -> HubStats:
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
    stats = _serve_one_stream(
        on,
        HubConfig(scan_interval_s=0.05, initial_budget_us=100, keep_warm="on", keep_warm_interval_ms=10.0),
        blocks=190,
    )
    assert on.warm_calls == stats.to_dict()["warmups"]
    assert 10 <= on.warm_calls <= 60, f"{on.warm_calls} throw-away predictions in about 0.5 s at 10 ms"
    auto = WarmCounter(128, 48000)
    stats = _serve_one_stream(auto, HubConfig(scan_interval_s=0.05, initial_budget_us=100), blocks=190)
    assert auto.warm_calls == 0 and stats.to_dict()["keep_warm_triggers"] == 0


class RowRecorder(RepeatPredictor):
    """The repeat stand-in at one geometry, recording the rows of each call."""

    def __init__(self, frames: int, rate: int):
        super().__init__(frames, rate)
        self.calls: list[int] = []

    def predict(self, context):
        self.calls.append(context.shape[0])
        return super().predict(context)


def test_streams_of_different_block_sizes_and_rates_are_served_side_by_side_batched_per_geometry():
    """One loop serves 64-, 128- and 256-frame streams at 48 and 44.1 kHz: each geometry gets its own
    predictor (built off the loop by ``predictor_for``), the two 64-frame streams share its model
    calls, every stream's predictions are posted at its own block size."""
    pid = os.getpid()
    stop = threading.Event()
    stats = HubStats()
    built: dict[tuple[int, int], RowRecorder] = {}

    def predictor_for(frames, rate):
        time.sleep(0.05)  # building and warming takes a while: the loop must not wait for it
        built[(frames, rate)] = RowRecorder(frames, rate)
        return built[(frames, rate)]

    primary = RowRecorder(128, 48000)
    geometries = {61002: (128, 48000), 61003: (64, 48000), 61004: (64, 48000), 61005: (256, 44100)}
    producers = {
        port: Producer(segment_name_for_stream(pid, port), rate, frames, 2, stream_name=f"c{port}")
        for port, (frames, rate) in geometries.items()
    }
    try:
        loop = HubLoop(
            ProcessStreams(pid),
            primary,
            HubConfig(scan_interval_s=0.05, initial_budget_us=100, max_budget_fraction=1.0),
            stats,
            stop=stop,
            predictor_for=predictor_for,
        )
        thread = threading.Thread(target=loop.run, kwargs={"max_wall_s": 10}, daemon=True)
        thread.start()
        tick_s, ticks = 64 / 48000, 0
        seqs = dict.fromkeys(geometries, 0)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            for port, (frames, _rate) in geometries.items():
                if ticks % (frames // 64) == 0:  # (44.1 kHz at 256 frames: near enough for speculative)
                    producers[port].publish_block(seqs[port], np.full((frames, 2), 0.1, np.float32))
                    seqs[port] += 1
            ticks += 1
            time.sleep(tick_s)
        served = {st.identity["name"]: st for st in loop.streams.values()}
        assert sorted(served) == [f"c{p}" for p in geometries], "every geometry is served"
        assert served["c61003"].predictor is served["c61004"].predictor is built[(64, 48000)]
        assert served["c61002"].predictor is primary and served["c61005"].predictor is built[(256, 44100)]
        assert set(built) == {(64, 48000), (256, 44100)}, "one predictor per other geometry"
    finally:
        stop.set()
        thread.join(5)
        loop.close()
        for p in producers.values():
            p.close()
    by_name = {s["name"]: s for s in stats.to_dict()["streams"]}
    for port, (frames, rate) in geometries.items():
        s = by_name[f"c{port}"]
        assert (s["frames_per_block"], s["sample_rate_hz"]) == (frames, rate)
        assert s["posts"] > 10, s  # posted at its own block size (a wrong shape would not post)
    assert max(built[(64, 48000)].calls) == 4, "the two 64-frame streams shared a model call"
    assert max(primary.calls) == 2 and max(built[(256, 44100)].calls) == 2
