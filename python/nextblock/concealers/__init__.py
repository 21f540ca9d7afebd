"""Streaming concealers behind one interface (:class:`StreamingConcealer`), and a registry by name.

======================  ===========================================================================
name                    what a lost block is played as
======================  ===========================================================================
``zeros``               silence (JackTrip ``--underrun-mode zeros``), no cross-fade
``repeat``              the last received block (JackTrip ``wavetable``), no cross-fade
``repeat-xfade``        the last block, cross-faded into real audio on recovery
``burg``                JackTrip v2.7.2 Regulator's Burg prediction (``--bufstrategy 3``)
``ar128``               order-128 Burg AR on the last 10 blocks (PARCnet's linear part)
``lsar``                two-sided: least-squares AR(128) interpolation across the gap when the block
                        after it is in the buffer (``--lookahead-blocks``), else ``ar128``
``ar-blend``            two-sided: the AR(128) continuation faded into the same model run backwards
                        from the block after the gap (the simpler classical baseline), else ``ar128``
``nextblock``           the NextBlock CNN and the long-term guess, as the runtime plays it (needs
                        ``model_path``; loaded lazily); with look-ahead, the two-sided network fills
                        a one-block gap (``nextblock-twosided``), other gaps the fusion below
``nextblock-fusion``    ``nextblock`` with every two-sided gap filled by the fusion: LSAR with the
                        causal prediction as its prior (the ablation of the two-sided network)
``nextblock-net``       the NextBlock CNN alone (the ablation without the long-term guess)
======================  ===========================================================================

>>> from nextblock.concealers import make_concealer
>>> concealer = make_concealer("burg", frames_per_block=128, sample_rate_hz=48000)
"""

from __future__ import annotations

import importlib
import os

from .base import Lookahead, StreamingConcealer

#: name -> "module:Class" (imported on first use so that ``nextblock`` needs no LiteRT until asked)
CONCEALERS: dict[str, str] = {
    "zeros": "nextblock.concealers.zeros:ZerosConcealer",
    "repeat": "nextblock.concealers.repeat:RepeatConcealer",
    "repeat-xfade": "nextblock.concealers.repeat:RepeatCrossfadeConcealer",
    "burg": "nextblock.concealers.burg:BurgConcealer",
    "ar128": "nextblock.concealers.ar:ARConcealer",
    "lsar": "nextblock.concealers.lsar:LSARConcealer",
    "ar-blend": "nextblock.concealers.lsar:ARBlendConcealer",
    "nextblock": "nextblock.concealers.nextblock:NextBlockConcealer",
    "nextblock-fusion": "nextblock.concealers.nextblock:NextBlockFusionConcealer",
    "nextblock-net": "nextblock.concealers.nextblock:NextBlockNetConcealer",
}


class ConcealerUnavailable(RuntimeError):
    """A concealer cannot be built here (unknown name, module not written yet, model missing)."""


def available_concealers() -> list[str]:
    """Names accepted by :func:`make_concealer`, in table order."""
    return list(CONCEALERS)


def concealer_class(name: str) -> type[StreamingConcealer]:
    """Import and return the class registered under ``name``.

    Raises
    ------
    ConcealerUnavailable
        For an unknown name or a module that is not there (yet) or fails to import.
    """
    if name not in CONCEALERS:
        raise ConcealerUnavailable(f"unknown concealer {name!r}; choose from {', '.join(CONCEALERS)}")
    module_name, class_name = CONCEALERS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            raise ConcealerUnavailable(
                f"concealer {name!r} is not available yet: {module_name} does not exist in this checkout"
            ) from error
        raise ConcealerUnavailable(f"concealer {name!r} needs a missing module: {error.name}") from error
    try:
        return getattr(module, class_name)
    except AttributeError as error:
        raise ConcealerUnavailable(f"{module_name} has no class {class_name}") from error


def make_concealer(
    name: str,
    frames_per_block: int,
    sample_rate_hz: int = 48000,
    model_path: str | os.PathLike | None = None,
    two_sided_model_path: str | os.PathLike | None = None,
) -> StreamingConcealer:
    """Build one channel's concealer by name.

    Parameters
    ----------
    name:
        One of :func:`available_concealers`.
    frames_per_block, sample_rate_hz:
        Block size in samples and sample rate in Hz.
    model_path:
        Model file for ``nextblock`` (a ``.tflite``); ignored by the baselines.
    two_sided_model_path:
        Two-sided model file for ``nextblock`` (``None``: the shipped one, if any).

    Raises
    ------
    ConcealerUnavailable
        When the concealer or its model cannot be loaded (the message says why).
    """
    cls = concealer_class(name)
    if name != "nextblock":
        return cls(frames_per_block, sample_rate_hz)
    for path in (model_path, two_sided_model_path):
        if path is not None and not os.path.exists(path):
            raise ConcealerUnavailable(f"model file {os.fspath(path)!r} for concealer 'nextblock' does not exist")
    try:
        return cls(
            frames_per_block,
            sample_rate_hz,
            model_path=None if model_path is None else os.fspath(model_path),
            two_sided_model_path=None if two_sided_model_path is None else os.fspath(two_sided_model_path),
        )
    except (FileNotFoundError, OSError, ValueError) as error:
        raise ConcealerUnavailable(f"concealer 'nextblock' could not load its model: {error}") from error


__all__ = [
    "CONCEALERS",
    "ConcealerUnavailable",
    "Lookahead",
    "StreamingConcealer",
    "available_concealers",
    "concealer_class",
    "make_concealer",
]
