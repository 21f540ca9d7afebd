"""Choosing ``guess_weight`` with the harness on a validation set (nextblock.model.guess_blend)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from nextblock.model import default_model_path
from nextblock.model.guess_blend import best_weight, main, with_guess_weight
from nextblock.model.metadata import read_metadata


@pytest.fixture(scope="module")
def shipped():
    try:
        return str(default_model_path())
    except FileNotFoundError as error:
        pytest.skip(f"SKIPPED LOUDLY: no shipped model ({error})")


def test_a_copy_differs_from_the_model_only_in_its_guess_weight(shipped, tmp_path):
    copy = with_guess_weight(shipped, 0.6, tmp_path / "copy.tflite")
    original, changed = read_metadata(shipped), read_metadata(copy)
    assert changed["guess_weight"] == 0.6
    assert {k: v for k, v in changed.items() if k != "guess_weight"} == {
        k: v for k, v in original.items() if k != "guess_weight"
    }


def test_best_weight_is_the_best_mean_snr():
    rows = [
        {"guess_weight": 0.0, "mean_snr_db": 4.0},
        {"guess_weight": 0.5, "mean_snr_db": 4.2},
        {"guess_weight": 1.0, "mean_snr_db": 3.9},
    ]
    assert best_weight(rows) == 0.5


def test_the_harness_scores_every_weight_and_names_one(shipped, tmp_path, capsys):
    rng = np.random.default_rng(0)
    t = np.arange(3 * 48000) / 48000
    audio = 0.3 * np.sin(2 * np.pi * 330 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(
        t.size
    )
    sf.write(str(tmp_path / "validation.wav"), audio.astype(np.float32), 48000)
    out = tmp_path / "scores.json"
    assert (
        main(
            [
                shipped,
                "--validation",
                str(tmp_path / "validation.wav"),
                "--weights",
                "0,1",
                "--loss",
                "bernoulli:0.1",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    snrs = [r["snr_db"]["bernoulli:0.1"] for r in report["rows"]]
    assert [r["guess_weight"] for r in report["rows"]] == [0.0, 1.0]
    assert all(np.isfinite(snrs)) and snrs[0] != snrs[1]  # the weight reached the runtime
    assert report["best_guess_weight"] == [0.0, 1.0][int(np.argmax(snrs))]
    assert f"best guess_weight: {report['best_guess_weight']:g}" in capsys.readouterr().out


def test_a_missing_validation_set_is_a_clear_error(shipped, tmp_path, capsys):
    assert main([shipped, "--validation", str(tmp_path / "nowhere")]) == 2
    assert "not found" in capsys.readouterr().err
