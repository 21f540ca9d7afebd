"""Packet-loss patterns: which blocks of a stream are lost.

Every pattern is a boolean mask of shape ``(n_blocks,)``, ``True`` where the block is lost.
Random patterns take a :class:`numpy.random.Generator`, so one seed gives one pattern that is
applied to every concealer.

Spec strings (the ``--loss`` option of ``python -m nextblock.evaluate``):

====================================  ===============================================================
spec                                  pattern
====================================  ===============================================================
``none``                              no loss
``bernoulli:P``                       each block lost independently with probability ``P``
``gilbert:P_ENTER,P_LEAVE``           Gilbert-Elliott bursts: good -> lost with ``P_ENTER``, lost ->
                                      good with ``P_LEAVE`` per block (mean burst ``1 / P_LEAVE``)
``trace:PATH``                        a text file of 0/1 per block (1 = lost), repeated to length
``periodic:EVERY[,BURST]``            ``BURST`` (default 1) blocks lost every ``EVERY`` blocks
====================================  ===============================================================

>>> rng = np.random.default_rng(1)
>>> parse_loss_spec("gilbert:0.02,0.25").mask(1000, rng).shape
(1000,)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np


def bernoulli(n_blocks: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """Independent losses.

    Parameters
    ----------
    n_blocks:
        Length of the stream in blocks.
    p:
        Loss probability per block, in ``[0, 1]``.
    rng:
        Random generator (seeded by the caller).

    Returns
    -------
    np.ndarray, shape ``(n_blocks,)``, bool
    """
    _check_probability("p", p)
    return rng.random(int(n_blocks)) < p


def gilbert_elliott(n_blocks: int, p_enter: float, p_leave: float, rng: np.random.Generator) -> np.ndarray:
    """Bursty losses from a two-state Markov chain (simple Gilbert model: every block of the
    "bad" state is lost, none of the "good" state).

    Parameters
    ----------
    n_blocks:
        Length of the stream in blocks.
    p_enter:
        Probability per block of going from good (received) to bad (lost).
    p_leave:
        Probability per block of going from bad back to good; bursts last ``1 / p_leave``
        blocks on average. Must be positive.
    rng:
        Random generator.

    Returns
    -------
    np.ndarray, shape ``(n_blocks,)``, bool
        The long-run loss rate is ``p_enter / (p_enter + p_leave)``; the first block's state is
        drawn from that stationary distribution.
    """
    _check_probability("p_enter", p_enter)
    _check_probability("p_leave", p_leave)
    if p_leave == 0.0:
        raise ValueError("p_leave must be positive (a loss burst must end)")
    n_blocks = int(n_blocks)
    draws = rng.random(n_blocks + 1)
    lost = np.zeros(n_blocks, dtype=bool)
    stationary_bad = p_enter / (p_enter + p_leave) if p_enter + p_leave > 0 else 0.0
    bad = bool(draws[0] < stationary_bad)
    for i in range(n_blocks):
        if i > 0:
            bad = (draws[i] >= p_leave) if bad else (draws[i] < p_enter)
        lost[i] = bad
    return lost


def from_trace(path: str | os.PathLike, n_blocks: int | None = None) -> np.ndarray:
    """Read a loss trace: ``0``/``1`` per block (1 = lost), separated by whitespace or commas;
    ``#`` starts a comment.

    Parameters
    ----------
    path:
        Text file.
    n_blocks:
        If given, the trace is repeated (cyclically) or cut to this length.

    Returns
    -------
    np.ndarray, shape ``(n_blocks,)`` or ``(len(trace),)``, bool
    """
    with open(path, encoding="utf-8") as handle:
        text = "\n".join(line.split("#", 1)[0] for line in handle)
    tokens = [token for token in re.split(r"[\s,;]+", text) if token]
    bad = sorted({token for token in tokens if token not in ("0", "1")})
    if bad:
        raise ValueError(f"loss trace {os.fspath(path)!r} may only hold 0 and 1, found {bad[:3]}")
    if not tokens:
        raise ValueError(f"loss trace {os.fspath(path)!r} is empty")
    trace = np.array([token == "1" for token in tokens], dtype=bool)
    if n_blocks is None:
        return trace
    return np.resize(trace, int(n_blocks))


def periodic(n_blocks: int, every_blocks: int, burst_blocks: int = 1) -> np.ndarray:
    """Deterministic losses: ``burst_blocks`` lost at the end of every ``every_blocks`` blocks.

    Returns
    -------
    np.ndarray, shape ``(n_blocks,)``, bool
    """
    if every_blocks <= 0 or not 0 <= burst_blocks <= every_blocks:
        raise ValueError(f"periodic loss needs every > 0 and 0 <= burst <= every, got {every_blocks}, {burst_blocks}")
    index = np.arange(int(n_blocks)) % every_blocks
    return index >= every_blocks - burst_blocks


@dataclass(frozen=True)
class LossSpec:
    """A parsed ``--loss`` spec string; :meth:`mask` draws the pattern.

    Attributes
    ----------
    spec:
        The spec string as given (the JSON ``loss`` field).
    kind:
        ``"none"``, ``"bernoulli"``, ``"gilbert"``, ``"trace"`` or ``"periodic"``.
    params:
        Numeric parameters (probabilities, block counts).
    path:
        The trace file for ``kind == "trace"``.
    """

    spec: str
    kind: str
    params: tuple[float, ...] = ()
    path: str | None = None

    def mask(self, n_blocks: int, rng: np.random.Generator) -> np.ndarray:
        """The loss mask for a stream of ``n_blocks`` blocks, shape ``(n_blocks,)``, bool."""
        if self.kind == "none":
            return np.zeros(int(n_blocks), dtype=bool)
        if self.kind == "bernoulli":
            return bernoulli(n_blocks, self.params[0], rng)
        if self.kind == "gilbert":
            return gilbert_elliott(n_blocks, self.params[0], self.params[1], rng)
        if self.kind == "trace":
            return from_trace(self.path, n_blocks)
        if self.kind == "periodic":
            return periodic(n_blocks, int(self.params[0]), int(self.params[1]))
        raise ValueError(f"unknown loss kind {self.kind!r}")

    @property
    def expected_rate(self) -> float | None:
        """Long-run fraction of lost blocks, where known without data (``None`` for traces)."""
        if self.kind == "none":
            return 0.0
        if self.kind == "bernoulli":
            return self.params[0]
        if self.kind == "gilbert":
            return self.params[0] / (self.params[0] + self.params[1])
        if self.kind == "periodic":
            return self.params[1] / self.params[0]
        return None


def parse_loss_spec(spec: str) -> LossSpec:
    """Parse a ``--loss`` spec string (see the module docstring).

    Raises
    ------
    ValueError
        With a one-line message saying what is wrong and what is expected.
    """
    text = spec.strip()
    kind, _, arg = text.partition(":")
    kind = kind.lower()
    if kind == "none" and not arg:
        return LossSpec(text, "none")
    if kind == "trace":
        if not arg:
            raise ValueError(f"loss spec {spec!r}: expected trace:PATH")
        if not os.path.isfile(arg):
            raise ValueError(f"loss spec {spec!r}: trace file {arg!r} does not exist")
        from_trace(arg)  # validate now, fail early
        return LossSpec(text, "trace", path=arg)
    try:
        numbers = tuple(float(part) for part in arg.split(",")) if arg else ()
    except ValueError:
        raise ValueError(f"loss spec {spec!r}: parameters must be numbers") from None
    if kind == "bernoulli":
        if len(numbers) != 1:
            raise ValueError(f"loss spec {spec!r}: expected bernoulli:P, e.g. bernoulli:0.05")
        _check_probability("P", numbers[0], spec)
        return LossSpec(text, "bernoulli", numbers)
    if kind in ("gilbert", "gilbert-elliott", "ge"):
        if len(numbers) != 2:
            raise ValueError(f"loss spec {spec!r}: expected gilbert:P_ENTER,P_LEAVE, e.g. gilbert:0.02,0.25")
        _check_probability("P_ENTER", numbers[0], spec)
        _check_probability("P_LEAVE", numbers[1], spec)
        if numbers[1] == 0.0:
            raise ValueError(f"loss spec {spec!r}: P_LEAVE must be positive")
        return LossSpec(text, "gilbert", numbers)
    if kind == "periodic":
        if len(numbers) not in (1, 2) or any(n != int(n) for n in numbers):
            raise ValueError(f"loss spec {spec!r}: expected periodic:EVERY[,BURST] in whole blocks, e.g. periodic:20,2")
        every = int(numbers[0])
        burst = int(numbers[1]) if len(numbers) == 2 else 1
        if every <= 0 or not 0 <= burst <= every:
            raise ValueError(f"loss spec {spec!r}: need EVERY > 0 and 0 <= BURST <= EVERY")
        return LossSpec(text, "periodic", (float(every), float(burst)))
    raise ValueError(f"loss spec {spec!r}: unknown kind {kind!r}; use none, bernoulli:P, gilbert:P_ENTER,P_LEAVE, trace:PATH or periodic:EVERY[,BURST]")


def _check_probability(name: str, value: float, spec: str | None = None) -> None:
    if not 0.0 <= value <= 1.0:
        where = f"loss spec {spec!r}: " if spec else ""
        raise ValueError(f"{where}{name} must be a probability in [0, 1], got {value}")
