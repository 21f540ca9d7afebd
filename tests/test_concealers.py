"""The streaming concealer interface and the baselines: causality, cross-fade continuity, registry."""

from __future__ import annotations

import numpy as np
import pytest

from nextblock.concealers import ConcealerUnavailable, available_concealers, concealer_class, make_concealer
from nextblock.concealers.base import StreamingConcealer
from nextblock.evaluation.simulate import conceal_stream
from nextblock.splice import fade_windows

FPP = 64
RATE_HZ = 48000
BASELINES = ["zeros", "repeat", "repeat-xfade", "burg"]


def _test_signal(n_blocks: int, seed: int = 0, fpp: int = FPP) -> np.ndarray:
    """Two sines and a little noise, shape (n_blocks * fpp,)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_blocks * fpp) / RATE_HZ
    return (
        0.5 * np.sin(2 * np.pi * 330 * t)
        + 0.2 * np.sin(2 * np.pi * 1250 * t + 1.0)
        + 0.01 * rng.standard_normal(t.shape)
    ).astype(np.float32)


#: the shipped NextBlock model predicts 128-frame blocks (its metadata); the baselines run at any size
NATIVE_FPP = {"nextblock": 128}


def _available(name: str, fpp: int = FPP) -> StreamingConcealer:
    try:
        return make_concealer(name, fpp, RATE_HZ)
    except ConcealerUnavailable as error:
        pytest.skip(f"concealer {name!r} not available here: {error}")


@pytest.mark.parametrize("name", BASELINES + ["nextblock"])
@pytest.mark.parametrize("burst_blocks", [1, 3])
def test_output_for_a_lost_block_never_depends_on_that_block_or_later(name, burst_blocks):
    """Causality: change the audio from the lost block on; what was played up to and through
    the lost run must not change."""
    fpp = NATIVE_FPP.get(name, FPP)
    concealer = _available(name, fpp)
    n_blocks, lost_at = 40, 25
    audio = _test_signal(n_blocks, fpp=fpp)
    lost = np.zeros(n_blocks, dtype=bool)
    lost[[5, 12]] = True  # earlier losses, so the concealer has state
    lost[lost_at : lost_at + burst_blocks] = True
    other = audio.copy()
    other[lost_at * fpp :] = np.random.default_rng(7).standard_normal(other.shape[0] - lost_at * fpp).astype(np.float32)

    played_a, _ = conceal_stream(audio, concealer, lost)
    played_b, _ = conceal_stream(other, concealer, lost)

    end = (lost_at + burst_blocks) * fpp
    np.testing.assert_array_equal(played_a[:end], played_b[:end])
    # ... while the block after the run does depend on the (changed) real audio that arrived
    assert not np.array_equal(played_a[end : end + fpp], played_b[end : end + fpp])


@pytest.mark.parametrize("name", BASELINES)
def test_received_blocks_are_played_untouched_away_from_losses(name):
    concealer = _available(name)
    audio = _test_signal(30)
    lost = np.zeros(30, dtype=bool)
    lost[10] = True
    played, us = conceal_stream(audio, concealer, lost)
    keep = np.ones(30, dtype=bool)
    keep[[10, 11]] = False  # the lost block and the cross-fade block
    np.testing.assert_array_equal(played.reshape(30, FPP)[keep], audio.reshape(30, FPP)[keep])
    assert us.shape == (30,) and np.all(us > 0)


@pytest.mark.parametrize("name", ["repeat-xfade", "burg"])
@pytest.mark.parametrize("burst_blocks", [1, 2, 5])
def test_cross_fade_back_into_real_audio_has_no_step(name, burst_blocks):
    """The block after a loss fades linearly from the concealer's guess into the real block, so
    no sample step at the splice is larger than the steps of the two signals plus the gap
    between them spread over the block."""
    concealer = _available(name)
    n_blocks, lost_at = 30, 15
    audio = _test_signal(n_blocks, seed=3)
    lost = np.zeros(n_blocks, dtype=bool)
    lost[lost_at : lost_at + burst_blocks] = True
    concealer.reset()
    blocks = audio.reshape(n_blocks, FPP)
    played = []
    for index in range(n_blocks):
        played.append(concealer.process(None if lost[index] else blocks[index]))
        if index == lost_at + burst_blocks - 1:
            guess_next = concealer.pending_guess.copy()  # the guess the cross-fade starts from
    played = np.concatenate(played)
    recovery = lost_at + burst_blocks
    start, stop = recovery * FPP, (recovery + 1) * FPP
    real = audio[start:stop]
    fade_out, fade_in = fade_windows(FPP)
    np.testing.assert_allclose(played[start:stop], fade_out * guess_next + fade_in * real, rtol=1e-6, atol=1e-7)
    assert played[start] == pytest.approx(guess_next[0], abs=1e-7)  # starts on the guess
    segment = played[start - 1 : stop + 1]  # includes the step into the next real block
    guess_ext = np.concatenate([[played[start - 1]], guess_next, [guess_next[-1]]])
    real_ext = audio[start - 1 : stop + 1]
    bound = (
        max(np.abs(np.diff(guess_ext)).max(), np.abs(np.diff(real_ext)).max()) + np.abs(guess_next - real).max() / FPP
    )
    assert np.abs(np.diff(segment[1:])).max() <= bound + 1e-6
    # the last sample before the next real block is within one fade step of the real signal
    assert abs(played[stop - 1] - real[-1]) <= np.abs(guess_next[-1] - real[-1]) / FPP + 1e-6


@pytest.mark.parametrize("name", ["zeros", "repeat"])
def test_jacktrip_zeros_and_wavetable_modes_do_not_cross_fade(name):
    concealer = _available(name)
    audio = _test_signal(20)
    lost = np.zeros(20, dtype=bool)
    lost[8:10] = True
    played, _ = conceal_stream(audio, concealer, lost)
    np.testing.assert_array_equal(played[10 * FPP : 11 * FPP], audio[10 * FPP : 11 * FPP])


def test_zeros_plays_silence_and_repeat_loops_the_last_received_block():
    audio = _test_signal(20)
    lost = np.zeros(20, dtype=bool)
    lost[8:11] = True
    zeros, _ = conceal_stream(audio, make_concealer("zeros", FPP), lost)
    repeat, _ = conceal_stream(audio, make_concealer("repeat", FPP), lost)
    assert not zeros[8 * FPP : 11 * FPP].any()
    last_received = audio[7 * FPP : 8 * FPP]
    for block in range(8, 11):
        np.testing.assert_array_equal(repeat[block * FPP : (block + 1) * FPP], last_received)


def test_repeat_xfade_fades_the_repeated_block_into_the_real_one():
    audio = _test_signal(20)
    lost = np.zeros(20, dtype=bool)
    lost[8] = True
    played, _ = conceal_stream(audio, make_concealer("repeat-xfade", FPP), lost)
    fade_out, fade_in = fade_windows(FPP)
    expected = fade_out * audio[7 * FPP : 8 * FPP] + fade_in * audio[9 * FPP : 10 * FPP]
    np.testing.assert_allclose(played[9 * FPP : 10 * FPP], expected, rtol=1e-6)


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("fpp", [32, 100, 128, 256, 512])
def test_any_block_size(name, fpp):
    concealer = make_concealer(name, fpp, RATE_HZ)
    audio = np.sin(np.arange(12 * fpp + 17) * 0.05).astype(np.float32)  # last block partial
    lost = np.zeros(13, dtype=bool)
    lost[[4, 9, 10]] = True
    played, us = conceal_stream(audio, concealer, lost)
    assert played.shape == audio.shape and played.dtype == np.float32 and us.shape == (13,)
    assert np.all(np.isfinite(played))


def test_process_rejects_wrong_block_shapes():
    concealer = make_concealer("repeat", FPP)
    with pytest.raises(ValueError, match="expected"):
        concealer.process(np.zeros(FPP + 1, dtype=np.float32))
    with pytest.raises(ValueError, match="frames_per_block"):
        make_concealer("zeros", 0)


def test_reset_forgets_history():
    concealer = make_concealer("repeat", FPP)
    concealer.process(np.ones(FPP, dtype=np.float32))
    concealer.reset()
    assert not concealer.process(None).any()
    assert concealer.blocks_processed == 1 and concealer.blocks_since_arrival == 1


def test_registry_names_and_clear_errors():
    assert available_concealers()[:4] == BASELINES
    for name in BASELINES:
        assert issubclass(concealer_class(name), StreamingConcealer)
        assert concealer_class(name).name == name
    with pytest.raises(ConcealerUnavailable, match="unknown concealer 'nope'"):
        make_concealer("nope", FPP)
    with pytest.raises(ConcealerUnavailable, match="does not exist"):
        make_concealer("nextblock", FPP, model_path="/nonexistent/model.tflite")


@pytest.mark.parametrize("name", BASELINES)
def test_a_reset_concealer_replays_a_stream_identically(name):
    """The harness reuses one instance per concealer: reset() must forget everything."""
    concealer = make_concealer(name, FPP, RATE_HZ)
    audio = _test_signal(30, seed=5)
    lost = np.zeros(30, dtype=bool)
    lost[[3, 10, 11, 29]] = True
    first, _ = conceal_stream(audio, concealer, lost)
    conceal_stream(_test_signal(30, seed=6), concealer, ~lost)  # something else in between
    second, _ = conceal_stream(audio, concealer, lost)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize(
    ("rate_hz", "frames", "fade_samples"),
    [(48000, 128, 32), (44100, 128, 29), (96000, 256, 64), (48000, 16, 16), (32000, 1024, 21)],
)
def test_the_recovery_fade_is_a_short_raised_cosine_in_proportion_to_the_rate(rate_hz, frames, fade_samples):
    """The splice after a NextBlock replacement (shm_layout.hpp, as the patched JackTrip plays
    it): the real block's weight rises as a raised cosine over 32 samples at 48 kHz (at most the
    block), then the block is real."""
    from nextblock import _core

    assert _core.recovery_fade_samples(rate_hz, frames) == fade_samples
    fade_out, fade_in = fade_windows(frames, "recovery", rate_hz)
    centres = (np.arange(fade_samples) + 0.5) / fade_samples
    np.testing.assert_allclose(fade_in[:fade_samples], 0.5 - 0.5 * np.cos(np.pi * centres), atol=1e-6)
    assert np.all(fade_in[fade_samples:] == 1.0) and np.all(np.diff(fade_in) >= 0.0)
    np.testing.assert_allclose(fade_out + fade_in, 1.0)
    with pytest.raises(ValueError, match="frames_per_block must be positive"):
        _core.recovery_fade_in(0, rate_hz)


@pytest.mark.parametrize("name", ["ar128", "nextblock"])
def test_nextblock_and_the_ar_baseline_splice_back_as_the_patched_jacktrip_does(name):
    """After a concealed run the real block fades in from the guess over the recovery fade only;
    JackTrip's Burg keeps its own linear fade over the whole block."""
    fpp = NATIVE_FPP.get(name, FPP)
    concealer = _available(name, fpp)
    assert concealer.crossfade_kind == "recovery" and make_concealer("burg", fpp, RATE_HZ).crossfade_kind == "linear"
    n_blocks, lost_at = 60, 40
    audio = _test_signal(n_blocks, seed=5, fpp=fpp)
    blocks = audio.reshape(n_blocks, fpp)
    concealer.reset()
    for index in range(lost_at + 2):
        played = concealer.process(None if index in (lost_at, lost_at + 1) else blocks[index])
        if index == lost_at + 1:
            guess_next = concealer.pending_guess.copy()
    played = concealer.process(blocks[lost_at + 2])
    fade_out, fade_in = fade_windows(fpp, "recovery", RATE_HZ)
    np.testing.assert_allclose(played, fade_out * guess_next + fade_in * blocks[lost_at + 2], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(played[32:], blocks[lost_at + 2][32:])  # real after 32 samples
    assert abs(played[0] - guess_next[0]) < 0.01  # and it starts on the guess
