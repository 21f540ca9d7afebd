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

The check runs in one C++ pass (``_core.guard_prediction``) and allocates nothing.
"""

from __future__ import annotations

import numpy as np

from .. import _core


class SampleGuard:
    """Sanity check and limiter for ``(channels, 2, frames_per_block)`` predictions.

    Parameters
    ----------
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
        ceiling: float = 0.98,
        max_gain_over_context: float = 2.0,
        floor: float = 0.01,
    ):
        if not 0 < floor <= ceiling <= 1:
            raise ValueError("need 0 < floor <= ceiling <= 1 (full scale)")
        self.ceiling = float(np.float32(ceiling))
        self.max_gain_over_context = float(np.float32(max_gain_over_context))
        self.floor = float(np.float32(floor))
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
        work = prediction
        if prediction.dtype != np.float32 or not prediction.flags.c_contiguous:
            work = np.ascontiguousarray(prediction, np.float32)  # (a view from elsewhere: checked on a copy)
        # one pass in C++ (GIL released): finiteness, per-channel peaks, the limit, the gain
        outcome = _core.guard_prediction(
            work, np.ascontiguousarray(context, np.float32), self.ceiling, self.max_gain_over_context, self.floor
        )
        if outcome < 0:
            self.rejected_nonfinite += 1
            return False
        if work is not prediction:
            prediction[...] = work
        self.limited += outcome
        return True
