"""A cheap linear-prediction guess of the continuation, which the network then corrects.

The network alone is trained with a waveform loss and so shrinks whatever it cannot predict:
its guesses are too quiet where the signal is noisy, which the log-spectral distance (and the
ear) punish. An all-pole model fitted to the context continues every partial and the noise
floor at their level instead. As in PARCnet (an AR model plus a network on its residual), the
NextBlock model gets this *LPC guess* as an extra input and adds it, weighted per frequency
bin by complex gains it predicts, to its own deep-filter output (see
:mod:`nextblock.model.architecture`).

How the guess is made, per channel (the C++ kernel ``csrc/nextblock/lpc.hpp`` through
``nextblock._core.lpc_continuation``; a few µs at order 32, where numpy/scipy took ~35 µs):

1. the circular autocorrelation, lags ``0..p``, of the *windowed* context — the frame whose FFT
   :class:`~nextblock.features.spectral.SpectralCodec` takes anyway (``irfft(|X|²)[:p + 1]``
   gives the same; the analysis window tapers both ends, so the wrap-around is negligible);
2. a Gaussian lag window (:data:`LAG_WINDOW_HZ` bandwidth expansion) and a tiny white-noise
   correction, then Levinson-Durbin gives the minimum-phase ``A(z) = 1 + a1 z^-1 + … + ap z^-p``;
3. the AR recursion ``y[t] = -Σ a_j y[t - j]`` continues the context's last ``p`` samples.

Models from 3.0 (``FeatureConfig.lpc_burg_samples > 0``) fit the guess with **Burg's method** to
the plain last ``lpc_burg_samples`` of the context instead (:func:`burg_continuation`, C++
``burg_continue_row``, bit-identical to ``librosa.lpc`` + the AR recursion): PARCnet's AR(128).
One-shot next-block SNR of the guess alone on 994 windows of the held-out set by category
(48 kHz): autocorrelation order 32 on the windowed 1024: 6.56 dB (second block 4.45); order 64:
6.91; order 128: 5.84 (worse: the method is badly conditioned there, with any window); Burg order
128 on 768 / 1024 / 1280 samples: 10.67 / 10.64 / 10.11 dB (second block 9.23 / 9.06 / 8.38);
Burg order 64 on 1280: 8.11. ~50-65 µs per channel (AVX2), against ~10 µs for order 32.

Measured on the held-out set (``python -m nextblock.evaluate``, 48 kHz, 128 frames, Bernoulli
5 %): this guess alone scores SNR 3.06 dB / LSD 3.26 dB against JackTrip's Burg 2.89 / 3.30 dB
at about 1/40 of the cost (docs/notes/model.md).
"""

from __future__ import annotations

import functools

import numpy as np

from .. import _core

#: bandwidth of the Gaussian lag window, Hz: widens sharp resonances a little so that the
#: extrapolation of a partial that drifts does not ring on at a slightly wrong frequency.
LAG_WINDOW_HZ = 60.0
#: white-noise correction: r[0] is multiplied by ``1 + WHITE_NOISE_CORRECTION``.
WHITE_NOISE_CORRECTION = 1e-6
#: a context whose windowed energy r[0] is below this (in the codec's RMS units) gets a zero guess.
SILENCE_ENERGY = 1e-10
#: a history whose mean square is below this (≈ -120 dBFS) gets a zero Burg guess.
SILENCE_MEAN_SQUARE = 1e-12


@functools.lru_cache(maxsize=8)
def lag_window(order: int, sample_rate_hz: int, bandwidth_hz: float = LAG_WINDOW_HZ) -> np.ndarray:
    """``(order + 1,)`` float64 Gaussian lag window ``exp(-(2π·bw·k/fs)² / 2)`` (cached; read-only)."""
    lags = np.arange(order + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (2.0 * np.pi * bandwidth_hz / sample_rate_hz * lags) ** 2)
    weights.flags.writeable = False
    return weights


def burg_continuation(history: np.ndarray, order: int, n_samples: int) -> np.ndarray:
    """The Burg AR guess of the next ``n_samples`` of every history row.

    ``history``: ``(rows, history_samples)`` float32, newest last (``history_samples > order``).
    Returns ``(rows, n_samples)`` float32 at the level of its input; zeros for a row whose mean
    square is below :data:`SILENCE_MEAN_SQUARE`.
    """
    return _core.burg_continuation(
        np.ascontiguousarray(history, dtype=np.float32), order, n_samples, SILENCE_MEAN_SQUARE
    )


def lpc_continuation(
    context: np.ndarray, windowed: np.ndarray, order: int, n_samples: int, sample_rate_hz: int
) -> np.ndarray:
    """The LPC guess of the next ``n_samples`` of every context row.

    Parameters
    ----------
    context:
        ``(rows, context_samples)`` float32, newest last (any level: the guess has the same one).
    windowed:
        ``(rows, context_samples)`` float32: each row times the analysis window (any constant
        gain) – the autocorrelation is taken of these.
    order:
        AR order ``p`` (``0 < p < context_samples``).
    n_samples:
        Samples to predict.
    sample_rate_hz:
        For the lag window.

    Returns
    -------
    numpy.ndarray
        ``(rows, n_samples)`` float32; zeros for a row whose windowed energy is below
        :data:`SILENCE_ENERGY`.
    """
    return _core.lpc_continuation(
        context, windowed, order, n_samples, lag_window(order, sample_rate_hz), WHITE_NOISE_CORRECTION, SILENCE_ENERGY
    )
