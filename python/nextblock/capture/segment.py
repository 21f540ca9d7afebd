"""Pythonic wrappers over the C++ shared-memory core (``nextblock._core``).

Shapes: a block is ``(frames_per_block, channels)`` float32 (interleaved, frame-major, exactly as
in the segment); a replacement is ``(2, frames_per_block, channels)`` (the missing block and the
next one, for the cross-fade); history is ``(channels, n_samples)`` with the newest sample last.
Times are ``CLOCK_MONOTONIC`` nanoseconds (:func:`monotonic_ns`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import _core
from ..processes import process_exists

SegmentError = _core.SegmentError
SegmentNotFound = _core.SegmentNotFound
SegmentPermissionError = _core.SegmentPermissionError
LayoutMismatch = _core.LayoutMismatch
StaleSegment = _core.StaleSegment
SegmentInUse = _core.SegmentInUse
SegmentNotReady = _core.SegmentNotReady

monotonic_ns = _core.monotonic_ns
segment_name_for_pid = _core.segment_name_for_pid
segment_name_for_stream = _core.segment_name_for_stream
validate_header = _core.validate_header


class EventKind(enum.IntEnum):
    """What the producer reports at the point where it decides what to play."""

    UNDERRUN = 1  #: the block ``seq`` was missing when it had to be played
    SKIP = 2  #: ``detail`` blocks were dropped to catch up
    LATE = 3  #: block ``seq`` arrived after its play-out time
    OVERFLOW = 4  #: the receive buffer overflowed at ``seq``
    CONSUMER_LOST = 5  #: the replacement poster stopped posting


class Outcome(enum.IntEnum):
    """What was played for an event's block."""

    NONE = 0
    REPLACEMENT = 1  #: NextBlock's posted block
    FALLBACK = 2  #: the producer's own concealment
    REFUSED = 3  #: a replacement was posted but refused (a non-finite or |x| > 1 sample); the fallback played


def is_concealment(kind: EventKind, outcome: Outcome) -> bool:
    """True for an event where the producer had to play something for a missing block: an
    UNDERRUN, or a SKIP glitch of JackTrip's Regulator (``--bufstrategy 3``: a dropped packet when a
    newer one is already queued), with outcome REPLACEMENT, FALLBACK or REFUSED."""
    return kind in (EventKind.UNDERRUN, EventKind.SKIP) and outcome in (
        Outcome.REPLACEMENT,
        Outcome.FALLBACK,
        Outcome.REFUSED,
    )


@dataclass(frozen=True)
class Event:
    """One entry of the event ring."""

    index: int
    kind: EventKind
    outcome: Outcome
    seq: int
    time_ns: int
    detail: int

    @property
    def is_concealment(self) -> bool:
        """See :func:`is_concealment`."""
        return is_concealment(self.kind, self.outcome)


class BlockBatch(NamedTuple):
    """Blocks ``first_index .. first_index + len(seq) - 1`` of the ring.

    ``seq``, ``arrival_ns``, ``gap_ns``: ``(n,)`` uint64; ``samples``: ``(n, frames, channels)``
    float32; ``skipped``: how many requested blocks had already been overwritten (reader too slow).
    """

    first_index: int
    seq: np.ndarray
    arrival_ns: np.ndarray
    gap_ns: np.ndarray
    samples: np.ndarray
    skipped: int


def _name_of(name_or_pid: str | int) -> str:
    if isinstance(name_or_pid, (int, np.integer)):
        if name_or_pid <= 0:
            raise ValueError(f"PID must be positive, got {name_or_pid}")
        return segment_name_for_pid(int(name_or_pid))
    name = str(name_or_pid)
    return name if name.startswith("/") else "/" + name


class Producer:
    """Creates a segment and publishes blocks into it (what patched JackTrip does).

    Parameters
    ----------
    name:
        Segment name (``"/nextblock-<pid>"`` for JackTrip; anything ``/like-this`` for tests), or a
        PID. A stale segment of a dead producer with the same name is replaced; a live one raises
        :class:`SegmentInUse`.
    sample_rate_hz, frames_per_block, channels:
        Stream geometry.
    block_ring_slots, event_ring_slots:
        Ring sizes (powers of two). 1024 blocks are ~2.7 s at 128 frames / 48 kHz.
    replacement_slots:
        Replacement slots (a replacement for ``seq`` lives in slot ``seq % replacement_slots``).
    stream_name, peer_address, local_port:
        Who the stream is (at most 63 bytes of text each), for tools that list a process's streams.
    """

    def __init__(
        self,
        name: str | int,
        sample_rate_hz: int,
        frames_per_block: int,
        channels: int,
        block_ring_slots: int = 1024,
        event_ring_slots: int = 1024,
        replacement_slots: int = 8,
        stream_name: str = "",
        peer_address: str = "",
        local_port: int = 0,
    ):
        self._p = _core.Producer(
            _name_of(name),
            sample_rate_hz,
            frames_per_block,
            channels,
            block_ring_slots,
            event_ring_slots,
            replacement_slots,
            stream_name,
            peer_address,
            local_port,
        )
        geometry = self._p.geometry()
        self.sample_rate_hz: int = geometry["sample_rate_hz"]
        self.frames_per_block: int = geometry["frames_per_block"]
        self.channels: int = geometry["channels"]

    @property
    def name(self) -> str:
        return self._p.name

    def publish_block(self, seq: int, samples: np.ndarray, arrival_ns: int | None = None, gap_ns: int = 0) -> None:
        """Publish one received block, ``samples`` of shape ``(frames_per_block, channels)``."""
        self._p.publish_block(seq, samples, arrival_ns, gap_ns)

    def post_event(
        self, kind: EventKind | int, seq: int, outcome: Outcome | int = Outcome.NONE, detail: int = 0
    ) -> None:
        """Record an event for block ``seq``."""
        self._p.post_event(int(kind), seq, int(outcome), detail)

    def take_replacement(self, seq: int) -> np.ndarray | None:
        """The ``(2, frames, channels)`` replacement posted for exactly ``seq``, or ``None``."""
        return self._p.take(seq)[1]

    def take(self, seq: int) -> tuple[str, np.ndarray | None]:
        """Like :meth:`take_replacement`, with the reason: ``("taken", blocks)``, or ``("missing" |
        "torn" | "refused", None)``; ``"refused"``: a sample was non-finite or outside [-1, 1]."""
        return self._p.take(seq)

    def note_playout(
        self, seq: int, queued_blocks: int, now_ns: int | None = None, pull_blocks: int = 1, pull_left: int = 0
    ) -> None:
        """Play-out clock: block ``seq`` was just played (or concealed) at ``now_ns`` (default:
        now), with ``queued_blocks`` later blocks already received. A pull that plays several
        blocks back to back notes each of them: ``pull_blocks`` it plays, ``pull_left`` after ``seq``."""
        self._p.note_playout(seq, queued_blocks, now_ns, pull_blocks, pull_left)

    def consumer_alive(self) -> bool:
        """Whether a poster is attached and posted or beat within the last second."""
        return self._p.consumer_alive()

    def counters(self) -> dict:
        return self._p.counters()

    def close(self) -> None:
        """Mark the segment closed (wakes readers) and remove its name."""
        self._p.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Consumer:
    """Attaches to a producer's segment and reads it; optionally posts replacements.

    Parameters
    ----------
    name_or_pid:
        The segment name, or the producer's PID (then ``/nextblock-<PID>``).
    post_replacements:
        Claim the single poster role. Raises :class:`SegmentInUse` while another live consumer
        holds it (a dead holder's role is taken over).

    Raises
    ------
    SegmentNotFound, SegmentPermissionError, LayoutMismatch, StaleSegment, SegmentInUse
        With a message that says what is wrong.
    SegmentNotReady
        Its producer is still creating it (retry shortly). One whose producer died while creating
        it is a :class:`StaleSegment`.
    """

    def __init__(self, name_or_pid: str | int, post_replacements: bool = False):
        if isinstance(name_or_pid, (int, np.integer)) and not process_exists(int(name_or_pid)):
            raise SegmentNotFound(f"no process with PID {int(name_or_pid)} is running")
        try:
            self._c = _core.Consumer(_name_of(name_or_pid), post_replacements)
        except SegmentNotFound as err:
            if isinstance(name_or_pid, (int, np.integer)):
                raise SegmentNotFound(
                    f"process {int(name_or_pid)} has no NextBlock segment: is it a patched JackTrip started with "
                    "NextBlock enabled (--nextblock)?"
                ) from err
            raise
        geometry = self._c.geometry()
        self.sample_rate_hz: int = geometry["sample_rate_hz"]
        self.frames_per_block: int = geometry["frames_per_block"]
        self.channels: int = geometry["channels"]
        self.producer_pid: int = geometry["producer_pid"]
        self.block_ring_slots: int = geometry["block_ring_slots"]
        self.stream_name: str = geometry["stream_name"]
        self.peer_address: str = geometry["peer_address"]
        self.local_port: int = geometry["local_port"]
        self.geometry: dict = geometry

    @classmethod
    def for_pid(cls, pid: int, post_replacements: bool = False) -> Consumer:
        """Attach to the segment of the producer with process id ``pid``."""
        return cls(int(pid), post_replacements)

    @property
    def name(self) -> str:
        return self._c.name

    @property
    def blocks_written(self) -> int:
        """Blocks published since the segment was created."""
        return self._c.blocks_written

    @property
    def events_written(self) -> int:
        return self._c.events_written

    @property
    def producer_closed(self) -> bool:
        return self._c.producer_closed

    @property
    def is_poster(self) -> bool:
        return self._c.is_poster

    def wait_for_blocks(self, after_count: int, timeout_s: float) -> int:
        """Sleep (GIL released) until more than ``after_count`` blocks exist, the producer closes,
        or ``timeout_s`` passes. Returns :attr:`blocks_written`."""
        return self._c.wait_for_blocks(after_count, timeout_s)

    def read_blocks(self, start_index: int, max_count: int) -> BlockBatch:
        """Copy up to ``max_count`` blocks from ring index ``start_index`` on."""
        return BlockBatch(*self._c.read_blocks(start_index, max_count))

    def latest_history(self, n_samples: int) -> np.ndarray:
        """The newest ``n_samples`` per channel, ``(channels, n_samples)``, newest last; zeros
        before the stream's first block."""
        return self._c.latest_history(n_samples)[0]

    def latest_history_with_count(self, n_samples: int) -> tuple[np.ndarray, int]:
        """Like :meth:`latest_history`, plus the number of blocks written when it was read."""
        history, count = self._c.latest_history(n_samples)
        return history, count

    def read_events(self, start_index: int, max_count: int = 1024) -> tuple[list[Event], int]:
        """Events from ring index ``start_index`` on; returns ``(events, skipped)``."""
        _first, raw, skipped = self._c.read_events(start_index, max_count)
        events = [Event(i, EventKind(k), Outcome(o), s, t, d) for (i, k, o, s, t, d) in raw]
        return events, skipped

    def playout(self) -> tuple[int, int, int, int, int] | None:
        """The producer's play-out clock: ``(seq, at_ns, queued_blocks, pull_blocks, pull_left)`` of
        its last pull (block ``seq`` played at ``at_ns`` with ``queued_blocks`` later ones received,
        by a pull that plays ``pull_blocks`` blocks, ``pull_left`` of them after ``seq``), ``None``
        before its first pull. With one block per pull, seq ``seq + k`` is due at about ``at_ns + k``
        block periods; else at its pull (``_core.playout_due_ns``)."""
        return self._c.playout()

    def post_replacement(self, seq: int, samples: np.ndarray) -> None:
        """Post the ``(2, frames, channels)`` blocks that replace block ``seq`` and follow it.

        The producer plays them only if every sample is finite and within [-1, 1]; otherwise it
        refuses the whole replacement (event outcome REFUSED) and plays its own fallback."""
        self._c.post_replacement(seq, samples)

    def set_missing_lookahead(self, blocks: int) -> None:
        """Ask the producer to check, at each pull, whether the block ``blocks`` past the one it
        plays has arrived, and to wake a sleeping just-in-time waiter when it has not (0: off;
        clamped to 16). See docs/shm_protocol.md, "Missing-block wake"."""
        self._c.set_missing_lookahead(int(blocks))

    @property
    def missing_lookahead(self) -> int:
        return self._c.missing_lookahead

    @property
    def closed(self) -> bool:
        return self._c.closed

    def heartbeat(self) -> None:
        """Tell the producer the poster is alive when there is nothing to post."""
        self._c.heartbeat()

    def producer_alive(self) -> bool:
        return self._c.producer_alive()

    def counters(self) -> dict:
        return self._c.counters()

    def close(self) -> None:
        """Detach (and give up the poster role)."""
        self._c.close()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
