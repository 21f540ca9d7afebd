"""The hot path: one attachment to one producer, block in → prediction posted.

:class:`AttachLoop` runs on one thread (the caller's) and does, for as long as the producer
lives and nobody asks it to stop:

1. **Sleep** in the segment's futex until a block arrives (GIL released), at most until the next
   *chain point* (below) or ``poll_timeout_s``.
2. **Read** the new blocks (seq, arrival time, samples) into the :class:`ContextRing`.
3. **Predict** block ``newest_seq + 1`` (and the cross-fade block after it) for every channel in
   one batched model call, **check** it (:class:`SampleGuard`: NaN/Inf rejected, peaks limited)
   and **post** it for ``newest_seq + 1`` – unless the deadline (block arrival + one block period)
   has passed: then nothing is posted and JackTrip plays its own fallback (counted ``late``). If
   the time left is already shorter than the recent inference peak, the model is not even run
   (``overload_skips``): under CPU overload NextBlock degrades to the fallback instead of
   posting late blocks.
4. **Chain** through bursts: block ``n + 1`` is expected one period after block ``n``; if it has
   not arrived ``chain_slack`` after that, it is presumed lost (JackTrip is playing our
   replacement for it right now), so block ``n + 2`` is predicted from a context that ends with
   our guess for ``n + 1``, and posted; and so on, up to ``max_chain_blocks``. A late block that
   does arrive replaces the guess in the context and restarts the chain from it.
5. Between blocks (after the post): read JackTrip's events (underruns and what was played), swap
   in a newly published model if the loader thread has one ready, print the status line,
   heartbeat when idle, and notice a producer that went away (:class:`ProducerGone`).

Per block the loop allocates only what the C++ reader returns (``read_blocks`` builds small
numpy arrays) and what LiteRT's Python binding returns; everything else is pre-allocated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..capture import Consumer, EventKind, monotonic_ns
from .context import ContextRing
from .errors import ProducerGone
from .guard import SampleGuard
from .modelwatch import ModelWatcher
from .predictors import Predictor
from .stats import RuntimeStats

log = logging.getLogger("nextblock.attach")

#: Inference-time guard: the recent peak decays by this factor per prediction or skip (halves in
#: ~14 predictions, ≈ 40 ms at 128/48k), so one spike does not cause a run of skips.
_GUARD_DECAY = 0.95


@dataclass
class LoopConfig:
    """How the live loop behaves (all optional).

    Attributes
    ----------
    channels : tuple[int, ...] | None
        Channels the model predicts; ``None``: all. The others get their newest received block
        repeated (a replacement always carries every channel).
    deadline_us : float | None
        Time from a block's arrival until the replacement for the next seq must be visible;
        ``None``: one block period (2667 µs at 128 frames / 48 kHz).
    max_chain_blocks : int
        Longest run of presumed-lost blocks predicted by chaining (8 ≈ 21 ms at 128/48k); 0
        disables chaining.
    chain_slack_fraction : float
        How long past its expected arrival (fraction of a period) a block is awaited before it
        is presumed lost.
    poll_timeout_s : float
        Longest sleep without a block: bounds the reaction to signals and stop requests.
    stats_interval_s : float | None
        Print :meth:`RuntimeStats.status_line` this often; ``None``: never.
    ring_slots : int
        Blocks of context kept per channel (must cover the model's context plus the longest chain).
    """

    channels: tuple[int, ...] | None = None
    deadline_us: float | None = None
    max_chain_blocks: int = 8
    chain_slack_fraction: float = 0.25
    poll_timeout_s: float = 0.05
    stats_interval_s: float | None = None
    ring_slots: int = 64


class AttachLoop:
    """Keeps a prediction ready for the next block of every channel of one attached segment.

    Parameters
    ----------
    consumer:
        Attached with ``post_replacements=True``.
    predictor:
        Already checked against the stream and warmed up.
    stats:
        Where to count (shared across re-attaches).
    config:
        Behaviour (:class:`LoopConfig`).
    watcher:
        Source of hot-swapped models, or ``None``.
    stop:
        Set it (from a signal handler or another thread) to end :meth:`run` within
        ``config.poll_timeout_s``.
    status:
        Called with each status line (default: ``log.info``).
    post_hook:
        Test hook: called as ``post_hook(seq, replacement)`` after each post (off the deadline).
    """

    def __init__(
        self,
        consumer: Consumer,
        predictor: Predictor,
        stats: RuntimeStats,
        config: LoopConfig | None = None,
        watcher: ModelWatcher | None = None,
        stop: threading.Event | None = None,
        status: Callable[[str], None] | None = None,
        post_hook: Callable[[int, np.ndarray], None] | None = None,
    ):
        self.consumer = consumer
        self.config = config or LoopConfig()
        self.stats = stats
        self.watcher = watcher
        self.stop = stop or threading.Event()
        self.status = status or (lambda line: log.info("%s", line))
        self.post_hook = post_hook
        self.channels = consumer.channels
        self.frames = consumer.frames_per_block
        self.period_ns = round(1e9 * self.frames / consumer.sample_rate_hz)
        cfg = self.config
        self.deadline_ns = int(cfg.deadline_us * 1000) if cfg.deadline_us else self.period_ns
        self.chain_slack_ns = int(cfg.chain_slack_fraction * self.period_ns)
        if cfg.channels is None:
            self.predicted = np.arange(self.channels)
        else:
            bad = [c for c in cfg.channels if not 0 <= c < self.channels]
            if bad:
                raise ValueError(f"channel(s) {bad} do not exist: the stream has channels 0..{self.channels - 1}")
            self.predicted = np.array(sorted(set(cfg.channels)), np.intp)
        self.all_predicted = len(self.predicted) == self.channels
        self.repeated = np.array([c for c in range(self.channels) if c not in set(self.predicted.tolist())], np.intp)
        self.ring = ContextRing(self.channels, self.frames, cfg.ring_slots)
        self._replacement = np.zeros((2, self.frames, self.channels), np.float32)  # [block][frame][channel]
        self._played_cf = np.zeros((self.channels, self.frames), np.float32)
        self._fade_cf = np.zeros((self.channels, self.frames), np.float32)
        self._infer_guard_ns = 0
        #: the guard never exceeds a quarter of the budget: a prediction is always tried when at
        #: least a quarter of the time is left (the post-inference check still refuses to post late)
        self._max_guard_ns = self.deadline_ns // 4
        self.guard = SampleGuard()
        self._install(predictor)

    # --- model -------------------------------------------------------------------------------------

    def _install(self, predictor: Predictor) -> None:
        """Make ``predictor`` the running model and size the buffers for it (not per block)."""
        if predictor.context_samples > self.ring.capacity_samples:
            raise ValueError(f"model context {predictor.context_samples} exceeds the ring ({self.ring.capacity_samples})")
        self.predictor = predictor
        n = len(self.predicted)
        self._context = np.zeros((n, predictor.context_samples), np.float32)
        self._prediction = np.zeros((n, 2, self.frames), np.float32)
        self.stats.model_version = str(getattr(predictor, "model_version", "?"))

    def swap_model(self, predictor: Predictor, label: str | None = None) -> None:
        """Install another (checked, warmed) predictor between two blocks."""
        self._install(predictor)
        if label:
            self.stats.model_version = label
        self.stats.model_swaps += 1
        self.stats.last_swap_ns = monotonic_ns()

    # --- one prediction ------------------------------------------------------------------------------

    def predict_and_post(self, target_seq: int, origin_ns: int, chained: bool) -> bool:
        """Predict blocks ``target_seq`` and ``target_seq + 1`` and post them for ``target_seq``.

        ``origin_ns`` is the (actual or expected) arrival of block ``target_seq - 1``; the post
        must happen before ``origin_ns + deadline``. Returns whether it was posted.
        """
        stats = self.stats
        deadline = origin_ns + self.deadline_ns
        now = monotonic_ns()
        if now + self._infer_guard_ns > deadline:
            stats.record_miss(now)
            stats.overload_skips += 1
            self._infer_guard_ns = int(self._infer_guard_ns * _GUARD_DECAY)  # a spike must not lock us out
            return False
        predictor = self.predictor
        view = self.ring.context_for(target_seq, predictor.context_samples)
        if self.all_predicted:
            np.copyto(self._context, view)
        else:
            np.take(view, self.predicted, axis=0, out=self._context)
        t0 = monotonic_ns()
        out = predictor.predict(self._context)
        t1 = monotonic_ns()
        infer_ns = t1 - t0
        stats.predictions += 1
        stats.infer_us.record(infer_ns / 1000.0)
        guard_ns = self._infer_guard_ns * _GUARD_DECAY
        guard_ns = max(guard_ns, infer_ns)
        self._infer_guard_ns = int(min(guard_ns, self._max_guard_ns))
        prediction = self._prediction
        np.copyto(prediction, out)
        if not self.guard.check(prediction, self._context):
            stats.rejected_nonfinite = self.guard.rejected_nonfinite
            return False
        stats.limited = self.guard.limited
        replacement = self._replacement
        if self.all_predicted:
            np.copyto(replacement, prediction.transpose(1, 2, 0))
        else:
            for i, ch in enumerate(self.predicted):
                replacement[:, :, ch] = prediction[i]
            newest = self.ring.block(target_seq - 1)
            for ch in self.repeated:
                if newest is None:
                    replacement[:, :, ch] = 0.0
                else:
                    replacement[0, :, ch] = newest[ch]
                    replacement[1, :, ch] = newest[ch]
        # JackTrip refuses a whole replacement with any sample outside [-1, 1] (or non-finite)
        np.clip(replacement, -1.0, 1.0, out=replacement)
        now = monotonic_ns()
        if now > deadline:
            stats.record_miss(now)
            stats.late += 1
            # not posted: JackTrip plays its fallback and then the next block as it came, so the
            # guess fills the context but nothing is cross-faded from its second block
            np.copyto(self._played_cf, replacement[0].T)
            self.ring.put_predicted(target_seq, self._played_cf)
            return False
        self.consumer.post_replacement(target_seq, replacement)
        posted = monotonic_ns()
        stats.posts += 1
        if chained:
            stats.chained_posts += 1
        else:
            stats.e2e_us.record((posted - origin_ns) / 1000.0)
        if posted > deadline:  # posted, but too late to be useful: still a miss
            stats.record_miss(posted)
            stats.late += 1
        np.copyto(self._played_cf, replacement[0].T)
        np.copyto(self._fade_cf, replacement[1].T)
        self.ring.put_predicted(target_seq, self._played_cf, self._fade_cf)
        if self.post_hook is not None:
            self.post_hook(target_seq, replacement)
        return True

    # --- the loop ------------------------------------------------------------------------------------

    def run(self, max_wall_s: float | None = None) -> None:
        """Serve the segment until :attr:`stop` is set or ``max_wall_s`` passes.

        Raises
        ------
        ProducerGone
            The producer closed the segment or its process died.
        """
        consumer, cfg, stats = self.consumer, self.config, self.stats
        period_ns, slack_ns = self.period_ns, self.chain_slack_ns
        written = consumer.blocks_written
        count = max(0, written - self.ring.slots)  # enough history for the first context
        events_seen = consumer.events_written
        newest_seq = -1
        newest_arrival_ns = 0
        chain_depth = 0
        max_chain = cfg.max_chain_blocks
        poll_ns = int(cfg.poll_timeout_s * 1e9)
        now = monotonic_ns()
        end_ns = now + int(max_wall_s * 1e9) if max_wall_s else None
        next_status_ns = now + int(cfg.stats_interval_s * 1e9) if cfg.stats_interval_s else None
        last_block_ns = now
        last_liveness_ns = now
        stop = self.stop
        while not stop.is_set():
            # 1. sleep until a block or the next chain point
            now = monotonic_ns()
            timeout_ns = poll_ns
            if newest_seq >= 0 and chain_depth < max_chain:
                fire = newest_arrival_ns + (chain_depth + 1) * period_ns + slack_ns
                timeout_ns = min(timeout_ns, max(0, fire - now))
            written = consumer.wait_for_blocks(count, timeout_ns / 1e9)
            if written > count:
                # 2. read, 3. predict + post for the newest + 1
                batch = consumer.read_blocks(count, written - count)
                stats.blocks_skipped += batch.skipped
                n = len(batch.seq)
                count = batch.first_index + n
                if stats.blocks == 0 and n:
                    stats.mark_streaming()
                stats.blocks += n
                advanced = False
                for i in range(n):
                    seq = int(batch.seq[i])
                    self.ring.put_received(seq, batch.samples[i])
                    if seq > newest_seq:
                        newest_seq = seq
                        newest_arrival_ns = int(batch.arrival_ns[i])
                        advanced = True
                if advanced:
                    chain_depth = 0
                    self.predict_and_post(newest_seq + 1, newest_arrival_ns, chained=False)
                last_block_ns = monotonic_ns()
            elif consumer.producer_closed:
                raise ProducerGone(f"the producer (PID {consumer.producer_pid}) closed its segment {consumer.name}")
            elif newest_seq >= 0 and chain_depth < max_chain:
                # 4. chain point reached without the expected block: presume it lost
                now = monotonic_ns()
                origin = newest_arrival_ns + (chain_depth + 1) * period_ns
                if now >= origin + slack_ns:
                    chain_depth += 1
                    self.predict_and_post(newest_seq + 1 + chain_depth, origin, chained=True)
            # 5. between blocks
            if consumer.events_written > events_seen:
                events_seen = self._read_events(events_seen)
            if self.watcher is not None:
                ready = self.watcher.take()
                if ready is not None:
                    self.swap_model(ready.predictor, ready.label)
                    log.info("now running model %s", ready.label)
                stats.model_rejects = self.watcher.rejected
            now = monotonic_ns()
            if next_status_ns is not None and now >= next_status_ns:
                self.status(stats.status_line())
                next_status_ns = now + int(cfg.stats_interval_s * 1e9)
            if end_ns is not None and now >= end_ns:
                break
            # idle for 100 ms: beat, and check on the producer (reads /proc: never while streaming)
            if now - last_block_ns > 100_000_000 and now - last_liveness_ns > 100_000_000:
                last_liveness_ns = now
                consumer.heartbeat()
                if not consumer.producer_alive():
                    raise ProducerGone(f"the producer (PID {consumer.producer_pid}) of {consumer.name} is no longer running")

    def _read_events(self, start: int) -> int:
        """Count JackTrip's reports since event index ``start``; returns the next index."""
        events, skipped = self.consumer.read_events(start, 1024)
        stats = self.stats
        next_index = start + skipped
        for e in events:
            next_index = e.index + 1
            if not stats.count_event(e) and e.kind == EventKind.CONSUMER_LOST:
                log.warning("JackTrip reports that it lost this consumer at seq %d (we were too slow or stalled)", e.seq)
        if skipped:
            log.warning("%d events were overwritten before they were read", skipped)
        return max(next_index, start)
