"""The two-sided re-post (runtime/lookahead.py), without a producer: a context ring, a schedule with
a play-out clock, a recording post function."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

import helpers_attach as h
from nextblock.capture import monotonic_ns
from nextblock.runtime.context import ContextRing
from nextblock.runtime.lookahead import MAX_GAP_BLOCKS, Lookahead, resolve_fill
from nextblock.runtime.schedule import ScheduleConfig, StreamSchedule

FRAMES, CHANNELS, RATE = 128, 2, 48000
PERIOD_NS = round(1e9 * FRAMES / RATE)


def block(seq: int) -> np.ndarray:
    """A recognisable received block ``(frames, channels)``."""
    t = np.arange(seq * FRAMES, (seq + 1) * FRAMES) / RATE
    return np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)], axis=1).astype(np.float32)


class Stream:
    """Ring + schedule + lookahead; seq ``clock`` plays now, every block up to ``newest`` is
    received except ``missing`` (whose causal guesses are in the ring, as posted)."""

    def __init__(self, fill, clock: int, newest: int, missing: set[int]):
        self.ring = ContextRing(CHANNELS, FRAMES, 64, RATE)
        self.schedule = StreamSchedule(PERIOD_NS, ScheduleConfig(stale_clock_periods=10_000))
        self.posts: list[tuple[int, np.ndarray]] = []
        # the clock: `clock` played now, so block s is due (s - clock) periods from now
        now = monotonic_ns()
        self.schedule.on_clock(clock, now, 2)
        self.schedule.newest_seq = newest
        for s in range(clock - 40, newest + 1):
            if s in missing:
                guess = np.full((CHANNELS, FRAMES), 0.01, np.float32)
                self.ring.put_predicted(s, guess, np.full((CHANNELS, FRAMES), 0.02, np.float32))
            else:
                self.ring.put_received(s, block(s))
        self.look = Lookahead(
            self.ring, self.schedule, lambda seq, rep: self.posts.append((seq, rep.copy())), self.received, fill, RATE
        )
        self.look.guard_ns = 0  # the first (cold) fill's time: the tests that need one set it
        for s in sorted(missing):
            self.look.note_post(s)

    def after_blocks(self) -> int:
        """The clock read just now (block ``clock`` plays now), then the lookahead's pass."""
        self.schedule.clock_at_ns = monotonic_ns()
        return self.look.after_blocks(monotonic_ns())

    def received(self, seq: int) -> bool:
        return self.ring.source_of(seq) == 1


@pytest.fixture
def fill(monkeypatch):
    return h.twosided_fill(monkeypatch)


def test_a_missing_block_is_reposted_with_the_packet_after_it_as_its_second_block(fill):
    s = Stream(fill, clock=94, newest=104, missing={103})
    assert s.after_blocks() == 1
    ((seq, rep),) = s.posts
    assert seq == 103 and rep.shape == (2, FRAMES, CHANNELS)
    np.testing.assert_array_equal(rep[1], block(104))  # the splice is an identity for the producer
    assert np.isfinite(rep).all() and np.abs(rep).max() <= 1.0
    assert s.look.explain(103) == "two_sided"
    # the context holds what will be played: the fill, then block 104 as it came (no fade)
    ctx = s.ring.context_for(105, 2 * FRAMES)
    np.testing.assert_array_equal(ctx[:, :FRAMES], rep[0].T)
    np.testing.assert_array_equal(ctx[:, FRAMES:], block(104).T)
    assert s.after_blocks() == 0, "a gap is filled once"


def test_a_burst_up_to_four_blocks_is_one_gap_and_a_longer_one_stays_one_sided(fill):
    s = Stream(fill, clock=84, newest=106, missing={102, 103, 104, 105})  # 48 ms: a 4-block fill is ~10 ms
    assert s.after_blocks() == MAX_GAP_BLOCKS
    assert [seq for seq, _ in s.posts] == [102, 103, 104, 105]
    for (_, rep), (_, nxt) in pairwise(s.posts):
        np.testing.assert_array_equal(rep[1], nxt[0])  # one continuous fill across the slots
    np.testing.assert_array_equal(s.posts[-1][1][1], block(106))
    long = Stream(fill, clock=84, newest=107, missing={102, 103, 104, 105, 106})
    assert long.after_blocks() == 0 and not long.posts
    assert {long.look.explain(q) for q in range(102, 107)} == {"burst_too_long"}


def test_a_block_too_close_to_its_pull_stays_one_sided_and_the_rest_of_the_burst_is_filled(fill):
    s = Stream(fill, clock=100, newest=103, missing={101, 102})  # 101 is due one period from now
    s.look.guard_ns = PERIOD_NS  # a fill takes a period: too late for 101, in time for 102
    assert s.after_blocks() == 1
    assert [seq for seq, _ in s.posts] == [102]
    assert s.look.explain(101) == "too_late" and s.look.explain(102) == "two_sided"
    assert s.look.explain(99) == "no_later_block"  # never seen missing with a later block


def test_a_fill_that_is_not_finite_is_not_posted():
    s = Stream(
        lambda past, future, n, prior, sample_rate_hz: np.full((CHANNELS, n), np.nan, np.float32),
        clock=100,
        newest=104,
        missing={103},
    )
    assert s.after_blocks() == 0 and not s.posts
    assert s.look.fills_nonfinite == 1 and s.look.explain(103) == "too_late"


def test_the_loop_watches_for_the_next_block_only_while_a_posted_gap_can_still_be_filled(fill):
    s = Stream(fill, clock=100, newest=102, missing={103})
    s.schedule.clock_at_ns = now = monotonic_ns()  # 100 plays now
    until = s.look.watch_until_ns(now)
    assert until is not None and until <= s.schedule.due_ns(103) - s.schedule.post_margin_ns
    s.ring.put_received(104, block(104))
    s.schedule.newest_seq = 104
    s.look.after_blocks(now)
    assert s.look.watch_until_ns(now) is None, "filled: nothing left to watch"
    off = Stream(None, clock=100, newest=104, missing={103})
    assert off.look.watch_until_ns(now) is None and off.look.after_blocks(now) == 0
    assert off.look.explain(103) == "off"


def test_lookahead_modes():
    assert resolve_fill("off") is None
    with pytest.raises(ValueError):
        resolve_fill("on")


def test_a_fill_time_spike_decays_when_it_keeps_gaps_one_sided(fill):
    s = Stream(fill, clock=100, newest=103, missing={102})
    s.look.guard_ns = 50 * PERIOD_NS  # one fill took ages (a stalled machine)
    assert s.after_blocks() == 0 and s.look.explain(102) == "too_late"
    assert s.look.guard_ns < 50 * PERIOD_NS, "the guard decays when it alone refused a fill"


def test_a_gap_whose_next_block_came_before_its_decision_is_predicted_first_only_if_both_fit(fill):
    s = Stream(fill, clock=94, newest=104, missing={103})
    s.schedule.mode = "just-in-time"
    s.schedule.handled_seq = 102  # 103's decision time has not come yet
    s.schedule.clock_at_ns = now = monotonic_ns()  # 94 plays now: 103 is due in 9 periods
    assert s.look.undecided(now, predict_ns=PERIOD_NS) == 103
    assert s.look.undecided(now, predict_ns=20 * PERIOD_NS) is None, "no time for both: the fill goes alone"
    s.schedule.handled_seq = 103
    assert s.look.undecided(now) is None, "decided already"


class FullAndFast:
    """A two-sided fill with a cheaper ``fast`` variant (as TwoSidedFill has), recording which ran."""

    def __init__(self, fill):
        self.fill, self.calls = fill, []

    def __call__(self, past, future, n, prior, sample_rate_hz=48000):
        self.calls.append("full")
        return self.fill(past, future, n, prior, sample_rate_hz=sample_rate_hz)

    def fast(self, past, future, n, prior, sample_rate_hz=48000):
        self.calls.append("fast")
        return self.fill(past, future, n, prior, sample_rate_hz=sample_rate_hz)


def test_the_fast_fill_runs_where_only_it_would_be_done_in_time(fill):
    both = FullAndFast(fill)
    s = Stream(both, clock=100, newest=103, missing={102})  # 102 is due two periods from now
    both.calls.clear()  # the guards' first measurements
    s.look.guard_ns, s.look.fast_guard_ns = 5 * PERIOD_NS, PERIOD_NS // 4
    assert s.after_blocks() == 1 and both.calls == ["fast"]
    assert s.look.explain(102) == "two_sided" and s.look.to_dict()["two_sided_fills_fast"] == 1
    roomy = Stream(both, clock=90, newest=103, missing={102})  # 12 periods: the full fill fits
    both.calls.clear()
    roomy.look.guard_ns, roomy.look.fast_guard_ns = PERIOD_NS, PERIOD_NS // 4
    assert roomy.after_blocks() == 1 and both.calls == ["full"]
    late = Stream(both, clock=100, newest=103, missing={102})
    both.calls.clear()
    late.look.guard_ns = late.look.fast_guard_ns = 5 * PERIOD_NS
    assert late.after_blocks() == 0 and both.calls == [] and late.look.explain(102) == "too_late"


def test_the_shipped_fill_has_a_fast_variant_that_fills_the_same_gap():
    from nextblock.features.twosided import fill_gap
    from nextblock.model.two_sided import TwoSidedFill

    x = np.concatenate([block(s).T for s in range(20)], axis=1)
    past, future = x[:, :1024], x[:, 1152:1408]
    full = TwoSidedFill(None)
    quick = full.fast(past, future, FRAMES, x[:, 1024:1152] + 0.01)
    assert quick.shape == (CHANNELS, FRAMES) and full.fast_fills == 1
    truth = x[:, 1024:1152]
    assert np.sum((quick - truth) ** 2) < 0.01 * np.sum(truth**2)  # two tones: interpolated
    np.testing.assert_array_equal(
        quick,
        fill_gap(
            past, future, FRAMES, x[:, 1024:1152] + 0.01, order=128, prior_weight=0.3, prior_fade=0.0, levinson=True
        )[0],
    )
