"""The stem manifest: one CSV row per stem, written by ``sort`` and ``verify``.

Columns (``sort`` fills the first block, ``verify`` the second):

====================  ======================================================
column                meaning
====================  ======================================================
stem_id               stable id: ``<source>/<relative_path>``
source_kind           ``multitrack`` (catalog archive) or ``debian``
source                archive file name in the cache, or Debian package
song_id               unit of the train/validation split: the archive's title
                      (a multitrack session) or, for Debian, the source file
path                  absolute path of the audio file
relative_path         path inside the archive / package
label                 instrument label (:mod:`nextblock.dataset.labels`)
genre, title, artist  from the catalog ("speech"/"music"/... and the
                      package name for Debian sources)
duration_s            length in seconds
sample_rate_hz        native sample rate
channels              channel count
status                ``ok`` (sorted), ``kept`` or ``rejected`` (verified)
reason                why a row is rejected (empty otherwise)
--------------------  ------------------------------------------------------
active_s              seconds above the amplitude threshold
kept_fraction         ``active_s / duration_s``
active_regions_s      JSON list of ``[start_s, end_s]`` non-silent regions
mel_distance          cosine distance of the stem's mel profile to the
                      nearest reference of its label
nearest_label         label of the nearest reference overall
====================  ======================================================
"""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path

STATUS_OK = "ok"
STATUS_KEPT = "kept"
STATUS_REJECTED = "rejected"
USABLE_STATUSES = (STATUS_OK, STATUS_KEPT)
"""Rows ``package`` uses (``ok`` = sorted but not verified)."""


@dataclass
class StemRow:
    """One stem (see the module docstring for each column)."""

    stem_id: str
    source_kind: str
    source: str
    song_id: str
    path: str
    relative_path: str
    label: str
    genre: str = ""
    title: str = ""
    artist: str = ""
    duration_s: float = 0.0
    sample_rate_hz: int = 0
    channels: int = 0
    status: str = STATUS_OK
    reason: str = ""
    active_s: float | None = None
    kept_fraction: float | None = None
    active_regions_s: list | None = None
    mel_distance: float | None = None
    nearest_label: str = ""

    def replace(self, **changes) -> StemRow:
        """Copy with some fields changed."""
        return dataclasses.replace(self, **changes)


COLUMNS = tuple(field.name for field in fields(StemRow))
_FLOATS = {"duration_s", "active_s", "kept_fraction", "mel_distance"}
_INTS = {"sample_rate_hz", "channels"}


def _to_cell(name: str, value) -> str:
    if value is None:
        return ""
    if name == "active_regions_s":
        return json.dumps([[round(a, 3), round(b, 3)] for a, b in value])
    if name in _FLOATS:
        return repr(float(value))  # round-trips exactly
    return str(value)


def _from_cell(name: str, text: str):
    if name == "active_regions_s":
        return json.loads(text) if text else None
    if name in _FLOATS:
        return float(text) if text else (0.0 if name == "duration_s" else None)
    if name in _INTS:
        return int(text) if text else 0
    return text


def write_manifest(rows: list[StemRow], path: str | Path) -> Path:
    """Write rows to a CSV manifest atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({name: _to_cell(name, getattr(row, name)) for name in COLUMNS})
    tmp.replace(path)
    return path


def read_manifest(path: str | Path) -> list[StemRow]:
    """Read a CSV manifest written by :func:`write_manifest`.

    Raises
    ------
    ValueError
        The file lacks required columns (not a stem manifest).
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"stem_id", "path", "label", "song_id"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} is not a stem manifest (missing columns: {', '.join(sorted(missing))})")
        known = set(COLUMNS)
        return [
            StemRow(**{name: _from_cell(name, text or "") for name, text in raw.items() if name in known})
            for raw in reader
        ]
