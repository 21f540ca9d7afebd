"""Filling a lost block from both sides with a two-sided NextBlock network (runtime, LiteRT).

A two-sided model (``python -m nextblock.train --two-sided``; metadata ``two_sided``) is the causal
network fine-tuned to correct a *two-sided* guess instead of Burg's extrapolation: the gap filled
by plain least-squares AR interpolation from the past and the packet that arrived after it, then
that packet (:func:`nextblock.features.twosided.two_sided_guess`). It sees the past context in its
spectral channels and the future through the guess, and learns how much of each to trust, which a
rule (the causal prediction fused as a prior, :func:`~nextblock.features.twosided.fill_gap`) can
only approximate.

:class:`TwoSidedPredictor` wraps a :class:`~nextblock.model.runner.BlockPredictor`: the network's
gap starts as the guess (the model's boundary ramp, as every prediction does) and ends as it over
:data:`END_RAMP_SAMPLES`: the interpolation meets the packet after the gap exactly, so the block
after a two-sided fill plays as it arrived, with no splice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..features import twosided
from ..features.continuity import boundary_ramp
from ..features.twosided import DEFAULT_FIT_SAMPLES, FAST_GUESS, GuessRecipe, two_sided_guess
from .metadata import ModelFileError
from .runner import BlockPredictor

#: file stem of the shipped two-sided model (``models/<name>.tflite``)
TWO_SIDED_MODEL_NAME = "nextblock-twosided"
#: samples at the gap's end over which the network's fill is cross-faded into the interpolation,
#: which ends where the next packet begins
END_RAMP_SAMPLES = 32
#: a network fill louder than this times the louder neighbour (the gap's length of past before
#: it, the future after it) is refused for the interpolation it corrects, as the LSAR fill's own
#: guard refuses (``kGuardRatio`` in ``csrc/nextblock/lsar.hpp``): an onset after silence is
#: outside what the network was trained on (contexts far quieter than their continuation)
GUARD_RATIO = 2.0


class TwoSidedPredictor:
    """Fill a ``gap_samples`` gap between a past and the packet after it, every channel.

    Parameters
    ----------
    model_path:
        A two-sided ``.tflite`` (metadata ``two_sided``); ``None``: the shipped
        :data:`TWO_SIDED_MODEL_NAME`.
    predictor:
        An already loaded :class:`BlockPredictor` of a two-sided model (then ``model_path`` is
        ignored).

    Raises ``FileNotFoundError`` or :class:`~nextblock.model.metadata.ModelFileError` for a missing
    model or one that is not two-sided.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        predictor: BlockPredictor | None = None,
        num_threads: int = 1,
        warm_up: bool = True,
    ):
        if predictor is None:
            from . import default_model_path

            predictor = BlockPredictor(
                model_path if model_path is not None else default_model_path(TWO_SIDED_MODEL_NAME),
                num_threads=num_threads,
                warm_up=False,
            )
        spec = predictor.metadata.get("two_sided")
        if not isinstance(spec, dict):
            raise ModelFileError(f"{predictor.model_path}: not a two-sided model (its metadata has no 'two_sided')")
        self.model = predictor
        #: samples of the gap the network was trained on (one block)
        self.gap_samples = int(spec["gap_samples"])
        #: how the interpolation it corrects is made (order, the causal prediction's weight, ...)
        self.recipe = GuessRecipe.from_metadata(spec)
        #: whether that interpolation is fused with the causal prediction (``fill`` then needs it)
        self.needs_prior = spec.get("guess") == "fusion"
        #: samples of the horizon after the gap that must have arrived
        self.future_samples = self.model.horizon_samples - self.gap_samples
        self._end_ramp = boundary_ramp(END_RAMP_SAMPLES)[::-1].copy()  # 0 -> 1: from the network to the guess
        if warm_up:
            rng = np.random.default_rng(0)
            for _ in range(4):
                x = (0.1 * rng.standard_normal((1, DEFAULT_FIT_SAMPLES + self.model.horizon_samples))).astype(
                    np.float32
                )
                self.fill(
                    x[:, :DEFAULT_FIT_SAMPLES],
                    x[:, DEFAULT_FIT_SAMPLES + self.gap_samples :],
                    x[:, DEFAULT_FIT_SAMPLES : DEFAULT_FIT_SAMPLES + self.gap_samples] if self.needs_prior else None,
                )

    @property
    def past_samples(self) -> int:
        """Samples of the past :meth:`fill` needs (the context, and the interpolation's fit)."""
        return max(self.model.context_samples, DEFAULT_FIT_SAMPLES)

    def fill(self, past: np.ndarray, future: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
        """The gap between ``past`` ``(channels, >= past_samples)`` and ``future`` ``(channels, >=
        future_samples)`` float32 (the samples right after the gap) → ``(channels, gap_samples)``
        float32, finite, starting on the past and ending where ``future`` begins. ``prior``
        ``(channels, gap_samples)``: the causal prediction of the gap, which a model trained on a
        fused guess (:attr:`needs_prior`) requires."""
        past = np.atleast_2d(np.asarray(past, dtype=np.float32))
        future = np.atleast_2d(np.asarray(future, dtype=np.float32))
        if past.shape[1] < self.past_samples or future.shape[1] < self.future_samples:
            raise ValueError(
                f"the two-sided model needs {self.past_samples} past and {self.future_samples} future "
                f"samples, got {past.shape[1]} and {future.shape[1]}"
            )
        if self.needs_prior and prior is None:
            raise ValueError("this two-sided model corrects a fused guess: give the causal prediction as prior")
        guess = two_sided_guess(
            past,
            future,
            self.gap_samples,
            self.model.horizon_samples,
            prior if self.needs_prior else None,
            recipe=self.recipe,
        )
        blocks = self.model.predict_with_guess(past[:, -self.model.context_samples :], guess)
        fill = blocks.reshape(blocks.shape[0], -1)[:, : self.gap_samples].copy()
        n = min(END_RAMP_SAMPLES, self.gap_samples)
        gap = self.gap_samples
        fill[:, -n:] += self._end_ramp[-n:] * (guess[:, gap - n : gap] - fill[:, -n:])
        before = np.mean(np.square(past[:, -gap:], dtype=np.float64), axis=1)
        after = np.mean(np.square(future[:, : self.future_samples], dtype=np.float64), axis=1)
        loud = np.mean(np.square(fill, dtype=np.float64), axis=1) > GUARD_RATIO * np.maximum(before, after)
        #: rows whose network fill the guard refused in the last call
        self.refused = int(np.count_nonzero(loud))
        if self.refused:
            fill[loud] = guess[loud, :gap]
        return fill


class TwoSidedFill:
    """The two-sided fill NextBlock plays, for the live runtime and the harness alike.

    ``fill(past, future, gap_samples, prior=None, sample_rate_hz=48000)`` → ``(channels,
    gap_samples)`` float32: the two-sided network where it was trained for the gap (one block of
    its size, its horizon's rest arrived, enough past: :meth:`uses_network`), else the fusion
    (:func:`nextblock.features.twosided.fill_gap`: LSAR with ``prior``, the causal prediction).

    Parameters
    ----------
    network:
        A :class:`TwoSidedPredictor`, or ``None``: the fusion fills every gap.
    """

    def __init__(self, network: TwoSidedPredictor | None):
        self.network = network
        #: gaps filled by the network, by the fusion and by the fast fusion (:meth:`fast`)
        self.network_fills = self.fusion_fills = self.fast_fills = 0

    @classmethod
    def shipped(cls) -> TwoSidedFill:
        """With the shipped two-sided model if this install has it (else the fusion alone)."""
        try:
            return cls(TwoSidedPredictor())
        except FileNotFoundError:
            return cls(None)

    def uses_network(self, past_samples: int, future_samples: int, gap_samples: int) -> bool:
        """Whether a gap of this shape is the network's (else the fusion's)."""
        n = self.network
        return (
            n is not None
            and gap_samples == n.gap_samples
            and future_samples >= n.future_samples
            and past_samples >= n.past_samples
        )

    def __call__(
        self,
        past: np.ndarray,
        future: np.ndarray,
        gap_samples: int,
        prior: np.ndarray | None = None,
        sample_rate_hz: int = 48000,
    ) -> np.ndarray:
        past = np.atleast_2d(past)
        future = np.atleast_2d(future)
        if self.uses_network(past.shape[1], future.shape[1], int(gap_samples)) and (
            prior is not None or not self.network.needs_prior
        ):
            self.network_fills += 1
            return self.network.fill(past, future, prior)
        self.fusion_fills += 1
        # looked up at the call (twosided.fill_gap), as every caller of the fill does
        return twosided.fill_gap(past, future, int(gap_samples), prior, sample_rate_hz)[0]

    def fast(
        self,
        past: np.ndarray,
        future: np.ndarray,
        gap_samples: int,
        prior: np.ndarray | None = None,
        sample_rate_hz: int = 48000,
    ) -> np.ndarray:
        """The same gap filled by the cheap fusion: LSAR(128) with the prior at a constant weight,
        whose normal equations are Toeplitz with a block after the gap (a Levinson solve, ~3x less
        time than :meth:`__call__`'s fill). For when the full fill would finish after the lost
        block's pull: a two-sided fill that is in time beats a causal one (validation, 48 kHz x 128,
        5 % loss: 9.18 dB against the full fusion's 9.32 and the causal prediction's ~7.6)."""
        self.fast_fills += 1
        return twosided.fill_gap(
            np.atleast_2d(past),
            np.atleast_2d(future),
            int(gap_samples),
            prior,
            sample_rate_hz,
            order=FAST_GUESS.order,
            prior_weight=FAST_GUESS.prior_weight if prior is not None else 0.0,
            prior_fade=FAST_GUESS.prior_fade,
            levinson=FAST_GUESS.levinson,
        )[0]


__all__ = ["END_RAMP_SAMPLES", "TWO_SIDED_MODEL_NAME", "TwoSidedFill", "TwoSidedPredictor"]
