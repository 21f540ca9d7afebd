"""The received streams of one producer process: a point-to-point JackTrip has one, a hub server
(``jacktrip -S``) one per connected client.

A stream's segment is ``/nextblock-<PID>`` (a process's only stream) or ``/nextblock-<PID>-<PORT>``
(one per local UDP port, as hub workers have); this module lists them from ``/dev/shm`` and
reads who each one is from its header.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .segment import Consumer, SegmentError

SHM_DIR = Path("/dev/shm")
_SEGMENT_RE = re.compile(r"^nextblock-(\d+)(?:-(\d+))?$")


class SegmentName(NamedTuple):
    """A NextBlock segment found in ``/dev/shm``: its name and what the name says."""

    name: str  #: ``/nextblock-<pid>`` or ``/nextblock-<pid>-<port>``
    pid: int  #: the producer's PID, as the name says (the process may be gone)
    port: int | None  #: the hub worker's local UDP port; None for a process's only stream


def nextblock_segments(shm_dir: Path | str = SHM_DIR) -> list[SegmentName]:
    """Every ``/nextblock-<pid>[-<port>]`` segment present now, sorted by PID then port (the
    portless one first): the one /dev/shm scanner (attach's discovery, restarts and the capture
    API use it). Cheap: one directory scan, nothing is opened; [] when the folder is unreadable."""
    try:
        names = os.listdir(shm_dir)
    except OSError:
        return []
    found = []
    for name in names:
        m = _SEGMENT_RE.match(name)
        if m:
            found.append(SegmentName("/" + name, int(m.group(1)), int(m.group(2)) if m.group(2) else None))
    return sorted(found, key=lambda s: (s.pid, -1 if s.port is None else s.port))


@dataclass(frozen=True)
class StreamInfo:
    """One stream of a producer process, as its segment header describes it."""

    segment: str  #: the segment name, ``/nextblock-<pid>`` or ``/nextblock-<pid>-<port>``
    pid: int
    stream_name: str  #: e.g. JackTrip's client name for the peer ("" if unknown)
    peer_address: str  #: "" if unknown
    local_port: int  #: 0 if unknown
    sample_rate_hz: int
    frames_per_block: int
    channels: int

    @property
    def label(self) -> str:
        """A short name for tables: the stream name, else the peer, else the segment."""
        return self.stream_name or self.peer_address or self.segment.lstrip("/")


def stream_segments(pid: int, shm_dir: Path = SHM_DIR) -> list[str]:
    """Segment names of process ``pid`` present now, sorted (``/nextblock-<pid>`` first, then
    by port). Cheap: one directory scan, nothing is opened."""
    return [s.name for s in nextblock_segments(shm_dir) if s.pid == int(pid)]


def list_streams(pid: int, shm_dir: Path = SHM_DIR) -> list[StreamInfo]:
    """The live streams of process ``pid`` with their identity and geometry. Segments that are
    stale, still being created or not readable are left out."""
    streams = []
    for name in stream_segments(pid, shm_dir):
        try:
            with Consumer(name) as c:
                g = c.geometry
        except SegmentError:
            continue
        streams.append(
            StreamInfo(
                name,
                int(pid),
                g["stream_name"],
                g["peer_address"],
                int(g["local_port"]),
                int(g["sample_rate_hz"]),
                int(g["frames_per_block"]),
                int(g["channels"]),
            )
        )
    return streams
