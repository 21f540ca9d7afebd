"""The harness's look-ahead (``conceal_stream(..., lookahead_blocks=H)``, ``--lookahead-blocks``):
a concealer sees only blocks that arrived and were in the buffer, causal concealers play what
they played without it, and two-sided ones end exactly where the next block begins."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextblock.concealers import Lookahead, make_concealer
from nextblock.concealers.base import StreamingConcealer
from nextblock.evaluation.simulate import conceal_stream, lookahead_at

FPP = 64


class SpyConcealer(StreamingConcealer):
    """Records every look-ahead it is handed; two-sided so the harness offers it the future."""

    name = "spy"
    two_sided = True

    def reset(self) -> None:
        super().reset()
        self.seen: list[tuple[int, Lookahead | None]] = []

    def predict(self) -> np.ndarray:
        return np.zeros((2, self.frames_per_block), np.float32)

    def process(self, block, lookahead=None):
        self.seen.append((self.blocks_processed, lookahead))
        return super().process(block, lookahead)

    def fill_gap(self, future, gap_samples):
        return np.zeros(gap_samples, np.float32)


def harmonic(n_samples: int, rate_hz: int = 48000) -> np.ndarray:
    t = np.arange(n_samples) / rate_hz
    tone = sum(np.sin(2 * np.pi * f * t + k) / (k + 1) for k, f in enumerate((220.0, 330.0, 495.0, 742.5)))
    return (0.2 * tone).astype(np.float32)


@given(lost=st.lists(st.booleans(), min_size=2, max_size=60), depth=st.integers(0, 5))
@settings(max_examples=150, deadline=None)
def test_lookahead_shows_only_blocks_that_arrived_within_the_buffer(lost, depth):
    lost = np.array(lost, bool)
    audio = np.random.default_rng(0).standard_normal(lost.shape[0] * FPP).astype(np.float32)
    blocks = audio.reshape(-1, FPP)
    spy = SpyConcealer(FPP)
    conceal_stream(audio, spy, lost, lookahead_blocks=depth)
    for index, ahead in spy.seen:
        if ahead is None:
            # nothing offered: arrived block, no buffer, or nothing arrived within it
            assert not lost[index] or depth == 0 or not (~lost[index + 1 : index + depth + 1]).any()
            continue
        assert lost[index] and depth > 0
        first = index + ahead.gap_blocks
        assert lost[index:first].all() and not lost[first]  # the gap, then the first arrival
        shown = ahead.future.reshape(-1, FPP)
        end = first + shown.shape[0]
        assert end - 1 <= index + depth  # nothing past the buffer's window
        assert not lost[first:end].any()  # nothing lost
        np.testing.assert_array_equal(shown, blocks[first:end])  # the real blocks, unchanged
        assert end == index + depth + 1 or end == lost.shape[0] or lost[end]  # contiguous to the window's end


def test_lookahead_at_finds_the_first_arrival_and_stops_at_a_loss():
    lost = np.array([0, 1, 1, 0, 0, 1, 0], bool)
    assert lookahead_at(1, lost, 1) is None
    assert lookahead_at(1, lost, 2) == (3, 4)
    assert lookahead_at(1, lost, 3) == (3, 5)
    assert lookahead_at(5, lost, 4) == (6, 7)


@pytest.mark.parametrize("name", ["zeros", "repeat-xfade", "burg", "ar128"])
def test_causal_concealers_play_the_same_with_or_without_lookahead(name):
    audio = harmonic(48000)
    lost = np.random.default_rng(3).uniform(size=audio.shape[0] // FPP + 1) < 0.1
    lost = lost[: -(-audio.shape[0] // FPP)]
    without, _ = conceal_stream(audio, make_concealer(name, FPP), lost)
    with_ahead, _ = conceal_stream(audio, make_concealer(name, FPP), lost, lookahead_blocks=2)
    np.testing.assert_array_equal(without, with_ahead)


def test_two_sided_fill_is_followed_by_the_untouched_next_block_and_beats_extrapolation():
    audio = harmonic(96000) + (0.01 * np.random.default_rng(1).standard_normal(96000)).astype(np.float32)
    n_blocks = audio.shape[0] // FPP
    lost = np.zeros(n_blocks, bool)
    lost[40::37] = True
    lost[41::111] = True  # some bursts of two
    played, _ = conceal_stream(audio, make_concealer("lsar", FPP), lost, lookahead_blocks=1)
    causal, _ = conceal_stream(audio, make_concealer("ar128", FPP), lost, lookahead_blocks=1)
    blocks, out = audio.reshape(-1, FPP), played.reshape(-1, FPP)
    single = np.flatnonzero(lost[:-1] & ~lost[1:] & ~np.roll(lost, 1)[:-1])
    for k in single:  # a single loss: filled from both sides, the block after it played as it came
        np.testing.assert_array_equal(out[k + 1], blocks[k + 1])

    def lost_snr(x):
        mask = np.repeat(lost, FPP)
        return 10 * np.log10(np.sum(audio[mask] ** 2) / np.sum((audio[mask] - x[mask]) ** 2))

    assert lost_snr(played) > lost_snr(causal) + 3.0


def test_two_sided_share_counts_the_blocks_filled_from_both_sides():
    audio = harmonic(48000)
    n_blocks = audio.shape[0] // FPP
    lost = np.zeros(n_blocks, bool)
    lost[[10, 20, 21, 30, 31, 32, 33, 34, 35]] = True  # a single, a pair, and a burst of 6 (> 4: causal)
    concealer = make_concealer("lsar", FPP)
    conceal_stream(audio, concealer, lost, lookahead_blocks=8)
    # 10; 20 and 21; 30, 31 see a gap of 6 and 5 (> 4, causal), 32..35 see 4..1
    assert concealer.two_sided_blocks == 1 + 2 + 4
    conceal_stream(audio, concealer, lost, lookahead_blocks=0)
    assert concealer.two_sided_blocks == 0


def test_evaluate_cli_reports_lookahead_and_two_sided_share(tmp_path):
    import soundfile as sf

    from nextblock.commands.evaluate import main

    path = tmp_path / "tone.wav"
    sf.write(path, harmonic(48000 * 2), 48000)
    out = tmp_path / "r.json"
    assert (
        main(
            [
                str(path),
                "--no-visqol",
                "--quiet",
                "--lookahead-blocks",
                "1",
                "--loss",
                "bernoulli:0.1",
                "--concealer",
                "ar128",
                "--concealer",
                "lsar",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    rows = {row["concealer"]: row for row in json.loads(out.read_text())["results"]}
    assert rows["ar128"]["lookahead_blocks"] == 1 and rows["ar128"]["two_sided_share"] == 0.0
    assert rows["lsar"]["two_sided_share"] > 0.8
    assert rows["lsar"]["snr_db"] > rows["ar128"]["snr_db"]
    assert main([str(path), "--no-visqol", "--quiet", "--lookahead-blocks", "-1"]) == 2
