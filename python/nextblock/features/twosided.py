"""Filling a gap from both sides: the past before a lost block and the packet already after it.

When a packet is lost, the next one is usually in JackTrip's buffer before the lost one plays
(the Regulator's SKIP glitches, the JitterBuffer's queue, a hub's slack). A concealer that sees it
can *interpolate* instead of extrapolating, and its fill ends exactly where the next packet
begins: no splice.

:func:`fill_gap` is the textbook least-squares AR interpolation (LSAR; Janssen, Veldhuis & Vries
1986; Godsill & Rayner, *Digital Audio Restoration*, ch. 5) in the C++ core
(``csrc/nextblock/lsar.hpp``, ``nextblock._core.lsar_fill``):

1. Burg's AR(``order``) is fitted to the last ``fit_samples`` of the past;
2. the gap's samples are the ones that make that model's prediction error smallest over the gap
   and the future samples after it (a banded symmetric system, solved by Cholesky);
3. optionally fused with a *prior* — NextBlock's causal prediction of the gap — as a MAP estimate:
   ``argmin Σ e² + λ Σ (x − prior)²`` with ``λ = prior_weight · r``, where ``r`` is the model's
   relative prediction error on the past (the AR model decides on tonal sound, the prior on noise);
4. guarded: a fill louder than twice its louder neighbour falls back to a raised-cosine blend of
   the forward guess (the prior, else the AR continuation) into the AR model run backwards from
   the future, then to the forward guess alone (:data:`FILL_PATHS` names the paths).

:func:`fill_gap_reference` computes steps 1–3 in float64 numpy (``librosa.lpc`` and a dense
least-squares solve) — the reference the C++ is tested against.

>>> past = np.sin(0.05 * np.arange(2048, dtype=np.float32))[None, :]
>>> future = np.sin(0.05 * np.arange(2048 + 128, 2048 + 256, dtype=np.float32))[None, :]
>>> fill, paths = fill_gap(past, future, 128)
>>> fill.shape, FILL_PATHS[int(paths[0])]
((1, 128), 'interpolated')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from .lpc import SILENCE_MEAN_SQUARE

#: AR order of the two-sided model NextBlock plays (the LSAR baseline, ``--concealer lsar``, keeps
#: the textbook's and PARCnet's 128: :data:`BASELINE_ORDER`). Validation, 48 kHz x 128, Bernoulli 5 %,
#: one block of look-ahead, pooled SNR of the fusion: order 128 9.31 dB, 256 9.35 (instruments
#: 7.85 -> 8.43, singing 8.90 -> 9.20)
DEFAULT_ORDER = 256
#: the LSAR baseline's order
BASELINE_ORDER = 128
#: samples of the past Burg's method is fitted to
DEFAULT_FIT_SAMPLES = 1024
#: the prior's weight relative to the AR model's residual (see the module docstring, step 3); the
#: same validation: 0 (LSAR, the prior only as the guard's fallback) 8.80 dB, 0.3 9.43, 1 9.16,
#: 3 8.91, 10 8.62 without the fade; with it, 0.3 9.17, 1 9.31, 3 9.10 (a larger validation set)
DEFAULT_PRIOR_WEIGHT = 1.0
#: how much of that weight fades out (raised cosine) towards the gap's end, where the future decides
DEFAULT_PRIOR_FADE = 1.0
#: what each code of ``fill_gap``'s second result means (``csrc/nextblock/lsar.hpp``, ``GapFill``)
FILL_PATHS = ("interpolated", "blended", "forward", "silent")


def fill_gap(
    past: np.ndarray,
    future: np.ndarray,
    gap_samples: int,
    prior: np.ndarray | None = None,
    sample_rate_hz: int = 48000,
    *,
    order: int = DEFAULT_ORDER,
    fit_samples: int = DEFAULT_FIT_SAMPLES,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
    prior_fade: float = DEFAULT_PRIOR_FADE,
    blend_only: bool = False,
    levinson: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill ``gap_samples`` between ``past`` and ``future``, every channel.

    Parameters
    ----------
    past:
        ``(channels, past_samples)`` float32, what was played before the gap, newest last
        (``past_samples >= fit_samples``; 1-D is one channel).
    future:
        ``(channels, future_samples)`` float32, the samples that arrived right after the gap
        (at least one).
    gap_samples:
        Samples missing between them (1 to 8192).
    prior:
        ``(channels, gap_samples)`` float32 or ``None``: a forward prediction of the gap (NextBlock's)
        to fuse with the interpolation and to fall back on.
    sample_rate_hz:
        The stream's rate (the model's order is in samples, as JackTrip's Burg is; kept for callers
        that scale it).
    order, fit_samples, prior_weight, prior_fade:
        The AR order, the past samples it is fitted to, the prior's weight (0: plain LSAR) and the
        share of it that fades out towards the gap's end (0: none, 1: all).
    blend_only:
        Skip the interpolation (step 4's blend alone: the forward/backward baseline).
    levinson:
        Allow the Levinson solve where the equations are Toeplitz (``future_samples >= order`` and a
        constant prior weight: ``prior_fade == 0`` or no prior): ~2.5x faster than the Cholesky,
        refined, but on tonal music up to ~0.15 dB below it (the live fast path's choice).

    Returns
    -------
    fill : np.ndarray, ``(channels, gap_samples)`` float32
        Finite; ends where ``future`` begins.
    paths : np.ndarray, ``(channels,)`` int8
        Which path filled each channel (an index into :data:`FILL_PATHS`).

    Raises
    ------
    ValueError
        For shapes that do not fit (``past`` shorter than ``fit_samples``, ``fit_samples <= order``,
        rows that differ, an empty future or gap).
    """
    del sample_rate_hz  # the order is in samples at every rate
    past2 = np.atleast_2d(np.asarray(past, dtype=np.float32))
    future2 = np.atleast_2d(np.asarray(future, dtype=np.float32))
    fit = min(int(fit_samples), past2.shape[1])
    prior2 = None if prior is None else np.atleast_2d(np.asarray(prior, dtype=np.float32))
    if not (np.isfinite(past2).all() and np.isfinite(future2).all()):
        past2 = np.nan_to_num(past2, nan=0.0, posinf=0.0, neginf=0.0)
        future2 = np.nan_to_num(future2, nan=0.0, posinf=0.0, neginf=0.0)
    if prior2 is not None and not np.isfinite(prior2).all():
        prior2 = np.nan_to_num(prior2, nan=0.0, posinf=0.0, neginf=0.0)
    fill, paths = _core.lsar_fill(
        past2,
        future2,
        int(gap_samples),
        int(order),
        fit,
        prior2,
        float(prior_weight),
        float(prior_fade),
        SILENCE_MEAN_SQUARE,
        bool(blend_only),
        bool(levinson),
    )
    return fill, paths


def fill_gap_reference(
    past: np.ndarray,
    future: np.ndarray,
    gap_samples: int,
    prior: np.ndarray | None = None,
    *,
    order: int = DEFAULT_ORDER,
    fit_samples: int = DEFAULT_FIT_SAMPLES,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
    prior_fade: float = DEFAULT_PRIOR_FADE,
) -> np.ndarray:
    """Steps 1–3 of the module docstring in float64 numpy, one channel, no guard: the reference.

    ``past`` ``(past_samples,)``, ``future`` ``(future_samples,)``, ``prior`` ``(gap_samples,)`` or
    ``None`` → ``(gap_samples,)`` float64. Burg by :func:`librosa.lpc`; the least-squares problem
    is built as an explicit ``(G + F [+ G]) × G`` matrix and solved by :func:`numpy.linalg.lstsq`.
    """
    import librosa

    past = np.asarray(past, dtype=np.float64)
    future = np.asarray(future, dtype=np.float64)
    gap, n_future, p = int(gap_samples), future.shape[0], int(order)
    a = librosa.lpc(past[-fit_samples:], order=p)  # [1, a1 .. ap]
    seg = np.concatenate([past[-p:], np.zeros(gap), future])
    rows = gap + n_future
    # e[t] = sum_j a_j seg[p + t - j]: unknown i (seg index p + i) enters e[t] with a[t - i]
    a_u = np.zeros((rows, gap))
    for i in range(gap):
        span = min(p + 1, rows - i)
        a_u[i : i + span, i] = a[:span]
    known = np.array([a @ seg[p + t - np.arange(p + 1)] for t in range(rows)])
    lhs, rhs = a_u, -known
    if prior is not None and prior_weight > 0:
        m = min(128, fit_samples - p)
        fit = past[-fit_samples:]
        residual = np.array([a @ fit[t - np.arange(p + 1)] for t in range(fit_samples - m, fit_samples)])
        lam = prior_weight * float(residual @ residual) / float(fit[-m:] @ fit[-m:])
        fade = 0.5 + 0.5 * np.cos(np.pi * (np.arange(gap) + 0.5) / gap)
        weight = np.sqrt(lam * ((1.0 - prior_fade) + prior_fade * fade))
        lhs = np.vstack([a_u, np.diag(weight)])
        rhs = np.concatenate([-known, weight * np.asarray(prior, dtype=np.float64)])
    return np.linalg.lstsq(lhs, rhs, rcond=None)[0]


#: AR order of the two-sided *network*'s fast guess: an AR model of this order with at least that
#: many future samples has Toeplitz normal equations, which a Levinson solve handles in ~4 G² flops
#: (``lsar.hpp``; ~85 µs a channel at 128 frames against ~300 µs for the AR(256) fill with a fading prior)
NETWORK_GUESS_ORDER = 128
#: the causal prediction's (constant: no fade, so the equations stay Toeplitz) weight in that guess
NETWORK_GUESS_PRIOR_WEIGHT = 0.3


@dataclass(frozen=True)
class GuessRecipe:
    """How a two-sided network's linear guess is made (:func:`two_sided_guess`), recorded in its
    model file's metadata so that the runtime makes the same one.

    ``order``: the AR order; ``prior_weight``: the causal prediction's weight (0 without one);
    ``prior_fade``: how much of that weight fades out towards the gap's end; ``levinson``: the
    Levinson solve allowed where the equations are Toeplitz (no fade, ``order`` within the future
    samples; elsewhere the banded Cholesky)."""

    name: str
    order: int
    prior_weight: float
    prior_fade: float
    levinson: bool

    def metadata(self) -> dict:
        return {
            "guess_recipe": self.name,
            "guess_order": self.order,
            "prior_weight": self.prior_weight,
            "prior_fade": self.prior_fade,
            "levinson": self.levinson,
        }

    @classmethod
    def from_metadata(cls, spec: dict) -> GuessRecipe:
        """The recipe a model file's ``two_sided`` metadata names (files from before recipes were
        recorded: the fast one, at their order and weight)."""
        return cls(
            str(spec.get("guess_recipe", "fast")),
            int(spec.get("guess_order", NETWORK_GUESS_ORDER)),
            float(spec.get("prior_weight", 0.0)),
            float(spec.get("prior_fade", 0.0)),
            bool(spec.get("levinson", True)),
        )


#: the cheap fusion: LSAR(128), the prior at a constant 0.3, Levinson (validation 9.18 dB pooled)
FAST_GUESS = GuessRecipe("fast", NETWORK_GUESS_ORDER, NETWORK_GUESS_PRIOR_WEIGHT, 0.0, True)
#: the full fusion :func:`fill_gap` plays by default: AR(256), the prior at weight 1 fading over
#: the gap, banded Cholesky (validation 9.32 dB pooled; ~3x the fast one's time)
FULL_GUESS = GuessRecipe("full", DEFAULT_ORDER, DEFAULT_PRIOR_WEIGHT, DEFAULT_PRIOR_FADE, False)
#: the recipes by name (``train --two-sided-guess``)
GUESS_RECIPES = {r.name: r for r in (FAST_GUESS, FULL_GUESS)}


def two_sided_guess(
    past: np.ndarray,
    future: np.ndarray,
    gap_samples: int,
    horizon_samples: int,
    prior: np.ndarray | None = None,
    *,
    recipe: GuessRecipe = FAST_GUESS,
    order: int | None = None,
    prior_weight: float | None = None,
    fit_samples: int = DEFAULT_FIT_SAMPLES,
) -> np.ndarray:
    """The linear guess a two-sided network corrects: the gap filled from both sides, then the future.

    ``past`` ``(rows, past_samples)``, ``future`` ``(rows, future_samples)`` float32 with
    ``future_samples >= horizon_samples - gap_samples``, ``prior`` ``(rows, gap_samples)`` (the
    causal prediction of the gap) or ``None`` → ``(rows, horizon_samples)`` float32:
    ``[fill_gap(past, future, gap_samples, prior) | future[:, :horizon_samples - gap_samples]]`` —
    the horizon the network predicts, every sample after the gap the one that arrived. The fill is
    LSAR made as ``recipe`` says (:data:`FAST_GUESS` or :data:`FULL_GUESS`; ``order`` and
    ``prior_weight`` override its own), with the prior when one is given (plain LSAR without).
    """
    past2 = np.atleast_2d(np.asarray(past, dtype=np.float32))
    future2 = np.atleast_2d(np.asarray(future, dtype=np.float32))
    known = int(horizon_samples) - int(gap_samples)
    if known < 0 or future2.shape[1] < known:
        raise ValueError(
            f"a {gap_samples}-sample gap in a {horizon_samples}-sample horizon needs {max(known, 0)} "
            f"future samples, got {future2.shape[1]}"
        )
    weight = recipe.prior_weight if prior_weight is None else prior_weight
    fill, _ = fill_gap(
        past2,
        future2,
        gap_samples,
        prior,
        order=recipe.order if order is None else order,
        fit_samples=fit_samples,
        prior_weight=weight if prior is not None else 0.0,
        prior_fade=recipe.prior_fade,
        levinson=recipe.levinson,
    )
    return np.concatenate([fill, np.nan_to_num(future2[:, :known])], axis=1)
