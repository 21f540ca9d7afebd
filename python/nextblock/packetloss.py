"""Packet-loss specs: the one ``--loss`` grammar of every command.

``nextblock demo``, ``nextblock evaluate``, ``bench/e2e.py``, the network lab (``LinkSpec``, the
seeded UDP relay ``python -m nextblock.netlab.relay``) and the model tools all read a loss with
:func:`parse_loss_spec`, so one spec means one loss process everywhere. Probabilities are
fractions from 0 to 1 (a Bernoulli rate may also be written in percent with a ``%`` sign):

====================================================  ===========================================================
spec                                                  pattern
====================================================  ===========================================================
``none``                                              no loss
``bernoulli:P`` (or ``bernoulli:PERCENT%``)           each packet lost independently with probability ``P``
                                                      (``bernoulli:0.05`` = ``bernoulli:5%``: 5 % loss)
``gilbert:P_ENTER,P_LEAVE[,LOSS_BAD[,LOSS_GOOD]]``    Gilbert-Elliott bursts: good -> bad with ``P_ENTER``,
                                                      bad -> good with ``P_LEAVE`` per packet (mean burst
                                                      ``1 / P_LEAVE``); a packet is lost with ``LOSS_BAD``
                                                      (default 1) in bad, ``LOSS_GOOD`` (default 0) in good
``trace:PATH``                                        a text file of 0/1 per packet (1 = lost), repeated
``periodic:EVERY[,BURST]``                            ``BURST`` (default 1) packets lost every ``EVERY``
``list:I,J,...``                                      exactly these packets (0 = the first)
====================================================  ===========================================================

What the old grammars meant differently is refused with what to write now: the demo's and the
relay's ``bernoulli:PERCENT`` (``bernoulli:5`` was 5 %; now a probability above 1 is an error that
says ``bernoulli:0.05``, and ``bernoulli:1`` — 1 % there, every packet here — is refused too:
write ``bernoulli:0.01`` or ``bernoulli:100%``) and their ``ge:`` (now ``gilbert:``, same numbers).

Each command draws its own seeded sequence from the parsed spec: the offline harness a mask per
stream (:meth:`LossSpec.mask`), the relay one decision per datagram
(:func:`nextblock.netlab.impairments.make_loss_model`); the same spec gives the same
probabilities, rates and burst lengths in both.

>>> parse_loss_spec("bernoulli:5%") == parse_loss_spec("bernoulli:0.05")
True
>>> parse_loss_spec("gilbert:0.02,0.25").expected_rate  # doctest: +ELLIPSIS
0.0740...
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy only where a mask is drawn: parsing (every --help, argparse) needs nothing
    import numpy as np

__all__ = [
    "GRAMMAR",
    "LossSpec",
    "bernoulli",
    "from_trace",
    "gilbert_elliott",
    "loss_argument",
    "parse_loss_spec",
    "periodic",
]

#: one line for ``--help`` texts
GRAMMAR = (
    "none | bernoulli:P (0-1, or bernoulli:PERCENT%) | gilbert:P_ENTER,P_LEAVE[,LOSS_BAD[,LOSS_GOOD]] | "
    "trace:PATH | periodic:EVERY[,BURST] | list:I,J,..."
)


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


def gilbert_elliott(
    n_blocks: int,
    p_enter: float,
    p_leave: float,
    rng: np.random.Generator,
    loss_bad: float = 1.0,
    loss_good: float = 0.0,
) -> np.ndarray:
    """Bursty losses from a two-state Markov chain (by default the simple Gilbert model: every
    block of the "bad" state is lost, none of the "good" state).

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
    loss_bad, loss_good:
        Probability that a block is lost in the bad / good state (default 1 / 0: the simple
        Gilbert model, drawn exactly as before these existed).

    Returns
    -------
    np.ndarray, shape ``(n_blocks,)``, bool
        The long-run share of bad blocks is ``p_enter / (p_enter + p_leave)``; the first block's
        state is drawn from that stationary distribution.
    """
    import numpy as np

    _check_probability("p_enter", p_enter)
    _check_probability("p_leave", p_leave)
    _check_probability("loss_bad", loss_bad)
    _check_probability("loss_good", loss_good)
    if p_leave == 0.0:
        raise ValueError("p_leave must be positive (a loss burst must end)")
    n_blocks = int(n_blocks)
    draws = rng.random(n_blocks + 1)
    bad_state = np.zeros(n_blocks, dtype=bool)
    stationary_bad = p_enter / (p_enter + p_leave) if p_enter + p_leave > 0 else 0.0
    bad = bool(draws[0] < stationary_bad)
    for i in range(n_blocks):
        if i > 0:
            bad = (draws[i] >= p_leave) if bad else (draws[i] < p_enter)
        bad_state[i] = bad
    if loss_bad == 1.0 and loss_good == 0.0:
        return bad_state
    return rng.random(n_blocks) < np.where(bad_state, loss_bad, loss_good)


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
    import numpy as np

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
    import numpy as np

    if every_blocks <= 0 or not 0 <= burst_blocks <= every_blocks:
        raise ValueError(f"periodic loss needs every > 0 and 0 <= burst <= every, got {every_blocks}, {burst_blocks}")
    index = np.arange(int(n_blocks)) % every_blocks
    return index >= every_blocks - burst_blocks


@dataclass(frozen=True)
class LossSpec:
    """A parsed ``--loss`` spec; :meth:`mask` draws the pattern for a stream.

    Attributes
    ----------
    spec:
        The spec string as given (the JSON ``loss`` field); not part of equality, so
        ``bernoulli:5%`` and ``bernoulli:0.05`` are equal specs.
    kind:
        ``"none"``, ``"bernoulli"``, ``"gilbert"``, ``"trace"``, ``"periodic"`` or ``"list"``.
    params:
        Numeric parameters: ``(P,)``; ``(P_ENTER, P_LEAVE, LOSS_BAD, LOSS_GOOD)`` (defaults filled
        in); ``(EVERY, BURST)``; the packet indices of ``list``.
    path:
        The trace file for ``kind == "trace"``.
    """

    spec: str = field(compare=False)
    kind: str
    params: tuple[float, ...] = ()
    path: str | None = None

    def mask(self, n_blocks: int, rng: np.random.Generator) -> np.ndarray:
        """The loss mask for a stream of ``n_blocks`` blocks, shape ``(n_blocks,)``, bool."""
        import numpy as np

        n_blocks = int(n_blocks)
        if self.kind == "none":
            return np.zeros(n_blocks, dtype=bool)
        if self.kind == "bernoulli":
            return bernoulli(n_blocks, self.params[0], rng)
        if self.kind == "gilbert":
            return gilbert_elliott(n_blocks, *self.params[:2], rng, *self.params[2:])
        if self.kind == "trace":
            return from_trace(self.path, n_blocks)
        if self.kind == "periodic":
            return periodic(n_blocks, int(self.params[0]), int(self.params[1]))
        if self.kind == "list":
            lost = np.zeros(n_blocks, dtype=bool)
            index = np.asarray(self.params, dtype=np.int64)
            lost[index[index < n_blocks]] = True
            return lost
        raise ValueError(f"unknown loss kind {self.kind!r}")

    @property
    def expected_rate(self) -> float | None:
        """Long-run fraction of lost blocks, where known without data (``None`` for traces and lists)."""
        if self.kind == "none":
            return 0.0
        if self.kind == "bernoulli":
            return self.params[0]
        if self.kind == "gilbert":
            p_enter, p_leave, loss_bad, loss_good = self.params
            share_bad = p_enter / (p_enter + p_leave)
            return share_bad * loss_bad + (1.0 - share_bad) * loss_good
        if self.kind == "periodic":
            return self.params[1] / self.params[0]
        return None


def parse_loss_spec(spec: str) -> LossSpec:
    """Parse a ``--loss`` spec string (the grammar in the module docstring).

    Raises
    ------
    ValueError
        With a one-line message saying what is wrong and what to write instead.
    """
    text = spec.strip()
    kind, _, arg = text.partition(":")
    kind = kind.strip().lower()
    if kind in ("none", "") and not arg:
        return LossSpec(text or "none", "none")
    if kind in ("ge", "gilbert-elliott"):
        raise ValueError(
            f"loss spec {spec!r}: {kind}: is gilbert: now (the same numbers): write gilbert:{arg or 'P_ENTER,P_LEAVE'}"
        )
    if kind == "trace":
        if not arg:
            raise ValueError(f"loss spec {spec!r}: expected trace:PATH")
        if not os.path.isfile(arg):
            raise ValueError(f"loss spec {spec!r}: trace file {arg!r} does not exist")
        from_trace(arg)  # validate now, fail early
        return LossSpec(text, "trace", path=arg)
    if kind == "bernoulli":
        return LossSpec(text, "bernoulli", (_bernoulli_probability(spec, arg),))
    try:
        numbers = tuple(float(part) for part in arg.split(",")) if arg else ()
    except ValueError:
        raise ValueError(f"loss spec {spec!r}: parameters must be numbers") from None
    if kind == "gilbert":
        if not 2 <= len(numbers) <= 4:
            raise ValueError(
                f"loss spec {spec!r}: expected gilbert:P_ENTER,P_LEAVE[,LOSS_BAD[,LOSS_GOOD]], e.g. gilbert:0.02,0.25"
            )
        # 2 to 4 numbers (LOSS_BAD, LOSS_GOOD optional): only the names given
        for name, value in zip(("P_ENTER", "P_LEAVE", "LOSS_BAD", "LOSS_GOOD"), numbers, strict=False):
            _check_probability(name, value, spec)
        if numbers[1] == 0.0:
            raise ValueError(f"loss spec {spec!r}: P_LEAVE must be positive (a loss burst must end)")
        return LossSpec(text, "gilbert", numbers + (1.0, 0.0)[len(numbers) - 2 :])
    if kind == "periodic":
        if len(numbers) not in (1, 2) or any(n != int(n) for n in numbers):
            raise ValueError(f"loss spec {spec!r}: expected periodic:EVERY[,BURST] in whole blocks, e.g. periodic:20,2")
        every = int(numbers[0])
        burst = int(numbers[1]) if len(numbers) == 2 else 1
        if every <= 0 or not 0 <= burst <= every:
            raise ValueError(f"loss spec {spec!r}: need EVERY > 0 and 0 <= BURST <= EVERY")
        return LossSpec(text, "periodic", (float(every), float(burst)))
    if kind == "list":
        if not numbers or any(n != int(n) or n < 0 for n in numbers):
            raise ValueError(
                f"loss spec {spec!r}: expected list:I,J,... of packet indices (0 = the first), e.g. list:3,4,10"
            )
        return LossSpec(text, "list", tuple(sorted({float(n) for n in numbers})))
    raise ValueError(f"loss spec {spec!r}: unknown kind {kind!r}; use {GRAMMAR}")


def _bernoulli_probability(spec: str, arg: str) -> float:
    """``P`` of ``bernoulli:P`` / ``bernoulli:PERCENT%``; refuses what the old percent grammar read otherwise."""
    arg = arg.strip()
    percent = arg.endswith("%")
    try:
        value = float(arg[:-1] if percent else arg)
    except ValueError:
        raise ValueError(
            f"loss spec {spec!r}: expected bernoulli:P with P a probability from 0 to 1, "
            "e.g. bernoulli:0.05 (or bernoulli:5%); parameters must be numbers"
        ) from None
    if percent:
        if not 0.0 <= value <= 100.0:
            raise ValueError(f"loss spec {spec!r}: a percentage must be from 0% to 100%")
        return value / 100.0
    if value == 1.0:
        raise ValueError(
            f"loss spec {spec!r}: bernoulli:1 would lose every packet (in the demo's and the relay's old "
            "grammar it meant 1 %): for 1 % loss write bernoulli:0.01 (or bernoulli:1%), for every packet "
            "bernoulli:100%"
        )
    if 1.0 < value <= 100.0:
        raise ValueError(
            f"loss spec {spec!r}: bernoulli:P takes a probability from 0 to 1 (in the demo's and the "
            f"relay's old grammar bernoulli:{value:g} meant {value:g} %): for {value:g} % loss write "
            f"bernoulli:{value / 100:g} (or bernoulli:{value:g}%)"
        )
    _check_probability("P", value, spec)
    return value


def loss_argument(text: str) -> str:
    """``type=`` for an argparse ``--loss`` option: the spec as given once :func:`parse_loss_spec`
    accepts it, else an argparse error with its message."""
    try:
        parse_loss_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def _check_probability(name: str, value: float, spec: str | None = None) -> None:
    if not 0.0 <= value <= 1.0:
        where = f"loss spec {spec!r}: " if spec else ""
        raise ValueError(f"{where}{name} must be a probability in [0, 1], got {value}")
