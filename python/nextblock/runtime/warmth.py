"""Keeping the prediction path warm while cold predictions miss their deadlines.

Just in time, a prediction runs only when a block is missing: after tens of milliseconds asleep,
with the model's code and data pushed out of the caches (and out of the TLB, which costs more
on a virtual machine) by everything else the machine ran meanwhile. Measured here (shipped model,
one row): 161 µs median back to back, 528 µs after 50 ms asleep on a quiet host, 1447 µs on a busy
one, against the one period (2.7 ms at 128 frames) a tight buffer leaves between the producer's
missing-block wake and the pull. When such cold predictions start to miss, :class:`KeepWarm`
runs one throw-away prediction every ``interval`` (4 ms) whenever nothing else was predicted in
that time, for ``hold`` (10 s) after the last sign of trouble: at 4 ms the path stays nearly
warm (303 µs median after 3 ms asleep on the busy host). It costs what it buys: on a quiet machine
(no misses) nothing, on a busy one about a tenth of a core for the whole process, whatever the
number of streams, less where the streams' own predictions come often (16 stereo streams at 5 %
loss: 0.05 of a core).
"""

from __future__ import annotations

from collections.abc import Callable

#: ``KeepWarm.mode`` values: ``auto`` (warm while recent decisions miss), ``on``, ``off``
KEEP_WARM_MODES = ("auto", "on", "off")
#: ``auto`` looks at this many recent decisions of the process (all streams)...
RECENT_DECISIONS = 32
#: ...and keeps warm once this many of them missed their deadline
MISSES_TO_WARM = 2


class KeepWarm:
    """When to run a throw-away prediction, and the counts of those that ran.

    Parameters
    ----------
    mode:
        ``"auto"`` (default): warm for ``hold_s`` after :data:`MISSES_TO_WARM` of the last
        :data:`RECENT_DECISIONS` decisions missed their deadline; ``"on"``: always; ``"off"``: never.
    interval_ms:
        While warm, a prediction runs at least this often (real ones count). Default 4 ms.
    hold_s:
        ``auto``: how long the warmth lasts after the misses that started it (renewed by later ones).
    """

    def __init__(self, mode: str = "auto", interval_ms: float = 4.0, hold_s: float = 10.0):
        if mode not in KEEP_WARM_MODES:
            raise ValueError(f"keep_warm must be one of {', '.join(KEEP_WARM_MODES)}, got {mode!r}")
        if not interval_ms > 0:
            raise ValueError(f"keep_warm interval must be positive, got {interval_ms} ms")
        if not hold_s >= 0:
            raise ValueError(f"keep_warm hold must not be negative, got {hold_s} s")
        self.mode = mode
        self.interval_ns = int(interval_ms * 1e6)
        self.hold_ns = int(hold_s * 1e9)
        self._recent = [False] * RECENT_DECISIONS
        self._next = 0
        self._recent_misses = 0
        self.warm_until_ns = 0
        self.last_prediction_ns = 0  #: end of the newest prediction, real or throw-away
        self.warmups = 0  #: throw-away predictions run
        self.warmup_ns = 0  #: time they took
        self.triggers = 0  #: times ``auto`` started keeping warm

    def note_decision(self, missed: bool, now_ns: int) -> None:
        """One decision's outcome (a post in time, or a deadline miss: late or skipped)."""
        self._recent_misses += int(missed) - int(self._recent[self._next])
        self._recent[self._next] = missed
        self._next = (self._next + 1) % RECENT_DECISIONS
        if self.mode == "auto" and missed and self._recent_misses >= MISSES_TO_WARM:
            if now_ns >= self.warm_until_ns:
                self.triggers += 1
            self.warm_until_ns = now_ns + self.hold_ns

    def note_prediction(self, end_ns: int) -> None:
        """A real prediction ended at ``end_ns`` (it warms as well as a throw-away one)."""
        self.last_prediction_ns = max(self.last_prediction_ns, end_ns)

    def active(self, now_ns: int) -> bool:
        """Whether the path is kept warm now."""
        if self.mode == "auto":
            return now_ns < self.warm_until_ns
        return self.mode == "on"

    def due_ns(self, now_ns: int) -> int | None:
        """When the next throw-away prediction is due, or ``None`` (not keeping warm)."""
        return self.last_prediction_ns + self.interval_ns if self.active(now_ns) else None

    def maybe_run(self, predict: Callable[[], object], now_ns: int, clock: Callable[[], int]) -> bool:
        """Run ``predict`` (a throw-away prediction) if one is due; returns whether it ran."""
        due = self.due_ns(now_ns)
        if due is None or now_ns < due:
            return False
        t0 = clock()
        predict()
        end = clock()
        self.warmups += 1
        self.warmup_ns += end - t0
        self.last_prediction_ns = end
        return True
