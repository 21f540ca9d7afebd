"""Making the prediction start where the context ends (post-processing, numpy).

A network trained with a waveform loss shrinks what it cannot predict, so its first predicted
sample rarely lands exactly on the continuation of the last real one. The step between them is a
click: broadband energy that the log-spectral distance (and the ear) punishes far more than the
small waveform error it is. :func:`match_boundary` removes the step with a short raised-cosine
correction: the offset between the one-step linear extrapolation of the context and the first
predicted sample is added at the start and faded out over ``ramp_samples``.
"""

from __future__ import annotations

import numpy as np


def boundary_ramp(ramp_samples: int) -> np.ndarray:
    """``(ramp_samples,)`` float32 fade from 1 to 0 (raised cosine, first value exactly 1)."""
    if ramp_samples <= 0:
        raise ValueError(f"ramp_samples must be positive, got {ramp_samples}")
    n = np.arange(ramp_samples, dtype=np.float64)
    return (0.5 + 0.5 * np.cos(np.pi * n / ramp_samples)).astype(np.float32)


def match_boundary(prediction: np.ndarray, context: np.ndarray, ramp: np.ndarray) -> np.ndarray:
    """Correct ``prediction`` in place so it continues ``context`` without a step; returns it.

    Parameters
    ----------
    prediction:
        ``(channels, samples)`` float32, ``samples >= len(ramp)`` – the predicted continuation.
    context:
        ``(channels, >= 2)`` float32 – the past, newest sample last.
    ramp:
        From :func:`boundary_ramp`.
    """
    expected_first = 2.0 * context[:, -1] - context[:, -2]
    offset = expected_first - prediction[:, 0]
    prediction[:, : ramp.shape[0]] += offset[:, None] * ramp
    return prediction
