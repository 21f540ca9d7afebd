"""Python's garbage collector and the live loop: its pauses are measured, and once streams are
served everything alive is exempted from later collections (nextblock.runtime.collector)."""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref

import numpy as np
import pytest

from nextblock.capture import Producer, segment_name_for_stream
from nextblock.runtime import HubConfig, HubLoop, HubStats, RepeatPredictor
from nextblock.runtime.collector import CollectorPauses, freeze_survivors
from nextblock.runtime.discovery import ProcessStreams

PERIOD_S = 128 / 48000


@pytest.fixture(autouse=True)
def unfrozen():
    """Every test starts and ends with nothing frozen (a frozen test process stays frozen)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_pauses_are_counted_by_generation_while_installed():
    pauses = CollectorPauses()
    with pauses:
        gc.collect(0)
        gc.collect(2)
    gc.collect(1)  # removed: not counted
    assert pauses.collections == [1, 0, 1]
    assert pauses.max_pause_us[0] > 0 and pauses.max_pause_us[2] > 0 and pauses.max_pause_us[1] == 0
    assert pauses.total_pause_us >= pauses.max_pause_us[2]
    assert pauses.to_dict()["gc_collections"] == [1, 0, 1]
    assert len(pauses.full_at_s) == 1 and 0 <= pauses.full_at_s[0] < 60
    assert pauses._callback not in gc.callbacks


def test_a_frozen_object_is_left_alone_by_a_full_collection():
    class Cycle:
        pass

    a = Cycle()
    a.self = a  # a reference cycle: only the cyclic collector can free it
    alive = weakref.ref(a)
    freeze_survivors()
    assert gc.get_freeze_count() > 0
    del a
    gc.collect()
    assert alive() is not None, "a frozen object is not walked by a full collection"
    gc.unfreeze()
    gc.collect()
    assert alive() is None, "thawed, the collector frees the cycle"


def _serve_briefly(freeze_gc: bool) -> tuple[HubStats, int]:
    pid = os.getpid()
    stop = threading.Event()
    stats = HubStats()
    with Producer(segment_name_for_stream(pid, 61012), 48000, 128, 2, stream_name="one") as producer:
        loop = HubLoop(
            ProcessStreams(pid),
            RepeatPredictor(128, 48000),
            HubConfig(scan_interval_s=0.05, initial_budget_us=100, freeze_gc=freeze_gc),
            stats,
            stop=stop,
        )
        thread = threading.Thread(target=loop.run, kwargs={"max_wall_s": 10}, daemon=True)
        thread.start()
        block = np.full((128, 2), 0.1, np.float32)
        try:
            for seq in range(120):
                producer.publish_block(seq, block)
                producer.note_playout(max(0, seq - 2), 1)
                time.sleep(PERIOD_S)
            frozen = gc.get_freeze_count()
            assert loop.streams, "the stream was served"
        finally:
            stop.set()
            thread.join(5)
            loop.close()
    return stats, frozen


def test_the_loop_freezes_what_is_alive_once_it_serves_a_stream_and_thaws_it_when_it_returns():
    stats, frozen = _serve_briefly(freeze_gc=True)
    assert frozen > 1000, f"only {frozen} objects frozen"
    assert gc.get_freeze_count() == 0, "a process that goes on collects as usual again"
    d = stats.to_dict()
    assert len(d["gc_collections"]) == 3 and len(d["gc_max_pause_us"]) == 3


def test_without_freezing_nothing_is_frozen():
    _, frozen = _serve_briefly(freeze_gc=False)
    assert frozen == 0
