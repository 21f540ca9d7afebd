"""Serving any block size and sample rate with a model that predicts a fixed horizon.

A NextBlock model predicts the next ``horizon_samples`` samples (256) of a channel from its last
``context_samples`` (1024), whatever the stream's block size: it works on samples, not blocks.
Models trained on audio resampled to several rates (metadata ``sample_rates_hz``) continue audio
at any of those rates alike. :class:`StreamPredictor` wraps such a model for one stream
(``frames_per_block``, ``sample_rate_hz``) and gives the live loop, the harness and the learner
what they expect — the next two blocks, ``(channels, 2, frames_per_block)``:

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

import numpy as np

from ..features.pattern import HISTORY_SAMPLES, LongTermGuess

#: the latency budget of one prediction at the reference configuration (p99, one channel, µs)
REFERENCE_BUDGET_US = 250.0
#: the reference configuration's block size in frames (at any rate: the model works on samples)
REFERENCE_FRAMES = 128
#: samples over which the model's prediction hands over to the Burg guess past its horizon
GUESS_FADE_SAMPLES = 32
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
        return (f"trained at {', '.join(map(str, rates))} Hz, the stream runs at {sample_rate_hz} Hz "
                f"(run the JACK server at one of those rates or use a model trained for {sample_rate_hz} Hz)")
    if not metadata.get("sample_rates_hz"):
        if int(frames_per_block) != int(metadata["frames_per_block"]):
            return (f"predicts {metadata['frames_per_block']}-frame blocks only (a model from before 3.0), "
                    f"the stream uses {frames_per_block}")
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
    why = (f"{metadata.get('name', path.stem)} {metadata['model_version']} for {frames_per_block} frames at "
           f"{sample_rate_hz} Hz: {calls} call(s) of {model_horizon_samples(metadata)} samples per prediction")
    return path, why


class StreamPredictor:
    """A horizon model serving one stream's block size and rate (see the module docstring).

    Parameters
    ----------
    model:
        A :class:`~nextblock.model.runner.BlockPredictor` (or anything with ``metadata``,
        ``context_samples``, ``horizon_samples``, ``model_version`` and
        ``predict_horizon(context) -> (channels, horizon_samples)``).
    frames_per_block, sample_rate_hz:
        The stream's block size (frames) and rate (Hz).
    min_refresh_samples:
        Reuse a prediction until this many new samples have come in (0: predict on every call);
        see the module docstring, step 3.
    beyond_horizon:
        ``"guess"`` or ``"chain"``: how samples past the model's horizon are made (step 2);
        models without a Burg guess always chain.
    long_term:
        Blend in the long-term (pattern-matching) guess (step 4).

    Raises ``ValueError`` with the reason of :func:`stream_support` when the model cannot serve
    the stream. Exposes the live loop's predictor interface
    (:mod:`nextblock.runtime.predictors`): ``frames_per_block``, ``context_samples``,
    ``sample_rate_hz``, ``model_version``, ``predict``.
    """

    #: samples of the context compared to recognise the context a cached prediction was made from
    MATCH_SAMPLES = 32

    def __init__(self, model, frames_per_block: int, sample_rate_hz: int, min_refresh_samples: int = 0,
                 beyond_horizon: str = "guess", long_term: bool = True):
        reason = stream_support(model.metadata, frames_per_block, sample_rate_hz)
        if reason is not None:
            raise ValueError(f"model {getattr(model, 'name', '')} {model.model_version}: {reason}")
        self.model = model
        self.frames_per_block = int(frames_per_block)
        self.sample_rate_hz = int(sample_rate_hz)
        #: samples the model reads (the newest of each context)
        self.model_context_samples = int(model.context_samples)
        self.long_term = LongTermGuess(max(HISTORY_SAMPLES, self.model_context_samples)) if long_term else None
        #: samples of context :meth:`predict` takes: the long-term guess's history, or the model's context
        self.context_samples = self.long_term.history_samples if long_term else self.model_context_samples
        self.horizon_samples = int(model.horizon_samples)
        #: model calls per :meth:`predict` (1 while two blocks fit in the horizon)
        self.calls = calls_per_prediction(self.horizon_samples, self.frames_per_block)
        self._work = np.zeros((1, self.model_context_samples + self.calls * self.horizon_samples), np.float32)
        #: reuse only while two blocks fit in the horizon and the block is shorter than the refresh
        self.min_refresh_samples = int(min_refresh_samples) if self.calls == 1 else 0
        config = getattr(model, "config", None)
        if beyond_horizon not in ("chain", "guess"):
            raise ValueError(f"beyond_horizon must be 'chain' or 'guess', got {beyond_horizon!r}")
        if beyond_horizon == "guess" and not getattr(config, "lpc_burg_samples", 0):
            beyond_horizon = "chain"  # only models with a Burg guess can extend it
        #: how samples past the model's horizon are made (``calls`` > 1): "chain" or "guess"
        self.beyond_horizon = beyond_horizon if self.calls > 1 else "chain"
        if self.beyond_horizon == "guess":
            self.calls = 1
        self._fade = (0.5 + 0.5 * np.cos(np.pi * np.arange(GUESS_FADE_SAMPLES) / GUESS_FADE_SAMPLES)).astype(np.float32)
        self._cached: np.ndarray | None = None  # (channels, horizon) of the last model call
        self._cached_tail: np.ndarray | None = None  # (channels, MATCH_SAMPLES): its context's end
        self._cached_offset = 0  # samples of the stream since that call
        #: model calls made and predictions served from a cached one (for the status line and tests)
        self.model_calls = 0
        self.reused = 0

    @property
    def model_version(self) -> str:
        """The wrapped model's version."""
        return self.model.model_version

    @property
    def name(self) -> str:
        """The wrapped model's name."""
        return getattr(self.model, "name", "nextblock")

    @property
    def metadata(self) -> dict[str, Any]:
        """The wrapped model's metadata."""
        return self.model.metadata

    def describe(self) -> str:
        """One line: which model serves which stream, with how many calls."""
        return (f"{self.name} {self.model_version} for {self.frames_per_block} frames at {self.sample_rate_hz} Hz: "
                f"{self.calls} call(s) of {self.horizon_samples} samples per prediction")

    #: predict() takes ``concealed_samples`` (the live loop passes it when this is true)
    takes_concealed_samples = True

    def predict(self, context: np.ndarray, concealed_samples: np.ndarray | int | None = None) -> np.ndarray:
        """The next two blocks of every channel.

        Parameters
        ----------
        context:
            ``(channels, context_samples)`` float32, newest sample last (1-D: one channel); a
            longer context is cut to its newest ``context_samples``.
        concealed_samples:
            ``(channels,)`` or one int: samples at the end of each context that were concealed
            rather than received (``None``: 0, none). Only the long-term guess uses it.

        Returns
        -------
        numpy.ndarray
            ``(channels, 2, frames_per_block)`` float32 (a new array).
        """
        context = np.asarray(context, dtype=np.float32)
        if context.ndim == 1:
            context = context[None, :]
        if context.shape[1] < self.context_samples:
            raise ValueError(f"context must hold {self.context_samples} samples per channel, got {context.shape[1]}")
        blocks = self._predict_model(context[:, -self.model_context_samples:])
        if self.long_term is not None:
            concealed = 0 if concealed_samples is None else concealed_samples
            flat = np.array(blocks.reshape(blocks.shape[0], -1))  # (a copy: never blend into a buffer of the model's)
            self.long_term.blend_into(context[:, -self.context_samples:], concealed, flat)
            blocks = flat.reshape(blocks.shape)
        return blocks

    def keep_warm(self, context: np.ndarray) -> None:
        """A throw-away :meth:`predict` of ``context`` that changes nothing: the whole path (model,
        long-term guess) runs, so its code and data stay in the caches
        (:class:`nextblock.runtime.warmth.KeepWarm`); the reused prediction and the counters are
        left as they were."""
        saved = (self._cached, self._cached_tail, self._cached_offset, self.model_calls, self.reused)
        try:
            self.predict(context)
        finally:
            self._cached, self._cached_tail, self._cached_offset, self.model_calls, self.reused = saved

    def _predict_model(self, context: np.ndarray) -> np.ndarray:
        """The model's two blocks (steps 1-3) from ``(channels, model_context_samples)``."""
        needed = 2 * self.frames_per_block
        if self.beyond_horizon == "guess":
            return self._model_then_guess(context, needed)
        if self.calls == 1:
            reused = self._reuse(context)
            if reused is not None:
                return reused
            segment = self.model.predict_horizon(context)
            self.model_calls += 1
            if self.min_refresh_samples:
                self._cached = np.array(segment, dtype=np.float32)
                self._cached_tail = context[:, -self.MATCH_SAMPLES:].copy()
                self._cached_offset = 0
            return np.ascontiguousarray(segment[:, :needed]).reshape(context.shape[0], 2, self.frames_per_block)
        channels = context.shape[0]
        if self._work.shape[0] != channels:
            self._work = np.zeros((channels, self._work.shape[1]), np.float32)
        work, start = self._work, self.model_context_samples
        work[:, :start] = context
        for _ in range(self.calls):
            work[:, start:start + self.horizon_samples] = self.model.predict_horizon(work[:, start - self.model_context_samples:start])
            start += self.horizon_samples
        self.model_calls += self.calls
        out = work[:, self.model_context_samples:self.model_context_samples + needed]
        return out.reshape(channels, 2, self.frames_per_block).copy()

    def _model_then_guess(self, context: np.ndarray, needed: int) -> np.ndarray:
        """One model call for the horizon, the model's Burg guess beyond it (cross-faded in over
        the horizon's last :data:`GUESS_FADE_SAMPLES`): ``(channels, 2, frames_per_block)``."""
        from ..features.lpc import burg_continuation

        cfg = self.model.config
        out = np.empty((context.shape[0], needed), np.float32)
        out[:, :self.horizon_samples] = self.model.predict_horizon(context)
        guess = burg_continuation(context[:, -cfg.lpc_burg_samples:], cfg.lpc_order, needed)
        fade = self._fade
        seam = slice(self.horizon_samples - fade.shape[0], self.horizon_samples)
        out[:, seam] += (1.0 - fade) * (guess[:, seam] - out[:, seam])
        out[:, self.horizon_samples:] = guess[:, self.horizon_samples:]
        self.model_calls += 1
        return out.reshape(context.shape[0], 2, self.frames_per_block)

    def _reuse(self, context: np.ndarray) -> np.ndarray | None:
        """The two blocks cut further on from the cached prediction, or ``None`` (predict afresh)."""
        if self._cached is None or self._cached.shape[0] != context.shape[0]:
            return None
        offset = self._cached_offset + self.frames_per_block
        if offset >= self.min_refresh_samples or offset + 2 * self.frames_per_block > self.horizon_samples:
            return None
        end = context.shape[1] - offset
        if end < self.MATCH_SAMPLES or not np.array_equal(context[:, end - self.MATCH_SAMPLES:end], self._cached_tail):
            return None  # not the context the prediction was made from, moved on by one block
        self._cached_offset = offset
        self.reused += 1
        segment = self._cached[:, offset:offset + 2 * self.frames_per_block]
        return segment.reshape(context.shape[0], 2, self.frames_per_block).copy()
