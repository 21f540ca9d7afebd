"""The last check before a prediction is posted: no NaN/Inf, nothing out of range.

A model can misbehave (a bad checkpoint, an input it never saw): JackTrip plays whatever we post
straight into somebody's ears, so every prediction passes :meth:`SampleGuard.check` first:

1. **Sanity check** – any NaN or Inf (or absurd values whose float32 sum overflows) rejects the whole
   prediction: nothing is posted and JackTrip plays its own fallback. Counted in
   :attr:`SampleGuard.rejected_nonfinite`.
2. **Limiter** – per channel, the peak of the two predicted blocks may not exceed
   ``min(ceiling, max(floor, max_gain_over_context * context_peak))``. A channel above its limit
   is scaled down by one constant gain (no clipping distortion; the cross-fade hides the gain
   step). Counted in :attr:`SampleGuard.limited` (one per prediction with any channel scaled).

All buffers are pre-allocated for one channel count and block size; :meth:`check` allocates
nothing.
"""

from __future__ import annotations

import math

import numpy as np


class SampleGuard:
    """Sanity check and limiter for ``(channels, 2, frames_per_block)`` predictions.

    Parameters
    ----------
    channels, frames_per_block:
        Shapes of the predictions it will see.
    context_samples:
        Length of the contexts passed to :meth:`check` (for the scratch buffer).
    ceiling:
        Absolute peak limit, full scale 1.0 (default 0.98, about -0.2 dBFS).
    max_gain_over_context:
        How much louder than the context's peak a prediction may be (default 2.0, +6 dB): a guess
        should continue the signal, not jump out of it.
    floor:
        Lowest limit, so that a near-silent context still allows a small prediction (default
        0.01, -40 dBFS).

    Attributes
    ----------
    checked, rejected_nonfinite, limited : int
        Counters since construction.
    """

    def __init__(
        self,
        channels: int,
        frames_per_block: int,
        context_samples: int,
        ceiling: float = 0.98,
        max_gain_over_context: float = 2.0,
        floor: float = 0.01,
    ):
        if not 0 < floor <= ceiling:
            raise ValueError("need 0 < floor <= ceiling")
        self.ceiling = np.float32(ceiling)
        self.max_gain_over_context = np.float32(max_gain_over_context)
        self.floor = np.float32(floor)
        self._abs = np.zeros((channels, 2, frames_per_block), np.float32)
        self._peak = np.zeros(channels, np.float32)
        self._ctx_abs = np.zeros((channels, context_samples), np.float32)
        self._ctx_peak = np.zeros(channels, np.float32)
        self._limit = np.zeros(channels, np.float32)
        self._over = np.zeros(channels, bool)
        self._gain = np.zeros((channels, 1, 1), np.float32)
        self.checked = 0
        self.rejected_nonfinite = 0
        self.limited = 0

    def check(self, prediction: np.ndarray, context: np.ndarray) -> bool:
        """Check and limit ``prediction`` ``(channels, 2, frames)`` **in place**.

        ``context`` ``(channels, context_samples)`` is what the prediction continues. Returns
        ``False`` when the prediction must not be posted (non-finite samples); otherwise ``True``
        and ``prediction`` is within its limits.
        """
        self.checked += 1
        # NaN/Inf propagate into the sum (float32 overflow of absurd values also lands here)
        if not math.isfinite(prediction.sum()):
            self.rejected_nonfinite += 1
            return False
        channels = prediction.shape[0]
        flat = prediction.reshape(channels, -1)
        if context.shape != self._ctx_abs.shape:  # a hot-swapped model with another context
            self._ctx_abs = np.zeros(context.shape, np.float32)
        # peaks via ndarray methods with out= (no wrapper overhead, no allocation)
        np.abs(flat, out=self._abs.reshape(channels, -1))
        self._abs.reshape(channels, -1).max(axis=1, out=self._peak)
        np.abs(context, out=self._ctx_abs)
        self._ctx_abs.max(axis=1, out=self._ctx_peak)
        np.multiply(self._ctx_peak, self.max_gain_over_context, out=self._limit)
        np.maximum(self._limit, self.floor, out=self._limit)
        np.minimum(self._limit, self.ceiling, out=self._limit)
        np.greater(self._peak, self._limit, out=self._over)
        if self._over.any():
            self.limited += 1
            # gain = limit / peak where above, else 1
            np.maximum(self._peak, self._limit, out=self._peak)
            np.divide(self._limit, self._peak, out=self._gain[:, 0, 0])
            np.multiply(prediction, self._gain, out=prediction)
        return True
