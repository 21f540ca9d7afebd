"""Loss patterns, metrics and the evaluation harness (``python -m nextblock.evaluate``).

* :mod:`~nextblock.evaluation.loss`       – Bernoulli / Gilbert-Elliott / trace loss masks, ``--loss`` specs
* :mod:`~nextblock.evaluation.simulate`   – :func:`conceal_stream`: one channel through one concealer
* :mod:`~nextblock.evaluation.metrics`    – SNR, LSD, THD+N on the concealed blocks
* :mod:`~nextblock.evaluation.perceptual` – optional ViSQOL and PLCMOS
* :mod:`~nextblock.evaluation.audio`      – reading files, the sine sweep
* :mod:`~nextblock.evaluation.harness`    – :func:`evaluate`: all concealers × losses × files
* :mod:`~nextblock.evaluation.report`, :mod:`~nextblock.evaluation.plots` – markdown and pictures
* :mod:`~nextblock.evaluation.clips`      – short real clips from allowed Debian packages (tests, demos)
"""

from .loss import LossSpec, bernoulli, from_trace, gilbert_elliott, parse_loss_spec
from .simulate import conceal_stream, n_blocks_for

__all__ = [
    "LossSpec",
    "bernoulli",
    "conceal_stream",
    "from_trace",
    "gilbert_elliott",
    "n_blocks_for",
    "parse_loss_spec",
]
