"""Counters and latency distributions of the live predictor, and how they are shown.

Recording is allocation-free (a histogram increment and a ring write); percentiles are computed
only when the status line or the final JSON asks for them.

* :class:`LatencyHistogram` – microsecond latencies: a 1-µs-resolution histogram over the whole
  run (exact median/p99 up to its range) plus a ring of the newest values (the status line's
  "recent" window).
* :class:`RuntimeStats` – everything ``--stats`` prints and ``--json`` writes.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from .collector import CollectorPauses


class LatencyHistogram:
    """Latencies in microseconds.

    Parameters
    ----------
    max_us:
        Histogram range; larger values land in the last bin (reported as ``>= max_us``).
    recent:
        Size of the ring of newest values used by :meth:`recent_percentiles`.
    """

    def __init__(self, max_us: int = 100_000, recent: int = 4096):
        self._bins = np.zeros(int(max_us) + 1, np.int64)
        self._max_us = int(max_us)
        self._recent = np.zeros(int(recent), np.float64)
        self._recent_n = 0
        self.count = 0
        self.max_seen_us = 0.0

    def record(self, value_us: float) -> None:
        """Add one latency (µs, >= 0)."""
        i = int(value_us)
        if i > self._max_us:
            i = self._max_us
        elif i < 0:
            i = 0
        self._bins[i] += 1
        self._recent[self._recent_n % self._recent.shape[0]] = value_us
        self._recent_n += 1
        self.count += 1
        self.max_seen_us = max(self.max_seen_us, value_us)

    def percentiles(self, qs: tuple[float, ...] = (50.0, 99.0)) -> list[float | None]:
        """Whole-run percentiles (µs, 1-µs resolution, bin centre); ``None`` when empty."""
        if self.count == 0:
            return [None for _ in qs]
        cumulative = np.cumsum(self._bins)
        out = []
        for q in qs:
            rank = max(1, int(np.ceil(q / 100.0 * self.count)))
            out.append(float(np.searchsorted(cumulative, rank)) + 0.5)
        return out

    def recent_percentiles(self, qs: tuple[float, ...] = (50.0, 99.0)) -> list[float | None]:
        """Percentiles of the newest ``recent`` values (µs); ``None`` when empty."""
        n = min(self._recent_n, self._recent.shape[0])
        if n == 0:
            return [None for _ in qs]
        return [float(v) for v in np.percentile(self._recent[:n], qs)]


@dataclasses.dataclass
class RuntimeStats:
    """What the live predictor counts. All counters are since start (across re-attaches).

    Attributes
    ----------
    blocks : int
        Blocks read from the segment.
    blocks_skipped : int
        Blocks the ring overwrote before we read them (we were descheduled > ring length).
    underruns : int
        Concealments JackTrip reported: UNDERRUN events, and the SKIP glitches of its Regulator
        (``--bufstrategy 3``), each with an outcome.
    replacements_used : int
        Of those, the ones with outcome REPLACEMENT (our block was played).
    fallbacks : int
        Of those, the ones with outcome FALLBACK (JackTrip's own concealment played).
    fallbacks_late, fallbacks_skipped, fallbacks_unseen, fallbacks_after_post : int
        ``fallbacks`` by why there was no replacement (:meth:`~nextblock.runtime.served.ServedStream.explain_fallback`):
        predicted too late, not started for lack of time, never known missing in time (a late
        wake-up, a block that came late, an outage beyond the longest chain), or posted in time
        and still not played (a wrong deadline; 0 when the timing is right).
    refused : int
        Of those, the ones with outcome REFUSED (a replacement was posted but the producer found a
        non-finite or out-of-range sample in it and played its fallback).
    two_sided : int
        Of ``replacements_used``, those filled from both sides: the block after the gap had arrived
        and the replacement was re-posted with it (:mod:`~nextblock.runtime.lookahead`).
    one_sided_no_later_block, one_sided_burst_too_long, one_sided_too_late, one_sided_off : int
        The rest of ``replacements_used`` (causal only), by why: no later block arrived in time,
        more than four blocks missing in a row, a later block came but too close to the deadline to
        compute and post the fill, ``--lookahead off``.
    two_sided_posts : int
        Slots re-posted with a two-sided fill.
    predictions : int
        Model calls.
    posts : int
        Replacements posted (in time).
    chained_posts : int
        Of ``posts``, those for a block after a presumed-lost one (burst losses).
    late : int
        Predictions finished after their deadline and therefore not posted (deadline misses).
    overload_skips : int
        Predictions not even started because the remaining time was shorter than the recent
        inference peak (degraded to fallback on purpose).
    rejected_nonfinite, limited : int
        From :class:`~nextblock.runtime.guard.SampleGuard`.
    model_swaps, model_rejects : int
        Hot-swaps done and published models refused.
    reattaches : int
        Times the producer went away and we attached again.
    last_swap_ns : int
        ``monotonic_ns`` when the newest hot-swap was done (0: none).
    model_version : str
        The running model.
    model_choice : str
        Which model serves the stream and how (name, version, block size, rate, model calls per
        prediction; :meth:`nextblock.model.adapters.HorizonBlocks.describe`), "" for a stand-in.
    miss_times_ns : np.ndarray, ``(256,)`` int64
        ``monotonic_ns`` of the newest deadline misses (ring; see :meth:`record_miss`).
    """

    blocks: int = 0
    blocks_skipped: int = 0
    underruns: int = 0
    replacements_used: int = 0
    fallbacks: int = 0
    fallbacks_late: int = 0
    fallbacks_skipped: int = 0
    fallbacks_unseen: int = 0
    fallbacks_after_post: int = 0
    fallbacks_before_attach: int = 0
    fallbacks_outage: int = 0
    fallbacks_dropped_received: int = 0
    cover_posts: int = 0
    cover_used: int = 0
    refused: int = 0
    two_sided: int = 0
    one_sided_no_later_block: int = 0
    one_sided_burst_too_long: int = 0
    one_sided_too_late: int = 0
    one_sided_off: int = 0
    two_sided_posts: int = 0
    predictions: int = 0
    posts: int = 0
    chained_posts: int = 0
    late: int = 0
    overload_skips: int = 0
    rejected_nonfinite: int = 0
    limited: int = 0
    model_swaps: int = 0
    model_rejects: int = 0
    reattaches: int = 0
    last_swap_ns: int = 0
    model_version: str = ""
    model_choice: str = ""
    infer_us: LatencyHistogram = dataclasses.field(default_factory=LatencyHistogram)
    e2e_us: LatencyHistogram = dataclasses.field(default_factory=LatencyHistogram)
    miss_times_ns: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(256, np.int64))
    started_monotonic_s: float = dataclasses.field(default_factory=time.monotonic)
    started_cpu_s: float = dataclasses.field(default_factory=time.process_time)

    def count_event(self, event) -> bool:
        """Count one producer event (:class:`nextblock.capture.Event`): a concealment by what was
        played for it. Returns whether it was a concealment."""
        from ..capture import Outcome

        if not event.is_concealment:  # an UNDERRUN, or the Regulator's SKIP glitch, with its outcome
            return False
        self.underruns += 1
        if event.outcome == Outcome.REPLACEMENT:
            self.replacements_used += 1
        elif event.outcome == Outcome.FALLBACK:
            self.fallbacks += 1
        elif event.outcome == Outcome.REFUSED:
            self.refused += 1
        return True

    def count_fallback(self, reason: str) -> None:
        """Count why a FALLBACK concealment had no replacement: ``"late"``, ``"skipped"``,
        ``"unseen"`` or ``"after_post"`` (the ``fallbacks_*`` counters)."""
        name = f"fallbacks_{reason}"
        setattr(self, name, getattr(self, name) + 1)

    def count_sided(self, how: str) -> None:
        """Count how a REPLACEMENT concealment was made: ``"two_sided"`` or the reason it was
        one-sided (``no_later_block``, ``burst_too_long``, ``too_late``, ``off``)."""
        name = "two_sided" if how == "two_sided" else f"one_sided_{how}"
        setattr(self, name, getattr(self, name) + 1)

    def two_sided_share(self) -> float | None:
        """Share of the concealments played with a two-sided replacement; ``None`` before the first."""
        return self.two_sided / self.underruns if self.underruns else None

    def sided_status(self) -> str:
        """The status line's two-sided part: `` two_sided=N (P%) one_sided=late/burst/none``."""
        share = self.two_sided_share()
        return (
            f" two_sided={self.two_sided}{'' if share is None else f' ({100 * share:.1f}%)'} one_sided(no_later/"
            f"burst/too_late)={self.one_sided_no_later_block}/{self.one_sided_burst_too_long}/"
            f"{self.one_sided_too_late}"
        )

    def mark_streaming(self) -> None:
        """Restart the wall/CPU clocks of :meth:`to_dict`'s ``cpu_share`` at the first block, so
        that model loading and waiting for JackTrip do not dilute or inflate it."""
        self.started_monotonic_s = time.monotonic()
        self.started_cpu_s = time.process_time()

    def record_miss(self, now_ns: int) -> None:
        """Remember when a deadline was missed (ring of the newest 256, for diagnosis and tests)."""
        self.miss_times_ns[self.deadline_misses % self.miss_times_ns.shape[0]] = now_ns

    @property
    def deadline_misses(self) -> int:
        """Predictions that could not be posted in time: ``late + overload_skips``."""
        return self.late + self.overload_skips

    def replacement_share(self) -> float | None:
        """Share of underruns concealed by NextBlock; ``None`` before the first underrun."""
        return self.replacements_used / self.underruns if self.underruns else None

    def served_share(self) -> float | None:
        """Share of the concealments while this stream was served (``fallbacks_before_attach``
        left out) that NextBlock replaced; ``None`` before the first."""
        served = self.underruns - self.fallbacks_before_attach
        return self.replacements_used / served if served > 0 else None

    def status_line(self) -> str:
        """One line for ``--stats``: counters plus recent inference/e2e median and p99."""
        i50, i99 = self.infer_us.recent_percentiles()
        e50, e99 = self.e2e_us.recent_percentiles()
        share = self.replacement_share()

        def us(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f}"

        return (
            f"blocks={self.blocks} underruns={self.underruns} replaced={self.replacements_used}"
            f"{'' if share is None else f' ({100 * share:.1f}%)'} fallback={self.fallbacks} "
            f"late={self.late} skipped={self.overload_skips} posts={self.posts} limited={self.limited} "
            f"nonfinite={self.rejected_nonfinite} infer_us={us(i50)}/{us(i99)} e2e_us={us(e50)}/{us(e99)} "
            f"model={self.model_version}{self.sided_status()}"
        )

    def to_dict(self) -> dict:
        """The final statistics (``--json``): counters, shares, whole-run latency percentiles and
        the CPU share of one core used by this process since start."""
        i50, i99 = self.infer_us.percentiles()
        e50, e99 = self.e2e_us.percentiles()
        wall_s = max(time.monotonic() - self.started_monotonic_s, 1e-9)
        attempts = self.posts + self.late + self.overload_skips
        out = {
            k: getattr(self, k)
            for k in (
                "blocks",
                "blocks_skipped",
                "underruns",
                "replacements_used",
                "fallbacks",
                "fallbacks_late",
                "fallbacks_skipped",
                "fallbacks_unseen",
                "fallbacks_after_post",
                "fallbacks_before_attach",
                "fallbacks_outage",
                "fallbacks_dropped_received",
                "cover_posts",
                "cover_used",
                "refused",
                "two_sided",
                "one_sided_no_later_block",
                "one_sided_burst_too_long",
                "one_sided_too_late",
                "one_sided_off",
                "two_sided_posts",
                "predictions",
                "posts",
                "chained_posts",
                "late",
                "overload_skips",
                "rejected_nonfinite",
                "limited",
                "model_swaps",
                "model_rejects",
                "reattaches",
                "model_version",
                "model_choice",
            )
        }
        out.update(
            deadline_misses=self.deadline_misses,
            deadline_miss_share=(self.deadline_misses / attempts) if attempts else 0.0,
            replacement_share=self.replacement_share(),
            served_share=self.served_share(),
            two_sided_share=self.two_sided_share(),
            infer_us_median=i50,
            infer_us_p99=i99,
            infer_us_max=self.infer_us.max_seen_us if self.infer_us.count else None,
            e2e_us_median=e50,
            e2e_us_p99=e99,
            e2e_us_max=self.e2e_us.max_seen_us if self.e2e_us.count else None,
            wall_s=wall_s,
            cpu_share=(time.process_time() - self.started_cpu_s) / wall_s,  # of one core, since the first block
        )
        return out


def _native_wakeups() -> int:
    """Wake-ups of the C++ waiter since import (0 when the extension lacks the counter)."""
    try:
        from .. import _core

        return int(_core.wait_for_decision_wakeups())
    except (ImportError, AttributeError):
        return 0


#: why a FALLBACK concealment had no replacement (``fallbacks_<reason>``; they add up to ``fallbacks``)
FALLBACK_REASONS = ("late", "skipped", "unseen", "after_post", "before_attach", "outage", "dropped_received")

#: per-stream counters that add up to the totals of :class:`HubStats`
SUMMED_COUNTERS = (
    "blocks",
    "blocks_skipped",
    "underruns",
    "replacements_used",
    "fallbacks",
    "fallbacks_late",
    "fallbacks_skipped",
    "fallbacks_unseen",
    "fallbacks_after_post",
    "fallbacks_before_attach",
    "fallbacks_outage",
    "fallbacks_dropped_received",
    "cover_posts",
    "cover_used",
    "refused",
    "two_sided",
    "one_sided_no_later_block",
    "one_sided_burst_too_long",
    "one_sided_too_late",
    "one_sided_off",
    "two_sided_posts",
    "predictions",
    "posts",
    "chained_posts",
    "late",
    "overload_skips",
    "rejected_nonfinite",
    "limited",
    "deadline_misses",
)


def _wake_name(missing_sleeps: int, sleeps: int) -> str:
    """How just-in-time streams mostly waited: ``missing`` / ``timed`` (90 % of the sleeps) or ``mixed``."""
    if not sleeps:
        return "none"
    share = missing_sleeps / sleeps
    return "missing" if share >= 0.9 else "timed" if share <= 0.1 else "mixed"


@dataclasses.dataclass
class HubStats:
    """Totals of the live predictor over every stream it served (live and departed), plus the
    process-wide figures (inference latency, batches, CPU share).

    Attributes
    ----------
    predictions : int
        Rows-of-a-stream predicted (one per stream per batch).
    batches : int
        Model calls (one per batch).
    batched_rows : int
        Rows that went through the model (channels of every stream in every batch).
    sleeps : int
        Times the loop went to sleep (on a timer or a segment's futex): its wake-ups.
    missing_wake_sleeps : int
        Of those, sleeps with the just-in-time streams on the missing-block wake (the rest timed).
    awake_ns : int
        Wall time spent between a wake-up and the next sleep (model calls included).
    streams_joined, streams_left : int
        Streams attached / let go since start.
    reattaches : int
        Times the producer process was restarted (new PID) or a named segment re-created, and
        we attached again.
    cold_infer_us_at_start : float | None
        One prediction after a 20 ms sleep, measured at start (the first inference budget).
    keep_warm : KeepWarm | None
        The loop's :class:`~nextblock.runtime.warmth.KeepWarm`: its throw-away predictions, their
        time and how often ``auto`` started keeping warm are reported as ``warmups``,
        ``warmup_cpu_share`` and ``keep_warm_triggers``.
    collector : CollectorPauses
        Python's garbage collections while serving, by generation, and their longest pauses.
    lookahead : str
        ``"auto"`` where two-sided replacements were made, ``"off"`` (``--lookahead off``, or the
        fill is not in this build).
    """

    model_version: str = ""
    model_choice: str = ""
    lookahead: str = "off"
    model_swaps: int = 0
    model_rejects: int = 0
    missing_wake_sleeps: int = 0
    reattaches: int = 0
    last_swap_ns: int = 0
    predictions: int = 0
    batches: int = 0
    batched_rows: int = 0
    sleeps: int = 0
    awake_ns: int = 0
    streams_joined: int = 0
    streams_left: int = 0
    cold_infer_us_at_start: float | None = None
    keep_warm: object | None = None
    infer_us: LatencyHistogram = dataclasses.field(default_factory=LatencyHistogram)
    collector: CollectorPauses = dataclasses.field(default_factory=CollectorPauses)
    started_monotonic_s: float = dataclasses.field(default_factory=time.monotonic)
    started_cpu_s: float = dataclasses.field(default_factory=time.process_time)
    live: list = dataclasses.field(default_factory=list)
    departed: list = dataclasses.field(default_factory=list)
    _streaming: bool = False

    def joined(self, stream) -> None:
        """A :class:`~nextblock.runtime.served.ServedStream` is now served."""
        if not self._streaming:  # CPU share counts from the first stream on, not from model loading
            self._streaming = True
            self.started_monotonic_s = time.monotonic()
            self.started_cpu_s = time.process_time()
        self.streams_joined += 1
        self.live.append(stream)

    def left(self, stream) -> None:
        """The stream is no longer served: its final counts are kept."""
        if stream in self.live:
            self.live.remove(stream)
        self.streams_left += 1
        self.departed.append(stream.to_dict())

    def stream_dicts(self) -> list[dict]:
        """One dict per stream ever served (departed first, in order of leaving, then live ones)."""
        return self.departed + [s.to_dict() for s in self.live]

    def status_line(self, live=()) -> str:
        """The totals line of ``--stats``."""
        streams = self.stream_dicts()
        tot = {k: sum(d[k] for d in streams) for k in SUMMED_COUNTERS}
        share = tot["replacements_used"] / tot["underruns"] if tot["underruns"] else None
        i50, i99 = self.infer_us.recent_percentiles()
        modes = [s.schedule.mode for s in live]
        two_sided = f" ({100 * tot['two_sided'] / tot['underruns']:.1f}%)" if tot["underruns"] else ""

        def us(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f}"

        return (
            f"streams={len(modes)} (jit={modes.count('just-in-time')}) blocks={tot['blocks']} "
            f"underruns={tot['underruns']} replaced={tot['replacements_used']}"
            f"{'' if share is None else f' ({100 * share:.1f}%)'} fallback={tot['fallbacks']} late={tot['late']} "
            f"skipped={tot['overload_skips']} predictions={tot['predictions']} batches={self.batches} "
            f"infer_us={us(i50)}/{us(i99)} model={self.model_version} two_sided={tot['two_sided']}{two_sided}"
        )

    def to_dict(self) -> dict:
        """The final statistics (``--json``): totals (same keys as a single stream's), process-wide
        figures and ``streams``, one entry per stream served."""
        streams = self.stream_dicts()
        out = {k: sum(d[k] for d in streams) for k in SUMMED_COUNTERS}
        wall_s = max(time.monotonic() - self.started_monotonic_s, 1e-9)
        attempts = out["posts"] + out["late"] + out["overload_skips"]
        i50, i99 = self.infer_us.percentiles()
        e2e = [d["e2e_us_median"] for d in streams if d.get("e2e_us_median") is not None]
        warm = self.keep_warm
        out.update(
            deadline_miss_share=out["deadline_misses"] / attempts if attempts else 0.0,
            replacement_share=out["replacements_used"] / out["underruns"] if out["underruns"] else None,
            served_share=(
                out["replacements_used"] / (out["underruns"] - out["fallbacks_before_attach"])
                if out["underruns"] > out["fallbacks_before_attach"]
                else None
            ),
            two_sided_share=out["two_sided"] / out["underruns"] if out["underruns"] else None,
            lookahead=self.lookahead,
            predictions=self.predictions,
            batches=self.batches,
            batched_rows=self.batched_rows,
            rows_per_batch=self.batched_rows / self.batches if self.batches else None,
            predictions_per_s=self.predictions / wall_s,
            sleeps=self.sleeps,
            python_wakes_per_s=self.sleeps / wall_s,
            wakes_per_s=_native_wakeups() / wall_s,
            awake_us_per_wake=self.awake_ns / 1000.0 / self.sleeps if self.sleeps else None,
            infer_us_median=i50,
            infer_us_p99=i99,
            infer_us_max=self.infer_us.max_seen_us if self.infer_us.count else None,
            e2e_us_median=float(np.median(e2e)) if e2e else None,
            cold_infer_us_at_start=self.cold_infer_us_at_start,
            model_version=self.model_version,
            model_choice=self.model_choice,
            model_swaps=self.model_swaps,
            model_rejects=self.model_rejects,
            jit_wake=_wake_name(self.missing_wake_sleeps, self.sleeps),
            jit_wake_missing_share=self.missing_wake_sleeps / self.sleeps if self.sleeps else None,
            reattaches=self.reattaches,
            warmups=warm.warmups if warm else 0,
            warmup_cpu_share=warm.warmup_ns / 1e9 / wall_s if warm else 0.0,
            keep_warm_triggers=warm.triggers if warm else 0,
            streams_joined=self.streams_joined,
            streams_left=self.streams_left,
            modes=sorted({d["mode"] for d in streams}),
            wall_s=wall_s,
            cpu_share=(time.process_time() - self.started_cpu_s) / wall_s,  # of one core, this process
            **self.collector.to_dict(),
            streams=streams,
        )
        return out
