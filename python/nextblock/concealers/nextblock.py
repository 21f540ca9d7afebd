"""The NextBlock concealer: the CNN's prediction, through the shared streaming interface."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from ..model.runner import BlockPredictor
from .base import StreamingConcealer


class NextBlockConcealer(StreamingConcealer):
    """Conceal a lost block with the NextBlock model's prediction (one channel).

    Parameters
    ----------
    frames_per_block:
        Samples per block; must equal the model's ``frames_per_block``.
    sample_rate_hz:
        Stream sample rate; must equal the model's.
    model_path:
        ``.tflite`` to load (``None``: the shipped default model).
    predictor:
        An already loaded :class:`~nextblock.model.runner.BlockPredictor` to share between the
        channels of one stream (then ``model_path`` is ignored).

    Raises ``ValueError`` when the stream's block size or sample rate differs from the model's.
    """

    name: ClassVar[str] = "nextblock"

    def __init__(self, frames_per_block: int, sample_rate_hz: int = 48000, model_path: str | Path | None = None,
                 *, predictor: BlockPredictor | None = None):
        self.predictor = predictor if predictor is not None else BlockPredictor(model_path)
        if int(frames_per_block) != self.predictor.frames_per_block:
            raise ValueError(f"model {self.predictor.name} predicts {self.predictor.frames_per_block}-frame blocks, "
                             f"the stream uses {frames_per_block}")
        if int(sample_rate_hz) != self.predictor.sample_rate_hz:
            raise ValueError(f"model {self.predictor.name} runs at {self.predictor.sample_rate_hz} Hz, "
                             f"the stream at {sample_rate_hz} Hz")
        super().__init__(frames_per_block, sample_rate_hz,
                         history_samples=max(self.predictor.context_samples, frames_per_block))

    def predict(self) -> np.ndarray:
        """``(2, frames_per_block)`` float32: the model's guess for the next two blocks from ``history``."""
        context = self.history[-self.predictor.context_samples:]
        return self.predictor.predict(context[None, :])[0, :2]
