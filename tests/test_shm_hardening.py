"""The producer (JackTrip's side of the segment) survives whatever a consumer writes.

Each test reproduces one way a broken or hostile consumer, a dead poster or a restarted peer
could hurt the producer, and checks that it plays on: geometry is never re-read from the
segment, replacements are validated before they are played, the seqlock and the wake-up
registration survive processes killed at the worst moment, and sequence numbers keep moving
forward when the peer restarts. The property-based test writes arbitrary bytes over a live
segment. (The same C++ code runs in the patched JackTrip; tests/test_jacktrip_hostile.py
attacks a running one.)
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers_shm import HEADER, read_at, write_at
from nextblock import _core
from nextblock.capture import Consumer, EventKind, LayoutMismatch, Outcome, Producer, SegmentInUse

CONTROL = _core.control_field_offsets()
FRAMES, CHANNELS = 128, 2


def layout(**kw) -> dict:
    args = dict(sample_rate_hz=48000, frames_per_block=FRAMES, channels=CHANNELS) | kw
    return _core.compute_layout(**args)


def block(value: float) -> np.ndarray:
    return np.full((FRAMES, CHANNELS), value, np.float32)


def replacement(value: float) -> np.ndarray:
    return np.full((2, FRAMES, CHANNELS), value, np.float32)


# ------------------------------------------------------------------------------------------
# geometry is the producer's own


@pytest.mark.parametrize(
    "field, fmt, value",
    [
        ("replacement_slots", "<I", 0),  # was: division by zero (SIGFPE) in take_replacement
        ("block_ring_offset", "<Q", 2**60),  # was: publish_block wrote out of bounds (SIGSEGV)
        ("frames_per_block", "<I", 8192),  # was: a replacement copy overflowed the bridge's buffer
        ("channels", "<I", 64),
        ("block_ring_slots", "<I", 0),
        ("event_ring_offset", "<Q", 2**63 - 1),
        ("replacement_offset", "<Q", 12345),
    ],
)
def test_producer_ignores_corrupted_geometry(segment_name, field, fmt, value):
    with Producer(segment_name, 48000, FRAMES, CHANNELS) as p:
        reader = Consumer(segment_name, post_replacements=True)  # attached before the corruption
        write_at(segment_name, HEADER[field], fmt, value)
        for seq in range(20):
            p.publish_block(seq, block(seq / 64))
            p.post_event(EventKind.UNDERRUN, seq, Outcome.FALLBACK)
        reader.post_replacement(20, replacement(0.5))
        status, got = p.take(20)
        assert status == "taken" and got.shape == (2, FRAMES, CHANNELS) and np.all(got == 0.5)
        assert p.take(21)[0] == "missing"
        # the reader keeps the geometry it validated; new attachers are refused
        batch = reader.read_blocks(0, 100)
        assert list(batch.seq) == list(range(20)) and batch.samples.shape == (20, FRAMES, CHANNELS)
        assert np.allclose(batch.samples[:, 0, 0], np.arange(20) / 64)
        with pytest.raises(LayoutMismatch):
            Consumer(segment_name)
        reader.close()


def test_consumer_maps_the_producer_region_read_only(segment_name):
    lay = layout()
    with Producer(segment_name, 48000, FRAMES, CHANNELS), Consumer(segment_name) as c:
        assert c.blocks_written == 0
        maps = [line.split() for line in open("/proc/self/maps") if line.rstrip().endswith("/dev/shm" + segment_name)]
        spans = sorted((int(r.split("-")[0], 16), int(r.split("-")[1], 16), perms) for r, perms, *_ in maps)
        ro = [(a, b) for a, b, perms in spans if perms.startswith("r--")]
        rw = [(a, b) for a, b, perms in spans if perms.startswith("rw")]
        # the producer's mapping is rw for its whole size; the consumer's starts read-only
        assert any(b - a == lay["control_offset"] for a, b in ro), spans
        assert any(b - a == lay["total_bytes"] - lay["control_offset"] for a, b in rw), spans


# ------------------------------------------------------------------------------------------
# replacements are validated before they are played


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf, 1e9, -1.0001, 2.0])
def test_poisoned_replacement_is_refused_and_counted(segment_name, poison):
    with Producer(segment_name, 48000, FRAMES, CHANNELS) as p, Consumer(segment_name, post_replacements=True) as c:
        rep = replacement(0.25)
        rep[1, 77, 1] = poison
        c.post_replacement(5, rep)
        assert p.take(5) == ("refused", None)
        assert p.counters()["replacements_refused"] == 1 and p.counters()["replacements_used"] == 0
        c.post_replacement(5, replacement(-1.0))  # full scale is allowed
        status, got = p.take(5)
        assert status == "taken" and np.all(got == -1.0)


def test_denormals_are_flushed_to_zero(segment_name):
    with Producer(segment_name, 48000, FRAMES, CHANNELS) as p, Consumer(segment_name, post_replacements=True) as c:
        rep = replacement(1e-40)
        rep[0, 0, 0] = 0.5
        c.post_replacement(3, rep)
        status, got = p.take(3)
        assert status == "taken" and got[0, 0, 0] == 0.5
        assert np.count_nonzero(got) == 1


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True), min_size=1, max_size=64)
)
def test_sanitize_accepts_exactly_the_playable_samples(values):
    x = np.array(values, np.float32)
    ok, out = _core.sanitize_playable(x)
    assert ok == bool(np.all(np.isfinite(x)) and np.all(np.abs(x) <= 1.0))
    if ok:
        tiny = np.abs(x) < np.finfo(np.float32).tiny
        assert np.all(out[tiny] == 0) and np.array_equal(out[~tiny], x[~tiny])


# ------------------------------------------------------------------------------------------
# the seqlock survives a poster that died mid-post


def test_complete_replacement_after_a_poster_died_mid_post(segment_name):
    lay = layout()
    with Producer(segment_name, 48000, FRAMES, CHANNELS) as p, Consumer(segment_name, post_replacements=True) as c:
        slot = lay["replacement_offset"] + (9 % 8) * lay["replacement_slot_bytes"]
        c.post_replacement(9, replacement(0.1))
        assert read_at(segment_name, slot, "<Q") % 2 == 0, "a complete slot has an even version"
        # a poster killed between its first store and its last leaves the version odd and the
        # samples half written: that slot is refused ...
        write_at(segment_name, slot, "<Q", read_at(segment_name, slot, "<Q") + 1)
        write_at(segment_name, slot + 32, "<f", 0.9)
        assert p.take(9) == ("torn", None)
        # ... and the next complete post is taken (the version is odd while writing, even after)
        c.post_replacement(9, replacement(0.2))
        assert read_at(segment_name, slot, "<Q") % 2 == 0
        status, got = p.take(9)
        assert status == "taken" and np.all(got == np.float32(0.2))


def _post_forever(name, ready):
    c = Consumer(name, post_replacements=True)
    ready.set()
    seq = 0
    while True:
        c.post_replacement(seq % 64, replacement(0.3))
        seq += 1


def test_poster_killed_while_posting_leaves_no_half_replacement_playable(segment_name):
    ctx = mp.get_context("fork")
    with Producer(segment_name, 48000, FRAMES, CHANNELS) as p:
        ready = ctx.Event()
        poster = ctx.Process(target=_post_forever, args=(segment_name, ready), daemon=True)
        poster.start()
        assert ready.wait(10)
        time.sleep(0.05)
        os.kill(poster.pid, signal.SIGKILL)
        poster.join(5)
        for seq in range(64):  # whatever state each slot was left in: taken whole or refused
            status, got = p.take(seq)
            assert status in ("taken", "torn", "missing")
            if status == "taken":
                assert np.all(got == np.float32(0.3))
        with Consumer(segment_name, post_replacements=True) as c:  # the dead poster's role is free
            for seq in range(64):
                c.post_replacement(seq, replacement(-0.4))
                status, got = p.take(seq)
                assert status == "taken" and np.all(got == np.float32(-0.4))


# ------------------------------------------------------------------------------------------
# a re-posted slot (two-sided replacements: the causal one first, the fill over it later)


def test_a_reposted_slot_plays_its_newest_complete_version_and_refuses_a_poisoned_one(segment_name):
    lay = layout()
    slot = lay["replacement_offset"] + (13 % 8) * lay["replacement_slot_bytes"]
    with Producer(segment_name, 48000, FRAMES, CHANNELS) as p, Consumer(segment_name, post_replacements=True) as c:
        c.post_replacement(13, replacement(0.1))  # the causal one
        v1 = read_at(segment_name, slot, "<Q")
        two_sided = replacement(0.2)
        two_sided[1] = block(0.3)  # its second block: the packet that arrived
        c.post_replacement(13, two_sided)  # the same seq again
        assert read_at(segment_name, slot, "<Q") == v1 + 2, "each post is a new (even) version"
        status, got = p.take(13)
        assert status == "taken" and np.array_equal(got, two_sided)
        # a re-post with garbage is refused like a first post: the older, valid version is gone
        for poison in (np.nan, np.inf, 1.5):
            c.post_replacement(13, replacement(0.1))
            bad = two_sided.copy()
            bad[1, 5, 1] = poison
            c.post_replacement(13, bad)
            assert p.take(13) == ("refused", None)
        # a re-post left mid-write (odd version, samples half written) over a valid one: torn
        c.post_replacement(13, replacement(0.1))
        write_at(segment_name, slot, "<Q", read_at(segment_name, slot, "<Q") + 1)
        write_at(segment_name, slot + 32, "<f", 0.9)
        assert p.take(13) == ("torn", None)
        # a re-post for another seq of the same slot replaces nothing of this one
        c.post_replacement(13, replacement(0.1))
        c.post_replacement(21, replacement(0.4))
        assert p.take(13) == ("missing", None) and p.take(21)[0] == "taken"
        counters = p.counters()
        assert counters["replacements_refused"] == 3 and counters["replacements_torn"] == 1


def _repost_forever(name, ready):
    c = Consumer(name, post_replacements=True)
    ready.set()
    first, second = replacement(0.1), replacement(0.2)
    second[1] = np.linspace(-0.5, 0.5, FRAMES * CHANNELS, dtype=np.float32).reshape(FRAMES, CHANNELS)
    while True:
        c.post_replacement(7, first)
        c.post_replacement(7, second)


def test_takes_racing_reposts_of_one_seq_get_one_whole_version_or_torn(segment_name):
    ctx = mp.get_context("fork")
    first, second = replacement(0.1), replacement(0.2)
    second[1] = np.linspace(-0.5, 0.5, FRAMES * CHANNELS, dtype=np.float32).reshape(FRAMES, CHANNELS)
    with Producer(segment_name, 48000, FRAMES, CHANNELS) as p:
        ready = ctx.Event()
        poster = ctx.Process(target=_repost_forever, args=(segment_name, ready), daemon=True)
        poster.start()
        try:
            assert ready.wait(10)
            seen = {"first": 0, "second": 0, "torn": 0}
            start = time.monotonic()
            # 0.3 s of takes, longer (up to 5 s) until both versions were seen on a busy machine
            while time.monotonic() - start < 0.3 or (
                time.monotonic() - start < 5 and not (seen["first"] and seen["second"])
            ):
                status, got = p.take(7)
                if status == "missing":  # nothing posted yet
                    assert not (seen["first"] or seen["second"]), "a posted seq went missing"
                    continue
                if status == "torn":
                    seen["torn"] += 1
                    continue
                assert status == "taken", status
                if np.array_equal(got, first):
                    seen["first"] += 1
                else:
                    assert np.array_equal(got, second), "a take mixed two versions of the slot"
                    seen["second"] += 1
            assert seen["first"] and seen["second"], seen
        finally:
            os.kill(poster.pid, signal.SIGKILL)
            poster.join(5)


# ------------------------------------------------------------------------------------------
# the poster role and PID reuse


def test_poster_token_of_a_reused_pid_does_not_block_a_new_poster(segment_name):
    lay = layout()
    token_at = lay["control_offset"] + CONTROL["poster_token"]
    with Producer(segment_name, 48000, FRAMES, CHANNELS):
        # a live PID (our parent) with another start time: the poster that had this PID is gone
        live = _core.process_token(os.getppid())
        write_at(segment_name, token_at, "<Q", live ^ (0xABCD << 32))
        with Consumer(segment_name, post_replacements=True) as c:
            assert c.is_poster
            assert read_at(segment_name, token_at, "<Q") == _core.process_token(os.getpid())
        # the real token of a live process holds the role
        write_at(segment_name, token_at, "<Q", live)
        with pytest.raises(SegmentInUse, match=f"PID {os.getppid()}"):
            Consumer(segment_name, post_replacements=True)


# ------------------------------------------------------------------------------------------
# a reader killed while it sleeps does not cost the producer wake-ups forever


def _sleep_in_wait(name, ready):
    c = Consumer(name)
    ready.set()
    c.wait_for_blocks(10**9, 60.0)


def test_reader_killed_in_futex_wait_stops_costing_wakes(segment_name):
    ctx = mp.get_context("fork")
    with Producer(segment_name, 48000, FRAMES, CHANNELS) as p:
        ready = ctx.Event()
        reader = ctx.Process(target=_sleep_in_wait, args=(segment_name, ready), daemon=True)
        reader.start()
        assert ready.wait(10)
        time.sleep(0.05)
        p.publish_block(0, block(0.0))  # the sleeping reader is registered: woken
        assert p.counters()["wakes_issued"] == 1
        os.kill(reader.pid, signal.SIGKILL)
        reader.join(5)
        # the dead reader's last registration runs out after at most one sleep slice
        time.sleep((_core.MAX_WAKE_REGISTRATION_NS + 20_000_000) / 1e9)
        before = p.counters()["wakes_issued"]
        for seq in range(1, 200):
            p.publish_block(seq, block(0.0))
            p.post_event(EventKind.UNDERRUN, seq, Outcome.FALLBACK)
        assert p.counters()["wakes_issued"] == before, "no FUTEX_WAKE without a live registration"


def test_far_future_registration_is_ignored(segment_name):
    lay = layout()
    with Producer(segment_name, 48000, FRAMES, CHANNELS) as p:
        write_at(segment_name, lay["control_offset"] + CONTROL["wake_until_ns"], "<Q", 2**64 - 1)
        for seq in range(50):
            p.publish_block(seq, block(0.0))
        assert p.counters()["wakes_issued"] == 0
        with Consumer(segment_name) as c:  # a reader replaces the implausible registration
            t0 = time.monotonic()
            assert c.wait_for_blocks(50, 0.05) == 50
            assert time.monotonic() - t0 < 1.0


# ------------------------------------------------------------------------------------------
# a peer that restarts its sequence numbers


def test_sequence_unwrap_moves_on_after_a_peer_restart():
    u = _core.SeqUnwrapper()
    out = [u.next(s) for s in range(30000, 30100)]
    assert out == list(range(30000, 30100))
    assert u.next(30090) == 30090, "a packet a few blocks late keeps its own number"
    restarted = [u.next(s) for s in range(0, 50)]  # the peer restarts at 0
    assert u.restarts == 1
    assert restarted[0] > 30099, "a restart never repeats earlier numbers"
    assert np.all(np.diff(restarted) == 1)
    assert all(q % 65536 == s for q, s in zip(restarted, range(50), strict=True)), (
        "still congruent to the packet's number"
    )
    # 16-bit wrap-around is not a restart
    u2 = _core.SeqUnwrapper()
    wrapped = [u2.next(s % 65536) for s in range(65500, 65600)]
    assert wrapped == list(range(65500, 65600)) and u2.restarts == 0


# ------------------------------------------------------------------------------------------
# arbitrary bytes anywhere in the segment


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    writes=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=64)), min_size=1, max_size=40
    ),
    posted=st.lists(st.floats(width=32), min_size=1, max_size=4),
)
def test_producer_plays_only_valid_audio_whatever_is_in_the_segment(segment_name, writes, posted):
    lay = layout(block_ring_slots=16, event_ring_slots=16, replacement_slots=4)
    with Producer(segment_name, 48000, FRAMES, CHANNELS, 16, 16, 4) as p:
        c = Consumer(segment_name, post_replacements=True)
        rep = np.resize(np.array(posted, np.float32), (2, FRAMES, CHANNELS))
        for seq in range(8):
            c.post_replacement(seq, rep)
        with open("/dev/shm" + segment_name, "r+b") as f:
            for where, data in writes:
                f.seek(int(where * lay["total_bytes"]))
                f.write(data[: lay["total_bytes"] - f.tell()])
        for seq in range(8):
            p.publish_block(seq, block(0.5))
            p.post_event(EventKind.UNDERRUN, seq, Outcome.FALLBACK)
            status, got = p.take(seq)
            assert status in ("taken", "missing", "torn", "refused")
            if status == "taken":
                assert np.all(np.isfinite(got)) and np.all(np.abs(got) <= 1.0)
        c.read_blocks(0, 8)
        c.read_events(0, 8)
        c.close()


def test_other_layout_versions_get_a_clear_error_not_a_crash(segment_name):
    with Producer(segment_name, 48000, FRAMES, CHANNELS) as p:
        ours = _core.LAYOUT_VERSION
        for version in (ours - 1, ours + 1):  # an older patched JackTrip, or a newer one
            write_at(segment_name, HEADER["layout_version"], "<I", version)
            with pytest.raises(LayoutMismatch, match=f"layout version {version}, this NextBlock speaks version {ours}"):
                Consumer(segment_name)
        p.publish_block(0, block(0.1))  # the producer itself never looks
