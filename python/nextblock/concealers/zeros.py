"""JackTrip's ``zeros`` underrun mode: a lost block is played as silence."""

from __future__ import annotations

import numpy as np

from .base import StreamingConcealer


class ZerosConcealer(StreamingConcealer):
    """Play silence for a lost block; real audio resumes without a cross-fade.

    Matches JackTrip v2.7.2 ``RingBuffer::setUnderrunReadSlot`` (``--underrun-mode zeros``):
    the read slot is ``memset`` to 0 and the next packet is played as is.

    Parameters
    ----------
    frames_per_block, sample_rate_hz:
        See :class:`~nextblock.concealers.base.StreamingConcealer`.
    """

    name = "zeros"
    crossfade_after_loss = False

    def __init__(self, frames_per_block: int, sample_rate_hz: int = 48000):
        super().__init__(frames_per_block, sample_rate_hz, history_samples=frames_per_block)

    def predict(self) -> np.ndarray:
        """Return ``zeros((2, frames_per_block), float32)``."""
        return np.zeros((2, self.frames_per_block), dtype=np.float32)
