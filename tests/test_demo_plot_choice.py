"""The demo's plot shows a representative loss: the median SNR gain of NextBlock over Burg."""

from __future__ import annotations

import numpy as np
import pytest

from nextblock.evaluation.representative import block_snr_db, representative_loss

PERIOD = 128


def _signals(gains_db: dict[int, float], n_blocks: int = 64):
    """Reference tone; baseline with 0 dB SNR on every lost block; candidate with ``gain`` dB more."""
    t = np.arange(n_blocks * PERIOD)
    ref = 0.5 * np.sin(2 * np.pi * 440 * t / 48000)
    base, cand = ref.copy(), ref.copy()
    rng = np.random.default_rng(0)
    for b, gain in gains_db.items():
        sl = slice(b * PERIOD, (b + 1) * PERIOD)
        noise = rng.standard_normal(PERIOD)
        noise *= np.sqrt(np.sum(ref[sl] ** 2) / np.sum(noise**2))  # SNR 0 dB
        base[sl] = ref[sl] + noise
        cand[sl] = ref[sl] + noise * 10 ** (-gain / 20)  # SNR = gain dB
    return ref, cand, base


def test_block_snr_matches_its_construction():
    ref, cand, base = _signals({20: 6.0})
    assert block_snr_db(ref, base, 20, PERIOD) == pytest.approx(0.0, abs=1e-6)
    assert block_snr_db(ref, cand, 20, PERIOD) == pytest.approx(6.0, abs=1e-6)


def test_picks_the_median_gain_not_the_first_loss():
    gains = {10: -3.0, 20: 9.0, 30: 1.5, 40: 4.0, 50: 12.0}  # median 4.0 at block 40
    ref, cand, base = _signals(gains)
    c = representative_loss(ref, cand, base, list(gains), PERIOD)
    assert c.block == 40 and c.gain_db == pytest.approx(4.0, abs=1e-6)
    assert c.median_gain_db == pytest.approx(4.0, abs=1e-6) and (c.rank, c.n) == (3, 5)
    assert "median" in c.caption() and "+4.0 dB" in c.caption()


def test_even_count_takes_the_lower_median_and_skips_the_edges():
    gains = {2: 50.0, 12: 1.0, 22: 2.0, 32: 3.0, 42: 4.0, 62: 50.0}  # 2 and 62 lie within 8 blocks of an end
    ref, cand, base = _signals(gains)
    c = representative_loss(ref, cand, base, list(gains), PERIOD)
    assert c.n == 4 and c.block == 22


def test_no_scoreable_loss():
    ref, cand, base = _signals({})
    assert representative_loss(ref, cand, base, [1, 63], PERIOD) is None
