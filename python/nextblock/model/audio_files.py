"""Reading training audio straight from folders (the ``--audio DIR...`` mode of training).

Until the packaged dataset (``python -m nextblock.dataset``) is available, and as a direct mode,
training reads the allowed Debian packages unpacked in the cache
(``$NEXTBLOCK_CACHE/debian/extracted/<package>/``, see DEVELOPERS.md) or any folder of audio.

Splits are made **by recording**: a file's split is a hash of its path relative to its root,
so it never changes between runs and a recording never straddles two splits.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nextblock.paths import cache_root

#: file name endings read as audio (what libsndfile decodes).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".mp3")
#: the splits :func:`split_of` assigns.
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class AudioFile:
    """One recording: its path, the root folder it was found under, and its split."""

    path: Path
    root: Path
    split: str

    @property
    def group(self) -> str:
        """The root folder's name (e.g. the Debian package) – used to balance sources."""
        return self.root.name


def cache_extracted_dir() -> Path:
    """``$NEXTBLOCK_CACHE/debian/extracted`` (default cache ``~/.cache/nextblock``)."""
    return cache_root() / "debian" / "extracted"


def by_split_and_group(
    files: list[AudioFile], group_weights: dict[str, float] | None = None
) -> tuple[dict[tuple[str, str], list[AudioFile]], dict[str, float]]:
    """``files`` by ``(split, group)``, and each group's share of a split (its weight, default 1,
    over the sum of all groups' weights; groups sorted by name)."""
    weights = dict(group_weights or {})
    grouped: dict[tuple[str, str], list[AudioFile]] = {}
    for f in files:
        grouped.setdefault((f.split, f.group), []).append(f)
    groups = sorted({f.group for f in files})
    total = sum(float(weights.get(g, 1.0)) for g in groups)
    return grouped, {g: float(weights.get(g, 1.0)) / total for g in groups}


def split_of(relative_path: str, validation_percent: int = 10, test_percent: int = 10) -> str:
    """Deterministic split of one recording from a hash of its relative path.

    Returns ``"test"`` for the first ``test_percent`` of hash buckets, ``"validation"`` for the
    next ``validation_percent``, else ``"train"``.
    """
    bucket = int(hashlib.sha1(relative_path.encode("utf-8")).hexdigest()[:8], 16) % 100
    if bucket < test_percent:
        return "test"
    if bucket < test_percent + validation_percent:
        return "validation"
    return "train"


def find_audio_files(
    roots: list[str | os.PathLike], validation_percent: int = 10, test_percent: int = 10
) -> list[AudioFile]:
    """All audio files under ``roots`` (recursively), sorted, each with its split.

    Raises ``FileNotFoundError`` for a root that does not exist and ``ValueError`` when no audio
    file is found at all.
    """
    found: list[AudioFile] = []
    for root in roots:
        root_path = Path(root).expanduser().resolve()
        if not root_path.is_dir():
            raise FileNotFoundError(f"audio folder not found: {root}")
        for path in sorted(root_path.rglob("*")):
            if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file():
                rel = path.relative_to(root_path).as_posix()
                found.append(
                    AudioFile(path, root_path, split_of(f"{root_path.name}/{rel}", validation_percent, test_percent))
                )
    if not found:
        raise ValueError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {', '.join(map(str, roots))}")
    return found


def read_excerpt(path: Path, sample_rate_hz: int, max_seconds: float, rng: np.random.Generator) -> np.ndarray | None:
    """Read a random excerpt of at most ``max_seconds`` from ``path``, mono, at ``sample_rate_hz``.

    Channels are averaged; other sample rates are resampled with a polyphase filter. Returns
    shape ``(samples,)`` float32, or ``None`` when the file cannot be decoded.
    """
    import soundfile as sf
    from scipy.signal import resample_poly

    try:
        with sf.SoundFile(str(path)) as f:
            native_rate = f.samplerate
            total = f.frames
            want = int(max_seconds * native_rate)
            start = int(rng.integers(0, total - want)) if f.seekable() and total > want > 0 else 0
            if start:
                f.seek(start)
            data = f.read(min(want, total) if total > 0 else want, dtype="float32", always_2d=True)
    except (RuntimeError, ValueError, OSError, sf.LibsndfileError):
        return None
    audio = data.mean(axis=1)
    if native_rate != sample_rate_hz:
        g = math.gcd(int(native_rate), int(sample_rate_hz))
        audio = resample_poly(audio, sample_rate_hz // g, native_rate // g).astype(np.float32)
    return np.ascontiguousarray(audio, dtype=np.float32)
