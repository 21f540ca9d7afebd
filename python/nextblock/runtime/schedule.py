"""When to predict which block of one stream: the deadline logic, without any I/O.

A :class:`StreamSchedule` is told what happens to its stream (:meth:`~StreamSchedule.on_block`:
a block arrived; :meth:`~StreamSchedule.on_clock`: the producer's play-out clock) and answers two
questions: *which block must be predicted now, and by when must it be posted*
(:meth:`~StreamSchedule.next_action`), and *when to ask again* (:attr:`~StreamSchedule.wake_ns`).
It works in one of two modes, chosen per stream from what it measures:

**just-in-time** (the producer writes a play-out clock and blocks arrive with headroom)
    Block ``s`` is due at ``due(s) = clock_at + (s - clock_seq) * period`` (:meth:`~StreamSchedule.due_ns`;
    where the producer's pull plays several blocks back to back — a hub at 128 frames and a client
    at 32 plays four per callback — the blocks of one pull are due together, one pull period
    apart: the pull fields of the clock, ``_core.playout_due_ns``). Received blocks
    arrive ``slack = due - arrival`` ahead of their play-out; the schedule keeps the recent
    slacks and the low percentile ``slack_low`` of those that came in time (a block that came
    after its due time was a loss). A block that has not arrived
    ``slack_low - tolerance`` before it is due is later than nearly every block before it: it is
    presumed lost and predicted *then* – at ``decide(s) = due(s) - max(slack_low - tolerance,
    inference_budget + post_margin)`` – and posted by ``due(s) - post_margin``. Nothing is
    predicted while every block arrives, and nothing wakes: the producer checks at each pull
    whether the block :meth:`~StreamSchedule.lookahead_blocks` ahead has arrived and wakes the
    waiter only when it has not (the missing-block wake, ``_core.wait_for_decision``); where that
    pull comes after nearly every block has arrived, the prediction starts on the wake, even before
    ``decide(s)`` (:meth:`~StreamSchedule.decision_lead_ns`). Bursts chain by
    themselves: the block after a predicted one gets its own decision one period later, from a
    context that ends with the guess (or with the real block, if it came late after all).

**speculative** (no clock, a stale clock, or blocks that arrive just before they are due)
    A loss cannot be told from a block that is merely not there yet, so after every block that
    advances the newest seq ``n``, ``n + 1`` is predicted at once (deadline: ``due(n + 1) -
    post_margin``, or without a clock ``arrival(n) + deadline``). If ``n + 1`` has not arrived
    ``chain_slack`` after it was expected, it is presumed lost and ``n + 2`` is predicted from the
    guess, and so on up to ``max_chain`` blocks.

The mode is re-evaluated every ``reevaluate_blocks`` received blocks (and at once when the clock
goes stale): just-in-time needs a fresh clock and ``slack_low - tolerance >= inference_budget +
post_margin``; until ``min_samples`` slacks are measured a stream with a fresh clock is
just-in-time with the producer's queue depth standing in for the slacks (``queued_blocks``
periods ahead; at least ``inference_budget + post_margin``). All times are ``CLOCK_MONOTONIC`` nanoseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

JUST_IN_TIME = "just-in-time"
SPECULATIVE = "speculative"
#: the producer's missing-block wake looks at most this far ahead (shm_layout.hpp kMaxMissingLookahead)
MAX_LOOKAHEAD_BLOCKS = 16
#: a play-out clock reading at most this many blocks behind the previous one is a re-timing (the
#: producer played blocks late after concealing them), not a jump (see StreamSchedule.on_clock)
MAX_RETIME_BLOCKS = 16


@dataclass(frozen=True)
class Action:
    """Predict block ``seq`` (and the cross-fade block after it) and post it by ``deadline_ns``.

    ``chained``: the block before ``seq`` is not a received one (our guess or silence fills the
    context). ``origin_ns``: for speculative predictions the arrival of the block they follow
    (end-to-end latency is measured from it); 0 for just-in-time ones.
    """

    seq: int
    deadline_ns: int
    chained: bool
    origin_ns: int = 0


@dataclass
class ScheduleConfig:
    """Timing rules of :class:`StreamSchedule` (all optional).

    Attributes
    ----------
    post_margin_us : float
        A replacement must be posted this long before its block is due (the producer's pull,
        wake-up jitter). Default 200 µs.
    tolerance_fraction : float
        How much later than ``slack_low`` (fraction of a period) a block may arrive before it is
        presumed lost. Default 0.15.
    stale_clock_periods : float
        A clock older than this many periods is stale (the producer stopped pulling); this many
        pulls where a pull plays several blocks (:meth:`StreamSchedule.on_clock`). Default 4.
    slack_percentile : float
        Which low percentile of the recent slacks of blocks that came in time is ``slack_low``
        (:func:`slack_low`). Default 1.
    window_blocks : int
        Recent slacks kept. Default 512 (1.4 s at 128 / 48k).
    min_samples : int
        Slacks needed before just-in-time is considered. Default 32.
    reevaluate_blocks : int
        Re-evaluate the mode after this many received blocks. Default 32.
    deadline_us : float | None
        Without a clock: post within this long after the previous block arrived (default: one
        period).
    max_chain_blocks : int
        Longest speculative chain through a burst. Default 8.
    chain_slack_fraction : float
        Speculative: how long past its expected arrival (fraction of a period) a block is awaited
        before it is presumed lost. Default 0.25.
    force_mode : str | None
        ``"just-in-time"`` or ``"speculative"`` to disable the automatic choice (just-in-time
        still needs a fresh clock).
    dropped_per_s : float
        Speculative while the producer drops received blocks this often (at least this many in the
        last second; :meth:`StreamSchedule.note_dropped_received`): JackTrip's Regulator, its
        callback late on a loaded host, drops blocks that had arrived (older than its latency
        target) and conceals them, and only a replacement posted for every block serves those.
        Default 8 (0: never).
    dropped_hold_s : float
        ...for this long after the newest such drop. Default 2 s.
    """

    post_margin_us: float = 200.0
    tolerance_fraction: float = 0.15
    stale_clock_periods: float = 4.0
    slack_percentile: float = 1.0
    window_blocks: int = 512
    min_samples: int = 32
    reevaluate_blocks: int = 32
    deadline_us: float | None = None
    max_chain_blocks: int = 8
    chain_slack_fraction: float = 0.25
    force_mode: str | None = None
    dropped_per_s: float = 8.0
    dropped_hold_s: float = 2.0


def slack_low(slacks_ns: np.ndarray, percentile: float) -> int:
    """The low ``percentile`` of the slacks ``(n,)`` of blocks that came *before* they were due.

    A block that came after its due time was played as a loss (JackTrip concealed it) and is
    handled like one; counting it would pull the lead of every later decision down. Such blocks
    are left out, unless they are the majority (then the stream has no headroom and the plain
    percentile, negative, says so)."""
    in_time = slacks_ns[slacks_ns >= 0]
    use = in_time if 2 * in_time.shape[0] >= slacks_ns.shape[0] else slacks_ns
    # np.percentile's linear interpolation between the two ranks around the position, from one
    # np.partition (np.percentile itself is ~20 Python calls: ~8 % of a speculative stream's loop)
    position = percentile / 100.0 * (use.shape[0] - 1)
    below = int(position)
    above = min(below + 1, use.shape[0] - 1)
    ranked = np.partition(use, (below, above))
    low, high = float(ranked[below]), float(ranked[above])
    return int(low + (high - low) * (position - below))


class StreamSchedule:
    """The deadline logic of one stream (see the module docstring).

    Parameters
    ----------
    period_ns:
        One block period (``frames / rate``).
    config:
        :class:`ScheduleConfig`.
    """

    def __init__(self, period_ns: int, config: ScheduleConfig | None = None):
        cfg = config or ScheduleConfig()
        if cfg.force_mode not in (None, JUST_IN_TIME, SPECULATIVE):
            raise ValueError(f"force_mode must be {JUST_IN_TIME!r}, {SPECULATIVE!r} or None, got {cfg.force_mode!r}")
        self.config = cfg
        self.period_ns = int(period_ns)
        self.post_margin_ns = int(cfg.post_margin_us * 1000)
        self.tolerance_ns = int(cfg.tolerance_fraction * self.period_ns)
        self.stale_ns = int(cfg.stale_clock_periods * self.period_ns)
        self.deadline_ns = int(cfg.deadline_us * 1000) if cfg.deadline_us else self.period_ns
        self.chain_slack_ns = int(cfg.chain_slack_fraction * self.period_ns)
        self.mode = SPECULATIVE
        self.mode_switches = 0
        # play-out clock
        self.clock_seq = -1
        self.clock_at_ns = 0
        self.clock_queued = 0
        self.clock_pull_blocks = 1  #: blocks the producer's pull plays (the newest reading's)
        self.clock_pull_left = 0  #: blocks that pull plays after clock_seq
        self.clock_jumps = 0
        self.clock_retimes = 0  #: readings a few blocks back (see :meth:`on_clock`)
        self.clock_jump_log: list[tuple[int, int, int]] = []
        # arrivals
        self.newest_seq = -1
        self.newest_arrival_ns = 0
        self.slacks = np.zeros(max(8, cfg.window_blocks), np.int64)
        self._slack_n = 0
        self._since_eval = 0
        self.slack_low_ns: int | None = None
        # decisions
        self.handled_seq = -1  #: highest seq decided (predicted, or given up as too late)
        self._pending: int | None = None  # speculative: newest + 1 to predict now
        self._pending_origin = 0
        self._chain_depth = 0
        self.shared_early_ns: int | None = None  #: see :meth:`lead_ns`
        #: set by the loop while it sleeps on the producer's missing-block wake (see :meth:`decision_lead_ns`)
        self.missing_wake = False
        # the newest just-in-time decisions looked at, per seq (ring): when first, and its decision time
        self._considered_seq = np.full(64, -1, np.int64)
        self._considered_at = np.zeros((64, 3), np.int64)  # first looked at, decide time, due time
        self._given_up = np.full(64, -1, np.int64)  # seqs left to the producer: past the longest chain
        self.wake_ns: int | None = None  #: when :meth:`next_action` wants to be asked again (None: on the next block)
        # the newest drops of received blocks (note_dropped_received), a ring of ``dropped_per_s`` times
        self._dropped_at = np.zeros(max(1, int(np.ceil(cfg.dropped_per_s))), np.int64)
        self._dropped_n = 0
        self.dropped_received = 0  #: drops of received blocks noted
        self.hedge_switches = 0  #: times the drops made the stream speculative
        self._hedging = False

    # --- what happened --------------------------------------------------------------------------

    def clock_fresh(self, now_ns: int) -> bool:
        """A clock at most ``stale_ns`` old; one read after ``now_ns`` (written meanwhile) is fresh too.
        The same rule as the C++ waiter's ``clock_fresh``."""
        return self.clock_seq >= 0 and abs(now_ns - self.clock_at_ns) <= self.stale_ns

    def due_ns(self, seq: int) -> int:
        """When block ``seq`` will be played, from the newest clock reading (needs a clock): at its
        pull, the pulls ``clock_pull_blocks`` periods apart, the reading's pull ending with
        ``clock_seq + clock_pull_left`` (one block per pull: ``clock_seq + k`` is due ``k``
        periods after the reading). The rule of ``PlayoutClock::due_ns`` (shm_layout.hpp)."""
        r = self.clock_pull_blocks
        pulls = (seq - self.clock_seq - self.clock_pull_left + r - 1) // r
        return self.clock_at_ns + pulls * r * self.period_ns

    def check_lead_ns(self, blocks: int) -> int:
        """The least time between the pull of ``s - blocks`` and the pull of ``s``, over every
        ``s``: ``blocks`` periods with one block per pull; with ``r`` per pull, whole pulls only
        (``blocks // r`` of them, ``r`` periods each)."""
        r = self.clock_pull_blocks
        return (blocks // r) * r * self.period_ns

    def on_clock(self, seq: int, at_ns: int, queued_blocks: int, pull_blocks: int = 1, pull_left: int = 0) -> None:
        """A play-out clock reading: ``seq`` was played at ``at_ns`` with ``queued_blocks`` later ones
        received, by a pull that plays ``pull_blocks`` blocks, ``pull_left`` of them after ``seq``
        (the producer pulls every ``pull_blocks`` periods, so the clock goes stale after that many
        times ``stale_clock_periods``). A seq a few blocks (``MAX_RETIME_BLOCKS``) behind the last reading is a
        re-timing: blocks concealed before they arrived play now, late, and everything after them
        plays that much later; the blocks from ``seq`` on are decided again. A seq that moves
        further back or leaps (the producer restarted its numbering, or resynchronised) is a clock
        jump: decisions restart from the new position, with new slacks."""
        seq, at_ns = int(seq), int(at_ns)
        if seq == self.clock_seq and at_ns == self.clock_at_ns:
            return
        pull_blocks = max(1, int(pull_blocks))
        if pull_blocks != self.clock_pull_blocks:
            self.clock_pull_blocks = pull_blocks
            self.stale_ns = int(self.config.stale_clock_periods * self.period_ns * pull_blocks)
        self.clock_pull_left = min(max(0, int(pull_left)), pull_blocks - 1)
        if 0 < self.clock_seq - seq <= MAX_RETIME_BLOCKS:
            # a few blocks back: the producer played concealments for blocks that had not arrived
            # and plays them now, late (JackTrip's Regulator after a run of underruns: its latency
            # grew by that many blocks). The blocks from here on are due later than the last
            # reading said: decide them again at their new times, keep the slacks and the mode
            self.clock_retimes += 1
            self.clock_seq, self.clock_at_ns, self.clock_queued = seq, at_ns, int(queued_blocks)
            self.handled_seq = seq
            return
        if self.clock_seq >= 0:
            expected = self.clock_seq + max(0, round((at_ns - self.clock_at_ns) / self.period_ns))
            if seq < self.clock_seq or abs(seq - expected) > 64:
                self.clock_jumps += 1
                if len(self.clock_jump_log) < 16:  # (previous seq, new seq, the expected one) for --json
                    self.clock_jump_log.append((self.clock_seq, seq, expected))
                self.handled_seq = seq
                self._slack_n = 0
                self.slack_low_ns = None
                if self.mode == JUST_IN_TIME:
                    self._set_mode(SPECULATIVE)
        self.clock_seq, self.clock_at_ns, self.clock_queued = seq, at_ns, int(queued_blocks)
        if self.handled_seq < seq:
            self.handled_seq = seq  # played already: nothing up to it can be replaced any more

    def on_block(self, seq: int, arrival_ns: int, now_ns: int) -> bool:
        """A received block. Returns whether it advanced the newest seq."""
        seq, arrival_ns = int(seq), int(arrival_ns)
        if self.clock_fresh(now_ns) and seq > self.clock_seq - 64:
            self.slacks[self._slack_n % self.slacks.shape[0]] = self.due_ns(seq) - arrival_ns
            self._slack_n += 1
        advanced = seq > self.newest_seq
        if advanced:
            self.newest_seq, self.newest_arrival_ns = seq, arrival_ns
            self._chain_depth = 0
            self._pending, self._pending_origin = seq + 1, arrival_ns
        self._since_eval += 1
        return advanced

    def on_blocks(self, blocks: int, newest_seq: int, newest_arrival_ns: int, slacks_recorded: int) -> bool:
        """Several received blocks at once, whose slacks a :class:`~nextblock._core.StreamTap` wrote
        into :attr:`slacks` already. Returns whether they advanced the newest seq."""
        self._slack_n += slacks_recorded
        self._since_eval += blocks
        if newest_seq > self.newest_seq:
            self.newest_seq, self.newest_arrival_ns = newest_seq, newest_arrival_ns
            self._chain_depth = 0
            self._pending, self._pending_origin = newest_seq + 1, newest_arrival_ns
            return True
        return False

    # --- the mode -------------------------------------------------------------------------------

    def _set_mode(self, mode: str) -> None:
        if mode != self.mode:
            self.mode = mode
            self.mode_switches += 1
            if mode == JUST_IN_TIME:
                self.handled_seq = max(self.handled_seq, self.newest_seq)
            self._pending = None

    def note_dropped_received(self, at_ns: int) -> None:
        """The producer concealed a block that had arrived (JackTrip's Regulator dropped it: a SKIP
        of a received seq), at ``at_ns``. Often enough (``dropped_per_s``), the stream turns
        speculative (:meth:`update_mode`): a just-in-time stream has no replacement for a block it
        saw arrive."""
        self._dropped_at[self._dropped_n % self._dropped_at.shape[0]] = int(at_ns)
        self._dropped_n += 1
        self.dropped_received += 1

    def hedging(self, now_ns: int) -> bool:
        """Whether the producer drops received blocks often: ``dropped_per_s`` of them within one
        second, the newest at most ``dropped_hold_s`` ago."""
        cfg, ring = self.config, self._dropped_at
        if cfg.dropped_per_s <= 0 or self._dropped_n < ring.shape[0]:
            return False
        newest = int(ring[(self._dropped_n - 1) % ring.shape[0]])
        oldest = int(ring[self._dropped_n % ring.shape[0]])  # of the newest dropped_per_s
        return newest - oldest <= 1_000_000_000 and now_ns - newest <= cfg.dropped_hold_s * 1e9

    def update_mode(self, now_ns: int, budget_ns: int) -> str:
        """Choose the mode (cheap unless ``reevaluate_blocks`` blocks came since the last time).
        ``budget_ns``: what a prediction may take (recent inference peak)."""
        cfg = self.config
        if not self.clock_fresh(now_ns):
            self._set_mode(SPECULATIVE)
            return self.mode
        if cfg.force_mode is None and self._dropped_n:
            hedging = self.hedging(now_ns)
            if hedging != self._hedging:
                self._hedging = hedging
                self._since_eval = cfg.reevaluate_blocks  # re-evaluate now
                if hedging:
                    self.hedge_switches += 1
            if hedging:
                self._set_mode(SPECULATIVE)
                return self.mode
        if self._since_eval < cfg.reevaluate_blocks and self.slack_low_ns is not None:
            return self.mode
        self._since_eval = 0
        n = min(self._slack_n, self.slacks.shape[0])
        if n < cfg.min_samples:
            # not measured yet: just in time from the producer's queue depth (early_lead_ns) where it
            # leaves room for a prediction, so that a hub's streams starting together do not all
            # predict every block at once; without that room (a minimum-latency buffer: nothing
            # queued) speculative from the first block, or the first losses would go unconcealed
            self.slack_low_ns = None
            if cfg.force_mode is not None:
                self._set_mode(cfg.force_mode)
            else:
                room = self.early_lead_ns() >= budget_ns + self.post_margin_ns
                self._set_mode(JUST_IN_TIME if room else SPECULATIVE)
            return self.mode
        self.slack_low_ns = slack_low(self.slacks[:n], cfg.slack_percentile)
        if cfg.force_mode is not None:
            self._set_mode(cfg.force_mode)
        else:
            room = self.slack_low_ns - self.tolerance_ns
            self._set_mode(JUST_IN_TIME if room >= budget_ns + self.post_margin_ns else SPECULATIVE)
        return self.mode

    # --- the decision ---------------------------------------------------------------------------

    def next_action(self, now_ns: int, received: Callable[[int], bool], budget_ns: int) -> Action | None:
        """The prediction to make now, or ``None`` (then :attr:`wake_ns` says when to ask again;
        ``None`` there means: at the next block). ``received(seq)`` tells whether block ``seq`` is
        here. Call :meth:`done` with the action's seq once it was posted or given up."""
        if self.mode == JUST_IN_TIME and self.clock_fresh(now_ns):
            return self._next_just_in_time(now_ns, received, budget_ns)
        return self._next_speculative(now_ns, received)

    def early_lead_ns(self) -> int:
        """Just-in-time: how long before its due time a block is overdue (``slack_low - tolerance``).
        Before the slacks are measured, the producer's queue depth stands in for them: with ``q``
        blocks queued beyond the one playing, blocks arrive about ``q`` periods ahead."""
        if self.slack_low_ns is None:
            return max(0, self.clock_queued) * self.period_ns - self.tolerance_ns
        return self.slack_low_ns - self.tolerance_ns

    def lead_ns(self, budget_ns: int) -> int:
        """Just-in-time: how long before its due time a missing block is decided. With
        :attr:`shared_early_ns` set (by a loop serving several streams: the smallest early lead of
        its just-in-time streams), every stream decides at the same lead, so that the decisions for
        one audio callback fall together and share a model call."""
        early = (
            self.early_lead_ns() if self.shared_early_ns is None else min(self.shared_early_ns, self.early_lead_ns())
        )
        return max(early, budget_ns + self.post_margin_ns)

    def lookahead_blocks(self, budget_ns: int) -> int:
        """Just-in-time: how many blocks past the one it plays the producer checks at each pull
        (its missing-block wake: the waiter sleeps until that check finds a block missing).

        The check for block ``s`` happens at the pull of ``s - k``, ``k`` periods before ``s`` is
        due. Once the slacks are measured, ``k = slack_low // period`` (at least 1): the earliest
        pull by which nearly every block (all but the 1st percentile) has arrived, so a block that
        arrives as usual is rarely reported and a lost one is known as early as the pulls allow. (The
        decision's tolerance is left out here: with 5.4 ms of slack at 128 frames it would put
        the check at 2.7 ms instead of 5.3 ms before the block is due, halving the time a cold
        prediction has.) Before they are measured, ``k = lead // period``. ``k`` grows until the
        check's lead (:meth:`check_lead_ns`: ``k`` periods, or whole pulls where a pull plays several
        blocks) leaves room for ``budget_ns + post_margin``. Clamped to 1..16 (the producer's limit).

        Where a pull plays ``r > 1`` blocks (:attr:`clock_pull_blocks`), ``k`` is a whole number of
        pulls, ``m · r``: then every block is checked ``m`` pulls before its own. With less slack
        than one pull (``slack_low < r · period``) the producer's check at the pull before would
        come before most blocks arrive and wake the waiter at nearly every pull, right when the
        producer's audio thread runs; the check at the block's own pull comes too late. Then this is
        0 (no missing-block wake; the waiter times the decision itself), as it is where one pull
        plays more blocks than the producer's limit; ``m`` is clamped to ``16 // r``."""
        r = self.clock_pull_blocks
        ahead_ns = self.slack_low_ns if self.slack_low_ns is not None else self.lead_ns(budget_ns)
        if r > 1:
            pulls = min(ahead_ns // (r * self.period_ns), MAX_LOOKAHEAD_BLOCKS // r)
            if pulls < 1:
                return 0
            k = pulls * r
            while self.check_lead_ns(k) < budget_ns + self.post_margin_ns and k + r <= MAX_LOOKAHEAD_BLOCKS:
                k += r
            return int(k)
        k = max(1, ahead_ns // self.period_ns)
        while self.check_lead_ns(k) < budget_ns + self.post_margin_ns and k < MAX_LOOKAHEAD_BLOCKS:
            k += 1
        return int(min(k, MAX_LOOKAHEAD_BLOCKS))

    def decision_lead_ns(self, budget_ns: int) -> int:
        """Just-in-time: how long before its due time a missing block is predicted.

        :meth:`lead_ns`, except on the producer's missing-block wake (:attr:`missing_wake`): there
        the producer has already looked for block ``s`` at the pull of ``s - k`` (``k`` =
        :meth:`lookahead_blocks`) and woken us because it was not there, so the prediction starts
        at once rather than at ``due - lead``. With a tight buffer (blocks arrive less than a period
        ahead, ``k = 1``) that is up to ``period - lead`` earlier, plus a second, timed wake-up
        saved: the time a prediction that runs cold (after tens of ms asleep, several times its
        warm cost) needs most. A block that comes between the pull of ``s - k`` and ``due - lead``
        costs one prediction that is not played (rare: it arrived later than nearly every block).
        Where blocks normally arrive after that pull (``slack_low < k × period``: less than a period
        of slack, or ``k`` raised to leave room for the model), the wake only says "not yet" and the
        decision waits for ``due - lead`` as on a timed wake."""
        lead = self.lead_ns(budget_ns)
        if self.missing_wake and self.slack_low_ns is not None:
            check = self.check_lead_ns(self.lookahead_blocks(budget_ns))
            if check <= self.slack_low_ns:  # else the check comes before blocks normally arrive: wait for due - lead
                lead = max(lead, check)
        return lead

    def _next_just_in_time(self, now_ns: int, received, budget_ns: int) -> Action | None:
        s = self.handled_seq + 1
        while s <= self.newest_seq and received(s):
            s += 1
        self.handled_seq = s - 1
        due = self.due_ns(s)
        decide = due - self.decision_lead_ns(budget_ns)
        slot = s & 63
        if self._considered_seq[slot] != s:
            self._considered_seq[slot] = s
            self._considered_at[slot] = (now_ns, decide, due)
        if s > self.newest_seq + self.config.max_chain_blocks:
            # a long outage: beyond the longest chain the guesses would drift; JackTrip's fallback plays
            if now_ns >= decide:
                self.handled_seq = s
                self._given_up[s & 63] = s  # explained as an outage if its fallback plays
                decide += self.period_ns
            self.wake_ns = decide
            return None
        if now_ns < decide:
            self.wake_ns = decide
            return None
        self.wake_ns = now_ns
        return Action(s, due - self.post_margin_ns, chained=not received(s - 1))

    def _next_speculative(self, now_ns: int, received) -> Action | None:
        clock = self.clock_fresh(now_ns)
        if self._pending is not None:
            target, origin = self._pending, self._pending_origin
            self._pending = None
            if target > self.handled_seq:
                deadline = self.due_ns(target) - self.post_margin_ns if clock else origin + self.deadline_ns
                self.wake_ns = now_ns
                return Action(target, deadline, chained=False, origin_ns=origin)
        self.wake_ns = None
        if self.newest_seq < 0 or self._chain_depth >= self.config.max_chain_blocks:
            return None
        depth = self._chain_depth + 1
        fire = self.newest_arrival_ns + depth * self.period_ns + self.chain_slack_ns
        if now_ns < fire:
            self.wake_ns = fire
            return None
        self._chain_depth = depth
        target = self.newest_seq + 1 + depth
        origin = self.newest_arrival_ns + depth * self.period_ns
        if received(target - 1) or target <= self.handled_seq:
            self.wake_ns = now_ns  # the expected block came after all (or is played): nothing to chain
            return None
        deadline = self.due_ns(target) - self.post_margin_ns if clock else origin + self.deadline_ns
        self.wake_ns = now_ns
        return Action(target, deadline, chained=True, origin_ns=origin)

    def considered(self, seq: int) -> dict | None:
        """When the just-in-time decision first looked at ``seq`` (the loop's time, the decision and
        due times it computed then, ns), or ``None``."""
        slot = seq & 63
        if self._considered_seq[slot] != seq:
            return None
        first, decide, due = (int(v) for v in self._considered_at[slot])
        return {"first_ns": first, "decide_ns": decide, "due_ns": due}

    def gave_up(self, seq: int) -> bool:
        """Whether ``seq`` (one of the newest 64) was left to the producer's fallback on purpose: it
        came more than ``max_chain_blocks`` after the newest received block (an outage)."""
        return bool(self._given_up[seq & 63] == seq)

    def done(self, seq: int) -> None:
        """``seq`` was decided (posted, late, or skipped): do not decide it again."""
        if seq > self.handled_seq and self.mode == JUST_IN_TIME:
            self.handled_seq = seq
