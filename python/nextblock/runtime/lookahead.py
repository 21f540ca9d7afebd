"""Two-sided replacements: a missing block filled from both sides once the block after it is here.

When a packet is lost, the next one is usually in JackTrip's buffer before the lost one plays (the
Regulator's SKIP glitch finds it queued; the JitterBuffer and the ring buffer hold several
packets). :class:`Lookahead` (one per :class:`~nextblock.runtime.served.ServedStream`) uses it:

1. **Safety net.** A missing block's causal prediction is posted as always; it is the fill's
   prior too (when the block after it came before its decision time, it is made at once if it and
   the fill both fit: :meth:`Lookahead.undecided`). A causal prediction never replaces a posted
   fill (:meth:`Lookahead.filled`).
2. **Watch.** While a missing block has not been played, the loop also wakes on the stream's
   blocks (:meth:`Lookahead.watch_until_ns`; the stream then waits like a speculative one).
3. **Fill.** When a later block ``r`` has arrived, the run of missing, unplayed blocks
   ``a .. r - 1`` before it (at most :data:`MAX_GAP_BLOCKS`) is filled from both sides by
   ``fill(past, future, gap_samples, prior)`` (``nextblock.features.twosided.fill_gap``): past =
   what was played before ``a`` (the context ring), future = the received blocks from ``r`` on,
   prior = the causal guesses for the gap. It starts only if ``due(a) - post_margin`` is at least
   the usual fill time away (per block, the 75th percentile of the recent ones), and posts only if
   it finished by then.
4. **Re-post.** Slot ``g`` of the gap is posted again with ``[fill g, fill g + 1]``, the last with
   ``[fill r - 1, real block r]``: the slot is seqlocked and versioned, the producer takes
   whichever complete version it finds at its pull. Its second block *is* the packet that
   arrived, so the producer (which compares the samples itself) plays that packet as it came,
   without the recovery fade; the context ring holds the same.
5. **Count.** Every concealment played with our replacement is two-sided or one-sided, with why
   (:meth:`explain`): ``no_later_block`` (nothing after it arrived in time), ``burst_too_long``
   (more than :data:`MAX_GAP_BLOCKS` missing in a row), ``too_late`` (a later block came, but too
   close to the deadline to compute and post), ``off`` (``--lookahead off``).

Nothing here sleeps; the fill runs on the loop's thread after the causal predictions of the pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from ..capture import monotonic_ns

log = logging.getLogger("nextblock.attach")

#: longest run of missing blocks filled as one gap (a longer burst stays one-sided)
MAX_GAP_BLOCKS = 4
#: samples of played audio before the gap given to the fill (fill_gap fits its AR model to 1024)
PAST_SAMPLES = 1024
#: received blocks after the gap given to the fill, at most
FUTURE_BLOCKS = 2
#: seqs remembered per stream (how each was concealed)
MEMORY = 256
#: fill times (per block) the time guard is taken from: their 75th percentile
GUARD_WINDOW = 32
#: a fill the guard alone refused counts as one this much shorter (a spike must not lock us out)
_REFUSED_SHRINK = 0.9

#: how a seq's concealment was made (``explain``)
TWO_SIDED, NO_LATER_BLOCK, BURST_TOO_LONG, TOO_LATE, OFF = (
    "two_sided",
    "no_later_block",
    "burst_too_long",
    "too_late",
    "off",
)
REASONS = (NO_LATER_BLOCK, BURST_TOO_LONG, TOO_LATE, OFF)


def resolve_fill(mode: str) -> Callable | None:
    """The two-sided fill for ``--lookahead mode`` (``"off"`` or ``"auto"``), or ``None``: off.

    ``auto``: :class:`nextblock.model.two_sided.TwoSidedFill` — the shipped two-sided network
    for a one-block gap of its size, the fusion (LSAR with the causal prediction as its prior)
    for the others, or for every gap where this install has no two-sided model (logged)."""
    if mode not in ("off", "auto"):
        raise ValueError(f"lookahead must be 'off' or 'auto', got {mode!r}")
    if mode == "off":
        return None
    from ..model.metadata import ModelFileError
    from ..model.two_sided import TwoSidedFill

    try:
        fill = TwoSidedFill.shipped()
    except ModelFileError as err:
        log.warning("two-sided network not loaded (%s): the fusion fills every gap", err)
        fill = TwoSidedFill(None)
    if fill.network is None:
        log.info("no two-sided model in this install: the fusion fills every gap")
    return fill


def measure_fill(fill: Callable, channels: int = 2, frames: int = 128, sample_rate_hz: int = 48000) -> int:
    """Nanoseconds of one fill of one block of noise after a 20 ms sleep (cold caches): a first
    fill-time guard, before any real fill was timed."""
    import time

    # noise, not silence: a silent past and future take the fill's early exit and would time nothing
    rng = np.random.default_rng(0)
    past = (0.1 * rng.standard_normal((channels, PAST_SAMPLES))).astype(np.float32)
    future = (0.1 * rng.standard_normal((channels, frames))).astype(np.float32)
    prior = (0.1 * rng.standard_normal((channels, frames))).astype(np.float32)  # as the causal guess is posted
    time.sleep(0.02)
    t0 = monotonic_ns()
    fill(past, future, frames, prior, sample_rate_hz=sample_rate_hz)
    return monotonic_ns() - t0


class FillTimer:
    """The recent fill times per block (a ring of :data:`GUARD_WINDOW`) and their 75th percentile
    (``guard_ns``): the start margin a fill needs before the lost block's pull."""

    def __init__(self):
        self._times_ns = np.zeros(GUARD_WINDOW, np.int64)
        self._n = 0
        self.guard_ns = 0

    def note(self, per_block_ns: int) -> None:
        self._times_ns[self._n % GUARD_WINDOW] = per_block_ns
        self._n += 1
        self.guard_ns = int(np.percentile(self._times_ns[: min(self._n, GUARD_WINDOW)], 75))


class Lookahead:
    """The two-sided re-posts of one stream (see the module docstring).

    Parameters
    ----------
    ring:
        The stream's :class:`~nextblock.runtime.context.ContextRing` (what was played; read and
        updated with the fill).
    schedule:
        Its :class:`~nextblock.runtime.schedule.StreamSchedule` (clock, due times, margin).
    post:
        ``post(seq, replacement)``: posts ``(2, frames, channels)`` float32 for ``seq``.
    received:
        ``received(seq)``: whether the real block is in the ring.
    fill:
        ``fill(past (channels, n), future (channels, m), gap_samples, prior (channels, gap) | None)``
        -> ``(channels, gap_samples)`` (or a tuple whose first item it is); ``None``: off (every
        concealment one-sided, reason ``off``). If it has a ``fast`` method of the same signature
        (:meth:`nextblock.model.two_sided.TwoSidedFill.fast`), that cheaper fill runs where the
        full one would not be done in time but it would.
    guard_ns:
        The first fill-time guard (:func:`measure_fill`; default: measured here, one cold fill).
    """

    def __init__(
        self,
        ring,
        schedule,
        post: Callable[[int, np.ndarray], object],
        received: Callable[[int], bool],
        fill: Callable | None,
        sample_rate_hz: int = 48000,
        guard_ns: int | None = None,
    ):
        self.ring = ring
        self.schedule = schedule
        self._post = post
        self._received = received
        self.fill = fill
        self.sample_rate_hz = int(sample_rate_hz)
        self.frames = ring.frames_per_block
        self.channels = ring.channels
        self._seq = np.full(MEMORY, -1, np.int64)  # seq of each memory slot
        self._how = [NO_LATER_BLOCK] * MEMORY
        self._open_lo = -1  # missing seqs above this that may still be filled (below: decided)
        self._posted_hi = -1  # newest seq a causal replacement was posted for
        self._full = FillTimer()  # what one block's full fill takes: its start margin
        self._fast_fill = getattr(fill, "fast", None)
        self._fast = FillTimer()  # the same for the fast fill
        self._replacement = np.zeros((2, self.frames, self.channels), np.float32)
        #: counts: gaps filled and posted, slots re-posted, fills finished too late, fills refused,
        #: gaps filled by the fast fill (the full one would not have been done in time)
        self.fills = self.reposts = self.fills_late = self.fills_nonfinite = self.fast_fills = 0
        self.fill_us: list[float] = []  # newest fill times (bounded, for the statistics)
        if fill is not None:
            self._full.note(
                measure_fill(fill, self.channels, self.frames, self.sample_rate_hz)
                if guard_ns is None
                else int(guard_ns)
            )
        if self._fast_fill is not None:
            self._fast.note(
                measure_fill(self._fast_fill, self.channels, self.frames, self.sample_rate_hz)
                if guard_ns is None
                else int(guard_ns)
            )

    @property
    def on(self) -> bool:
        return self.fill is not None

    @property
    def guard_ns(self) -> int:
        """What one block's full fill takes (75th percentile of the recent ones): its start margin
        (a fill is not posted if it finished late anyway; the guard keeps hopeless ones from holding
        the loop up)."""
        return self._full.guard_ns

    @guard_ns.setter
    def guard_ns(self, value: int) -> None:
        self._full.guard_ns = int(value)

    @property
    def fast_guard_ns(self) -> int:
        """The same for the fast fill (0 without one)."""
        return self._fast.guard_ns

    @fast_guard_ns.setter
    def fast_guard_ns(self, value: int) -> None:
        self._fast.guard_ns = int(value)

    def _note_time(self, per_block_ns: int, fast: bool = False) -> None:
        (self._fast if fast else self._full).note(per_block_ns)

    # --- what happened to each seq ---------------------------------------------------------------

    def _mark(self, seq: int, how: str) -> None:
        slot = seq % MEMORY
        self._seq[slot] = seq
        self._how[slot] = how

    def explain(self, seq: int) -> str:
        """How the replacement played for ``seq`` was made: ``two_sided`` or the reason it was
        one-sided (``no_later_block``, ``burst_too_long``, ``too_late``, ``off``)."""
        if self.fill is None:
            return OFF
        slot = seq % MEMORY
        return self._how[slot] if self._seq[slot] == seq else NO_LATER_BLOCK

    # --- waking ----------------------------------------------------------------------------------

    def _first_open(self) -> int:
        """The lowest seq that is neither played nor decided here."""
        return max(self._open_lo + 1, self.schedule.clock_seq + 1)

    def note_post(self, seq: int) -> None:
        """A causal replacement for ``seq`` was posted (the loop watches for the block after it)."""
        if seq > self._posted_hi:
            self._posted_hi = seq

    def watch_until_ns(self, now_ns: int) -> int | None:
        """While a block whose causal replacement was posted may still be filled from both sides
        (not received, not played, not filled, its start margin not passed), the time that chance
        ends: the loop wakes on the stream's blocks until then. ``None``: nothing to watch."""
        sch = self.schedule
        if self.fill is None or self._posted_hi < 0 or not sch.clock_fresh(now_ns):
            return None
        s = self._first_open()
        while s <= self._posted_hi and self._received(s):
            s += 1
        if s > self._posted_hi:
            return None
        until = sch.due_ns(self._posted_hi) - sch.post_margin_ns - self.guard_ns
        return until if until > now_ns else None

    def filled(self, seq: int) -> bool:
        """Whether ``seq``'s two-sided replacement is posted (a causal one must not replace it)."""
        slot = seq % MEMORY
        return self._seq[slot] == seq and self._how[slot] == TWO_SIDED

    def undecided(self, now_ns: int, predict_ns: int = 0) -> int | None:
        """Just-in-time: the first missing block before a block that has arrived for which no
        causal prediction was made yet (its decision time has not come: the block after it came
        early). The loop predicts it now, as the fill's prior, instead of waiting for its decision,
        if a prediction (``predict_ns``, the recent inference peak) and the fill both still fit
        before its pull; else the fill goes without a prior (the causal prediction follows at its
        decision time unless the fill was posted). ``None``: none (or not just in time)."""
        sch = self.schedule
        if self.fill is None or sch.mode != "just-in-time" or not sch.clock_fresh(now_ns):
            return None
        s = max(self._first_open(), sch.handled_seq + 1)
        newest = sch.newest_seq
        while s < newest and self._received(s):
            s += 1
        if s >= newest:
            return None
        end = s
        while end < newest and not self._received(end):
            end += 1
        if (
            end - s > MAX_GAP_BLOCKS
            or sch.due_ns(s) - sch.post_margin_ns - now_ns <= predict_ns + (end - s) * self.guard_ns
        ):
            return None
        return s

    # --- the fill --------------------------------------------------------------------------------

    def after_blocks(self, now_ns: int) -> int:
        """Blocks arrived: fill every gap before a received block that still can be. Returns the
        slots re-posted."""
        sch = self.schedule
        if self.fill is None or not sch.clock_fresh(now_ns):
            return 0
        newest = sch.newest_seq
        s = self._first_open()
        posted = 0
        while s < newest:
            if self._received(s):
                s += 1
                continue
            a = s
            while s <= newest and not self._received(s):
                s += 1
            if s > newest:
                break  # nothing after this run has arrived yet
            posted += self._gap(a, s, now_ns)
            self._open_lo = s
        return posted

    def _gap(self, a: int, r: int, now_ns: int) -> int:
        """Blocks ``a .. r - 1`` are missing, ``r`` arrived."""
        sch = self.schedule
        margin = sch.post_margin_ns
        # the blocks of the run too close to their pull for a fill of the rest are played one-sided;
        # where the full fill would be late but the fast one would not, the fast one runs
        fast = False
        while a < r:
            left = sch.due_ns(a) - margin - monotonic_ns()
            if left >= (r - a) * self.guard_ns:
                break
            if self._fast_fill is not None and left >= (r - a) * self.fast_guard_ns:
                fast = True
                break
            self._mark(a, TOO_LATE)
            if left > 0:  # only the guards said no: a spike must not lock us out
                self._note_time(int(_REFUSED_SHRINK * self.guard_ns))
                if self._fast_fill is not None:
                    self._note_time(int(_REFUSED_SHRINK * self.fast_guard_ns), fast=True)
            a += 1
        if a == r:
            return 0
        m = r - a
        if m > MAX_GAP_BLOCKS:
            for g in range(a, r):
                self._mark(g, BURST_TOO_LONG)
            return 0
        frames = self.frames
        future = self.ring.raw_received(r, FUTURE_BLOCKS)
        if future is None:  # the block after the gap already entered a context cross-faded: leave it
            for g in range(a, r):
                self._mark(g, TOO_LATE)
            return 0
        past = self.ring.context_for(a, PAST_SAMPLES)
        prior = self.ring.predicted_run(a, m)
        t0 = monotonic_ns()
        try:
            filled = (self._fast_fill if fast else self.fill)(
                past, future, m * frames, prior, sample_rate_hz=self.sample_rate_hz
            )
        finally:
            t1 = monotonic_ns()
            self._note_time((t1 - t0) // m, fast=fast)
            if len(self.fill_us) < 4096:
                self.fill_us.append((t1 - t0) / 1000.0)
        if isinstance(filled, tuple):  # (fill, how each channel was filled)
            filled = filled[0]
        filled = np.asarray(filled, np.float32)
        if filled.shape != (self.channels, m * frames) or not np.isfinite(filled).all():
            self.fills_nonfinite += 1
            for g in range(a, r):
                self._mark(g, TOO_LATE)
            return 0
        np.clip(filled, -1.0, 1.0, out=filled)
        real_next = future[:, :frames]
        if monotonic_ns() > sch.due_ns(a) - margin:  # finished after the first block's deadline
            self.fills_late += 1
            for g in range(a, r):
                self._mark(g, TOO_LATE)
            return 0
        rep = self._replacement
        for i, g in enumerate(range(a, r)):
            block = filled[:, i * frames : (i + 1) * frames]
            nxt = filled[:, (i + 1) * frames : (i + 2) * frames] if g + 1 < r else real_next
            rep[0] = block.T
            rep[1] = nxt.T
            self._post(g, rep)
            self.ring.put_predicted(g, block, nxt)
            self._mark(g, TWO_SIDED)
        self.fills += 1
        self.fast_fills += int(fast)
        self.reposts += m
        return m

    def to_dict(self) -> dict:
        """The fill's counts for the statistics."""
        times = np.asarray(self.fill_us) if self.fill_us else None
        return {
            "lookahead": "auto" if self.fill is not None else "off",
            "two_sided_fills": self.fills,
            "two_sided_fills_late": self.fills_late,
            "two_sided_fills_nonfinite": self.fills_nonfinite,
            "two_sided_fills_fast": self.fast_fills,
            "two_sided_fill_us_median": None if times is None else float(np.median(times)),
            "two_sided_fill_us_max": None if times is None else float(times.max()),
        }
