"""``verify``: amplitude thresholding and mel-profile checks on real recordings.

Vocals: English words from ``klettres-data``; drums: loops from ``sonic-pi-samples`` (both
allowed Debian packages, fetched into the shared cache by the tool's own code).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nextblock.dataset.cache import cache_root
from nextblock.dataset.debian import DebianFetchError, apt_available, ensure_package
from nextblock.dataset.manifest import StemRow
from nextblock.dataset.report import write_report
from nextblock.dataset.verify import (
    VerifySettings,
    active_regions_s,
    mel_profile,
    reference_profiles_from_folder,
    verify_rows,
)

RATE_HZ = 44100


def _package(name: str) -> Path:
    if not apt_available():
        pytest.skip(f"apt-get/dpkg-deb not available: cannot fetch the real recordings ({name})")
    try:
        return ensure_package(cache_root(), name)
    except DebianFetchError as error:
        pytest.skip(f"cannot fetch {name} from the Debian mirror: {error}")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    words = sorted((_package("klettres-data") / "usr/share/klettres/en_GB/syllab").glob("*.ogg"))
    samples = _package("sonic-pi-samples") / "usr/share/sonic-pi/samples"
    refs = tmp_path_factory.mktemp("refs")
    (refs / "vocals").mkdir()
    (refs / "drums").mkdir()
    for word in words[:12]:
        shutil.copy(word, refs / "vocals" / word.name)
    for loop in ("drum_roll", "loop_compus", "loop_perc1", "loop_breakbeat"):
        shutil.copy(samples / f"{loop}.flac", refs / "drums" / f"{loop}.flac")
    (refs / "drums" / "readme.txt").write_text("ignored: not audio")
    return {"refs": refs, "held_out_words": words[12:], "amen": samples / "loop_amen.flac"}


def row_for(path: Path, label: str) -> StemRow:
    info = sf.info(path)
    return StemRow(
        stem_id=path.name,
        source_kind="test",
        source="test",
        song_id=path.name,
        path=str(path),
        relative_path=path.name,
        label=label,
        duration_s=info.duration,
        sample_rate_hz=info.samplerate,
        channels=info.channels,
    )


def test_real_vocal_kept_silence_and_mislabelled_drum_loop_rejected(tmp_path, corpus):
    settings = VerifySettings()
    references = reference_profiles_from_folder(corpus["refs"], settings)
    assert set(references) == {"vocals", "drums"}
    assert references["vocals"].shape == (12, 3 * settings.n_mels)

    vocal = corpus["held_out_words"][0]
    silence = tmp_path / "Vox_Silence.wav"
    sf.write(silence, np.zeros(3 * RATE_HZ, np.float32), RATE_HZ)
    hiss = tmp_path / "Vox_Hiss.wav"
    sf.write(hiss, np.random.default_rng(0).normal(0, 10 ** (-75 / 20), 3 * RATE_HZ).astype(np.float32), RATE_HZ)
    amen_as_vox = tmp_path / "Vox_Lead.flac"
    shutil.copy(corpus["amen"], amen_as_vox)

    rows = [
        row_for(vocal, "vocals"),
        row_for(silence, "vocals"),
        row_for(hiss, "vocals"),
        row_for(amen_as_vox, "vocals"),
    ]
    kept_vocal, silent, quiet, drum_loop = verify_rows(rows, references, settings, show_progress=False)

    assert kept_vocal.status == "kept", kept_vocal.reason
    assert kept_vocal.nearest_label == "vocals"
    assert kept_vocal.mel_distance <= settings.max_mel_distance
    assert 0 < kept_vocal.kept_fraction <= 1

    assert silent.status == "rejected" and silent.reason.startswith("silent")
    assert silent.active_s == 0
    assert quiet.status == "rejected" and "silent" in quiet.reason  # -75 dBFS hiss is below the -50 dBFS floor

    assert drum_loop.status == "rejected"
    assert drum_loop.reason.startswith("mel profile")
    assert drum_loop.nearest_label == "drums"
    # a threshold loose enough to accept the loop still rejects it for being nearer the drums
    loose = VerifySettings(max_mel_distance=1.5)
    (_, _, _, still_drums) = verify_rows(rows, references, loose, show_progress=False)
    assert still_drums.status == "rejected" and "closer to drums" in still_drums.reason
    (_, _, _, allowed) = verify_rows(
        rows, references, VerifySettings(max_mel_distance=1.5, require_nearest_label=False), show_progress=False
    )
    assert allowed.status == "kept"


def test_amplitude_threshold_drops_silent_regions_and_reports_what_is_kept(tmp_path, corpus):
    word, rate = sf.read(corpus["held_out_words"][1], dtype="float32", always_2d=True)
    word = word.mean(axis=1)
    gap = np.zeros(2 * rate, np.float32)
    padded = np.concatenate([gap, word, gap, word, gap])
    path = tmp_path / "LeadVox_Takes.wav"
    sf.write(path, padded, rate)
    settings = VerifySettings()
    (row,) = verify_rows([row_for(path, "vocals")], {}, settings, show_progress=False)
    assert row.status == "kept"  # no vocal references given and too few stems: amplitude check only
    assert row.mel_distance is None
    regions = np.array(row.active_regions_s)
    assert len(regions) == 2
    word_s = word.size / rate
    frame_s = 0.1  # analysis frames blur edges by less than this
    takes = [(2.0, 2.0 + word_s), (4.0 + word_s, 4.0 + 2 * word_s)]
    for (start_s, end_s), (take_start_s, take_end_s) in zip(regions, takes, strict=True):
        assert take_start_s - frame_s <= start_s < end_s <= take_end_s + frame_s  # the 2 s gaps are dropped
    assert row.active_s <= 2 * word_s + 2 * frame_s
    assert row.kept_fraction == pytest.approx(row.active_s / (padded.size / rate), rel=1e-3)


def test_profile_ignores_loudness(corpus):
    audio, rate = sf.read(corpus["held_out_words"][2], dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    settings = VerifySettings()
    regions = active_regions_s(audio, rate, settings)
    loud, soft = mel_profile(audio, rate, regions), mel_profile(audio * 0.25, rate, regions)
    assert np.linalg.norm(loud) == pytest.approx(1.0)
    assert 1 - loud @ soft < 1e-3


def test_report_counts_and_plot(tmp_path, corpus):
    rows = [row_for(w, "vocals") for w in corpus["held_out_words"][:6]] + [row_for(corpus["amen"], "vocals")]
    verified = verify_rows(rows, reference_profiles_from_folder(corpus["refs"]), show_progress=False)
    json_path, png_path = write_report(verified, tmp_path, max_mel_distance=0.4)
    summary = json.loads(json_path.read_text())
    rejected = sum(r.status == "rejected" for r in verified)
    assert summary["stems"] == 7 and summary["rejected"] == rejected >= 1
    assert summary["per_label"]["vocals"]["kept"] == 7 - rejected
    assert sum(summary["rejections"].values()) == rejected
    assert png_path.stat().st_size > 10_000 and png_path.read_bytes()[:4] == b"\x89PNG"


def test_worker_processes_give_the_same_verdicts(corpus):
    rows = [row_for(w, "vocals") for w in corpus["held_out_words"][:4]] + [row_for(corpus["amen"], "vocals")]
    references = reference_profiles_from_folder(corpus["refs"])
    assert verify_rows(rows, references, show_progress=False, jobs=2) == verify_rows(
        rows, references, show_progress=False
    )
