"""High-order autoregressive concealment: the linear part of PARCnet, as a baseline.

PARCnet (Mezza et al., 2024) conceals a lost packet with an order-128 AR model fitted to the
last ~10 packets of history, then lets a network correct it. This module is that linear part on
its own, the strongest classical concealer in the harness: where JackTrip's Regulator fits order
255 to only 256 samples (:mod:`nextblock.concealers.burg`), this fits a lower order to a longer
history, which is far better conditioned and keeps the pitch of sustained notes.

Per lost block, on one channel:

1. take the last :func:`ar_history_samples` played samples (10 blocks, at least 1280);
2. fit ``A(z) = 1 + a1 z^-1 + … + a128 z^-128`` with Burg's method;
3. run the all-pole filter ``1 / A(z)`` on silence from the history's last 128 samples: the next
   two blocks. Real audio that resumes is cross-faded from the second one (linear, one block, as
   JackTrip does).

Steps 2-3 run in C++ (:func:`nextblock.features.lpc.burg_continuation`, ~60 µs at 1280 samples);
:func:`reference_ar_continuation` is the same with ``librosa.lpc`` and ``scipy.signal.lfilter``
(~1 ms), which the tests hold the C++ kernel to. A history that is silent (or not finite) gives
silence.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.signal

from ..features.lpc import SILENCE_MEAN_SQUARE, burg_continuation
from .base import StreamingConcealer

#: AR order (PARCnet's linear predictor).
AR_ORDER = 128
#: blocks of history the AR model is fitted to (PARCnet: ~10 packets).
AR_HISTORY_BLOCKS = 10
#: the history is never shorter than this (10 blocks of 128), so small blocks still give a
#: well-conditioned order-128 fit.
MIN_AR_HISTORY_SAMPLES = 1280


def ar_history_samples(frames_per_block: int) -> int:
    """Samples of history the AR model is fitted to: ``max(10 blocks, 1280)``.

    >>> [ar_history_samples(f) for f in (16, 128, 256, 1024)]
    [1280, 1280, 2560, 10240]
    """
    return max(AR_HISTORY_BLOCKS * int(frames_per_block), MIN_AR_HISTORY_SAMPLES)


def ar_continuation(history: np.ndarray, order: int, n_samples: int) -> np.ndarray:
    """Continue ``history`` by ``n_samples`` with an order-``order`` Burg AR model (C++).

    Parameters
    ----------
    history:
        ``(history_samples,)`` float, oldest first; ``history_samples > order``.
    order:
        AR order.
    n_samples:
        Samples to predict.

    Returns
    -------
    numpy.ndarray
        ``(n_samples,)`` float32; zeros for a silent or non-finite history.
    """
    x = np.asarray(history, dtype=np.float32).reshape(1, -1)
    if x.shape[1] <= order:
        raise ValueError(f"need more than {order} samples of history, got {x.shape[1]}")
    return burg_continuation(x, order, n_samples)[0]


def reference_ar_continuation(history: np.ndarray, order: int, n_samples: int) -> np.ndarray:
    """:func:`ar_continuation` with ``librosa.lpc`` (Burg) and ``scipy.signal.lfilter`` (the
    all-pole filter from initial conditions by ``scipy.signal.lfiltic``): the reference."""
    import librosa

    x = np.asarray(history, dtype=np.float32).astype(np.float64).reshape(-1)
    if x.shape[0] <= order:
        raise ValueError(f"need more than {order} samples of history, got {x.shape[0]}")
    if not np.all(np.isfinite(x)) or float(np.mean(x * x)) <= SILENCE_MEAN_SQUARE:
        return np.zeros(n_samples, np.float32)
    a = librosa.lpc(x, order=order)
    state = scipy.signal.lfiltic([1.0], a, x[::-1][:order])
    y, _ = scipy.signal.lfilter([1.0], a, np.zeros(n_samples), zi=state)
    return y.astype(np.float32)


class ARConcealer(StreamingConcealer):
    """Order-128 Burg AR prediction on the last 10 played blocks (PARCnet's linear part).

    Parameters
    ----------
    frames_per_block, sample_rate_hz:
        See :class:`~nextblock.concealers.base.StreamingConcealer`.
    order:
        AR order (default :data:`AR_ORDER`).
    history_samples:
        Samples of history fitted (default :func:`ar_history_samples`).
    """

    name: ClassVar[str] = "ar128"
    crossfade_after_loss: ClassVar[bool] = True
    #: spliced back as the patched JackTrip splices NextBlock's guesses (the short recovery fade),
    #: so that this baseline is as strong as it would be in NextBlock's place
    crossfade_kind: ClassVar[str] = "recovery"

    def __init__(
        self,
        frames_per_block: int,
        sample_rate_hz: int = 48000,
        order: int = AR_ORDER,
        history_samples: int | None = None,
    ):
        self.order = int(order)
        history = ar_history_samples(frames_per_block) if history_samples is None else int(history_samples)
        if history <= self.order:
            raise ValueError(f"history_samples ({history}) must exceed the order ({self.order})")
        super().__init__(frames_per_block, sample_rate_hz, history_samples=history)

    def predict(self) -> np.ndarray:
        """``(2, frames_per_block)`` float32: the AR continuation of :attr:`history`."""
        guess = ar_continuation(self.history, self.order, 2 * self.frames_per_block)
        return guess.reshape(2, self.frames_per_block)
