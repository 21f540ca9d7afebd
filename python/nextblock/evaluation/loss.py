"""Packet-loss patterns for the harness: which blocks of a stream are lost.

The grammar and the mask generators live in :mod:`nextblock.packetloss` (one ``--loss`` grammar
for every command: ``none``, ``bernoulli:P``, ``gilbert:P_ENTER,P_LEAVE[,LOSS_BAD[,LOSS_GOOD]]``,
``trace:PATH``, ``periodic:EVERY[,BURST]``, ``list:I,J,...``); this module keeps the names the
harness and its callers import. Every pattern is a boolean mask of shape ``(n_blocks,)``, ``True``
where the block is lost; random patterns take a :class:`numpy.random.Generator`, so one seed gives
one pattern that is applied to every concealer.

>>> rng = np.random.default_rng(1)
>>> parse_loss_spec("gilbert:0.02,0.25").mask(1000, rng).shape
(1000,)
"""

from __future__ import annotations

import numpy as np  # noqa: F401  (the doctest)

from ..packetloss import LossSpec, bernoulli, from_trace, gilbert_elliott, parse_loss_spec, periodic

__all__ = ["LossSpec", "bernoulli", "from_trace", "gilbert_elliott", "parse_loss_spec", "periodic"]
