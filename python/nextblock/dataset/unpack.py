"""Unpack multitrack archives safely.

Supported: ``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``/``.tbz2``,
``.tar.xz``/``.txz`` (detected from content, not only the name).

Safety checks, all before anything is written:

* **path traversal** – a member whose normalised path is absolute or climbs out
  of the destination (``../``) rejects the whole archive;
* **links and devices** – tar symlinks, hard links and special files are
  rejected (multitrack sessions are plain files);
* **zip bombs** – the declared uncompressed total must stay under
  ``max_total_bytes`` and every member's compression ratio under
  ``max_ratio``; while extracting, bytes are counted again so a lying header
  cannot get past the limit.

Extraction goes to a temporary sibling folder that is renamed into place at the
end, so a failed archive leaves nothing half-unpacked and a second run skips
finished archives.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DEFAULT_MAX_TOTAL_BYTES = 20 * 1024**3
"""Largest total uncompressed size accepted (20 GiB: a big multitrack session is ~2–5 GiB)."""

DEFAULT_MAX_RATIO = 200.0
"""Largest per-member compression ratio accepted (audio compresses < 3:1; bombs > 1000:1)."""

_COPY_CHUNK_BYTES = 1 << 20


class UnsafeArchiveError(Exception):
    """The archive is dangerous (traversal, link, bomb) and was not unpacked."""


class CorruptArchiveError(Exception):
    """The archive is truncated, corrupt or of an unknown format."""


@dataclass(frozen=True)
class UnpackLimits:
    """Zip-bomb limits: total uncompressed bytes and per-member compression ratio."""

    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_ratio: float = DEFAULT_MAX_RATIO


def _safe_member_path(name: str) -> PurePosixPath:
    """Normalised relative member path, or raise UnsafeArchiveError."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or (path.parts and path.parts[0].endswith(":")):
        raise UnsafeArchiveError(f"member {name!r} has an absolute path")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"member {name!r} escapes the destination (path traversal)")
    return path


def _copy_limited(source, destination: Path, budget: list[int], name: str) -> None:
    with open(destination, "wb") as handle:
        while True:
            chunk = source.read(_COPY_CHUNK_BYTES)
            if not chunk:
                return
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise UnsafeArchiveError(f"member {name!r} inflates beyond the size limit (zip bomb)")
            handle.write(chunk)


def _unpack_zip(archive: Path, destination: Path, limits: UnpackLimits) -> int:
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            total = 0
            for info in members:
                _safe_member_path(info.filename)
                total += info.file_size
                if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
                    raise UnsafeArchiveError(
                        f"member {info.filename!r} has compression ratio {info.file_size / info.compress_size:.0f}:1 (zip bomb)"
                    )
            if total > limits.max_total_bytes:
                raise UnsafeArchiveError(
                    f"archive inflates to {total} bytes, limit {limits.max_total_bytes} (zip bomb)"
                )
            budget = [limits.max_total_bytes]
            count = 0
            for info in members:
                target = destination.joinpath(*_safe_member_path(info.filename).parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(info) as source:
                    _copy_limited(source, target, budget, info.filename)
                count += 1
            return count
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, zlib.error, OSError) as error:
        raise CorruptArchiveError(f"corrupt zip: {error}") from None


def _unpack_tar(archive: Path, destination: Path, limits: UnpackLimits) -> int:
    try:
        with tarfile.open(archive, mode="r:*") as bundle:
            members = bundle.getmembers()
            total = 0
            for member in members:
                _safe_member_path(member.name)
                if member.issym() or member.islnk():
                    raise UnsafeArchiveError(f"member {member.name!r} is a link")
                if not (member.isfile() or member.isdir()):
                    raise UnsafeArchiveError(f"member {member.name!r} is a special file")
                total += member.size
            if total > limits.max_total_bytes:
                raise UnsafeArchiveError(
                    f"archive inflates to {total} bytes, limit {limits.max_total_bytes} (tar bomb)"
                )
            archive_bytes = max(archive.stat().st_size, 1)
            if total / archive_bytes > limits.max_ratio:
                raise UnsafeArchiveError(f"archive compression ratio {total / archive_bytes:.0f}:1 (tar bomb)")
            budget = [limits.max_total_bytes]
            count = 0
            for member in members:
                target = destination.joinpath(*_safe_member_path(member.name).parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = bundle.extractfile(member)
                if source is None:
                    continue
                with source:
                    _copy_limited(source, target, budget, member.name)
                count += 1
            return count
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise CorruptArchiveError(f"corrupt tar: {error}") from None


def unpack_archive(archive: Path, destination: Path, limits: UnpackLimits = UnpackLimits()) -> tuple[Path, bool]:
    """Unpack ``archive`` into ``destination`` (created), refusing unsafe archives.

    Parameters
    ----------
    archive:
        Archive file.
    destination:
        Folder to create; when it already exists the archive counts as
        unpacked and nothing is done.
    limits:
        Zip-bomb limits.

    Returns
    -------
    destination, unpacked_now:
        The folder and whether it was unpacked by this call.

    Raises
    ------
    UnsafeArchiveError
        Path traversal, absolute paths, links, special files or bomb limits.
    CorruptArchiveError
        Truncated/corrupt archive or unknown format.
    """
    archive = Path(archive)
    destination = Path(destination)
    if destination.is_dir():
        return destination, False
    if zipfile.is_zipfile(archive):
        unpacker = _unpack_zip
    else:
        try:
            is_tar = tarfile.is_tarfile(archive)
        except (OSError, EOFError):
            is_tar = False
        if not is_tar:
            raise CorruptArchiveError(f"{archive.name} is neither a zip nor a tar archive (or it is truncated)")
        unpacker = _unpack_tar
    destination.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}-"))
    try:
        unpacker(archive, scratch, limits)
        scratch.replace(destination)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return destination, True
