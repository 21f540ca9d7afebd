"""Loss patterns and ``--loss`` spec strings."""

from __future__ import annotations

import numpy as np
import pytest

from nextblock.evaluation.loss import bernoulli, from_trace, gilbert_elliott, parse_loss_spec, periodic


def _burst_lengths(mask: np.ndarray) -> np.ndarray:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def test_bernoulli_rate_and_seeding():
    mask = bernoulli(200_000, 0.05, np.random.default_rng(1))
    assert mask.dtype == bool and mask.shape == (200_000,)
    assert mask.mean() == pytest.approx(0.05, abs=0.002)
    np.testing.assert_array_equal(mask, bernoulli(200_000, 0.05, np.random.default_rng(1)))
    assert not np.array_equal(mask, bernoulli(200_000, 0.05, np.random.default_rng(2)))
    assert not bernoulli(100, 0.0, np.random.default_rng(0)).any()
    assert bernoulli(100, 1.0, np.random.default_rng(0)).all()


def test_gilbert_elliott_rate_and_burst_length():
    p_enter, p_leave = 0.02, 0.25
    mask = gilbert_elliott(300_000, p_enter, p_leave, np.random.default_rng(3))
    assert mask.mean() == pytest.approx(p_enter / (p_enter + p_leave), rel=0.05)
    bursts = _burst_lengths(mask)
    assert bursts.mean() == pytest.approx(1 / p_leave, rel=0.05)  # geometric bursts
    gaps = _burst_lengths(~mask)
    assert gaps.mean() == pytest.approx(1 / p_enter, rel=0.08)


def test_gilbert_elliott_rejects_endless_bursts():
    with pytest.raises(ValueError, match="p_leave"):
        gilbert_elliott(10, 0.1, 0.0, np.random.default_rng(0))


def test_trace_file_is_read_repeated_and_validated(tmp_path):
    trace = tmp_path / "trace.txt"
    trace.write_text("# lost blocks\n0 0 1\n1,0  # comment\n")
    np.testing.assert_array_equal(from_trace(trace), [False, False, True, True, False])
    np.testing.assert_array_equal(from_trace(trace, 7), [False, False, True, True, False, False, False])
    np.testing.assert_array_equal(from_trace(trace, 3), [False, False, True])
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1 2\n")
    with pytest.raises(ValueError, match="only hold 0 and 1"):
        from_trace(bad)


def test_periodic():
    np.testing.assert_array_equal(periodic(8, 4, 2), [0, 0, 1, 1, 0, 0, 1, 1])


def test_parse_specs(tmp_path):
    rng = np.random.default_rng(5)
    spec = parse_loss_spec("bernoulli:0.05")
    assert (spec.kind, spec.params, spec.spec, spec.expected_rate) == ("bernoulli", (0.05,), "bernoulli:0.05", 0.05)
    np.testing.assert_array_equal(
        spec.mask(1000, np.random.default_rng(9)), bernoulli(1000, 0.05, np.random.default_rng(9))
    )
    spec = parse_loss_spec("gilbert:0.02,0.25")
    assert spec.kind == "gilbert" and spec.expected_rate == pytest.approx(0.02 / 0.27)
    assert parse_loss_spec("none").mask(5, rng).sum() == 0
    trace = tmp_path / "t.txt"
    trace.write_text("1 0")
    assert parse_loss_spec(f"trace:{trace}").mask(4, rng).tolist() == [True, False, True, False]
    assert parse_loss_spec("periodic:5,2").mask(5, rng).tolist() == [False, False, False, True, True]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("bernoulli", "expected bernoulli:P"),
        ("bernoulli:1.5", "probability"),
        ("bernoulli:abc", "must be numbers"),
        ("gilbert:0.1", "expected gilbert:P_ENTER,P_LEAVE"),
        ("gilbert:0.1,0", "P_LEAVE must be positive"),
        ("trace:/nonexistent/trace.txt", "does not exist"),
        ("poisson:3", "unknown kind"),
        ("periodic:4,5", "BURST"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_loss_spec(spec)
