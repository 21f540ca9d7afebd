"""Fetch catalog archives into the cache: resume, retries, checksums, parallelism.

One call of :func:`fetch_entries` brings every :class:`~nextblock.dataset.catalog.CatalogEntry`
into ``<cache>/archives/``:

* **idempotent** – an archive already in the cache (and matching its SHA-256 /
  size when the catalog gives them) is not downloaded again;
* **resume** – bytes arrive in ``<name>.part``; a later attempt asks the server
  for the rest with an HTTP ``Range`` header (a server that ignores it makes
  us start over);
* **retries** – network errors are retried ``retries`` times, waiting
  ``backoff_s * 2**attempt`` seconds between attempts;
* **verification** – size and SHA-256 are checked after the transfer; an
  archive that fails is moved to ``<cache>/quarantine/`` and never used;
* **local archives** – ``file://`` URLs and plain paths are copied in;
* **bounded parallelism** – at most ``jobs`` transfers at a time
  (``concurrent.futures.ThreadPoolExecutor``), one shared tqdm byte counter.

Every fetched archive is recorded in ``<cache>/archives/index.json`` (file name
→ catalog fields + SHA-256) which ``sort`` reads for genre and title.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .cache import archives_dir, quarantine_dir
from .catalog import CatalogEntry

INDEX_FILE_NAME = "index.json"
"""Name of the archive index inside ``<cache>/archives``."""

CHUNK_BYTES = 1 << 16
"""Read size for transfers and hashing."""

_ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".tar", ".zip")


@dataclass(frozen=True)
class FetchResult:
    """Outcome of fetching one catalog entry.

    Attributes
    ----------
    entry:
        The catalog entry.
    status:
        ``"downloaded"``, ``"copied"``, ``"cached"`` (nothing transferred),
        ``"quarantined"`` (checksum/size mismatch) or ``"failed"``.
    path:
        The archive in the cache (``None`` unless status is downloaded/copied/cached).
    message:
        One-line human explanation (empty on success).
    """

    entry: CatalogEntry
    status: str
    path: Path | None
    message: str = ""

    @property
    def ok(self) -> bool:
        """True when the archive is usable."""
        return self.status in ("downloaded", "copied", "cached")


class _TransferError(Exception):
    """A transfer attempt failed in a way worth retrying."""


def archive_file_name(entry: CatalogEntry) -> str:
    """Cache file name for an entry: ``<sha1(url)[:8]>_<url basename>``.

    The URL hash prefix keeps two catalogs' ``session.zip`` apart; the basename
    keeps the archive's extension (which ``sort`` uses to pick the unpacker).
    """
    parsed = urllib.parse.urlparse(entry.url)
    base = Path(urllib.parse.unquote(parsed.path if parsed.scheme else entry.url)).name or "archive"
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in base)
    if not safe.lower().endswith(_ARCHIVE_SUFFIXES):
        safe += ".zip"
    digest = hashlib.sha1(entry.url.encode("utf-8")).hexdigest()[:8]
    return f"{digest}_{safe}"


def sha256_of_file(path: Path) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _local_source(url: str) -> Path | None:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme in ("http", "https"):
        return None
    if len(parsed.scheme) <= 1:  # plain path (or a Windows drive letter)
        return Path(url).expanduser()
    raise ValueError(f"unsupported URL scheme {parsed.scheme!r}")


def _verification_problem(entry: CatalogEntry, path: Path) -> tuple[str | None, str]:
    """Return (problem or None, sha256) for a complete file."""
    size = path.stat().st_size
    if entry.size_bytes is not None and size != entry.size_bytes:
        return f"size {size} bytes, catalog says {entry.size_bytes}", ""
    digest = sha256_of_file(path)
    if entry.sha256 is not None and digest != entry.sha256:
        return f"sha256 {digest[:12]}… does not match catalog {entry.sha256[:12]}…", digest
    return None, digest


def _http_attempt(url: str, part: Path, timeout_s: float, progress: tqdm | None) -> None:
    """One transfer attempt into ``part``, resuming from its current size."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "nextblock-dataset/1"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # we already have everything
            return
        if 400 <= error.code < 500 and error.code not in (408, 429):
            raise ValueError(f"HTTP {error.code} {error.reason}") from None
        raise _TransferError(f"HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise _TransferError(str(getattr(error, "reason", error))) from None
    with response:
        if offset and response.status != 206:
            offset = 0  # server ignored Range: start over
            if progress is not None:
                progress.update(-part.stat().st_size)
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        received = 0
        with open(part, "ab" if offset else "wb") as handle:
            try:
                while True:
                    chunk = response.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    handle.write(chunk)
                    received += len(chunk)
                    if progress is not None:
                        progress.update(len(chunk))
            except (OSError, http.client.HTTPException) as error:  # IncompleteRead, resets, timeouts
                raise _TransferError(
                    f"transfer broke after {offset + received} bytes ({type(error).__name__})"
                ) from None
        if expected is not None and received < expected:
            raise _TransferError(f"transfer broke after {offset + received} bytes")


class ArchiveFetcher:
    """Fetch catalog entries into one cache (thread-safe; see module docstring).

    Parameters
    ----------
    cache:
        Cache root (``<cache>/archives`` is created).
    retries:
        Extra attempts after a failed transfer (0 = try once).
    backoff_s:
        First wait between attempts; doubles every attempt.
    timeout_s:
        Socket timeout for each HTTP request.
    """

    def __init__(self, cache: Path, retries: int = 4, backoff_s: float = 1.0, timeout_s: float = 30.0):
        self.cache = Path(cache)
        self.archives = archives_dir(self.cache)
        self.quarantine = quarantine_dir(self.cache)
        self.archives.mkdir(parents=True, exist_ok=True)
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._index_lock = threading.Lock()

    # -- index -------------------------------------------------------------------------
    def read_index(self) -> dict:
        """Return ``archives/index.json`` as a dict (empty when absent)."""
        index_path = self.archives / INDEX_FILE_NAME
        if not index_path.exists():
            return {}
        return json.loads(index_path.read_text())

    def _record(self, name: str, entry: CatalogEntry, digest: str) -> None:
        with self._index_lock:
            index = self.read_index()
            index[name] = {**entry.to_dict(), "sha256_actual": digest}
            tmp = self.archives / (INDEX_FILE_NAME + ".tmp")
            tmp.write_text(json.dumps(index, indent=2, sort_keys=True))
            tmp.replace(self.archives / INDEX_FILE_NAME)

    def _quarantine(self, path: Path, entry: CatalogEntry, reason: str) -> FetchResult:
        self.quarantine.mkdir(parents=True, exist_ok=True)
        target = self.quarantine / path.name.removesuffix(".part")
        shutil.move(str(path), target)
        return FetchResult(entry, "quarantined", None, f"{reason}; moved to {target}")

    # -- one entry ---------------------------------------------------------------------
    def fetch(self, entry: CatalogEntry, progress: tqdm | None = None) -> FetchResult:
        """Bring one entry into the cache; never raises for per-entry problems."""
        name = archive_file_name(entry)
        final = self.archives / name
        if final.exists():
            problem, digest = _verification_problem(entry, final)
            if problem is None:
                if name not in self.read_index():
                    self._record(name, entry, digest)
                return FetchResult(entry, "cached", final)
            final.unlink()  # stale/corrupt copy: fetch again
        try:
            source = _local_source(entry.url)
        except ValueError as error:
            return FetchResult(entry, "failed", None, str(error))
        part = self.archives / (name + ".part")
        if source is not None:
            if not source.is_file():
                return FetchResult(entry, "failed", None, f"local archive {source} does not exist")
            shutil.copyfile(source, part)
            status = "copied"
        else:
            status = "downloaded"
            last_error = ""
            for attempt in range(self.retries + 1):
                try:
                    _http_attempt(entry.url, part, self.timeout_s, progress)
                    last_error = ""
                    break
                except ValueError as error:  # permanent (404 …)
                    part.unlink(missing_ok=True)
                    return FetchResult(entry, "failed", None, str(error))
                except _TransferError as error:
                    last_error = str(error)
                    if attempt < self.retries:
                        time.sleep(self.backoff_s * 2**attempt)
            if last_error:
                message = f"gave up after {self.retries + 1} attempts: {last_error} (partial kept for resume)"
                return FetchResult(entry, "failed", None, message)
        problem, digest = _verification_problem(entry, part)
        if problem is not None:
            return self._quarantine(part, entry, problem)
        part.replace(final)
        self._record(name, entry, digest)
        return FetchResult(entry, status, final)


def fetch_entries(
    entries: list[CatalogEntry],
    cache: Path,
    jobs: int = 4,
    retries: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 30.0,
    show_progress: bool = True,
) -> list[FetchResult]:
    """Fetch many entries with at most ``jobs`` transfers at once.

    Parameters
    ----------
    entries:
        Catalog entries (see :func:`nextblock.dataset.catalog.read_catalog`).
    cache:
        Cache root.
    jobs:
        Maximum simultaneous transfers (>= 1).
    retries, backoff_s, timeout_s:
        See :class:`ArchiveFetcher`.
    show_progress:
        Draw a tqdm byte counter on stderr.

    Returns
    -------
    list of FetchResult, in the order of ``entries``.
    """
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    fetcher = ArchiveFetcher(cache, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s)
    # Two rows with the same URL share one cache file: fetch it once, never from two threads.
    first_of_name: dict[str, CatalogEntry] = {}
    for entry in entries:
        first_of_name.setdefault(archive_file_name(entry), entry)
    unique = list(first_of_name.values())
    known_total = sum(e.size_bytes or 0 for e in unique)
    with tqdm(
        total=known_total or None, unit="B", unit_scale=True, desc="fetch", disable=not show_progress
    ) as progress:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            done = dict(
                zip(
                    (archive_file_name(e) for e in unique),
                    pool.map(lambda e: fetcher.fetch(e, progress), unique),
                    strict=True,
                )
            )
    results = []
    for entry in entries:
        shared = done[archive_file_name(entry)]
        results.append(
            shared
            if shared.entry is entry
            else FetchResult(entry, shared.status, shared.path, shared.message or "same URL as an earlier row")
        )
    return results
