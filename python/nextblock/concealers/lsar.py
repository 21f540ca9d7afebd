"""Two-sided classical concealment: least-squares AR interpolation (LSAR) across the gap.

The strongest classical concealer when the packet after a loss is already in the buffer (the
textbook method of audio restoration: Janssen, Veldhuis & Vries 1986; Godsill & Rayner, *Digital
Audio Restoration*, ch. 5) and the one a two-sided NextBlock has to beat. Per lost block, on one
channel:

* with a :class:`~nextblock.concealers.base.Lookahead` (the block after the gap arrived, a gap of
  up to :attr:`~nextblock.concealers.base.StreamingConcealer.max_gap_blocks`): an order-128 Burg
  AR model fitted to the last 1024 played samples, and the gap's samples that minimise its
  prediction error over the gap and the samples that arrived after it, guarded against a fill
  louder than its neighbours (:func:`nextblock.features.twosided.fill_gap`, C++). The fill ends
  where the next block begins: it is played as it is, with no cross-fade;
* otherwise: the causal AR(128) prediction of :class:`~nextblock.concealers.ar.ARConcealer`.

:class:`ARBlendConcealer` (``ar-blend``) is the simpler two-sided classical baseline: the AR(128)
continuation of the past cross-faded (raised cosine over the gap) into the same model run
backwards from the future.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..features.twosided import BASELINE_ORDER, DEFAULT_FIT_SAMPLES, fill_gap
from .ar import ARConcealer


class LSARConcealer(ARConcealer):
    """LSAR interpolation where the future is in the buffer, AR(128) extrapolation where not.

    Parameters
    ----------
    frames_per_block, sample_rate_hz:
        See :class:`~nextblock.concealers.base.StreamingConcealer`.
    order:
        AR order of both paths (default 128).
    """

    name: ClassVar[str] = "lsar"
    two_sided: ClassVar[bool] = True

    def __init__(self, frames_per_block: int, sample_rate_hz: int = 48000, order: int = BASELINE_ORDER):
        super().__init__(frames_per_block, sample_rate_hz, order=order)
        #: samples of the past the two-sided model is fitted to
        self.fit_samples = min(DEFAULT_FIT_SAMPLES, self.history_samples)

    def fill_gap(self, future: np.ndarray, gap_samples: int) -> np.ndarray:
        """``(gap_samples,)`` float32: the LSAR fill between :attr:`history` and ``future``."""
        fill, _ = fill_gap(
            self.history[None, :],
            future[None, :],
            gap_samples,
            order=self.order,
            fit_samples=self.fit_samples,
            prior_weight=0.0,
        )
        return fill[0]


class ARBlendConcealer(LSARConcealer):
    """The forward AR(128) continuation faded into the backward one from the future (no solve)."""

    name: ClassVar[str] = "ar-blend"

    def fill_gap(self, future: np.ndarray, gap_samples: int) -> np.ndarray:
        """``(gap_samples,)`` float32: forward and backward AR extrapolations, cross-faded."""
        fill, _ = fill_gap(
            self.history[None, :],
            future[None, :],
            gap_samples,
            order=self.order,
            fit_samples=self.fit_samples,
            prior_weight=0.0,
            blend_only=True,
        )
        return fill[0]
