"""Helpers for the tests of ``python -m nextblock.attach`` (tests/test_attach*.py, test_runtime*.py).

* :func:`python_env` – environment for subprocesses (``PYTHONPATH`` → the in-place package).
* :func:`start_emulator` / :func:`wait_ready` – the JackTrip stand-in
  (:mod:`nextblock.lab.emulator`) in a subprocess.
* :func:`tiny_model` – a small real NextBlock ``.tflite`` (random weights, real metadata) built
  once with TensorFlow in a subprocess and cached; skips the test when TensorFlow is missing.
* :func:`expected_contexts` – rebuild offline what the live loop's context was for a block.
* :func:`assert_fallbacks_explained` – the part of a served stream's statistics that NextBlock
  controls, checked strictly.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nextblock.paths import cache_root

REPO = Path(__file__).resolve().parent.parent
PYTHON_DIR = REPO / "python"


def _skip_stale_editable_finder() -> str:
    """A stale scikit-build editable install maps packages created after it as namespace
    packages; its finder steps aside for build paths listed in SKBUILD_EDITABLE_SKIP, so list
    them (the in-place tree on PYTHONPATH is what we test)."""
    paths = [getattr(f, "path", None) for f in sys.meta_path if type(f).__name__.startswith("ScikitBuild")]
    paths = [p for p in paths if p]
    if paths:
        current = [p for p in os.environ.get("SKBUILD_EDITABLE_SKIP", "").split(os.pathsep) if p]
        os.environ["SKBUILD_EDITABLE_SKIP"] = os.pathsep.join(current + [p for p in paths if p not in current])
    return os.environ.get("SKBUILD_EDITABLE_SKIP", "")


_skip_stale_editable_finder()


def python_env(**extra: str) -> dict:
    """Environment for a child Python that imports the in-place package."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PYTHON_DIR)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    env["OPENBLAS_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def start_emulator(
    tmp_path: Path,
    *,
    segment: str | None = None,
    seconds: float = 3.0,
    loss_rate: float = 0.05,
    burst_max: int = 3,
    seed: int = 1,
    frames: int = 128,
    rate: int = 48000,
    channels: int = 2,
    out: bool = True,
    wait_consumer_s: float = 30.0,
    extra: tuple[str, ...] = (),
    tag: str = "emu",
) -> tuple[subprocess.Popen, Path, Path | None]:
    """Start the JackTrip stand-in; returns ``(process, ready_file, out_file)``."""
    ready = tmp_path / f"{tag}.ready"
    out_file = tmp_path / f"{tag}.npz" if out else None
    cmd = [
        sys.executable,
        "-m",
        "nextblock.lab.emulator",
        "--seconds",
        str(seconds),
        "--loss-rate",
        str(loss_rate),
        "--burst-max",
        str(burst_max),
        "--seed",
        str(seed),
        "--frames",
        str(frames),
        "--rate",
        str(rate),
        "--channels",
        str(channels),
        "--ready-file",
        str(ready),
        "--wait-consumer-s",
        str(wait_consumer_s),
        *extra,
    ]
    if segment:
        cmd += ["--segment", segment]
    if out_file:
        cmd += ["--out", str(out_file)]
    proc = subprocess.Popen(cmd, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, ready, out_file


def wait_ready(ready: Path, proc: subprocess.Popen, timeout_s: float = 30.0) -> str:
    """Wait for the emulator's segment; returns its name."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready.exists() and ready.read_text():
            return ready.read_text()
        if proc.poll() is not None:
            raise AssertionError(f"emulator exited early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("emulator did not create its segment in time")


def run_attach(args: list[str], timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """Run ``python -m nextblock.attach ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "nextblock.attach", *args],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def start_attach(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nextblock.attach", *args],
        env=python_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# --- a small real model ------------------------------------------------------------------------

_TINY_MODEL_SCRIPT = r"""
import os, sys, json, datetime
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
import numpy as np
import tensorflow as tf
from nextblock.features.config import FeatureConfig
from nextblock.model.architecture import ArchitectureConfig, build_model
from nextblock.model.metadata import METADATA_FORMAT, embed_metadata
out, seed, frames, version = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
features = FeatureConfig(frames_per_block=frames, context_samples=8 * frames, sample_rate_hz=48000)
tf.keras.utils.set_random_seed(seed)
arch = ArchitectureConfig.from_dict({"width": 8, "blocks": 2, "dilations": [1, 2], "kernel_bins": 3, "filter_taps": 3})
model = build_model(features, arch)
rng = np.random.default_rng(seed)
for layer in model.layers:  # zero-initialised heads would predict silence: give them random weights
    weights = layer.get_weights()
    if layer.trainable and weights and all(not np.any(w) for w in weights):
        layer.set_weights([(0.05 * rng.standard_normal(w.shape)).astype(np.float32) for w in weights])
converter = tf.lite.TFLiteConverter.from_keras_model(model)
data = converter.convert()
md = {"format": METADATA_FORMAT, "name": "attach-test-tiny", "model_version": version,
      "frames_per_block": features.frames_per_block, "context_samples": features.context_samples,
      "sample_rate_hz": features.sample_rate_hz, "outputs_blocks": features.outputs_blocks,
      "window_fall_samples": features.window_fall_samples, "channels_layout": "mono, per channel",
      "feature": "test model with random weights", "created": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}
data = embed_metadata(data, md)
tmp = out + ".tmp"
open(tmp, "wb").write(data)
os.replace(tmp, out)
"""


def tiny_model(seed: int = 1, frames: int = 128) -> Path:
    """Path of a cached small NextBlock model (random weights, real metadata, version ``tiny-s<seed>``).

    Skips the calling test when TensorFlow (needed once, to build it) or the model runner is
    missing."""
    try:
        import ai_edge_litert  # noqa: F401

        from nextblock.model.runner import BlockPredictor  # noqa: F401
    except ImportError as err:
        pytest.skip(f"the LiteRT model runner is not available: {err}")
    cache = cache_root() / "test-models"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"attach-tiny-s{seed}-f{frames}.tflite"
    if path.exists():
        return path
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed: cannot build the small test model")
    result = subprocess.run(
        [sys.executable, "-c", _TINY_MODEL_SCRIPT, str(path), str(seed), str(frames), f"tiny-s{seed}"],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    if result.returncode != 0 or not path.exists():
        pytest.skip(f"could not build the small test model: {result.stderr.strip().splitlines()[-1:]}")
    return path


def publish(
    model_dir: Path,
    version: int,
    source: Path | bytes,
    *,
    announce_bytes: bytes | None = None,
    truncate_to: int | None = None,
) -> Path:
    """Publish like the learner does (docs/model_publishing.md): model file, then current.json.

    ``announce_bytes``: compute the announced size/checksum from these bytes instead of the
    written ones (to publish a file that does not match its announcement). ``truncate_to``:
    write only that many bytes of the model (a truncated upload) while announcing the full file.
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    announced = announce_bytes if announce_bytes is not None else data
    written = data[:truncate_to] if truncate_to is not None else data
    if truncate_to is not None and announce_bytes is None:
        announced = data
    name = f"model-v{version}.tflite"
    tmp = model_dir / f".{name}.tmp"
    tmp.write_bytes(written)
    os.replace(tmp, model_dir / name)
    doc = {
        "format": "nextblock-published/1",
        "version": version,
        "file": name,
        "sha256": hashlib.sha256(announced).hexdigest(),
        "bytes": len(announced),
        "created_unix_s": time.time(),
        "validation": {},
        "parent_version": version - 1 if version > 1 else None,
    }
    tmp = model_dir / ".current.json.tmp"
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, model_dir / "current.json")
    return model_dir / name


def played_source(result: dict, sample_rate_hz: int = 48000) -> tuple[np.ndarray, np.ndarray]:
    """What the live loop's context holds per block, i.e. what was played: the clean block where
    it arrived, the taken replacement's first block where it was concealed by NextBlock, and the
    block after such a concealment cross-faded from the replacement's second block (the recovery
    fade of ``shm_layout.hpp``: a raised cosine over 32 samples at 48 kHz).
    Returns ``(blocks (n, frames, channels), known (n,) bool)`` – ``known`` is False for FALLBACK
    blocks (JackTrip's own concealment is not in the segment)."""
    n = len(result["lost"])
    channels = result["sent"].shape[1]
    frames = result["sent"].shape[0] // n
    blocks = result["sent"].reshape(n, frames, channels).copy()
    lost = result["lost"]
    outcome = result["outcome"]
    taken = result["taken"]
    from nextblock.splice import fade_windows

    fade_out = fade_windows(frames, "recovery", sample_rate_hz)[0][:, None]
    for k in np.flatnonzero(~lost[1:] & lost[:-1] & (outcome[:-1] == 1)) + 1:
        blocks[k] += fade_out * (taken[k - 1, 1] - blocks[k])
    blocks[lost] = taken[lost, 0]
    known = ~(lost & (outcome != 1))
    return blocks, known


def expected_context(blocks: np.ndarray, k: int, context_samples: int) -> np.ndarray:
    """``(channels, context_samples)`` preceding block index ``k`` (zeros before the stream)."""
    _, frames, channels = blocks.shape
    n_blocks = -(-context_samples // frames)
    ctx = np.zeros((channels, n_blocks * frames), np.float32)
    for j in range(n_blocks):
        i = k - n_blocks + j
        if i >= 0:
            ctx[:, j * frames : (j + 1) * frames] = blocks[i].T
    return ctx[:, -context_samples:]


FALLBACK_KEYS = (
    "underruns",
    "replacements_used",
    "fallbacks",
    "fallbacks_late",
    "fallbacks_skipped",
    "fallbacks_unseen",
    "fallbacks_after_post",
    "fallbacks_before_attach",
    "fallbacks_outage",
    "fallbacks_dropped_received",
    "deadline_misses",
)


def assert_fallbacks_explained(stats: dict, concealed: int, context=None) -> None:
    """What NextBlock controls, strictly: a served stream's statistics (attach's ``--json``, the
    whole run or one stream) account for every fallback (late, skipped, unseen, played despite a
    post, before the stream was served, an outage past the longest chain, or a block that had
    arrived and the producer dropped: ``FALLBACK_REASONS``), and a replacement posted in time is played (``fallbacks_after_post`` at most a few: a
    JACK cycle that runs early after a late one can beat a post made by the deadline the late clock
    reading gave). How many losses were predicted in time is the host's timing; the tests bound it
    loosely and the benchmarks measure it."""
    why = {k: stats.get(k) for k in FALLBACK_KEYS}
    if context is not None:
        why["context"] = context
    assert stats["fallbacks_after_post"] <= max(2, 0.05 * concealed), f"posted in time, not played: {why}"
    from nextblock.runtime.stats import FALLBACK_REASONS

    assert stats["fallbacks"] == sum(stats[f"fallbacks_{r}"] for r in FALLBACK_REASONS), f"unexplained fallbacks: {why}"


def twosided_fill(monkeypatch=None):
    """The shipped two-sided fill, ``nextblock.features.twosided.fill_gap`` (tests wrap it to
    record its calls; ``monkeypatch`` is accepted for the fixtures' signature)."""
    from nextblock.features.twosided import fill_gap

    return fill_gap
