"""The sizes shared by the feature extraction, the network, the exporter and the runner."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Everything that fixes the shapes of the NextBlock pipeline.

    Attributes
    ----------
    frames_per_block:
        Samples per JackTrip block (``--bufsize``), e.g. 128.
    context_samples:
        How many past samples the network sees (newest last), e.g. 1024 (21.3 ms at 48 kHz).
        Must be a multiple of ``output_samples`` so that the input's frequency bins line up with
        the output's (``bin_stride`` input bins per output bin).
    sample_rate_hz:
        Sample rate the model was trained at, e.g. 48000.
    outputs_blocks:
        Blocks predicted per call: 2 (the next block and the one after, for the cross-fade).
    window_fall_samples:
        Length of the short fall at the newest end of the asymmetric analysis window (see
        :func:`nextblock.features.window.analysis_window`).
    lpc_order:
        Order of the linear-prediction guess fed to the network next to the spectrum
        (:mod:`nextblock.features.lpc`); 0: none (models before 2.0).
    lpc_burg_samples:
        0: the guess is fitted by the autocorrelation method to the windowed context (models
        2.x); ``> lpc_order``: by Burg's method to the context's last ``lpc_burg_samples``
        samples (models from 3.0: order 128 on 768 samples, PARCnet's AR(128)).
    """

    frames_per_block: int = 128
    context_samples: int = 1024
    sample_rate_hz: int = 48000
    outputs_blocks: int = 2
    window_fall_samples: int = 128
    lpc_order: int = 0
    lpc_burg_samples: int = 0

    def __post_init__(self) -> None:
        if self.frames_per_block <= 0:
            raise ValueError(f"frames_per_block must be positive, got {self.frames_per_block}")
        if self.outputs_blocks <= 0:
            raise ValueError(f"outputs_blocks must be positive, got {self.outputs_blocks}")
        if self.context_samples <= 0 or self.context_samples % self.output_samples:
            raise ValueError(
                f"context_samples ({self.context_samples}) must be a positive multiple of "
                f"output_samples = outputs_blocks * frames_per_block ({self.output_samples})"
            )
        if not 0 <= self.window_fall_samples < self.context_samples // 2:
            raise ValueError(f"window_fall_samples must be in [0, context_samples / 2), got {self.window_fall_samples}")

        if self.lpc_burg_samples:
            if not self.lpc_order < self.lpc_burg_samples <= self.context_samples:
                raise ValueError(
                    f"lpc_burg_samples must be in (lpc_order, context_samples], got {self.lpc_burg_samples}"
                )
        elif not 0 <= 2 * self.lpc_order <= self.context_samples:
            raise ValueError(f"lpc_order must be in [0, context_samples / 2], got {self.lpc_order}")

    @property
    def output_samples(self) -> int:
        """Samples predicted per call: ``outputs_blocks * frames_per_block`` (256 by default)."""
        return self.outputs_blocks * self.frames_per_block

    @property
    def input_bins(self) -> int:
        """Frequency bins of the context's real FFT: ``context_samples // 2 + 1`` (513)."""
        return self.context_samples // 2 + 1

    @property
    def output_bins(self) -> int:
        """Frequency bins of the predicted segment's real FFT: ``output_samples // 2 + 1`` (129)."""
        return self.output_samples // 2 + 1

    @property
    def bin_stride(self) -> int:
        """Input bins per output bin (``context_samples // output_samples``, 4 by default)."""
        return self.context_samples // self.output_samples

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for metadata and checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FeatureConfig:
        """Inverse of :meth:`to_dict`; unknown keys are ignored, missing ones take defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: int(v) for k, v in values.items() if k in names})
