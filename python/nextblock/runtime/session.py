"""Finding the producer, attaching with clear errors, and surviving its restarts.

* :class:`Target` – what to attach to: a JackTrip PID (segment ``/nextblock-<PID>``) or an explicit
  segment name (a :class:`~nextblock.capture.Producer` in tests and the demo), plus what
  identifies the producer program so that a restarted JackTrip (new PID) is found again.
* :func:`open_consumer` – attach as the replacement poster, turning every failure into an
  :class:`~nextblock.runtime.errors.AttachError` whose message says what is wrong and what to do.
* :func:`wait_for_producer` – after the producer went away: poll until it (or its restarted
  successor) is back, or until asked to stop.
* :func:`serve` – attach → run the loop → on :class:`ProducerGone` wait and re-attach (or stop
  with ``once``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..capture import (
    Consumer,
    LayoutMismatch,
    SegmentError,
    SegmentInUse,
    SegmentNotFound,
    SegmentNotReady,
    SegmentPermissionError,
    StaleSegment,
    nextblock_segments,
    process_exists,
    segment_name_for_pid,
)
from .errors import AttachError, ProducerGone

log = logging.getLogger("nextblock.attach")

SHM_DIR = "/dev/shm"

#: exit status when the producer went away and ``--once`` was given
EXIT_PRODUCER_GONE = 3
#: how long an attach waits for a producer that is still creating its segment
NOT_READY_WAIT_S = 2.0


def process_cmdline(pid: int) -> bytes | None:
    """``/proc/PID/cmdline`` (NUL-separated), or ``None`` when the process is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def process_comm(pid: int) -> str:
    """The process's short name (``/proc/PID/comm``), or ``"?"``."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


@dataclass
class Target:
    """What to attach to.

    Attributes
    ----------
    pid : int | None
        The JackTrip PID (``--jacktrip-pid``); ``None`` when a segment name was given.
    segment : str
        The segment name (``/nextblock-<pid>`` or the explicit one).
    cmdline : bytes | None
        The producer's command line when first attached; a restarted JackTrip is recognised by
        it (PID mode only).
    """

    pid: int | None
    segment: str
    cmdline: bytes | None = None

    @classmethod
    def for_pid(cls, pid: int) -> Target:
        return cls(pid=pid, segment=segment_name_for_pid(pid))

    @classmethod
    def for_segment(cls, name: str) -> Target:
        return cls(pid=None, segment=name if name.startswith("/") else "/" + name)

    def describe(self) -> str:
        return f"JackTrip PID {self.pid}" if self.pid is not None else f"segment {self.segment}"


def attach_error(err: SegmentError, name: str) -> AttachError:
    """The one-line :class:`AttachError` for segment ``name`` that cannot be served: what is wrong
    and what to do about it."""
    if isinstance(err, LayoutMismatch):
        return AttachError(
            f"{err} – JackTrip's NextBlock patch and this NextBlock speak different protocol versions (or the segment "
            "is not NextBlock's): rebuild both from the same tree"
        )
    if isinstance(err, SegmentNotReady):
        return AttachError(f"{err}, and still was after {NOT_READY_WAIT_S:g} s (is JackTrip stuck starting?)")
    if isinstance(err, StaleSegment):
        return AttachError(f"{err} (JackTrip crashed; restart it)")
    if isinstance(err, SegmentInUse):
        return AttachError(f"{err}: only one NextBlock may post replacements – stop the other one first")
    if isinstance(err, SegmentPermissionError):
        return AttachError(f"{err} (run NextBlock as the same user as JackTrip)")
    return AttachError(f"cannot attach to {name}: {err}")


def open_consumer(target: Target) -> Consumer:
    """Attach to ``target`` as the replacement poster.

    Raises
    ------
    AttachError
        No such process, not a patched JackTrip (or NextBlock disabled), layout version mismatch,
        stale segment, permission, or another NextBlock already posting – each with its own
        one-line message.
    """
    pid = target.pid
    if pid is not None and not process_exists(pid):
        raise AttachError(f"no process with PID {pid} is running")
    try:
        consumer = consumer_once_published(target.segment, post_replacements=True)
    except SegmentNotFound:
        if pid is not None:
            raise AttachError(
                f"process {pid} ({process_comm(pid)}) has no NextBlock segment {target.segment}: it is not a patched "
                "JackTrip, or NextBlock is disabled in it (start it with --nextblock)"
            ) from None
        raise AttachError(f"no NextBlock segment {target.segment} exists (is the producer running?)") from None
    except SegmentError as err:
        raise attach_error(err, target.segment) from None
    if pid is not None and target.cmdline is None:
        target.cmdline = process_cmdline(pid)
    return consumer


def consumer_once_published(
    name: str | int, post_replacements: bool = False, wait_s: float = NOT_READY_WAIT_S, poll_s: float = 0.01
) -> Consumer:
    """A :class:`Consumer` of ``name`` (a segment name or a producer PID), waiting up to ``wait_s``
    while its producer is still creating it (a JackTrip that has just started). Raises what
    :class:`Consumer` raises."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return Consumer(name, post_replacements=post_replacements)
        except SegmentNotReady:
            if time.monotonic() >= deadline:
                raise
            time.sleep(poll_s)


def find_restarted(target: Target, old_pid: int | None, old_created_unix_ns: int | None) -> Consumer | None:
    """One look for the producer of ``target`` after it went away; attaches if it is back.

    * Segment mode: the same name, made by a new producer.
    * PID mode: a live ``/nextblock-<PID>`` whose process has the same command line as the
      JackTrip we attached to first (a restarted JackTrip gets a new PID). The old PID itself
      counts only if the segment was re-created.

    Returns the attached consumer (``target`` updated) or ``None``.
    """
    if target.pid is None:
        names = [target.segment]
    else:
        names = []
        for name, pid, port in nextblock_segments():
            if port is not None:  # a hub worker's stream: PID mode re-attaches a process's only stream
                continue
            if not process_exists(pid):
                continue
            if target.cmdline is not None and process_cmdline(pid) != target.cmdline:
                continue
            names.append(name)
    for name in names:
        try:
            consumer = Consumer(name, post_replacements=True)
        except (SegmentError, ValueError):
            continue
        if consumer.producer_pid == old_pid and consumer.geometry.get("created_unix_ns") == old_created_unix_ns:
            consumer.close()  # the old one, still closing
            continue
        if consumer.producer_closed or not consumer.producer_alive():
            consumer.close()
            continue
        if target.pid is not None:
            target.pid = consumer.producer_pid
            target.segment = name
        return consumer
    return None


def wait_for_producer(
    target: Target,
    stop: threading.Event,
    old_pid: int | None,
    old_created_unix_ns: int | None,
    poll_s: float = 0.2,
    timeout_s: float | None = None,
) -> Consumer | None:
    """Poll (every ``poll_s``) until the producer is back; ``None`` on stop or timeout."""
    deadline = time.monotonic() + timeout_s if timeout_s is not None else None
    while not stop.is_set():
        consumer = find_restarted(target, old_pid, old_created_unix_ns)
        if consumer is not None:
            return consumer
        if deadline is not None and time.monotonic() >= deadline:
            return None
        stop.wait(poll_s)
    return None


def serve(
    target: Target,
    run_attached: Callable[[Consumer], None],
    stop: threading.Event,
    once: bool = False,
    reattach_timeout_s: float | None = None,
    on_reattach: Callable[[], None] | None = None,
) -> int:
    """Attach, run, and re-attach after producer restarts. Returns the exit status.

    ``run_attached(consumer)`` runs the loop and returns when asked to stop, or raises
    :class:`ProducerGone`. Returns 0 after a stop request, :data:`EXIT_PRODUCER_GONE` when the
    producer went away and ``once`` is set (or it did not come back within
    ``reattach_timeout_s``). :class:`AttachError` from the first attach (or from a re-attach
    to an incompatible stream) propagates.
    """
    consumer = open_consumer(target)
    log.info(
        "attached to %s (%s): %d Hz, %d frames/block, %d channels",
        target.describe(),
        consumer.name,
        consumer.sample_rate_hz,
        consumer.frames_per_block,
        consumer.channels,
    )
    try:
        while True:
            try:
                run_attached(consumer)
                return 0
            except ProducerGone as gone:
                old_pid, old_created = consumer.producer_pid, consumer.geometry.get("created_unix_ns")
                consumer.close()
                consumer = None
                if once:
                    log.warning("%s; --once given, stopping (JackTrip plays its own concealment)", gone)
                    return EXIT_PRODUCER_GONE
                log.warning("%s; waiting for it to come back (Ctrl-C to stop)", gone)
                consumer = wait_for_producer(target, stop, old_pid, old_created, timeout_s=reattach_timeout_s)
                if consumer is None:
                    if stop.is_set():
                        return 0
                    log.warning("the producer did not come back within %.1f s; stopping", reattach_timeout_s)
                    return EXIT_PRODUCER_GONE
                log.info("re-attached to %s (PID %d)", consumer.name, consumer.producer_pid)
                if on_reattach is not None:
                    on_reattach()
    finally:
        if consumer is not None:
            consumer.close()
