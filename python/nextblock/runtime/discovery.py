"""Which segments the live predictor serves: every stream of a JackTrip process, or one segment.

A *stream source* answers, whenever :class:`~nextblock.runtime.hub.HubLoop` scans:

* ``segments()`` – the segment names to serve now (a directory scan of ``/dev/shm``, cheap);
* ``attach(name)`` – a :class:`~nextblock.capture.Consumer` holding the poster role, ``None`` for a
  segment that cannot be served *yet* (stale, being created), or :class:`AttachError` for one that
  never can (another NextBlock posts to it, another protocol version);
* ``gone()`` / ``gone_reason()`` – whether the producer is gone for good (``--once`` stops then).

:class:`ProcessStreams` (``--jacktrip-pid``) serves ``/nextblock-<PID>`` and every
``/nextblock-<PID>-<PORT>`` (hub workers); a restarted JackTrip (new PID, same command line) is
found again. :class:`NamedSegment` (``--segment``) serves one name and re-attaches when a new
producer creates it again.
"""

from __future__ import annotations

import logging
import os
from typing import Protocol

from ..capture import (
    Consumer,
    SegmentError,
    SegmentNotFound,
    SegmentNotReady,
    StaleSegment,
    nextblock_segments,
    process_exists,
    stream_segments,
)
from ..processes import process_running
from .errors import AttachError
from .session import SHM_DIR, attach_error, process_cmdline, process_comm

log = logging.getLogger("nextblock.attach")


class StreamSource(Protocol):  # pragma: no cover - protocol
    def segments(self) -> list[str]: ...

    def attach(self, name: str) -> Consumer | None: ...

    def gone(self) -> bool: ...

    def gone_reason(self) -> str: ...

    def describe(self) -> str: ...


def attach_poster(name: str) -> Consumer | None:
    """Attach to ``name`` as the replacement poster. ``None`` while it cannot be served yet
    (vanished, stale, still being created); :class:`AttachError` when it never can."""
    try:
        return Consumer(name, post_replacements=True)
    except (SegmentNotFound, StaleSegment, SegmentNotReady):
        return None
    except SegmentError as err:
        raise attach_error(err, name) from None


class ProcessStreams:
    """Every stream of the JackTrip process ``pid``, following it across restarts.

    Parameters
    ----------
    pid:
        The JackTrip process.
    on_restart:
        Called with the new PID when a restarted JackTrip (same command line) is found.
    """

    def __init__(self, pid: int, on_restart=None):
        self.pid = int(pid)
        self.cmdline = process_cmdline(self.pid)
        self.on_restart = on_restart

    def describe(self) -> str:
        return f"JackTrip PID {self.pid}"

    def check(self) -> None:
        """Refuse a PID that is not running. Raises :class:`AttachError`."""
        if not process_exists(self.pid):
            raise AttachError(f"no process with PID {self.pid} is running")

    def no_streams_error(self) -> AttachError:
        return AttachError(
            f"process {self.pid} ({process_comm(self.pid)}) has no NextBlock segment /nextblock-{self.pid}[-PORT]: "
            "it is not a patched JackTrip, or NextBlock is disabled in it (start it with --nextblock); a hub server "
            "with no client yet has none either (then add --wait-for-streams)"
        )

    def segments(self) -> list[str]:
        if process_running(self.pid):
            return stream_segments(self.pid)
        restarted = self._find_restarted()
        if restarted is None:
            return []
        old, self.pid = self.pid, restarted
        log.info("JackTrip PID %d is gone; re-attached to its restart, PID %d", old, restarted)
        if self.on_restart is not None:
            self.on_restart(restarted)
        return stream_segments(self.pid)

    def _find_restarted(self) -> int | None:
        if self.cmdline is None:
            return None
        for pid in sorted({s.pid for s in nextblock_segments()}):
            if pid != self.pid and process_running(pid) and process_cmdline(pid) == self.cmdline:
                return pid
        return None

    def attach(self, name: str) -> Consumer | None:
        return attach_poster(name)

    def gone(self) -> bool:
        return not process_running(self.pid)

    def gone_reason(self) -> str:
        return f"JackTrip (PID {self.pid}) exited"


class NamedSegment:
    """One explicitly named segment (a :class:`~nextblock.capture.Producer` in tests and the demo);
    a new producer of the same name is served again."""

    rejoin_is_reattach = True  #: the same name again is the producer back, not a new stream

    def __init__(self, name: str):
        self.name = name if name.startswith("/") else "/" + name

    def describe(self) -> str:
        return f"segment {self.name}"

    def segments(self) -> list[str]:
        return [self.name] if os.path.exists(os.path.join(SHM_DIR, self.name.lstrip("/"))) else []

    def check(self) -> None:
        """Refuse a name with no segment. Raises :class:`AttachError`."""
        if not self.segments():
            raise AttachError(f"no NextBlock segment {self.name} exists (is the producer running?)")

    def attach(self, name: str) -> Consumer | None:
        return attach_poster(name)

    def gone(self) -> bool:
        for name in self.segments():
            try:
                with Consumer(name) as c:
                    if c.producer_alive():
                        return False
            except SegmentError:
                pass
        return True

    def gone_reason(self) -> str:
        return f"the producer of {self.name} closed it or exited"
