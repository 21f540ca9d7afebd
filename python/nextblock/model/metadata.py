"""NextBlock metadata embedded in a ``.tflite`` file (read at run time without TensorFlow).

The exporter stores one JSON object in the flatbuffer's ``metadata`` table under the name
:data:`METADATA_NAME` (a buffer of UTF-8 JSON). A ``<model>.tflite.json`` sidecar is read only
as a fallback when the embedded entry is missing.

Required fields (see :data:`REQUIRED_FIELDS`): ``format`` (:data:`METADATA_FORMAT`),
``frames_per_block``, ``context_samples``, ``sample_rate_hz``, ``outputs_blocks`` (2),
``channels_layout`` ("mono, per channel"), ``model_version``, ``feature`` (a description),
``created`` (ISO 8601 UTC). The exporter adds more (architecture, window, training summary).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METADATA_NAME = "nextblock"
METADATA_FORMAT = "nextblock-model/1"
TFLITE_IDENTIFIER = b"TFL3"
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "frames_per_block": int,
    "context_samples": int,
    "sample_rate_hz": int,
    "outputs_blocks": int,
    "channels_layout": str,
    "model_version": str,
    "feature": str,
    "created": str,
}


class ModelFileError(ValueError):
    """A model file is missing, corrupt or incompatible (the message says which)."""


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _check_tflite_bytes(data: bytes, where: str) -> None:
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileError(f"{where} is not a TFLite flatbuffer (no 'TFL3' identifier)")


def embed_metadata(tflite_bytes: bytes, metadata: dict[str, Any]) -> bytes:
    """Return ``tflite_bytes`` with ``metadata`` (JSON) embedded under :data:`METADATA_NAME`.

    An existing entry of that name is replaced; other metadata (e.g. the converter's) is kept.
    """
    import flatbuffers

    schema = _schema()
    _check_tflite_bytes(tflite_bytes, "model")
    validate_metadata(metadata, "metadata to embed")
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite_bytes, 0))
    buffer = schema.BufferT()
    buffer.data = list(json.dumps(metadata, sort_keys=True).encode("utf-8"))
    model.buffers = list(model.buffers or []) + [buffer]
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [
        m for m in (model.metadata or []) if (m.name or b"") not in (METADATA_NAME, METADATA_NAME.encode())
    ]
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(tflite_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def _embedded_json(data: bytes) -> str | None:
    schema = _schema()
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        name = entry.Name()
        if name is not None and name.decode("utf-8", "replace") == METADATA_NAME:
            buf = model.Buffers(entry.Buffer())
            if buf is None or buf.DataLength() == 0:
                raise ModelFileError("metadata buffer is empty")
            return buf.DataAsNumpy().tobytes().decode("utf-8")
    return None


def validate_metadata(metadata: Any, where: str = "metadata") -> dict[str, Any]:
    """Check types and values of the required fields; return ``metadata`` or raise ModelFileError."""
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{where} is not a JSON object")
    for key, kind in REQUIRED_FIELDS.items():
        if key not in metadata:
            raise ModelFileError(f"{where} lacks the field {key!r}")
        if not isinstance(metadata[key], kind) or isinstance(metadata[key], bool):
            raise ModelFileError(
                f"{where}: field {key!r} should be {getattr(kind, '__name__', kind)}, got {metadata[key]!r}"
            )
    if metadata["format"] != METADATA_FORMAT:
        raise ModelFileError(f"{where} has format {metadata['format']!r}; this NextBlock reads {METADATA_FORMAT!r}")
    for key in ("frames_per_block", "context_samples", "sample_rate_hz", "outputs_blocks"):
        if metadata[key] <= 0:
            raise ModelFileError(f"{where}: {key} must be positive, got {metadata[key]}")
    return metadata


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read and validate the NextBlock metadata of a ``.tflite`` file.

    Looks for the embedded entry first, then for a ``<path>.json`` sidecar. Raises
    :class:`ModelFileError` (a ``ValueError``) with a one-line reason for a missing, corrupt or
    incompatible file, and ``FileNotFoundError`` when ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    data = path.read_bytes()
    _check_tflite_bytes(data, str(path))
    try:
        text = _embedded_json(data)
    except ModelFileError:
        raise
    except Exception as err:  # noqa: BLE001 - flatbuffers raises assorted errors on truncated input
        raise ModelFileError(f"{path} is corrupt: cannot parse its flatbuffer ({type(err).__name__})") from None
    where = f"{path} (embedded metadata)"
    if text is None:
        sidecar = path.with_name(path.name + ".json")
        if not sidecar.is_file():
            raise ModelFileError(f"{path} has no NextBlock metadata (neither embedded nor {sidecar.name})")
        text, where = sidecar.read_text(), str(sidecar)
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{where} is not valid JSON: {err}") from None
    return validate_metadata(metadata, where)
