"""The missing-block wake (layout 3): the producer tells a just-in-time consumer when a block it will
need has not arrived, so that the consumer sleeps while every block arrives (issue 14)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from nextblock import _core
from nextblock.capture import Consumer, Producer, monotonic_ns
from nextblock.runtime.collector import collections_off
from nextblock.runtime.schedule import ScheduleConfig
from nextblock.runtime.served import ServedStream

FRAMES, RATE = 480, 48000  # 10 ms periods: a test thread on a busy machine still decides in time
PERIOD_NS = round(1e9 * FRAMES / RATE)


@pytest.fixture(autouse=True)
def no_collections():
    """The test's producer is a Python thread standing in for JackTrip's audio thread. A collection
    of this process's heap (TensorFlow, loaded by earlier tests) could stop it long enough for its
    clock to go stale, and the waiter would rightly wake early. JackTrip's thread has no collector:
    neither has this one while a test runs."""
    with collections_off():
        yield


def block(seq: int) -> np.ndarray:
    return np.full((FRAMES, 2), (seq % 100) / 200.0, np.float32)


def test_each_pull_checks_the_block_lookahead_ahead_once_and_reports_only_missing_ones(segment_name):
    with Producer(segment_name, RATE, FRAMES, 2) as p, Consumer(segment_name, post_replacements=True) as c:
        for seq in range(5):
            p.publish_block(seq, block(seq))
        p.note_playout(2, 2)
        assert c.counters()["missing_found"] == 0, "lookahead 0: the producer checks nothing"
        c.set_missing_lookahead(1)
        p.note_playout(3, 1)  # checks 4: here
        assert c.counters()["missing_found"] == 0
        p.note_playout(4, 0)  # checks 5: missing
        assert c.counters()["missing_found"] == 1
        p.note_playout(4, 0)  # the same pull again (a replayed block): not checked twice
        assert c.counters()["missing_found"] == 1
        c.set_missing_lookahead(3)
        p.publish_block(5, block(5))
        p.publish_block(8, block(8))
        p.note_playout(5, 0)  # checks 8: here
        p.note_playout(6, 0)  # checks 9: missing
        assert c.counters()["missing_found"] == 2
        assert c.counters()["missing_wakes_issued"] == 0, "nobody registered a sleep: no syscall"


def test_the_lookahead_is_clamped_on_both_sides(segment_name):
    with Producer(segment_name, RATE, FRAMES, 1) as p, Consumer(segment_name) as c:
        c.set_missing_lookahead(1000)
        assert c.missing_lookahead == 16
        assert p.counters()["missing_lookahead_blocks"] == 16


def _stream(p: Producer, first: int, last: int, skip: set[int], headroom: int = 2, on_pull=None) -> None:
    """Real-time pulls every period, each block published `headroom` periods before it is due."""
    t0 = monotonic_ns()
    for i, seq in enumerate(range(first, last)):
        ahead = seq + headroom
        if ahead not in skip:
            p.publish_block(ahead, block(ahead))
        p.note_playout(seq, headroom)
        if on_pull is not None:
            on_pull(seq)
        time.sleep(max(0.0, (t0 + (i + 1) * PERIOD_NS - monotonic_ns()) / 1e9))


def _served(p: Producer, segment_name: str) -> tuple[Consumer, ServedStream]:
    """A stream 2 blocks ahead of its clock, served as attach serves it."""
    for seq in range(3):
        p.publish_block(seq, block(seq))
    p.note_playout(0, 2)
    consumer = Consumer(segment_name, post_replacements=True)
    st = ServedStream(consumer, ScheduleConfig(), context_samples=1024)
    st.poll(monotonic_ns())
    return consumer, st


def _wait_item(st: ServedStream, lookahead: int, lead_ns: int) -> tuple:
    # stale_ns of 1 s: a test thread descheduled for a few ms must not look like a stopped producer
    return (st.tap, True, st.schedule.handled_seq, lead_ns, 0, PERIOD_NS, 1_000_000_000, 8, lookahead)


def test_a_waiter_sleeps_through_arriving_blocks_and_wakes_at_the_pull_that_finds_one_missing(segment_name):
    with Producer(segment_name, RATE, FRAMES, 2) as p:
        consumer, st = _served(p, segment_name)
        lost = 50
        result = {}

        def waiter():
            before = _core.wait_for_decision_wakeups()
            result["index"] = _core.wait_for_decision(
                [_wait_item(st, 1, 2 * PERIOD_NS)], monotonic_ns() + 3_000_000_000, 0
            )
            result["at_ns"] = monotonic_ns()
            result["wakeups"] = _core.wait_for_decision_wakeups() - before

        thread = threading.Thread(target=waiter)
        thread.start()
        pulls = {}
        _stream(p, 1, lost + 10, skip={lost}, on_pull=lambda seq: pulls.setdefault(seq, monotonic_ns()))
        thread.join(timeout=5)
        assert not thread.is_alive()
        # the producer checked `lost` at the pull of lost - 1 and woke the waiter then, not before
        assert result["index"] == 0
        assert pulls[lost - 1] <= result["at_ns"] < pulls[lost - 1] + 50_000_000
        # about 48 blocks arrived meanwhile; the waiter woke a handful of times (its 100 ms heartbeat
        # slices and the wake itself), not once per block
        assert result["wakeups"] <= 12, result
        counters = consumer.counters()
        assert counters["missing_found"] == 1 and counters["missing_wakes_issued"] == 1
        st.close("test over")
        assert p.counters()["missing_lookahead_blocks"] == 0, "a consumer that leaves turns the check off"


def test_the_timed_wait_wakes_before_every_block_for_comparison(segment_name):
    with Producer(segment_name, RATE, FRAMES, 2) as p:
        consumer, st = _served(p, segment_name)
        result = {}

        def waiter():
            before = _core.wait_for_decision_wakeups()
            # lookahead 0: the consumer checks the next block itself at each decision time
            item = _wait_item(st, 0, PERIOD_NS // 2)
            end = monotonic_ns() + 500_000_000
            while monotonic_ns() < end:
                if _core.wait_for_decision([item], end, 0) < 0:
                    break
                st.poll(monotonic_ns())
                s = st.schedule
                item = (
                    st.tap,
                    True,
                    max(s.handled_seq, s.newest_seq),
                    PERIOD_NS // 2,
                    0,
                    PERIOD_NS,
                    1_000_000_000,
                    8,
                    0,
                )
            result["wakeups"] = _core.wait_for_decision_wakeups() - before

        thread = threading.Thread(target=waiter)
        thread.start()
        _stream(p, 1, 60, skip=set())
        thread.join(timeout=5)
        assert result["wakeups"] >= 20, f"the timed wait wakes for about every block (~50 here): {result}"
        st.close("test over")


def test_a_clock_written_after_the_waiter_read_its_time_is_fresh_not_stale(segment_name):
    """The producer pulls every period, so its clock is often written between the waiter reading its
    own time and reading the clock. Such a reading (a little in the future for the waiter) once
    counted as stale and woke the waiter for nothing: a CI run saw it wake 280 ms early."""
    with Producer(segment_name, RATE, FRAMES, 2) as p:
        consumer, st = _served(p, segment_name)
        p.publish_block(3, block(3))
        p.note_playout(1, 2, now_ns=monotonic_ns() + 2_000_000)  # written "after" the waiter's now
        started = monotonic_ns()
        index = _core.wait_for_decision([_wait_item(st, 1, 2 * PERIOD_NS)], started + 60_000_000, 0)
        slept_ns = monotonic_ns() - started
        assert index == -1, "nothing needed a decision: the waiter sleeps until its deadline"
        assert slept_ns >= 55_000_000, slept_ns
        far = monotonic_ns() + 2_000_000_000  # a reading further ahead than stale_ns (1 s) is no clock of ours
        p.note_playout(2, 1, now_ns=far)
        assert _core.wait_for_decision([_wait_item(st, 1, 2 * PERIOD_NS)], monotonic_ns() + 60_000_000, 0) == 0
        st.close("test over")


def _gap_waiter(st: ServedStream, wake_on_gap: bool, until_ns: int, result: dict) -> threading.Thread:
    def waiter():
        item = _wait_item(st, 1, 2 * PERIOD_NS) + (wake_on_gap,)
        result["index"] = _core.wait_for_decision([item], until_ns, 0)
        result["at_ns"] = monotonic_ns()

    thread = threading.Thread(target=waiter)
    thread.start()
    return thread


@pytest.mark.parametrize("wake_on_gap", [True, False], ids=["wake-on-gap", "without"])
def test_the_block_after_a_missing_one_wakes_a_waiter_that_asks_for_gaps_at_once(segment_name, wake_on_gap):
    """On JackTrip's JitterBuffer the block after a loss arrives ~2.3 ms before the lost
    one plays, but the just-in-time waiter slept until the lost block's decision time (~1.8 ms
    before it plays: its slack less the tolerance), and the causal prediction then left no room for
    the two-sided fill (two_sided_share 0.00-0.29 live). The producer now wakes the missing word
    for a block after a missing one (publish_block), and a waiter with ``wake_on_gap`` returns then."""
    with Producer(segment_name, RATE, FRAMES, 2) as p:
        consumer, st = _served(p, segment_name)  # blocks 0..2, clock at 0
        result = {}
        until = monotonic_ns() + 400_000_000
        thread = _gap_waiter(st, wake_on_gap, until, result)
        time.sleep(0.03)
        p.publish_block(3, block(3))  # no gap: nothing wakes
        time.sleep(0.03)
        assert thread.is_alive(), "a block that follows its predecessor is no reason to wake"
        assert p.counters()["gap_wakes_issued"] == 0
        sent = monotonic_ns()
        p.publish_block(5, block(5))  # 4 is missing: its loss is known now
        thread.join(timeout=2)
        assert not thread.is_alive()
        assert p.counters()["gap_wakes_issued"] == 1, "one FUTEX_WAKE for the gap, to the registered sleeper"
        if wake_on_gap:
            assert result["index"] == 0
            assert result["at_ns"] - sent < 50_000_000, "woken by the block after the gap, not by a timer"
        else:  # the producer's check for 4 (at the pull of 3) never came: asleep until the end
            assert result["index"] == -1 and result["at_ns"] >= until
        st.close("test over")


def test_a_gap_wakes_nobody_when_no_consumer_sleeps_on_the_missing_word(segment_name):
    with Producer(segment_name, RATE, FRAMES, 2) as p, Consumer(segment_name, post_replacements=True) as c:
        p.publish_block(0, block(0))
        p.publish_block(2, block(2))  # a gap, but the missing-block wake is off
        c.set_missing_lookahead(1)
        p.publish_block(4, block(4))  # a gap, the wake on, but no sleep registered: no syscall
        assert p.counters()["gap_wakes_issued"] == 0
