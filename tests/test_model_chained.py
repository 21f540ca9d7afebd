"""Chained (burst) training contexts: nextblock.model.chained and `nextblock.train --chained-share`."""

from __future__ import annotations

import numpy as np
import pytest

from nextblock.features import FeatureConfig
from nextblock.model.chained import chain_windows, first_block, make_chain_predictor

CFG = FeatureConfig()  # context 1024, horizon 256
HISTORY = 768


def _windows(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, HISTORY + CFG.context_samples + CFG.output_samples)).astype(np.float32)


def _hold(contexts):
    """A predictor that holds the context's last sample for the whole horizon."""
    return np.repeat(contexts[:, -1:], CFG.output_samples, axis=1)


def test_chains_replace_the_context_end_block_by_block_and_keep_the_true_target():
    windows = _windows()
    out, depth = chain_windows(
        windows, CFG, _hold, 0.5, np.random.default_rng(1), block_sizes=(64, 128, 256), max_chain_samples=HISTORY
    )
    ctx = CFG.context_samples
    assert out.shape == (windows.shape[0], ctx + CFG.output_samples)
    np.testing.assert_array_equal(out[:, ctx:], windows[:, HISTORY + ctx :])  # targets: the truth
    plain = depth == 0
    np.testing.assert_array_equal(out[plain], windows[plain, HISTORY:])  # untouched windows
    assert 0.4 < np.mean(~plain) < 0.6
    assert np.all(depth <= HISTORY) and np.all([d % 64 == 0 for d in depth])
    assert len(set(depth[~plain].tolist())) > 3  # several lengths and block sizes
    for row in np.flatnonzero(~plain):
        d = depth[row]
        true = windows[row, HISTORY : HISTORY + ctx]
        np.testing.assert_array_equal(out[row, : ctx - d], true[: ctx - d])  # the context before the burst
        # each lost block was predicted from the context *with the earlier predictions*: holding
        # the last true sample before the burst carries it through every block of the chain
        np.testing.assert_array_equal(out[row, ctx - d : ctx], np.full(d, true[ctx - d - 1], np.float32))


def test_chain_lengths_follow_bursts_and_respect_the_limit():
    out, depth = chain_windows(
        _windows(2000, 2), CFG, _hold, 1.0, np.random.default_rng(3), block_sizes=(128,), max_chain_samples=384
    )
    blocks = depth // 128
    assert set(np.unique(blocks)) == {1, 2, 3}
    # geometric (a burst goes on with probability 0.75), longer ones capped at 3 blocks
    np.testing.assert_allclose([np.mean(blocks == k) for k in (1, 2, 3)], [0.25, 0.1875, 0.5625], atol=0.04)
    none, zero = chain_windows(_windows(50), CFG, _hold, 0.0, np.random.default_rng(0))
    assert not zero.any() and none.shape[1] == CFG.context_samples + CFG.output_samples


def test_a_sound_starting_during_the_burst_after_silence_keeps_its_true_context():
    """Predictions from silence stay silent; the target would weigh millions of usual windows."""
    windows = _windows(20)
    onset = HISTORY + CFG.context_samples - 200  # the sound starts 200 samples before the context ends
    windows[:, :onset] *= 1e-6
    out, depth = chain_windows(windows, CFG, _hold, 1.0, np.random.default_rng(0), block_sizes=(256,))
    assert not depth.any()
    np.testing.assert_array_equal(out, windows[:, HISTORY:])
    ok, depth = chain_windows(_windows(20), CFG, _hold, 1.0, np.random.default_rng(0), block_sizes=(256,))
    assert np.mean(depth > 0) > 0.7  # noise held at one sample's value: mostly loud enough


def test_too_short_windows_are_refused():
    with pytest.raises(ValueError, match="shorter"):
        chain_windows(np.zeros((4, 1000), np.float32), CFG, _hold, 0.5, np.random.default_rng(0))


def test_the_burg_guess_chains_a_steady_tone_and_blocks_past_half_the_horizon_end_on_the_guess():
    cfg = FeatureConfig(lpc_order=32, lpc_burg_samples=768)
    t = np.arange(HISTORY + cfg.context_samples + cfg.output_samples)
    rng = np.random.default_rng(4)
    windows = np.stack([0.3 * np.sin(2 * np.pi * f * t / 48000) for f in rng.uniform(200, 2000, 32)]).astype(np.float32)
    guess = make_chain_predictor("guess", cfg)
    out, depth = chain_windows(
        windows, cfg, guess, 1.0, np.random.default_rng(5), block_sizes=(128, 256), max_chain_samples=HISTORY
    )
    assert np.all(depth > 0)
    err = out[:, : cfg.context_samples] - windows[:, HISTORY : HISTORY + cfg.context_samples]
    assert np.sqrt(np.mean(np.square(err))) < 0.03  # a steady tone (amplitude 0.3) is continued closely
    block = first_block(guess, windows[:, : cfg.context_samples], 256, cfg)  # the guess past the horizon
    np.testing.assert_allclose(block, guess(windows[:, : cfg.context_samples]), atol=1e-5)


def test_guess_needs_a_burg_model():
    with pytest.raises(ValueError, match="Burg"):
        make_chain_predictor("guess", FeatureConfig(lpc_order=32))


def test_windows_from_audio_reads_the_extra_history(tmp_path):
    import soundfile as sf

    from nextblock.model.data import windows_from_audio

    (tmp_path / "tones").mkdir()
    t = np.arange(48000) / 48000
    for i in range(20):
        sf.write(str(tmp_path / "tones" / f"t{i}.wav"), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000)
    got = windows_from_audio(
        [str(tmp_path / "tones")],
        CFG,
        {"train": 40},
        seed=0,
        excerpt_seconds=1.0,
        show_progress=False,
        history_samples=HISTORY,
    )["train"]
    assert got.shape[1] == HISTORY + CFG.context_samples + CFG.output_samples and got.shape[0] > 0


def test_train_with_chained_share_from_initial_weights(tmp_path):
    pytest.importorskip("tensorflow", reason="TensorFlow (training extra) is not installed")
    import soundfile as sf

    from nextblock.commands import train

    audio_dir = tmp_path / "audio" / "tones"
    audio_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 48000
    for i in range(30):
        tone = sum(rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) for _ in range(3))
        sf.write(
            str(audio_dir / f"take{i:02d}.wav"), (tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32), 48000
        )
    tiny = [
        "--audio",
        str(audio_dir),
        "--context-samples",
        "512",
        "--window-fall-samples",
        "64",
        "--width",
        "8",
        "--blocks",
        "1",
        "--train-examples",
        "256",
        "--validation-examples",
        "64",
        "--batch-size",
        "64",
        "--quiet",
        "--threads",
        "1",
        "--lpc-order",
        "16",
        "--lpc-burg-samples",
        "256",
        "--epochs",
        "1",
    ]
    mp = pytest.MonkeyPatch()
    mp.setenv("NEXTBLOCK_CACHE", str(tmp_path / "cache"))
    try:
        assert train.main([*tiny, "--run-dir", str(tmp_path / "a")]) == 0
        assert (
            train.main(
                [
                    *tiny,
                    "--run-dir",
                    str(tmp_path / "b"),
                    "--chained-share",
                    "0.5",
                    "--chained-max-samples",
                    "256",
                    "--chained-block-sizes",
                    "64,128",
                    "--init-weights",
                    str(tmp_path / "a" / "best.weights.h5"),
                ]
            )
            == 0
        )
    finally:
        mp.undo()
    assert (tmp_path / "b" / "best.weights.h5").is_file()
