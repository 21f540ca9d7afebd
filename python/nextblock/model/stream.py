"""Serving any block size and sample rate with a model that predicts a fixed horizon.

A NextBlock model predicts the next ``horizon_samples`` samples (256) of a channel from its last
``context_samples`` (1024), whatever the stream's block size: it works on samples, not blocks.
Models trained on audio resampled to several rates (metadata ``sample_rates_hz``) continue audio
at any of those rates alike. :func:`stream_predictor` fits such a model to one stream
(``frames_per_block``, ``sample_rate_hz``), stacking the small adapters of
:mod:`nextblock.model.adapters` (one job each, each wrapping the predictor below it), and gives
the live loop, the harness and the learner what they expect — the next two blocks, ``(channels, 2, frames_per_block)``:

1. one model call when two blocks fit in the horizon (``2 · frames_per_block ≤ horizon``): the
   first ``2 · frames_per_block`` samples of the prediction;
2. otherwise (``beyond_horizon``) the samples past the horizon come from the model's own Burg
   guess continued that far, cross-faded in over the horizon's last 32 samples (``"guess"``, the
   default for models with a Burg guess: one model call at any block size), or from *chaining*:
   the prediction is appended to the context, which predicts the next horizon,
   ``ceil(2 · frames_per_block / horizon)`` calls in all (``"chain"``: 2 at 256 frames, 8 at
   1024). Held-out at 48 kHz × 256 (27 files, a 3-epoch model), "guess" scored 5.75 / 4.89 dB SNR
   against 4.82 / 3.84 for "chain" (Bernoulli 5 % / Gilbert), LSD 3.72 / 6.98 against 3.74 / 6.72;
   on a steady two-tone, 4 chained calls at 480 frames fell to −1 dB;
3. with ``min_refresh_samples`` (the live runtime: 64), blocks shorter than that reuse the last
   prediction: while the context handed in is the one that prediction was made from, moved on by
   whole blocks, and fewer than ``min_refresh_samples`` new samples came in, the two blocks are
   cut from it further on instead of calling the model again. At 16 frames the model then runs on
   every 4th block: its cost stays that of a 64-frame stream (a 16-frame block lasts 167 µs at
   96 kHz, less than one model call), at the price of predicting from up to 48 samples older
   context. The harness (``NextBlockConcealer``) always predicts afresh;
4. with ``long_term`` (the default), the long-term guess of :mod:`nextblock.features.pattern` —
   the last pitch period copied from 85 ms of history, where a backcast says it beats a linear
   guess — is blended into the two blocks. ``context_samples`` is then the longer history that
   guess reads (4096); the model reads the newest 1024 of it. ``predict(context,
   concealed_samples)`` says how many samples at the end of each context were concealed (a
   burst): the guess serves a burst's first block only (:mod:`~nextblock.features.pattern`).

:func:`stream_support` says whether a model's metadata can serve a stream (and why not), and
:func:`choose_model` picks, among model files, the one that serves it with the fewest calls.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

#: the latency budget of one prediction at the reference configuration (p99, one channel, µs)
REFERENCE_BUDGET_US = 250.0
#: the reference configuration's block size in frames (at any rate: the model works on samples)
REFERENCE_FRAMES = 128
#: block sizes the stream adapter accepts
MIN_FRAMES_PER_BLOCK = 16
MAX_FRAMES_PER_BLOCK = 1024


def latency_budget_us(frames_per_block: int) -> float:
    """p99 budget of one two-block prediction of one channel, µs: 250 µs at 128 frames, scaled in
    proportion to the block above it, never below 250 µs (the floor: a network call costs what it
    costs; below 128 frames it is a larger share of the block period).

    >>> [latency_budget_us(f) for f in (64, 128, 256, 1024)]
    [250.0, 250.0, 500.0, 2000.0]
    """
    return REFERENCE_BUDGET_US * max(1.0, frames_per_block / REFERENCE_FRAMES)


def model_sample_rates_hz(metadata: dict[str, Any]) -> tuple[int, ...]:
    """The stream rates a model serves: metadata ``sample_rates_hz``, else its one ``sample_rate_hz``."""
    rates = metadata.get("sample_rates_hz") or [metadata["sample_rate_hz"]]
    return tuple(sorted(int(r) for r in rates))


def model_horizon_samples(metadata: dict[str, Any]) -> int:
    """Samples one model call predicts (``outputs_blocks · frames_per_block`` of its metadata)."""
    return int(metadata.get("horizon_samples", int(metadata["outputs_blocks"]) * int(metadata["frames_per_block"])))


def calls_per_prediction(horizon_samples: int, frames_per_block: int) -> int:
    """Model calls for two blocks: ``ceil(2 · frames_per_block / horizon_samples)``."""
    return max(1, math.ceil(2 * frames_per_block / horizon_samples))


def stream_support(metadata: dict[str, Any], frames_per_block: int, sample_rate_hz: int) -> str | None:
    """``None`` if a model with this metadata serves the stream, else a one-line reason.

    A model whose metadata has no ``sample_rates_hz`` (before 3.0) serves only its own rate and
    block size; a newer one any block of 16 to 1024 frames at any of its ``sample_rates_hz``.
    """
    rates = model_sample_rates_hz(metadata)
    if int(sample_rate_hz) not in rates:
        return (
            f"trained at {', '.join(map(str, rates))} Hz, the stream runs at {sample_rate_hz} Hz "
            f"(run the JACK server at one of those rates or use a model trained for {sample_rate_hz} Hz)"
        )
    if not metadata.get("sample_rates_hz"):
        if int(frames_per_block) != int(metadata["frames_per_block"]):
            return (
                f"predicts {metadata['frames_per_block']}-frame blocks only (a model from before 3.0), "
                f"the stream uses {frames_per_block}"
            )
        return None
    if not MIN_FRAMES_PER_BLOCK <= int(frames_per_block) <= MAX_FRAMES_PER_BLOCK:
        return f"serves blocks of {MIN_FRAMES_PER_BLOCK} to {MAX_FRAMES_PER_BLOCK} frames, the stream uses {frames_per_block}"
    return None


def choose_model(paths: list[str | os.PathLike], frames_per_block: int, sample_rate_hz: int) -> tuple[Path, str]:
    """The model file that serves the stream best, and why it was chosen.

    Among the files whose metadata serves the stream (:func:`stream_support`), the one that needs
    the fewest model calls per prediction; among those, the first given (list the preferred model,
    e.g. the default, first). Returns ``(path, reason)``; raises ``ValueError`` listing every
    file's reason when none serves it.
    """
    from .metadata import ModelFileError, read_metadata

    ranked, refused = [], []
    for order, path in enumerate(paths):
        try:
            metadata = read_metadata(path)
        except (FileNotFoundError, ModelFileError) as err:
            refused.append(f"{Path(path).name}: {err}")
            continue
        reason = stream_support(metadata, frames_per_block, sample_rate_hz)
        if reason is not None:
            refused.append(f"{Path(path).name}: {reason}")
            continue
        calls = calls_per_prediction(model_horizon_samples(metadata), frames_per_block)
        ranked.append((calls, order, Path(path), metadata))
    if not ranked:
        raise ValueError(f"no model serves {frames_per_block} frames at {sample_rate_hz} Hz: " + "; ".join(refused))
    calls, _, path, metadata = min(ranked, key=lambda r: r[:2])
    why = (
        f"{metadata.get('name', path.stem)} {metadata['model_version']} for {frames_per_block} frames at "
        f"{sample_rate_hz} Hz: {calls} call(s) of {model_horizon_samples(metadata)} samples per prediction"
    )
    return path, why


def stream_predictor(
    model,
    frames_per_block: int,
    sample_rate_hz: int,
    min_refresh_samples: int = 0,
    beyond_horizon: str = "guess",
    long_term: bool = True,
):
    """A horizon model fitted to one stream: the adapters of :mod:`nextblock.model.adapters`
    stacked (see the module docstring).

    Parameters
    ----------
    model:
        A :class:`~nextblock.model.runner.BlockPredictor` (or anything with ``metadata``,
        ``context_samples``, ``horizon_samples``, ``model_version`` and
        ``predict_horizon(context) -> (channels, horizon_samples)``).
    frames_per_block, sample_rate_hz:
        The stream's block size (frames) and rate (Hz).
    min_refresh_samples:
        Reuse a prediction until this many new samples have come in (0: predict on every call;
        :class:`~nextblock.model.adapters.ReusePrediction`, step 3); only while two blocks fit in
        the horizon.
    beyond_horizon:
        ``"guess"`` or ``"chain"``: how samples past the model's horizon are made (step 2);
        models without a Burg guess always chain.
    long_term:
        Blend in the long-term (pattern-matching) guess (step 4,
        :class:`~nextblock.model.adapters.LongTermBlend`).

    Returns the outermost adapter: the live loop's predictor interface
    (:mod:`nextblock.runtime.predictors`: ``frames_per_block``, ``context_samples``,
    ``sample_rate_hz``, ``model_version``, ``predict(context, concealed_samples)``,
    ``keep_warm``), with ``calls``, ``beyond_horizon``, ``model_calls``, ``describe()`` of
    :class:`~nextblock.model.adapters.HorizonBlocks` and ``reused`` where blocks are reused.
    Raises ``ValueError`` with the reason of :func:`stream_support` when the model cannot serve
    the stream.
    """
    from .adapters import HorizonBlocks, LongTermBlend, ReusePrediction

    reason = stream_support(model.metadata, frames_per_block, sample_rate_hz)
    if reason is not None:
        raise ValueError(f"model {getattr(model, 'name', '')} {model.model_version}: {reason}")
    calls = calls_per_prediction(int(model.horizon_samples), int(frames_per_block))
    stack = HorizonBlocks(model, frames_per_block, sample_rate_hz, calls, beyond_horizon)
    if min_refresh_samples and calls == 1:
        stack = ReusePrediction(stack, min_refresh_samples)
    if long_term:
        stack = LongTermBlend(stack)
    return stack


def is_stream_predictor(predictor) -> bool:
    """Whether ``predictor`` is a model already fitted to a stream (:func:`stream_predictor`)."""
    from .adapters import Adapter

    return isinstance(predictor, Adapter)
