"""The real-time knobs: SCHED_FIFO and the PM-QoS CPU latency request."""

from __future__ import annotations

import os

import pytest

from nextblock.capture.realtime import hold_cpu_dma_latency, open_cpu_dma_latency, set_realtime_priority


def test_priority_out_of_range_is_refused():
    with pytest.raises(ValueError, match="1..99"):
        set_realtime_priority(0)


def test_realtime_priority_applies_to_a_thread_when_permitted():
    import threading

    result = {}

    def body():
        result["ok"] = set_realtime_priority(10)
        result["policy"] = os.sched_getscheduler(0)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if not result["ok"]:
        pytest.skip("SCHED_FIFO not permitted for this user (needs root, CAP_SYS_NICE or an rtprio limit)")
    assert result["policy"] == os.SCHED_FIFO
    assert os.sched_getscheduler(0) != os.SCHED_FIFO, "only the calling thread changed"


def test_cpu_latency_request_is_held_and_released():
    if not os.access("/dev/cpu_dma_latency", os.W_OK):
        pytest.skip("/dev/cpu_dma_latency is not writable here (needs root)")
    with hold_cpu_dma_latency(0) as held:
        assert held
        fds_inside = set(os.listdir("/proc/self/fd"))
    assert len(set(os.listdir("/proc/self/fd"))) < len(fds_inside), "the request's fd is closed on exit"
    with pytest.raises(ValueError):
        open_cpu_dma_latency(-1)


def test_missing_device_degrades_to_none(tmp_path):
    assert open_cpu_dma_latency(0, path=str(tmp_path / "absent")) is None
