"""The deadline logic of one stream (nextblock.runtime.schedule), driven by a simulated clock.

A simulated producer: block ``k`` arrives at ``k * P + jitter`` and is played at ``(k + H) * P``,
where ``H`` is the headroom in blocks; the schedule sees the arrivals and the play-out clock and
is asked at every step what to predict.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextblock.runtime.schedule import (
    JUST_IN_TIME,
    MAX_LOOKAHEAD_BLOCKS,
    SPECULATIVE,
    ScheduleConfig,
    StreamSchedule,
    slack_low,
)

P = 2_666_667  # ns, 128 frames at 48 kHz
BUDGET = 500_000  # ns an inference is assumed to take


class Sim:
    """Feeds a StreamSchedule like the live loop does and records the actions it asks for."""

    def __init__(
        self,
        headroom: int,
        lost=(),
        late_ns=None,
        config: ScheduleConfig | None = None,
        clock=True,
        arrival_offset_ns: int = 100_000,
        pull_blocks: int = 1,
        tell_pull: bool = True,
        period_ns: int = P,
        odd_pull_late_ns: int = 0,
    ):
        self.P = period_ns
        self.s = StreamSchedule(period_ns, config or ScheduleConfig(min_samples=32, reevaluate_blocks=16))
        # the producer's pull plays `pull_blocks` blocks back to back every `pull_blocks` periods
        # (a 128-frame hub and a 32-frame client: four); `tell_pull` False: its clock does not say so
        self.r = pull_blocks
        self.tell_pull = tell_pull
        self.odd_pull_late_ns = odd_pull_late_ns  # every other pull this much late (the callback's jitter)
        self.h = headroom
        self.lost = set(lost)
        self.late_ns = late_ns or {}
        self.clock = clock
        self.offset = arrival_offset_ns
        self.received: set[int] = set()
        self.actions = []  # (time, action)
        self.now = 0

    def arrival(self, k: int) -> int:
        return k * self.P - self.offset + self.late_ns.get(k, 0)

    def played_at(self, k: int) -> int:
        """The pull that plays block ``k``: every ``r`` periods, ``r`` blocks at once."""
        pull = (k + self.h) // self.r
        return pull * self.r * self.P + (pull % 2) * self.odd_pull_late_ns

    def run(self, until_block: int, step_ns: int = 50_000) -> None:
        events = []
        for k in range(until_block + self.h + 2):
            if k not in self.lost:
                events.append((self.arrival(k), 0, k))
            events.append((self.played_at(k), 1, k))
        events.sort()
        i = 0
        t_end = (until_block + self.h) * self.P
        while self.now <= t_end:
            while i < len(events) and events[i][0] <= self.now:
                t, kind, k = events[i]
                if kind == 0:
                    self.received.add(k)
                    self.s.on_block(k, t, self.now)
                elif self.clock:
                    queued = sum(1 for j in self.received if j > k)
                    if self.tell_pull:
                        self.s.on_clock(k, t, queued, self.r, self.r - 1 - (k + self.h) % self.r)
                    else:
                        self.s.on_clock(k, t, queued)
                i += 1
            self.s.update_mode(self.now, BUDGET)
            while True:
                action = self.s.next_action(self.now, self.received.__contains__, BUDGET)
                if action is None:
                    break
                self.actions.append((self.now, action))
                self.s.done(action.seq)
            self.now += step_ns

    def predicted(self, after_block: int = 0) -> list[int]:
        return [a.seq for _, a in self.actions if a.seq >= after_block]


def test_headroom_and_a_clock_choose_just_in_time_and_nothing_is_predicted_without_losses():
    sim = Sim(headroom=2)
    sim.run(200)
    assert sim.s.mode == JUST_IN_TIME
    assert sim.s.slack_low_ns is not None and sim.s.slack_low_ns > 2 * P - 200_000
    # after the first evaluation nothing at all is predicted: every block arrives
    assert sim.predicted(after_block=60) == []


@pytest.mark.parametrize("headroom,clock", [(0, True), (2, False)])
def test_no_headroom_or_no_clock_means_speculative_prediction_after_every_block(headroom, clock):
    sim = Sim(headroom=headroom, clock=clock)
    sim.run(120)
    assert sim.s.mode == SPECULATIVE
    # one prediction per received block, for the next seq
    later = [a for _, a in sim.actions if a.seq > 60]
    assert len(later) >= 55 and all(not a.chained for a in later)


@pytest.mark.parametrize(
    "queued, budget_ns, mode",
    [(0, BUDGET, SPECULATIVE), (1, BUDGET, JUST_IN_TIME), (1, 5 * BUDGET, SPECULATIVE), (2, 5 * BUDGET, JUST_IN_TIME)],
)
def test_before_the_slacks_are_measured_the_producers_queue_decides(queued, budget_ns, mode):
    """Until ``min_samples`` slacks are in, the queue depth stands in for them: just in time only
    where ``queued`` periods, less the tolerance, leave room for the budget and the post margin
    (with nothing queued a loss among the first blocks would otherwise be decided too late)."""
    s = StreamSchedule(P, ScheduleConfig(min_samples=32, reevaluate_blocks=16))
    s.on_block(0, 0, 0)
    s.on_clock(0, 0, queued)
    assert s.update_mode(0, budget_ns) == mode


P32 = 666_667  # ns, 32 frames at 48 kHz: a client of a 128-frame hub (four blocks per pull)


def test_a_pull_of_several_blocks_keeps_the_clock_fresh_and_decides_only_the_lost_block():
    """A 32-frame client on a 128-frame hub: the producer plays four blocks back to back every
    2.67 ms. Told so by the clock (pull_blocks, pull_left), the schedule is just in time, predicts
    nothing while every block arrives, and predicts a lost block once, before its pull."""
    sim = Sim(headroom=8, lost={601}, pull_blocks=4, period_ns=P32, arrival_offset_ns=20_000)
    sim.run(700, step_ns=20_000)
    assert sim.s.mode == JUST_IN_TIME and sim.s.mode_switches == 1
    assert sim.s.clock_pull_blocks == 4
    assert sim.predicted(after_block=200) == [601]
    t, action = next((t, a) for t, a in sim.actions if a.seq == 601)
    assert action.deadline_ns == sim.played_at(601) - sim.s.post_margin_ns
    assert sim.arrival(601) < t <= sim.played_at(601) - BUDGET - sim.s.post_margin_ns


def test_a_linear_clock_of_a_pull_of_several_blocks_goes_stale_between_pulls():
    """The same stream with a clock that does not say how many blocks a pull plays (a producer
    older than the pull fields): read as one block per 0.67 ms, it is four periods old when the
    next pull comes, stale whenever that pull is a little late, and the schedule falls back to
    predicting after every block — what a 32-frame client of a real hub got, 1500 predictions a
    second. Told, the same pulls keep it just in time."""
    for tell, most in ((False, None), (True, 0)):
        sim = Sim(
            headroom=8, pull_blocks=4, tell_pull=tell, period_ns=P32, arrival_offset_ns=20_000, odd_pull_late_ns=60_000
        )
        sim.run(700, step_ns=20_000)
        assert sim.s.clock_pull_blocks == (4 if tell else 1)
        predicted = len(sim.predicted(after_block=200))
        if most is None:
            assert predicted > 250 and sim.s.mode == SPECULATIVE
        else:
            assert predicted == most and sim.s.mode == JUST_IN_TIME


@given(
    clock_seq=st.integers(0, 1 << 40),
    clock_ns=st.integers(1, 1 << 60),
    pull_blocks=st.sampled_from([1, 2, 4, 8, 32]),
    left=st.integers(0, 40),
    period_ns=st.integers(300_000, 25_000_000),
    offset=st.integers(-100, 100),
)
@settings(max_examples=300, deadline=None)
def test_due_times_agree_with_the_cpp_clock(clock_seq, clock_ns, pull_blocks, left, period_ns, offset):
    """The schedule's due time is the C++ tap's and waiter's (PlayoutClock::due_ns): the same
    block, the same pull; and the blocks of one pull are due together."""
    from nextblock import _core

    left = min(left, pull_blocks - 1)
    s = StreamSchedule(period_ns)
    s.on_clock(clock_seq, clock_ns, 0, pull_blocks, left)
    seq = max(0, clock_seq + offset)
    assert s.due_ns(seq) == _core.playout_due_ns(clock_seq, clock_ns, pull_blocks, left, period_ns, seq)
    last = clock_seq + left  # the reading's pull ends here
    assert s.due_ns(last) == clock_ns and s.due_ns(last + 1) == clock_ns + pull_blocks * period_ns
    assert s.due_ns(last + pull_blocks) == s.due_ns(last + 1)


def test_a_lost_block_is_predicted_once_just_in_time_before_it_is_due():
    sim = Sim(headroom=2, lost={150})
    sim.run(200)
    assert sim.s.mode == JUST_IN_TIME
    jit = [(t, a) for t, a in sim.actions if a.seq >= 60]
    assert [a.seq for _, a in jit] == [150]
    t, action = jit[0]
    due = (150 + 2) * P
    assert action.deadline_ns == due - sim.s.post_margin_ns
    # decided after the block was overdue (later than nearly all arrivals) and early enough for the model
    assert sim.arrival(150) < t <= due - BUDGET - sim.s.post_margin_ns
    assert not action.chained


@pytest.mark.parametrize("missing_wake", [False, True])
def test_on_the_missing_block_wake_a_tight_buffer_predicts_at_the_producers_check(missing_wake):
    """Blocks arrive just over a period ahead (the Regulator, a small queue): the lead is under a
    period, so the producer looks for block s at the pull of s - 1, before the decision time. On its
    missing-block wake the prediction starts then, ``P - lead`` earlier (cold predictions need that
    time); on timed wakes it waits for ``due - lead``. Blocks that arrive as usual are never predicted."""
    sim = Sim(headroom=1, lost={150})
    sim.s.missing_wake = missing_wake
    sim.run(200)
    s = sim.s
    assert s.mode == JUST_IN_TIME
    lead = s.lead_ns(BUDGET)
    assert lead < P and s.lookahead_blocks(BUDGET) == 1
    jit = [(t, a) for t, a in sim.actions if a.seq >= 60]
    assert [a.seq for _, a in jit] == [150]
    t, action = jit[0]
    due = (150 + 1) * P
    decide = due - (P if missing_wake else lead)
    assert decide <= t < decide + 50_000  # the first step of the simulated loop at or after it
    assert action.deadline_ns == due - s.post_margin_ns

    quiet = Sim(headroom=1)
    quiet.s.missing_wake = missing_wake
    quiet.run(200)
    assert quiet.predicted(after_block=60) == []


def test_where_blocks_arrive_after_the_producers_check_the_missing_wake_waits_for_the_decision_time():
    """Blocks arrive 0.3 ms less than a period ahead: at the pull a period before a block is due
    it is normally not there yet, so the wake there says only "not yet": the decision waits for
    ``due - lead`` (else nearly every block would be predicted)."""
    sim = Sim(headroom=1, lost={150}, arrival_offset_ns=-300_000)
    sim.s.missing_wake = True
    sim.run(200)
    s = sim.s
    assert s.mode == JUST_IN_TIME and s.slack_low_ns < P and s.lookahead_blocks(BUDGET) == 1
    jit = [(t, a) for t, a in sim.actions if a.seq >= 60]
    assert [a.seq for _, a in jit] == [150]
    decide = (150 + 1) * P - s.lead_ns(BUDGET)
    assert decide <= jit[0][0] < decide + 50_000


def test_a_burst_is_chained_block_by_block_each_from_the_previous_guess():
    sim = Sim(headroom=2, lost={150, 151, 152})
    sim.run(200)
    jit = [(t, a) for t, a in sim.actions if a.seq >= 60]
    assert [a.seq for _, a in jit] == [150, 151, 152]
    assert [a.chained for _, a in jit] == [False, True, True]
    times = [t for t, _ in jit]
    assert all(abs((t2 - t1) - P) <= 100_000 for t1, t2 in pairwise(times))  # one decision per period


def test_a_late_block_that_arrives_before_its_decision_is_not_predicted_and_a_later_one_is():
    # without jitter every block arrives ~2 periods ahead: the tolerance is 0.15 period (400 us)
    # 151 arrives 0.3 ms late: within the tolerance -> not predicted
    # 170 arrives 4.9 ms late (still before it is due): after its decision -> predicted, and the
    # real block wins at play-out
    sim = Sim(headroom=2, late_ns={151: 300_000, 170: 4_900_000})
    sim.run(200)
    assert sim.predicted(after_block=60) == [170]
    # 170 arrives 1.5 ms late: predicted, but it is there before 171's decision, so 171 (lost) is
    # predicted from the real 170, not chained from the guess
    sim2 = Sim(headroom=2, lost={171}, late_ns={170: 1_500_000})
    sim2.run(200)
    actions = {a.seq: a for _, a in sim2.actions if a.seq >= 60}
    assert sorted(actions) == [170, 171] and not actions[171].chained


def test_a_clock_jump_restarts_the_decisions_and_falls_back_to_speculative_until_remeasured():
    s = StreamSchedule(P, ScheduleConfig(min_samples=8, reevaluate_blocks=4))
    for k in range(40):
        s.on_block(k, k * P, k * P)
        s.on_clock(k - 2, k * P, 1)
        s.update_mode(k * P, BUDGET)
    assert s.mode == JUST_IN_TIME
    s.on_clock(5, 40 * P, 1)  # the producer's numbering went back (a restart)
    assert s.clock_jumps == 1 and s.mode == SPECULATIVE and s.handled_seq == 5 and s.slack_low_ns is None
    s.on_clock(10_000, 41 * P, 1)  # and leapt forward
    assert s.clock_jumps == 2 and s.handled_seq == 10_000


def test_a_stale_clock_means_speculative():
    s = StreamSchedule(P, ScheduleConfig(min_samples=8, reevaluate_blocks=4))
    for k in range(40):
        s.on_block(k, k * P, k * P)
        s.on_clock(k - 2, k * P, 1)
        s.update_mode(k * P, BUDGET)
    assert s.mode == JUST_IN_TIME
    assert s.update_mode(39 * P + 5 * P, BUDGET) == SPECULATIVE  # no pull for 5 periods


def test_speculative_chains_through_a_burst_with_deadlines_from_the_clock():
    sim = Sim(headroom=0, lost={100, 101})
    sim.run(130)
    assert sim.s.mode == SPECULATIVE
    around = {a.seq: a for _, a in sim.actions if 99 <= a.seq <= 103}
    assert sorted(around) == [99, 100, 101, 102, 103]
    assert not around[100].chained and around[101].chained and around[102].chained and not around[103].chained
    assert around[100].deadline_ns == 100 * P - sim.s.post_margin_ns


def test_an_outage_longer_than_the_chain_limit_is_left_to_the_fallback():
    sim = Sim(
        headroom=2,
        lost=set(range(150, 170)),
        config=ScheduleConfig(min_samples=32, reevaluate_blocks=16, max_chain_blocks=4),
    )
    sim.run(200)
    assert sim.predicted(after_block=60) == [150, 151, 152, 153]
    # the blocks past the chain are left to the producer on purpose, and the schedule says so
    # (attach counts their fallbacks as fallbacks_outage, not as unseen)
    assert [seq for seq in range(150, 170) if sim.s.gave_up(seq)] == list(range(154, 170))
    assert not sim.s.gave_up(149) and not sim.s.gave_up(170)


def test_forced_modes_and_bad_config():
    sim = Sim(headroom=2, config=ScheduleConfig(min_samples=32, reevaluate_blocks=16, force_mode=SPECULATIVE))
    sim.run(100)
    assert sim.s.mode == SPECULATIVE
    with pytest.raises(ValueError, match="force_mode"):
        StreamSchedule(P, ScheduleConfig(force_mode="sometimes"))


def test_blocks_that_came_after_their_due_time_do_not_pull_the_lead_down():
    # 2 % of the blocks came after they were due (a stalled receive thread): they were losses,
    # the lead is still set by the blocks that came in time
    sim = Sim(headroom=2, late_ns={k: 3 * P for k in range(40, 200, 50)})
    sim.run(200)
    assert sim.s.mode == JUST_IN_TIME
    assert sim.s.slack_low_ns > 2 * P - 200_000


def test_slack_low_uses_the_in_time_blocks_unless_most_came_late():
    in_time = np.full(95, 5_000_000, np.int64)
    late = np.full(5, -13_000_000, np.int64)
    assert slack_low(np.concatenate([in_time, late]), 1.0) == 5_000_000
    mostly_late = np.concatenate([np.full(30, 100_000, np.int64), np.full(70, -400_000, np.int64)])
    assert slack_low(mostly_late, 1.0) == -400_000, "no headroom: the plain percentile says so"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-20_000_000, 20_000_000), min_size=1, max_size=600),
    st.sampled_from([0.0, 0.5, 1.0, 5.0, 50.0, 99.0, 100.0]),
)
def test_slack_low_is_numpys_percentile_of_the_blocks_it_keeps(slacks, percentile):
    slacks = np.asarray(slacks, np.int64)
    in_time = slacks[slacks >= 0]
    kept = in_time if 2 * in_time.shape[0] >= slacks.shape[0] else slacks
    assert slack_low(slacks, percentile) == int(np.percentile(kept, percentile))


@pytest.mark.parametrize(
    "headroom,budget_ns,expected", [(1, 500_000, 1), (2, 500_000, 2), (3, 500_000, 3), (2, 6_000_000, 3)]
)
def test_the_missing_block_lookahead_is_the_earliest_pull_by_which_blocks_arrive_with_room_for_the_model(
    headroom, budget_ns, expected
):
    """Blocks arrive ``headroom`` periods and 100 µs ahead: the producer checks a block at the pull
    ``headroom`` periods before it is due, when it is normally there already (so that a lost one is
    known as early as the pulls allow), but never later than leaves room for an inference."""
    sim = Sim(headroom=headroom)
    sim.run(120)
    s = sim.s
    assert s.mode == JUST_IN_TIME
    k = s.lookahead_blocks(budget_ns)
    assert k == expected
    assert k * P >= budget_ns + s.post_margin_ns
    if budget_ns + s.post_margin_ns <= s.slack_low_ns:
        assert k * P <= s.slack_low_ns < (k + 1) * P


def test_the_lookahead_is_clamped_to_the_producers_limit():
    s = StreamSchedule(P, ScheduleConfig())
    assert s.lookahead_blocks(10**12) == MAX_LOOKAHEAD_BLOCKS == 16


def test_a_clock_a_few_blocks_back_is_a_re_timing_not_a_jump():
    """JackTrip's Regulator after a run of underruns plays the blocks it concealed, late: its clock
    steps back a few blocks. The schedule keeps its slacks and mode, and decides the blocks from
    there on again at their later due times; a step further back is still a jump."""
    sim = Sim(headroom=2)
    sim.run(100)
    s = sim.s
    assert s.mode == JUST_IN_TIME and s.slack_low_ns is not None
    low, seq, at = s.slack_low_ns, s.clock_seq, s.clock_at_ns
    s.on_clock(seq - 3, at + P, 0)
    assert (s.clock_jumps, s.clock_retimes, s.mode, s.slack_low_ns) == (0, 1, JUST_IN_TIME, low)
    assert s.handled_seq == seq - 3 and s.due_ns(seq - 2) == at + 2 * P
    s.on_clock(seq - 3 - 40, at + 2 * P, 0)
    assert s.clock_jumps == 1


def test_a_producer_that_drops_received_blocks_makes_the_stream_speculative_while_it_does():
    """JackTrip's Regulator, its callback late on a loaded host, drops blocks that had arrived and
    conceals them: a just-in-time stream has no replacement for those. Eight such drops within a
    second make the stream speculative (a replacement posted for every block); two seconds after
    the last it is just in time again. Seven, or eight spread over more than a second, change
    nothing."""
    sim = Sim(headroom=2)
    sim.run(200)
    s = sim.s
    assert s.mode == JUST_IN_TIME
    t0, seq0 = s.clock_at_ns, s.clock_seq

    def mode_at(t: int) -> str:  # the producer's clock stays fresh meanwhile
        s.on_clock(seq0 + (t - t0) // P, t, 2)
        return s.update_mode(t, BUDGET)

    for i in range(7):
        s.note_dropped_received(t0 + i * 100_000_000)
    assert mode_at(t0 + 700_000_000) == JUST_IN_TIME, "seven drops are not enough"
    s.note_dropped_received(t0 + 1_200_000_000)  # the eighth, but 1.2 s after the first
    assert mode_at(t0 + 1_200_000_000) == JUST_IN_TIME, "eight spread over more than a second"
    for t in (1_210_000_000, 1_220_000_000, 1_230_000_000):
        s.note_dropped_received(t0 + t)  # the newest eight: 0.3 s .. 1.23 s, within a second
    assert mode_at(t0 + 1_230_000_000) == SPECULATIVE and s.hedge_switches == 1 and s.dropped_received == 11
    assert mode_at(t0 + 3_100_000_000) == SPECULATIVE, "held for 2 s after the newest drop"
    assert mode_at(t0 + 3_300_000_000) == JUST_IN_TIME, "the slacks still leave room: just in time again"


def test_no_hedging_when_the_mode_is_forced_or_off():
    for cfg in (
        ScheduleConfig(force_mode=JUST_IN_TIME, min_samples=32, reevaluate_blocks=16),
        ScheduleConfig(dropped_per_s=0, min_samples=32, reevaluate_blocks=16),
    ):
        sim = Sim(headroom=2, config=cfg)
        sim.run(200)
        s = sim.s
        for i in range(20):
            s.note_dropped_received(s.clock_at_ns + i)
        assert s.update_mode(s.clock_at_ns + 20, BUDGET) == JUST_IN_TIME


@pytest.mark.parametrize(
    "pull_blocks, slack_low_us, want",
    [
        (4, 1_500, 0),  # less slack than one pull (2.67 ms): no check comes after the arrivals
        (4, 3_000, 4),  # one pull ahead
        (4, 6_000, 8),  # two pulls
        (4, 40_000, 16),  # clamped to the producer's limit, a whole number of pulls
        (2, 40_000, 16),
        (32, 100_000, 0),  # one pull plays more than the limit
    ],
)
def test_the_missing_block_check_of_a_pull_of_several_blocks_is_whole_pulls_ahead(pull_blocks, slack_low_us, want):
    s = StreamSchedule(P32)
    s.on_clock(100, 1_000_000_000, 4, pull_blocks, pull_blocks - 1)
    s.slack_low_ns = slack_low_us * 1000
    k = s.lookahead_blocks(BUDGET)
    assert k == want
    if k:
        assert k % pull_blocks == 0 and s.check_lead_ns(k) == k * P32 >= BUDGET + s.post_margin_ns
