"""The NextBlock concealer: the model's prediction, through the shared streaming interface."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from ..features.twosided import DEFAULT_ORDER, DEFAULT_PRIOR_FADE, DEFAULT_PRIOR_WEIGHT, fill_gap
from ..model.runner import BlockPredictor
from ..model.stream import stream_predictor
from ..model.two_sided import TwoSidedFill, TwoSidedPredictor
from .base import StreamingConcealer


class NextBlockConcealer(StreamingConcealer):
    """Conceal a lost block with the NextBlock model's prediction (one channel).

    The model predicts a fixed horizon of samples; :func:`~nextblock.model.stream.stream_predictor`
    cuts (or chains) the two blocks of this stream from it, so any block size the model's
    metadata allows works (16 to 1024 frames for models from 3.0; only their own before).

    Parameters
    ----------
    frames_per_block:
        Samples per block.
    sample_rate_hz:
        Stream sample rate; must be one the model was trained at (metadata ``sample_rates_hz``).
    model_path:
        ``.tflite`` to load (``None``: the shipped default model).
    predictor:
        An already loaded :class:`~nextblock.model.runner.BlockPredictor` to share between the
        channels of one stream (then ``model_path`` is ignored).

    Raises ``ValueError`` when the model cannot serve this block size or sample rate.
    """

    name: ClassVar[str] = "nextblock"
    #: real audio resumes as the patched JackTrip splices it after a replacement (a 0.67 ms fade)
    crossfade_kind: ClassVar[str] = "recovery"
    #: blend in the long-term (pattern-matching) guess, as the live runtime does
    long_term: ClassVar[bool] = True
    #: with the block after a gap in the buffer, fill it from both sides: the least-squares AR
    #: interpolation fused with this model's causal prediction (:mod:`nextblock.features.twosided`)
    two_sided: ClassVar[bool] = True
    #: the causal prediction's weight in that fusion (0: LSAR alone; see ``fill_gap``)
    prior_weight: ClassVar[float] = DEFAULT_PRIOR_WEIGHT
    #: the share of that weight that fades out towards the gap's end
    prior_fade: ClassVar[float] = DEFAULT_PRIOR_FADE
    #: the AR order of that interpolation
    two_sided_order: ClassVar[int] = DEFAULT_ORDER
    #: fill a gap the two-sided network was trained on (one block of its size, the packet after it
    #: in the buffer) with that network (:class:`~nextblock.model.two_sided.TwoSidedPredictor`,
    #: the shipped ``nextblock-twosided`` model) rather than the fusion; other gaps use the fusion
    two_sided_network: ClassVar[bool] = True

    def __init__(
        self,
        frames_per_block: int,
        sample_rate_hz: int = 48000,
        model_path: str | Path | None = None,
        *,
        predictor: BlockPredictor | None = None,
        two_sided_model_path: str | Path | None = None,
    ):
        model = predictor if predictor is not None else BlockPredictor(model_path)
        self.stream = stream_predictor(model, frames_per_block, sample_rate_hz, long_term=self.long_term)
        self.predictor = model
        self._two_sided_model_path = two_sided_model_path
        self._two_sided: TwoSidedPredictor | None | bool = None  # None: not loaded yet; False: none to load
        history = max(self.stream.context_samples, frames_per_block)
        if self.two_sided_network:
            history = max(history, self._two_sided_past_samples())
        super().__init__(frames_per_block, sample_rate_hz, history_samples=history)

    def _two_sided_past_samples(self) -> int:
        from ..features.twosided import DEFAULT_FIT_SAMPLES

        return max(self.stream.context_samples, DEFAULT_FIT_SAMPLES)

    def two_sided_predictor(self) -> TwoSidedPredictor | None:
        """The two-sided network, loaded on first use; ``None`` where there is none (then the fusion
        fills every gap). An explicit ``two_sided_model_path`` that cannot be loaded raises."""
        if self._two_sided is None:
            try:
                self._two_sided = TwoSidedPredictor(self._two_sided_model_path)
            except FileNotFoundError:
                if self._two_sided_model_path is not None:
                    raise
                self._two_sided = False
        return self._two_sided or None

    def predict(self) -> np.ndarray:
        """``(2, frames_per_block)`` float32: the guess for the next two blocks from ``history``
        (the blocks concealed since the last arrival are told to the long-term guess)."""
        context = self.history[-self.stream.context_samples :]
        concealed = self.blocks_since_arrival * self.frames_per_block if self.lost_last else 0
        return self.stream.predict(context[None, :], concealed)[0]

    def fill_gap(self, future: np.ndarray, gap_samples: int) -> np.ndarray:
        """``(gap_samples,)`` float32: the gap between :attr:`history` and ``future`` filled from both
        sides: by the two-sided network where it was trained for this gap (:attr:`two_sided_network`),
        else the model's causal prediction (its two blocks) fused as the prior where it reaches."""
        causal = self.predict().reshape(-1)
        prior = causal[:gap_samples] if gap_samples <= causal.shape[0] else None
        fill = TwoSidedFill(self.two_sided_predictor() if self.two_sided_network else None)
        if prior is not None and fill.uses_network(self.history.shape[0], future.shape[0], gap_samples):
            return fill(self.history[None, :], future[None, :], gap_samples, prior[None, :])[0]
        fill, _ = fill_gap(
            self.history[None, :],
            future[None, :],
            gap_samples,
            None if prior is None else prior[None, :],
            order=self.two_sided_order,
            prior_weight=self.prior_weight,
            prior_fade=self.prior_fade,
        )
        return fill[0]


class NextBlockFusionConcealer(NextBlockConcealer):
    """Two-sided by the fusion alone (the causal prediction as LSAR's prior), never the two-sided
    network: the product before the network, kept as the ablation it is measured against."""

    name: ClassVar[str] = "nextblock-fusion"
    two_sided_network: ClassVar[bool] = False


class NextBlockNetConcealer(NextBlockConcealer):
    """The network alone: :class:`NextBlockConcealer` without the long-term guess (an ablation)."""

    name: ClassVar[str] = "nextblock-net"
    long_term: ClassVar[bool] = False
