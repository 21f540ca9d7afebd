"""The streaming concealer interface every concealer (baseline or NextBlock) implements.

A concealer runs causally, block by block, on one channel, exactly as JackTrip's receive side
(``Regulator::burg`` in JackTrip v2.7.2 makes the same three-way decision per packet):

1. Before block ``n``'s fate is known, the concealer can only see :attr:`~StreamingConcealer.history`
   – what it *played* for blocks ``< n`` (real blocks where they arrived, its own guesses where
   they were lost, the cross-faded block after a loss).
2. :meth:`StreamingConcealer.process` is then told whether block ``n`` arrived (an array) or was
   lost (``None``) and returns what is played for block ``n``:

   * lost: the first row of :meth:`~StreamingConcealer.predict` – its guess for block ``n``. A run
     of losses calls :meth:`~StreamingConcealer.predict` again for every lost block, each time on
     a history that now ends with the previous guess (JackTrip re-trains Burg on every glitch);
   * arrived right after a loss: a cross-fade (:func:`nextblock.splice.crossfade`) from the
     second row of the *last* prediction (the guess for block ``n`` made one block earlier) into
     the real block ``n`` – JackTrip's ``futurePredictedPacket``/``mFadeDown``/``mFadeUp``;
     subclasses whose JackTrip counterpart does not cross-fade set
     :attr:`~StreamingConcealer.crossfade_after_loss` to ``False``;
   * arrived otherwise: the real block, untouched.

Subclasses implement :meth:`~StreamingConcealer.predict` from ``self.history`` only, which makes
causality hold by construction (``history`` never contains block ``n`` or later when
``predict`` runs for block ``n``). Subclasses that need to run on *every* block (a model that
keeps state, a learner) override :meth:`~StreamingConcealer.observe`, which is called with every
played block after it was appended to the history.

**Looking ahead** (``conceal_stream(..., lookahead_blocks=H)``): when a lost block is due, the
packet after it is often already in JackTrip's buffer. The harness then hands
:meth:`~StreamingConcealer.process` a :class:`Lookahead` with the blocks up to ``n + H`` that
arrived — nothing later, nothing lost — so causality still holds by construction: a concealer
sees the future only through that argument. A concealer with :attr:`~StreamingConcealer.two_sided`
fills the gap from both sides (:meth:`~StreamingConcealer.fill_gap`): its fill ends exactly where
the next block begins, so the arrival after it plays untouched (no cross-fade). The others ignore
the look-ahead and predict as before; ``H = 0`` gives no look-ahead at all (today's numbers).

Beyond the per-block contract above:

* :meth:`~StreamingConcealer.process` also counts blocks (:attr:`blocks_processed`) and the
  blocks since the last arrival (:attr:`blocks_since_arrival`), which JackTrip's Burg needs for its
  "primed" rule and its mute after 512 ms without packets;
* :meth:`~StreamingConcealer.observe` is the per-block hook described above (no-op by default);
* :attr:`~StreamingConcealer.pending_guess` exposes the guess the next cross-fade starts from;
* the constructor also rejects a non-positive sample rate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..splice import crossfade


@dataclass(frozen=True)
class Lookahead:
    """What of the future is in the buffer when a lost block is due.

    Attributes
    ----------
    gap_blocks : int
        Missing blocks from the due one up to the first block that arrived (1: only the due one
        is missing; a burst of ``m`` with the block after it in hand: ``m``).
    future : np.ndarray, shape ``(future_samples,)``, float32
        The blocks that arrived right after the gap, contiguous, up to the end of the buffer's
        window (at least one block).
    """

    gap_blocks: int
    future: np.ndarray


class StreamingConcealer(ABC):
    """One channel's concealer.

    Parameters
    ----------
    frames_per_block:
        Samples per block (JackTrip's ``--bufsize`` / FPP), e.g. 128.
    sample_rate_hz:
        Sample rate, e.g. 48000.
    history_samples:
        How many past played samples :attr:`history` keeps (oldest first). Must hold at least
        one block.

    Attributes
    ----------
    history : np.ndarray, shape ``(history_samples,)``, float32
        The last ``history_samples`` played samples, oldest first (zeros before the stream).
    lost_last : bool
        Whether the previous block was concealed (the next arriving block is cross-faded).
    blocks_processed : int
        How many blocks :meth:`process` has played since :meth:`reset`.
    blocks_since_arrival : int
        Blocks played since the last block that arrived (0 right after an arrival; counts from
        the start of the stream until the first arrival).
    """

    name: ClassVar[str] = "base"
    #: whether real audio resuming after a loss is cross-faded from the guess (JackTrip's zeros
    #: and plain-repeat modes do not cross-fade).
    crossfade_after_loss: ClassVar[bool] = True
    #: fade shape passed to :func:`nextblock.splice.crossfade`: JackTrip's linear ramp over the
    #: block, or ``"recovery"``, the patched JackTrip's short fade after a NextBlock replacement.
    crossfade_kind: ClassVar[str] = "linear"
    #: whether the concealer fills a gap from both sides when the block after it is in the buffer
    #: (:meth:`fill_gap`); the others ignore a :class:`Lookahead`.
    two_sided: ClassVar[bool] = False
    #: the longest gap (blocks) a two-sided concealer fills; longer bursts are predicted causally
    max_gap_blocks: ClassVar[int] = 4

    def __init__(self, frames_per_block: int, sample_rate_hz: int = 48000, history_samples: int = 8192):
        if frames_per_block <= 0:
            raise ValueError(f"frames_per_block must be positive, got {frames_per_block}")
        if sample_rate_hz <= 0:
            raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
        if history_samples < frames_per_block:
            raise ValueError("history_samples must hold at least one block")
        self.frames_per_block = int(frames_per_block)
        self.sample_rate_hz = int(sample_rate_hz)
        self.history_samples = int(history_samples)
        self.reset()

    def reset(self) -> None:
        """Forget all history (silence before the stream starts)."""
        self.history = np.zeros(self.history_samples, dtype=np.float32)
        self._pending_next: np.ndarray | None = None
        self.lost_last = False
        self.blocks_processed = 0
        self.blocks_since_arrival = 0
        #: lost blocks filled from both sides since :meth:`reset` (the rest were predicted causally)
        self.two_sided_blocks = 0

    @property
    def pending_guess(self) -> np.ndarray | None:
        """The guess for the next block kept for the cross-fade, shape ``(frames_per_block,)``
        (row 1 of the last :meth:`predict`); ``None`` when the last block arrived."""
        return self._pending_next

    @abstractmethod
    def predict(self) -> np.ndarray:
        """Guess the next two blocks from :attr:`history` alone.

        Returns
        -------
        np.ndarray, shape ``(2, frames_per_block)``, float32
            Row 0: the guess for the next block (played when it is lost). Row 1: the guess for
            the block after it (faded out under the real block if that one arrives).
        """

    def fill_gap(self, future: np.ndarray, gap_samples: int) -> np.ndarray | None:
        """Fill the next ``gap_samples`` from :attr:`history` and the ``future`` samples that follow
        them (shape ``(future_samples,)``); ``(gap_samples,)`` float32, or ``None`` to predict
        causally instead. Only called when :attr:`two_sided` is set; ``None`` by default."""
        return None

    def observe(self, played: np.ndarray) -> None:  # noqa: B027 (an optional hook: no-op unless overridden)
        """Hook called with every played block (shape ``(frames_per_block,)``) after
        :attr:`history` was updated. No-op by default."""

    def process(self, block: np.ndarray | None, lookahead: Lookahead | None = None) -> np.ndarray:
        """Feed block ``n`` (shape ``(frames_per_block,)``) or ``None`` when it was lost.

        ``lookahead`` (lost blocks only): what of the future is in the buffer (:class:`Lookahead`).

        Returns
        -------
        np.ndarray, shape ``(frames_per_block,)``, float32
            The samples played for block ``n``.
        """
        if block is None:
            out = self._fill_from_both_sides(lookahead)
            if out is None:
                out = self._conceal()
            self.lost_last = True
            self.blocks_since_arrival += 1
        else:
            real = np.asarray(block, dtype=np.float32)
            if real.shape != (self.frames_per_block,):
                raise ValueError(f"block has shape {real.shape}, expected ({self.frames_per_block},)")
            if self.lost_last and self.crossfade_after_loss and self._pending_next is not None:
                out = crossfade(self._pending_next, real, self.crossfade_kind, self.sample_rate_hz)
            else:
                out = real
            self._pending_next = None
            self.lost_last = False
            self.blocks_since_arrival = 0
        self._append_history(out)
        self.blocks_processed += 1
        self.observe(out)
        return out

    def _fill_from_both_sides(self, lookahead: Lookahead | None) -> np.ndarray | None:
        """Block ``n`` of the two-sided fill, or ``None`` (no look-ahead, too long a gap, or the
        concealer predicts causally). The fill ends where the next arrival begins: no cross-fade."""
        if lookahead is None or not self.two_sided or lookahead.gap_blocks > self.max_gap_blocks:
            return None
        future = np.asarray(lookahead.future, dtype=np.float32)
        if future.ndim != 1 or future.shape[0] < 1:
            raise ValueError(f"lookahead.future has shape {future.shape}, expected (future_samples,)")
        gap_samples = lookahead.gap_blocks * self.frames_per_block
        fill = self.fill_gap(future, gap_samples)
        if fill is None:
            return None
        fill = np.asarray(fill, dtype=np.float32)
        if fill.shape != (gap_samples,):
            raise ValueError(f"{self.name}.fill_gap returned shape {fill.shape}, expected ({gap_samples},)")
        self._pending_next = None  # the block after the gap is real and joins the fill as it is
        self.two_sided_blocks += 1
        return fill[: self.frames_per_block]

    def _conceal(self) -> np.ndarray:
        """Run :meth:`predict`, keep row 1 for the cross-fade and return row 0."""
        guess = np.asarray(self.predict(), dtype=np.float32)
        if guess.shape != (2, self.frames_per_block):
            raise ValueError(f"{self.name}.predict returned shape {guess.shape}, expected (2, {self.frames_per_block})")
        self._pending_next = guess[1]
        return guess[0]

    def _append_history(self, played: np.ndarray) -> None:
        n = played.shape[0]
        self.history[:-n] = self.history[n:]
        self.history[-n:] = played
