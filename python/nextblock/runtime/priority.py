"""The hot path's real-time priority: always below the producer's audio threads.

JACK runs a client's process callback (JackTrip's audio thread) with SCHED_FIFO at the server's
priority minus 5: 5 under a default ``jackd`` (``-P 10``), 65 or 90 under typical tuned setups.
A predictor at a higher priority preempts that callback whenever the two share a core, and the
callback misses its cycle: an xrun in JackTrip, the one thing NextBlock must never cause. So
``nextblock attach --realtime`` reads the real-time priorities of the producer's threads from
``/proc`` and takes one step below the lowest: above every normal process (its decisions stay on
time under load), below every thread the producer made real-time.
"""

from __future__ import annotations

import os

__all__ = ["realtime_priorities", "priority_below"]

#: policies in /proc/PID/task/TID/stat (field 41): SCHED_FIFO 1, SCHED_RR 2
_REALTIME_POLICIES = (1, 2)


def realtime_priorities(pid: int) -> list[int]:
    """The SCHED_FIFO/SCHED_RR priorities of the threads of process ``pid``, sorted (empty: none is
    real-time, or the process is gone)."""
    found = []
    task_dir = f"/proc/{int(pid)}/task"
    try:
        tids = os.listdir(task_dir)
    except OSError:
        return []
    for tid in tids:
        try:
            with open(f"{task_dir}/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the thread ended meanwhile
        # fields after "(comm)" start at field 3: rt_priority is field 40, policy field 41
        if len(fields) > 38 and int(fields[38]) in _REALTIME_POLICIES:
            found.append(int(fields[37]))
    return sorted(found)


def priority_below(pid: int, requested: int | None = None) -> tuple[int | None, str]:
    """The SCHED_FIFO priority for a helper of process ``pid``: ``requested`` (``None``: as high as
    allowed) but below every real-time thread of ``pid``.

    Returns
    -------
    (priority, reason)
        ``priority`` is ``None`` when the helper must stay at normal priority: ``pid`` is unknown
        (0), it has no real-time thread (a real-time helper would preempt all of it), or its lowest is already 1.
        ``reason`` says what was chosen and why, for the log.
    """
    if pid <= 0:
        return None, (
            "the producer's PID is not known (no segment attached yet; --jacktrip-pid names it): "
            "staying at normal priority, so as never to preempt it"
        )
    priorities = realtime_priorities(pid)
    if not priorities:
        return None, (f"PID {pid} has no real-time thread: staying at normal priority, so as never to preempt it")
    lowest = priorities[0]
    ceiling = lowest - 1
    if ceiling < 1:
        return None, f"PID {pid} has a real-time thread at priority 1: staying at normal priority below it"
    if requested is None:
        return ceiling, f"SCHED_FIFO {ceiling}, one below the lowest real-time thread of PID {pid} ({lowest})"
    if requested > ceiling:
        return ceiling, (
            f"SCHED_FIFO {ceiling}, not {requested}: {requested} would preempt a real-time thread of "
            f"PID {pid} (priority {lowest}, its audio callback's if it is a JACK client)"
        )
    return requested, f"SCHED_FIFO {requested} (the lowest real-time thread of PID {pid} is at {lowest})"
