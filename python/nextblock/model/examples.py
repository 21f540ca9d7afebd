"""Cutting training examples (context + continuation windows) out of recordings.

An *example* is one window of ``context_samples + output_samples`` consecutive samples: the
network sees the first ``context_samples`` and must predict the last ``output_samples``.
Nearly silent windows teach nothing and are skipped.
"""

from __future__ import annotations

import numpy as np

#: windows whose context RMS is below this (≈ -74 dBFS) are skipped.
MIN_CONTEXT_RMS = 2e-4
#: a window whose continuation is more than this many times louder (RMS) than its context is a
#: sound starting after (near) silence: unpredictable, and in the loss's RMS units of the context
#: it weighs up to millions of times a usual window (the 99.9th percentile is about 10).
MAX_TARGET_GAIN = 10.0


def random_windows(
    audio: np.ndarray,
    count: int,
    window_samples: int,
    context_samples: int,
    rng: np.random.Generator,
    max_tries_factor: int = 4,
) -> np.ndarray:
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


def predictable(windows: np.ndarray, context_samples: int, output_samples: int) -> np.ndarray:
    """``(n,)`` bool: windows whose continuation (the last ``output_samples``) is at most
    :data:`MAX_TARGET_GAIN` times as loud (RMS) as the ``context_samples`` before it, and whose
    context is not silent. Any history before the context is ignored.

    ``windows``: ``(n, history + context_samples + output_samples)`` float32.
    """
    end = windows.shape[1] - output_samples
    context = np.sqrt(np.mean(np.square(windows[:, end - context_samples : end], dtype=np.float64), axis=1))
    target = np.sqrt(np.mean(np.square(windows[:, end:], dtype=np.float64), axis=1))
    return (context >= MIN_CONTEXT_RMS) & (target <= MAX_TARGET_GAIN * context)
