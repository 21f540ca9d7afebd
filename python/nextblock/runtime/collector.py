"""Python's cyclic garbage collector in the live loop: kept off the deadlines, its pauses measured.

A collection stops the interpreter while it walks every tracked object of its generations. In a
loaded ``nextblock.attach`` (numpy, LiteRT, the runtime: ~45,000 objects) a full collection took
8.5–11.6 ms here and a middle one 0.3 ms: a full one is longer than the lead of a just-in-time
decision (~3.5 ms at 2 blocks of headroom), so every stream with a block missing during it would
go unconcealed. The serving loop frees what it allocates, so collections are rare (none in 20 s
with 16 streams, ``bench/attach.py``), but one is triggered by whatever pushes the count of
surviving objects over the collector's threshold, at any moment of a long session.

:func:`freeze_survivors` moves every object alive now into the collector's permanent generation
(``gc.freeze``, no pause): later collections walk only what was created since, so they take
microseconds. The loop calls it once streams are attached (model loaded and warmed) and again after
a stream joins or the model is swapped, and :func:`thaw_survivors` when it returns (a process that
goes on, a test run for one, collects as usual again). :func:`collections_off` switches collections
off for a block (the harness's player). :class:`CollectorPauses` measures every collection
(``gc.callbacks``) for the statistics (``gc_collections``, ``gc_max_pause_us``).
"""

from __future__ import annotations

import contextlib
import gc
import time

GENERATIONS = 3


def freeze_survivors() -> None:
    """Exempt every object alive now from later collections (``gc.freeze``: no collection, no
    pause; garbage alive now is never freed, a few objects)."""
    gc.freeze()


def thaw_survivors() -> None:
    """Give the frozen objects back to the collector (``gc.unfreeze``)."""
    gc.unfreeze()


@contextlib.contextmanager
def collections_off():
    """No collection at all inside the block, for a Python thread that stands in for a real-time
    one (the harness's JACK player, a test's producer): collect once, freeze what is alive, switch
    the collector off; on exit, also after an exception, thaw and switch it back on if it was."""
    enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


class CollectorPauses:
    """Counts the collector's runs by generation and their longest pause, while installed.

    Use as a context manager, or :meth:`install` / :meth:`remove`.
    """

    def __init__(self):
        self.collections = [0] * GENERATIONS
        self.max_pause_us = [0.0] * GENERATIONS
        self.total_pause_us = 0.0
        self.installed_ns = 0
        #: when the full (generation 2) collections ran, seconds after install (the first 16)
        self.full_at_s: list[float] = []
        self._started_ns = 0

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started_ns = time.perf_counter_ns()
            return
        pause_us = (time.perf_counter_ns() - self._started_ns) / 1000.0
        generation = int(info.get("generation", 0))
        self.collections[generation] += 1
        self.max_pause_us[generation] = max(self.max_pause_us[generation], pause_us)
        self.total_pause_us += pause_us
        if generation == GENERATIONS - 1 and len(self.full_at_s) < 16:
            self.full_at_s.append(round((self._started_ns - self.installed_ns) / 1e9, 3))

    def install(self) -> CollectorPauses:
        self.installed_ns = time.perf_counter_ns()
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        return self

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def __enter__(self) -> CollectorPauses:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.remove()

    def to_dict(self) -> dict:
        """``gc_collections`` and ``gc_max_pause_us`` (one entry per generation 0, 1, 2) and
        ``gc_full_at_s`` (when the full collections ran, seconds after serving started)."""
        return {
            "gc_collections": list(self.collections),
            "gc_max_pause_us": [round(v, 1) for v in self.max_pause_us],
            "gc_full_at_s": list(self.full_at_s),
        }
