"""Small wrappers that fit a fixed-horizon model to one stream, one job each.

A NextBlock model predicts the next ``horizon_samples`` (256) samples of a channel from its last
``context_samples`` (1024) (``predict_horizon``); the live loop, the harness and the learner want
the next two blocks of a stream, ``(channels, 2, frames_per_block)`` (``predict``). As
pedalboard's ``FixedBlockSize`` / ``Resample`` templates wrap any plugin, each adapter here wraps
the predictor below it and does one thing; :func:`nextblock.model.stream.stream_predictor` stacks
them for a stream:

* :class:`HorizonBlocks` – the two blocks from the model's horizon: cut from one call, chained
  over several, or one call and the model's Burg guess beyond its horizon (``"guess"``);
* :class:`ReusePrediction` – short blocks reuse the last prediction, cut further on, until
  ``min_refresh_samples`` new samples came in;
* :class:`LongTermBlend` – the long-term (pitch-period) guess blended into the two blocks, from
  a longer history than the model reads.

Every adapter has the live loop's predictor interface (``frames_per_block``, ``context_samples``,
``sample_rate_hz``, ``model_version``, ``predict(context, concealed_samples=None)``); attributes
it does not have itself are those of the predictor it wraps (``stack.model_calls``,
``stack.describe()``), and :meth:`Adapter.keep_warm` runs the whole stack once without changing
any adapter's state.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: samples over which the model's prediction hands over to the Burg guess past its horizon
GUESS_FADE_SAMPLES = 32


def _as_rows(context: np.ndarray, samples: int) -> np.ndarray:
    """``context`` as float32 ``(channels, ≥ samples)`` (1-D: one channel); raises ``ValueError``
    when it is shorter than ``samples``."""
    context = np.asarray(context, dtype=np.float32)
    if context.ndim == 1:
        context = context[None, :]
    if context.shape[1] < samples:
        raise ValueError(f"context must hold {samples} samples per channel, got {context.shape[1]}")
    return context


class Adapter:
    """Base of the adapters: forwards unknown attributes to :attr:`inner`, and snapshots state.

    A subclass lists in ``_STATE`` the attributes a throw-away prediction must not change (caches,
    counters)."""

    _STATE: tuple[str, ...] = ()
    #: predict() takes ``concealed_samples`` (the live loop passes it when this is true)
    takes_concealed_samples = True

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def snapshot(self) -> tuple:
        """This adapter's state and every adapter's below it."""
        below = self.inner.snapshot() if isinstance(self.inner, Adapter) else None
        return tuple(getattr(self, n) for n in self._STATE), below

    def restore(self, state: tuple) -> None:
        """Put back what :meth:`snapshot` returned."""
        own, below = state
        for n, v in zip(self._STATE, own, strict=True):
            setattr(self, n, v)
        if below is not None:
            self.inner.restore(below)

    def keep_warm(self, context: np.ndarray) -> None:
        """A throw-away :meth:`predict` of ``context`` that changes nothing: the whole stack runs,
        so its code and data stay in the caches (:class:`nextblock.runtime.warmth.KeepWarm`);
        cached predictions and counters are left as they were."""
        saved = self.snapshot()
        try:
            self.predict(context)
        finally:
            self.restore(saved)

    def predict(self, context: np.ndarray, concealed_samples: np.ndarray | int | None = None) -> np.ndarray:
        raise NotImplementedError


class HorizonBlocks(Adapter):
    """The next two blocks from a horizon model (``predict_horizon(context) -> (channels, horizon)``).

    Two blocks within the horizon are the first ``2 · frames_per_block`` samples of one call.
    Beyond it (``calls_needed > 1``): ``"guess"`` (models with a Burg guess, ``config.lpc_burg_samples``)
    makes one call and continues with the model's Burg guess, cross-faded in over the horizon's
    last :data:`GUESS_FADE_SAMPLES`; ``"chain"`` appends each prediction to the context and
    predicts the next horizon, ``calls_needed`` calls. ``context_samples`` is the model's.
    """

    _STATE = ("model_calls",)

    def __init__(
        self, model, frames_per_block: int, sample_rate_hz: int, calls_needed: int, beyond_horizon: str = "guess"
    ):
        super().__init__(model)
        self.model = model
        self.frames_per_block = int(frames_per_block)
        self.sample_rate_hz = int(sample_rate_hz)
        #: samples the model reads (the newest of each context)
        self.model_context_samples = self.context_samples = int(model.context_samples)
        self.horizon_samples = int(model.horizon_samples)
        #: model calls per :meth:`predict` (1 while two blocks fit in the horizon, or with "guess")
        self.calls = int(calls_needed)
        if beyond_horizon not in ("chain", "guess"):
            raise ValueError(f"beyond_horizon must be 'chain' or 'guess', got {beyond_horizon!r}")
        if beyond_horizon == "guess" and not getattr(getattr(model, "config", None), "lpc_burg_samples", 0):
            beyond_horizon = "chain"  # only models with a Burg guess can extend it
        #: how samples past the model's horizon are made: "chain" or "guess"
        self.beyond_horizon = beyond_horizon if self.calls > 1 else "chain"
        if self.beyond_horizon == "guess":
            self.calls = 1
        self._work = np.zeros((1, self.model_context_samples + self.calls * self.horizon_samples), np.float32)
        self._fade = (0.5 + 0.5 * np.cos(np.pi * np.arange(GUESS_FADE_SAMPLES) / GUESS_FADE_SAMPLES)).astype(np.float32)
        #: model calls made (for the status line and tests)
        self.model_calls = 0

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
        return (
            f"{self.name} {self.model_version} for {self.frames_per_block} frames at {self.sample_rate_hz} Hz: "
            f"{self.calls} call(s) of {self.horizon_samples} samples per prediction"
        )

    def horizon(self, context: np.ndarray) -> np.ndarray:
        """One model call: ``(channels, horizon_samples)`` (only when :attr:`calls` is 1 and the
        two blocks are cut from it; :class:`ReusePrediction` keeps it)."""
        self.model_calls += 1
        return self.model.predict_horizon(context)

    def predict(self, context: np.ndarray, concealed_samples: np.ndarray | int | None = None) -> np.ndarray:
        """``(channels, ≥ context_samples)`` (newest last) → ``(channels, 2, frames_per_block)``."""
        context = _as_rows(context, self.context_samples)[:, -self.model_context_samples :]
        needed = 2 * self.frames_per_block
        if self.beyond_horizon == "guess":
            return self._model_then_guess(context, needed)
        if self.calls == 1:
            segment = self.horizon(context)
            return np.ascontiguousarray(segment[:, :needed]).reshape(context.shape[0], 2, self.frames_per_block)
        channels = context.shape[0]
        if self._work.shape[0] != channels:
            self._work = np.zeros((channels, self._work.shape[1]), np.float32)
        work, start = self._work, self.model_context_samples
        work[:, :start] = context
        for _ in range(self.calls):
            work[:, start : start + self.horizon_samples] = self.model.predict_horizon(
                work[:, start - self.model_context_samples : start]
            )
            start += self.horizon_samples
        self.model_calls += self.calls
        out = work[:, self.model_context_samples : self.model_context_samples + needed]
        return out.reshape(channels, 2, self.frames_per_block).copy()

    def _model_then_guess(self, context: np.ndarray, needed: int) -> np.ndarray:
        from ..features.lpc import burg_continuation

        cfg = self.model.config
        out = np.empty((context.shape[0], needed), np.float32)
        out[:, : self.horizon_samples] = self.model.predict_horizon(context)
        guess = burg_continuation(context[:, -cfg.lpc_burg_samples :], cfg.lpc_order, needed)
        fade = self._fade
        seam = slice(self.horizon_samples - fade.shape[0], self.horizon_samples)
        out[:, seam] += (1.0 - fade) * (guess[:, seam] - out[:, seam])
        out[:, self.horizon_samples :] = guess[:, self.horizon_samples :]
        self.model_calls += 1
        return out.reshape(context.shape[0], 2, self.frames_per_block)


class ReusePrediction(Adapter):
    """Blocks shorter than ``min_refresh_samples`` reuse the last model call: while the context
    handed in is the one that call was made from, moved on by whole blocks, and fewer than
    ``min_refresh_samples`` new samples came in, the two blocks are cut from it further on.

    Wraps a :class:`HorizonBlocks` that cuts its blocks from one call (``calls == 1``, "chain").
    """

    #: samples of the context compared to recognise the context a cached prediction was made from
    MATCH_SAMPLES = 32
    _STATE = ("_cached", "_cached_tail", "_cached_offset", "reused")

    def __init__(self, inner: HorizonBlocks, min_refresh_samples: int):
        if inner.calls != 1 or inner.beyond_horizon != "chain":
            raise ValueError("ReusePrediction needs blocks cut from one model call")
        super().__init__(inner)
        self.min_refresh_samples = int(min_refresh_samples)
        self._cached: np.ndarray | None = None  # (channels, horizon) of the last model call
        self._cached_tail: np.ndarray | None = None  # (channels, MATCH_SAMPLES): its context's end
        self._cached_offset = 0  # samples of the stream since that call
        #: predictions served from a cached one
        self.reused = 0

    def predict(self, context: np.ndarray, concealed_samples: np.ndarray | int | None = None) -> np.ndarray:
        """As :meth:`HorizonBlocks.predict`, from the cached call where it still serves."""
        inner = self.inner
        context = _as_rows(context, inner.context_samples)[:, -inner.model_context_samples :]
        frames = inner.frames_per_block
        reused = self._reuse(context, frames)
        if reused is not None:
            return reused
        segment = inner.horizon(context)
        self._cached = np.array(segment, dtype=np.float32)
        self._cached_tail = context[:, -self.MATCH_SAMPLES :].copy()
        self._cached_offset = 0
        return np.ascontiguousarray(segment[:, : 2 * frames]).reshape(context.shape[0], 2, frames)

    def _reuse(self, context: np.ndarray, frames: int) -> np.ndarray | None:
        if self._cached is None or self._cached.shape[0] != context.shape[0]:
            return None
        offset = self._cached_offset + frames
        if offset >= self.min_refresh_samples or offset + 2 * frames > self.inner.horizon_samples:
            return None
        end = context.shape[1] - offset
        if end < self.MATCH_SAMPLES or not np.array_equal(
            context[:, end - self.MATCH_SAMPLES : end], self._cached_tail
        ):
            return None  # not the context the prediction was made from, moved on by one block
        self._cached_offset = offset
        self.reused += 1
        segment = self._cached[:, offset : offset + 2 * frames]
        return segment.reshape(context.shape[0], 2, frames).copy()


class LongTermBlend(Adapter):
    """The long-term guess of :mod:`nextblock.features.pattern` (the last pitch period copied from
    85 ms of history, where a backcast says it beats a linear guess) blended into the two blocks
    of the predictor it wraps. ``context_samples`` is the longer history that guess reads (4096);
    the wrapped predictor reads the newest of it. ``concealed_samples`` says how many samples at
    the end of each context were concealed (a burst): the guess serves a burst's first block only.
    """

    def __init__(self, inner):
        from ..features.pattern import HISTORY_SAMPLES, LongTermGuess

        super().__init__(inner)
        self.long_term = LongTermGuess(max(HISTORY_SAMPLES, int(inner.context_samples)))
        #: samples of context :meth:`predict` takes: the long-term guess's history
        self.context_samples = self.long_term.history_samples

    def predict(self, context: np.ndarray, concealed_samples: np.ndarray | int | None = None) -> np.ndarray:
        """``(channels, ≥ context_samples)`` → ``(channels, 2, frames_per_block)`` (a new array)."""
        context = _as_rows(context, self.context_samples)
        blocks = self.inner.predict(context[:, -self.inner.context_samples :], concealed_samples)
        flat = np.array(blocks.reshape(blocks.shape[0], -1))  # (a copy: never blend into a buffer of the model's)
        self.long_term.blend_into(
            context[:, -self.context_samples :], 0 if concealed_samples is None else concealed_samples, flat
        )
        return flat.reshape(blocks.shape)
