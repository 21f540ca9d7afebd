"""Block repetition: JackTrip's ``wavetable`` underrun mode, with and without a cross-fade."""

from __future__ import annotations

import numpy as np

from .base import StreamingConcealer


class RepeatConcealer(StreamingConcealer):
    """Loop the last received block while blocks are lost; no cross-fade on recovery.

    Matches JackTrip v2.7.2 ``RingBufferWavetable`` (``--underrun-mode wavetable``, JackTrip's
    default before the Regulator): on underrun ``RingBuffer::setUnderrunReadSlot`` copies
    ``mLastReadSlot`` – the last block actually read from the queue – and the next packet is
    played as is. Because nothing but real blocks is ever played between losses, the last
    played block of :attr:`history` *is* the last received one, also through a run of losses.

    Parameters
    ----------
    frames_per_block, sample_rate_hz:
        See :class:`~nextblock.concealers.base.StreamingConcealer`.
    """

    name = "repeat"
    crossfade_after_loss = False

    def __init__(self, frames_per_block: int, sample_rate_hz: int = 48000):
        super().__init__(frames_per_block, sample_rate_hz, history_samples=frames_per_block)

    def predict(self) -> np.ndarray:
        """Return the last played block twice, shape ``(2, frames_per_block)``."""
        last = self.history[-self.frames_per_block :]
        return np.stack([last, last])


class RepeatCrossfadeConcealer(RepeatConcealer):
    """Like :class:`RepeatConcealer`, but real audio resuming after a loss is cross-faded.

    The block after a loss is ``fade_out * repeated_block + fade_in * real_block`` with JackTrip's
    linear ramps (``mFadeDown``/``mFadeUp`` of the Regulator), which removes the step at the
    splice back into real audio. The step at the *start* of a loss remains (as in JackTrip).
    """

    name = "repeat-xfade"
    crossfade_after_loss = True
