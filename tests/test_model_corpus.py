"""The packed training corpus (nextblock.model.corpus) and the onset filter every training window passes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nextblock.features import FeatureConfig
from nextblock.model.corpus import corpus_windows, pack_corpus, read_corpus
from nextblock.model.examples import MAX_TARGET_GAIN, predictable


def test_predictable_drops_onsets_after_silence_and_ignores_history():
    rng = np.random.default_rng(0)
    windows = (0.1 * rng.standard_normal((4, 256 + 1024 + 256))).astype(np.float32)
    windows[1, 256:1280] *= 1e-3  # quiet context, loud continuation: an onset
    windows[2, :256] *= 1e3  # a loud history before an ordinary context: kept
    windows[3, 256:1280] = 0.0  # silent context
    keep = predictable(windows, 1024, 256)
    assert keep.tolist() == [True, False, True, False]
    gain = np.sqrt(np.mean(windows[1, -256:] ** 2) / np.mean(windows[1, 256:1280] ** 2))
    assert gain > MAX_TARGET_GAIN


def _folders(root):
    import soundfile as sf

    rng = np.random.default_rng(1)
    roots = []
    for group, seconds in (("music", 2.0), ("speech", 1.0), ("choir", 1.5)):
        folder = root / group
        folder.mkdir()
        for i in range(12):
            t = np.arange(int(seconds * 44100)) / 44100
            tone = 0.3 * np.sin(2 * np.pi * (220 + 20 * i) * t) + 0.01 * rng.standard_normal(t.shape[0])
            tone[: t.shape[0] // 2] *= 1e-3  # quiet, then loud: some windows end in an onset
            sf.write(str(folder / f"{group}{i}.wav"), tone.astype(np.float32), 44100)
        roots.append(str(folder))
    return roots


def test_pack_then_cut_windows(tmp_path):
    roots = _folders(tmp_path)
    out = tmp_path / "corpus"
    manifest = pack_corpus(
        roots,
        out,
        {"train": 12.0, "validation": 3.0},
        (32000, 48000),
        {"choir": 2.0},
        excerpt_seconds=0.5,
        show_progress=False,
    )
    assert manifest == read_corpus(out)
    excerpts = manifest["excerpts"]
    assert {e["split"] for e in excerpts} <= {"train", "validation"} and {e["rate_hz"] for e in excerpts} <= {
        32000,
        48000,
    }
    for e in excerpts:
        assert (out / e["path"]).is_file() and e["seconds"] <= 0.5 + 1e-3
    train = [e for e in excerpts if e["split"] == "train"]
    # choir weighs 2 of 4: about half the training seconds (whole excerpts, rounded up per group)
    choir = sum(e["seconds"] for e in train if e["group"] == "choir") / sum(e["seconds"] for e in train)
    assert 0.4 <= choir <= 0.6
    cfg = FeatureConfig()
    windows = corpus_windows(out, "train", 200, cfg, history_samples=256, seed=3)
    assert 150 <= windows.shape[0] <= 200 and windows.shape[1] == 256 + 1024 + 256 and windows.dtype == np.float32
    assert predictable(windows, 1024, 256).all()
    quiet = np.sqrt(np.mean(windows[:, 256:1280] ** 2, axis=1)) < 0.01
    assert quiet.any()  # the quiet halves are there, only not right before an onset
    again = corpus_windows(out, "train", 200, cfg, history_samples=256, seed=3)
    np.testing.assert_array_equal(windows, again)
    with pytest.raises(FileExistsError):
        pack_corpus(roots, out, {"train": 1.0}, (48000,), show_progress=False)


def test_bad_corpus_folders_are_refused_with_a_reason(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus.json"):
        read_corpus(tmp_path)
    (tmp_path / "corpus.json").write_text(json.dumps({"format": "nextblock-shards/1"}))
    with pytest.raises(ValueError, match="nextblock-corpus/1"):
        read_corpus(tmp_path)
