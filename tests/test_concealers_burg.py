"""The Burg baseline is JackTrip v2.7.2's Regulator PLC: same numbers, same block logic."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nextblock.concealers import make_concealer
from nextblock.concealers.burg import (
    BurgConcealer,
    ar_extrapolate,
    burg_coefficients,
    jacktrip_burg_predict,
    jacktrip_history_packets,
)
from nextblock.evaluation.simulate import conceal_stream
from nextblock.splice import fade_windows

RATE_HZ = 48000


def _signal(n_samples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / RATE_HZ
    return (
        0.4 * np.sin(2 * np.pi * 440 * t) + 0.15 * np.sin(2 * np.pi * 1870 * t) + 0.02 * rng.standard_normal(n_samples)
    ).astype(np.float32)


def _burg_transcription(x: np.ndarray) -> np.ndarray:
    """Sample-by-sample float32 Burg as described in Regulator.cpp (``BurgAlgorithm::train``),
    written as plain loops – the reference for the vectorised :func:`burg_coefficients`."""
    f32 = np.float32
    size = x.shape[0]
    n = m = size - 1
    ak = [f32(0.0)] * size
    ak[0] = f32(1.0)
    f = [f32(v) for v in x]
    b = list(f)
    dk = f32(0.0)
    for j in range(n + 1):
        dk = f32(float(dk) + 2.00002 * float(f[j]) * float(f[j]))
    dk = f32(float(dk) - float(f[0] * f[0]) - float(b[n] * b[n]))
    for k in range(m):
        mu = f32(0.0)
        for i in range(n - k):
            mu = f32(mu + f[i + k + 1] * b[i])
        if dk == 0.0:
            dk = f32(np.finfo(np.float32).eps)
        mu = f32(float(mu) * (-2.0 / float(dk)))
        for i in range((k + 1) // 2 + 1):
            t1 = f32(ak[i] + mu * ak[k + 1 - i])
            t2 = f32(ak[k + 1 - i] + mu * ak[i])
            ak[i], ak[k + 1 - i] = t1, t2
        for i in range(n - k):
            t1 = f32(f[i + k + 1] + mu * b[i])
            t2 = f32(b[i] + mu * f[i + k + 1])
            f[i + k + 1], b[i] = t1, t2
        dk = f32(
            (1.0 - float(f32(mu * mu))) * float(dk) - float(f[k + 1] * f[k + 1]) - float(b[n - k - 1] * b[n - k - 1])
        )
    return np.array(ak[1:], dtype=np.float32)


def _predict_transcription(coeffs: np.ndarray, tail: np.ndarray, m: int) -> np.ndarray:
    """``BurgAlgorithm::predict``: the AR recursion from index ``m`` over the whole ``tail``."""
    tail = tail.astype(np.float32).copy()
    for i in range(m, tail.shape[0]):
        acc = np.float32(0.0)
        for j in range(m):
            acc = np.float32(acc - coeffs[j] * tail[i - 1 - j])
        tail[i] = acc
    return tail


def test_history_length_follows_the_regulator_table():
    # mPacketsInThePast: 2 at 128, 2 * (128 / fpp) below, 1 above 256
    assert [jacktrip_history_packets(f) for f in (16, 32, 64, 100, 128, 192, 256, 257, 512, 1024)] == [
        16,
        8,
        4,
        2,
        2,
        2,
        2,
        1,
        1,
        1,
    ]
    for fpp in (32, 64, 128, 256, 512):
        concealer = make_concealer("burg", fpp)
        assert concealer.history.shape == (jacktrip_history_packets(fpp) * fpp,)


def test_vectorised_burg_equals_the_sample_by_sample_recursion():
    x = _signal(48, seed=1)
    np.testing.assert_array_equal(burg_coefficients(x), _burg_transcription(x))


def test_prediction_overwrites_the_last_history_sample_like_jacktrip():
    """BurgAlgorithm::predict starts at index m = size - 1 and predicts 2 * fpp + 1 samples."""
    fpp, x = 16, _signal(48, seed=2)
    coeffs = _burg_transcription(x)
    tail = np.concatenate([x, np.zeros(2 * fpp, dtype=np.float32)])
    expected = _predict_transcription(coeffs, tail, x.shape[0] - 1)[x.shape[0] :].reshape(2, fpp)
    np.testing.assert_array_equal(jacktrip_burg_predict(x, fpp), expected)
    # ... which is not the same as continuing from the true last sample
    assert not np.array_equal(ar_extrapolate(coeffs, x, 2 * fpp).reshape(2, fpp), expected)


def _jacktrip_source() -> tuple[str, str] | None:
    """(Regulator.h, Regulator.cpp) of JackTrip v2.7.2 from the cache or the git mirror."""
    candidates = [
        os.environ.get("NEXTBLOCK_JACKTRIP_SRC"),
        Path.home() / ".cache/nextblock/jacktrip/jacktrip-2.7.2/src",
    ]
    for folder in candidates:
        if folder and (Path(folder) / "Regulator.cpp").is_file():
            return (Path(folder) / "Regulator.h").read_text(), (Path(folder) / "Regulator.cpp").read_text()
    mirror = Path("/work/.mirror/jacktrip+jacktrip/repo")
    if mirror.exists() and shutil.which("git"):
        try:
            show = lambda name: (
                subprocess.run(
                    ["git", "-C", str(mirror), "show", f"v2.7.2:src/{name}"], check=True, capture_output=True, text=True
                ).stdout
            )  # noqa: E731
            return show("Regulator.h"), show("Regulator.cpp")
        except subprocess.CalledProcessError:
            return None
    return None


@pytest.fixture(scope="module")
def jacktrip_burg_binary(tmp_path_factory):
    """JackTrip's own BurgAlgorithm compiled into a tiny driver (read from the source at test
    time, never stored in the repository)."""
    source = _jacktrip_source()
    if source is None:
        pytest.skip("JackTrip v2.7.2 source not found (set NEXTBLOCK_JACKTRIP_SRC to its src/ folder)")
    if not shutil.which("g++"):
        pytest.skip("g++ not available to compile JackTrip's BurgAlgorithm")
    header, body = source
    declaration = re.search(r"^class BurgAlgorithm\b.*?^};", header, re.S | re.M)
    methods = re.search(r"^BurgAlgorithm::BurgAlgorithm.*?(?=^//\*{10})", body, re.S | re.M)
    if not declaration or not methods:
        pytest.skip("could not find BurgAlgorithm in the JackTrip source")
    folder = tmp_path_factory.mktemp("jacktrip_burg")
    driver = folder / "driver.cpp"
    driver.write_text(
        "#include <cfloat>\n#include <iostream>\n#include <vector>\nusing std::cout; using std::endl;\n"
        + declaration.group(0)
        + "\n"
        + methods.group(0)
        + "\n"
        "int main() { int size, fpp; std::cin >> size >> fpp;\n"
        "  std::vector<float> tail(size + 2 * fpp, 0.0f), coeffs(size - 1);\n"
        "  for (int i = 0; i < size; i++) std::cin >> tail[i];\n"
        "  BurgAlgorithm ba(size); ba.train(coeffs, tail, size); ba.predict(coeffs, tail, size + 2 * fpp);\n"
        "  cout.precision(9); for (int i = size; i < size + 2 * fpp; i++) cout << tail[i] << '\\n'; }\n"
    )
    binary = folder / "driver"
    subprocess.run(["g++", "-O2", "-o", str(binary), str(driver)], check=True, capture_output=True)
    return binary


@pytest.mark.parametrize("fpp", [32, 128, 256, 512])
@pytest.mark.parametrize("kind", ["tones", "noise", "speech-like"])
def test_burg_prediction_is_bit_identical_to_jacktrip(jacktrip_burg_binary, fpp, kind):
    size = jacktrip_history_packets(fpp) * fpp
    rng = np.random.default_rng(fpp)
    if kind == "tones":
        history = _signal(size, seed=fpp)
    elif kind == "noise":
        history = (0.1 * rng.standard_normal(size)).astype(np.float32)
    else:  # decaying resonances, like a vowel
        excitation = np.zeros(size)
        excitation[::160] = 1.0
        history = (
            0.3 * np.convolve(excitation, np.exp(-np.arange(200) / 40.0) * np.sin(np.arange(200) * 0.3))[:size]
        ).astype(np.float32)
    text = f"{size} {fpp}\n" + "\n".join(repr(float(v)) for v in history)
    out = subprocess.run([str(jacktrip_burg_binary)], input=text, capture_output=True, text=True, check=True).stdout
    expected = np.array(out.split(), dtype=np.float32).reshape(2, fpp)
    np.testing.assert_array_equal(jacktrip_burg_predict(history, fpp), expected)


def test_trains_on_the_played_history_including_its_own_guesses():
    fpp = 64
    audio = _signal(20 * fpp)
    lost = np.zeros(20, dtype=bool)
    lost[10:13] = True
    concealer = BurgConcealer(fpp, RATE_HZ)
    played, _ = conceal_stream(audio, concealer, lost)
    # block 12 was predicted from the played blocks 12 - P .. 11 (P = 4 at 64 frames)
    history = played[(12 - 4) * fpp : 12 * fpp]
    np.testing.assert_array_equal(played[12 * fpp : 13 * fpp], jacktrip_burg_predict(history, fpp)[0])
    # recovery block 13: fade from the second predicted block of the last prediction
    fade_out, fade_in = fade_windows(fpp)
    expected = fade_out * jacktrip_burg_predict(history, fpp)[1] + fade_in * audio[13 * fpp : 14 * fpp]
    np.testing.assert_allclose(played[13 * fpp : 14 * fpp], expected, rtol=1e-6, atol=1e-7)


def test_unprimed_losses_are_silent():
    """mPcnt > mPacketsInThePast: the first P + 1 blocks cannot be predicted."""
    fpp = 128  # P = 2
    audio = _signal(10 * fpp) + 0.5
    for lost_at, silent in [(1, True), (2, True), (3, False)]:
        lost = np.zeros(10, dtype=bool)
        lost[lost_at] = True
        played, _ = conceal_stream(audio, BurgConcealer(fpp, RATE_HZ), lost)
        block = played[lost_at * fpp : (lost_at + 1) * fpp]
        assert (not block.any()) == silent


def test_mutes_after_512_ms_without_packets_and_keeps_its_state():
    fpp = 128  # 2.667 ms per block: 192 blocks = 512 ms, the 193rd lost block is muted
    n_blocks = 260
    audio = _signal(n_blocks * fpp)
    lost = np.zeros(n_blocks, dtype=bool)
    lost[20:240] = True
    concealer = BurgConcealer(fpp, RATE_HZ)
    played, _ = conceal_stream(audio, concealer, lost)
    blocks = played.reshape(n_blocks, fpp)
    last_arrival = 19
    first_muted = last_arrival + 193  # (n - last) * 2.667 ms > 512 ms from n - last = 193
    assert not blocks[first_muted:240].any()
    # the muted blocks leave history and counters alone: the state is the one at the last guess
    assert concealer.blocks_processed == n_blocks - (240 - first_muted)
    unmuted = BurgConcealer(fpp, RATE_HZ, mute_after_ms=None)
    played_unmuted, _ = conceal_stream(audio, unmuted, lost)
    np.testing.assert_array_equal(played_unmuted[: first_muted * fpp], played[: first_muted * fpp])
