"""Unit tests of the shared-memory protocol through nextblock.capture."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from nextblock import _core
from nextblock.capture import Consumer, EventKind, Outcome, Producer, monotonic_ns, segment_name_for_pid


def block_of(seq: int, frames: int = 128, channels: int = 2) -> np.ndarray:
    """A block whose every sample encodes (seq, frame, channel)."""
    f = np.arange(frames, dtype=np.float32)[:, None] / 1024.0
    c = np.arange(channels, dtype=np.float32)[None, :] / 8192.0
    return (np.float32(seq % 4096) + f + c).astype(np.float32)


def test_segment_name_is_derived_from_pid():
    assert segment_name_for_pid(1234) == "/nextblock-1234"


def test_segment_is_private_and_sized_by_the_header(segment_name):
    with Producer(segment_name, 48000, 128, 2) as p:
        st = os.stat("/dev/shm" + segment_name)
        assert stat.S_IMODE(st.st_mode) == 0o600
        layout = _core.compute_layout(48000, 128, 2)
        assert st.st_size == layout["total_bytes"]
        assert p.counters()["blocks_written"] == 0
    assert not os.path.exists("/dev/shm" + segment_name), "the producer removes its segment on close"


def test_geometry_is_read_from_the_segment(segment_name):
    with Producer(segment_name, 44100, 256, 3) as p, Consumer(segment_name) as c:
        assert (c.sample_rate_hz, c.frames_per_block, c.channels) == (44100, 256, 3)
        assert c.producer_pid == os.getpid()
        assert c.geometry["layout_version"] == _core.LAYOUT_VERSION
        p.publish_block(0, np.zeros((256, 3), np.float32))
        assert c.blocks_written == 1


def test_blocks_round_trip_in_order_with_times(segment_name):
    with Producer(segment_name, 48000, 128, 2) as p, Consumer(segment_name) as c:
        for seq in range(10, 20):
            p.publish_block(seq, block_of(seq), arrival_ns=1000 + seq, gap_ns=seq * 2)
        batch = c.read_blocks(0, 100)
        assert batch.first_index == 0 and batch.skipped == 0
        assert batch.seq.tolist() == list(range(10, 20))
        assert batch.arrival_ns.tolist() == [1000 + s for s in range(10, 20)]
        assert batch.gap_ns.tolist() == [2 * s for s in range(10, 20)]
        for i, seq in enumerate(range(10, 20)):
            np.testing.assert_array_equal(batch.samples[i], block_of(seq))
        assert len(c.read_blocks(10, 5).seq) == 0, "nothing past the newest block"


def test_reader_that_falls_behind_is_told_how_much_it_missed(segment_name):
    with Producer(segment_name, 48000, 64, 1, block_ring_slots=16) as p, Consumer(segment_name) as c:
        for seq in range(100):
            p.publish_block(seq, np.full((64, 1), seq, np.float32))
        batch = c.read_blocks(0, 1000)
        assert batch.skipped == batch.first_index > 0
        assert batch.seq[-1] == 99
        assert batch.seq.tolist() == list(range(batch.first_index, 100))
        assert all(np.all(batch.samples[i] == s) for i, s in enumerate(batch.seq))


def test_latest_history_is_per_channel_newest_last_and_zero_padded(segment_name):
    with Producer(segment_name, 48000, 4, 2) as p, Consumer(segment_name) as c:
        np.testing.assert_array_equal(c.latest_history(6), np.zeros((2, 6), np.float32))
        for seq in range(3):
            block = np.stack([np.arange(4) + 10 * seq, -(np.arange(4) + 10 * seq)], axis=1).astype(np.float32)
            p.publish_block(seq, block)
        h = c.latest_history(10)
        assert h.shape == (2, 10)
        np.testing.assert_array_equal(h[0], [2, 3, 10, 11, 12, 13, 20, 21, 22, 23])
        np.testing.assert_array_equal(h[1], -h[0])
        h2 = c.latest_history(14)
        np.testing.assert_array_equal(h2[0, :2], [0, 0])


def test_events_carry_kind_outcome_and_seq(segment_name):
    with Producer(segment_name, 48000, 128, 1) as p, Consumer(segment_name) as c:
        p.post_event(EventKind.UNDERRUN, 41, Outcome.REPLACEMENT)
        p.post_event(EventKind.UNDERRUN, 42, Outcome.FALLBACK)
        p.post_event(EventKind.SKIP, 50, Outcome.NONE, detail=3)
        events, skipped = c.read_events(0)
        assert skipped == 0
        assert [(e.kind, e.outcome, e.seq, e.detail) for e in events] == [
            (EventKind.UNDERRUN, Outcome.REPLACEMENT, 41, 0),
            (EventKind.UNDERRUN, Outcome.FALLBACK, 42, 0),
            (EventKind.SKIP, Outcome.NONE, 50, 3),
        ]
        assert [e.index for e in events] == [0, 1, 2]
        later, _ = c.read_events(2)
        assert [e.seq for e in later] == [50]


def test_replacement_is_taken_only_for_its_exact_seq(segment_name):
    with Producer(segment_name, 48000, 128, 2) as p, Consumer(segment_name, post_replacements=True) as c:
        assert p.take_replacement(7) is None
        rep = np.random.default_rng(0).uniform(-1, 1, (2, 128, 2)).astype(np.float32)
        c.post_replacement(7, rep)
        assert p.take_replacement(7 + 8) is None, "same slot, other seq: refused"
        np.testing.assert_array_equal(p.take_replacement(7), rep)
        counters = p.counters()
        assert counters["replacements_posted"] == 1
        assert counters["replacements_used"] == 1
        assert counters["replacements_missed"] == 2


def test_only_one_consumer_posts(segment_name):
    from nextblock.capture import SegmentInUse

    with Producer(segment_name, 48000, 128, 1):
        with Consumer(segment_name, post_replacements=True) as poster:
            with pytest.raises(SegmentInUse, match="already posts"):
                Consumer(segment_name, post_replacements=True)
            reader = Consumer(segment_name)  # any number of readers
            with pytest.raises(ValueError, match="poster"):
                reader.post_replacement(1, np.zeros((2, 128, 1), np.float32))
            reader.close()
            assert poster.is_poster
        # the role is free again once the poster detached
        Consumer(segment_name, post_replacements=True).close()


def test_consumer_alive_follows_the_heartbeat(segment_name):
    with Producer(segment_name, 48000, 128, 1) as p:
        assert not p.consumer_alive()
        with Consumer(segment_name, post_replacements=True) as c:
            assert p.consumer_alive()
            c.heartbeat()
            assert p.consumer_alive()
        assert not p.consumer_alive()


def test_wait_returns_on_timeout_and_on_close(segment_name):
    p = Producer(segment_name, 48000, 128, 1)
    c = Consumer(segment_name)
    t0 = monotonic_ns()
    assert c.wait_for_blocks(0, 0.05) == 0
    assert 0.04e9 <= monotonic_ns() - t0 < 1e9
    p.publish_block(0, np.zeros((128, 1), np.float32))
    assert c.wait_for_blocks(0, 5.0) == 1, "returns at once when a newer block exists"
    p.close()
    t0 = monotonic_ns()
    assert c.wait_for_blocks(1, 5.0) == 1
    assert monotonic_ns() - t0 < 1e9, "a closed producer wakes and releases waiters"
    assert c.producer_closed
    c.close()


def test_wrong_shapes_are_refused_with_a_clear_message(segment_name):
    with Producer(segment_name, 48000, 128, 2) as p, Consumer(segment_name, post_replacements=True) as c:
        with pytest.raises(ValueError, match=r"shape \(128, 2\)"):
            p.publish_block(0, np.zeros((128,), np.float32))
        with pytest.raises(ValueError, match=r"shape \(2, 128, 2\)"):
            c.post_replacement(0, np.zeros((128, 2), np.float32))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sample_rate_hz=100), "sample rate"),
        (dict(frames_per_block=0), "frames per block"),
        (dict(channels=0), "channel count"),
        (dict(block_ring_slots=1000), "power of two"),
    ],
)
def test_bad_geometry_is_refused(segment_name, kwargs, message):
    from nextblock.capture import LayoutMismatch

    args = dict(sample_rate_hz=48000, frames_per_block=128, channels=2) | kwargs
    with pytest.raises(LayoutMismatch, match=message):
        Producer(segment_name, **args)


def test_streams_of_a_process_are_listed_with_their_identity():
    from nextblock.capture import list_streams, segment_name_for_pid, segment_name_for_stream, stream_segments

    pid = os.getpid()
    names = [segment_name_for_stream(pid, 61002), segment_name_for_pid(pid), segment_name_for_stream(pid, 61001)]
    producers = [
        Producer(names[0], 48000, 64, 2, stream_name="alice", peer_address="10.0.0.7", local_port=61002),
        Producer(names[1], 44100, 128, 1),
        Producer(names[2], 48000, 256, 2, stream_name="b" * 100, local_port=61001),
    ]
    try:
        assert stream_segments(pid) == [names[1], names[2], names[0]], "the pid's own first, then by port"
        streams = list_streams(pid)
        assert [s.segment for s in streams] == [names[1], names[2], names[0]]
        alice = streams[2]
        assert (alice.stream_name, alice.peer_address, alice.local_port, alice.frames_per_block) == (
            "alice",
            "10.0.0.7",
            61002,
            64,
        )
        assert streams[1].stream_name == "b" * 63, "identity text is cut to its field"
        assert streams[0].label == names[1].lstrip("/") and streams[0].sample_rate_hz == 44100
    finally:
        for p in producers:
            p.close()
    assert stream_segments(pid) == []


def test_closing_a_producer_never_removes_a_newer_segment_of_the_same_name(segment_name):
    old = Producer(segment_name, 48000, 128, 1)
    new = Producer(segment_name, 48000, 128, 1)  # same process, same name: a hub reusing a port
    old.close()
    assert os.path.exists("/dev/shm" + segment_name), "the newer segment is still there"
    with Consumer(segment_name) as c:
        new.publish_block(0, np.zeros((128, 1), np.float32))
        assert c.blocks_written == 1
    new.close()
    assert not os.path.exists("/dev/shm" + segment_name)


def test_playout_clock_is_read_as_written(segment_name):
    with Producer(segment_name, 48000, 128, 2) as p, Consumer(segment_name) as c:
        assert c.playout() is None, "no pull yet"
        p.note_playout(41, 3, now_ns=123_456_789)
        assert c.playout() == (41, 123_456_789, 3, 1, 0), "one block per pull unless told"
        p.note_playout(42, 2)
        seq, at_ns, queued, pull_blocks, pull_left = c.playout()
        assert (seq, queued, pull_blocks, pull_left) == (42, 2, 1, 0) and abs(at_ns - monotonic_ns()) < 1e9
        p.note_playout(44, 1, now_ns=5, pull_blocks=4, pull_left=2)
        assert c.playout() == (44, 5, 1, 4, 2)
        p.note_playout(45, 1, now_ns=6, pull_blocks=4, pull_left=9)  # left past the pull: its last block
        assert c.playout() == (45, 6, 1, 4, 3)
        p.note_playout(46, 1, now_ns=7, pull_blocks=0)  # 0 blocks per pull: one
        assert c.playout() == (46, 7, 1, 1, 0)
        p.note_playout(47, 1, now_ns=8, pull_blocks=1000, pull_left=999)  # more than any pull plays
        assert c.playout() == (47, 8, 1, 1, 0)
