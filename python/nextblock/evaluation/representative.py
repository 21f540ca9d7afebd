"""Which loss to show: the one whose improvement over a baseline is the median.

A plot of one concealed loss says something only if that loss is typical. The demo shows the lost
block on which NextBlock's SNR gain over JackTrip's Burg is the median of the gains over every
lost block (the lower median when their number is even), and says so in the plot's title.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Choice:
    """The representative lost block and where it sits among all of them."""

    block: int  #: index of the lost block (in blocks of ``period`` samples)
    gain_db: float  #: the candidate's SNR minus the baseline's on that block
    median_gain_db: float  #: the median gain over every scored lost block
    rank: int  #: 1-based position of ``block`` among the gains, lowest first
    n: int  #: how many lost blocks were scored

    def caption(self, candidate: str = "NextBlock", baseline: str = "Burg") -> str:
        return (
            f"the loss with the median SNR gain of {candidate} over {baseline}: {self.gain_db:+.1f} dB "
            f"(median of {self.n} losses {self.median_gain_db:+.1f} dB)"
        )


def block_snr_db(reference: np.ndarray, played: np.ndarray, block: int, period: int) -> float:
    """SNR of ``played`` against ``reference`` on one block, dB (shapes ``(n_samples,)``)."""
    ref = np.asarray(reference[block * period : (block + 1) * period], np.float64)
    err = np.asarray(played[block * period : (block + 1) * period], np.float64) - ref
    return float(10.0 * np.log10((np.sum(ref * ref) + 1e-12) / (np.sum(err * err) + 1e-12)))


def representative_loss(
    reference: np.ndarray,
    candidate: np.ndarray,
    baseline: np.ndarray,
    lost_blocks: list[int],
    period: int,
    margin_blocks: int = 8,
    min_peak: float = 0.05,
) -> Choice | None:
    """The lost block with the median SNR gain of ``candidate`` over ``baseline``.

    reference, candidate, baseline: shape ``(n_samples,)``, aligned. lost_blocks: block indices.
    Blocks within ``margin_blocks`` of either end are left out (the plot shows context around the
    loss), and so are near-silent ones (peak below ``min_peak``) unless every loss is near-silent.
    Returns None where no lost block can be scored.
    """
    n_blocks = min(len(reference), len(candidate), len(baseline)) // period
    blocks = sorted({int(b) for b in lost_blocks if margin_blocks <= b < n_blocks - margin_blocks})
    loud = [b for b in blocks if np.abs(reference[b * period : (b + 1) * period]).max() > min_peak]
    blocks = loud or blocks
    if not blocks:
        return None
    gains = np.array(
        [block_snr_db(reference, candidate, b, period) - block_snr_db(reference, baseline, b, period) for b in blocks]
    )
    order = np.argsort(gains, kind="stable")
    k = (len(blocks) - 1) // 2
    pick = int(order[k])
    return Choice(
        block=blocks[pick],
        gain_db=float(gains[pick]),
        median_gain_db=float(np.median(gains)),
        rank=k + 1,
        n=len(blocks),
    )
