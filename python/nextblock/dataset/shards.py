"""The packaged dataset format ``nextblock-shards/1`` and its readers.

Layout of a dataset folder (written by ``python -m nextblock.dataset package``,
read by ``python -m nextblock.train``)::

    <dataset>/
    ├── manifest.json
    ├── train/shard-00000.npz  (+ shard-00000.json: resume record)
    └── validation/shard-00000.npz

``manifest.json``::

    {"format": "nextblock-shards/1",
     "sample_rate_hz": 48000,
     "example_samples": 48000,
     "splits": {"train": [{"path": "train/shard-00000.npz", "sha256": "<hex>", "examples": 256}, ...],
                "validation": [...]},
     "recordings": {"0": {"stem_id": ..., "song_id": ..., "label": ..., "split": ..., ...}, ...},
     "skipped": [{"stem_id": ..., "reason": ...}, ...],
     "settings": {...}}

Each shard ``.npz`` holds ``audio`` float32 ``[examples, example_samples]``
(mono, in [-1, 1]) and ``recording_id`` int32 ``[examples]``; a recording id
``i`` is described by ``manifest["recordings"][str(i)]``.

Readers verify every shard's SHA-256 before using it and raise
:class:`ShardChecksumError` on a mismatch.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

FORMAT = "nextblock-shards/1"
"""Value of ``manifest["format"]``."""

MANIFEST_FILE_NAME = "manifest.json"
SPLITS = ("train", "validation")


class ShardChecksumError(Exception):
    """A shard's bytes do not match the SHA-256 recorded in the manifest."""


class DatasetFormatError(Exception):
    """The folder is not a ``nextblock-shards/1`` dataset."""


def read_manifest(dataset_dir: str | Path) -> dict:
    """Load and sanity-check ``<dataset_dir>/manifest.json``.

    Raises
    ------
    DatasetFormatError
        Missing manifest or another format.
    """
    path = Path(dataset_dir) / MANIFEST_FILE_NAME
    if not path.is_file():
        raise DatasetFormatError(f"{path} does not exist (run: python -m nextblock.dataset package ...)")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise DatasetFormatError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def shard_bytes(audio: np.ndarray, recording_id: np.ndarray) -> bytes:
    """Serialise one shard (``.npz``, uncompressed) to bytes.

    Parameters
    ----------
    audio:
        float32 ``[examples, example_samples]``.
    recording_id:
        int32 ``[examples]``.
    """
    if audio.ndim != 2 or recording_id.shape != (audio.shape[0],):
        raise ValueError(
            f"audio must be [examples, samples] and recording_id [examples]; got {audio.shape}, {recording_id.shape}"
        )
    buffer = io.BytesIO()
    np.savez(buffer, audio=audio.astype(np.float32, copy=False), recording_id=recording_id.astype(np.int32, copy=False))
    return buffer.getvalue()


def write_shard(path: str | Path, audio: np.ndarray, recording_id: np.ndarray) -> str:
    """Write a shard atomically (temp file + rename); return its SHA-256 hex digest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = shard_bytes(audio, recording_id)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(payload)
    tmp.replace(path)
    return hashlib.sha256(payload).hexdigest()


def load_shard(path: str | Path, sha256: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read one shard, checking its SHA-256 when given.

    Returns
    -------
    audio, recording_id:
        float32 ``[examples, example_samples]`` and int32 ``[examples]``.

    Raises
    ------
    ShardChecksumError
        The file's digest differs from ``sha256``.
    """
    payload = Path(path).read_bytes()
    if sha256 is not None:
        actual = hashlib.sha256(payload).hexdigest()
        if actual != sha256:
            raise ShardChecksumError(f"{path}: sha256 {actual[:12]}… does not match manifest {sha256[:12]}…")
    with np.load(io.BytesIO(payload)) as data:
        return data["audio"], data["recording_id"]


def iter_shards(dataset_dir: str | Path, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(audio [n, example_samples], recording_id [n])`` per verified shard of a split."""
    manifest = read_manifest(dataset_dir)
    if split not in manifest["splits"]:
        raise KeyError(f"split {split!r} not in {sorted(manifest['splits'])}")
    for shard in manifest["splits"][split]:
        yield load_shard(Path(dataset_dir) / shard["path"], shard["sha256"])


def iter_examples(dataset_dir: str | Path, split: str) -> Iterator[np.ndarray]:
    """Yield every example of a split as float32 ``[example_samples]`` (shards checksum-verified).

    Examples
    --------
    >>> for example in iter_examples("data/corpus", "train"):  # doctest: +SKIP
    ...     assert example.shape == (48000,)
    """
    for audio, _ in iter_shards(dataset_dir, split):
        yield from audio


def load_split(dataset_dir: str | Path, split: str) -> np.ndarray:
    """All examples of a split as one float32 ``[examples, example_samples]`` array."""
    manifest = read_manifest(dataset_dir)
    parts = [audio for audio, _ in iter_shards(dataset_dir, split)]
    if not parts:
        return np.zeros((0, int(manifest["example_samples"])), dtype=np.float32)
    return np.concatenate(parts)


def load_split_with_ids(dataset_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`load_split`, also returning int32 ``[examples]`` recording ids."""
    manifest = read_manifest(dataset_dir)
    pairs = list(iter_shards(dataset_dir, split))
    if not pairs:
        return np.zeros((0, int(manifest["example_samples"])), dtype=np.float32), np.zeros(0, dtype=np.int32)
    return np.concatenate([a for a, _ in pairs]), np.concatenate([r for _, r in pairs])
