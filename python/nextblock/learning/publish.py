"""Atomic, versioned publishing of models to a watched directory (``docs/model_publishing.md``).

Layout of the model directory (default ``$NEXTBLOCK_CACHE/models/live``)::

    model-v<VERSION>.tflite      one file per published version (the last ``keep`` are kept)
    current.json                 which version is current, with its SHA-256 and validation
    learner-state/               the learner's own files (Keras weights per version); clients ignore it
    .publish.lock                flock'ed while publishing, so two learners never race

Every file is written as ``.<name>.tmp``, ``fsync``'ed, ``rename``'d over its final name and the
directory is ``fsync``'ed, so a client sees either the old or the new file, never a partial one;
``current.json`` is replaced only after its model file is durable, and a model file is deleted
only when it is older than the newest ``keep`` versions and not the current one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from nextblock.paths import cache_root

#: value of ``current.json``'s ``"format"``.
PUBLISHED_FORMAT = "nextblock-published/1"
#: the pointer file clients watch.
CURRENT_FILE = "current.json"
#: sub-folder for the learner's own state (ignored by clients).
STATE_DIR = "learner-state"

_MODEL_RE = re.compile(r"^model-v(\d+)\.tflite$")


def default_model_dir() -> Path:
    """``$NEXTBLOCK_CACHE/models/live`` (default cache ``~/.cache/nextblock``), not created."""
    return cache_root() / "models" / "live"


def model_file_name(version: int) -> str:
    """``model-v<version>.tflite``."""
    return f"model-v{int(version)}.tflite"


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: ``.<name>.tmp``, fsync, rename, fsync the directory."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@dataclass(frozen=True)
class Published:
    """What ``current.json`` says (``None`` fields when nothing was published yet)."""

    version: int
    path: Path
    sha256: str
    bytes: int
    record: dict


def read_current(model_dir: str | os.PathLike) -> Published | None:
    """The current publication in ``model_dir``, or ``None`` if there is none.

    Raises
    ------
    ValueError
        ``current.json`` exists but is not valid (one-line reason). The model file itself is not
        verified here; use :func:`verify_published`.
    """
    path = Path(model_dir) / CURRENT_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if record.get("format") != PUBLISHED_FORMAT:
        raise ValueError(f"{path} has format {record.get('format')!r}, expected {PUBLISHED_FORMAT!r}")
    try:
        return Published(
            int(record["version"]),
            Path(model_dir) / record["file"],
            str(record["sha256"]),
            int(record["bytes"]),
            record,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path} lacks or has a bad field: {err}") from None


def verify_published(published: Published) -> bytes:
    """Read the published model file and check its size and SHA-256; returns its bytes.

    Raises ``ValueError`` (one line) on a missing file, a size or a checksum mismatch.
    """
    try:
        data = published.path.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read published model {published.path}: {err.strerror}") from None
    if len(data) != published.bytes:
        raise ValueError(f"{published.path} has {len(data)} bytes, current.json says {published.bytes}")
    if sha256_hex(data) != published.sha256:
        raise ValueError(f"{published.path} does not match the SHA-256 in current.json")
    return data


class Publisher:
    """Publishes new model versions into a watched directory.

    Parameters
    ----------
    model_dir:
        The directory clients watch (created if missing).
    keep:
        How many model versions to keep on disk (the current one is always kept), >= 2 so a
        client that just read ``current.json`` never finds its file deleted.
    """

    def __init__(self, model_dir: str | os.PathLike, keep: int = 5):
        if keep < 2:
            raise ValueError(f"keep must be at least 2, got {keep}")
        self.model_dir = Path(model_dir)
        self.model_dir.mkdir(parents=True, exist_ok=True)
        self.keep = int(keep)

    @property
    def state_dir(self) -> Path:
        """``<model_dir>/learner-state`` (created on demand)."""
        path = self.model_dir / STATE_DIR
        path.mkdir(exist_ok=True)
        return path

    def current(self) -> Published | None:
        """See :func:`read_current`."""
        return read_current(self.model_dir)

    def _next_version(self) -> int:
        highest = 0
        try:
            current = self.current()
        except ValueError:
            current = None
        if current is not None:
            highest = current.version
        for entry in self.model_dir.iterdir():
            match = _MODEL_RE.match(entry.name)
            if match:
                highest = max(highest, int(match.group(1)))
        return highest + 1

    def publish(
        self, tflite: bytes, validation: dict, parent_version: int | None, state_files: dict[str, bytes] | None = None
    ) -> Published:
        """Publish ``tflite`` as the next version and make it current.

        Parameters
        ----------
        tflite:
            The model file's bytes (a ``.tflite`` with NextBlock metadata).
        validation:
            ``{"snr_db_candidate", "snr_db_previous", "gain_db", "window_s"}`` (copied into
            ``current.json``).
        parent_version:
            The version the candidate was fine-tuned from (``None``: the shipped model).
        state_files:
            Extra learner files for this version, ``{suffix: bytes}``, stored as
            ``learner-state/model-v<VERSION><suffix>`` (e.g. ``".weights.h5"``) before
            ``current.json`` is switched.

        Returns
        -------
        Published
            The new current publication.
        """
        missing = {"snr_db_candidate", "snr_db_previous", "gain_db", "window_s"} - set(validation)
        if missing:
            raise ValueError(f"validation lacks {sorted(missing)}")
        with open(self.model_dir / ".publish.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                version = self._next_version()
                name = model_file_name(version)
                atomic_write(self.model_dir / name, tflite)
                for suffix, data in (state_files or {}).items():
                    atomic_write(self.state_dir / f"model-v{version}{suffix}", data)
                record = {
                    "format": PUBLISHED_FORMAT,
                    "version": version,
                    "file": name,
                    "sha256": sha256_hex(tflite),
                    "bytes": len(tflite),
                    "created_unix_s": time.time(),
                    "validation": {
                        k: float(validation[k]) for k in ("snr_db_candidate", "snr_db_previous", "gain_db", "window_s")
                    },
                    "parent_version": None if parent_version is None else int(parent_version),
                }
                atomic_write(self.model_dir / CURRENT_FILE, (json.dumps(record, indent=1) + "\n").encode())
                self._prune(version)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return Published(version, self.model_dir / name, record["sha256"], record["bytes"], record)

    def _prune(self, current_version: int) -> None:
        versions = sorted(int(m.group(1)) for m in (_MODEL_RE.match(e.name) for e in self.model_dir.iterdir()) if m)
        for version in versions[: max(0, len(versions) - self.keep)]:
            if version == current_version:
                continue
            (self.model_dir / model_file_name(version)).unlink(missing_ok=True)
            for extra in (
                (self.model_dir / STATE_DIR).glob(f"model-v{version}.*")
                if (self.model_dir / STATE_DIR).is_dir()
                else ()
            ):
                extra.unlink(missing_ok=True)
