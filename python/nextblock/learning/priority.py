"""Keeping the learner out of the way: nice level, thread limits and a CPU duty cycle.

The learner shares the server with JackTrip and the predictor, so by default it runs at
``nice +10``, with one TensorFlow intra-op thread and one inter-op thread, and sleeps between
training steps so it uses at most ``--max-cpu`` of one core on average (:class:`DutyCycle`).
"""

from __future__ import annotations

import os
import time


def lower_priority(nice_increment: int = 10) -> int:
    """Raise this process's nice level by ``nice_increment`` (0: leave it); returns the new level."""
    if nice_increment <= 0:
        return os.nice(0)
    return os.nice(int(nice_increment))


def limit_threads(intra_op_threads: int = 1, inter_op_threads: int = 1) -> None:
    """Cap TensorFlow's and BLAS's thread pools. Call before TensorFlow runs its first op.

    Sets ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS`` (if unset) and
    ``tf.config.threading``. A second call after TensorFlow started is ignored silently
    (TensorFlow cannot change its pools then).
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(intra_op_threads))
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(intra_op_threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(inter_op_threads))
    except RuntimeError:
        pass  # already initialised (e.g. several learners in one test process)


class DutyCycle:
    """Sleeps after work so that work takes at most ``max_cpu`` of the wall time.

    Parameters
    ----------
    max_cpu:
        Fraction of one core, in ``(0, 1]`` (1: never sleep).
    sleep:
        The sleep function (injectable for tests).

    Example::

        duty = DutyCycle(0.25)
        while True:
            with duty:
                train_one_step()      # takes t seconds, then ~3 t seconds of sleep
    """

    def __init__(self, max_cpu: float = 0.5, sleep=time.sleep):
        if not 0.0 < max_cpu <= 1.0:
            raise ValueError(f"max_cpu must be in (0, 1], got {max_cpu}")
        self.max_cpu = float(max_cpu)
        self._sleep = sleep
        self._start_s = 0.0
        #: totals, for the status line
        self.busy_s = 0.0
        self.slept_s = 0.0

    def pause_for(self, busy_s: float) -> float:
        """Seconds to sleep after ``busy_s`` seconds of work."""
        return max(0.0, busy_s) * (1.0 / self.max_cpu - 1.0)

    def __enter__(self) -> DutyCycle:
        self._start_s = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        busy = time.monotonic() - self._start_s
        pause = self.pause_for(busy)
        self.busy_s += busy
        if pause > 0:
            self._sleep(pause)
            self.slept_s += pause

    @property
    def measured_fraction(self) -> float:
        """``busy / (busy + slept)`` so far (0 before any work)."""
        total = self.busy_s + self.slept_s
        return self.busy_s / total if total > 0 else 0.0
