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

import glob
import os
import shutil
import subprocess
from pathlib import Path

#: small clips used by the tests and the note (package, path inside the package)
SPEECH_CLIP = ("klettres-data", "usr/share/klettres/en/alpha/A.ogg")  # 2 s, 44.1 kHz mono, English speech
MUSIC_CLIP = ("sonic-pi-samples", "usr/share/sonic-pi/samples/loop_amen.flac")  # 1.75 s, 44.1 kHz stereo drum loop


class ClipUnavailable(RuntimeError):
    """The package could not be fetched (no apt, no mirror) or lacks the file."""


def cache_dir() -> Path:
    """``$NEXTBLOCK_CACHE``, else ``~/.cache/nextblock``."""
    return Path(os.environ.get("NEXTBLOCK_CACHE") or Path.home() / ".cache" / "nextblock")


def debian_package_dir(package: str, timeout_s: float = 600.0) -> Path:
    """The unpacked tree of a Debian package, fetching and unpacking it on first use.

    Raises
    ------
    ClipUnavailable
        If ``apt-get``/``dpkg-deb`` are missing or the download fails.
    """
    root = cache_dir() / "debian"
    extracted = root / "extracted" / package
    if extracted.is_dir() and any(extracted.iterdir()):
        return extracted
    debs = root / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise ClipUnavailable(f"cannot fetch {package}: apt-get/dpkg-deb not available")
    existing = sorted(glob.glob(str(debs / f"{package}_*.deb")))
    if not existing:
        try:
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True, capture_output=True, timeout=timeout_s)
        except (subprocess.SubprocessError, OSError) as error:
            raise ClipUnavailable(f"cannot fetch {package} with apt-get download: {error}") from None
        existing = sorted(glob.glob(str(debs / f"{package}_*.deb")))
        if not existing:
            raise ClipUnavailable(f"apt-get download {package} produced no .deb")
    partial = extracted.with_name(package + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        subprocess.run(["dpkg-deb", "-x", existing[-1], str(partial)], check=True, capture_output=True, timeout=timeout_s)
    except (subprocess.SubprocessError, OSError) as error:
        raise ClipUnavailable(f"cannot unpack {existing[-1]}: {error}") from None
    if not extracted.exists():
        partial.rename(extracted)
    else:  # another process won the race
        shutil.rmtree(partial, ignore_errors=True)
    return extracted


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
