"""Live example builder: replay-buffer windows → network inputs and targets.

The windows come from :class:`nextblock.learning.replay.ReplayBuffer` (random, non-silent,
break-free, older than the held-back window); the conversion is the training side's own
:func:`nextblock.model.data.windows_to_arrays`, i.e. the very :class:`SpectralCodec` the client
runs, so live fine-tuning and offline training see identical examples.
"""

from __future__ import annotations

import numpy as np

from ..features.config import FeatureConfig
from ..model.data import windows_to_arrays
from .replay import ReplayBuffer


class LiveExampleBuilder:
    """Draws training batches from a replay buffer.

    Parameters
    ----------
    buffer:
        The replay buffer (its ``window_samples`` must be ``context_samples + output_samples``).
    config:
        The model's feature sizes.
    seed:
        Seeds the window positions.
    """

    def __init__(self, buffer: ReplayBuffer, config: FeatureConfig, seed: int = 0):
        expected = config.context_samples + config.output_samples
        if buffer.window_samples != expected or buffer.context_samples != config.context_samples:
            raise ValueError(
                f"replay buffer windows ({buffer.context_samples} + {buffer.window_samples - buffer.context_samples}) "
                f"do not match the model ({config.context_samples} + {config.output_samples})"
            )
        self.buffer = buffer
        self.config = config
        self.rng = np.random.default_rng(seed)

    def batch(self, batch_size: int, min_fill: float = 0.5) -> tuple[np.ndarray, np.ndarray] | None:
        """One training batch, or ``None`` while the buffer has too little usable audio.

        Returns
        -------
        features:
            ``(k, input_bins, channels)`` float32 (channels: 3, or 5 with an LPC guess) with ``batch_size * min_fill <= k <= batch_size``.
        targets:
            ``(k, output_samples)`` float32, continuations in their context's RMS units.
        """
        windows = self.buffer.sample_windows(batch_size, self.rng)
        if windows.shape[0] < max(1, int(batch_size * min_fill)):
            return None
        return windows_to_arrays(windows, self.config)
