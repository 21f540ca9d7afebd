"""The NextBlock network: Keras architecture and training data (training side, needs TensorFlow),
and the LiteRT runner and metadata (runtime side, no TensorFlow).

* :mod:`nextblock.model.architecture` – the 1D CNN over frequency bins (Keras)
* :mod:`nextblock.model.losses`       – waveform + multi-resolution STFT loss
* :mod:`nextblock.model.data`         – windows from audio folders / shards → ``tf.data``
* :mod:`nextblock.model.metadata`     – metadata embedded in the ``.tflite``
* :mod:`nextblock.model.runner`       – :class:`BlockPredictor`, the runtime (LiteRT, numpy FFTs)

:func:`default_model_path` finds the shipped model.
"""

from __future__ import annotations

from pathlib import Path

#: file stem of the shipped default model (``models/<name>.tflite``).
DEFAULT_MODEL_NAME = "nextblock-default"


def default_model_path(name: str = DEFAULT_MODEL_NAME) -> Path:
    """Path of the shipped model ``<name>.tflite``.

    Looks in ``<package dir>/models/`` first (where the wheel installs ``models/*.tflite``),
    then in the source checkout's ``<repo>/models/``. Raises ``FileNotFoundError`` naming both
    places when neither has it.
    """
    package_dir = Path(__file__).resolve().parent.parent
    candidates = [package_dir / "models" / f"{name}.tflite", package_dir.parent.parent / "models" / f"{name}.tflite"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"model {name!r} not found in {candidates[0].parent} or {candidates[1].parent}")


__all__ = ["DEFAULT_MODEL_NAME", "default_model_path"]
