"""Training data: windows, splits by recording, the shard format, feature arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nextblock.features import FeatureConfig, SpectralCodec
from nextblock.model.audio_files import find_audio_files, split_of
from nextblock.model.data import read_manifest, windows_from_shards, windows_to_arrays
from nextblock.model.examples import random_windows


def test_random_windows_skip_silence_and_short_audio():
    rng = np.random.default_rng(0)
    audio = np.zeros(48000, np.float32)
    audio[24000:] = 0.1 * rng.standard_normal(24000)
    windows = random_windows(audio, 50, 1280, 1024, rng)
    assert windows.shape[1] == 1280 and 0 < windows.shape[0] <= 50
    assert np.all(np.sqrt(np.mean(windows[:, :1024] ** 2, axis=1)) > 1e-4)
    assert random_windows(np.ones(100, np.float32), 5, 1280, 1024, rng).shape == (0, 1280)


def test_split_is_deterministic_by_recording(tmp_path):
    import soundfile as sf

    for i in range(40):
        sf.write(str(tmp_path / f"take{i}.wav"), np.zeros(100, np.float32), 48000)
    files = find_audio_files([tmp_path])
    assert {f.split for f in files} == {"train", "validation", "test"}
    assert all(f.split == split_of(f"{tmp_path.name}/{f.path.name}") for f in files)
    with pytest.raises(FileNotFoundError):
        find_audio_files([tmp_path / "missing"])


def _write_shards(root, cfg, example_samples=4096):
    rng = np.random.default_rng(0)
    splits = {}
    for split, count in (("train", 6), ("validation", 2)):
        (root / split).mkdir(parents=True)
        audio = (0.1 * rng.standard_normal((count, example_samples))).astype(np.float32)
        np.savez(root / split / "shard-00000.npz", audio=audio, recording_id=np.arange(count, dtype=np.int32))
        splits[split] = [{"path": f"{split}/shard-00000.npz", "sha256": "", "examples": count}]
    manifest = {
        "format": "nextblock-shards/1",
        "sample_rate_hz": cfg.sample_rate_hz,
        "example_samples": example_samples,
        "splits": splits,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_shards_give_windows_per_split(tmp_path):
    cfg = FeatureConfig()
    _write_shards(tmp_path, cfg)
    windows = windows_from_shards(tmp_path, cfg, {"train": 30, "validation": 10}, show_progress=False)
    assert windows["train"].shape == (30, 1280) and windows["validation"].shape == (10, 1280)


def test_bad_manifests_are_refused_with_a_reason(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other/9", "splits": {}}))
    with pytest.raises(ValueError, match="nextblock-shards/1"):
        read_manifest(tmp_path)


def test_arrays_are_the_runtime_features_and_rms_normalised_targets():
    cfg = FeatureConfig()
    rng = np.random.default_rng(3)
    windows = (0.3 * rng.standard_normal((5, 1280))).astype(np.float32)
    features, targets = windows_to_arrays(windows, cfg, chunk=2)
    expected, scale = SpectralCodec(cfg).encode(windows[:, :1024])
    np.testing.assert_array_equal(features, expected)
    np.testing.assert_allclose(targets, windows[:, 1024:] / scale[:, None], rtol=1e-6)


def _tone_file(path, hz, rate=48000, seconds=3.0):
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), rate)


def _dominant_bin(windows):
    return np.argmax(np.abs(np.fft.rfft(windows[:, :1024] * np.hanning(1024), axis=1)), axis=1)


def test_windows_at_random_rates_and_weighted_groups(tmp_path):
    """With sample_rates_hz each file is resampled to one of the rates (a 1500 Hz tone lands on
    bin 32 of a 1024-point FFT at 48 kHz, bin 16 at 96 kHz; 2250 Hz on 48 / 24); group_weights
    sets each folder's share."""
    from nextblock.model.data import windows_from_audio

    for i in range(30):  # enough files that every split has some
        _tone_file(tmp_path / "choir" / f"c{i}.wav", 1500.0)
        _tone_file(tmp_path / "drums" / f"d{i}.wav", 2250.0)
    cfg = FeatureConfig()
    roots = [str(tmp_path / "choir"), str(tmp_path / "drums")]
    windows = windows_from_audio(
        roots,
        cfg,
        {"train": 400},
        seed=1,
        excerpt_seconds=1.0,
        show_progress=False,
        sample_rates_hz=(48000, 96000),
        group_weights={"choir": 3.0},
    )["train"]
    bins = _dominant_bin(windows)
    assert set(np.unique(bins)) <= {16, 32, 24, 48}
    assert np.any(bins == 16) and np.any(bins == 32) and np.any(bins == 24) and np.any(bins == 48)  # both rates
    choir_share = np.isin(bins, (16, 32)).mean()
    assert 0.65 < choir_share < 0.85, choir_share  # 3 : 1
    plain = windows_from_audio(roots, cfg, {"train": 200}, seed=1, excerpt_seconds=1.0, show_progress=False)["train"]
    plain_bins = _dominant_bin(plain)
    assert set(np.unique(plain_bins)) == {32, 48} and 0.4 < np.mean(plain_bins == 32) < 0.6


def test_heldout_skips_broken_recordings(tmp_path):
    """A recording that decodes far above full scale is broken, not loud: it never enters the
    held-out set (one such file once held 83 % of a category's signal energy)."""
    import json as _json

    import soundfile as sf

    from nextblock.model.audio_files import split_of
    from nextblock.model.heldout import write_heldout

    root = tmp_path / "speech"
    root.mkdir()
    t = np.arange(48000) / 48000
    made = {"broken": 0, "fine": 0}
    for i in range(60):
        kind = "broken" if i % 2 else "fine"
        name = f"{kind}{i}.wav"
        if split_of(f"speech/{name}") != "test":
            continue
        level = 30.0 if kind == "broken" else 0.3
        sf.write(str(root / name), (level * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000, subtype="FLOAT")
        made[kind] += 1
    assert made["broken"] and made["fine"]
    records = write_heldout([str(root)], tmp_path / "out", per_group=1, seconds=0.5, show_progress=False)
    sources = [s for r in records for s in r["sources"]]
    assert sources and all("fine" in s for s in sources)
    assert _json.loads((tmp_path / "out" / "heldout.json").read_text()) == records


def test_window_cache_is_not_served_when_the_audio_under_a_root_changed(tmp_path):
    import soundfile as sf

    from nextblock.model.data import windows_from_audio

    root, cache = tmp_path / "pkg", tmp_path / "cache"
    root.mkdir()
    rng = np.random.default_rng(0)
    names = [f"take{i}.wav" for i in range(30)]
    for name in names[:20]:
        sf.write(str(root / name), (0.1 * rng.standard_normal(8000)).astype(np.float32), 48000)
    cfg = FeatureConfig()

    def windows():
        return windows_from_audio([str(root)], cfg, {"train": 40}, cache_dir=cache, show_progress=False)["train"]

    first = windows()
    np.testing.assert_array_equal(windows(), first)  # served from the cache
    assert len(list(cache.glob("windows-*.npz"))) == 1
    for name in names[20:]:  # e.g. an archive unpacked under the package later
        sf.write(str(root / name), (0.1 * rng.standard_normal(8000)).astype(np.float32), 48000)
    assert any(f.split == "train" and f.path.name in names[20:] for f in find_audio_files([root]))
    changed = windows()
    assert len(list(cache.glob("windows-*.npz"))) == 2  # a new key: the files changed
    assert not np.array_equal(changed, first)
