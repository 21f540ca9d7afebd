"""One predictor per stream geometry (block size, rate), built off the live loop.

A hub's clients choose their own buffer sizes (and a server may run at another rate), so
:class:`~nextblock.runtime.hub.HubLoop` serves streams of several geometries side by side: the
predictor it was given serves its own geometry, and :class:`Geometries` builds one for each other
geometry that joins (``build(frames_per_block, sample_rate_hz)``, e.g.
:func:`nextblock.runtime.stack.build_stream_stack`) on a background thread, so that building and
warming interpreters never holds up the streams already served: a stream of a new geometry is
attached once its predictor is ready (a scan or two later; JackTrip plays its own concealment
meanwhile). Streams of one geometry share a predictor, so their predictions share model calls.
After a hot-swap the other geometries are rebuilt the same way and keep the previous model until
then.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .errors import AttachError
from .predictors import Predictor

log = logging.getLogger("nextblock.attach")

Geometry = tuple[int, int]  # (frames_per_block, sample_rate_hz)


def geometry_of(predictor: Predictor) -> Geometry:
    """``(frames_per_block, sample_rate_hz)`` a predictor serves."""
    return int(predictor.frames_per_block), int(predictor.sample_rate_hz)


class Geometries:
    """The predictors of every geometry served.

    Parameters
    ----------
    primary:
        The predictor of its own geometry (the model watcher swaps it).
    build:
        ``build(frames_per_block, sample_rate_hz) -> Predictor``, called on a background thread;
        ``None``: only the primary geometry is served.
    """

    def __init__(self, primary: Predictor, build: Callable[[int, int], Predictor] | None = None):
        self.primary = primary
        self.build = build
        self._by_geometry: dict[Geometry, Predictor] = {geometry_of(primary): primary}
        self._ready: dict[Geometry, Predictor] = {}  # built, not installed yet (written by builders)
        self._building: set[Geometry] = set()
        self._errors: dict[Geometry, str] = {}
        self._lock = threading.Lock()

    def get(self, geometry: Geometry) -> Predictor | None:
        """The predictor for ``geometry``, or ``None`` while it is being built (started here).

        Raises :class:`AttachError` when it cannot be built (the reason)."""
        predictor = self._by_geometry.get(geometry)
        if predictor is not None:
            return predictor
        if self.build is None:
            return None
        with self._lock:
            error = self._errors.get(geometry)
        if error is not None:
            raise AttachError(error)
        self._start(geometry)
        return None

    def take_ready(self) -> list[Geometry]:
        """Install the predictors built since the last call; returns their geometries."""
        with self._lock:
            ready, self._ready = self._ready, {}
        self._by_geometry.update(ready)
        return list(ready)

    def swap(self, primary: Predictor) -> None:
        """A new model: ``primary`` serves its geometry now; the others are rebuilt (with
        whatever ``build`` loads now) and keep their predictor until then."""
        self.primary = primary
        self._by_geometry[geometry_of(primary)] = primary
        for geometry in list(self._by_geometry):
            if geometry != geometry_of(primary) and self.build is not None:
                self._start(geometry)

    def predictors(self) -> list[Predictor]:
        """Every installed predictor, the primary first."""
        return [self.primary] + [p for p in self._by_geometry.values() if p is not self.primary]

    def _start(self, geometry: Geometry) -> None:
        with self._lock:
            if geometry in self._building:
                return
            self._building.add(geometry)
        thread = threading.Thread(
            target=self._run, args=(geometry,), name=f"nextblock-build-{geometry[0]}x{geometry[1]}", daemon=True
        )
        thread.start()

    def _run(self, geometry: Geometry) -> None:
        frames, rate = geometry
        try:
            predictor = self.build(frames, rate)
        except Exception as err:  # any failure: the streams of that geometry are refused with it
            with self._lock:
                self._errors[geometry] = f"no predictor for {frames} frames at {rate} Hz: {err}"
                self._building.discard(geometry)
            return
        log.info("ready to serve %d frames at %d Hz", frames, rate)
        with self._lock:
            self._ready[geometry] = predictor
            self._building.discard(geometry)
