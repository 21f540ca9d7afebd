"""Burg linear prediction as JackTrip v2.7.2's Regulator does it, reimplemented in numpy.

What was matched (read from ``src/Regulator.cpp`` / ``src/Regulator.h`` of JackTrip v2.7.2,
``BurgAlgorithm``, ``Channel`` and ``Regulator::burg``; ``gUdpWaitTimeout`` from
``src/jacktrip_globals.h``):

* **History length** (``mPacketsInThePast``): 2 packets at 128 frames per packet (``HIST`` at
  ``HISTFPP``); below 128 frames ``2 * (128 // fpp)`` packets (so always 256 samples); above 256
  frames 1 packet; from 128 to 256 frames 2 packets. See :func:`jacktrip_history_packets`.
* **Order**: ``BurgAlgorithm(size)`` with ``m = N = size - 1`` – the AR order is the history
  length minus one (255 at 128 frames).
* **Training signal**: ``predictedPast`` – the last ``mPacketsInThePast`` packets *played*
  (``outputNowPacket``: real packets, the cross-faded packet after a loss, and its own earlier
  predictions during a run of losses). The ring buffer of real packets (``realPast``) is filled
  but not used for training in this release. Training runs on every lost packet.
* **Burg recursion**: float32 state, the energy ``Dk`` initialised with the ``2.00002`` damping
  factor (instead of 2), ``Dk == 0`` replaced by ``FLT_EPSILON``.
* **Extrapolation**: ``BurgAlgorithm::predict`` runs the AR recursion from index ``m = size - 1``,
  i.e. it *overwrites the last history sample* with its own one-step prediction and continues
  from there over ``size + 2 * fpp`` samples; the packet played is samples
  ``[size, size + fpp)`` and the packet kept for the cross-fade (``futurePredictedPacket``) is
  ``[size + fpp, size + 2 * fpp)``. Two packets are predicted per lost packet.
* **Not primed**: while fewer than ``mPacketsInThePast + 1`` packets have been processed
  (``mPcnt > mPacketsInThePast`` is false), a lost packet is played as silence (the prediction
  is still computed and kept for the cross-fade).
* **Cross-fade on recovery**: the first packet after a loss is
  ``mFadeDown * futurePredictedPacket + mFadeUp * realNowPacket`` with
  ``mFadeUp[i] = i / fpp`` (linear, one packet long) – :func:`nextblock.splice.crossfade`.
* **Long losses**: there is no gradual fade to zero. When no packet has arrived for more than
  ``gUdpWaitTimeout`` = 512 ms, ``Regulator::underrun`` plays silence *without* calling
  ``processPacket`` – the history, the packet counter and the "last was a glitch" flag are left
  as they were, so the first packet after the outage is cross-faded from the last prediction.
  Here the time since the last arrival is counted in blocks (``blocks * fpp / rate``).

Not modelled (outside a per-block loss simulation): the Regulator's jitter-buffer timing
(tolerance, skipping/stashing late packets, auto headroom) and its worker thread.

Numerics: JackTrip computes in ``float``; this implementation rounds to float32 at the same
places and accumulates its sums in the same order (:func:`numpy.cumsum`), while the
prediction-error and coefficient updates are vectorised over the sample index (one numpy step
per order). Its output equals JackTrip's bit for bit; the tests check that against a
sample-by-sample transcription and, where a C++ compiler and the JackTrip source are at hand,
against JackTrip's own ``BurgAlgorithm`` compiled on the fly.
"""

from __future__ import annotations

import numpy as np

from .base import Lookahead, StreamingConcealer

#: ``HIST`` in Regulator.cpp: packets of history at ``HISTFPP`` frames per packet.
JACKTRIP_HISTORY_PACKETS = 2
#: ``HISTFPP`` in Regulator.cpp: the packet size ``HIST`` was calibrated for.
JACKTRIP_HISTORY_FPP = 128
#: ``gUdpWaitTimeout`` in jacktrip_globals.h: after this long without packets the Regulator plays silence.
JACKTRIP_UDP_WAIT_TIMEOUT_MS = 512.0
#: ``2.00002`` in ``BurgAlgorithm::train``: damping of the initial energy ``Dk``.
JACKTRIP_BURG_DAMPING = 2.00002
_FLT_EPSILON = float(np.finfo(np.float32).eps)


def jacktrip_history_packets(frames_per_block: int) -> int:
    """Packets of history JackTrip v2.7.2's Regulator trains Burg on (``mPacketsInThePast``).

    Parameters
    ----------
    frames_per_block:
        Samples per packet (the peer's FPP).

    Returns
    -------
    int
        ``2 * (128 // fpp)`` below 128 frames, 1 above 256 frames, else 2.

    Examples
    --------
    >>> [jacktrip_history_packets(f) for f in (32, 64, 128, 256, 512)]
    [8, 4, 2, 2, 1]
    """
    if frames_per_block <= 0:
        raise ValueError(f"frames_per_block must be positive, got {frames_per_block}")
    packets = JACKTRIP_HISTORY_PACKETS
    if frames_per_block < JACKTRIP_HISTORY_FPP:
        packets *= JACKTRIP_HISTORY_FPP // frames_per_block
    elif frames_per_block > 2 * JACKTRIP_HISTORY_FPP:
        packets = 1
    return packets


def burg_coefficients(x: np.ndarray, order: int | None = None) -> np.ndarray:
    """Fit an all-pole (AR) model with JackTrip's Burg recursion, bit for bit.

    Every quantity JackTrip keeps in a ``float`` is rounded to float32 at the same place, sums
    are accumulated sequentially in float32 (:func:`numpy.cumsum` keeps the order), and the
    updates of the prediction-error vectors and coefficients are vectorised over the sample
    index (one numpy step per order; a product and a sum round the same either way).

    Parameters
    ----------
    x:
        Training signal, shape ``(n_samples,)``; cast to float32 (JackTrip works in float).
    order:
        AR order; JackTrip uses ``n_samples - 1`` (the default). Must be below ``n_samples``.

    Returns
    -------
    np.ndarray, shape ``(order,)``, float32
        Coefficients ``a[1..order]`` of ``A(z) = 1 + a1 z^-1 + ...`` – the prediction is
        ``x[i] = -sum_j a[j] * x[i - 1 - j]`` (JackTrip's ``coeffs``).
    """
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    size = x.shape[0]
    if size < 2:
        raise ValueError(f"Burg needs at least 2 samples, got {size}")
    n_last = size - 1
    order = n_last if order is None else int(order)
    if not 0 < order <= n_last:
        raise ValueError(f"order must be in [1, {n_last}] for {size} samples, got {order}")
    ak = np.zeros(size, dtype=np.float32)
    ak[0] = 1.0
    # Row 0: forward errors f; row 1: backward errors b stored *reversed* (b[i] at n_last - i).
    # Then at order k both f[k + 1:] and b[:n_last - k] are the columns [k + 1:] of this array
    # (row 1 read backwards), and JackTrip's two update loops become one numpy step.
    errors = np.stack([x, x[::-1]])
    # Dk += 2.00002 * f[j] * f[j], evaluated in double and stored in a float at every step
    dk = np.float32(0.0)
    for value in (JACKTRIP_BURG_DAMPING * x.astype(np.float64) * x.astype(np.float64)).tolist():
        dk = np.float32(float(dk) + value)
    dk = float(np.float32(float(dk) - float(x[0] * x[0]) - float(x[n_last] * x[n_last])))
    f32 = np.float32
    for k in range(order):
        window = errors[:, k + 1 :]  # row 0: f[k + 1:], row 1 reversed: b[:n_last - k]
        mu_sum = float(np.cumsum(window[0] * window[1, ::-1])[-1])  # float accumulator, in order
        if dk == 0.0:
            dk = _FLT_EPSILON
        mu = float(f32(mu_sum * (-2.0 / dk)))
        # numpy keeps float32 arrays float32 when multiplied by a Python float (NEP 50), so
        # products and sums round exactly like JackTrip's float code; numpy buffers overlaps.
        ak[: k + 2] += mu * ak[k + 1 :: -1]  # a_n += mu * a_(k+1-n), symmetric
        window += mu * window[::-1, ::-1]  # f += mu * b and b += mu * f, old values on the right
        f_end = window[0, 0]  # f[k + 1]
        b_end = window[1, 0]  # b[n_last - k - 1]
        dk = float(f32((1.0 - float(f32(mu * mu))) * dk - float(f_end * f_end) - float(b_end * b_end)))
    return ak[1 : order + 1].copy()


def ar_extrapolate(coeffs: np.ndarray, past: np.ndarray, n_samples: int) -> np.ndarray:
    """Continue ``past`` with the AR recursion ``y[i] = -sum_j coeffs[j] * y[i - 1 - j]``.

    Computed like JackTrip's ``BurgAlgorithm::predict``: float32 products accumulated in order
    ``j = 0, 1, ...`` in a float32 sum, so the output matches it bit for bit.

    Parameters
    ----------
    coeffs:
        AR coefficients, shape ``(order,)`` (as returned by :func:`burg_coefficients`).
    past:
        The samples before the first predicted one, shape ``(n_past,)`` with
        ``n_past >= order`` (only the last ``order`` are used), oldest first.
    n_samples:
        How many samples to predict.

    Returns
    -------
    np.ndarray, shape ``(n_samples,)``, float32
    """
    coeffs = np.asarray(coeffs, dtype=np.float32).reshape(-1)
    past = np.asarray(past, dtype=np.float32).reshape(-1)
    order = coeffs.shape[0]
    if past.shape[0] < order:
        raise ValueError(f"need at least {order} past samples, got {past.shape[0]}")
    # tail holds the newest sample first so that tail[i : i + order] lines up with coeffs
    tail = np.zeros(order + n_samples, dtype=np.float32)
    tail[n_samples:] = past[::-1][:order]
    for i in range(n_samples - 1, -1, -1):
        tail[i] = -np.cumsum(coeffs * tail[i + 1 : i + 1 + order])[-1]
    return tail[:n_samples][::-1].copy()


def jacktrip_burg_predict(history: np.ndarray, frames_per_block: int) -> np.ndarray:
    """Predict the next two blocks from the played ``history`` as JackTrip's Regulator does.

    Parameters
    ----------
    history:
        The last ``jacktrip_history_packets(fpp) * fpp`` played samples, oldest first,
        shape ``(n_history,)``.
    frames_per_block:
        Samples per block.

    Returns
    -------
    np.ndarray, shape ``(2, frames_per_block)``, float32
        The guess for the next block and for the one after it.
    """
    history = np.asarray(history, dtype=np.float32).reshape(-1)
    size = history.shape[0]
    coeffs = burg_coefficients(history)
    order = coeffs.shape[0]  # == size - 1
    # BurgAlgorithm::predict starts at index m = size - 1: the last history sample is replaced
    # by its own one-step prediction, then 2 * fpp more samples follow.
    tail = ar_extrapolate(coeffs, history[:order], size + 2 * frames_per_block - order)
    return tail[size - order :].reshape(2, frames_per_block)


class BurgConcealer(StreamingConcealer):
    """JackTrip v2.7.2's Regulator PLC: Burg AR prediction over the last played packets.

    See the module docstring for everything that was matched. ``history`` holds exactly the
    ``jacktrip_history_packets(fpp)`` packets JackTrip trains on.

    Parameters
    ----------
    frames_per_block, sample_rate_hz:
        See :class:`~nextblock.concealers.base.StreamingConcealer`.
    mute_after_ms:
        Play silence once no block has arrived for longer than this (JackTrip's
        ``gUdpWaitTimeout``, 512 ms); ``None`` never mutes.
    """

    name = "burg"
    crossfade_after_loss = True
    crossfade_kind = "linear"

    def __init__(
        self,
        frames_per_block: int,
        sample_rate_hz: int = 48000,
        mute_after_ms: float | None = JACKTRIP_UDP_WAIT_TIMEOUT_MS,
    ):
        self.history_packets = jacktrip_history_packets(frames_per_block)
        self.mute_after_ms = mute_after_ms
        super().__init__(frames_per_block, sample_rate_hz, history_samples=self.history_packets * frames_per_block)

    def reset(self) -> None:
        super().reset()
        self._muted_blocks = 0

    @property
    def primed(self) -> bool:
        """JackTrip's ``mPcnt > mPacketsInThePast``: enough packets processed to play predictions."""
        return self.blocks_processed > self.history_packets

    def predict(self) -> np.ndarray:
        """Burg fit on :attr:`history`, extrapolated two blocks, shape ``(2, frames_per_block)``."""
        return jacktrip_burg_predict(self.history, self.frames_per_block)

    def _silent_since_ms(self) -> float:
        """Milliseconds since the last arrival, counting the block about to be played."""
        blocks = self.blocks_since_arrival + self._muted_blocks + 1
        return 1000.0 * blocks * self.frames_per_block / self.sample_rate_hz

    def process(self, block: np.ndarray | None, lookahead: Lookahead | None = None) -> np.ndarray:
        """As :meth:`StreamingConcealer.process` (JackTrip's Burg extrapolates: ``lookahead`` is
        ignored), plus JackTrip's priming and 512 ms mute.

        A block muted for the outage is returned as zeros and leaves every state untouched
        (JackTrip does not run ``processPacket`` for it).
        """
        if block is None:
            if self.mute_after_ms is not None and self._silent_since_ms() > self.mute_after_ms:
                self._muted_blocks += 1
                return np.zeros(self.frames_per_block, dtype=np.float32)
        else:
            self._muted_blocks = 0
        return super().process(block, lookahead)

    def _conceal(self) -> np.ndarray:
        guess = super()._conceal()
        return guess if self.primed else np.zeros_like(guess)
