"""``python -m nextblock.learn --jacktrip-pid PID`` learns from every stream of a hub server."""

from __future__ import annotations

import os

import numpy as np

from nextblock.capture import Producer, segment_name_for_stream
from nextblock.learn import expand_pids
from nextblock.learning.stream import SharedMemoryStream


def test_a_hub_pid_expands_to_every_stream_and_each_is_read_on_its_own():
    pid = os.getpid()
    with (
        Producer(segment_name_for_stream(pid, 61003), 48000, 128, 2) as b,
        Producer(segment_name_for_stream(pid, 61002), 48000, 128, 2) as a,
    ):
        sources = expand_pids([pid])
        assert sources == [segment_name_for_stream(pid, 61002), segment_name_for_stream(pid, 61003)]
        streams = [SharedMemoryStream(s, start="now") for s in sources]
        try:
            a.publish_block(1, np.full((128, 2), 0.25, np.float32))
            b.publish_block(7, np.full((128, 2), -0.5, np.float32))
            chunks = [s.read(timeout_s=1.0) for s in streams]
            assert np.allclose(chunks[0].samples, 0.25) and np.allclose(chunks[1].samples, -0.5)
            assert len({s.name for s in streams}) == 2  # the replay buffer keeps them apart
        finally:
            for s in streams:
                s.close()


def test_a_pid_without_streams_stays_a_pid_for_a_clear_error():
    assert expand_pids([999_999_999]) == [999_999_999]
