"""Short real clips from allowed Debian packages, for tests and quick evaluations.

Packages are fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` (nothing is
installed) into the cache shared with the dataset tool::

    $NEXTBLOCK_CACHE (default ~/.cache/nextblock)
    └── debian/
        ├── debs/                 downloaded .deb files
        └── extracted/<package>/  dpkg-deb -x output

>>> speech = debian_clip("klettres-data", "usr/share/klettres/en/alpha/A.ogg")   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from ..dataset.cache import cache_root, debian_extracted_dir
from ..dataset.debian import DebianFetchError, apt_available, download_deb, extract_deb

#: small clips used by the tests and the note (package, path inside the package)
SPEECH_CLIP = ("klettres-data", "usr/share/klettres/en/alpha/A.ogg")  # 2 s, 44.1 kHz mono, English speech
MUSIC_CLIP = ("sonic-pi-samples", "usr/share/sonic-pi/samples/loop_amen.flac")  # 1.75 s, 44.1 kHz stereo drum loop


class ClipUnavailable(RuntimeError):
    """The package could not be fetched (no apt, no mirror) or lacks the file."""


def debian_package_dir(package: str, timeout_s: float = 600.0) -> Path:
    """The unpacked tree of a Debian package, fetching and unpacking it on first use.

    Uses the dataset tool's cache and fetch steps (:mod:`nextblock.dataset.debian`).

    Raises
    ------
    ClipUnavailable
        If ``apt-get``/``dpkg-deb`` are missing or the download or unpacking fails.
    """
    cache = cache_root()
    extracted = debian_extracted_dir(cache) / package
    if extracted.is_dir() and any(extracted.iterdir()):
        return extracted
    if not apt_available():
        raise ClipUnavailable(f"cannot fetch {package}: apt-get/dpkg-deb not available")
    try:
        deb, _ = download_deb(cache, package, timeout_s=timeout_s)
        folder, _ = extract_deb(cache, package, deb)
    except DebianFetchError as error:
        raise ClipUnavailable(f"cannot fetch {package}: {error}") from None
    return folder


def debian_clip(package: str, relative_path: str) -> Path:
    """Path of one file of a Debian package (fetched on first use).

    Raises
    ------
    ClipUnavailable
        If the package cannot be fetched or does not contain ``relative_path``.
    """
    path = debian_package_dir(package) / relative_path
    if not path.is_file():
        raise ClipUnavailable(f"{package} has no {relative_path}")
    return path
