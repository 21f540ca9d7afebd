"""The one place that builds what serves a stream: model choice, fitting, batch buckets, warm-up.

:func:`build_stream_stack` takes a stream's geometry (block size, rate, channels) and the model
choice (a file, the shipped model that serves that geometry best, or the repeat stand-in) and
returns a :class:`StreamStack`: the predictor the live loop calls (one LiteRT interpreter per
batch bucket, each running the model fitted to the stream by
:func:`nextblock.model.stream.stream_predictor`'s adapters, all warmed) and one line saying
which model serves it and how. ``nextblock attach`` builds one per geometry it serves
(:class:`~nextblock.runtime.hub.HubLoop`'s ``predictor_for``), so do its model watcher, the
tests and the benchmarks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .predictors import Predictor, RepeatPredictor, choose_shipped_model, fit_to_stream, load_model_predictor


@dataclass
class StreamStack:
    """What serves streams of one geometry.

    Attributes
    ----------
    predictor : Predictor
        Takes ``(rows, context_samples)`` batches of any row count (``BucketedPredictor``), or
        the repeat stand-in.
    description : str
        Which model serves the geometry and how ("" for the stand-in).
    model_path : str | None
        The model file (``None``: the stand-in).
    """

    predictor: Predictor
    description: str
    model_path: str | None


def build_stream_stack(
    frames_per_block: int,
    sample_rate_hz: int,
    channels: int = 2,
    model_path: str | os.PathLike | None = None,
    kind: str = "model",
    threads: int = 1,
    max_rows: int = 32,
    warm: bool = True,
) -> StreamStack:
    """The predictor for streams of ``frames_per_block`` at ``sample_rate_hz``.

    Parameters
    ----------
    frames_per_block, sample_rate_hz, channels:
        The stream's geometry (``channels`` sizes the stand-in's buffer; the model runs per
        channel, batched).
    model_path:
        The model file; ``None``: the shipped model that serves this geometry with the fewest
        model calls (:func:`~nextblock.runtime.predictors.choose_shipped_model`).
    kind:
        ``"model"`` or ``"repeat"`` (the stand-in, no model).
    threads:
        LiteRT threads per interpreter.
    max_rows:
        The largest batch bucket (channels of all streams predicted together).
    warm:
        Run every bucket a few times first (first-call costs paid before any deadline).

    Not real-time (reads files, builds interpreters): call it off the hot path.

    Raises
    ------
    IncompatibleModel
        No model serves the geometry, or the file cannot be loaded (the message says why).
    """
    from .batching import BucketedPredictor

    if kind == "repeat":
        return StreamStack(RepeatPredictor(frames_per_block, sample_rate_hz, channels_hint=channels), "", None)
    if kind != "model":
        raise ValueError(f"kind must be 'model' or 'repeat', got {kind!r}")
    if model_path is None:
        model_path, _ = choose_shipped_model(frames_per_block, sample_rate_hz)

    def member():
        return fit_to_stream(load_model_predictor(model_path, threads), frames_per_block, sample_rate_hz)

    predictor = BucketedPredictor(member, max_rows=max_rows)
    predictor.model_path = os.fspath(model_path)
    if warm:
        predictor.warm()
    return StreamStack(predictor, predictor.description, os.fspath(model_path))
