"""A real recording for end-to-end runs, taken from an allowed Debian package.

The package is fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into
the shared cache (``$NEXTBLOCK_CACHE``, default ``~/.cache/nextblock``:
``debian/debs/`` and ``debian/extracted/<pkg>/``) through ``nextblock.dataset.debian``, so a
package the dataset step already fetched is reused. The default is
``singularity-music`` (Ogg Vorbis music; see DEVELOPERS.md for the allowed list). With
``split="test"`` only the package's *test-split* recordings are used
(:func:`nextblock.model.audio_files.split_of`, the split training never reads): material the
shipped model never trained on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nextblock.paths import cache_root

__all__ = ["DEFAULT_PACKAGE", "find_audio_files", "load_test_recording"]

DEFAULT_PACKAGE = "singularity-music"
_AUDIO_SUFFIXES = (".ogg", ".oga", ".flac", ".wav")


def package_folder(package: str = DEFAULT_PACKAGE) -> Path:
    """Unpacked folder of ``package`` in the cache, downloading/unpacking it if needed."""
    from nextblock.dataset.debian import download_deb, extract_deb

    root = cache_root()
    folder = root / "debian" / "extracted" / package
    if folder.is_dir() and any(folder.rglob("*")):
        return folder
    deb, _ = download_deb(root, package)
    folder, _ = extract_deb(root, package, deb)
    return folder


def find_audio_files(folder: Path, split: str | None = None) -> list[Path]:
    """Audio files below ``folder``, sorted by path (deterministic choice). ``split``: only those
    of that training split (``"train"``, ``"validation"``, ``"test"``), keyed as training keys
    them (``<package folder>/<path inside it>``)."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _AUDIO_SUFFIXES and p.is_file())
    if split is None:
        return files
    from nextblock.model.audio_files import split_of

    return [p for p in files if split_of(f"{folder.name}/{p.relative_to(folder).as_posix()}") == split]


def load_test_recording(
    duration_s: float = 10.0,
    offset_s: float = 20.0,
    package: str = DEFAULT_PACKAGE,
    rate_hz: int = 48000,
    peak: float = 0.5,
    file_index: int = 0,
    split: str | None = None,
) -> tuple[np.ndarray, dict]:
    """Mono float32 excerpt of a real recording, resampled to ``rate_hz``, peak-normalised.
    ``split="test"``: only from recordings training never reads (see the module docstring).

    Starts at ``offset_s`` (or earlier if the file is short) and skips leading silence so
    the first sample already carries sound. Returns ``(audio, info)`` with the source path.
    """
    import soundfile as sf
    from scipy.signal import resample_poly

    files = find_audio_files(package_folder(package), split)
    if not files:
        raise FileNotFoundError(
            f"no audio files{f' of the {split} split' if split else ''} in Debian package {package}"
        )
    path = files[file_index % len(files)]
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if sr != rate_hz:
        g = np.gcd(int(sr), int(rate_hz))
        mono = resample_poly(mono, rate_hz // g, sr // g).astype(np.float32)
    need = int(round(duration_s * rate_hz))
    start = int(round(offset_s * rate_hz))
    if start + need > len(mono):
        start = max(0, len(mono) - need)
    loud = np.flatnonzero(np.abs(mono[start:]) > 1e-2)
    if len(loud):
        start += int(loud[0])
    excerpt = mono[start : start + need]
    if len(excerpt) < need:
        excerpt = np.pad(excerpt, (0, need - len(excerpt)))
    excerpt = (excerpt * (peak / max(float(np.max(np.abs(excerpt))), 1e-9))).astype(np.float32)
    return excerpt, {
        "package": package,
        "path": str(path),
        "offset_samples": start,
        "rate_hz": rate_hz,
        "split": split or "any",
    }
