"""Chained (burst) training contexts: windows whose context ends with predictions.

During a burst of lost blocks the harness (and JackTrip's receiver) predicts every lost block
afresh from what it *played*: after the first lost block, the context ends with the concealer's
own earlier predictions, one block each (:class:`nextblock.concealers.base.StreamingConcealer`).
A network trained only on true contexts never saw such contexts. :func:`chain_windows` makes
them for a share of the training windows, offline:

1. a window is read ``max_chain_samples`` longer (:func:`nextblock.model.data.windows_from_audio`
   with ``history_samples``), so the context can start earlier;
2. a block size ``B`` (e.g. 64, 128 or 256 samples) and a number of lost blocks ``k`` are drawn
   (``k`` geometric, as a Gilbert burst's length: stop probability :data:`CHAIN_STOP_PROBABILITY`,
   at most ``max_chain_samples // B``);
3. the last ``k · B`` samples of the context are replaced, block by block, by the predictor's
   first block from the context so far — exactly what the harness plays during a burst, with
   :class:`~nextblock.model.adapters.HorizonBlocks`'s rules for blocks past half the horizon;
4. the target stays the *true* continuation (what the harness scores against);
5. a chain is dropped (the window keeps its true context) when the chained window fails
   :func:`~nextblock.model.examples.predictable` — the target more than
   :data:`~nextblock.model.examples.MAX_TARGET_GAIN` times louder (RMS) than the chained context,
   or that context silent —, the rule every training window passes: a sound that starts during
   the burst, after (near) silence, is unpredictable, and in the loss's RMS units (the context's
   RMS) it would weigh millions of times a usual window — a first fine-tuning run's mean training
   loss was 170,000 against ~1.

The predictor is an exported model (:class:`~nextblock.model.runner.BlockPredictor`, batched;
e.g. the model being fine-tuned, so the contexts are the ones it will meet) or the Burg guess
alone (``"guess"``: cheap, no model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..features.config import FeatureConfig
from .examples import predictable

#: probability that a burst ends after each lost block (Gilbert 0.02,0.25: mean burst of 4 blocks)
CHAIN_STOP_PROBABILITY = 0.25
#: rows per predictor call
CHAIN_BATCH = 2048

#: ``(contexts (n, context_samples)) -> (n, horizon_samples)`` float32
HorizonPredictor = Callable[[np.ndarray], np.ndarray]


def make_chain_predictor(source: str, config: FeatureConfig) -> HorizonPredictor:
    """``"guess"`` → the Burg AR guess of ``config``; otherwise a ``.tflite`` path run as the
    runtime runs it (:meth:`BlockPredictor.predict_horizon`, batched)."""
    from ..features.lpc import burg_continuation

    if source == "guess":
        if not config.lpc_burg_samples:
            raise ValueError("--chained-model guess needs a Burg guess (--lpc-burg-samples)")

        def guess(contexts: np.ndarray) -> np.ndarray:
            return burg_continuation(contexts[:, -config.lpc_burg_samples :], config.lpc_order, config.output_samples)

        return guess

    from .runner import BlockPredictor

    model = BlockPredictor(source, warm_up=False)
    if model.context_samples != config.context_samples or model.horizon_samples != config.output_samples:
        raise ValueError(
            f"{source}: context/horizon {model.context_samples}/{model.horizon_samples} samples, "
            f"training uses {config.context_samples}/{config.output_samples}"
        )
    return model.predict_horizon


def first_block(predictor: HorizonPredictor, contexts: np.ndarray, block: int, config: FeatureConfig) -> np.ndarray:
    """The first ``block`` samples the harness plays for a lost block: ``(n, block)`` float32.

    Up to half the horizon, the horizon's start; above, the "guess" rule of
    :class:`~nextblock.model.adapters.HorizonBlocks` (the Burg guess past the horizon, cross-faded in over its last 32 samples).
    """
    from ..features.lpc import burg_continuation
    from .adapters import GUESS_FADE_SAMPLES

    out = np.empty((contexts.shape[0], block), np.float32)
    horizon = config.output_samples
    for start in range(0, contexts.shape[0], CHAIN_BATCH):
        part = contexts[start : start + CHAIN_BATCH]
        pred = np.asarray(predictor(part), dtype=np.float32)
        if 2 * block <= horizon or not config.lpc_burg_samples:
            out[start : start + part.shape[0]] = (
                pred[:, :block] if block <= horizon else np.pad(pred, ((0, 0), (0, block - horizon)))[:, :block]
            )
            continue
        full = np.empty((part.shape[0], max(block, horizon)), np.float32)
        full[:, :horizon] = pred
        guess = burg_continuation(part[:, -config.lpc_burg_samples :], config.lpc_order, 2 * block)
        n = GUESS_FADE_SAMPLES
        fade = (0.5 + 0.5 * np.cos(np.pi * np.arange(n) / n)).astype(np.float32)
        seam = slice(horizon - n, horizon)
        full[:, seam] += (1.0 - fade) * (guess[:, seam] - full[:, seam])
        full[:, horizon:] = guess[:, horizon : full.shape[1]]
        out[start : start + part.shape[0]] = full[:, :block]
    return out


def chain_windows(
    windows: np.ndarray,
    config: FeatureConfig,
    predictor: HorizonPredictor,
    share: float,
    rng: np.random.Generator,
    block_sizes: Sequence[int] = (64, 128, 256),
    max_chain_samples: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Training windows, a ``share`` of them with contexts that end with chained predictions.

    Parameters
    ----------
    windows:
        ``(n, history + context_samples + output_samples)`` float32, ``history`` ≥ the longest
        chain (see :func:`nextblock.model.data.windows_from_audio`'s ``history_samples``).
    predictor:
        From :func:`make_chain_predictor` (or any batched horizon predictor).
    share:
        Share of windows (drawn at random) that get a chain.
    block_sizes:
        Block sizes in samples; one is drawn per chained window.
    max_chain_samples:
        At most this many context samples are predictions (default: all of ``history``).

    Returns
    -------
    windows:
        ``(n, context_samples + output_samples)`` float32: the usual windows, the chained ones'
        contexts ending with predictions, every target the true continuation.
    depth:
        ``(n,)`` int: predicted samples at each context's end (0: a true context, also where a
        chain was dropped, see step 5 of the module docstring).
    """
    windows = np.asarray(windows, dtype=np.float32)
    ctx, out_n = config.context_samples, config.output_samples
    history = windows.shape[1] - ctx - out_n
    if history < 0:
        raise ValueError(f"windows of {windows.shape[1]} samples are shorter than context + output ({ctx + out_n})")
    limit = history if max_chain_samples is None else min(int(max_chain_samples), history)
    sizes = [int(b) for b in block_sizes if 0 < int(b) <= limit]
    n = windows.shape[0]
    depth = np.zeros(n, np.int64)
    result = np.ascontiguousarray(windows[:, history:])
    if not sizes or share <= 0 or n == 0:
        return result, depth
    chosen = np.flatnonzero(rng.random(n) < share)
    block = np.asarray(sizes)[rng.integers(len(sizes), size=chosen.shape[0])]
    count = np.minimum(limit // block, rng.geometric(CHAIN_STOP_PROBABILITY, size=chosen.shape[0]))
    end = history + ctx  # where the final context ends in a long window
    for size in sizes:
        mine = block == size
        rows, k = chosen[mine], count[mine]
        if rows.shape[0] == 0:
            continue
        work = windows[rows].copy()  # whole windows: the chain overwrites the context, the target stays true
        position = end - k * size  # where each row's first lost block starts
        for step in range(int(k.max())):
            live = np.flatnonzero(k > step)
            at = position[live] + step * size
            sub = work[live]
            contexts = np.take_along_axis(sub, at[:, None] + np.arange(-ctx, 0)[None, :], axis=1)
            blocks = first_block(predictor, contexts, size, config)
            np.put_along_axis(sub, at[:, None] + np.arange(size)[None, :], blocks, axis=1)
            work[live] = sub
        keep = predictable(work, ctx, out_n)  # the rule every training window passes
        result[rows[keep], :ctx] = work[keep, history:end]
        depth[rows[keep]] = k[keep] * size
    return result, depth


__all__ = ["CHAIN_STOP_PROBABILITY", "chain_windows", "first_block", "make_chain_predictor"]
