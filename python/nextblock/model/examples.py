"""Cutting training examples (context + continuation windows) out of recordings.

An *example* is one window of ``context_samples + output_samples`` consecutive samples: the
network sees the first ``context_samples`` and must predict the last ``output_samples``.
Nearly silent windows teach nothing and are skipped.
"""

from __future__ import annotations

import numpy as np

#: windows whose context RMS is below this (≈ -74 dBFS) are skipped.
MIN_CONTEXT_RMS = 2e-4


def random_windows(audio: np.ndarray, count: int, window_samples: int, context_samples: int,
                   rng: np.random.Generator, max_tries_factor: int = 4) -> np.ndarray:
    """Up to ``count`` random non-silent windows from one recording.

    Parameters
    ----------
    audio:
        ``(samples,)`` float32 mono recording.
    count:
        Windows wanted.
    window_samples:
        Length of each window (context + continuation).
    context_samples:
        Length of the context part (its RMS decides whether a window is silent).
    rng:
        Random generator (seeded by the caller for reproducibility).
    max_tries_factor:
        Candidates drawn per wanted window before giving up on a mostly silent recording.

    Returns
    -------
    numpy.ndarray
        ``(k, window_samples)`` float32 with ``k <= count`` (``k = 0`` for short/silent audio).
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.shape[0] < window_samples or count <= 0:
        return np.zeros((0, window_samples), np.float32)
    starts = rng.integers(0, audio.shape[0] - window_samples + 1, size=count * max_tries_factor)
    windows = np.lib.stride_tricks.sliding_window_view(audio, window_samples)[starts]
    rms = np.sqrt(np.mean(np.square(windows[:, :context_samples]), axis=1))
    keep = np.flatnonzero(rms >= MIN_CONTEXT_RMS)[:count]
    return np.ascontiguousarray(windows[keep], dtype=np.float32)
