"""A bounded replay buffer of live audio, with the newest seconds held back for validation.

Every (source, channel) pair is one *track*: a mono ring of the last ``capacity_samples``
samples. The newest ``holdout_samples`` of every track are never used for training – they are
the held-back window on which a candidate model is compared with the model the clients run.
As the stream moves on, held-back audio slides into the training area, so the learner always
trains on the recent past and validates on the present.

Positions are *absolute* sample indices per track (sample ``i`` is the ``i``-th sample ever
added to that track). A *break* at ``b`` means samples ``b - 1`` and ``b`` are not consecutive
(lost packets, a reader that fell behind); no example window spans a break.

Memory: ``tracks × capacity_samples × 4`` bytes (e.g. 2 channels × 60 s × 48 kHz ≈ 23 MB).
Thread-safe: one lock around every method, so an ingest thread can add while the trainer samples.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Track:
    ring: np.ndarray  # (capacity,) float32
    total: int = 0  # samples ever added
    breaks: deque = field(default_factory=deque)  # absolute positions, ascending

    def oldest(self) -> int:
        return max(0, self.total - self.ring.shape[0])


class ReplayBuffer:
    """Bounded per-track rings of recent audio.

    Parameters
    ----------
    capacity_samples:
        Samples kept per track (``--replay-seconds × sample_rate``). Older audio is overwritten.
    holdout_samples:
        Newest samples per track held back from training (``--holdout-seconds × sample_rate``).
    window_samples:
        Length of one example: ``context_samples + output_samples`` (e.g. 1024 + 256).
    context_samples:
        The context part of a window (its RMS decides whether a window is silent).
    min_context_rms:
        Windows whose context RMS is below this are never drawn (silence teaches nothing).

    Raises
    ------
    ValueError
        When the capacity cannot hold the held-back window plus at least one training window.
    """

    def __init__(
        self,
        capacity_samples: int,
        holdout_samples: int,
        window_samples: int,
        context_samples: int,
        min_context_rms: float = 2e-4,
    ):
        if not 0 < context_samples < window_samples:
            raise ValueError(f"need 0 < context_samples < window_samples, got {context_samples}, {window_samples}")
        if holdout_samples < window_samples:
            raise ValueError(
                f"the held-back window ({holdout_samples} samples) must hold one example ({window_samples})"
            )
        if capacity_samples < holdout_samples + 2 * window_samples:
            raise ValueError(
                f"the replay buffer ({capacity_samples} samples) must hold the held-back window "
                f"({holdout_samples}) plus at least two examples ({2 * window_samples}); raise --replay-seconds"
            )
        self.capacity_samples = int(capacity_samples)
        self.holdout_samples = int(holdout_samples)
        self.window_samples = int(window_samples)
        self.context_samples = int(context_samples)
        self.min_context_rms = float(min_context_rms)
        self._tracks: dict[Hashable, _Track] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ writing
    def add(self, track: Hashable, samples: np.ndarray, breaks: tuple[int, ...] = ()) -> None:
        """Append ``samples`` ``(n,)`` to ``track`` (created on first use).

        ``breaks``: offsets into ``samples`` before which the audio is not continuous (see
        :attr:`nextblock.learning.stream.AudioChunk.breaks`).
        """
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        n = samples.shape[0]
        if n == 0:
            return
        with self._lock:
            t = self._tracks.get(track)
            if t is None:
                t = self._tracks[track] = _Track(np.zeros(self.capacity_samples, np.float32))
            cap = self.capacity_samples
            for offset in breaks:
                if 0 <= offset < n and (t.total + offset) > 0:
                    t.breaks.append(t.total + int(offset))
            if n >= cap:  # only the newest `cap` samples survive
                samples = samples[-cap:]
                start = t.total + n - cap
                m = cap
            else:
                start, m = t.total, n
            first = start % cap
            head = min(m, cap - first)
            t.ring[first : first + head] = samples[:head]
            t.ring[: m - head] = samples[head:]
            t.total += n
            while t.breaks and t.breaks[0] <= t.oldest():
                t.breaks.popleft()

    # ------------------------------------------------------------------ reading
    @property
    def tracks(self) -> list[Hashable]:
        """Track keys in insertion order."""
        with self._lock:
            return list(self._tracks)

    def total_samples(self, track: Hashable) -> int:
        """Samples ever added to ``track``."""
        with self._lock:
            return self._tracks[track].total

    def stored_samples(self) -> int:
        """Samples currently held over all tracks (for the status line)."""
        with self._lock:
            return sum(min(t.total, self.capacity_samples) for t in self._tracks.values())

    def _read(self, t: _Track, start: int, length: int) -> np.ndarray:
        if start < t.oldest() or start + length > t.total:
            raise IndexError(f"samples [{start}, {start + length}) are not in the buffer [{t.oldest()}, {t.total})")
        cap = self.capacity_samples
        idx = np.arange(start, start + length) % cap
        return t.ring[idx]

    def read(self, track: Hashable, start: int, length: int) -> np.ndarray:
        """Copy of samples ``[start, start + length)`` of ``track``, ``(length,)`` float32."""
        with self._lock:
            return self._read(self._tracks[track], start, length)

    def _spans_break(self, t: _Track, start: int, end: int) -> bool:
        return any(start < b < end for b in t.breaks)

    def training_range(self, track: Hashable) -> tuple[int, int]:
        """``[first, last)`` window starts usable for training on ``track`` (empty if first >= last)."""
        with self._lock:
            t = self._tracks[track]
            return t.oldest(), t.total - self.holdout_samples - self.window_samples + 1

    def training_samples_available(self) -> int:
        """Window starts available for training over all tracks (0 until enough audio arrived)."""
        total = 0
        for track in self.tracks:
            first, last = self.training_range(track)
            total += max(0, last - first)
        return total

    def sample_windows(self, count: int, rng: np.random.Generator, max_tries_factor: int = 8) -> np.ndarray:
        """Up to ``count`` random training windows, ``(k, window_samples)`` float32, ``k <= count``.

        Windows are drawn uniformly over all tracks' training areas (older than the held-back
        window), never span a break, and never have a silent context. ``k`` is 0 until enough
        non-silent audio has arrived.
        """
        with self._lock:
            ranges = []
            for t in self._tracks.values():
                first, last = t.oldest(), t.total - self.holdout_samples - self.window_samples + 1
                if last > first:
                    ranges.append((t, first, last))
            if not ranges:
                return np.zeros((0, self.window_samples), np.float32)
            sizes = np.array([last - first for _t, first, last in ranges], np.float64)
            out = []
            for _ in range(count * max_tries_factor):
                if len(out) >= count:
                    break
                i = int(rng.choice(len(ranges), p=sizes / sizes.sum()))
                t, first, last = ranges[i]
                start = int(rng.integers(first, last))
                if self._spans_break(t, start, start + self.window_samples):
                    continue
                window = self._read(t, start, self.window_samples)
                if np.sqrt(np.mean(np.square(window[: self.context_samples]))) < self.min_context_rms:
                    continue
                out.append(window)
            if not out:
                return np.zeros((0, self.window_samples), np.float32)
            return np.stack(out).astype(np.float32)

    def holdout_windows(self, hop_samples: int, max_windows: int | None = None) -> np.ndarray:
        """Example windows whose *continuation* lies in the held-back window, ``(k, window_samples)``.

        Per track, windows end every ``hop_samples`` inside the newest ``holdout_samples``
        (their contexts may reach back into older audio, which is fine: the model is never
        trained to predict the held-back samples). Windows that span a break or have a silent
        context are left out. With ``max_windows``, an evenly spaced subset is kept.
        """
        if hop_samples <= 0:
            raise ValueError(f"hop_samples must be positive, got {hop_samples}")
        out = []
        with self._lock:
            for t in self._tracks.values():
                if t.total < self.holdout_samples + self.context_samples:
                    continue
                predict_from = t.total - self.holdout_samples  # first held-back sample
                target = self.window_samples - self.context_samples
                for end_of_context in range(predict_from, t.total - target + 1, hop_samples):
                    start = end_of_context - self.context_samples
                    if start < t.oldest() or self._spans_break(t, start, start + self.window_samples):
                        continue
                    window = self._read(t, start, self.window_samples)
                    if np.sqrt(np.mean(np.square(window[: self.context_samples]))) < self.min_context_rms:
                        continue
                    out.append(window)
        if not out:
            return np.zeros((0, self.window_samples), np.float32)
        windows = np.stack(out)
        if max_windows is not None and windows.shape[0] > max_windows:
            keep = np.linspace(0, windows.shape[0] - 1, max_windows).round().astype(int)
            windows = windows[keep]
        return np.ascontiguousarray(windows, dtype=np.float32)
