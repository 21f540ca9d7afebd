"""Real-time knobs for the processes on the audio path (Linux).

Two settings matter on a 2-core machine where a predictor must wake within ~100 µs of a block:

* :func:`set_realtime_priority` – ``SCHED_FIFO`` like JACK's and JackTrip's audio threads, so
  a busy normal-priority process on the other core cannot delay the wake-up.
* :func:`hold_cpu_dma_latency` – a PM-QoS request through ``/dev/cpu_dma_latency`` that keeps
  idle CPUs out of deep idle states while held. On the CI machine class (a VM with the
  ``haltpoll`` cpuidle driver) it cut the futex wake latency p50 from ~60 µs to ~20 µs and p99
  from ~140 µs to ~60 µs (``bench/shm_latency.py``). It costs power, so it is held only while
  the predictor runs and released when the file descriptor closes.

Both need privileges (root, CAP_SYS_NICE or rtprio limits; write access to the device); when not
permitted they return ``False`` / ``None`` and the caller goes on without them.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator


def set_realtime_priority(priority: int = 60, pid: int = 0) -> bool:
    """Switch process/thread ``pid`` (0: the caller) to ``SCHED_FIFO`` at ``priority`` (1..99).

    Returns ``True`` on success, ``False`` when not permitted.
    """
    if not 1 <= priority <= 99:
        raise ValueError(f"SCHED_FIFO priority must be in 1..99, got {priority}")
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (PermissionError, OSError):
        return False


def open_cpu_dma_latency(latency_us: int = 0, path: str = "/dev/cpu_dma_latency") -> int | None:
    """Ask the kernel to keep CPU wake-up latency ≤ ``latency_us``; returns the fd to hold, or None.

    The request lasts while the returned file descriptor stays open (close it to release).
    """
    if latency_us < 0:
        raise ValueError(f"latency_us must be >= 0, got {latency_us}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        os.write(fd, struct.pack("i", latency_us))
    except OSError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def hold_cpu_dma_latency(latency_us: int = 0) -> Iterator[bool]:
    """Context manager around :func:`open_cpu_dma_latency`; yields whether the request holds."""
    fd = open_cpu_dma_latency(latency_us)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)
