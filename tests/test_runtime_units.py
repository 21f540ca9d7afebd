"""Unit tests of the live predictor's parts: context ring, guard, stats, predictors, publishing checks."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import helpers_attach  # noqa: F401  (import path fix for stale editable installs)
from nextblock.runtime import (
    ContextRing,
    IncompatibleModel,
    LatencyHistogram,
    RepeatPredictor,
    SampleGuard,
)
from nextblock.runtime.context import PREDICTED, RECEIVED, SILENCE
from nextblock.runtime.modelwatch import ModelRejected, read_current, verify_file
from nextblock.runtime.predictors import check_stream_compatible
from nextblock.runtime.stats import FALLBACK_REASONS


def block_fc(value: float, frames: int = 4, channels: int = 2) -> np.ndarray:
    """A (frames, channels) block: channel c holds value + c/10 + frame/1000."""
    f = np.arange(frames, dtype=np.float32)[:, None] / 1000
    c = np.arange(channels, dtype=np.float32)[None, :] / 10
    return (value + f + c).astype(np.float32)


def test_context_is_received_blocks_in_seq_order_newest_last():
    ring = ContextRing(channels=2, frames_per_block=4, slots=8)
    for seq in range(100, 110):
        ring.put_received(seq, block_fc(seq))
    ctx = ring.context_for(110, 12)  # blocks 107, 108, 109
    assert ctx.shape == (2, 12)
    np.testing.assert_allclose(ctx[0], np.concatenate([block_fc(s)[:, 0] for s in (107, 108, 109)]))
    np.testing.assert_allclose(ctx[1], np.concatenate([block_fc(s)[:, 1] for s in (107, 108, 109)]))
    # a context that is not a whole number of blocks keeps the newest samples
    np.testing.assert_allclose(ring.context_for(110, 6)[0], ctx[0, -6:])


def test_context_wraps_around_the_ring_without_copying():
    ring = ContextRing(channels=1, frames_per_block=2, slots=4)
    for seq in range(1, 7):
        ring.put_received(seq, np.full((2, 1), seq, np.float32))
    ctx = ring.context_for(7, 8)  # seqs 3..6 span the wrap (slots 3, 0, 1, 2)
    assert np.shares_memory(ctx, ring.samples)
    np.testing.assert_array_equal(ctx[0], [3, 3, 4, 4, 5, 5, 6, 6])


def test_gaps_are_filled_with_the_prediction_then_silence_and_received_wins():
    ring = ContextRing(channels=1, frames_per_block=2, slots=8)
    ring.put_received(10, np.full((2, 1), 1.0, np.float32))
    assert ring.put_predicted(11, np.full((1, 2), 2.0, np.float32))  # we posted for 11, it never came
    ring.put_received(13, np.full((2, 1), 4.0, np.float32))  # 12: nobody knows
    ctx = ring.context_for(14, 8)
    np.testing.assert_array_equal(ctx[0], [1, 1, 2, 2, 0, 0, 4, 4])
    assert (ring.source_of(11), ring.source_of(12), ring.source_of(13)) == (PREDICTED, SILENCE, RECEIVED)
    # the real block 11 arrives late: it replaces the guess, and a guess never replaces it
    ring.put_received(11, np.full((2, 1), 3.0, np.float32))
    assert not ring.put_predicted(11, np.full((1, 2), 9.0, np.float32))
    np.testing.assert_array_equal(ring.context_for(14, 8)[0], [1, 1, 3, 3, 0, 0, 4, 4])


def test_the_block_after_a_guess_enters_the_context_cross_faded_as_it_was_played():
    """JackTrip plays the real block after a replacement cross-faded (the recovery fade of
    shm_layout.hpp: a raised cosine over at most 32 samples at 48 kHz) from the replacement's
    second block; the context must hold that, not the raw block: the raw one starts
    with a step where the guess ends, a click the model answers with ripple (measured live: 40 %
    of the contexts at 10 % loss had such steps, ViSQOL 3.92 instead of 4.52)."""
    ring = ContextRing(channels=1, frames_per_block=4, slots=8)
    ring.put_received(10, np.full((4, 1), 1.0, np.float32))
    ring.put_predicted(11, np.full((1, 4), 2.0, np.float32), next_cf=np.full((1, 4), 6.0, np.float32))
    # before 12 arrives the contexts end with the guess
    np.testing.assert_array_equal(ring.context_for(12, 8)[0], [1, 1, 1, 1, 2, 2, 2, 2])
    ring.put_received(12, np.full((4, 1), 2.0, np.float32))
    ctx = ring.context_for(13, 12)[0]
    up = 0.5 - 0.5 * np.cos(np.pi * (np.arange(4) + 0.5) / 4)  # a 4-sample block: the fade spans it
    expected = 6.0 + up * (2.0 - 6.0)  # 6 -> 2: starts near the guess, ends near the real block
    np.testing.assert_allclose(ctx[8:], expected, rtol=1e-6)
    assert ctx[8] > 5.8 and ctx[11] < 2.2
    np.testing.assert_allclose(ring.context_for(13, 12)[0], ctx)  # applied once
    # the mirrored half holds it too (contexts that wrap read from there)
    np.testing.assert_allclose(ring.samples[0, (12 % 8) * 4 + 32 : (12 % 8) * 4 + 36], expected, rtol=1e-6)
    # a longer block fades over its first 32 samples (at 48 kHz; 64 at 96 kHz) and is real after
    ring = ContextRing(channels=1, frames_per_block=128, slots=8)
    ring.put_received(10, np.zeros((128, 1), np.float32))
    ring.put_predicted(11, np.zeros((1, 128), np.float32), next_cf=np.ones((1, 128), np.float32))
    ring.put_received(12, np.zeros((128, 1), np.float32))
    after = ring.context_for(13, 128)[0]
    assert after[0] > 0.99 and 0.0 < after[31] < 0.01 and not np.any(after[32:])
    ring = ContextRing(channels=1, frames_per_block=128, slots=8, sample_rate_hz=96000)
    ring.put_received(10, np.zeros((128, 1), np.float32))
    ring.put_predicted(11, np.zeros((1, 128), np.float32), next_cf=np.ones((1, 128), np.float32))
    ring.put_received(12, np.zeros((128, 1), np.float32))
    after = ring.context_for(13, 128)[0]
    assert after[40] > 0.1 and 0.0 < after[63] < 0.01 and not np.any(after[64:])


def test_no_cross_fade_when_the_real_block_before_came_after_all():
    ring = ContextRing(channels=1, frames_per_block=2, slots=8)
    ring.put_predicted(11, np.full((1, 2), 2.0, np.float32), next_cf=np.full((1, 2), 9.0, np.float32))
    ring.put_received(11, np.full((2, 1), 3.0, np.float32))  # late, but before it was played
    ring.put_received(12, np.full((2, 1), 4.0, np.float32))
    np.testing.assert_array_equal(ring.context_for(13, 4)[0], [3, 3, 4, 4])


def test_stale_slots_from_a_previous_lap_are_not_used_as_context():
    ring = ContextRing(channels=1, frames_per_block=1, slots=4)
    for seq in range(4):
        ring.put_received(seq, np.full((1, 1), seq + 1.0, np.float32))
    ring.put_received(7, np.full((1, 1), 8.0, np.float32))  # 4, 5, 6 lost; their slots hold 0..2
    np.testing.assert_array_equal(ring.context_for(8, 4)[0], [0, 0, 0, 8])


def test_guard_rejects_nan_and_inf_and_counts():
    guard = SampleGuard()
    ctx = np.full((2, 8), 0.5, np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        p = np.zeros((2, 2, 4), np.float32)
        p[1, 1, 2] = bad
        assert not guard.check(p, ctx)
    assert guard.rejected_nonfinite == 3 and guard.checked == 3


def test_guard_limits_each_channel_to_its_context_and_full_scale():
    guard = SampleGuard(ceiling=0.98, max_gain_over_context=2.0)
    ctx = np.zeros((2, 8), np.float32)
    ctx[0, 3] = 0.1  # channel 0 is quiet: limit 0.2
    ctx[1, 5] = -0.9  # channel 1 is loud: limit min(1.8, 0.98)
    p = np.zeros((2, 2, 4), np.float32)
    p[0] = 0.5
    p[1, 0, 0] = 3.0
    p[1, 1, 1] = -1.5
    original = p.copy()
    assert guard.check(p, ctx)
    assert guard.limited == 1
    assert np.max(np.abs(p[0])) == pytest.approx(0.2, rel=1e-6)
    assert np.max(np.abs(p[1])) == pytest.approx(0.98, rel=1e-6)
    np.testing.assert_allclose(p[1] / original[1].clip(-10, 10).max(), p[1] / 3.0)  # one gain, shape kept
    assert np.all(np.isfinite(p))


def test_guard_leaves_a_plausible_prediction_untouched():
    guard = SampleGuard()
    ctx = np.full((1, 8), 0.4, np.float32)
    p = np.full((1, 2, 4), 0.5, np.float32)
    assert guard.check(p, ctx)
    assert guard.limited == 0
    np.testing.assert_array_equal(p, 0.5)


def test_latency_histogram_percentiles():
    h = LatencyHistogram(max_us=1000, recent=16)
    for v in range(1, 101):  # 1..100 us
        h.record(float(v))
    median, p99 = h.percentiles()
    assert median == pytest.approx(50.5, abs=1)
    assert p99 == pytest.approx(99.5, abs=1)
    h.record(5000.0)  # beyond the range: counted in the last bin, max kept exactly
    assert h.max_seen_us == 5000.0
    assert h.percentiles((100.0,))[0] == pytest.approx(1000.5)
    assert max(h.recent_percentiles((100.0,))) == 5000.0


def test_repeat_predictor_shape_and_values():
    p = RepeatPredictor(4, context_samples=8, gain=0.5)
    ctx = np.arange(16, dtype=np.float32).reshape(2, 8)
    out = p.predict(ctx)
    assert out.shape == (2, 2, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0], 0.5 * ctx[:, 4:])
    np.testing.assert_array_equal(out[:, 1], out[:, 0])


@pytest.mark.parametrize(
    "frames, rate, message",
    [(256, 48000, "re-blocking is not supported"), (128, 44100, "resampling is not supported")],
)
def test_incompatible_streams_are_refused_with_the_reason(frames, rate, message):
    with pytest.raises(IncompatibleModel, match=message):
        check_stream_compatible(RepeatPredictor(128, 48000), frames, rate)
    check_stream_compatible(RepeatPredictor(128, 48000), 128, 48000)


def _announce(tmp_path, **overrides):
    data = b"model bytes"
    (tmp_path / "model-v3.tflite").write_bytes(data)
    doc = {
        "format": "nextblock-published/1",
        "version": 3,
        "file": "model-v3.tflite",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }
    doc.update(overrides)
    (tmp_path / "current.json").write_text(json.dumps(doc))
    return doc


def test_publication_is_parsed_and_the_file_verified(tmp_path):
    doc = _announce(tmp_path)
    parsed = read_current(tmp_path)
    assert parsed["version"] == 3
    verify_file(str(tmp_path / parsed["file"]), parsed["bytes"], parsed["sha256"])
    (tmp_path / "model-v3.tflite").write_bytes(b"model bytez")  # same size, other content
    with pytest.raises(ModelRejected, match="SHA-256"):
        verify_file(str(tmp_path / "model-v3.tflite"), doc["bytes"], doc["sha256"])
    (tmp_path / "model-v3.tflite").write_bytes(b"model")
    with pytest.raises(ModelRejected, match="truncated"):
        verify_file(str(tmp_path / "model-v3.tflite"), doc["bytes"], doc["sha256"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"format": "other/9"}, "not a nextblock-published/1"),
        ({"version": "3"}, "'version' must be an integer"),
        ({"file": "../evil.tflite"}, "plain file name"),
        ({"sha256": "abc"}, "64 hex digits"),
        ({"bytes": 0}, "'bytes'"),
    ],
)
def test_bad_announcements_are_refused(tmp_path, overrides, message):
    _announce(tmp_path, **overrides)
    with pytest.raises(ModelRejected, match=message):
        read_current(tmp_path)


def test_unparsable_announcement_is_refused(tmp_path):
    (tmp_path / "current.json").write_text('{"format": "nextblock-published/1", "vers')
    with pytest.raises(ModelRejected, match="not valid JSON"):
        read_current(tmp_path)


def test_a_served_stream_counts_underruns_and_the_regulators_skip_glitches_as_concealments(segment_name):
    """JackTrip's Regulator reports most lost packets as SKIP glitches: those with an outcome count
    like UNDERRUNs; events without one (a SKIP of real blocks, LATE) do not."""
    from nextblock.capture import Consumer, EventKind, Outcome, Producer, monotonic_ns
    from nextblock.runtime.schedule import ScheduleConfig
    from nextblock.runtime.served import ServedStream

    with Producer(segment_name, 48000, 128, 2) as producer:
        consumer = Consumer(segment_name, post_replacements=True)
        try:
            st = ServedStream(consumer, ScheduleConfig(), context_samples=1024)
            assert st.events_seen == 0, "a segment made moments ago: its events count from its start"
            producer.post_event(EventKind.UNDERRUN, 5, Outcome.REPLACEMENT)
            producer.post_event(EventKind.SKIP, 9, Outcome.REPLACEMENT, 1)
            producer.post_event(EventKind.SKIP, 12, Outcome.FALLBACK, 1)
            producer.post_event(EventKind.SKIP, 13, Outcome.NONE, 2)
            producer.post_event(EventKind.LATE, 9, Outcome.NONE)
            st.poll(monotonic_ns())
            assert st.events_seen == 5
        finally:
            consumer.close()
    stats = st.stats
    assert (stats.underruns, stats.replacements_used, stats.fallbacks) == (3, 2, 1)


def _served_stream_after_ten_blocks(p, c):
    """A ServedStream on consumer ``c`` that has read blocks 0-9 of producer ``p`` (128 frames of
    0.1), a prediction of 0.15 for the next two blocks and a context buffer."""
    from nextblock.capture import monotonic_ns
    from nextblock.runtime.schedule import ScheduleConfig
    from nextblock.runtime.served import ServedStream

    st = ServedStream(c, ScheduleConfig(), context_samples=1024)
    for seq in range(10):
        p.publish_block(seq, np.full((128, 1), 0.1, np.float32))
    st.poll(monotonic_ns())
    return st, np.full((1, 2, 128), 0.15, np.float32), np.zeros((1, 1024), np.float32)


def test_a_served_stream_tells_why_each_fallback_had_no_replacement(segment_name):
    """Each FALLBACK concealment is explained from the stream's own decisions: posted in time (the
    producer still fell back: a wrong deadline), predicted too late, skipped for lack of time, or
    never decided (unseen). A REPLACEMENT needs no explanation."""
    from nextblock.capture import Consumer, EventKind, Outcome, Producer, monotonic_ns
    from nextblock.runtime.schedule import Action

    with Producer(segment_name, 48000, 128, 1) as p, Consumer(segment_name, post_replacements=True) as c:
        st, prediction, context = _served_stream_after_ten_blocks(p, c)
        now = monotonic_ns()
        assert st.post(Action(10, now + 10**9, chained=False), prediction, context)
        assert st.post(Action(11, now + 10**9, chained=False), prediction, context)
        assert not st.post(Action(12, now - 1, chained=False), prediction, context)
        st.skip(Action(13, now, chained=True), now)
        p.post_event(EventKind.UNDERRUN, 10, Outcome.REPLACEMENT)
        for seq in (11, 12, 13, 14):
            p.post_event(EventKind.SKIP, seq, Outcome.FALLBACK, 1)
        # a seq decided 256 decisions ago and overwritten since counts as never decided
        st.skip(Action(15 + 256, now, chained=False), now)
        p.post_event(EventKind.UNDERRUN, 15, Outcome.FALLBACK)
        st.poll(monotonic_ns())
    stats = st.stats
    assert (stats.underruns, stats.replacements_used, stats.fallbacks) == (6, 1, 5)
    assert (stats.fallbacks_after_post, stats.fallbacks_late, stats.fallbacks_skipped, stats.fallbacks_unseen) == (
        1,
        1,
        1,
        2,
    )
    d = stats.to_dict()
    assert d["fallbacks"] == sum(d[f"fallbacks_{r}"] for r in FALLBACK_REASONS)


def test_fallbacks_that_could_not_be_replaced_have_their_own_reasons(segment_name):
    """A fallback played before the stream was served is ``before_attach``; one for a block the
    schedule left to the producer (past the longest chain) is ``outage``; a SKIP for a block that
    had arrived (JackTrip's Regulator dropped it as too old) is ``dropped_received``; a block that
    had not arrived and was never decided stays ``unseen``. They add up to the fallbacks."""
    from nextblock.capture import Consumer, EventKind, Outcome, Producer, monotonic_ns

    with Producer(segment_name, 48000, 128, 1) as p, Consumer(segment_name, post_replacements=True) as c:
        p.post_event(EventKind.UNDERRUN, 3, Outcome.FALLBACK)  # before the stream is served
        st, _, _ = _served_stream_after_ten_blocks(p, c)
        st.schedule._given_up[40 & 63] = 40  # what _next_just_in_time records for a block past the chain
        p.post_event(EventKind.UNDERRUN, 40, Outcome.FALLBACK)
        p.post_event(EventKind.SKIP, 8, Outcome.FALLBACK, 2)  # 8 had arrived: dropped
        p.post_event(EventKind.SKIP, 11, Outcome.FALLBACK, 1)  # 11 had not: unseen
        p.post_event(EventKind.UNDERRUN, 9, Outcome.FALLBACK)  # an UNDERRUN of a received block: unseen
        st.poll(monotonic_ns())
    s = st.stats
    assert (s.fallbacks_before_attach, s.fallbacks_outage, s.fallbacks_dropped_received, s.fallbacks_unseen) == (
        1,
        1,
        1,
        2,
    )
    d = s.to_dict()
    assert d["fallbacks"] == 5 == sum(d[f"fallbacks_{r}"] for r in FALLBACK_REASONS)
    assert [t["reason"] for t in st.to_dict()["fallback_trace"]] == [
        "before_attach",
        "outage",
        "dropped_received",
        "unseen",
        "unseen",
    ]


def test_a_replacement_is_also_posted_for_the_arrived_block_before_it(segment_name):
    """JackTrip's Regulator drops an old block together with the lost one after it and conceals
    the pair in one slot, reported for the old block: the lost block's replacement is posted for
    the block before it too, while that one is not played yet (and only then)."""
    from nextblock.capture import Consumer, EventKind, Outcome, Producer, monotonic_ns
    from nextblock.runtime.schedule import Action

    with Producer(segment_name, 48000, 128, 1) as p, Consumer(segment_name, post_replacements=True) as c:
        st, prediction, context = _served_stream_after_ten_blocks(p, c)
        now = monotonic_ns()
        p.note_playout(7, 2, now)  # block 7 plays now: 8 and 9 are queued
        st.poll(now)
        assert st.post(
            Action(10, st.schedule.due_ns(10) - st.schedule.post_margin_ns, chained=False), prediction, context
        )
        assert st.stats.cover_posts == 1
        for_gap, for_before = p.take_replacement(10), p.take_replacement(9)
        assert for_gap is not None and for_before is not None
        assert np.array_equal(for_gap, for_before)  # the same two blocks in both slots
        p.post_event(EventKind.SKIP, 9, Outcome.REPLACEMENT, 2)  # the Regulator played it
        st.poll(monotonic_ns())
        assert st.stats.cover_used == 1
        # the block before the gap is playing already: nothing to cover
        p.note_playout(9, 0)
        st.poll(monotonic_ns())
        assert st.post(Action(10, monotonic_ns() + 10**9, chained=False), prediction, context)
        assert st.stats.cover_posts == 1


def test_a_served_streams_ring_holds_the_models_whole_context_at_small_blocks(segment_name):
    """16-frame blocks and a 2048-sample context: 128 blocks, more than the default 64 slots."""
    from nextblock.capture import Consumer, Producer, monotonic_ns
    from nextblock.runtime.schedule import ScheduleConfig
    from nextblock.runtime.served import ServedStream

    frames, context = 16, 2048
    with Producer(segment_name, 48000, frames, 1) as p, Consumer(segment_name, post_replacements=True) as c:
        st = ServedStream(c, ScheduleConfig(), context_samples=context)
        assert st.ring.capacity_samples >= context
        ramp = np.arange(200 * frames, dtype=np.float32) / 1e4
        for seq in range(200):
            p.publish_block(seq, ramp[seq * frames : (seq + 1) * frames, None])
            if seq % 32 == 31:
                st.poll(monotonic_ns())  # the tap copies at most 64 blocks per poll
        st.poll(monotonic_ns())
        out = np.zeros((1, context), np.float32)
        st.context_into(200, out)
        np.testing.assert_array_equal(out[0], ramp[-context:])


@pytest.mark.parametrize("in_time", [True, False])
def test_the_block_after_a_guess_is_faded_in_the_context_only_if_the_guess_was_posted(segment_name, in_time):
    """Posted in time, the producer plays the guess and fades the next real block from its second
    block; too late, it plays its fallback and the next block as it came. The context follows."""
    from nextblock.capture import Consumer, Producer, monotonic_ns
    from nextblock.runtime.schedule import Action

    frames = 128
    with Producer(segment_name, 48000, frames, 1) as p, Consumer(segment_name, post_replacements=True) as c:
        st, prediction, context = _served_stream_after_ten_blocks(p, c)
        st.context_into(10, context)
        deadline = monotonic_ns() + (10**9 if in_time else -1)
        assert st.post(Action(10, deadline, chained=False), prediction, context) is in_time
        p.publish_block(11, np.full((frames, 1), 0.1, np.float32))
        st.poll(monotonic_ns())
        st.context_into(12, context)
        np.testing.assert_allclose(context[0, -2 * frames : -frames], 0.15)  # the guess for 10, either way
        after = context[0, -frames:]
        if in_time:
            assert after[0] == pytest.approx(0.15, abs=1e-3) and after[-1] == pytest.approx(0.1, abs=1e-3)
        else:
            np.testing.assert_array_equal(after, np.float32(0.1))  # as it came


def test_a_served_stream_measures_slacks_by_the_producers_pulls(segment_name):
    """A 32-frame stream of a 128-frame hub: the producer's pull plays four blocks at once, every
    2.67 ms. The C++ tap measures each block's slack against its pull (the clock's pull_blocks,
    pull_left), the schedule sees the same due times, the clock stays fresh between pulls, and a
    SKIP of a received block counts as a drop of a received block (the hedge's input)."""
    from nextblock.capture import Consumer, EventKind, Outcome, Producer, monotonic_ns
    from nextblock.runtime.schedule import ScheduleConfig
    from nextblock.runtime.served import ServedStream

    period = round(1e9 * 32 / 48000)
    with Producer(segment_name, 48000, 32, 1) as p, Consumer(segment_name, post_replacements=True) as c:
        st = ServedStream(c, ScheduleConfig(), context_samples=1024)
        t = monotonic_ns()
        for left in (3, 2, 1, 0):  # the pull at t plays blocks 0..3
            p.note_playout(3 - left, 8, now_ns=t, pull_blocks=4, pull_left=left)
        for seq in range(4, 12):  # arrived 0.1 ms apart, well before their pulls
            p.publish_block(seq, np.full((32, 1), 0.1, np.float32), arrival_ns=t + seq * 100_000)
        st.poll(t + 2 * period)
        s = st.schedule
        assert (s.clock_seq, s.clock_pull_blocks, s.clock_pull_left) == (3, 4, 0)
        assert s.clock_fresh(t + 15 * period), "stale only after four pulls"
        # blocks 4..7 play at the next pull (t + 4 periods), 8..11 at the one after (t + 8)
        want = [t + (4 if seq < 8 else 8) * period - (t + seq * 100_000) for seq in range(4, 12)]
        assert sorted(s.slacks[:8].tolist()) == sorted(want)
        assert [s.due_ns(seq) for seq in (4, 7, 8, 11, 12)] == [t + 4 * period] * 2 + [t + 8 * period] * 2 + [
            t + 12 * period
        ]
        p.post_event(EventKind.SKIP, 5, Outcome.FALLBACK, 1)  # the Regulator dropped block 5, received
        p.post_event(EventKind.UNDERRUN, 12, Outcome.FALLBACK)  # not received: not a drop
        st.poll(monotonic_ns())
        assert s.dropped_received == 1
