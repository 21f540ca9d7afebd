"""Live audio sources for the online learner: one protocol, two implementations.

The learner only ever sees :class:`LiveStream` objects, so its core runs (and is tested) without
shared memory:

* :class:`SharedMemoryStream` – the received blocks of a running (patched) JackTrip, read from its
  segment ``/nextblock-<PID>`` as a *second, non-posting* reader
  (``Consumer(pid, post_replacements=False)``). It reads blocks in ring order with
  ``read_blocks`` and never writes to the segment, so it cannot disturb the producer or the
  predictor; when it falls behind, the ring overwrites blocks it has not read yet, which it
  reports as ``skipped_blocks`` and a discontinuity (the producer never waits for it).
* :class:`ArrayStream` – an in-memory recording ``(channels, samples)`` delivered chunk by chunk,
  optionally paced like a live stream; for tests and the adaptation benchmark.

Shapes: audio is ``(channels, n_samples)`` float32, oldest sample first (the layout of
``Consumer.latest_history`` and of :class:`nextblock.model.runner.BlockPredictor`'s context).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class AudioChunk:
    """Consecutive audio from one source.

    Attributes
    ----------
    samples:
        ``(channels, n_samples)`` float32, oldest first.
    breaks:
        Offsets (samples, ascending, in ``[0, n_samples)``) *before* which the audio is not
        continuous: ``0`` means the chunk does not directly follow the previous chunk of the same
        source; ``k > 0`` means blocks are missing between sample ``k - 1`` and ``k`` (lost in
        the network, or overwritten before this reader got to them). Training examples never
        span a break.
    skipped_blocks:
        Blocks this reader missed because the ring overwrote them before it read them (it was too
        slow); 0 for in-memory sources.
    lost_blocks:
        Blocks missing from the producer's sequence numbers (lost or late packets) before this
        chunk; 0 for in-memory sources.
    """

    samples: np.ndarray
    breaks: tuple[int, ...] = ()
    skipped_blocks: int = 0
    lost_blocks: int = 0

    @property
    def discontinuity(self) -> bool:
        """``True`` when the chunk contains or starts with a break."""
        return bool(self.breaks)


@runtime_checkable
class LiveStream(Protocol):
    """What the learner reads audio from.

    Attributes
    ----------
    name:
        Human-readable source name for logs (``"pid:1234"``, ``"array:speech+drums"``).
    sample_rate_hz, channels:
        Stream geometry (constant).
    """

    name: str
    sample_rate_hz: int
    channels: int

    def read(self, timeout_s: float) -> AudioChunk | None:
        """Return the next chunk, waiting at most ``timeout_s`` seconds; ``None`` when nothing new."""
        ...

    @property
    def finished(self) -> bool:
        """``True`` when no more audio will ever come (producer closed / array exhausted)."""
        ...

    def close(self) -> None:
        """Release the source (detach from shared memory). Idempotent."""
        ...


class ArrayStream:
    """An in-memory recording played out chunk by chunk (tests, benchmarks).

    Parameters
    ----------
    audio:
        ``(channels, n_samples)`` or ``(n_samples,)`` (mono) float array.
    sample_rate_hz:
        Its sample rate, e.g. 48000.
    chunk_samples:
        Samples per :meth:`read` (a "packet burst"), e.g. 4096.
    realtime_factor:
        ``None`` (default): every :meth:`read` returns the next chunk at once, so the consumer
        sets the pace (deterministic tests). A number ``f``: audio becomes available as if played
        at ``f`` times real time from the first :meth:`read` on (``1.0`` = live).
    name:
        Label for logs.
    """

    def __init__(
        self,
        audio: np.ndarray,
        sample_rate_hz: int,
        chunk_samples: int = 4096,
        realtime_factor: float | None = None,
        name: str = "array",
    ):
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None, :]
        if audio.ndim != 2 or audio.shape[1] == 0:
            raise ValueError(f"audio must be (channels, n_samples) with samples, got shape {audio.shape}")
        if chunk_samples <= 0:
            raise ValueError(f"chunk_samples must be positive, got {chunk_samples}")
        if realtime_factor is not None and realtime_factor <= 0:
            raise ValueError(f"realtime_factor must be positive, got {realtime_factor}")
        self._audio = audio
        self.sample_rate_hz = int(sample_rate_hz)
        self.channels = int(audio.shape[0])
        self.chunk_samples = int(chunk_samples)
        self.realtime_factor = realtime_factor
        self.name = name
        self._position = 0
        self._start_s: float | None = None

    @property
    def position_samples(self) -> int:
        """Samples delivered so far."""
        return self._position

    @property
    def finished(self) -> bool:
        return self._position >= self._audio.shape[1]

    def _available_samples(self) -> int:
        if self.realtime_factor is None:
            return self._audio.shape[1]
        if self._start_s is None:
            self._start_s = time.monotonic()
        elapsed_s = time.monotonic() - self._start_s
        return min(self._audio.shape[1], int(elapsed_s * self.realtime_factor * self.sample_rate_hz))

    def read(self, timeout_s: float = 0.0) -> AudioChunk | None:
        """Next ``chunk_samples`` samples (fewer at the end); ``None`` if none are available yet."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            available = self._available_samples()
            if available > self._position or self.finished or time.monotonic() >= deadline:
                break
            time.sleep(min(0.005, max(0.0, deadline - time.monotonic())))
        end = min(available, self._position + self.chunk_samples)
        if end <= self._position:
            return None
        chunk = self._audio[:, self._position : end].copy()
        self._position = end
        return AudioChunk(chunk)

    def close(self) -> None:
        self._position = self._audio.shape[1]


class SharedMemoryStream:
    """Received blocks of one JackTrip, read from its NextBlock segment without disturbing it.

    Attaches as ``Consumer(pid_or_name, post_replacements=False)``: a pure reader that neither
    claims the poster role nor writes the heartbeat, so the predictor keeps posting replacements
    and the producer never waits (the ring is single-producer, lock-free; readers copy under a
    per-slot seqlock).

    Parameters
    ----------
    pid_or_name:
        The JackTrip process id (segment ``/nextblock-<PID>``) or a segment name.
    max_blocks_per_read:
        Upper bound on blocks copied per :meth:`read` (bounds the work per call).
    start:
        ``"now"`` (default): begin with the next block published after attaching; ``"oldest"``:
        begin with the oldest block still in the ring (the last ~2.7 s).

    Raises
    ------
    nextblock.capture.SegmentError
        (and subclasses) with a clear message when the segment is missing, stale or incompatible.
    """

    def __init__(self, pid_or_name: int | str, max_blocks_per_read: int = 256, start: str = "now"):
        from ..runtime.session import consumer_once_published  # the C++ core: live streams only

        if start not in ("now", "oldest"):
            raise ValueError(f"start must be 'now' or 'oldest', got {start!r}")
        self._consumer = consumer_once_published(pid_or_name)  # waits while JackTrip is still creating it
        self.sample_rate_hz = self._consumer.sample_rate_hz
        self.channels = self._consumer.channels
        self.frames_per_block = self._consumer.frames_per_block
        self.name = f"pid:{pid_or_name}" if isinstance(pid_or_name, int) else f"shm:{pid_or_name}"
        self.max_blocks_per_read = int(max_blocks_per_read)
        self._last_seq: int | None = None
        self._closed = False
        self.rewind(start)
        #: totals since attaching, for the status line
        self.blocks_read = 0
        self.blocks_skipped = 0
        self.blocks_lost = 0

    def rewind(self, start: str = "oldest") -> None:
        """Set the read position to ``"now"`` (the next block published) or ``"oldest"`` (the
        oldest block still in the ring); the next chunk starts with a break. Call it right
        before reading starts, so blocks overwritten while the learner was still loading its
        model are not counted as skipped."""
        if start not in ("now", "oldest"):
            raise ValueError(f"start must be 'now' or 'oldest', got {start!r}")
        written = self._consumer.blocks_written
        # one slot of margin: the producer may be overwriting the oldest slot right now
        self._next_index = written if start == "now" else max(0, written - self._consumer.block_ring_slots + 1)
        self._last_seq = None
        self._force_break = True

    @property
    def finished(self) -> bool:
        """The producer closed the segment and every published block was read."""
        return self._closed or (self._consumer.producer_closed and self._next_index >= self._consumer.blocks_written)

    def read(self, timeout_s: float = 0.1) -> AudioChunk | None:
        """Blocks published since the last call (at most ``max_blocks_per_read``), as one chunk.

        Sleeps (GIL released) up to ``timeout_s`` for the first new block. A chunk that follows
        missed blocks (overwritten before this reader got to them, or missing sequence numbers)
        is flagged with a break at its offset (see :attr:`AudioChunk.breaks`).
        """
        if self._closed:
            return None
        written = self._consumer.blocks_written
        if written <= self._next_index:
            if self._consumer.producer_closed:
                return None
            written = self._consumer.wait_for_blocks(self._next_index, timeout_s)
            if written <= self._next_index:
                return None
        batch = self._consumer.read_blocks(self._next_index, self.max_blocks_per_read)
        n = len(batch.seq)
        self._next_index = batch.first_index + n if n else self._next_index + batch.skipped
        skipped = int(batch.skipped)
        if n == 0:
            self.blocks_skipped += skipped
            return None
        seq = batch.seq.astype(np.int64)
        expected_first = None if self._last_seq is None else self._last_seq + 1
        lost = 0 if expected_first is None else max(0, int(seq[0]) - expected_first)
        steps = np.diff(seq)
        lost += int(np.sum(np.maximum(steps - 1, 0)))
        self._last_seq = int(seq[-1])
        self.blocks_read += n
        self.blocks_skipped += skipped
        self.blocks_lost += lost
        # (n, frames, channels) frame-major -> (channels, n * frames), oldest first
        samples = np.ascontiguousarray(batch.samples.reshape(n * batch.samples.shape[1], self.channels).T)
        frames = batch.samples.shape[1]
        breaks = (
            [0]
            if (self._force_break or skipped > 0 or (expected_first is not None and int(seq[0]) != expected_first))
            else []
        )
        self._force_break = False
        breaks += [int(i + 1) * frames for i in np.flatnonzero(steps != 1)]
        return AudioChunk(samples, breaks=tuple(breaks), skipped_blocks=skipped, lost_blocks=lost)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._consumer.close()
