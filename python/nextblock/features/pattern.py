"""The long-term guess: pattern matching on 85 ms of history, for what the network cannot see.

The network reads 1024 samples (21 ms at 48 kHz) and its Burg guess models lags up to 128
samples (2.7 ms): a voice at 100–400 Hz repeats every 120–480 samples, and the waveform of the
last period is the best guess of the next one. Pattern matching (waveform substitution, as in
ITU-T G.711 Appendix I and most speech PLC) copies it:

1. the *template* is the last :data:`TEMPLATE_SAMPLES` (256) samples of the history;
2. the earlier segment most like it (normalised cross-correlation, lags from
   :data:`MIN_LAG_SAMPLES`; a coarse search on sums of 4 samples, refined at full rate) marks a
   *lag* L; the guess is what followed that segment — the last L samples, repeated — times the
   least-squares gain (at most :data:`MAX_GAIN`).

A copy is right for a held note or a voiced vowel and wrong for noise, onsets and polyphony, so a
**gate** decides how much of it to play: the same match made :data:`BACKCAST_SAMPLES` earlier
continues the history into its own last 128 samples, and so does an order-32 Burg AR fitted to
the 512 samples before them; the weight goes from 0 to 1 as the pattern's SNR there exceeds the
AR's by :data:`GATE_LO_DB` to :data:`GATE_HI_DB`.

In a burst of losses the history ends with what was concealed. Matching on that would copy our
own guesses (and the gate would trust them), so :meth:`LongTermGuess.guess` takes the number of
concealed samples at the end: the match is made on the real audio before them and continued that
much further, with the weight times :data:`DECAY_PER_128_SAMPLES` per 128 concealed samples. That
factor is 0: played on through a burst the copy raised the SNR but also the LSD (a repeated period
has a frozen spectrum), so the guess serves a burst's first block only and costs nothing after it.

:class:`nextblock.model.adapters.LongTermBlend` blends this into the model's prediction in one C++
call (:meth:`LongTermGuess.blend_into`; :func:`blend_long_term` is the same blend in numpy, after
:meth:`LongTermGuess.guess`). The C++ kernel (``csrc/nextblock/pattern.hpp``,
``nextblock._core.LongTermPredictor``) costs ~40 µs median per channel at 4096 samples;
:func:`reference_long_term_guess` is the same in numpy/scipy (exhaustive search by FFT), which the
tests hold it to.

Measured on the validation set (``python -m nextblock.evaluate``, 33 files, 48 kHz × 128, seed 1),
NextBlock 3.2.0 without → with the long-term guess, SNR / LSD in dB: Bernoulli 5 % 5.29 / 3.22 →
5.85 / 3.23, Gilbert bursts 2.30 / 5.08 → 2.61 / 5.06; speech 5.76 → 6.94 (Bernoulli), music
5.18 → 5.31 (docs/notes/model.md has how the gate, decay and fade were chosen).
"""

from __future__ import annotations

import functools

import numpy as np

from .. import _core
from .lpc import SILENCE_MEAN_SQUARE, burg_continuation

#: samples of history searched (85 ms at 48 kHz)
HISTORY_SAMPLES = 4096
#: samples of the template matched against the history
TEMPLATE_SAMPLES = 256
#: shortest lag considered (1.5 kHz at 48 kHz)
MIN_LAG_SAMPLES = 32
#: samples at the end of the history the gate's two guesses are compared on
BACKCAST_SAMPLES = 128
#: the gate's reference: an AR model of this order fitted by Burg's method ...
GATE_AR_ORDER = 32
#: ... to this many samples before the backcast
GATE_AR_SAMPLES = 512
#: the copied period's gain is clipped to [0, MAX_GAIN]
MAX_GAIN = 1.5
#: where the period repeats, its last WRAP_FRACTION of a lag (at most WRAP_MAX_SAMPLES) is
#: cross-faded into the samples that preceded its start, so repetitions join without a step (a
#: quarter period, as G.711 Appendix I; validation set, Bernoulli 5 %: LSD 3.23 → 3.19 dB, speech
#: 3.11 → 3.01, SNR unchanged; half or a whole period measured the same)
WRAP_FRACTION = 0.25
WRAP_MAX_SAMPLES = 64
#: the weight is 0 where the pattern's backcast SNR exceeds the AR's by GATE_LO_DB or less ...
GATE_LO_DB = 0.0
#: ... and 1 from GATE_HI_DB on
GATE_HI_DB = 6.0
#: weight kept per 128 samples already concealed in a burst: 0, the first block of a burst only
#: (validation set, Gilbert bursts, with the wrap cross-fade and the short recovery splice, SNR /
#: LSD / ViSQOL at 48 kHz × 128: 0 → 2.94 / 4.77 / 4.606, 0.4 → 3.12 / 4.79 / 4.607, 0.6 → 3.25 /
#: 4.84 / 4.598; at 64 frames 0 → 3.09 / 3.69, 0.4 → 3.45 / 4.02 dB, also when the weight decays
#: sample by sample instead of block by block: the copy played on costs LSD)
DECAY_PER_128_SAMPLES = 0.0
#: samples over which the guess fades in from the model's prediction at a burst's first block
FADE_IN_SAMPLES = 128


class LongTermGuess:
    """The long-term guess and its weight for rows of history (C++; one call for all rows).

    Parameters
    ----------
    history_samples:
        Samples of history each call reads (default :data:`HISTORY_SAMPLES`).
    """

    def __init__(self, history_samples: int = HISTORY_SAMPLES):
        self.history_samples = int(history_samples)
        self._core = _core.LongTermPredictor(
            self.history_samples,
            TEMPLATE_SAMPLES,
            MIN_LAG_SAMPLES,
            BACKCAST_SAMPLES,
            GATE_AR_ORDER,
            GATE_AR_SAMPLES,
            MAX_GAIN,
            GATE_LO_DB,
            GATE_HI_DB,
            SILENCE_MEAN_SQUARE,
            WRAP_FRACTION,
            WRAP_MAX_SAMPLES,
        )

    def guess(
        self, history: np.ndarray, concealed_samples: np.ndarray | int, n_samples: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The next ``n_samples`` of every row and how much to trust them.

        Parameters
        ----------
        history:
            ``(rows, history_samples)`` float32, newest last.
        concealed_samples:
            ``(rows,)`` (or one int for all rows): samples at the end of each row that were
            concealed, not received (0 outside a burst).
        n_samples:
            Samples to guess.

        Returns
        -------
        guess : numpy.ndarray
            ``(rows, n_samples)`` float32 (zeros where the weight is 0).
        weight : numpy.ndarray
            ``(rows,)`` float64 in [0, 1], the decay in a burst included.
        """
        history = self._history(history)
        concealed = _concealed_rows(concealed_samples, history.shape[0])
        rows = history.shape[0]
        if not concealed.any():
            return self._core.predict(history, concealed, int(n_samples))
        factor = _burst_factor(concealed)
        live = factor > 0.0
        guess = np.zeros((rows, int(n_samples)), np.float32)
        weight = np.zeros(rows)
        if live.any():  # rows whose weight would be 0 are not computed
            guess[live], weight[live] = self._core.predict(history[live], concealed[live], int(n_samples))
        weight *= factor
        return guess, weight

    def blend_into(
        self, history: np.ndarray, concealed_samples: np.ndarray | int, prediction: np.ndarray
    ) -> np.ndarray:
        """:meth:`guess` and :func:`blend_long_term` in one C++ call (the live path's).

        ``prediction``: ``(rows, n_samples)`` float32, C-contiguous and writeable, blended in
        place. Returns the weights ``(rows,)`` float64 (the decay in a burst included)."""
        history = self._history(history)
        concealed = _concealed_rows(concealed_samples, history.shape[0])
        return self._core.blend_into(history, concealed, _burst_factor(concealed), prediction, FADE_IN_SAMPLES)

    def _history(self, history: np.ndarray) -> np.ndarray:
        history = np.ascontiguousarray(history, dtype=np.float32)
        if history.ndim != 2 or history.shape[1] != self.history_samples:
            raise ValueError(f"history must have shape (rows, {self.history_samples}), got {history.shape}")
        return history


def _concealed_rows(concealed_samples: np.ndarray | int, rows: int) -> np.ndarray:
    """``(rows,)`` int64 concealed samples per row, checked."""
    if np.ndim(concealed_samples) == 0:
        if concealed_samples < 0:
            raise ValueError("concealed_samples must not be negative")
        return np.full(rows, int(concealed_samples), np.int64)
    concealed = np.ascontiguousarray(concealed_samples, dtype=np.int64)
    if concealed.shape != (rows,):
        raise ValueError(f"concealed_samples must be one int or have shape ({rows},), got {concealed.shape}")
    if (concealed < 0).any():
        raise ValueError("concealed_samples must not be negative")
    return concealed


def _burst_factor(concealed: np.ndarray) -> np.ndarray:
    """``(rows,)`` float64: the weight kept after ``concealed`` samples of a burst (1 outside one)."""
    return DECAY_PER_128_SAMPLES ** (concealed / 128.0)


def blend_long_term(
    prediction: np.ndarray, guess: np.ndarray, weight: np.ndarray, concealed_samples: np.ndarray | int
) -> np.ndarray:
    """``prediction`` ``(rows, n)`` with ``guess`` ``(rows, n)`` blended in by ``weight`` ``(rows,)``,
    in place; rows outside a burst (``concealed_samples`` 0) fade the guess in over
    :data:`FADE_IN_SAMPLES` (the prediction continues the history sample-exactly, the copied
    period does not). Returns ``prediction``."""
    concealed = np.asarray(concealed_samples)
    ramp = _fade_in(prediction.shape[1])
    w = weight.astype(np.float32)[:, None] * np.where((concealed == 0).reshape(-1, 1), ramp, np.float32(1.0))
    prediction += w * (guess - prediction)
    return prediction


@functools.lru_cache(maxsize=16)
def _fade_in(n: int) -> np.ndarray:
    """``(n,)`` float32: 0 → 1 over :data:`FADE_IN_SAMPLES`, then 1 (cached; read-only)."""
    ramp = np.ones(n, np.float32)
    k = min(FADE_IN_SAMPLES, n)
    ramp[:k] = (np.arange(k, dtype=np.float32) + 0.5) / FADE_IN_SAMPLES
    ramp.flags.writeable = False
    return ramp


def reference_match(history: np.ndarray, end: int) -> tuple[int, float]:
    """The lag and gain of the exhaustive match for the template ending at ``end`` (numpy/scipy,
    the FFT cross-correlation): ``(0, 0.0)`` when nothing correlates positively."""
    h = np.asarray(history, dtype=np.float64)[:end]
    w = TEMPLATE_SAMPLES
    template = h[-w:]
    template_energy = float(template @ template)
    searched = h[: end - MIN_LAG_SAMPLES]
    if template_energy <= 0.0 or searched.shape[0] < w:
        return 0, 0.0
    import scipy.signal  # the reference only: importing scipy.signal costs seconds at attach's start

    corr = scipy.signal.correlate(searched, template, mode="valid", method="fft")  # corr[s]: segment h[s:s+w]
    cumulative = np.concatenate([[0.0], np.cumsum(searched * searched)])
    energy = cumulative[w:] - cumulative[:-w]
    valid = (energy > 1e-12 * template_energy) & (corr > 0.0)
    if not np.any(valid):
        return 0, 0.0
    score = np.where(valid, corr * np.abs(corr) / np.maximum(energy, 1e-300), -np.inf)
    s = int(np.argmax(score))
    return end - w - s, float(np.clip(corr[s] / energy[s], 0.0, MAX_GAIN))


def reference_long_term_guess(history: np.ndarray, concealed_samples: int, n_samples: int) -> tuple[np.ndarray, float]:
    """:meth:`LongTermGuess.guess` for one row in numpy/scipy (exhaustive search; the C++ kernel's
    coarse-to-fine search finds the same lag on most real audio): ``((n_samples,) float32, weight)``."""
    h = np.asarray(history, dtype=np.float32).reshape(-1)
    end = h.shape[0] - int(concealed_samples)
    zeros = np.zeros(n_samples, np.float32)
    if not np.all(np.isfinite(h)) or end < BACKCAST_SAMPLES + GATE_AR_SAMPLES:
        return zeros, 0.0
    if float(np.mean(np.square(h[end - GATE_AR_SAMPLES : end], dtype=np.float64))) <= SILENCE_MEAN_SQUARE:
        return zeros, 0.0
    probe_end = end - BACKCAST_SAMPLES
    lag, gain = reference_match(h, probe_end)
    if lag == 0:
        return zeros, 0.0
    truth = h[probe_end:end].astype(np.float64)
    pattern = gain * _periodic(h, probe_end, lag, 0, BACKCAST_SAMPLES)
    ar = burg_continuation(h[None, probe_end - GATE_AR_SAMPLES : probe_end], GATE_AR_ORDER, BACKCAST_SAMPLES)[0]
    advantage_db = _snr_db(truth, pattern) - _snr_db(truth, ar)
    weight = float(np.clip((advantage_db - GATE_LO_DB) / (GATE_HI_DB - GATE_LO_DB), 0.0, 1.0))
    if weight <= 0.0:
        return zeros, 0.0
    lag, gain = reference_match(h, end)
    if lag == 0:
        return zeros, 0.0
    guess = (gain * _periodic(h, end, lag, int(concealed_samples), n_samples)).astype(np.float32)
    return guess, weight * DECAY_PER_128_SAMPLES ** (concealed_samples / 128.0)


def _periodic(h: np.ndarray, end: int, lag: int, offset: int, n: int) -> np.ndarray:
    """Samples ``offset`` to ``offset + n`` of the period ``h[end - lag:end]`` repeated, its last
    ``min(WRAP_MAX_SAMPLES, int(WRAP_FRACTION * lag))`` samples cross-faded into ``h[end - 2 lag:]``."""
    h = np.asarray(h, np.float64)
    period = h[end - lag : end].copy()
    k = min(WRAP_MAX_SAMPLES, int(WRAP_FRACTION * lag))
    if k > 0:
        r = np.arange(1, k + 1) / (k + 1)
        period[lag - k :] += r * (h[end - lag - k : end - lag] - period[lag - k :])
    return period[(offset + np.arange(n)) % lag]


def _snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    error = reference - np.asarray(estimate, np.float64)
    return 10.0 * np.log10((float(reference @ reference) + 1e-12) / (float(error @ error) + 1e-12))
