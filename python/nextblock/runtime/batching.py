"""One model call for the predictions of many streams: fixed batch sizes, no re-allocation.

LiteRT re-allocates every tensor when the number of rows changes (``resize_tensor_input`` +
``allocate_tensors``, milliseconds), and a hub's batches change size all the time (whichever
streams have a block missing in the same window). :class:`BucketedPredictor` therefore keeps one
predictor per *bucket* of rows (2, 4, 8, ... up to ``max_rows``), each built and warmed once, off
the hot path; a batch is padded with silent rows up to the next bucket. A batch larger than the
largest bucket runs in several calls.

It has the :class:`~nextblock.runtime.predictors.Predictor` interface, so the live loop, the
model watcher and the warm-up treat it as one model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .predictors import Predictor


def bucket_sizes(max_rows: int, smallest: int = 2) -> list[int]:
    """``smallest, 2 * smallest, ...`` up to the first size >= ``max_rows``."""
    if max_rows < 1 or smallest < 1:
        raise ValueError("max_rows and smallest must be positive")
    sizes = [smallest]
    while sizes[-1] < max_rows:
        sizes.append(sizes[-1] * 2)
    return sizes


class BucketedPredictor:
    """A predictor per batch-size bucket, behind one :meth:`predict`.

    Parameters
    ----------
    factory:
        Builds one predictor of the model (called once per bucket, here, not on the hot path).
    max_rows:
        Largest batch expected (channels of all streams); larger ones are split.
    smallest:
        The smallest bucket (2: one stereo stream).
    """

    def __init__(self, factory: Callable[[], Predictor], max_rows: int = 32, smallest: int = 2):
        self.sizes = bucket_sizes(max_rows, smallest)
        self._members = [factory() for _ in self.sizes]
        first = self._members[0]
        self.frames_per_block = first.frames_per_block
        self.context_samples = first.context_samples
        self.sample_rate_hz = first.sample_rate_hz
        self.model_version = first.model_version
        #: the model file the members run, when known (:func:`~nextblock.runtime.stack.build_stream_stack`)
        self.model_path: str | None = None
        #: which model serves which geometry, how (the members' ``describe()``; "" for a stand-in)
        self.description = first.describe() if hasattr(first, "describe") else ""
        #: whether predict() passes ``concealed_samples`` on (the members take it)
        self.takes_concealed_samples = bool(getattr(first, "takes_concealed_samples", False))
        self._padded = [np.zeros((n, self.context_samples), np.float32) for n in self.sizes]
        self._out = np.zeros((self.sizes[-1], 2, self.frames_per_block), np.float32)
        rng = np.random.default_rng(0)
        self._warm_context = (0.01 * rng.standard_normal((self.sizes[0], self.context_samples))).astype(np.float32)

    def warm(self, calls: int = 10) -> None:
        """Run every bucket ``calls`` times on low noise (first-call costs paid before any deadline)."""
        rng = np.random.default_rng(0)
        for member, padded in zip(self._members, self._padded, strict=True):
            padded[:] = rng.standard_normal(padded.shape).astype(np.float32) * 0.01
            for _ in range(calls):
                member.predict(padded)
            padded[:] = 0.0

    def keep_warm(self) -> None:
        """A throw-away prediction by the smallest bucket (the one a single stream's decision uses),
        on low noise, changing no state (:class:`nextblock.runtime.warmth.KeepWarm`)."""
        member = self._members[0]
        warm = getattr(member, "keep_warm", None)
        if warm is not None:
            warm(self._warm_context)
        else:  # a stateless predictor (the model runner, the repeat stand-in)
            member.predict(self._warm_context)

    def predict(self, context: np.ndarray, concealed_samples: np.ndarray | None = None) -> np.ndarray:
        """``context`` ``(rows, context_samples)`` → ``(rows, 2, frames_per_block)`` (a view of an
        internal buffer, overwritten by the next call). ``concealed_samples`` ``(rows,)`` is passed
        on to members that take it (:attr:`takes_concealed_samples`), 0 for padding rows."""
        rows = context.shape[0]
        if rows > self.sizes[-1]:
            out = np.empty((rows, 2, self.frames_per_block), np.float32)
            step = self.sizes[-1]
            for r in range(0, rows, step):
                part = None if concealed_samples is None else concealed_samples[r : r + step]
                out[r : r + step] = self.predict(context[r : r + step], part)
            return out
        i = 0
        while self.sizes[i] < rows:
            i += 1
        size, member = self.sizes[i], self._members[i]
        concealed = None
        if concealed_samples is not None and self.takes_concealed_samples:
            concealed = np.zeros(size, np.int64)
            concealed[:rows] = concealed_samples
        if size == rows:
            result = member.predict(context) if concealed is None else member.predict(context, concealed)
        else:
            padded = self._padded[i]
            padded[:rows] = context
            result = member.predict(padded) if concealed is None else member.predict(padded, concealed)
        np.copyto(self._out[:rows], result[:rows])
        return self._out[:rows]
