"""``python -m nextblock.dataset`` end to end on real recordings, and its user-error messages."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nextblock.dataset.cache import cache_root
from nextblock.dataset.debian import DebianFetchError, apt_available, ensure_package
from nextblock.dataset.shards import load_split

PYTHON_DIR = Path(__file__).resolve().parents[1] / "python"


def run_cli(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR)}
    if cache is not None:
        env["NEXTBLOCK_CACHE"] = str(cache)
    return subprocess.run(
        [sys.executable, "-m", "nextblock.dataset", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.parametrize("command", [[], ["fetch"], ["sort"], ["verify"], ["package"]])
def test_help_teaches_with_examples(command):
    done = run_cli(*command, "--help")
    assert done.returncode == 0
    assert "examples" in done.stdout.lower() and "python -m nextblock.dataset" in done.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["fetch"], "nothing to fetch"),
        (["fetch", "--catalog", "/no/such/catalog.csv"], "does not exist"),
        (["verify", "--manifest", "/no/such/stems.csv"], "does not exist"),
        (["package", "--manifest", "/no/such/stems.csv"], "does not exist"),
        (["sort"], "no audio found"),
    ],
)
def test_user_errors_are_one_line_without_traceback(tmp_path, args, message):
    done = run_cli(*args, "--quiet", cache=tmp_path / "empty-cache")
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_fetch_sort_verify_package_end_to_end(tmp_path):
    if not apt_available():
        pytest.skip(
            "apt-get/dpkg-deb not available: cannot fetch the real recordings (klettres-data, sonic-pi-samples)"
        )
    try:
        words = sorted(
            (ensure_package(cache_root(), "klettres-data") / "usr/share/klettres/en_GB/syllab").glob("*.ogg")
        )
        samples = ensure_package(cache_root(), "sonic-pi-samples") / "usr/share/sonic-pi/samples"
    except DebianFetchError as error:
        pytest.skip(f"cannot fetch the real recordings from the Debian mirror: {error}")
    sessions = []
    for index, loop in enumerate(["loop_amen_full", "loop_compus", "drum_roll"]):
        path = tmp_path / f"session{index}.zip"
        with zipfile.ZipFile(path, "w") as bundle:
            stems = [
                (f"S{index}/01_LeadVox.wav", words[index]),
                (f"S{index}/Drums/Loop.flac", samples / f"{loop}.flac"),
            ]
            for name, clip in stems:
                audio, rate = sf.read(clip, dtype="float32")
                buffer = io.BytesIO()
                sf.write(buffer, audio, rate, format="WAV" if name.endswith(".wav") else "FLAC")
                bundle.writestr(name, buffer.getvalue())
        sessions.append(path)
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(
        "title,artist,genre,url\n"
        + "".join(f"Song {i},Band,Rock,{p}\n" for i, p in enumerate(sessions))
        + "No URL,Band,Rock,\n"
    )
    cache = tmp_path / "cache"

    fetched = run_cli("fetch", "--catalog", str(catalog), "--quiet", cache=cache)
    assert fetched.returncode == 0, fetched.stderr
    assert "3 copied" in fetched.stdout and "no URL" in fetched.stderr
    assert run_cli("fetch", "--catalog", str(catalog), "--quiet", "--strict", cache=cache).returncode == 1
    assert "3 cached" in run_cli("fetch", "--catalog", str(catalog), "--quiet", cache=cache).stdout

    sorted_ = run_cli("sort", "--quiet", "--no-debian", cache=cache)
    assert sorted_.returncode == 0, sorted_.stderr
    assert "6 stems" in sorted_.stdout and "drums 3" in sorted_.stdout and "vocals 3" in sorted_.stdout

    verified = run_cli("verify", "--quiet", cache=cache)
    assert verified.returncode == 0, verified.stderr
    assert (cache / "manifests" / "report" / "report.png").is_file()
    report = json.loads((cache / "manifests" / "report" / "report.json").read_text())
    assert report["stems"] == 6

    packaged = run_cli(
        "package", "--quiet", "--out", str(tmp_path / "ds"), "--validation-fraction", "0.34", cache=cache
    )
    assert packaged.returncode == 0, packaged.stderr
    train, validation = load_split(tmp_path / "ds", "train"), load_split(tmp_path / "ds", "validation")
    assert train.shape[1] == validation.shape[1] == 48000
    assert train.shape[0] > 0 and validation.shape[0] > 0
    assert np.isfinite(train).all()
