"""``sort``: unpack archives and list every stem with its label, genre and format.

Three kinds of sources end up in one manifest (:mod:`nextblock.dataset.manifest`):

* **multitrack archives** in ``<cache>/archives`` (fetched from a catalog):
  each is unpacked safely (:mod:`nextblock.dataset.unpack`) into
  ``<cache>/unpacked/<archive>/``; every audio file is a stem labelled from its
  path inside the archive (:func:`nextblock.dataset.labels.classify_stem`);
  genre/title/artist come from ``archives/index.json``; ``song_id`` is the
  session title (all stems of a session stay in one split);
* **Debian packages** in ``<cache>/debian/extracted/<package>``: each audio
  file is one "stem" labelled by its package's kind
  (:func:`nextblock.dataset.labels.label_for_debian_file`); ``song_id`` is
  the file itself (whole recordings);
* **music21 renders** in ``<cache>/rendered/music21`` (:func:`sort_rendered`):
  label ``mix``, one song per piece.

Problems never stop the run: an unsafe or corrupt archive is reported and
skipped; an unreadable audio file becomes a ``rejected`` row with its reason.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from .cache import archives_dir, debian_extracted_dir, unpacked_dir
from .debian import source_for_package
from .download import INDEX_FILE_NAME
from .labels import DEFAULT_RULES, LabelRule, classify_stem, label_for_debian_file
from .manifest import STATUS_OK, STATUS_REJECTED, StemRow
from .unpack import CorruptArchiveError, UnpackLimits, UnsafeArchiveError, unpack_archive

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".mp3", ".w64", ".rf64", ".caf")
"""File extensions treated as audio (anything libsndfile reads)."""

_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


@dataclass(frozen=True)
class SortProblem:
    """A source that could not be sorted at all (e.g. an unsafe archive)."""

    source: str
    reason: str


def is_audio_file(path: Path) -> bool:
    """True for visible files with an audio extension (skips macOS ``._`` forks)."""
    return path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith(".") and "__MACOSX" not in path.parts


def list_audio_files(root: Path) -> list[Path]:
    """Audio files under ``root``, sorted, as paths relative to ``root``."""
    found = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if is_audio_file(path.relative_to(root)):
                found.append(path.relative_to(root))
    return sorted(found)


def probe_row(row: StemRow) -> StemRow:
    """Fill duration/sample rate/channels from the file; reject unreadable/empty files."""
    try:
        info = sf.info(row.path)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        return row.replace(status=STATUS_REJECTED, reason=f"unreadable audio: {message}")
    if info.frames <= 0:
        return row.replace(
            status=STATUS_REJECTED, reason="empty audio file", sample_rate_hz=info.samplerate, channels=info.channels
        )
    return row.replace(duration_s=info.frames / info.samplerate, sample_rate_hz=info.samplerate, channels=info.channels)


def archive_folder_name(archive: Path) -> str:
    """Unpack folder name for an archive (file name without archive suffix)."""
    lowered = archive.name.lower()
    for suffix in sorted(_ARCHIVE_SUFFIXES, key=len, reverse=True):
        if lowered.endswith(suffix):
            return archive.name[: -len(suffix)]
    return archive.name


def list_archives(cache: Path) -> list[Path]:
    """Complete archives in ``<cache>/archives`` (no ``.part`` files, no index)."""
    folder = archives_dir(cache)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(_ARCHIVE_SUFFIXES))


def sort_archives(
    cache: Path,
    rules: tuple[LabelRule, ...] | list[LabelRule] = DEFAULT_RULES,
    limits: UnpackLimits | None = None,
    show_progress: bool = True,
) -> tuple[list[StemRow], list[SortProblem]]:
    """Unpack and list the stems of every archive in the cache.

    Returns
    -------
    rows, problems:
        One :class:`StemRow` per audio file (``ok`` or ``rejected``) and the
        archives that were skipped, each with a reason.
    """
    limits = limits or UnpackLimits()
    index_path = archives_dir(cache) / INDEX_FILE_NAME
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    rows: list[StemRow] = []
    problems: list[SortProblem] = []
    for archive in tqdm(list_archives(cache), desc="unpack", unit="archive", disable=not show_progress):
        try:
            folder, _ = unpack_archive(archive, unpacked_dir(cache) / archive_folder_name(archive), limits)
        except (UnsafeArchiveError, CorruptArchiveError) as error:
            problems.append(SortProblem(archive.name, str(error)))
            continue
        meta = index.get(archive.name, {})
        title = meta.get("title") or archive_folder_name(archive)
        for relative in list_audio_files(folder):
            rows.append(
                StemRow(
                    stem_id=f"{archive.name}/{relative.as_posix()}",
                    source_kind="multitrack",
                    source=archive.name,
                    song_id=title,
                    path=str(folder / relative),
                    relative_path=relative.as_posix(),
                    label=classify_stem(relative, rules),
                    genre=meta.get("genre", ""),
                    title=title,
                    artist=meta.get("artist", ""),
                )
            )
    return rows, problems


def sort_debian(
    cache: Path, packages: list[str] | None = None, rules: tuple[LabelRule, ...] | list[LabelRule] = DEFAULT_RULES
) -> tuple[list[StemRow], list[SortProblem]]:
    """List the audio files of unpacked Debian packages as stems.

    Parameters
    ----------
    cache:
        Cache root.
    packages:
        Package names; ``None`` = every folder in ``<cache>/debian/extracted``.
    rules:
        Label table for packages labelled by name.
    """
    root = debian_extracted_dir(cache)
    if packages is not None:
        names = list(packages)
    elif root.is_dir():
        names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    else:
        names = []
    rows: list[StemRow] = []
    problems: list[SortProblem] = []
    for package in names:
        folder = root / package
        if not folder.is_dir():
            hint = f"run: python -m nextblock.dataset fetch --debian {package}"
            problems.append(SortProblem(package, f"not extracted in {root} ({hint})"))
            continue
        source = source_for_package(package)
        for relative in list_audio_files(folder):
            rows.append(
                StemRow(
                    stem_id=f"{package}/{relative.as_posix()}",
                    source_kind="debian",
                    source=package,
                    song_id=f"{package}/{relative.as_posix()}",
                    path=str(folder / relative),
                    relative_path=relative.as_posix(),
                    label=label_for_debian_file(relative, source.default_label, source.label_by_name, rules),
                    genre=source.kind,
                    title=package,
                )
            )
    return rows, problems


def probe_rows(rows: list[StemRow], show_progress: bool = True) -> list[StemRow]:
    """:func:`probe_row` on every row that is still ``ok``, with a progress bar."""
    bar = tqdm(rows, desc="probe", unit="stem", disable=not show_progress)
    return [probe_row(row) if row.status == STATUS_OK else row for row in bar]


def sort_rendered(cache: Path) -> list[StemRow]:
    """List music21 renders (``<cache>/rendered/music21/<program>/*.flac``) as ``mix`` stems.

    Each render is its own song (``song_id`` = ``music21/<program>/<file>``); ``genre`` is
    ``rendered`` and ``title`` the render's file name without extension.
    """
    root = cache / "rendered" / "music21"
    if not root.is_dir():
        return []
    rows = []
    for relative in list_audio_files(root):
        stem_id = f"music21/{relative.as_posix()}"
        rows.append(
            StemRow(
                stem_id=stem_id,
                source_kind="rendered",
                source="music21",
                song_id=stem_id,
                path=str(root / relative),
                relative_path=relative.as_posix(),
                label="mix",
                genre="rendered",
                title=relative.stem,
                artist=relative.parts[0],
            )
        )
    return rows
