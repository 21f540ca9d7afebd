"""Bad input gets a clear error, never a crash or a hang: missing, foreign, stale or corrupt segments."""

from __future__ import annotations

import multiprocessing as mp
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers_shm import HEADER, poke
from nextblock import _core
from nextblock.capture import (
    Consumer,
    LayoutMismatch,
    Producer,
    SegmentInUse,
    SegmentNotFound,
    SegmentNotReady,
    SegmentPermissionError,
    StaleSegment,
    validate_header,
)


def test_no_such_pid():
    with pytest.raises(SegmentNotFound, match="no process with PID"):
        Consumer(2**22 + 12345)


def test_pid_without_segment_says_what_to_do():
    with pytest.raises(SegmentNotFound, match="patched JackTrip"):
        Consumer(os.getpid())


def test_no_such_name():
    with pytest.raises(SegmentNotFound, match="no NextBlock segment"):
        Consumer("/nextblock-does-not-exist")


@pytest.mark.parametrize(
    "field, fmt, value, message",
    [
        ("magic", "<Q", 0x1234, "not a NextBlock segment"),
        ("layout_version", "<I", 99, "layout version 99"),
        ("block_slot_bytes", "<Q", 12, "do not add up"),
        ("channels", "<I", 3, "do not add up"),
        ("frames_per_block", "<I", 0, "frames per block"),
        ("sample_format", "<I", 7, "float32"),
    ],
)
def test_corrupt_header_fields_are_named(segment_name, field, fmt, value, message):
    with Producer(segment_name, 48000, 128, 2):
        poke(segment_name, field, fmt, value)
        with pytest.raises(LayoutMismatch, match=message):
            Consumer(segment_name)


def test_truncated_segment(segment_name):
    with Producer(segment_name, 48000, 128, 2) as p:
        path = "/dev/shm" + segment_name
        size = os.path.getsize(path)
        os.truncate(path, 5000)
        with pytest.raises(LayoutMismatch, match="declares"):
            Consumer(segment_name)
        os.truncate(path, 100)
        with pytest.raises(LayoutMismatch, match="smaller than"):
            Consumer(segment_name)
        # pages beyond the end of a truncated object fault (SIGBUS): give them back before the
        # producer touches them again
        os.truncate(path, size)
        assert p.counters()["blocks_written"] == 0


def test_segment_owned_by_another_user(segment_name):
    if os.geteuid() != 0:
        pytest.skip("needs root to hand the segment to another user")
    with Producer(segment_name, 48000, 128, 2):
        os.chown("/dev/shm" + segment_name, 65534, 65534)
        with pytest.raises(SegmentPermissionError, match="owned by uid 65534"):
            Consumer(segment_name)


def _crash_with_segment(name: str) -> None:
    producer = Producer(name, 48000, 128, 1)
    os._exit(0 if producer else 1)  # no destructor: the segment stays behind, as after a crash


def _hold_segment(name: str, ready, stop) -> None:
    p = Producer(name, 48000, 128, 1)
    ready.set()
    stop.wait(20)
    p.close()


def test_stale_segment_of_a_crashed_producer_is_detected_and_replaced(segment_name):
    ctx = mp.get_context("fork")
    proc = ctx.Process(target=_crash_with_segment, args=(segment_name,))
    proc.start()
    proc.join(10)
    assert os.path.exists("/dev/shm" + segment_name)
    with pytest.raises(StaleSegment, match="no longer running"):
        Consumer(segment_name)
    with Producer(segment_name, 48000, 64, 1) as p:  # replaced safely
        with Consumer(segment_name) as c:
            assert c.frames_per_block == 64 and c.producer_pid == os.getpid()
        p.publish_block(0, np.zeros((64, 1), np.float32))


def test_live_segment_is_not_taken_over(segment_name):
    ctx = mp.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_segment, args=(segment_name, ready, stop))
    proc.start()
    try:
        assert ready.wait(10)
        with pytest.raises(SegmentInUse, match="running producer"):
            Producer(segment_name, 48000, 128, 1)
        with Consumer(segment_name) as c:
            assert c.producer_pid == proc.pid
    finally:
        stop.set()
        proc.join(10)


def _poster_then_die(name: str, ready) -> None:
    c = Consumer(name, post_replacements=True)
    ready.set()
    os._exit(0)  # dies holding the poster role
    c.close()


def test_poster_role_of_a_dead_consumer_is_taken_over(segment_name):
    ctx = mp.get_context("fork")
    with Producer(segment_name, 48000, 128, 1):
        ready = ctx.Event()
        proc = ctx.Process(target=_poster_then_die, args=(segment_name, ready))
        proc.start()
        proc.join(10)
        assert ready.is_set()
        with Consumer(segment_name, post_replacements=True) as c:
            assert c.is_poster


def _valid_image() -> bytes:
    name = f"/nextblock-img-{os.getpid()}"
    with Producer(name, 48000, 128, 2, block_ring_slots=4, event_ring_slots=4, replacement_slots=1):
        with open("/dev/shm" + name, "rb") as f:
            return f.read()


VALID = _valid_image()


def test_valid_image_validates():
    validate_header(VALID)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, _core.HEADER_BYTES - 1), st.integers(0, 255)), min_size=1, max_size=16))
def test_fuzzed_headers_are_refused_or_consistent(mutations):
    """Random byte edits never crash the validator: it raises LayoutMismatch (SegmentNotReady
    where the magic number became zero) or accepts an image whose geometry still adds up."""
    image = bytearray(VALID)
    for offset, byte in mutations:
        image[offset] = byte
    try:
        validate_header(bytes(image))
    except LayoutMismatch as err:
        assert str(err)
    except SegmentNotReady:
        assert struct.unpack_from("<Q", image, 0)[0] == 0
    else:
        # accepted: then the identity fields must describe this image
        magic, version = struct.unpack_from("<QI", image, 0)
        assert magic == _core.MAGIC and version == _core.LAYOUT_VERSION
        total = struct.unpack_from("<Q", image, HEADER["total_bytes"])[0]
        assert total <= len(image)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=8192))
def test_random_bytes_are_refused(data):
    unpublished = len(data) >= _core.HEADER_BYTES and struct.unpack_from("<Q", data, 0)[0] == 0
    with pytest.raises(SegmentNotReady if unpublished else LayoutMismatch):
        validate_header(data)


# ------------------------------------------------------------------------------------------
# a segment its producer has not published yet: magic is written last, so an attach can find
# one that is empty or whose magic is still zero


def test_zeroed_image_is_not_ready_rather_than_foreign():
    with pytest.raises(SegmentNotReady, match="not published yet"):
        validate_header(bytes(len(VALID)))


def test_empty_segment_is_not_ready(segment_name):
    path = "/dev/shm" + segment_name
    with open(path, "wb"):
        pass  # what shm_open(O_CREAT) leaves before the producer's ftruncate
    try:
        with pytest.raises(SegmentNotReady, match="still creating it"):
            Consumer(segment_name)
    finally:
        os.unlink(path)


def test_unpublished_segment_of_a_live_producer_is_not_ready(segment_name):
    with Producer(segment_name, 48000, 128, 2):
        poke(segment_name, "magic", "<Q", 0)  # as between create's memset and its publish
        with pytest.raises(SegmentNotReady, match="still creating it"):
            Consumer(segment_name)
        poke(segment_name, "magic", "<Q", _core.MAGIC)
        with Consumer(segment_name) as c:
            assert c.producer_pid == os.getpid()


def _crash_while_creating(name: str) -> None:
    producer = Producer(name, 48000, 128, 1)
    poke(name, "magic", "<Q", 0)  # killed before the publish: the PID is there, the magic is not
    os._exit(0 if producer else 1)  # no destructor: the segment stays behind


def test_segment_of_a_producer_that_died_while_creating_it_is_stale(segment_name):
    ctx = mp.get_context("fork")
    proc = ctx.Process(target=_crash_while_creating, args=(segment_name,))
    proc.start()
    proc.join(10)
    with pytest.raises(StaleSegment, match=f"PID {proc.pid}\\) died while creating it"):
        Consumer(segment_name)
    with Producer(segment_name, 48000, 128, 1):  # and the next producer replaces it
        with Consumer(segment_name) as c:
            assert c.producer_pid == os.getpid()
