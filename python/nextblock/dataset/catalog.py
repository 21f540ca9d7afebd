"""Read the catalog of multitrack sessions to fetch.

A catalog is a CSV file (header row) or a JSON file (a list of objects, or an
object with a ``"sessions"`` list). Fields, case-insensitive:

========  =========  ==========================================================
field     required   meaning
========  =========  ==========================================================
title     yes        session / song title (the unit of the train/validation split)
artist    no         performer
genre     no         genre, copied into every stem row by ``sort``
url       yes        ``http(s)://`` or ``file://`` URL, or a local path
sha256    no         expected SHA-256 (hex) of the archive
size      no         expected archive size in bytes
========  =========  ==========================================================

Example CSV::

    title,artist,genre,url,sha256,size
    Lament,The Fogs,Folk,https://example.org/TheFogs_Lament.zip,9f2c...,104857600

Rows that cannot be used (no URL, bad size) are returned as
:class:`CatalogProblem` so the caller can report them and go on with the rest.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path


class CatalogError(Exception):
    """The catalog file as a whole cannot be read (missing, bad format)."""


@dataclass(frozen=True)
class CatalogEntry:
    """One multitrack session to fetch.

    Attributes
    ----------
    title, artist, genre:
        Descriptive fields (``artist``/``genre`` may be empty strings).
    url:
        Where the archive comes from: ``http(s)://``, ``file://`` or a local path.
    sha256:
        Expected lower-case hex digest, or ``None`` when unknown.
    size_bytes:
        Expected size in bytes, or ``None`` when unknown.
    row:
        1-based row number in the catalog (for messages).
    """

    title: str
    artist: str
    genre: str
    url: str
    sha256: str | None = None
    size_bytes: int | None = None
    row: int = 0

    def to_dict(self) -> dict:
        """Plain-dict form (for ``archives/index.json``)."""
        return asdict(self)


@dataclass(frozen=True)
class CatalogProblem:
    """A catalog row that was skipped, with a one-line reason."""

    row: int
    title: str
    reason: str


_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def _parse_row(raw: dict, row: int) -> CatalogEntry | CatalogProblem:
    fields = {str(k).strip().lower(): ("" if v is None else str(v).strip()) for k, v in raw.items() if k is not None}
    title = fields.get("title", "")
    url = fields.get("url", "")
    if not url:
        return CatalogProblem(row, title, "no URL")
    if not title:
        return CatalogProblem(row, title, "no title")
    sha256 = fields.get("sha256", "").lower() or None
    if sha256 is not None and not _SHA256_RE.match(sha256):
        return CatalogProblem(row, title, f"sha256 {sha256!r} is not 64 hex digits")
    size_text = fields.get("size", "") or fields.get("size_bytes", "")
    size_bytes = None
    if size_text:
        try:
            size_bytes = int(size_text)
        except ValueError:
            return CatalogProblem(row, title, f"size {size_text!r} is not an integer byte count")
    return CatalogEntry(
        title=title,
        artist=fields.get("artist", ""),
        genre=fields.get("genre", ""),
        url=url,
        sha256=sha256,
        size_bytes=size_bytes,
        row=row,
    )


def read_catalog(path: str | Path) -> tuple[list[CatalogEntry], list[CatalogProblem]]:
    """Read a CSV or JSON catalog.

    Parameters
    ----------
    path:
        ``.csv`` or ``.json`` file (format chosen by extension; other
        extensions are tried as JSON then CSV).

    Returns
    -------
    entries, problems:
        Usable rows, and rows skipped with a reason (row numbers are 1-based
        data rows).

    Raises
    ------
    CatalogError
        When the file is missing or is neither valid CSV nor JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"catalog {path} does not exist")
    text = path.read_text(encoding="utf-8-sig")
    rows: list[dict]
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            if path.suffix.lower() == ".json":
                raise CatalogError(f"catalog {path} is not valid JSON: {error}") from None
            rows = list(csv.DictReader(text.splitlines()))
        else:
            if isinstance(data, dict):
                data = data.get("sessions")
            if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
                raise CatalogError(f"catalog {path}: expected a list of objects or {{'sessions': [...]}}")
            rows = data
    if rows and "url" not in {str(k).strip().lower() for k in rows[0].keys() if k is not None}:
        raise CatalogError(f"catalog {path} has no 'url' column")
    entries: list[CatalogEntry] = []
    problems: list[CatalogProblem] = []
    for number, raw in enumerate(rows, start=1):
        parsed = _parse_row(raw, number)
        (entries if isinstance(parsed, CatalogEntry) else problems).append(parsed)
    return entries, problems
