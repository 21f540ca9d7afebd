"""The evaluation harness and ``python -m nextblock.evaluate`` on a short real clip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from nextblock.commands import evaluate as cli
from nextblock.concealers import make_concealer
from nextblock.evaluation import perceptual
from nextblock.evaluation.clips import SPEECH_CLIP, ClipUnavailable, debian_clip
from nextblock.evaluation.harness import EvaluationConfig, evaluate
from nextblock.evaluation.simulate import conceal_stream, n_blocks_for

REQUIRED_FIELDS = {
    "concealer",
    "loss",
    "fpp",
    "sample_rate",
    "files",
    "lost_blocks",
    "snr_db",
    "lsd_db",
    "visqol",
    "plcmos",
    "thd_n_db",
    "us_per_block_median",
    "us_per_block_p99",
}


@pytest.fixture(scope="module")
def speech_clip():
    try:
        return str(debian_clip(*SPEECH_CLIP))
    except ClipUnavailable as error:
        pytest.skip(f"no real speech clip (klettres-data from Debian): {error}")


@pytest.fixture(scope="module")
def cli_run(speech_clip, tmp_path_factory):
    """One full CLI run on the real clip plus a bad file, shared by the tests below."""
    out = tmp_path_factory.mktemp("evaluate")
    bad = out / "not_audio.wav"
    bad.write_text("this is not audio")
    argv = [
        speech_clip,
        str(bad),
        "--sample-rate",
        "48000",
        "--fpp",
        "128",
        "--loss",
        "bernoulli:0.1",
        "--loss",
        "gilbert:0.05,0.5",
        "--seed",
        "1",
        "--concealer",
        "zeros",
        "--concealer",
        "repeat",
        "--concealer",
        "repeat-xfade",
        "--concealer",
        "burg",
        "--speech",
        "--sine",
        "--sine-seconds",
        "1",
        "--json",
        str(out / "results.json"),
        "--report",
        str(out / "report.md"),
        "--plots",
        str(out / "plots"),
        "--quiet",
    ]
    status = cli.main(argv)
    return status, out


def test_cli_writes_one_row_per_concealer_and_loss(cli_run, capsys):
    status, out = cli_run
    assert status == 0
    document = json.loads((out / "results.json").read_text())
    rows = document["results"]
    assert [(r["concealer"], r["loss"]) for r in rows] == [
        (c, loss) for c in ["zeros", "repeat", "repeat-xfade", "burg"] for loss in ["bernoulli:0.1", "gilbert:0.05,0.5"]
    ]
    for row in rows:
        assert REQUIRED_FIELDS <= row.keys()
        assert row["files"] == 1 and row["fpp"] == 128 and row["sample_rate"] == 48000
        assert row["lost_blocks"] > 0 and row["us_per_block_median"] > 0
        assert row["lsd_db"] > 0 and row["thd_n_db"] is not None
    # the same seeded pattern for every concealer
    for loss in ["bernoulli:0.1", "gilbert:0.05,0.5"]:
        assert len({r["lost_blocks"] for r in rows if r["loss"] == loss}) == 1
    assert [s["path"].endswith("not_audio.wav") for s in document["skipped_files"]] == [True]


def test_scores_rank_the_baselines_sensibly(cli_run):
    _, out = cli_run
    rows = {(r["concealer"], r["loss"]): r for r in json.loads((out / "results.json").read_text())["results"]}
    zeros = rows[("zeros", "bernoulli:0.1")]
    assert zeros["snr_db"] >= 0.0  # silence on a lost block is exactly 0 dB there, recovery blocks are exact
    for loss in ["bernoulli:0.1", "gilbert:0.05,0.5"]:
        burg, repeat, zeros = rows[("burg", loss)], rows[("repeat", loss)], rows[("zeros", loss)]
        # Burg continues the waveform: closer than a repeated block, spectrally closer than silence
        assert burg["snr_db"] > repeat["snr_db"]
        assert burg["lsd_db"] < min(zeros["lsd_db"], repeat["lsd_db"])
        assert burg["thd_n_db"] < repeat["thd_n_db"]
    if perceptual.plcmos_available():
        assert all(1.0 <= r["plcmos"] <= 5.0 for r in rows.values())
    else:
        assert all(r["plcmos"] is None for r in rows.values())
    if perceptual.visqol_available():
        assert all(1.0 <= r["visqol"] <= 5.0 for r in rows.values())


def test_report_and_plots(cli_run):
    _, out = cli_run
    report = (out / "report.md").read_text()
    assert "| concealer | loss |" in report and "| burg | bernoulli:0.1 |" in report
    assert "not_audio.wav" in report  # listed as skipped
    pictures = sorted(p.name for p in (out / "plots").iterdir())
    assert any(name.endswith("_waveform.png") for name in pictures)
    assert any(name.endswith("_spectrogram.png") for name in pictures)
    assert all((out / "plots" / name).stat().st_size > 1000 for name in pictures)


def test_evaluate_matches_conceal_stream_and_is_repeatable(speech_clip):
    config = EvaluationConfig(concealers=["zeros", "burg"], losses=["bernoulli:0.05"], visqol=False, seed=4)
    first = evaluate([speech_clip], config, progress=False)
    second = evaluate([speech_clip], config, progress=False)
    for a, b in zip(first.rows, second.rows, strict=True):
        assert {k: v for k, v in a.items() if not k.startswith("us_")} == {
            k: v for k, v in b.items() if not k.startswith("us_")
        }
    other_seed = evaluate(
        [speech_clip],
        EvaluationConfig(concealers=["zeros"], losses=["bernoulli:0.05"], visqol=False, seed=5),
        progress=False,
    )
    assert other_seed.rows[0]["snr_db"] != first.rows[0]["snr_db"]


def test_per_channel_evaluates_every_channel_with_the_same_mask(tmp_path):
    t = np.arange(24000) / 48000
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 300 * t), 0.3 * np.sin(2 * np.pi * 500 * t)], axis=1)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, stereo, 48000)
    config = EvaluationConfig(concealers=["zeros"], losses=["periodic:10"], visqol=False, mono=False)
    row = evaluate([str(path)], config, progress=False).rows[0]
    n_blocks = n_blocks_for(24000, 128)
    assert row["channels"] == 2 and row["files"] == 1
    assert row["blocks"] == 2 * n_blocks and row["lost_blocks"] == 2 * (n_blocks // 10)


def test_resamples_files_to_the_stream_rate(tmp_path):
    path = tmp_path / "low.flac"
    soundfile.write(path, 0.2 * np.sin(np.arange(8000) * 0.1), 16000)
    config = EvaluationConfig(
        concealers=["repeat"], losses=["none"], visqol=False, sample_rate_hz=48000, frames_per_block=64
    )
    row = evaluate([str(path)], config, progress=False).rows[0]
    assert row["blocks"] == n_blocks_for(24000, 64) and row["lost_blocks"] == 0 and row["snr_db"] is None


def test_unavailable_nextblock_is_reported_and_the_rest_goes_on(tmp_path, capsys):
    path = tmp_path / "tone.wav"
    soundfile.write(path, 0.2 * np.sin(np.arange(9600) * 0.05), 48000)
    status = cli.main(
        [
            str(path),
            "--concealer",
            "zeros",
            "--concealer",
            "nextblock",
            "--model",
            str(tmp_path / "missing.tflite"),
            "--no-visqol",
            "--quiet",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert status == 1
    assert "nextblock" in capsys.readouterr().err
    document = json.loads((tmp_path / "r.json").read_text())
    assert [r["concealer"] for r in document["results"]] == ["zeros"]
    assert document["unavailable_concealers"][0]["concealer"] == "nextblock"


def test_bad_arguments_give_one_line_errors(tmp_path, capsys):
    assert cli.main([str(tmp_path), "--loss", "bernoulli:2", "--quiet"]) == 2
    assert "probability" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([])  # neither files nor --sine
    assert "give audio files" in capsys.readouterr().err


def test_help_teaches_with_examples(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "gilbert:P_ENTER,P_LEAVE" in text and "--concealer" in text


def test_conceal_stream_checks_the_mask_length():
    with pytest.raises(ValueError, match="lost_mask has shape"):
        conceal_stream(np.zeros(1000, np.float32), make_concealer("zeros", 128), np.zeros(3, bool))
