"""FFT pre- and post-processing around the NextBlock network.

* :mod:`nextblock.features.config`   – :class:`FeatureConfig`, the sizes every stage agrees on
* :mod:`nextblock.features.window`   – the asymmetric analysis window over the context
* :mod:`nextblock.features.spectral` – context waveform → network input, network output → blocks

The same numpy functions run at training time (to build examples) and at run time (inside
:class:`nextblock.model.runner.BlockPredictor`), so the two can never drift apart.
"""

from .config import FeatureConfig
from .spectral import SpectralCodec
from .window import analysis_window

__all__ = ["FeatureConfig", "SpectralCodec", "analysis_window"]
