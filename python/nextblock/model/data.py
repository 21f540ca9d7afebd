"""Training data: windows from audio folders or packaged shards → features/targets → ``tf.data``.

Two sources, same result (``{split: windows}``, each ``(examples, context + output samples)``):

* :func:`windows_from_audio` – folders of audio files (e.g. the Debian packages in the cache),
  split by recording (:func:`nextblock.model.audio_files.split_of`), balanced across root folders
  so no single package dominates;
* :func:`windows_from_shards` – the packaged dataset written by ``python -m nextblock.dataset``
  (``manifest.json`` with format ``nextblock-shards/1``; its splits are already by recording).

:func:`windows_to_arrays` turns windows into network inputs and normalised waveform targets with
the very same :class:`~nextblock.features.spectral.SpectralCodec` the runtime uses, and
:func:`make_dataset` wraps them in a shuffled, batched ``tf.data.Dataset``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from ..features.config import FeatureConfig
from ..features.spectral import SpectralCodec
from .audio_files import SPLITS, by_split_and_group, find_audio_files, read_excerpt
from .examples import MIN_CONTEXT_RMS, random_windows

if TYPE_CHECKING:
    from ..features.twosided import GuessRecipe

SHARDS_FORMAT = "nextblock-shards/1"


def windows_from_audio(
    roots: list[str],
    config: FeatureConfig,
    examples: dict[str, int],
    seed: int = 0,
    max_files_per_group: int = 120,
    excerpt_seconds: float = 12.0,
    cache_dir: Path | None = None,
    show_progress: bool = True,
    sample_rates_hz: tuple[int, ...] | None = None,
    group_weights: dict[str, float] | None = None,
    history_samples: int = 0,
) -> dict[str, np.ndarray]:
    """Random windows from the audio files under ``roots``, per split.

    Parameters
    ----------
    roots:
        Folders searched recursively; each is a *group* (e.g. one Debian package) and gets an
        equal share of each split's examples.
    config:
        Gives the window length ``context_samples + output_samples`` and the sample rate.
    examples:
        Examples wanted per split, e.g. ``{"train": 100000, "validation": 5000, "test": 5000}``.
    seed:
        Seeds file choice, excerpt offsets and window positions.
    max_files_per_group:
        At most this many files are read per group and split (bounds the decoding time).
    excerpt_seconds:
        At most this much audio is read from each file (from a random offset).
    sample_rates_hz:
        If given, each file is resampled to one of these rates (drawn per file, uniformly; a
        rate listed twice is drawn twice as often) instead of ``config.sample_rate_hz``: the
        model then learns to continue audio whatever its rate (a 1024-sample context is 32 ms
        at 32 kHz and 10.7 ms at 96 kHz), so one model serves every stream rate.
    group_weights:
        Relative share of a group's examples by group (root folder) name, default 1 (e.g.
        ``{"choir": 3.0}`` gives the choir renders three times the windows of any other group).
    history_samples:
        Extra samples *before* each window's context (0: none): windows are then
        ``history_samples + context_samples + output_samples`` long. Chained-prediction training
        (:mod:`nextblock.model.chained`) predicts from that earlier context and splices the
        prediction into the context's end.
    cache_dir:
        If given, the result is stored there (``windows-<hash>.npz``) and reused by later runs
        with the same arguments.

    Returns
    -------
    dict
        ``{split: (n, window_samples) float32}``; a split with no files gets ``n = 0``.
    """
    history_samples = int(history_samples)
    if history_samples < 0:
        raise ValueError(f"history_samples must be >= 0, got {history_samples}")
    window = history_samples + config.context_samples + config.output_samples
    rates = tuple(int(r) for r in sample_rates_hz) if sample_rates_hz else (config.sample_rate_hz,)
    weights = dict(group_weights or {})
    key_parts = [
        sorted(str(Path(r).resolve()) for r in roots),
        config.to_dict(),
        examples,
        seed,
        max_files_per_group,
        excerpt_seconds,
    ]
    if sample_rates_hz or weights:  # keeps the cache keys of earlier runs
        key_parts += [list(rates), sorted(weights.items())]
    if history_samples:
        key_parts += [{"history_samples": history_samples}]
    files = find_audio_files(roots)
    # the files themselves (path and size): audio added under a root (e.g. a newly unpacked
    # archive) or replaced must not be answered from an older cache
    listing = hashlib.sha1("\n".join(f"{f.path}:{f.path.stat().st_size}" for f in files).encode()).hexdigest()
    key_parts += [{"files": listing}]
    key = json.dumps(key_parts, sort_keys=True)
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"windows-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
        if cache_file.exists():
            with np.load(cache_file) as loaded:
                return {split: loaded[split] for split in examples}

    by_split_group, shares = by_split_and_group(files, weights)
    rng = np.random.default_rng(seed)
    jobs = []
    for split, wanted in examples.items():
        for group, share in shares.items():
            candidates = by_split_group.get((split, group), [])
            if not candidates or wanted <= 0:
                continue
            order = rng.permutation(len(candidates))[:max_files_per_group]
            per_file = math.ceil(wanted * share / len(order))
            jobs.extend((split, candidates[i].path, per_file, rates[rng.integers(len(rates))]) for i in order)

    collected: dict[str, list[np.ndarray]] = defaultdict(list)
    for split, path, per_file, rate_hz in tqdm(jobs, desc="reading audio", unit="file", disable=not show_progress):
        audio = read_excerpt(path, int(rate_hz), excerpt_seconds, rng)
        if audio is None:
            continue
        windows = random_windows(audio, per_file, window, history_samples + config.context_samples, rng)
        if history_samples:  # the silence test on the context proper, as without history
            rms = np.sqrt(
                np.mean(np.square(windows[:, history_samples : history_samples + config.context_samples]), axis=1)
            )
            windows = windows[rms >= MIN_CONTEXT_RMS]
        collected[split].append(windows)
    result = {}
    for split, wanted in examples.items():
        parts = collected.get(split) or [np.zeros((0, window), np.float32)]
        stacked = np.concatenate(parts)
        result[split] = stacked[rng.permutation(stacked.shape[0])[:wanted]]
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache_file, **result)
    return result


def read_manifest(data_dir: str | Path) -> dict:
    """Load and check ``<data_dir>/manifest.json`` of the packaged dataset.

    Raises ``FileNotFoundError`` / ``ValueError`` with a one-line reason when it is missing or
    not ``nextblock-shards/1``.
    """
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"no manifest.json in {data_dir} (expected the output of python -m nextblock.dataset)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if manifest.get("format") != SHARDS_FORMAT:
        raise ValueError(f"{path} has format {manifest.get('format')!r}, expected {SHARDS_FORMAT!r}")
    if not isinstance(manifest.get("splits"), dict):
        raise ValueError(f"{path} has no 'splits' mapping")  # noqa: TRY004 - a file-content error
    return manifest


def windows_from_shards(
    data_dir: str | Path, config: FeatureConfig, examples: dict[str, int], seed: int = 0, show_progress: bool = True
) -> dict[str, np.ndarray]:
    """Random windows from the packaged dataset's shards, per split.

    Each shard's ``audio`` is ``(k, example_samples)``; examples longer than a window give
    several windows at random offsets, enough to reach ``examples[split]`` overall. A split the
    manifest lacks gives ``n = 0``; ``test`` falls back to nothing (use ``--test-audio``).
    """
    manifest = read_manifest(data_dir)
    if int(manifest.get("sample_rate_hz", config.sample_rate_hz)) != config.sample_rate_hz:
        raise ValueError(f"dataset is at {manifest['sample_rate_hz']} Hz, the model at {config.sample_rate_hz} Hz")
    window = config.context_samples + config.output_samples
    example_samples = int(manifest.get("example_samples", 0))
    if example_samples < window:
        raise ValueError(f"dataset examples have {example_samples} samples, a window needs {window}")
    rng = np.random.default_rng(seed)
    result = {}
    for split, wanted in examples.items():
        entries = manifest["splits"].get(split, [])
        total = sum(int(e.get("examples", 0)) for e in entries) or 1
        per_example = max(1, math.ceil(wanted / total))
        parts = []
        for entry in tqdm(entries, desc=f"reading {split} shards", unit="shard", disable=not show_progress):
            with np.load(Path(data_dir) / entry["path"]) as shard:
                audio = np.asarray(shard["audio"], dtype=np.float32)
            for row in audio:
                parts.append(random_windows(row, per_example, window, config.context_samples, rng))
        stacked = np.concatenate(parts) if parts else np.zeros((0, window), np.float32)
        result[split] = stacked[rng.permutation(stacked.shape[0])[:wanted]]
    return result


def windows_to_arrays(windows: np.ndarray, config: FeatureConfig, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Network inputs and targets for a batch of windows.

    Parameters
    ----------
    windows:
        ``(n, context_samples + output_samples)`` float32.

    Returns
    -------
    features:
        ``(n, input_bins, channels)`` float32 – :meth:`SpectralCodec.encode` of the contexts.
    targets:
        ``(n, output_samples)`` float32 – the continuations divided by their context's scale
        (the network works in RMS units).
    """
    codec = SpectralCodec(config)
    n = windows.shape[0]
    features = np.empty((n, config.input_bins, codec.feature_channels), np.float32)
    targets = np.empty((n, config.output_samples), np.float32)
    for start in range(0, n, chunk):
        part = windows[start : start + chunk]
        f, scale = codec.encode(part[:, : config.context_samples])
        features[start : start + chunk] = f
        targets[start : start + chunk] = part[:, config.context_samples :] / scale[:, None]
    return features, targets


def two_sided_arrays(
    windows: np.ndarray,
    config: FeatureConfig,
    gap_samples: int | None = None,
    prior_model: str | None = None,
    chunk: int = 8192,
    recipe: GuessRecipe | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`windows_to_arrays` for a two-sided network: the first ``gap_samples`` (default: one
    block) of each continuation are lost, the rest arrived.

    The guess channels hold :func:`~nextblock.features.twosided.two_sided_guess` (the gap filled
    by LSAR from the context and the samples after the gap, then those samples) instead of the
    causal LPC guess; with ``prior_model`` (a causal ``.tflite``) the LSAR is fused with that
    model's prediction of the gap, as the runtime fuses the causal replacement it already posted;
    ``recipe`` (:class:`~nextblock.features.twosided.GuessRecipe`, default the fast one) says how.
    The targets are the whole continuation, as for the causal network.
    ``windows`` ``(n, context_samples + output_samples)`` → ``features`` ``(n, input_bins, 5)``,
    ``targets`` ``(n, output_samples)`` float32.
    """
    from ..features.twosided import FAST_GUESS, two_sided_guess

    recipe = FAST_GUESS if recipe is None else recipe
    gap = int(gap_samples or config.frames_per_block)
    codec = SpectralCodec(config)
    causal = None
    if prior_model is not None:
        from .runner import BlockPredictor

        causal = BlockPredictor(prior_model, warm_up=False)
        if causal.context_samples > config.context_samples:
            raise ValueError(
                f"the prior model needs {causal.context_samples} samples of context, the windows hold "
                f"{config.context_samples}"
            )
    n, c = windows.shape[0], config.context_samples
    features = np.empty((n, config.input_bins, codec.feature_channels), np.float32)
    targets = np.empty((n, config.output_samples), np.float32)
    for start in range(0, n, chunk):
        part = windows[start : start + chunk]
        prior = None
        if causal is not None:
            context = part[:, c - causal.context_samples : c]
            prior = np.concatenate(
                [causal.predict_horizon(context[i : i + 1024]) for i in range(0, part.shape[0], 1024)]
            )
            prior = np.ascontiguousarray(prior[:, :gap])
        guess = two_sided_guess(part[:, :c], part[:, c + gap :], gap, config.output_samples, prior, recipe=recipe)
        f, scale = codec.encode_given_guess(part[:, :c], guess)
        features[start : start + chunk] = f
        targets[start : start + chunk] = part[:, c:] / scale[:, None]
    return features, targets


def make_dataset(features: np.ndarray, targets: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0):
    """A batched ``tf.data.Dataset`` of ``(features, targets)`` (shuffled each epoch if asked)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((features, targets))
    if shuffle:
        ds = ds.shuffle(min(features.shape[0], 65536), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=shuffle).prefetch(tf.data.AUTOTUNE)


__all__ = [
    "SPLITS",
    "make_dataset",
    "read_manifest",
    "two_sided_arrays",
    "windows_from_audio",
    "windows_from_shards",
    "windows_to_arrays",
]
