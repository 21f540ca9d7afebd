"""Seeded packet-loss and delay models used by the UDP relay (pure Python, no sockets).

Every model draws from its own ``numpy.random.Generator`` spawned from one seed, so the
same ``seed`` gives the same decisions for the same datagram index, run after run.

Loss specs (``make_loss_model``, ``--loss`` on the relay CLI) are the one grammar of every command,
parsed by :func:`nextblock.packetloss.parse_loss_spec` — probabilities from 0 to 1:

* ``none``                        — never drop;
* ``bernoulli:P``                 — each datagram dropped independently, e.g. ``bernoulli:0.05``
  (= ``bernoulli:5%``; the old ``bernoulli:PERCENT`` is refused with what to write);
* ``gilbert:P,R[,LOSS_BAD[,LOSS_GOOD]]`` — Gilbert-Elliott bursts: Good→Bad with probability P
  per datagram, Bad→Good with R; drop probability LOSS_BAD (default 1) in Bad and
  LOSS_GOOD (default 0) in Good. Mean burst length ≈ 1/R, long-run loss ≈ P/(P+R) for
  LOSS_BAD=1, LOSS_GOOD=0 (formerly ``ge:``, refused now);
* ``trace:PATH`` / ``periodic:EVERY[,BURST]`` — a 0/1 pattern per datagram, repeated;
* ``list:I1,I2,...``              — drop exactly these datagram indices (0 = first armed one).
"""

from __future__ import annotations

import numpy as np

from nextblock.packetloss import LossSpec, from_trace, parse_loss_spec

__all__ = [
    "BernoulliLoss",
    "DelayModel",
    "GilbertElliottLoss",
    "ListLoss",
    "LossModel",
    "NoLoss",
    "PatternLoss",
    "make_loss_model",
    "rng_streams",
]


def rng_streams(seed: int, n: int = 2) -> list[np.random.Generator]:
    """``n`` independent generators derived from ``seed`` (loss, delay, ...)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


class LossModel:
    """Decides, datagram by datagram (in arrival order), whether to drop."""

    spec = "none"

    def drop(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def mean_loss_fraction(self) -> float:
        """Long-run expected share of dropped datagrams."""
        raise NotImplementedError


class NoLoss(LossModel):
    """Never drops."""

    def drop(self) -> bool:
        return False

    def mean_loss_fraction(self) -> float:
        return 0.0


class BernoulliLoss(LossModel):
    """Independent drops with probability ``p`` (0 to 1)."""

    def __init__(self, p: float, rng: np.random.Generator):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p}")
        self.p = p
        self.rng = rng
        self.spec = f"bernoulli:{p:g}"

    def drop(self) -> bool:
        return bool(self.rng.random() < self.p)

    def mean_loss_fraction(self) -> float:
        return self.p


class GilbertElliottLoss(LossModel):
    """Two-state Markov (Gilbert-Elliott) burst loss; starts in the Good state."""

    def __init__(
        self,
        p_good_to_bad: float,
        p_bad_to_good: float,
        rng: np.random.Generator,
        loss_in_bad: float = 1.0,
        loss_in_good: float = 0.0,
    ):
        for name, v in (
            ("p_good_to_bad", p_good_to_bad),
            ("p_bad_to_good", p_bad_to_good),
            ("loss_in_bad", loss_in_bad),
            ("loss_in_good", loss_in_good),
        ):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {v}")
        if p_bad_to_good == 0.0:
            raise ValueError("p_bad_to_good = 0 would never leave a burst")
        self.p, self.r = p_good_to_bad, p_bad_to_good
        self.loss_bad, self.loss_good = loss_in_bad, loss_in_good
        self.rng = rng
        self.bad = False
        self.spec = f"gilbert:{self.p:g},{self.r:g},{self.loss_bad:g},{self.loss_good:g}"

    def drop(self) -> bool:
        u_state, u_loss = self.rng.random(2)
        if self.bad:
            if u_state < self.r:
                self.bad = False
        elif u_state < self.p:
            self.bad = True
        return bool(u_loss < (self.loss_bad if self.bad else self.loss_good))

    def mean_loss_fraction(self) -> float:
        share_bad = self.p / (self.p + self.r) if (self.p + self.r) > 0 else 0.0
        return share_bad * self.loss_bad + (1.0 - share_bad) * self.loss_good


class ListLoss(LossModel):
    """Drops exactly the listed datagram indices (counted from 0 in arrival order)."""

    def __init__(self, indices):
        self.indices = frozenset(int(i) for i in indices)
        self.k = 0
        self.spec = "list:" + ",".join(str(i) for i in sorted(self.indices))

    def drop(self) -> bool:
        hit = self.k in self.indices
        self.k += 1
        return hit

    def mean_loss_fraction(self) -> float:
        return float("nan")


class PatternLoss(LossModel):
    """Drops by a fixed 0/1 pattern per datagram (``trace:``, ``periodic:``), repeated cyclically."""

    def __init__(self, pattern: np.ndarray, spec: str):
        self.pattern = np.asarray(pattern, dtype=bool)
        self.k = 0
        self.spec = spec

    def drop(self) -> bool:
        hit = bool(self.pattern[self.k % self.pattern.size])
        self.k += 1
        return hit

    def mean_loss_fraction(self) -> float:
        return float(self.pattern.mean())


def make_loss_model(spec: str | LossSpec, rng: np.random.Generator) -> LossModel:
    """Build a loss model from a ``--loss`` spec (:func:`nextblock.packetloss.parse_loss_spec`);
    raises ``ValueError`` with the parser's message for a bad one."""
    parsed = spec if isinstance(spec, LossSpec) else parse_loss_spec(spec)
    if parsed.kind == "none":
        return NoLoss()
    if parsed.kind == "bernoulli":
        return BernoulliLoss(parsed.params[0], rng)
    if parsed.kind == "gilbert":
        return GilbertElliottLoss(parsed.params[0], parsed.params[1], rng, *parsed.params[2:])
    if parsed.kind == "list":
        return ListLoss(int(i) for i in parsed.params)
    if parsed.kind == "trace":
        return PatternLoss(from_trace(parsed.path), parsed.spec)
    if parsed.kind == "periodic":
        return PatternLoss(parsed.mask(int(parsed.params[0]), rng), parsed.spec)
    raise ValueError(f"loss spec {parsed.spec!r}: the relay has no {parsed.kind!r} loss")


class DelayModel:
    """One-way delay ``delay_ms + U(0, jitter_ms)`` per datagram, seeded.

    With ``keep_order=True`` (default) a datagram never overtakes the previous one
    (departure = max(own due time, previous departure)), which is how a queue behaves;
    ``keep_order=False`` lets jitter reorder datagrams.
    """

    def __init__(self, delay_ms: float, jitter_ms: float, rng: np.random.Generator, keep_order: bool = True):
        if delay_ms < 0 or jitter_ms < 0:
            raise ValueError("delay_ms and jitter_ms must be >= 0")
        self.delay_ms, self.jitter_ms = delay_ms, jitter_ms
        self.rng = rng
        self.keep_order = keep_order
        self._last_due_s = float("-inf")

    @property
    def active(self) -> bool:
        return self.delay_ms > 0 or self.jitter_ms > 0

    def due_time_s(self, now_s: float) -> float:
        """Departure time for a datagram that arrived at ``now_s``."""
        d_ms = self.delay_ms + (self.rng.random() * self.jitter_ms if self.jitter_ms > 0 else 0.0)
        due = now_s + d_ms / 1000.0
        if self.keep_order:
            due = max(due, self._last_due_s)
            self._last_due_s = due
        return due
