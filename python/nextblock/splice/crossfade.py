"""Cross-fades used when real audio resumes after a concealed block.

All functions work on 1-D float arrays of one channel, in samples.
"""

from __future__ import annotations

import numpy as np


def fade_windows(
    length_samples: int, kind: str = "linear", sample_rate_hz: int = 48000
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(fade_out, fade_in)`` windows of ``length_samples`` that sum to one.

    ``kind`` is ``"linear"`` (JackTrip's Regulator ramps), ``"cosine"`` (raised cosine,
    equal-gain) or ``"recovery"``: the patched JackTrip's splice after a NextBlock replacement, a
    raised cosine over the first 32 samples at 48 kHz (in proportion at ``sample_rate_hz``), then
    the real block (the C++ header ``shm_layout.hpp`` defines it; ``_core.recovery_fade_in``).
    Shapes: ``(length_samples,)`` each, float32.
    """
    if length_samples <= 0:
        raise ValueError(f"fade length must be positive, got {length_samples}")
    n = np.arange(length_samples, dtype=np.float64)
    if kind == "recovery":
        from .. import _core

        fade_in = _core.recovery_fade_in(int(length_samples), int(sample_rate_hz))
        return (1.0 - fade_in).astype(np.float32), fade_in
    if kind == "linear":
        fade_in = n / length_samples
    elif kind == "cosine":
        fade_in = 0.5 - 0.5 * np.cos(np.pi * n / length_samples)
    else:
        raise ValueError(f"unknown fade kind {kind!r}; use 'linear', 'cosine' or 'recovery'")
    fade_in = fade_in.astype(np.float32)
    return (1.0 - fade_in).astype(np.float32), fade_in


def crossfade(predicted: np.ndarray, real: np.ndarray, kind: str = "linear", sample_rate_hz: int = 48000) -> np.ndarray:
    """Fade from ``predicted`` into ``real`` (shape ``(frames,)``) with :func:`fade_windows`'s
    ``kind`` (``sample_rate_hz`` matters for ``"recovery"`` only)."""
    predicted = np.asarray(predicted, dtype=np.float32)
    real = np.asarray(real, dtype=np.float32)
    if predicted.shape != real.shape or predicted.ndim != 1:
        raise ValueError(f"crossfade needs two 1-D blocks of equal length, got {predicted.shape} and {real.shape}")
    fade_out, fade_in = fade_windows(predicted.shape[0], kind, sample_rate_hz)
    return predicted * fade_out + real * fade_in
