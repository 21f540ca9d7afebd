"""The analysis window applied to the context before its FFT."""

from __future__ import annotations

import numpy as np


def analysis_window(context_samples: int, fall_samples: int) -> np.ndarray:
    """Asymmetric window: a long sine-squared rise, then a short cosine-squared fall.

    A symmetric (Hann) window would weight the context's middle most and attenuate the newest
    samples – the ones the continuation depends on most. This window peaks ``fall_samples``
    before the newest sample and still ends smoothly, so spectral leakage stays local (which
    suits a convolution over frequency bins) while the recent past dominates, as in speech
    codecs' LPC windows.

    Parameters
    ----------
    context_samples:
        Window length ``N`` in samples.
    fall_samples:
        Length of the fall at the newest end, ``0 <= fall_samples < N / 2`` (0: no fall, the
        window ends at its maximum).

    Returns
    -------
    numpy.ndarray
        Shape ``(context_samples,)``, float32, values in ``(0, 1]``; oldest sample first.
    """
    if context_samples <= 0:
        raise ValueError(f"context_samples must be positive, got {context_samples}")
    if not 0 <= fall_samples < context_samples // 2:
        raise ValueError(f"fall_samples must be in [0, {context_samples // 2}), got {fall_samples}")
    rise_samples = context_samples - fall_samples
    rise = np.sin(0.5 * np.pi * (np.arange(rise_samples) + 0.5) / rise_samples) ** 2
    fall = np.cos(0.5 * np.pi * (np.arange(fall_samples) + 0.5) / max(fall_samples, 1)) ** 2
    # keep the very last sample above zero so no context sample is discarded entirely
    fall = np.maximum(fall, 1e-2) if fall_samples else fall
    return np.concatenate([rise, fall]).astype(np.float32)
