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

from pathlib import Path

from ..paths import CACHE_ENV_VAR, cache_root  # noqa: F401 (re-exported: the dataset tool's callers import it here)


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
