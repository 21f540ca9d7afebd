"""Per-channel context assembly: what was received, with gaps filled by what was played.

:class:`ContextRing` keeps the last ``slots`` blocks of every channel, indexed by sequence
number (slot ``seq % slots``), in a *mirrored* buffer: every block is written twice, at slot
``i`` and at slot ``i + slots``. The context for the block ``seq`` (blocks ``seq - n .. seq - 1``)
is then always one contiguous slice, returned as a view: assembling a context costs no copy and
no allocation.

Each slot remembers which seq it holds and where the samples came from:

* ``RECEIVED`` – the real block from the segment. Always wins: it overwrites anything.
* ``PREDICTED`` – our posted guess for a block that had not arrived. When JackTrip reports an
  UNDERRUN with outcome REPLACEMENT for that seq, this is exactly what it played. With outcome
  FALLBACK JackTrip played its own concealment, which the segment does not carry; we keep our
  guess anyway (closer to the real signal than zeros, and it keeps the context continuous).
* ``SILENCE`` – a block nobody received or predicted (stream start, long gaps): zeros.

Shapes: a block from the segment is ``(frames_per_block, channels)`` (frame-major, as
published); the ring and contexts are ``(channels, samples)``, newest sample last.
"""

from __future__ import annotations

import numpy as np

from ..splice import fade_windows

EMPTY = 0
RECEIVED = 1
PREDICTED = 2
SILENCE = 3

#: marks a slot that holds no block (no real seq is this negative)
NO_SEQ = np.iinfo(np.int64).min


class ContextRing:
    """The last ``slots`` blocks of every channel, by sequence number.

    Parameters
    ----------
    channels:
        Channels of the stream.
    frames_per_block:
        Samples per block.
    slots:
        Blocks kept (rounded up to a power of two). Must exceed the context length in blocks plus
        the longest burst that is chained; 64 blocks (171 ms at 128/48k) is plenty.
    sample_rate_hz:
        The stream's rate: the recovery fade after a replacement lasts 32 samples at 48 kHz.

    Attributes
    ----------
    samples : np.ndarray, ``(channels, 2 * slots * frames_per_block)`` float32
        The mirrored storage (read through :meth:`context_for`).
    seq_of_slot : np.ndarray, ``(slots,)`` int64
        The seq each slot holds (``NO_SEQ``: none).
    source_of_slot : np.ndarray, ``(slots,)`` uint8
        ``EMPTY``, ``RECEIVED``, ``PREDICTED`` or ``SILENCE``.
    """

    def __init__(self, channels: int, frames_per_block: int, slots: int = 64, sample_rate_hz: int = 48000):
        if channels <= 0 or frames_per_block <= 0 or slots <= 1:
            raise ValueError("channels, frames_per_block must be positive and slots > 1")
        self.channels = int(channels)
        self.frames_per_block = int(frames_per_block)
        self.slots = 1 << (int(slots) - 1).bit_length()
        self._mask = self.slots - 1
        self._half_samples = self.slots * self.frames_per_block
        self.samples = np.zeros((self.channels, 2 * self._half_samples), np.float32)
        self.seq_of_slot = np.full(self.slots, NO_SEQ, np.int64)
        self.source_of_slot = np.zeros(self.slots, np.uint8)
        # the second block of a posted replacement, by the seq it fades into (put_predicted)
        self._fade_from = np.zeros((self.slots, self.channels, self.frames_per_block), np.float32)
        self._fade_seq = np.full(self.slots, NO_SEQ, np.int64)
        self._faded_seq = np.full(self.slots, NO_SEQ, np.int64)  # a received block cross-faded in place
        #: weight of the replacement's second block over the block after a concealment (1 -> 0
        #: over the recovery fade of ``shm_layout.hpp``: what the patched JackTrip and the
        #: stand-in producer play)
        self._fade_out = fade_windows(self.frames_per_block, "recovery", int(sample_rate_hz))[0]

    @property
    def capacity_samples(self) -> int:
        """Longest context :meth:`context_for` can return, per channel."""
        return self._half_samples

    def _write(self, seq: int, block_cf: np.ndarray, source: int) -> None:
        slot = seq & self._mask
        start = slot * self.frames_per_block
        end = start + self.frames_per_block
        self.samples[:, start:end] = block_cf
        self.samples[:, start + self._half_samples : end + self._half_samples] = block_cf
        self.seq_of_slot[slot] = seq
        self.source_of_slot[slot] = source

    def put_received(self, seq: int, block_fc: np.ndarray) -> None:
        """Store a received block ``(frames_per_block, channels)`` (segment layout) for ``seq``."""
        self._write(seq, block_fc.T, RECEIVED)

    def put_predicted(self, seq: int, block_cf: np.ndarray, next_cf: np.ndarray | None = None) -> bool:
        """Store our guess ``(channels, frames_per_block)`` for ``seq`` unless the real block is
        already there. Returns whether it was stored.

        ``next_cf``: the replacement's second block. The producer plays the real block ``seq + 1``
        cross-faded from it, so that block enters later contexts the same way (:meth:`context_for`
        applies the fade once the block is here). Without it a context would hold a step where the
        guess ends and the raw received block starts — audio nobody heard, and a click the model
        answers with ripple at the end of its next prediction."""
        slot = seq & self._mask
        if self.seq_of_slot[slot] == seq and self.source_of_slot[slot] == RECEIVED:
            return False
        self._write(seq, block_cf, PREDICTED)
        if next_cf is not None:
            nxt = (seq + 1) & self._mask
            self._fade_from[nxt] = next_cf
            self._fade_seq[nxt] = seq + 1
        return True

    def _apply_fade(self, seq: int) -> None:
        """Cross-fade received block ``seq`` from the replacement block kept for it, once, as the
        producer played it (only while block ``seq - 1`` is still our guess)."""
        slot = seq & self._mask
        prev = (seq - 1) & self._mask
        self._fade_seq[slot] = NO_SEQ
        if self.seq_of_slot[prev] != seq - 1 or self.source_of_slot[prev] != PREDICTED:
            return  # the real block seq - 1 came after all: nothing was faded
        start = slot * self.frames_per_block
        end = start + self.frames_per_block
        block = self.samples[:, start:end]
        block += self._fade_out * (self._fade_from[slot] - block)
        self.samples[:, start + self._half_samples : end + self._half_samples] = block
        self._faded_seq[slot] = seq

    def source_of(self, seq: int) -> int:
        """Where the samples held for ``seq`` came from (``EMPTY`` when the slot holds another seq)."""
        slot = seq & self._mask
        return int(self.source_of_slot[slot]) if self.seq_of_slot[slot] == seq else EMPTY

    def block(self, seq: int) -> np.ndarray | None:
        """View ``(channels, frames_per_block)`` of the samples held for ``seq``, or ``None``."""
        slot = seq & self._mask
        if self.seq_of_slot[slot] != seq:
            return None
        start = slot * self.frames_per_block
        return self.samples[:, start : start + self.frames_per_block]

    def raw_received(self, seq: int, max_blocks: int) -> np.ndarray | None:
        """View ``(channels, n * frames_per_block)`` of the received blocks ``seq, seq + 1, ...``
        (at most ``max_blocks``, as they arrived), or ``None`` when ``seq`` is not here or was
        already cross-faded in place from a guess before it (:meth:`context_for`)."""
        slot = seq & self._mask
        if self.seq_of_slot[slot] != seq or self.source_of_slot[slot] != RECEIVED or self._faded_seq[slot] == seq:
            return None
        n = 1
        while (
            n < max_blocks
            and self.source_of(seq + n) == RECEIVED
            and self._faded_seq[(seq + n) & self._mask] != seq + n
        ):
            n += 1
        start = slot * self.frames_per_block
        return self.samples[:, start : start + n * self.frames_per_block]

    def predicted_run(self, seq: int, n_blocks: int) -> np.ndarray | None:
        """Our guesses for blocks ``seq .. seq + n_blocks - 1`` as one ``(channels, n_blocks *
        frames_per_block)`` view, or ``None`` when any of them is not a guess held here."""
        for s in range(seq, seq + n_blocks):
            if self.source_of(s) != PREDICTED:
                return None
        start = (seq & self._mask) * self.frames_per_block
        return self.samples[:, start : start + n_blocks * self.frames_per_block]

    def concealed_samples_before(self, next_seq: int, max_blocks: int) -> int:
        """Samples at the end of the context before ``next_seq`` that were not received (our
        guesses and silence since the newest received block), counting at most ``max_blocks``."""
        count = 0
        while count < max_blocks and self.source_of(next_seq - 1 - count) != RECEIVED:
            count += 1
        return count * self.frames_per_block

    def context_for(self, next_seq: int, context_samples: int) -> np.ndarray:
        """The ``context_samples`` newest samples before block ``next_seq``, per channel.

        Blocks ``next_seq - ceil(context_samples / frames) .. next_seq - 1`` are used; a slot that
        holds no block of that seq is zeroed and marked ``SILENCE`` first, and a received block
        after one of our guesses is cross-faded from that guess's second block, as it was played
        (:meth:`put_predicted`; bounded work: at most the context's blocks). Returns a view
        ``(channels, context_samples)`` into the ring, valid until the next write.
        """
        if context_samples > self._half_samples:
            raise ValueError(f"context of {context_samples} samples exceeds the ring ({self._half_samples})")
        frames = self.frames_per_block
        n_blocks = -(-context_samples // frames)
        first = next_seq - n_blocks
        seqs = np.arange(first, next_seq, dtype=np.int64)
        slots = seqs & self._mask
        held = self.seq_of_slot[slots] == seqs
        to_fade = held & (self._fade_seq[slots] == seqs) & (self.source_of_slot[slots] == RECEIVED)
        for i in np.flatnonzero(~held | to_fade):  # few: gaps and the block after each guess
            seq = int(seqs[i])
            if not held[i]:
                self._write(seq, 0.0, SILENCE)
            else:
                self._apply_fade(seq)
        start = (first & self._mask) * frames + n_blocks * frames - context_samples
        return self.samples[:, start : start + context_samples]
