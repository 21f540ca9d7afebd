"""The NextBlock concealer: the model's prediction, through the shared streaming interface."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from ..model.runner import BlockPredictor
from ..model.stream import StreamPredictor
from .base import StreamingConcealer


class NextBlockConcealer(StreamingConcealer):
    """Conceal a lost block with the NextBlock model's prediction (one channel).

    The model predicts a fixed horizon of samples; :class:`~nextblock.model.stream.StreamPredictor`
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

    def __init__(self, frames_per_block: int, sample_rate_hz: int = 48000, model_path: str | Path | None = None,
                 *, predictor: BlockPredictor | None = None):
        model = predictor if predictor is not None else BlockPredictor(model_path)
        self.stream = StreamPredictor(model, frames_per_block, sample_rate_hz, long_term=self.long_term)
        self.predictor = model
        super().__init__(frames_per_block, sample_rate_hz, history_samples=max(self.stream.context_samples, frames_per_block))

    def predict(self) -> np.ndarray:
        """``(2, frames_per_block)`` float32: the guess for the next two blocks from ``history``
        (the blocks concealed since the last arrival are told to the long-term guess)."""
        context = self.history[-self.stream.context_samples:]
        concealed = self.blocks_since_arrival * self.frames_per_block if self.lost_last else 0
        return self.stream.predict(context[None, :], concealed)[0]


class NextBlockNetConcealer(NextBlockConcealer):
    """The network alone: :class:`NextBlockConcealer` without the long-term guess (an ablation)."""

    name: ClassVar[str] = "nextblock-net"
    long_term: ClassVar[bool] = False
