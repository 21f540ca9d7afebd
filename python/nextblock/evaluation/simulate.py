"""Run a concealer over a whole signal as JackTrip's receive side would, block by block.

>>> from nextblock.concealers import make_concealer
>>> audio = np.zeros(48000, dtype=np.float32)
>>> lost = np.zeros(n_blocks_for(audio.shape[0], 128), dtype=bool); lost[10] = True
>>> played, us_per_block = conceal_stream(audio, make_concealer("burg", 128), lost)
>>> played.shape, us_per_block.shape
((48000,), (375,))
"""

from __future__ import annotations

import time

import numpy as np

from ..concealers.base import Lookahead, StreamingConcealer


def n_blocks_for(n_samples: int, frames_per_block: int) -> int:
    """Blocks needed to carry ``n_samples`` (the last one zero-padded): ``ceil(n / fpp)``."""
    return -(-int(n_samples) // int(frames_per_block))


def lookahead_at(index: int, lost_mask: np.ndarray, lookahead_blocks: int) -> tuple[int, int] | None:
    """What a buffer ``lookahead_blocks`` deep holds after lost block ``index``: ``(first, end)``,
    the blocks ``first .. end - 1`` that arrived right after the gap (``first`` is the first arrival
    after ``index``, ``end`` the first loss after it or the window's end), or ``None`` when no
    block up to ``index + lookahead_blocks`` arrived.

    >>> lookahead_at(3, np.array([0, 0, 0, 1, 1, 0, 0, 1], bool), 3)
    (5, 7)
    >>> lookahead_at(3, np.array([0, 0, 0, 1, 1, 0, 0, 1], bool), 1) is None
    True
    """
    last = min(index + int(lookahead_blocks), lost_mask.shape[0] - 1)
    first = index + 1
    while first <= last and lost_mask[first]:
        first += 1
    if first > last:
        return None
    end = first
    while end <= last and not lost_mask[end]:
        end += 1
    return first, end


def conceal_stream(
    audio_1d: np.ndarray,
    concealer: StreamingConcealer,
    lost_mask: np.ndarray,
    reset: bool = True,
    lookahead_blocks: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Play ``audio_1d`` through ``concealer`` with the blocks of ``lost_mask`` lost.

    Block ``n`` is ``audio_1d[n * fpp:(n + 1) * fpp]`` (the last block zero-padded). For every
    block the concealer is told only whether it arrived (the block) or not (``None``); its
    output is what is played. Each :meth:`~StreamingConcealer.process` call is timed.

    Parameters
    ----------
    audio_1d:
        One channel, shape ``(n_samples,)``, float (cast to float32).
    concealer:
        A :class:`~nextblock.concealers.base.StreamingConcealer` (its ``frames_per_block``
        sets the block size).
    lost_mask:
        Shape ``(n_blocks,)`` with ``n_blocks == ceil(n_samples / fpp)``, ``True`` = lost.
    reset:
        Call ``concealer.reset()`` first (silence before the stream).
    lookahead_blocks:
        How many blocks after the due one the receive buffer holds (0: none, the causal
        harness). A lost block's :class:`~nextblock.concealers.base.Lookahead` then carries the
        blocks up to ``index + lookahead_blocks`` that arrived (:func:`lookahead_at`) and nothing
        else; two-sided concealers fill the gap before them.

    Returns
    -------
    played : np.ndarray, shape ``(n_samples,)``, float32
        What the listener hears.
    us_per_block : np.ndarray, shape ``(n_blocks,)``, float64
        Wall-clock microseconds each ``process`` call took.
    """
    audio_1d = np.asarray(audio_1d, dtype=np.float32)
    if audio_1d.ndim != 1:
        raise ValueError(f"conceal_stream takes one channel, shape (n_samples,), got {audio_1d.shape}")
    fpp = concealer.frames_per_block
    n_samples = audio_1d.shape[0]
    n_blocks = n_blocks_for(n_samples, fpp)
    lost_mask = np.asarray(lost_mask, dtype=bool)
    if lost_mask.shape != (n_blocks,):
        raise ValueError(
            f"lost_mask has shape {lost_mask.shape}, expected ({n_blocks},) for {n_samples} samples at {fpp} frames per block"
        )
    padded = np.zeros(n_blocks * fpp, dtype=np.float32)
    padded[:n_samples] = audio_1d
    blocks = padded.reshape(n_blocks, fpp)
    played = np.empty_like(blocks)
    us_per_block = np.empty(n_blocks, dtype=np.float64)
    if reset:
        concealer.reset()
    clock = time.perf_counter_ns
    if lookahead_blocks < 0:
        raise ValueError(f"lookahead_blocks must be 0 or more, got {lookahead_blocks}")
    for index in range(n_blocks):
        block = None if lost_mask[index] else blocks[index]
        ahead = None
        if block is None and lookahead_blocks:
            window = lookahead_at(index, lost_mask, lookahead_blocks)
            if window is not None:
                first, end = window
                ahead = Lookahead(first - index, blocks[first:end].reshape(-1).copy())
        start = clock()
        played[index] = concealer.process(block, ahead)
        us_per_block[index] = (clock() - start) / 1000.0
    return played.reshape(-1)[:n_samples], us_per_block
