"""Fetch the project's own corpus: Debian packages that contain real recordings.

Packages are downloaded with ``apt-get download`` into ``<cache>/debian/debs/``
and unpacked with ``dpkg-deb -x`` into ``<cache>/debian/extracted/<package>/``
(nothing is installed). Game data archives inside a package (Quake-style ``.pk3``, which are
zip files: ``ufoai-music`` and ``nexuiz-music`` keep all their music in one) are unpacked
beside it, into ``<package>/pk3/<archive path>/``, with the archive safety checks of
:mod:`nextblock.dataset.unpack`, so the audio in them is found like any other file. Every step
is skipped when its output already exists, so a second run (or a run after another process
populated the shared cache) does nothing.

:data:`DEFAULT_CORPUS` is the allowed training sources of ``DEVELOPERS.md``,
each with its *kind* and how ``sort`` labels its audio files (see
:mod:`nextblock.dataset.labels`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .cache import debian_debs_dir, debian_extracted_dir
from .unpack import CorruptArchiveError, UnsafeArchiveError, unpack_archive

#: suffixes of game data archives (zip files) whose contents are unpacked beside the package
GAME_ARCHIVE_SUFFIXES = (".pk3",)
#: folder of a package's extraction that holds its unpacked game archives
GAME_ARCHIVE_DIR = "pk3"


@dataclass(frozen=True)
class DebianSource:
    """An allowed Debian package and how its recordings are labelled.

    Attributes
    ----------
    package:
        Debian package name.
    kind:
        ``"speech"``, ``"music"`` or ``"instruments"`` (DEVELOPERS.md's table).
    default_label:
        Label of a file whose name matches no rule of the label table.
    label_by_name:
        When False every file gets ``default_label`` (speech and full-mix music:
        a file named ``bass.ogg`` in a speech package is still speech); when
        True file/folder names are classified first (instrument sample packs).
    """

    package: str
    kind: str
    default_label: str
    label_by_name: bool


DEFAULT_CORPUS: tuple[DebianSource, ...] = (
    *(
        DebianSource(p, "speech", "vocals", False)
        for p in ("fillets-ng-data-cs", "fillets-ng-data-nl", "fillets-ng-data", "klettres-data")
    ),
    *(
        DebianSource(p, "music", "mix", False)
        for p in (
            "ufoai-music",
            "warzone2100-music",
            "wesnoth-1.16-music",
            "nexuiz-music",
            "colobot-common-sounds",
            "singularity-music",
            "freedroidrpg-data",
            "openclonk-data",
            "planetblupi-music-ogg",
            "supertuxkart-data",
        )
    ),
    DebianSource("hydrogen-drumkits", "instruments", "drums", True),
    DebianSource("avldrums.lv2-soundfont", "instruments", "drums", True),
    DebianSource("sonic-pi-samples", "instruments", "other", True),
)
"""The allowed packages of DEVELOPERS.md (speech, music, instruments)."""

_BY_NAME = {source.package: source for source in DEFAULT_CORPUS}


class DebianFetchError(Exception):
    """apt-get/dpkg-deb is missing or failed for one package."""


def source_for_package(package: str) -> DebianSource:
    """The :class:`DebianSource` of a package (unknown packages: instruments, labelled by name)."""
    return _BY_NAME.get(package, DebianSource(package, "instruments", "other", True))


def apt_available() -> bool:
    """True when ``apt-get`` and ``dpkg-deb`` are on PATH."""
    return shutil.which("apt-get") is not None and shutil.which("dpkg-deb") is not None


def find_deb(cache: Path, package: str) -> Path | None:
    """The downloaded ``.deb`` of ``package`` in the cache, or None (newest name wins)."""
    candidates = sorted(debian_debs_dir(cache).glob(f"{package}_*.deb"))
    return candidates[-1] if candidates else None


def download_deb(cache: Path, package: str, timeout_s: float = 600.0) -> tuple[Path, bool]:
    """``apt-get download`` one package into ``<cache>/debian/debs`` unless present.

    Returns
    -------
    path, downloaded:
        The ``.deb`` and whether it was downloaded now (False: already cached).

    Raises
    ------
    DebianFetchError
        apt-get is missing, the package is unknown or the download failed.
    """
    existing = find_deb(cache, package)
    if existing is not None:
        return existing, False
    if shutil.which("apt-get") is None:
        raise DebianFetchError("apt-get is not available on this machine")
    debs = debian_debs_dir(cache)
    debs.mkdir(parents=True, exist_ok=True)
    # Download into a private folder then move: a half-written .deb never looks cached.
    with tempfile.TemporaryDirectory(dir=debs, prefix=".download-") as scratch:
        try:
            completed = subprocess.run(
                ["apt-get", "download", "-q", package], cwd=scratch, capture_output=True, text=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            raise DebianFetchError(f"apt-get download {package} took longer than {timeout_s:.0f} s") from None
        fetched = sorted(Path(scratch).glob(f"{package}_*.deb"))
        if completed.returncode != 0 or not fetched:
            detail = (completed.stderr.strip().splitlines() or ["no .deb produced"])[-1]
            raise DebianFetchError(f"apt-get download {package} failed: {detail}")
        target = debs / fetched[-1].name
        fetched[-1].replace(target)
    return target, True


def extract_deb(cache: Path, package: str, deb: Path) -> tuple[Path, bool]:
    """``dpkg-deb -x`` a package into ``<cache>/debian/extracted/<package>`` unless present.

    Returns
    -------
    folder, extracted:
        The extraction folder and whether it was extracted now.
    """
    target = debian_extracted_dir(cache) / package
    if target.is_dir() and any(target.iterdir()):
        return target, False
    if shutil.which("dpkg-deb") is None:
        raise DebianFetchError("dpkg-deb is not available on this machine")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{package}-"))
    try:
        completed = subprocess.run(["dpkg-deb", "-x", str(deb), str(scratch)], capture_output=True, text=True)
        if completed.returncode != 0:
            raise DebianFetchError(f"dpkg-deb -x {deb.name} failed: {completed.stderr.strip()[:200]}")
        if target.exists():
            target.rmdir()  # empty leftover of an earlier attempt
        scratch.replace(target)  # atomic: a half-extracted package never looks cached
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target, True


def unpack_game_archives(folder: Path) -> int:
    """Unpack every game data archive (:data:`GAME_ARCHIVE_SUFFIXES`) under an extracted
    package into ``<folder>/pk3/<archive path relative to folder>/``, unless done before.

    Returns the number unpacked now. An unsafe or corrupt archive raises
    :class:`DebianFetchError` (nothing of it is left unpacked).
    """
    folder = Path(folder)
    unpacked_root = folder / GAME_ARCHIVE_DIR
    archives = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in GAME_ARCHIVE_SUFFIXES and p.is_file() and unpacked_root not in p.parents
    )
    count = 0
    for archive in archives:
        destination = unpacked_root / archive.relative_to(folder)
        try:
            _, now = unpack_archive(archive, destination)
        except (UnsafeArchiveError, CorruptArchiveError) as error:
            raise DebianFetchError(f"{archive.name} in {folder.name}: {error}") from None
        count += now
    return count


@dataclass(frozen=True)
class DebianFetchResult:
    """Outcome for one package: ``status`` is ``"fetched"``, ``"cached"`` or ``"failed"``."""

    package: str
    status: str
    folder: Path | None
    message: str = ""


def fetch_debian_packages(
    cache: Path, packages: list[str] | None = None, show_progress: bool = True
) -> list[DebianFetchResult]:
    """Download and unpack Debian packages (default: :data:`DEFAULT_CORPUS`).

    Failures are reported per package and the rest go on.

    Parameters
    ----------
    cache:
        Cache root.
    packages:
        Package names; ``None`` means the whole default corpus.
    show_progress:
        Draw a tqdm bar (one step per package).
    """
    names = [source.package for source in DEFAULT_CORPUS] if packages is None else list(packages)
    results: list[DebianFetchResult] = []
    for package in tqdm(names, desc="debian", unit="pkg", disable=not show_progress):
        try:
            deb, downloaded = download_deb(cache, package)
            folder, extracted = extract_deb(cache, package, deb)
            extracted = unpack_game_archives(folder) > 0 or extracted
        except (DebianFetchError, OSError) as error:
            results.append(DebianFetchResult(package, "failed", None, str(error)))
            continue
        results.append(DebianFetchResult(package, "fetched" if downloaded or extracted else "cached", folder))
    return results


def ensure_package(cache: Path, package: str) -> Path:
    """Download (if needed) and extract (if needed) one package; return its folder.

    Raises
    ------
    DebianFetchError
        apt-get/dpkg-deb missing or failing.
    """
    deb, _ = download_deb(cache, package)
    folder, _ = extract_deb(cache, package, deb)
    unpack_game_archives(folder)
    return folder
