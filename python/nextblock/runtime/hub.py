"""The live loop for every stream of a producer process, on one thread.

:class:`HubLoop` serves the segments a :class:`~nextblock.runtime.discovery.StreamSource` names
(all streams of a JackTrip process, or one named segment), and does, until asked to stop:

1. **Discover** (every ``scan_interval_s``): attach to new segments (a client joined, or a new
   client reuses a port: a new segment under the same name), let go of those that left (closed
   by their producer, or the producer died), without touching the others.
2. **Read** every stream's new blocks, events and play-out clock (:meth:`ServedStream.poll`).
3. **Decide** per stream (:class:`~nextblock.runtime.schedule.StreamSchedule`): just-in-time
   streams predict only a block that has not arrived shortly before it is due; speculative
   streams predict after every block. Decisions due within ``batch_window_us`` are taken now, so
   that predictions of several streams meet.
4. **Predict** all of them in **one model call** (rows = the channels of every stream in the
   batch), unless a deadline is already closer than the recent inference peak (that prediction
   is skipped: JackTrip's fallback plays – never a late post). Each stream then checks, clips and
   posts its rows.
5. **Fill from both sides** (:mod:`~nextblock.runtime.lookahead`): where a block after a missing
   one arrived before the missing one is played, fill the gap from both sides and re-post its
   slots (after the causal predictions: those are the safety net).
6. **Sleep** until the earliest decision time of any stream (GIL released). A speculative stream
   also wakes the loop when its block arrives (the segment's futex), and so does a stream whose
   missing block may still be filled from both sides, and a just-in-time stream when a block
   arrives after a missing one (the producer's gap wake); with several such streams and no
   ``futex_waitv`` the loop polls at an eighth of a period.
7. Between blocks: heartbeats, dead-producer checks, model hot-swap, status lines.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import _core
from ..capture import SegmentError, monotonic_ns
from .collector import freeze_survivors, thaw_survivors
from .discovery import StreamSource
from .errors import AttachError, ProducerGone
from .geometries import Geometries, geometry_of
from .lookahead import MAX_GAP_BLOCKS, measure_fill, resolve_fill
from .modelwatch import ModelWatcher
from .predictors import Predictor, check_stream_compatible
from .schedule import JUST_IN_TIME, SPECULATIVE, Action, ScheduleConfig
from .served import ServedStream
from .stats import HubStats
from .warmth import KeepWarm

log = logging.getLogger("nextblock.attach")

#: the inference guard (recent peak) decays by this factor per prediction or skip
_GUARD_DECAY = 0.95
#: ``jit_wake="auto"`` uses the missing-block wake while the just-in-time streams together lose
#: fewer blocks than this per pull (measured on 16 streams at 5 % loss, 0.8 per pull: the timed
#: wait replaced 100 % against 99.4 % with the missing-block wake, at 0.19 against 0.21 of a core)
MISSING_WAKE_MAX_LOSSES_PER_PULL = 0.1


@dataclass
class HubConfig:
    """How the multi-stream loop behaves (all optional).

    Attributes
    ----------
    schedule : ScheduleConfig
        Per-stream deadline rules (modes, margins, chaining).
    batch_window_us : float
        Decisions due within this long are taken together (one model call). Default 300 µs.
    scan_interval_s : float
        How often the producer's streams are listed (a directory scan; a joining client waits at
        most this long, its events are counted from its start). Default 0.5 s.
    poll_timeout_s : float
        Longest sleep between two passes of the Python loop: bounds the reaction to stop requests
        (the per-block work and the heartbeats meanwhile run in C++). Default 0.5 s.
    stats_interval_s : float | None
        Print status lines this often; ``None``: never.
    initial_budget_us : float | None
        Inference time assumed before any prediction was measured (default: measured at start,
        one cold call).
    max_budget_fraction : float
        The inference guard never exceeds this fraction of a period in speculative decisions
        (a prediction is tried when at least that much time is left). Default 0.25.
    max_rows_per_call : int
        Larger batches are split (earliest deadline first) so that one long model call does not
        hold up the most urgent predictions. Default 8 (four stereo streams).
    freeze_gc : bool
        Keep Python's garbage collector off the deadlines (:mod:`~nextblock.runtime.collector`):
        everything alive once serving starts, and after a stream joins or a model swap, is
        exempted from later collections until :meth:`HubLoop.run` returns. Default on; off only to
        measure what it saves.
    jit_wake : str
        How just-in-time streams wait. ``"missing"``: until the producer reports an upcoming block
        missing (its missing-block wake), no wake-up while blocks arrive, but a missing block is
        decided only at the pull ``lookahead`` blocks before it is due, stream by stream.
        ``"timed"``: a wake-up before every block period, at the decision time, the streams'
        decisions aligned so that they share a batch, with up to ``slack_low - tolerance`` of room.
        ``"auto"`` (default): the missing-block wake while losses at the same pull are rare (the
        just-in-time streams' loss shares add up to less than ``MISSING_WAKE_MAX_LOSSES_PER_PULL``),
        else timed: then the wake-ups are paid by the losses anyway and the batches are worth more.
    keep_warm : str
        ``"auto"`` (default): while cold predictions miss their deadlines, run a throw-away
        prediction every ``keep_warm_interval_ms`` when nothing else was predicted
        (:class:`~nextblock.runtime.warmth.KeepWarm`); ``"on"``: always; ``"off"``: never.
    keep_warm_interval_ms, keep_warm_hold_s : float
        Its interval (default 4 ms) and, for ``auto``, how long it lasts after the misses (10 s).
    lookahead : str
        ``"auto"`` (default): where the block after a missing one arrives before the missing one
        is played, re-post its replacement filled from both sides
        (:mod:`~nextblock.runtime.lookahead`); ``"off"``: causal replacements only.
    """

    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    batch_window_us: float = 300.0
    scan_interval_s: float = 0.5
    poll_timeout_s: float = 0.5
    stats_interval_s: float | None = None
    initial_budget_us: float | None = None
    max_budget_fraction: float = 0.25
    max_rows_per_call: int = 8
    jit_wake: str = "auto"
    freeze_gc: bool = True
    keep_warm: str = "auto"
    keep_warm_interval_ms: float = 4.0
    keep_warm_hold_s: float = 10.0
    lookahead: str = "auto"


class HubLoop:
    """Serves every stream that ``source`` names, batched: one predictor per stream geometry.

    Parameters
    ----------
    source:
        Which segments to serve (:class:`~nextblock.runtime.discovery.StreamSource`).
    predictor:
        Checked and warmed; takes ``(rows, context)`` batches of any row count. Serves the
        streams of its own block size and rate.
    predictor_for:
        ``predictor_for(frames_per_block, sample_rate_hz)`` builds (on a background thread,
        :class:`~nextblock.runtime.geometries.Geometries`) the predictor for streams of another
        geometry, e.g. :func:`~nextblock.runtime.stack.build_stream_stack`; ``None``: streams of
        another geometry are refused with the reason.
    config:
        :class:`HubConfig`.
    stats:
        Totals across streams and re-attaches (:class:`HubStats`), shared with the caller.
    watcher:
        Source of hot-swapped models, or ``None``.
    stop:
        Set it to end :meth:`run` within ``poll_timeout_s``.
    status:
        Called with each status line.
    check_stream:
        Called with each new :class:`ServedStream` before it is served; raises
        :class:`AttachError` to refuse it (e.g. a block size the model cannot serve).
    post_hook:
        Test hook: called as ``post_hook(seq, replacement)`` after each post, off the deadline
        (``replacement`` ``(2, frames, channels)``, valid during the call only).
    """

    def __init__(
        self,
        source: StreamSource,
        predictor: Predictor,
        config: HubConfig | None = None,
        stats: HubStats | None = None,
        watcher: ModelWatcher | None = None,
        stop: threading.Event | None = None,
        status: Callable[[str], None] | None = None,
        check_stream: Callable[[ServedStream], None] | None = None,
        channels: tuple[int, ...] | None = None,
        exit_when_gone: bool = False,
        gone_timeout_s: float | None = None,
        post_hook: Callable[[int, np.ndarray], None] | None = None,
        predictor_for: Callable[[int, int], Predictor] | None = None,
    ):
        self.source = source
        self.config = config or HubConfig()
        if self.config.jit_wake not in ("auto", "missing", "timed"):
            raise ValueError(f"jit_wake must be 'auto', 'missing' or 'timed', got {self.config.jit_wake!r}")
        self.stats = stats if stats is not None else HubStats()
        self.watcher = watcher
        self.stop = stop or threading.Event()
        self.status = status or (lambda line: log.info("%s", line))
        self.check_stream = check_stream
        self.channels = channels
        self.exit_when_gone = exit_when_gone
        self.gone_timeout_s = gone_timeout_s
        self.post_hook = post_hook
        self._seen: set[str] = set()
        self._logged: set[tuple[str, str]] = set()
        self._refused: dict[str, int | None] = {}  # segment name -> creation time of the refused one
        self.streams: dict[str, ServedStream] = {}
        self._buffers: dict[tuple, np.ndarray] = {}  # batch and prediction buffers per shape (geometry)
        self._concealed = np.zeros(0, np.int64)  # per batch row: samples of the context we concealed
        self._guard_ns = int((self.config.initial_budget_us or 0) * 1000)
        self._guard_cap_ns = 10**12
        self._fill = resolve_fill(self.config.lookahead)
        self.stats.lookahead = "auto" if self._fill is not None else "off"
        # one cold fill, once: the first time guard of every stream's two-sided fills
        self._fill_guard_ns = measure_fill(self._fill) if self._fill is not None else None
        self.warmth = KeepWarm(self.config.keep_warm, self.config.keep_warm_interval_ms, self.config.keep_warm_hold_s)
        self.stats.keep_warm = self.warmth  # its counts go into the final statistics
        self._shared_early_ns: int | None = None
        self._freeze_due = True  # long-lived objects were created: exempt them from collections
        self._frozen = False
        self.geometries = Geometries(predictor, predictor_for)
        self._install(predictor)
        if self.config.initial_budget_us is None:
            self._guard_ns = self._measure_cold_ns()
        self._budget_cap_ns = 2 * max(self._guard_ns, 100_000)

    # --- model ----------------------------------------------------------------------------------

    def _install(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.stats.model_version = str(getattr(predictor, "model_version", "?"))
        primary = geometry_of(predictor)
        for st in self.streams.values():
            if (st.frames, st.sample_rate_hz) == primary or self.geometries.build is None:
                check_stream_compatible(predictor, st.frames, st.sample_rate_hz)
                st.predictor = predictor
        self._update_keep_warm()

    def _update_keep_warm(self) -> None:
        """The throw-away prediction (KeepWarm) of every geometry's predictor that has one."""
        warms = [w for w in (getattr(p, "keep_warm", None) for p in self.geometries.predictors()) if w is not None]
        if len(warms) <= 1:
            self._keep_warm = warms[0] if warms else None
        else:

            def keep_warm() -> None:
                for warm in warms:
                    warm()

            self._keep_warm = keep_warm

    def _take_built(self) -> None:
        """Predictors built for other geometries (a joining stream, a hot-swap) are installed."""
        ready = self.geometries.take_ready()
        if not ready:
            return
        for st in self.streams.values():
            if (st.frames, st.sample_rate_hz) in ready:
                st.predictor = self.geometries.get((st.frames, st.sample_rate_hz))
                st.stats.model_choice = getattr(st.predictor, "description", "") or st.stats.model_choice
        self._update_keep_warm()
        self._freeze_due = True

    def _measure_cold_ns(self) -> int:
        """One prediction after a 20 ms sleep (cold caches), as a first inference budget."""
        ctx = np.zeros((2, self.predictor.context_samples), np.float32)
        time.sleep(0.02)
        t0 = monotonic_ns()
        self.predictor.predict(ctx)
        cold = monotonic_ns() - t0
        self.stats.cold_infer_us_at_start = cold / 1000.0
        return cold

    def swap_model(self, predictor: Predictor, label: str | None = None) -> None:
        """Install another (checked, warmed) predictor between two batches."""
        self.geometries.swap(predictor)
        self._install(predictor)
        self._freeze_due = True
        if label:
            self.stats.model_version = label
        self.stats.model_swaps += 1
        self.stats.last_swap_ns = monotonic_ns()

    def budget_ns(self) -> int:
        """What the next prediction may take: the recent inference peak (decaying)."""
        return self._guard_ns

    # --- streams --------------------------------------------------------------------------------

    def _scan(self, now: int) -> None:
        cfg_fraction = self.config.max_budget_fraction
        names = self.source.segments()
        for name in names:
            current = self.streams.get(name)
            if current is not None:
                continue
            try:
                consumer = self.source.attach(name)
                if consumer is None:
                    continue
                if self._refused.get(name) == consumer.geometry.get("created_unix_ns"):
                    consumer.close()  # refused before: same segment, same reason
                    continue
                try:
                    predictor = self._predictor_for(consumer)
                    if predictor is None:  # being built for this geometry: attach at a later scan
                        consumer.close()
                        continue
                    st = ServedStream(
                        consumer,
                        self.config.schedule,
                        predictor.context_samples,
                        channels=self.channels,
                        post_hook=self.post_hook,
                        fill=self._fill,
                        fill_guard_ns=self._fill_guard_ns,
                    )
                    st.predictor = predictor
                    st.stats.model_choice = getattr(predictor, "description", "")
                    check_stream_compatible(predictor, st.frames, st.sample_rate_hz, what="the model")
                    if self.check_stream is not None:
                        self.check_stream(st)
                except ValueError as err:
                    self._refused[name] = consumer.geometry.get("created_unix_ns")
                    consumer.close()
                    raise AttachError(f"--channels: {err}") from None
                except AttachError:
                    self._refused[name] = consumer.geometry.get("created_unix_ns")
                    consumer.close()
                    raise
            except SegmentError as err:
                log.debug("not attaching to %s yet: %s", name, err)
                continue
            except AttachError as err:
                if not self.stats.streams_joined:
                    raise  # nothing served yet: a setup error, exit with its message
                # a later client that cannot be served must not stop the others
                if (name, str(err)) not in self._logged:
                    self._logged.add((name, str(err)))
                    log.error("not serving %s: %s", name, err)
                continue
            self.streams[name] = st
            self._freeze_due = True
            self._guard_cap_ns = int(cfg_fraction * min(s.period_ns for s in self.streams.values()))
            self.stats.joined(st)
            if name in self._seen and getattr(self.source, "rejoin_is_reattach", False):
                self.stats.reattaches += 1
                log.info("re-attached to %s (PID %d)", name, consumer.producer_pid)
            self._seen.add(name)
            log.info(
                "serving %s (%s%s): %d Hz, %d frames/block, %d channels",
                name,
                st.identity["name"],
                f", peer {st.identity['peer']}" if st.identity["peer"] else "",
                st.sample_rate_hz,
                st.frames,
                st.channels,
            )
        for name, st in list(self.streams.items()):
            reason = None
            if st.consumer.producer_closed:
                reason = "its producer closed the segment"
            elif name not in names or now - st.last_block_ns > 100_000_000:
                if not st.consumer.producer_alive():
                    reason = "its producer is no longer running"
            if reason is not None:
                self._drop(name, reason)

    def _predictor_for(self, consumer) -> Predictor | None:
        """The predictor for a new stream's geometry (``None``: being built); the primary one
        (checked, so refused with its reason) when no other geometry can be built."""
        geometry = (int(consumer.frames_per_block), int(consumer.sample_rate_hz))
        if self.geometries.build is None:
            return self.predictor
        return self.geometries.get(geometry)

    def _drop(self, name: str, reason: str) -> None:
        st = self.streams.pop(name)
        st.poll(monotonic_ns())  # the last events
        st.close(reason)
        self.stats.left(st)
        log.info("let go of %s (%s): %s", name, st.identity["name"], reason)

    def close(self) -> None:
        """Detach from every stream (gives the poster roles back)."""
        for name in list(self.streams):
            self._drop(name, "NextBlock stopped")

    # --- one batch ------------------------------------------------------------------------------

    def _predict(self, actions: list) -> None:
        """Predict and post ``actions`` ((stream, Action) pairs): streams of one geometry together
        (one predictor), the geometry with the earliest deadline first."""
        first = actions[0][0].predictor
        if all(st.predictor is first for st, _ in actions):
            self._predict_geometry(actions)
            return
        groups: dict[int, list] = {}
        for st, action in sorted(actions, key=lambda pair: pair[1].deadline_ns):
            groups.setdefault(id(st.predictor), []).append((st, action))
        for group in groups.values():
            self._predict_geometry(group)

    def _predict_geometry(self, actions: list) -> None:
        """``actions`` of streams that share a predictor: earliest deadline first, in model calls
        of at most ``max_rows_per_call`` rows, each call re-checking its deadlines."""
        if sum(st.rows for st, _ in actions) <= self.config.max_rows_per_call:
            self._predict_batch(actions)
            return
        actions = sorted(actions, key=lambda pair: pair[1].deadline_ns)
        chunk, rows = [], 0
        for st, action in actions:
            if chunk and rows + st.rows > self.config.max_rows_per_call:
                self._predict_batch(chunk)
                chunk, rows = [], 0
            chunk.append((st, action))
            rows += st.rows
        if chunk:
            self._predict_batch(chunk)

    def _predict_batch(self, actions: list) -> None:
        now = monotonic_ns()
        # a prediction is always tried when at least max_budget_fraction of a period is left (the
        # post-inference check still refuses to post late)
        guard = min(self._guard_ns, self._guard_cap_ns)
        keep = []
        for st, action in actions:
            if st.lookahead.filled(action.seq):  # filled from both sides already: keep that one
                st.schedule.done(action.seq)
                continue
            if now + guard > action.deadline_ns:
                st.skip(action, now)
                self.warmth.note_decision(True, now)
                st.schedule.done(action.seq)
                self._guard_ns = int(self._guard_ns * _GUARD_DECAY)  # a spike must not lock us out
            else:
                keep.append((st, action))
        if not keep:
            return
        predictor = keep[0][0].predictor
        ctx_len = predictor.context_samples
        rows = sum(st.rows for st, _ in keep)
        batch = self._buffer(rows, (ctx_len,))
        takes_concealed = getattr(predictor, "takes_concealed_samples", False)
        if takes_concealed and self._concealed.shape[0] < rows:
            self._concealed = np.zeros(max(rows, 2 * self._concealed.shape[0]), np.int64)
        r = 0
        for st, action in keep:
            st.context_into(action.seq, batch[r : r + st.rows])
            if takes_concealed:  # how much of each context's end is our own guess (a burst)
                self._concealed[r : r + st.rows] = st.concealed_samples_before(action.seq, ctx_len)
            r += st.rows
        t0 = monotonic_ns()
        out = predictor.predict(batch, self._concealed[:rows]) if takes_concealed else predictor.predict(batch)
        infer_ns = monotonic_ns() - t0
        self.warmth.note_prediction(t0 + infer_ns)
        stats = self.stats
        stats.batches += 1
        stats.batched_rows += rows
        stats.infer_us.record(infer_ns / 1000.0)
        self._guard_ns = int(max(self._guard_ns * _GUARD_DECAY, infer_ns))
        prediction = self._buffer(rows, (2, out.shape[2]))
        np.copyto(prediction, out[:rows])
        r = 0
        for st, action in keep:
            st.stats.predictions += 1
            stats.predictions += 1
            misses = st.stats.deadline_misses
            st.post(action, prediction[r : r + st.rows], batch[r : r + st.rows])
            self.warmth.note_decision(st.stats.deadline_misses != misses, t0 + infer_ns)
            st.schedule.done(action.seq)
            r += st.rows

    def _buffer(self, rows: int, shape: tuple[int, ...]) -> np.ndarray:
        """``(rows, *shape)`` float32 rows of a buffer kept per shape (grown, never shrunk)."""
        buf = self._buffers.get(shape)
        if buf is None or buf.shape[0] < rows:
            buf = np.zeros((max(rows, 2 * (buf.shape[0] if buf is not None else 1)), *shape), np.float32)
            self._buffers[shape] = buf
        return buf[:rows]

    # --- the loop -------------------------------------------------------------------------------

    def run(self, max_wall_s: float | None = None) -> None:
        """Serve until :attr:`stop` is set or ``max_wall_s`` passes.

        Raises
        ------
        ProducerGone
            The source says its producer is gone for good (``--once``: JackTrip exited).
        AttachError
            A new stream cannot be served (e.g. its block size differs from the model's).
        """
        with self.stats.collector:  # counts Python's garbage collections while serving
            try:
                self._serve(max_wall_s)
            finally:
                if self._frozen:
                    thaw_survivors()
                    self._frozen = False

    def _serve(self, max_wall_s: float | None) -> None:
        cfg = self.config
        stats = self.stats
        poll_ns = int(cfg.poll_timeout_s * 1e9)
        scan_ns = int(cfg.scan_interval_s * 1e9)
        window_ns = int(cfg.batch_window_us * 1000)
        now = monotonic_ns()
        end_ns = now + int(max_wall_s * 1e9) if max_wall_s else None
        next_status_ns = now + int(cfg.stats_interval_s * 1e9) if cfg.stats_interval_s else None
        next_scan_ns = now
        next_beat_ns = now
        gone_since = None
        woke_ns = now
        stop = self.stop
        while not stop.is_set():
            now = monotonic_ns()
            if now >= next_scan_ns:
                self._take_built()
                self._scan(now)
                next_scan_ns = now + scan_ns
                if self._freeze_due and cfg.freeze_gc and self.streams:
                    freeze_survivors()
                    self._freeze_due = False
                    self._frozen = True
                if not self.streams and self.source.gone():
                    if gone_since is None:
                        gone_since = now
                        if not self.exit_when_gone:
                            log.warning("%s; waiting for it to come back (Ctrl-C to stop)", self.source.gone_reason())
                    if self.exit_when_gone or (
                        self.gone_timeout_s is not None and now - gone_since > self.gone_timeout_s * 1e9
                    ):
                        raise ProducerGone(self.source.gone_reason())
                else:
                    gone_since = None
            # read, decide. The decision budget is the recent inference peak, but never more than twice
            # a cold 2-row call: a large batch (many streams at once, e.g. while they all start
            # speculative) must not make every stream look too slow for just-in-time.
            budget = min(self._guard_ns, self._budget_cap_ns)
            max_speculative = int(
                cfg.max_budget_fraction * min((st.period_ns for st in self.streams.values()), default=0)
            )
            actions = []
            wake = now + poll_ns
            block_waiters = []
            closed = []
            shared_early = self._shared_early_ns
            self._shared_early_ns = None
            for name, st in self.streams.items():
                st.poll(now)
                if st.consumer.producer_closed:
                    closed.append(name)
                    continue
                schedule = st.schedule
                mode = schedule.update_mode(now, budget)
                if mode == JUST_IN_TIME:  # decide every stream's block of one callback together
                    early = schedule.early_lead_ns()
                    self._shared_early_ns = (
                        early if self._shared_early_ns is None else min(self._shared_early_ns, early)
                    )
                    schedule.shared_early_ns = shared_early
                action = schedule.next_action(
                    now + window_ns, st.received, budget if mode == JUST_IN_TIME else min(budget, max_speculative)
                )
                if action is not None:
                    actions.append((st, action))
                elif schedule.wake_ns is not None:
                    wake = min(wake, schedule.wake_ns)
                if mode == SPECULATIVE:
                    block_waiters.append(st)
            for name in closed:
                self._drop(name, "its producer closed the segment")
            while actions:
                self._predict(actions)
                # the streams just served may have another decision due already (a chain, a late
                # decision); the others were asked this pass, and the waiter notices new blocks
                acted, actions = actions, []
                decide_ns = monotonic_ns() + window_ns
                for st, _ in acted:
                    schedule = st.schedule
                    jit = schedule.mode == JUST_IN_TIME
                    action = schedule.next_action(
                        decide_ns, st.received, budget if jit else min(budget, max_speculative)
                    )
                    if action is not None:
                        actions.append((st, action))
                    elif schedule.wake_ns is not None:
                        wake = min(wake, schedule.wake_ns)
            # the blocks after a gap are here: re-post the gap filled from both sides (the causal
            # replacements of this pass are posted already)
            if self._fill is not None:
                self._fill_gaps()
            # between blocks
            if self.watcher is not None:
                ready = self.watcher.take()
                if ready is not None:
                    self.swap_model(ready.predictor, ready.label)
                    log.info("now running model %s", ready.label)
                stats.model_rejects = self.watcher.rejected
            if now >= next_beat_ns:  # tell every producer we are alive even when nothing is posted
                for st in self.streams.values():
                    st.consumer.heartbeat()
                next_beat_ns = now + 200_000_000
            if next_status_ns is not None and now >= next_status_ns:
                for line in self.status_lines():
                    self.status(line)
                next_status_ns = now + int(cfg.stats_interval_s * 1e9)
            if end_ns is not None and now >= end_ns:
                break
            # sleep until the earliest decision (or a block, for speculative streams)
            wake = min(wake, next_scan_ns)
            if next_status_ns is not None:
                wake = min(wake, next_status_ns)
            if end_ns is not None:
                wake = min(wake, end_ns)
            timeout_ns = wake - monotonic_ns()
            if timeout_ns <= 0:
                continue
            until_ns = min(next_scan_ns, now + poll_ns)
            if self.streams and self._keep_warm is not None:  # cold predictions missed: keep the path warm
                warmth = self.warmth
                warmth.maybe_run(self._keep_warm, monotonic_ns(), monotonic_ns)
                warm_due = warmth.due_ns(monotonic_ns())
                if warm_due is not None:
                    until_ns = min(until_ns, warm_due)
            if next_status_ns is not None:
                until_ns = min(until_ns, next_status_ns)
            if end_ns is not None:
                until_ns = min(until_ns, end_ns)
            items = []
            block_wait = -1
            missing_wake = self._use_missing_wake()
            if missing_wake:
                stats.missing_wake_sleeps += 1
            t = monotonic_ns()
            # a stream whose missing block may still be filled from both sides waits for its blocks
            watch = {name: st.lookahead.watch_until_ns(t) for name, st in self.streams.items()} if self._fill else {}
            waiters = len(block_waiters)
            if watch:
                waiters += sum(
                    1
                    for name, st in self.streams.items()
                    if watch[name] is not None and st.schedule.mode == JUST_IN_TIME
                )
            for name, st in self.streams.items():
                schedule = st.schedule
                watch_ns = watch.get(name)
                jit = schedule.mode == JUST_IN_TIME and watch_ns is None
                if not jit and waiters == 1:
                    block_wait = len(items)
                schedule.missing_wake = jit and missing_wake
                own_wake = schedule.wake_ns or 0
                if watch_ns is not None:
                    own_wake = min(own_wake, watch_ns) if own_wake else watch_ns
                items.append(
                    (
                        st.tap,
                        jit,
                        schedule.handled_seq,
                        schedule.decision_lead_ns(budget) if jit else 0,
                        0 if jit else own_wake,
                        st.period_ns,
                        schedule.stale_ns,
                        schedule.config.max_chain_blocks,
                        schedule.lookahead_blocks(budget) if jit and missing_wake else 0,
                        # the block after a missing one wakes us (the producer's gap wake): the loss
                        # is known then, while the missing block is still queued, not only at its
                        # decision time; the two-sided fill needs that time
                        jit and self._fill is not None,
                    )
                )
            stats.sleeps += 1
            stats.awake_ns += monotonic_ns() - woke_ns
            if items:  # sleeps in C++ (GIL released), waking only when a stream needs a decision
                _core.wait_for_decision(items, until_ns, window_ns, block_wait)
            else:
                time.sleep(max(0, until_ns - monotonic_ns()) / 1e9)
            woke_ns = monotonic_ns()

    def _fill_gaps(self) -> None:
        """Where blocks arrived after a gap: the gap's causal predictions not made yet (the block
        after it came before their decision time) now where they and the fill both fit, one block
        per stream per model call so that a burst chains, then every such gap filled from both
        sides and re-posted."""
        waiting = [st for st in self.streams.values() if st.new_blocks]
        predict_ns = min(self._guard_ns, self._budget_cap_ns)
        for _ in range(MAX_GAP_BLOCKS):
            early = []
            t = monotonic_ns()
            for st in waiting:
                seq = st.lookahead.undecided(t, predict_ns)
                if seq is not None:
                    early.append(
                        (
                            st,
                            Action(
                                seq,
                                st.schedule.due_ns(seq) - st.schedule.post_margin_ns,
                                chained=not st.received(seq - 1),
                            ),
                        )
                    )
            if not early:
                break
            self._predict(early)
        t = monotonic_ns()
        for st in waiting:
            st.new_blocks = False
            st.lookahead.after_blocks(t)

    def _use_missing_wake(self) -> bool:
        """Whether just-in-time streams sleep on the missing-block wake now (``HubConfig.jit_wake``)."""
        mode = self.config.jit_wake
        if mode != "auto":
            return mode == "missing"
        losses_per_pull = 0.0
        for st in self.streams.values():
            if st.schedule.mode == JUST_IN_TIME:
                s = st.stats
                losses_per_pull += s.underruns / max(s.blocks + s.underruns, 1)
        return losses_per_pull < MISSING_WAKE_MAX_LOSSES_PER_PULL

    def status_lines(self) -> list[str]:
        """The totals line, then one line per stream."""
        lines = [self.stats.status_line(self.streams.values())]
        lines += ["  " + st.status_line() for st in self.streams.values()]
        return lines
