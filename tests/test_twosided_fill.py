"""The two-sided gap fill (csrc/nextblock/lsar.hpp through nextblock.features.twosided): the C++
against its float64 reference, its guard, its shapes, and that it beats extrapolation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from nextblock.features.lpc import burg_continuation
from nextblock.features.twosided import FILL_PATHS, fill_gap, fill_gap_reference


def ar_process(n: int, seed: int, poles=((0.995, 0.031), (0.99, 0.17), (0.97, 0.6))) -> np.ndarray:
    """``(n,)`` float32: white noise through resonances (radius, angle/π): a stationary AR(6)."""
    rng = np.random.default_rng(seed)
    a = np.array([1.0])
    for radius, angle in poles:
        a = np.convolve(a, [1.0, -2 * radius * np.cos(np.pi * angle), radius * radius])
    x = scipy.signal.lfilter([1.0], a, rng.standard_normal(n + 2000))[2000:]
    return (0.1 * x / np.std(x)).astype(np.float32)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(
        10
        * np.log10(
            np.sum(np.square(reference, dtype=np.float64)) / np.sum(np.square(reference - estimate, dtype=np.float64))
        )
    )


@pytest.mark.parametrize(
    "gap, future, order", [(128, 128, 128), (128, 128, 32), (64, 16, 128), (256, 128, 64), (16, 64, 8)]
)
@pytest.mark.parametrize("with_prior, prior_fade", [(False, 0.0), (True, 0.0), (True, 1.0)])
@pytest.mark.parametrize("levinson", [False, True], ids=["cholesky", "levinson-where-toeplitz"])
def test_fill_matches_the_float64_reference(gap, future, order, with_prior, prior_fade, levinson):
    # a stretch whose gap is not louder than the guard allows (the reference has no guard)
    for seed in range(gap + order, gap + order + 50):
        x = ar_process(2048 + gap + future, seed=seed)
        past, truth, after = x[:2048], x[2048 : 2048 + gap], x[2048 + gap :]
        if np.mean(truth**2) < 1.5 * max(np.mean(past[-gap:] ** 2), np.mean(after**2)):
            break
    prior = (truth + 0.05 * np.random.default_rng(1).standard_normal(gap)).astype(np.float32) if with_prior else None
    fill, paths = fill_gap(
        past[None],
        after[None],
        gap,
        None if prior is None else prior[None],
        order=order,
        prior_fade=prior_fade,
        levinson=levinson,
    )
    reference = fill_gap_reference(past, after, gap, prior, order=order, prior_fade=prior_fade)
    assert FILL_PATHS[int(paths[0])] == "interpolated"
    # Burg's later orders run in float32 in C++ (lpc.hpp): the two agree to far below the fill's error
    assert snr_db(reference, fill[0]) > 40.0


def test_interpolation_beats_extrapolation_with_the_same_model():
    """Over many gaps of a stationary process, knowing the block after the gap is worth dB (2.86 here)
    over continuing the past with the same AR(128) model."""
    signal, error_fill, error_forward = 0.0, 0.0, 0.0
    for seed in range(20):
        x = ar_process(2048 + 256, seed=seed)
        past, truth, after = x[:2048], x[2048:2176], x[2176:]
        fill, _ = fill_gap(past[None], after[None], 128, order=128, prior_weight=0.0)
        forward = burg_continuation(past[None, -1024:], 128, 128)[0]
        signal += float(np.sum(truth.astype(np.float64) ** 2))
        error_fill += float(np.sum((truth - fill[0]).astype(np.float64) ** 2))
        error_forward += float(np.sum((truth - forward).astype(np.float64) ** 2))
    gain_db = 10 * np.log10(error_forward / error_fill)
    assert gain_db > 2.0, f"interpolation only {gain_db:.2f} dB better than extrapolation"
    assert 10 * np.log10(signal / error_fill) > 5.0


def test_a_good_prior_pulls_the_fill_towards_it():
    x = ar_process(2048 + 256, seed=7)
    past, truth, after = x[:2048], x[2048:2176], x[2176:]
    plain, _ = fill_gap(past[None], after[None], 128, prior_weight=0.0)
    fused, _ = fill_gap(past[None], after[None], 128, truth[None], prior_weight=10.0)
    assert snr_db(truth, fused[0]) > snr_db(truth, plain[0]) + 3.0


def test_silence_on_both_sides_fills_zeros():
    fill, paths = fill_gap(np.zeros((2, 2048), np.float32), np.zeros((2, 128), np.float32), 128)
    assert np.array_equal(fill, np.zeros((2, 128), np.float32))
    assert [FILL_PATHS[int(p)] for p in paths] == ["silent", "silent"]


def test_channels_are_independent():
    a, b = ar_process(2304, seed=1), ar_process(2304, seed=2)
    both, _ = fill_gap(np.stack([a[:2048], b[:2048]]), np.stack([a[2176:], b[2176:]]), 128)
    alone, _ = fill_gap(b[None, :2048], b[None, 2176:], 128)
    np.testing.assert_array_equal(both[1], alone[0])


@given(
    seed=st.integers(0, 2**31 - 1),
    gap=st.sampled_from([16, 64, 128, 256]),
    future=st.sampled_from([16, 64, 128]),
    loud_future_db=st.floats(-40.0, 40.0),
)
@settings(max_examples=40, deadline=None)
def test_the_fill_is_finite_and_never_louder_than_the_guard_allows(seed, gap, future, loud_future_db):
    """Whatever the material on either side (a jump of ±40 dB between them, noise, a transient),
    the fill is finite, and unless it is the forward guess, no louder than twice its louder
    neighbour (the guard)."""
    rng = np.random.default_rng(seed)
    past = ar_process(2048, seed=seed % 1000) * np.float32(rng.uniform(0.01, 1.0))
    after = (rng.standard_normal(future) * 0.1 * 10 ** (loud_future_db / 20)).astype(np.float32)
    if rng.uniform() < 0.3:
        after[: future // 4] *= 30.0  # a transient right after the gap
    fill, paths = fill_gap(past[None], after[None], gap)
    assert np.isfinite(fill).all()
    path = FILL_PATHS[int(paths[0])]
    if path in ("interpolated", "blended"):
        neighbours = max(
            float(np.mean(past[-gap:].astype(np.float64) ** 2)), float(np.mean(after.astype(np.float64) ** 2))
        )
        assert float(np.mean(fill.astype(np.float64) ** 2)) <= 2.0 * neighbours * (1 + 1e-6)


def test_non_finite_input_is_treated_as_silence_not_propagated():
    x = ar_process(2304, seed=3)
    past = x[:2048].copy()
    past[100] = np.nan
    after = x[2176:].copy()
    after[5] = np.inf
    fill, _ = fill_gap(past[None], after[None], 128)
    assert np.isfinite(fill).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(past=np.zeros((1, 100)), future=np.zeros((1, 16)), gap_samples=16), "fit_samples"),
        (dict(past=np.zeros((1, 2048)), future=np.zeros((2, 16)), gap_samples=16), "rows"),
        (dict(past=np.zeros((1, 2048)), future=np.zeros((1, 0)), gap_samples=16), "future"),
        (dict(past=np.zeros((1, 2048)), future=np.zeros((1, 16)), gap_samples=0), "gap"),
        (dict(past=np.zeros((1, 2048)), future=np.zeros((1, 16)), gap_samples=16, prior=np.zeros((1, 8))), "prior"),
        (dict(past=np.zeros((1, 2048)), future=np.zeros((1, 16)), gap_samples=16, prior_fade=2.0), "prior_fade"),
    ],
)
def test_bad_shapes_are_refused_with_a_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fill_gap(**kwargs)
