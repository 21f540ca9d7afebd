"""Scores by category in one harness run (--by-folder) and the model card's target tables."""

from __future__ import annotations

import json

import numpy as np
import soundfile

from nextblock.evaluation.harness import EvaluationConfig, evaluate
from nextblock.evaluation.tables import load_rows, score_tables, target_rows, targets_table


def _write(path, seconds: float, kind: str, rate: int = 48000):
    rng = np.random.default_rng(len(kind))
    t = np.arange(int(seconds * rate)) / rate
    if kind == "tone":
        audio = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.1 * np.sin(2 * np.pi * 990 * t)
    else:
        audio = 0.1 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio.astype(np.float32), rate)


def test_by_folder_scores_every_folder_and_all_files_with_the_same_masks(tmp_path):
    _write(tmp_path / "singing" / "a.wav", 2.0, "tone")
    _write(tmp_path / "singing" / "b.wav", 1.0, "tone")
    _write(tmp_path / "noise" / "c.wav", 2.0, "noise")
    config = EvaluationConfig(concealers=["zeros", "ar128"], losses=["bernoulli:0.1"], visqol=False, by_folder=True)
    rows = evaluate([str(tmp_path)], config, progress=False).rows
    cells = {(r["group"], r["concealer"]): r for r in rows}
    assert set(cells) == {(g, c) for g in ("all", "singing", "noise") for c in ("zeros", "ar128")}
    for name in ("zeros", "ar128"):
        assert (
            cells[("all", name)]["lost_blocks"]
            == cells[("singing", name)]["lost_blocks"] + cells[("noise", name)]["lost_blocks"]
        )
        assert cells[("singing", name)]["files"] == 2 and cells[("all", name)]["files"] == 3
    # a steady tone is predictable, white noise is not: the AR model shows it, silence does not
    assert cells[("singing", "ar128")]["snr_db"] > cells[("singing", "zeros")]["snr_db"] + 10
    assert cells[("noise", "ar128")]["snr_db"] < 3
    plain = evaluate(
        [str(tmp_path)], EvaluationConfig(concealers=["ar128"], losses=["bernoulli:0.1"], visqol=False), progress=False
    ).rows
    assert [r["group"] for r in plain] == ["all"] and plain[0]["snr_db"] == cells[("all", "ar128")]["snr_db"]


def _row(concealer, group, snr, lsd, visqol=None, loss="bernoulli:0.05"):
    return {
        "concealer": concealer,
        "group": group,
        "loss": loss,
        "fpp": 128,
        "sample_rate": 48000,
        "snr_db": snr,
        "lsd_db": lsd,
        "visqol": visqol,
    }


def test_targets_compare_with_the_best_classical_concealer_and_burg(tmp_path):
    classical = [
        _row("zeros", "speech", 2.0, 9.0),
        _row("burg", "speech", 3.0, 4.0, 4.5),
        _row("ar128", "speech", 5.0, 3.9, 4.6),
        _row("burg", "singing", 4.0, 3.0, 4.5),
        _row("ar128", "singing", 3.5, 3.2),
    ]
    model = [_row("nextblock", "speech", 7.5, 3.6, 4.55), _row("nextblock", "singing", 5.0, 2.9, 4.4)]
    (tmp_path / "c.json").write_text(json.dumps({"results": classical}))
    (tmp_path / "m.json").write_text(json.dumps({"results": model}))
    rows, checked = load_rows([str(tmp_path / "c.json"), f"nextblock 3={tmp_path / 'm.json'}"])
    assert checked == "nextblock 3"
    targets = {t["group"]: t for t in target_rows(rows, checked)}
    speech, singing = targets["speech"], targets["singing"]
    assert speech["best_classical"] == "ar128" and abs(speech["snr_margin_db"] - 2.5) < 1e-9 and speech["snr_met"]
    assert abs(speech["lsd_margin_db"] + 0.4) < 1e-9 and speech["lsd_met"] and speech["visqol_met"]
    assert (
        singing["best_classical"] == "burg"
        and not singing["snr_met"]
        and not singing["lsd_met"]
        and not singing["visqol_met"]
    )
    table = targets_table(rows, checked)
    assert "3 of 6 checks met." in table
    assert "| speech | nextblock 3 | 7.50 | 3.60 | 4.550 |" in score_tables(rows)
