"""One attached stream of the live predictor: its segment, its context, its schedule, its counts.

:class:`ServedStream` is what :class:`~nextblock.runtime.hub.HubLoop` keeps per segment. It does
the per-stream work between two model calls:

* :meth:`~ServedStream.poll` – read the blocks that arrived (into the :class:`ContextRing` and
  the :class:`StreamSchedule`), the producer's events (counted) and its play-out clock;
* :meth:`~ServedStream.context` – the context for a seq (a view into the ring, no copy);
* :meth:`~ServedStream.post` – check a prediction (:class:`SampleGuard`), clip it to [-1, 1]
  (the producer refuses anything else), post it unless its deadline passed, and keep it in the
  context as what was played.

Nothing here runs the model; nothing here sleeps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from .. import _core
from ..capture import Consumer, EventKind, Outcome, monotonic_ns
from .context import RECEIVED, ContextRing
from .guard import SampleGuard
from .lookahead import Lookahead
from .schedule import JUST_IN_TIME, SPECULATIVE, Action, ScheduleConfig, StreamSchedule
from .stats import RuntimeStats

log = logging.getLogger("nextblock.attach")

#: decisions remembered per stream, to tell why the producer played its fallback for a seq
DECISION_MEMORY = 256
#: fallbacks traced per stream (``fallback_trace`` in the JSON)
FALLBACK_TRACE = 64
#: how the newest decision for a seq ended (see :meth:`ServedStream.explain_fallback`)
POSTED, LATE, SKIPPED = 1, 2, 3
#: why a fallback played for a seq whose newest decision ended so (``RuntimeStats.count_fallback``)
_FALLBACK_REASON = {POSTED: "after_post", LATE: "late", SKIPPED: "skipped"}


class ServedStream:
    """One segment served by the live predictor.

    Parameters
    ----------
    consumer:
        Attached with ``post_replacements=True``.
    schedule_config:
        Timing rules (:class:`ScheduleConfig`).
    context_samples:
        The model's context per channel: the ring holds at least that much.
    ring_slots:
        Blocks of context kept per channel, at least (more where the context needs them).
    post_hook:
        Test hook, called as ``post_hook(seq, replacement)`` after each post (off the deadline),
        the two-sided re-posts included.
    fill:
        The two-sided fill (:func:`~nextblock.runtime.lookahead.resolve_fill`), or ``None``: every
        replacement one-sided (:class:`~nextblock.runtime.lookahead.Lookahead`).
    fill_guard_ns:
        Its first time guard (default: one cold fill measured here).
    """

    def __init__(
        self,
        consumer: Consumer,
        schedule_config: ScheduleConfig,
        context_samples: int,
        ring_slots: int = 64,
        channels: tuple[int, ...] | None = None,
        post_hook: Callable[[int, np.ndarray], None] | None = None,
        fill: Callable | None = None,
        fill_guard_ns: int | None = None,
    ):
        self.consumer = consumer
        self.post_hook = post_hook
        self.name = consumer.name
        self.channels = consumer.channels
        self.frames = consumer.frames_per_block
        self.sample_rate_hz = consumer.sample_rate_hz
        self.period_ns = round(1e9 * self.frames / self.sample_rate_hz)
        self.identity = {
            "segment": consumer.name,
            "name": consumer.stream_name or consumer.peer_address or consumer.name.lstrip("/"),
            "peer": consumer.peer_address,
            "local_port": consumer.local_port,
            "frames_per_block": self.frames,
            "sample_rate_hz": self.sample_rate_hz,
            "channels": self.channels,
            "producer_pid": consumer.producer_pid,
        }
        self.created_unix_ns = consumer.geometry.get("created_unix_ns")
        context_blocks = -(-int(context_samples) // self.frames)
        self.ring = ContextRing(self.channels, self.frames, max(ring_slots, context_blocks + 2), self.sample_rate_hz)
        self.schedule = StreamSchedule(self.period_ns, schedule_config)
        self.stats = RuntimeStats()
        if channels is None:
            self.predicted = np.arange(self.channels)
        else:
            bad = [c for c in channels if not 0 <= c < self.channels]
            if bad:
                raise ValueError(f"channel(s) {bad} do not exist: {consumer.name} has channels 0..{self.channels - 1}")
            self.predicted = np.array(sorted(set(channels)), np.intp)
        self.rows = len(self.predicted)  #: rows this stream adds to a batch
        self.all_predicted = self.rows == self.channels
        self.repeated = np.array([c for c in range(self.channels) if c not in set(self.predicted.tolist())], np.intp)
        self.guard = SampleGuard()
        self._replacement = np.zeros((2, self.frames, self.channels), np.float32)  # [block][frame][channel]
        self._played_cf = np.zeros((self.channels, self.frames), np.float32)
        self._fade_cf = np.zeros((self.channels, self.frames), np.float32)
        self._source = self.ring.source_of_slot
        self._seq_of = self.ring.seq_of_slot
        self._mask = self.ring.slots - 1
        first = max(0, consumer.blocks_written - self.ring.slots)  # enough history for a first context
        self.tap = _core.StreamTap(
            consumer._c, self.ring.samples, self.ring.seq_of_slot, self.ring.source_of_slot, self.schedule.slacks, first
        )
        # a stream that started moments ago (a client joining): count its events from its start
        created = consumer.geometry.get("created_unix_ns") or 0
        young = 0 < time.time_ns() - created < 5_000_000_000
        self.events_seen = 0 if young else consumer.events_written
        self.last_block_ns = monotonic_ns()
        self.attached_ns = self.last_block_ns
        self.blocks_just_in_time = 0
        self._decided_seq = [-1] * DECISION_MEMORY  # seq of the newest decision in each slot
        self._decided_how = [0] * DECISION_MEMORY  # POSTED, LATE or SKIPPED
        self.left_ns: int | None = None
        self.left_reason = ""
        self.lookahead = Lookahead(
            self.ring, self.schedule, self._repost, self.received, fill, self.sample_rate_hz, fill_guard_ns
        )
        self.fallback_trace: list[dict] = []
        self._covered = [-1] * 64  # seqs _cover_previous posted for (the newest 64)
        self.new_blocks = False  #: the last poll read a block (the loop then tries the two-sided fill)

    # --- reading ---------------------------------------------------------------------------------

    def received(self, seq: int) -> bool:
        """Whether the real block ``seq`` is in the context ring."""
        slot = seq & self._mask
        return self._seq_of[slot] == seq and self._source[slot] == RECEIVED

    @property
    def count(self) -> int:
        """Index of the next block to read from the segment (blocks published so far, once read)."""
        return self.tap.next_index

    def poll(self, now_ns: int) -> bool:
        """Read new blocks (into the ring, in C++: one call, GIL released), events and the play-out
        clock. Returns whether a block arrived."""
        stats, schedule = self.stats, self.schedule
        blocks, skipped, newest, arrival, slacks, clock = self.tap.poll(now_ns, self.period_ns, schedule.stale_ns, 64)
        if clock is not None:
            jumps = schedule.clock_jumps
            schedule.on_clock(*clock)
            if schedule.clock_jumps != jumps:
                self.tap.reset_slacks()
                slacks = 0
        if skipped:
            stats.blocks_skipped += skipped
        if blocks:
            if stats.blocks == 0:
                stats.mark_streaming()
            stats.blocks += blocks
            if schedule.mode == JUST_IN_TIME:
                self.blocks_just_in_time += blocks
            schedule.on_blocks(blocks, newest, arrival, slacks)
            self.last_block_ns = now_ns
        if self.consumer.events_written > self.events_seen:
            self._read_events()
        self.new_blocks = blocks > 0
        return blocks > 0

    def _read_events(self) -> None:
        events, skipped = self.consumer.read_events(self.events_seen, 1024)
        stats = self.stats
        next_index = self.events_seen + skipped
        for e in events:
            next_index = e.index + 1
            if e.kind == EventKind.SKIP and e.is_concealment and self.received(int(e.seq)):
                # the Regulator dropped a block that had arrived (whatever it played for it)
                self.schedule.note_dropped_received(int(e.time_ns))
            if stats.count_event(e):
                if e.outcome == Outcome.FALLBACK:
                    reason = (
                        "before_attach" if e.time_ns < self.attached_ns else self.explain_fallback(int(e.seq), e.kind)
                    )
                    stats.count_fallback(reason)
                    self._trace_fallback(e, reason)
                elif e.outcome == Outcome.REPLACEMENT:
                    stats.count_sided(self.lookahead.explain(int(e.seq)))
                    if self._covered[int(e.seq) & 63] == int(e.seq):  # _cover_previous's post played
                        stats.cover_used += 1
            elif e.kind == EventKind.CONSUMER_LOST:
                log.warning("%s: the producer lost this consumer at seq %d (too slow or stalled)", self.name, e.seq)
        if skipped:
            log.warning("%s: %d events were overwritten before they were read", self.name, skipped)
        self.events_seen = max(next_index, self.events_seen)

    def _trace_fallback(self, event, reason: str) -> None:
        """Keep what the schedule knew about a fallback's seq (the first ``FALLBACK_TRACE // 2`` and
        the newest ones, ``fallback_trace`` in the JSON): the event, whether the block had arrived, its due time
        from our clock against the producer's event time, and the schedule's state."""
        s, seq = self.schedule, int(event.seq)
        if len(self.fallback_trace) >= FALLBACK_TRACE:  # the first half stays, the second is the newest
            del self.fallback_trace[FALLBACK_TRACE // 2]
        due = s.due_ns(seq) if s.clock_seq >= 0 else None
        self.fallback_trace.append(
            {
                "seq": seq,
                "reason": reason,
                "kind": int(event.kind),
                "detail": int(event.detail),
                "received": bool(self.received(seq)),
                "received_next": bool(self.received(seq + 1)),
                "event_minus_due_us": None if due is None else (int(event.time_ns) - due) / 1000.0,
                "clock_seq": int(s.clock_seq),
                "newest_seq": int(s.newest_seq),
                "handled_seq": int(s.handled_seq),
                "mode": s.mode,
                "slack_low_us": None if s.slack_low_ns is None else s.slack_low_ns / 1000.0,
                "considered_us": None,
                "since_attach_ms": (int(event.time_ns) - self.attached_ns) / 1e6,
            }
        )
        c = s.considered(seq)
        if c is not None:  # relative to the producer's event (its pull): negative = before it
            t = int(event.time_ns)
            self.fallback_trace[-1]["considered_us"] = {k[:-3]: (v - t) / 1000.0 for k, v in c.items()}

    def _remember(self, seq: int, how: int) -> None:
        slot = seq % DECISION_MEMORY
        self._decided_seq[slot] = seq
        self._decided_how[slot] = how

    def explain_fallback(self, seq: int, kind: int = EventKind.UNDERRUN) -> str:
        """Why the producer played its own fallback for ``seq``: ``"late"`` (predicted, finished
        after its deadline), ``"skipped"`` (not started: too little time left), ``"unseen"`` (never
        decided: not known missing before it was played — a wake-up after the pull, a block that
        came late) or ``"after_post"`` (posted in time and still not played: the pull came before
        the post was visible, i.e. the deadline was wrong); and for blocks that could not be
        replaced by design: ``"outage"`` (more than ``max_chain_blocks`` after the newest received
        block: left to the producer on purpose) and ``"dropped_received"`` (``kind`` SKIP for a block
        that had arrived: JackTrip's Regulator dropped it, too old for its latency target, and the
        lost block after it was not known missing a period before it, when the replacement posted
        for it is also posted for this one: see :meth:`post`). (``"before_attach"``, a fallback played
        before this stream was served, is told by :meth:`_read_events`.)"""
        slot = seq % DECISION_MEMORY
        if self._decided_seq[slot] == seq:
            return _FALLBACK_REASON[self._decided_how[slot]]
        if self.schedule.gave_up(seq):
            return "outage"
        if kind == EventKind.SKIP and self.received(seq):
            return "dropped_received"
        return "unseen"

    # --- predicting ------------------------------------------------------------------------------

    def context_into(self, seq: int, out: np.ndarray) -> None:
        """Copy the context before block ``seq`` of the predicted channels into ``out``
        ``(rows, context_samples)``."""
        view = self.ring.context_for(seq, out.shape[1])
        if self.all_predicted:
            np.copyto(out, view)
        else:
            np.take(view, self.predicted, axis=0, out=out)

    def concealed_samples_before(self, seq: int, context_samples: int) -> int:
        """Samples at the end of the context before block ``seq`` that were not received (a
        burst concealed so far), at most ``context_samples``."""
        return min(self.ring.concealed_samples_before(seq, -(-context_samples // self.frames)), context_samples)

    def post(self, action: Action, prediction: np.ndarray, context: np.ndarray) -> bool:
        """Check, clip and post ``prediction`` ``(rows, 2, frames)`` (modified in place) for
        ``action.seq`` unless its deadline passed; keep it as the context for that seq either way.
        Returns whether it was posted in time."""
        stats = self.stats
        if not self.guard.check(prediction, context):
            stats.rejected_nonfinite = self.guard.rejected_nonfinite
            return False
        stats.limited = self.guard.limited
        replacement = self._replacement
        if self.all_predicted:
            np.copyto(replacement, prediction.transpose(1, 2, 0))
        else:  # the other channels repeat their newest block
            for i, ch in enumerate(self.predicted):
                replacement[:, :, ch] = prediction[i]
            newest = self.ring.block(action.seq - 1)
            for ch in self.repeated:
                replacement[0, :, ch] = 0.0 if newest is None else newest[ch]
                replacement[1, :, ch] = replacement[0, :, ch]
        # the producer refuses a whole replacement with any sample outside [-1, 1] (or non-finite); the
        # guard keeps predicted channels within its ceiling (<= 1), repeated ones are received blocks
        if not self.all_predicted:
            np.clip(replacement, -1.0, 1.0, out=replacement)
        np.copyto(self._played_cf, replacement[0].T)
        now = monotonic_ns()
        if now > action.deadline_ns:
            # not posted: the producer plays its fallback and then the next block as it came, so
            # the guess fills the context but nothing is cross-faded from its second block
            self.ring.put_predicted(action.seq, self._played_cf)
            stats.record_miss(now)
            stats.late += 1
            self._remember(action.seq, LATE)
            return False
        np.copyto(self._fade_cf, replacement[1].T)
        self.ring.put_predicted(action.seq, self._played_cf, self._fade_cf)
        self.consumer.post_replacement(action.seq, replacement)
        posted = monotonic_ns()
        stats.posts += 1
        if action.chained:
            stats.chained_posts += 1
        elif action.origin_ns:
            stats.e2e_us.record((posted - action.origin_ns) / 1000.0)
        if posted > action.deadline_ns:  # visible too late to be useful: still a miss
            stats.record_miss(posted)
            stats.late += 1
            self._remember(action.seq, LATE)
        else:
            self._remember(action.seq, POSTED)
            self.lookahead.note_post(action.seq)
            self._cover_previous(action.seq, replacement)
        if self.post_hook is not None:
            self.post_hook(action.seq, replacement)
        return True

    def _cover_previous(self, seq: int, replacement: np.ndarray) -> None:
        """Post ``seq``'s replacement for ``seq - 1`` too, where that block has arrived and is not
        played yet. JackTrip's Regulator, when its queue is older than its latency target, drops
        the old block before a lost one together with it and plays one concealment in their place,
        reported for the old block, then the block after the lost one: the replacement for the
        lost block (its prediction, then the block after it to cross-fade from) is what fits that
        slot. Where ``seq - 1`` plays as it came the post is never taken (one copy, no model call)."""
        prev, s = seq - 1, self.schedule
        if prev <= s.clock_seq or not self.received(prev) or s.clock_seq < 0:
            return
        if monotonic_ns() > s.due_ns(prev) - s.post_margin_ns:
            return
        self.consumer.post_replacement(prev, replacement)
        self._covered[prev & 63] = prev
        self.stats.cover_posts += 1
        self._remember(prev, POSTED)
        if self.post_hook is not None:
            self.post_hook(prev, replacement)

    def _repost(self, seq: int, replacement: np.ndarray) -> None:
        """The two-sided version of ``seq``'s replacement ``(2, frames, channels)`` (in [-1, 1],
        finite), in time (the :class:`Lookahead` checked the deadline)."""
        self.consumer.post_replacement(seq, replacement)
        self.stats.two_sided_posts += 1
        self._remember(seq, POSTED)
        if self.post_hook is not None:
            self.post_hook(seq, replacement)

    def skip(self, action: Action, now_ns: int) -> None:
        """A prediction not started because its deadline was too close (overload)."""
        self.stats.record_miss(now_ns)
        self.stats.overload_skips += 1
        self._remember(action.seq, SKIPPED)

    # --- reporting -------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """This stream's identity, mode and counts (one entry of ``streams`` in the final JSON)."""
        d = dict(self.identity)
        counts = self.stats.to_dict()
        for key in ("infer_us_median", "infer_us_p99", "infer_us_max", "cpu_share"):
            counts.pop(key, None)  # process-wide: in the totals
        d.update(counts)
        s = self.schedule
        jit_share = self.blocks_just_in_time / self.stats.blocks if self.stats.blocks else 0.0
        d.update(
            mode=JUST_IN_TIME if jit_share >= 0.5 else SPECULATIVE,  # the mode most blocks were served in
            mode_now=s.mode,
            just_in_time_share=jit_share,
            mode_switches=s.mode_switches,
            clock_jumps=s.clock_jumps,
            clock_retimes=s.clock_retimes,
            clock_pull_blocks=s.clock_pull_blocks,
            dropped_received=s.dropped_received,
            hedge_switches=s.hedge_switches,
            slack_low_us=None if s.slack_low_ns is None else s.slack_low_ns / 1000.0,
            attached_s=((self.left_ns or monotonic_ns()) - self.attached_ns) / 1e9,
            left=self.left_ns is not None,
            left_reason=self.left_reason,
        )
        d.update(self.lookahead.to_dict())
        d["fallback_trace"] = list(self.fallback_trace)
        d["clock_jump_log"] = [list(map(int, j)) for j in s.clock_jump_log]
        return d

    def status_line(self) -> str:
        st = self.stats
        share = st.replacement_share()
        return (
            f"{self.identity['name']:<22} {self.schedule.mode:<12} blocks={st.blocks} underruns={st.underruns} "
            f"replaced={st.replacements_used}{'' if share is None else f' ({100 * share:.1f}%)'} "
            f"fallback={st.fallbacks} late={st.late} skipped={st.overload_skips} predictions={st.predictions}"
            f"{st.sided_status()}"
        )

    def close(self, reason: str) -> None:
        if self.left_ns is None:
            self.left_ns = monotonic_ns()
            self.left_reason = reason
        if not self.consumer.closed:
            self.consumer.set_missing_lookahead(0)  # the producer stops checking for us
        self.consumer.close()
