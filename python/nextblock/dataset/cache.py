"""Where the dataset tool keeps what it downloads and unpacks.

Layout (binding: other tools read it)::

    $NEXTBLOCK_CACHE (default ~/.cache/nextblock)
    ├── archives/              downloaded or copied multitrack archives + index.json
    ├── quarantine/            archives that failed their checksum or size (never used)
    ├── unpacked/<archive>/    archives unpacked by ``sort``
    ├── debian/
    │   ├── debs/*.deb         ``apt-get download`` output
    │   └── extracted/<pkg>/   ``dpkg-deb -x`` output, one folder per package
    ├── rendered/music21/<program>/*.flac   scores rendered by ``fetch --music21``
    ├── manifests/             ``stems.csv`` (sort), ``verified.csv`` + ``report/`` (verify)
    └── shards/                default output of ``package`` (where ``nextblock.train`` looks)
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV_VAR = "NEXTBLOCK_CACHE"
"""Environment variable that overrides the cache root."""


def cache_root(override: str | os.PathLike | None = None) -> Path:
    """Return the cache root directory (not created).

    Parameters
    ----------
    override:
        Explicit directory (e.g. from a ``--cache`` flag). When ``None`` the
        ``$NEXTBLOCK_CACHE`` environment variable is used, else
        ``~/.cache/nextblock``.
    """
    if override is not None:
        return Path(override).expanduser()
    from_env = os.environ.get(CACHE_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    return Path.home() / ".cache" / "nextblock"


def archives_dir(root: Path) -> Path:
    """Folder of downloaded/copied archives (``<cache>/archives``)."""
    return root / "archives"


def quarantine_dir(root: Path) -> Path:
    """Folder where archives that failed verification are moved (``<cache>/quarantine``)."""
    return root / "quarantine"


def unpacked_dir(root: Path) -> Path:
    """Folder where ``sort`` unpacks archives (``<cache>/unpacked``)."""
    return root / "unpacked"


def debian_debs_dir(root: Path) -> Path:
    """Folder of downloaded Debian packages (``<cache>/debian/debs``)."""
    return root / "debian" / "debs"


def debian_extracted_dir(root: Path) -> Path:
    """Folder of unpacked Debian packages (``<cache>/debian/extracted``)."""
    return root / "debian" / "extracted"
